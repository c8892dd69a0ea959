"""The SQL of the master-data tables: what the cloud feeds the box.

Tables: ``items``, ``item_gtins``, ``locations``, the cloud's figure in
``stock`` (lot ``''``), ``tasks``, ``task_lines``, ``task_tombstones`` and
``pickers`` (with their retention and erasure). Writers take the caller's
:class:`~edge.store.Transaction` and never commit; readers of a whole table
take the :class:`~edge.store.Store` and use a read-only connection. Nothing
here validates or decides: that is :mod:`edge.masterdata.apply` (downstream
changes), :mod:`edge.api.auth` (local pickers, badge login) and
:mod:`edge.maintenance` (retention).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edge.store import Store, Transaction

#: what an erased person's name becomes (the badge becomes ``~erased:<id>``)
ERASED = "(erased)"

#: (line, sku, qty, location) of a task line, in the cloud's order
TaskLine = tuple[str, str, int, str | None]


@dataclass(frozen=True, slots=True)
class TaskHeader:
    """A task as the cloud describes it, without its lines and state."""

    kind: str
    order_ref: str | None
    priority: int
    ship_postcode: str | None
    ship_region: str | None
    carrier: str | None

    def row(self) -> tuple[str, str | None, int, str | None, str | None, str | None]:
        return (
            self.kind,
            self.order_ref,
            self.priority,
            self.ship_postcode,
            self.ship_region,
            self.carrier,
        )


@dataclass(frozen=True, slots=True)
class StoredTask:
    state: str
    header: TaskHeader


@dataclass(frozen=True, slots=True)
class Location:
    """A location in routing-v1 terms: an aisle index and a depth in metres."""

    code: str
    aisle: int
    y: float
    zone: str


@dataclass(frozen=True, slots=True)
class PickerRow:
    id: str
    name: str
    role: str


# --------------------------------------------------------------------------- items


def upsert_item(tx: Transaction, sku: str, description: str, uom: str, serialized: bool) -> None:
    tx.execute(
        "INSERT INTO items (sku, description, uom, serialized) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (sku) DO UPDATE SET description = excluded.description, "
        "uom = excluded.uom, serialized = excluded.serialized",
        (sku, description, uom, int(serialized)),
    )


def replace_gtins(tx: Transaction, sku: str, gtins: Iterable[str]) -> None:
    """``sku``'s GTINs become exactly ``gtins``; a GTIN held by another SKU moves."""
    tx.execute("DELETE FROM item_gtins WHERE sku = ?", (sku,))
    tx.executemany(
        "INSERT INTO item_gtins (gtin, sku) VALUES (?, ?) "
        "ON CONFLICT (gtin) DO UPDATE SET sku = excluded.sku",
        [(g, sku) for g in dict.fromkeys(gtins)],
    )


# --------------------------------------------------------------------------- locations, stock


def upsert_location(tx: Transaction, code: str, aisle: int, y: float, zone: str) -> None:
    tx.execute(
        "INSERT INTO locations (code, aisle, y, zone) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (code) DO UPDATE SET aisle = excluded.aisle, y = excluded.y, "
        "zone = excluded.zone",
        (code, aisle, y, zone),
    )


def locations(store: Store) -> dict[str, Location]:
    """Every location by code."""
    return {
        r["code"]: Location(r["code"], int(r["aisle"]), float(r["y"]), r["zone"])
        for r in store.query("SELECT code, aisle, y, zone FROM locations")
    }


def written_in_current_epoch(tx: Transaction, epoch: str) -> int | None:
    """The last seq this box has written in ``epoch`` when it is the box's current
    epoch (0: none yet); None for any other epoch. (It reads the ``box`` row: the
    one question the stock rule asks of the outbox's counters.)"""
    row = tx.execute("SELECT next_seq FROM box WHERE id = 1 AND epoch = ?", (epoch,)).fetchone()
    return None if row is None else int(row[0]) - 1


def set_on_hand(tx: Transaction, sku: str, location: str, qty: int) -> None:
    """On-hand of (sku, location) in lot ``''``; ``reserved`` is kept."""
    tx.execute(
        "INSERT INTO stock (sku, location, lot, qty) VALUES (?, ?, '', ?) "
        "ON CONFLICT (sku, location, lot) DO UPDATE SET qty = excluded.qty",
        (sku, location, qty),
    )


# --------------------------------------------------------------------------- tasks


def stored_task(tx: Transaction, task: str) -> StoredTask | None:
    row = tx.execute(
        "SELECT state, kind, order_ref, priority, ship_postcode, ship_region, carrier "
        "FROM tasks WHERE task = ?",
        (task,),
    ).fetchone()
    return None if row is None else StoredTask(row[0], TaskHeader(*row[1:]))


def task_state(tx: Transaction, task: str) -> str | None:
    row = tx.execute("SELECT state FROM tasks WHERE task = ?", (task,)).fetchone()
    return None if row is None else str(row[0])


def task_order(tx: Transaction, task: str) -> str | None:
    row = tx.execute("SELECT order_ref FROM tasks WHERE task = ?", (task,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def shipment_of(tx: Transaction, order: str) -> str | None:
    """The shipment an order left in, if it was confirmed (the shipping tables:
    the one question master data asks of them, when a cancel comes too late)."""
    row = tx.execute("SELECT shipment FROM shipments WHERE order_ref = ?", (order,)).fetchone()
    return None if row is None else str(row[0])


def is_tombstoned(tx: Transaction, task: str) -> bool:
    """Whether ``task`` was finished and purged here, or cancelled before it
    came (its id is remembered)."""
    row = tx.execute("SELECT 1 FROM task_tombstones WHERE task = ?", (task,)).fetchone()
    return row is not None


def tombstone_task(tx: Transaction, task: str, *, keep_ms: int) -> None:
    """Remember ``task`` for ``keep_ms`` of box uptime from the stored uptime
    (a task the cloud cancelled before sending it); an existing tombstone is
    kept at least as long as it was."""
    tx.execute(
        "INSERT INTO task_tombstones (task, purge_at_up) "
        "SELECT ?, uptime_ms + ? FROM box WHERE id = 1 "
        "ON CONFLICT (task) DO UPDATE SET purge_at_up = max(purge_at_up, excluded.purge_at_up)",
        (task, keep_ms),
    )


def insert_task(tx: Transaction, task: str, header: TaskHeader, received_ms: int) -> None:
    tx.execute(
        "INSERT INTO tasks (task, kind, order_ref, priority, ship_postcode, ship_region, "
        "carrier, received_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (task, *header.row(), received_ms),
    )


def update_task(tx: Transaction, task: str, header: TaskHeader) -> None:
    tx.execute(
        "UPDATE tasks SET kind = ?, order_ref = ?, priority = ?, ship_postcode = ?, "
        "ship_region = ?, carrier = ? WHERE task = ?",
        (*header.row(), task),
    )


def cancel_task(tx: Transaction, task: str, finished_ms: int) -> None:
    tx.execute(
        "UPDATE tasks SET state = 'cancelled', finished_ms = ? WHERE task = ?",
        (finished_ms, task),
    )


def task_lines(tx: Transaction, task: str) -> list[TaskLine]:
    """The lines of ``task`` in the order they were stored."""
    rows = tx.execute(
        "SELECT line, sku, qty, location FROM task_lines WHERE task = ? ORDER BY rowid", (task,)
    ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2]), r[3]) for r in rows]


def replace_task_lines(tx: Transaction, task: str, lines: Iterable[TaskLine]) -> None:
    tx.execute("DELETE FROM task_lines WHERE task = ?", (task,))
    tx.executemany(
        "INSERT INTO task_lines (task, line, sku, qty, location) VALUES (?, ?, ?, ?, ?)",
        [(task, *line) for line in lines],
    )


def active_tours_on(tx: Transaction, task: str) -> list[tuple[int, str]]:
    """(tour, picker) of the active tours with a stop of ``task``, by tour.

    It reads the picking tables (``tours``, ``tour_stops``): the one question
    master data asks of them, when the cloud cancels a started task.
    """
    rows = tx.execute(
        "SELECT DISTINCT t.tour, t.picker FROM tour_stops s JOIN tours t ON t.tour = s.tour "
        "WHERE s.task = ? AND t.state = 'active' ORDER BY t.tour",
        (task,),
    ).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def stamp_finished_tasks(tx: Transaction, purge_at_up: int) -> None:
    """Tasks done or cancelled and not yet stamped go at box uptime ``purge_at_up``."""
    tx.execute(
        "UPDATE tasks SET purge_at_up = ? "
        "WHERE state IN ('done', 'cancelled') AND purge_at_up IS NULL",
        (purge_at_up,),
    )


def purge_tasks(tx: Transaction, up: int, *, tombstone_until: int) -> int:
    """Delete the tasks (with their lines) due by uptime ``up``, each leaving a
    tombstone kept until uptime ``tombstone_until``; returns how many went."""
    tx.execute(
        "INSERT OR IGNORE INTO task_tombstones (task, purge_at_up) "
        "SELECT task, ? FROM tasks WHERE purge_at_up <= ?",
        (tombstone_until, up),
    )
    return int(tx.execute("DELETE FROM tasks WHERE purge_at_up <= ?", (up,)).rowcount)


def purge_tombstones(tx: Transaction, up: int) -> int:
    """Forget the ids of purged tasks whose tombstone ran out by uptime ``up``."""
    cur = tx.execute("DELETE FROM task_tombstones WHERE purge_at_up <= ?", (up,))
    return int(cur.rowcount)


# --------------------------------------------------------------------------- pickers


def badge_holder(tx: Transaction, badge: str) -> str | None:
    """The picker holding ``badge`` (badges are unique), or None."""
    row = tx.execute("SELECT id FROM pickers WHERE badge = ?", (badge,)).fetchone()
    return None if row is None else str(row[0])


def picker_active(tx: Transaction, picker: str) -> bool | None:
    """Whether ``picker`` is active; None when there is no such picker."""
    row = tx.execute("SELECT active FROM pickers WHERE id = ?", (picker,)).fetchone()
    return None if row is None else bool(row[0])


def take_badge(tx: Transaction, picker: str) -> None:
    """``picker`` loses its badge (reissued to someone else) and is deactivated."""
    tx.execute(
        "UPDATE pickers SET badge = ?, active = 0 WHERE id = ?",
        (f"~reissued:{picker}", picker),
    )


def upsert_picker(
    tx: Transaction,
    picker: str,
    name: str,
    badge: str,
    role: str,
    *,
    active: bool,
    source: str,
) -> None:
    """Insert or update a picker; ``source`` (``cloud``/``local``) is set on insert only."""
    tx.execute(
        "INSERT INTO pickers (id, name, badge, role, active, source) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
        "badge = excluded.badge, role = excluded.role, active = excluded.active, "
        "purge_at_up = CASE WHEN excluded.active THEN NULL ELSE purge_at_up END",
        (picker, name, badge, role, int(active), source),
    )


def stamp_inactive_pickers(tx: Transaction, purge_at_up: int) -> None:
    """Inactive pickers not yet stamped go at box uptime ``purge_at_up``; a
    picker active again loses its stamp (:func:`upsert_picker` clears it)."""
    tx.execute(
        "UPDATE pickers SET purge_at_up = ? WHERE active = 0 AND purge_at_up IS NULL",
        (purge_at_up,),
    )


def purge_pickers(tx: Transaction, up: int) -> int:
    """Delete the inactive pickers due by uptime ``up`` that hold no active tour
    and no open put-back line (the ids in finished work stay: ids, not names);
    their sessions go with them. Returns how many pickers went."""
    due = (
        "SELECT id FROM pickers p WHERE active = 0 AND purge_at_up <= ? "
        "AND NOT EXISTS (SELECT 1 FROM tours t WHERE t.picker = p.id AND t.state = 'active') "
        "AND NOT EXISTS (SELECT 1 FROM put_backs b WHERE b.picker = p.id "
        "AND b.closed_ms IS NULL)"
    )
    tx.execute(f"DELETE FROM sessions WHERE picker IN ({due})", (up,))  # noqa: S608 - constant
    return int(tx.execute(f"DELETE FROM pickers WHERE id IN ({due})", (up,)).rowcount)  # noqa: S608


def erase_picker(tx: Transaction, picker: str) -> int:
    """A person's erasure: ``picker`` keeps its id (finished work refers to it)
    but its name and badge are replaced and it is deactivated; its sessions
    end. Returns the rows changed (the picker, its sessions)."""
    changed = tx.execute(
        "UPDATE pickers SET name = ?, badge = ?, active = 0 WHERE id = ?",
        (ERASED, f"~erased:{picker}", picker),
    ).rowcount
    ended = tx.execute("DELETE FROM sessions WHERE picker = ?", (picker,)).rowcount
    return int(changed) + int(ended)


def erase_order(tx: Transaction, order: str) -> int:
    """An order's erasure: its tasks' ship-to postcode and region are blanked
    (quantities, codes and states stay). Returns the tasks changed."""
    cur = tx.execute(
        "UPDATE tasks SET ship_postcode = NULL, ship_region = NULL "
        "WHERE COALESCE(order_ref, task) = ? "
        "AND (ship_postcode IS NOT NULL OR ship_region IS NOT NULL)",
        (order,),
    )
    return int(cur.rowcount)


def active_picker_by_badge(store: Store, badge: str) -> PickerRow | None:
    rows = store.query(
        "SELECT id, name, role FROM pickers WHERE badge = ? AND active = 1", (badge,)
    )
    if not rows:
        return None
    r = rows[0]
    return PickerRow(str(r["id"]), str(r["name"]), str(r["role"]))


# --------------------------------------------------------------------------- figures


def counts(store: Store) -> dict[str, int]:
    """How many items, locations, tasks and pickers the box holds."""
    row = store.query(
        "SELECT (SELECT count(*) FROM items) AS items, "
        "(SELECT count(*) FROM locations) AS locations, "
        "(SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM pickers) AS pickers"
    )[0]
    return {k: int(v) for k, v in row.items()}
