"""The SQL of the picking tables — tours, their stops, scans — and the
look-ups a scan makes in master data (locations, items). With
:mod:`edge.picking.reservations` (task and stock rows) and
:mod:`edge.picking.retention` (purging finished tours), the only picking
modules that hold SQL.

Two kinds of functions, told apart by their first parameter:

- ``db: Reads`` — a read, run either inside the write transaction (pass the
  :class:`Transaction`: what it reads decides) or on a reader's WAL snapshot
  (the tour planner before the transaction, ``GET /tour``).
- ``tx: Transaction`` — a write. It runs on the store's writer thread inside
  the caller's transaction — for a scan, inside its savepoint of a group
  commit — and is undone with it.

Nothing here decides anything: a function reads or writes the rows it names.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from edge.picking.allocation import Candidate
from edge.picking.codes import ScannedCode
from edge.picking.model import COUNTED, CartTote, PutBackLine, Stop, StopState
from edge.store.db import Transaction

#: (task, line, sku, location candidate, units) of one stop to insert
Allocation = tuple[str, str, str, Candidate, int]
#: (task, line, sku, units still to pick) of an open task line
Wanted = tuple[str, str, str, int]
#: (aisle, y) where a picker stands
Position = tuple[int, float]


class Reads(Protocol):
    """Something to read from: a :class:`Transaction` or a reader connection."""

    def execute(self, sql: str, params: Any = ..., /) -> sqlite3.Cursor: ...


_STOP_COLS = "tour, stop, task, line, sku, location, lot, expiry, qty, picked, state, ord"
#: stops not finished: still to walk to, or units still to put into their tote
_OPEN = "state IN ('pending', 'location_ok', 'to_put')"
#: stops still to walk to (what a route goes through)
_WALK = "state IN ('pending', 'location_ok')"
_COUNTED = ", ".join(f"'{r}'" for r in COUNTED)


def scalar(db: Reads, sql: str, params: Any) -> Any:
    """The first column of the first row (None: no row)."""
    row = db.execute(sql, params).fetchone()
    return row[0] if row else None


def _stop(row: Sequence[Any]) -> Stop:
    tour, number, task, line, sku, location, lot, expiry, qty, picked, state, ord_ = row
    return Stop(
        tour, number, task, line, sku, location, lot, expiry, qty, picked, StopState(state), ord_
    )


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One WAL snapshot of a reader connection for several reads."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


# ---------------------------------------------------------------------- reads: tours and stops


def active_tour(db: Reads, picker: str) -> int | None:
    sql = "SELECT tour FROM tours WHERE picker = ? AND state = 'active' ORDER BY tour DESC LIMIT 1"
    tour = scalar(db, sql, (picker,))
    return None if tour is None else int(tour)


def last_tour(db: Reads, picker: str) -> int | None:
    """The picker's latest tour in any state."""
    tour = scalar(
        db, "SELECT tour FROM tours WHERE picker = ? ORDER BY tour DESC LIMIT 1", (picker,)
    )
    return None if tour is None else int(tour)


def open_stops(db: Reads, tour: int, limit: int) -> list[Stop]:
    """The first ``limit`` open stops of the tour in walking order."""
    rows = db.execute(
        f"SELECT {_STOP_COLS} FROM tour_stops WHERE tour = ? AND {_OPEN} "  # noqa: S608 - constants
        "ORDER BY ord, stop LIMIT ?",
        (tour, limit),
    ).fetchall()
    return [_stop(r) for r in rows]


def stop(db: Reads, tour: int, number: int) -> Stop | None:
    row = db.execute(
        f"SELECT {_STOP_COLS} FROM tour_stops WHERE tour = ? AND stop = ?",  # noqa: S608
        (tour, number),
    ).fetchone()
    return _stop(row) if row else None


def has_done_stop(db: Reads, tour: int, sku: str) -> bool:
    sql = "SELECT 1 FROM tour_stops WHERE tour = ? AND sku = ? AND state = 'done' LIMIT 1"
    return scalar(db, sql, (tour, sku)) is not None


def open_spots(db: Reads, tour: int) -> list[tuple[int, int, float]]:
    """(stop, aisle, y) of the tour's open stops."""
    rows = db.execute(
        "SELECT s.stop, l.aisle, l.y FROM tour_stops s JOIN locations l ON l.code = s.location "
        "WHERE s.tour = ? AND s.state IN ('pending', 'location_ok')",
        (tour,),
    ).fetchall()
    return [(int(n), int(aisle), float(y)) for n, aisle, y in rows]


def closed_ord(db: Reads, tour: int) -> int:
    """The walk position of the last stop walked to (0: none)."""
    sql = f"SELECT COALESCE(MAX(ord), 0) FROM tour_stops WHERE tour = ? AND NOT {_WALK}"  # noqa: S608
    return int(scalar(db, sql, (tour,)))


def last_finished_location(db: Reads, tour: int) -> str | None:
    """The location of the tour's last stop walked to and taken from (done,
    short, or its units in hand) in walking order."""
    sql = (
        "SELECT location FROM tour_stops WHERE tour = ? "
        "AND state IN ('done', 'short', 'to_put') "
        "ORDER BY ord DESC LIMIT 1"
    )
    location = scalar(db, sql, (tour,))
    return None if location is None else str(location)


def last_stop_number(db: Reads, tour: int) -> int:
    return int(scalar(db, "SELECT COALESCE(MAX(stop), 0) FROM tour_stops WHERE tour = ?", (tour,)))


def tours_with_open_stops_of(db: Reads, task: str) -> list[tuple[int, str]]:
    """(tour, picker) of active tours with an open stop of ``task``."""
    rows = db.execute(
        "SELECT DISTINCT t.tour, t.picker FROM tour_stops s JOIN tours t ON t.tour = s.tour "  # noqa: S608 - constants
        f"WHERE s.task = ? AND t.state = 'active' AND s.{_OPEN}",
        (task,),
    ).fetchall()
    return [(int(tour), str(picker)) for tour, picker in rows]


def unpickable_tasks_in_tours(db: Reads) -> list[str]:
    """Tasks with an open stop in an active tour that are no longer open or
    started (cancelled, or gone): what a cancel should have taken out."""
    rows = db.execute(
        "SELECT DISTINCT s.task FROM tours t JOIN tour_stops s ON s.tour = t.tour "
        "LEFT JOIN tasks k ON k.task = s.task WHERE t.state = 'active' "
        "AND s.state IN ('pending', 'location_ok', 'to_put') "
        "AND (k.state IS NULL OR k.state NOT IN ('open', 'started')) ORDER BY s.task"
    ).fetchall()
    return [str(r[0]) for r in rows]


def open_stops_of(db: Reads, tour: int, task: str) -> list[Stop]:
    rows = db.execute(
        f"SELECT {_STOP_COLS} FROM tour_stops WHERE tour = ? AND task = ? AND {_OPEN}",  # noqa: S608
        (tour, task),
    ).fetchall()
    return [_stop(r) for r in rows]


def tour_pickers(db: Reads, tours: Sequence[int]) -> list[tuple[int, str]]:
    """(tour, picker) of ``tours`` (those that exist)."""
    if not tours:
        return []
    marks = ",".join("?" * len(tours))
    rows = db.execute(
        f"SELECT tour, picker FROM tours WHERE tour IN ({marks})",  # noqa: S608 - placeholders
        list(tours),
    ).fetchall()
    return [(int(tour), str(picker)) for tour, picker in rows]


def tour_picker(db: Reads, tour: int) -> str:
    return str(scalar(db, "SELECT picker FROM tours WHERE tour = ?", (tour,)))


def tour_tasks(db: Reads, tour: int) -> list[str]:
    rows = db.execute("SELECT DISTINCT task FROM tour_stops WHERE tour = ?", (tour,)).fetchall()
    return [str(r[0]) for r in rows]


def tour_head(db: Reads, tour: int) -> tuple[str, bytes | None, str]:
    """(state, stored route JSON, kind: pick or count) of a tour."""
    row = db.execute("SELECT state, route, kind FROM tours WHERE tour = ?", (tour,)).fetchone()
    return str(row[0]), row[1], str(row[2])


def count_attempts(db: Reads, tour: int) -> dict[int, int]:
    """Stop -> which attempt its count is on, for a count tour."""
    rows = db.execute("SELECT stop, attempt FROM count_stops WHERE tour = ?", (tour,))
    return {int(stop): int(attempt) for stop, attempt in rows}


def tour_view_rows(db: Reads, tour: int) -> list[tuple[Any, ...]]:
    """(stop, location, sku, description, qty, picked, state, lot, expiry, task,
    aisle, y, slot, tote) of every stop of the tour, in walking order (slot
    and tote None outside a cart)."""
    return db.execute(
        "SELECT s.stop, s.location, s.sku, COALESCE(i.description, ''), s.qty, s.picked, "
        "s.state, s.lot, s.expiry, s.task, l.aisle, l.y, c.slot, c.tote FROM tour_stops s "
        "LEFT JOIN items i ON i.sku = s.sku LEFT JOIN locations l ON l.code = s.location "
        "LEFT JOIN tour_totes c ON c.tour = s.tour AND c.task = s.task "
        "WHERE s.tour = ? ORDER BY s.ord, s.stop",
        (tour,),
    ).fetchall()


# ---------------------------------------------------------------------- reads: codes, tasks, stock


def stored_scan(db: Reads, scan_id: str) -> tuple[str, bytes] | None:
    """(picker, compressed answer) of a scan already applied."""
    row = db.execute("SELECT picker, answer FROM scans WHERE scan_id = ?", (scan_id,)).fetchone()
    return (str(row[0]), bytes(row[1])) if row else None


def counted_before(db: Reads, tour: int, raw: str) -> bool:
    """Whether a scan of exactly ``raw`` counted units in this tour."""
    sql = f"SELECT 1 FROM scans WHERE tour = ? AND code = ? AND result IN ({_COUNTED}) LIMIT 1"  # noqa: S608
    return scalar(db, sql, (tour, raw)) is not None


def location_of(db: Reads, code: ScannedCode) -> str | None:
    """The zone's location a code names (label pattern, or any code equal to a label)."""
    if code.kind == "location" and code.location is not None:
        key = code.location
    elif code.kind in ("sku", "unknown"):
        key = code.data  # a site whose labels do not follow the default pattern
    else:
        return None
    location = scalar(db, "SELECT code FROM locations WHERE code = ?", (key,))
    return None if location is None else str(location)


def item_sku(db: Reads, code: ScannedCode) -> str | None:
    """The SKU an item code names: by GTIN, else a SKU label."""
    if code.gtin14 is not None:
        sku = scalar(db, "SELECT sku FROM item_gtins WHERE gtin = ?", (code.gtin14,))
    elif code.kind in ("sku", "unknown", "location"):
        sku = scalar(db, "SELECT sku FROM items WHERE sku = ?", (code.data,))
    else:
        return None
    return None if sku is None else str(sku)


def position_of(db: Reads, location: str) -> Position | None:
    row = db.execute("SELECT aisle, y FROM locations WHERE code = ?", (location,)).fetchone()
    return (int(row[0]), float(row[1])) if row else None


# ---------------------------------------------------------------------- writes (in the tx)


def new_tour(tx: Transaction, picker: str, now: int) -> int:
    cur = tx.execute(
        "INSERT INTO tours (picker, state, started_ms) VALUES (?, 'active', ?)", (picker, now)
    )
    return int(cur.lastrowid or 0)


def insert_stops(tx: Transaction, tour: int, number: int, stops: Sequence[Allocation]) -> None:
    """New stops numbered from ``number`` on, in the order given."""
    tx.executemany(
        "INSERT INTO tour_stops (tour, stop, task, line, sku, location, lot, expiry, qty) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (tour, n, task, line, sku, c.location, c.lot, c.expiry, units)
            for n, (task, line, sku, c, units) in enumerate(stops, start=number)
        ],
    )


def set_stop_state(tx: Transaction, tour: int, stop: int, state: StopState) -> None:
    tx.execute(
        "UPDATE tour_stops SET state = ? WHERE tour = ? AND stop = ?", (str(state), tour, stop)
    )


def set_stop_picked(tx: Transaction, stop: Stop, picked: int, state: StopState) -> None:
    tx.execute(
        "UPDATE tour_stops SET picked = ?, state = ? WHERE tour = ? AND stop = ?",
        (picked, str(state), stop.tour, stop.stop),
    )


def set_walk(tx: Transaction, tour: int, stops: Sequence[int], first_ord: int) -> None:
    """Walk positions ``first_ord``, ``first_ord + 1``, … for ``stops`` in order."""
    tx.executemany(
        "UPDATE tour_stops SET ord = ? WHERE tour = ? AND stop = ?",
        [(first_ord + i, tour, stop) for i, stop in enumerate(stops)],
    )


def set_walk_figures(
    tx: Transaction, tour: int, planned_m: float | None, single_m: float | None, units: int
) -> None:
    tx.execute(
        "UPDATE tours SET planned_m = ?, single_s_shape_m = ?, planned_units = ? WHERE tour = ?",
        (planned_m, single_m, units, tour),
    )


def set_route(tx: Transaction, tour: int, route: dict[str, Any]) -> None:
    tx.execute(
        "UPDATE tours SET route = ?, length_m = ? WHERE tour = ?",
        (json.dumps(route).encode(), route["length_m"], tour),
    )


def end_tour(tx: Transaction, tour: int, state: str, now: int) -> None:
    """Close a tour as ``done`` or ``cancelled``."""
    tx.execute("UPDATE tours SET state = ?, ended_ms = ? WHERE tour = ?", (state, now, tour))


def record_scan(
    tx: Transaction,
    scan_id: str,
    *,
    picker: str,
    tour: int | None,
    code: str,
    result: str,
    answer: bytes,
    now: int,
) -> None:
    """The stored answer of a scan: what a retry of its ``scan_id`` gets back."""
    tx.execute(
        "INSERT INTO scans (scan_id, picker, tour, code, result, answer, at_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (scan_id, picker, tour, code, result, answer, now),
    )


def task_has_open_stops(db: Reads, task: str) -> bool:
    """Whether ``task`` has a stop still to visit in an active tour."""
    row = db.execute(
        "SELECT 1 FROM tour_stops s JOIN tours t ON t.tour = s.tour WHERE s.task = ? "
        "AND t.state = 'active' AND s.state IN ('pending', 'location_ok', 'to_put') LIMIT 1",
        (task,),
    ).fetchone()
    return row is not None


def picked_for_task(db: Reads, task: str) -> list[tuple[str, str, str, str, int]]:
    """(picker, sku, location, lot, units) picked for ``task`` on any pick tour
    (a count tour's ``picked`` is units counted, which never left the shelf)."""
    rows = db.execute(
        "SELECT t.picker, s.sku, s.location, s.lot, SUM(s.picked) FROM tour_stops s "
        "JOIN tours t ON t.tour = s.tour WHERE s.task = ? AND s.picked > 0 AND t.kind = 'pick' "
        "GROUP BY t.picker, s.sku, s.location, s.lot ORDER BY MIN(s.tour), MIN(s.stop)",
        (task,),
    ).fetchall()
    return [(str(p), str(sku), str(loc), str(lot), int(n)) for p, sku, loc, lot, n in rows]


# ---------------------------------------------------------------------- carts: totes


def cart_totes(db: Reads, tour: int) -> list[CartTote]:
    """The tour's totes by slot (empty: not a cart), without the tasks the
    cloud cancelled since (they need no tote any more)."""
    rows = db.execute(
        "SELECT c.task, c.slot, c.tote, t.order_ref, t.tote FROM tour_totes c "
        "LEFT JOIN tasks t ON t.task = c.task WHERE c.tour = ? "
        "AND COALESCE(t.state, 'cancelled') != 'cancelled' ORDER BY c.slot",
        (tour,),
    ).fetchall()
    return [CartTote(str(t), int(n), tote, order, given) for t, n, tote, order, given in rows]


def tote_holder(db: Reads, tote: str) -> int | None:
    """The active tour a tote label is bound to (None: it is free)."""
    tour = scalar(
        db,
        "SELECT c.tour FROM tour_totes c JOIN tours t ON t.tour = c.tour "
        "WHERE c.tote = ? AND t.state = 'active' LIMIT 1",
        (tote,),
    )
    return None if tour is None else int(tour)


def cart_progress(db: Reads, tour: int) -> list[tuple[Any, ...]]:
    """(slot, task, order, tote, tote the cloud assigned, units, picked, open
    stops, task state) of each tote of a cart tour, by slot."""
    return db.execute(
        "SELECT c.slot, c.task, t.order_ref, c.tote, t.tote, COALESCE(SUM(s.qty), 0), "
        "COALESCE(SUM(s.picked), 0), "
        "COALESCE(SUM(s.state IN ('pending', 'location_ok', 'to_put')), 0), "
        "COALESCE(t.state, 'cancelled') FROM tour_totes c "
        "LEFT JOIN tasks t ON t.task = c.task "
        "LEFT JOIN tour_stops s ON s.tour = c.tour AND s.task = c.task "
        "AND s.state != 'cancelled' WHERE c.tour = ? GROUP BY c.slot ORDER BY c.slot",
        (tour,),
    ).fetchall()


def order_and_tote(db: Reads, tour: int, task: str) -> tuple[str | None, str | None]:
    """The task's order, and the tote its units go into on ``tour`` (the
    cart's, else the one the cloud assigned; None: no tote)."""
    row = db.execute(
        "SELECT t.order_ref, COALESCE(c.tote, t.tote) FROM tasks t "
        "LEFT JOIN tour_totes c ON c.tour = ? AND c.task = t.task WHERE t.task = ?",
        (tour, task),
    ).fetchone()
    return (None, None) if row is None else (row[0], row[1])


def insert_totes(
    tx: Transaction, tour: int, tasks: Sequence[str], bound: dict[str, str], now: int
) -> None:
    """Slots 1, 2, … for ``tasks`` on a cart tour; ``bound`` (task -> tote)
    are bound at once (the tote that started the tour)."""
    tx.executemany(
        "INSERT INTO tour_totes (tour, task, slot, tote, bound_ms) VALUES (?, ?, ?, ?, ?)",
        [
            (tour, task, slot, bound.get(task), now if task in bound else None)
            for slot, task in enumerate(tasks, start=1)
        ],
    )


def bind_tote(tx: Transaction, tour: int, task: str, tote: str, now: int) -> None:
    tx.execute(
        "UPDATE tour_totes SET tote = ?, bound_ms = ? WHERE tour = ? AND task = ?",
        (tote, now, tour, task),
    )


def set_cart(tx: Transaction, tour: int, cart: str) -> None:
    tx.execute("UPDATE tours SET cart = ? WHERE tour = ?", (cart, tour))


# ---------------------------------------------------------------------- put-backs


def open_put_backs(db: Reads, picker: str | None = None) -> list[PutBackLine]:
    """Open put-back lines (of ``picker``; None: everyone's), oldest first."""
    where = "closed_ms IS NULL" + (" AND picker = ?" if picker is not None else "")
    rows = db.execute(
        "SELECT id, task, sku, origin, lot, qty, put_back, in_hand FROM put_backs "  # noqa: S608
        f"WHERE {where} ORDER BY id",
        (picker,) if picker is not None else (),
    ).fetchall()
    return [PutBackLine(*row) for row in rows]


def open_put_backs_by_picker(db: Reads) -> list[tuple[PutBackLine, str | None]]:
    """Every open put-back line with the picker who holds it, oldest first."""
    rows = db.execute(
        "SELECT id, task, sku, origin, lot, qty, put_back, in_hand, picker FROM put_backs "
        "WHERE closed_ms IS NULL ORDER BY id"
    ).fetchall()
    return [(PutBackLine(*row[:8]), row[8]) for row in rows]


def put_back_ages(db: Reads, older_than_up: int) -> list[tuple[int, str, str | None, str, int]]:
    """(id, task, picker, sku, units left) of open put-backs created before
    box uptime ``older_than_up``."""
    rows = db.execute(
        "SELECT id, task, picker, sku, qty - put_back FROM put_backs "
        "WHERE closed_ms IS NULL AND created_up < ? ORDER BY id",
        (older_than_up,),
    ).fetchall()
    return [(int(i), str(t), p, str(sku), int(n)) for i, t, p, sku, n in rows]


def closed_put_backs_alerted(db: Reads, kind: str) -> list[int]:
    """Put-back lines closed since an alert of ``kind`` about them was raised."""
    rows = db.execute(
        "SELECT p.id FROM alerts a JOIN put_backs p ON a.subject = 'put-back ' || p.id "
        "WHERE a.kind = ? AND a.cleared_ms IS NULL AND p.closed_ms IS NOT NULL",
        (kind,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def holds_sku(db: Reads, location: str, sku: str) -> bool:
    """Whether the zone stocks ``sku`` at ``location`` (a row, empty or not)."""
    sql = "SELECT 1 FROM stock WHERE location = ? AND sku = ? LIMIT 1"
    return scalar(db, sql, (location, sku)) is not None


def hold_put_back(tx: Transaction, line: int, units: int) -> None:
    tx.execute("UPDATE put_backs SET in_hand = in_hand + ? WHERE id = ?", (units, line))


def settle_put_back(tx: Transaction, line: int, units: int, now: int) -> None:
    """``units`` of the line are back in a location; closed once all are."""
    tx.execute(
        "UPDATE put_backs SET put_back = put_back + ?1, in_hand = 0, "
        "closed_ms = CASE WHEN put_back + ?1 >= qty THEN ?2 END WHERE id = ?3",
        (units, now, line),
    )
