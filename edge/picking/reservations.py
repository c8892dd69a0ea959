"""Reservations and their settlement: the SQL picking runs on task and stock rows.

A tour matches open tasks and their lines, reserves stock for them
(``stock.reserved``), takes what is picked, writes off what a short pick
found missing, and settles the tasks when it ends. Master data
(:mod:`edge.masterdata.tables`) writes the cloud's figures into the same
tables; these are picking's own movements of them.

Conventions as in :mod:`edge.picking.queries` (the tours, stops and scans):
``db: Reads`` reads, inside the transaction or on a reader's snapshot;
``tx: Transaction`` writes, inside the caller's transaction on the writer thread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from edge.picking.allocation import Candidate
from edge.picking.model import Stop
from edge.picking.queries import Reads, Wanted, scalar
from edge.store.db import Transaction

# ---------------------------------------------------------------------- reads: tasks


def tasks_named(db: Reads, data: str, *, open_only: bool = False) -> list[tuple[str, str]]:
    """(task, state) of the tasks whose id, order or tote is ``data``, by
    priority: pick tasks, or a count task named by its id (a code never
    starts picks and counts together)."""
    state = " AND state = 'open'" if open_only else ""
    rows = db.execute(
        f"SELECT task, state, kind FROM tasks WHERE 1 = 1{state} "  # noqa: S608 - constants
        "AND ((kind = 'pick' AND (task = ?1 OR order_ref = ?1 OR tote = ?1)) "
        "OR (kind = 'count' AND task = ?1)) ORDER BY priority DESC, task",
        (data,),
    ).fetchall()
    counts = [(str(task), str(s)) for task, s, kind in rows if kind == "count"]
    return counts or [(str(task), str(s)) for task, s, _ in rows]


def most_urgent_kind(db: Reads) -> tuple[str, str] | None:
    """(task, kind) of the most urgent open task of any kind (None: none)."""
    row = db.execute(
        "SELECT task, kind FROM tasks WHERE state = 'open' "
        "ORDER BY priority DESC, received_ms, task LIMIT 1"
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def kinds(db: Reads, tasks: Sequence[str]) -> set[str]:
    marks = ",".join("?" * len(tasks))
    rows = db.execute(
        f"SELECT DISTINCT kind FROM tasks WHERE task IN ({marks})",  # noqa: S608 - placeholders
        list(tasks),
    ).fetchall()
    return {str(r[0]) for r in rows}


def next_open_tasks(db: Reads, limit: int) -> list[str]:
    """The open pick tasks a START takes, by priority then age."""
    rows = db.execute(
        "SELECT task FROM tasks WHERE state = 'open' AND kind = 'pick' "
        "ORDER BY priority DESC, received_ms, task LIMIT ?",
        (limit,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def still_open(db: Reads, tasks: Sequence[str]) -> list[str]:
    """Those of ``tasks`` still open (in the order given)."""
    marks = ",".join("?" * len(tasks))
    rows = db.execute(
        f"SELECT task FROM tasks WHERE state = 'open' AND kind = 'pick' "  # noqa: S608
        f"AND task IN ({marks})",
        list(tasks),
    ).fetchall()
    open_now = {str(r[0]) for r in rows}
    return [task for task in tasks if task in open_now]


def next_cart_tasks(
    db: Reads, totes: int, units: int, *, taken: Sequence[str] = (), scan: int = 200
) -> list[str]:
    """First come, first served onto one cart: ``taken`` (already on it),
    then open pick tasks by priority then age while they fit ``totes`` orders
    and ``units`` units (the first always goes, alone if it is larger than a
    cart)."""
    rows = db.execute(
        "SELECT t.task, COALESCE(SUM(MAX(l.qty - l.picked, 0)), 0) FROM tasks t "
        "LEFT JOIN task_lines l ON l.task = t.task AND l.state IN ('open', 'assigned') "
        "WHERE t.state = 'open' AND t.kind = 'pick' GROUP BY t.task "
        "ORDER BY t.task IN (SELECT value FROM json_each(?)) DESC, "
        "t.priority DESC, t.received_ms, t.task LIMIT ?",
        (json.dumps(list(taken)), scan + len(taken)),
    ).fetchall()
    sizes = {str(task): int(size) for task, size in rows}
    chosen = [task for task in taken if task in sizes]  # in the order given
    load = sum(sizes[task] for task in chosen)
    for task, size in sizes.items():
        if len(chosen) >= totes:
            break
        if task in chosen or (chosen and load + size > units):
            continue
        chosen.append(task)
        load += size
    return chosen


def assigned_totes(db: Reads, tasks: Sequence[str]) -> dict[str, str | None]:
    """The tote the cloud assigned to each of ``tasks`` (None: none)."""
    marks = ",".join("?" * len(tasks))
    rows = db.execute(
        f"SELECT task, tote FROM tasks WHERE task IN ({marks})",  # noqa: S608 - placeholders
        list(tasks),
    ).fetchall()
    return {str(task): (str(tote) if tote else None) for task, tote in rows}


def wanted(db: Reads, tasks: Sequence[str]) -> list[Wanted]:
    """(task, line, sku, units still to pick) of the tasks' open lines."""
    out: list[Wanted] = []
    for task in tasks:
        for line, sku, qty, picked in db.execute(
            "SELECT line, sku, qty, picked FROM task_lines WHERE task = ? "
            "AND state IN ('open', 'assigned') ORDER BY line",
            (task,),
        ):
            if qty - picked > 0:
                out.append((task, line, sku, qty - picked))
    return out


def task_state(db: Reads, task: str) -> str:
    """The task's state; ``missing`` when the box has no such task."""
    state = scalar(db, "SELECT state FROM tasks WHERE task = ?", (task,))
    return "missing" if state is None else str(state)


def order_of(db: Reads, task: str) -> str | None:
    order: str | None = scalar(db, "SELECT order_ref FROM tasks WHERE task = ?", (task,))
    return order


# ---------------------------------------------------------------------- reads: stock


def candidates(db: Reads, sku: str, *, zone: str | None, exclude: str | None) -> list[Candidate]:
    """Stock rows of ``sku`` with unreserved units (in ``zone``, not at ``exclude``)."""
    sql = (
        "SELECT s.location, s.lot, s.expiry, s.qty - s.reserved, l.aisle, l.y "
        "FROM stock s JOIN locations l ON l.code = s.location "
        "WHERE s.sku = ? AND s.qty - s.reserved > 0"
    )
    params: list[Any] = [sku]
    if zone is not None:
        sql += " AND l.zone = ?"
        params.append(zone)
    if exclude is not None:
        sql += " AND s.location <> ?"
        params.append(exclude)
    return [
        Candidate(loc, lot, expiry, int(avail), int(aisle), float(y))
        for loc, lot, expiry, avail, aisle, y in db.execute(sql, params)
    ]


def unreserved(db: Reads, sku: str, location: str, lot: str) -> int | None:
    """Unreserved units of one stock row (None: no such row)."""
    sql = "SELECT qty - reserved FROM stock WHERE sku = ? AND location = ? AND lot = ?"
    free = scalar(db, sql, (sku, location, lot))
    return None if free is None else int(free)


def unreserved_total(db: Reads, sku: str) -> int:
    sql = "SELECT COALESCE(SUM(qty - reserved), 0) FROM stock WHERE sku = ? AND qty - reserved > 0"
    return int(scalar(db, sql, (sku,)))


def on_hand(db: Reads, stop: Stop) -> int:
    """Units of the stop's stock row (0: no row)."""
    sql = "SELECT qty FROM stock WHERE sku = ? AND location = ? AND lot = ?"
    return int(scalar(db, sql, (stop.sku, stop.location, stop.lot)) or 0)


# ---------------------------------------------------------------------- writes (in the tx): tasks


def set_tasks_started(tx: Transaction, tasks: Sequence[str]) -> None:
    marks = ",".join("?" * len(tasks))
    tx.execute(f"UPDATE tasks SET state = 'started' WHERE task IN ({marks})", tasks)  # noqa: S608


def set_tasks_done(tx: Transaction, tasks: Sequence[str], now: int) -> None:
    marks = ",".join("?" * len(tasks))
    tx.execute(
        f"UPDATE tasks SET state = 'done', finished_ms = ? WHERE task IN ({marks})",  # noqa: S608
        (now, *tasks),
    )


def set_line_state(tx: Transaction, task: str, line: str, state: str) -> None:
    tx.execute("UPDATE task_lines SET state = ? WHERE task = ? AND line = ?", (state, task, line))


def add_line_picked(tx: Transaction, task: str, line: str, units: int) -> None:
    tx.execute(
        "UPDATE task_lines SET picked = picked + ? WHERE task = ? AND line = ?",
        (units, task, line),
    )


def settle_task(tx: Transaction, task: str, now: int) -> bool:
    """A started task whose tour ended: lines picked or short, the task done.
    Whether it was (a task cancelled or already done is left as it is)."""
    tx.execute(
        "UPDATE task_lines SET state = CASE WHEN picked >= qty THEN 'picked' ELSE 'short' END "
        "WHERE task = ?",
        (task,),
    )
    cur = tx.execute(
        "UPDATE tasks SET state = 'done', finished_ms = ? WHERE task = ? AND state = 'started'",
        (now, task),
    )
    return cur.rowcount == 1


# ---------------------------------------------------------------------- writes (in the tx): stock


def reserve(tx: Transaction, sku: str, location: str, lot: str, units: int) -> None:
    tx.execute(
        "UPDATE stock SET reserved = reserved + ? WHERE sku = ? AND location = ? AND lot = ?",
        (units, sku, location, lot),
    )


def take_stock(tx: Transaction, stop: Stop, units: int, *, release: int) -> None:
    """Take ``units`` off the stop's stock row and release ``release`` reserved units."""
    cur = tx.execute(
        "UPDATE stock SET qty = qty - ?, reserved = MAX(reserved - ?, 0) "
        "WHERE sku = ? AND location = ? AND lot = ?",
        (units, release, stop.sku, stop.location, stop.lot),
    )
    if cur.rowcount == 0 and units:
        # The row went away (a master-data reload): the pick still happened.
        tx.execute(
            "INSERT INTO stock (sku, location, lot, expiry, qty) VALUES (?, ?, ?, ?, ?)",
            (stop.sku, stop.location, stop.lot, stop.expiry, -units),
        )


def put_away(tx: Transaction, sku: str, location: str, lot: str, units: int) -> None:
    """``units`` of ``sku`` (lot ``lot``) go back into ``location``'s stock row
    (a new row when that lot has none there, with the expiry the lot has
    elsewhere in the zone)."""
    cur = tx.execute(
        "UPDATE stock SET qty = qty + ? WHERE sku = ? AND location = ? AND lot = ?",
        (units, sku, location, lot),
    )
    if cur.rowcount == 0:
        expiry = scalar(
            tx, "SELECT MIN(expiry) FROM stock WHERE sku = ? AND lot = ? AND lot != ''", (sku, lot)
        )
        tx.execute(
            "INSERT INTO stock (sku, location, lot, expiry, qty) VALUES (?, ?, ?, ?, ?)",
            (sku, location, lot, expiry, units),
        )


def write_off(tx: Transaction, stop: Stop, units: int) -> None:
    """Units that are not at the stop's location after all."""
    tx.execute(
        "UPDATE stock SET qty = qty - ? WHERE sku = ? AND location = ? AND lot = ?",
        (units, stop.sku, stop.location, stop.lot),
    )
