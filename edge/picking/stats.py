"""The floor's two quality figures, read from the store when asked (metrics).

- **Inventory accuracy**: of the locations counted in a window (blind counts
  and zero checks, ``count_results``), the share whose final count matched
  the box's on-hand — the field's figure (≥ 99.2 % is good practice).
- **Exception rate**: of the tasks finished in a window (done or cancelled),
  the share that needed a short, a skip, a cancel or a supervisor's action
  (``task_exceptions``, noted by :func:`note` where each happens) — the field
  wants fewer than 8 % of orders to need a person.

- **Walking per unit**: what the tours finished in a window were planned to
  walk per unit, against what the same orders would walk picked one order
  per tour on S-shape routes (recorded when each tour starts) — the saving
  a site gets from carts and exact routes.

Windows are on the box's wall clock (``at_ms``/``finished_ms``): figures for
people, not expiries. Rows more than :data:`KEEP_MS` older than the newest
are purged by the maintenance tick (:func:`purge`).
"""

from __future__ import annotations

from edge.picking.queries import Reads
from edge.store.db import Transaction

DAY_MS = 86_400_000
#: how long the rows behind the figures are kept (the 30-day window and some)
KEEP_MS = 40 * DAY_MS
EXCEPTION_KINDS = ("short", "skip", "cancel", "supervisor")


def note(tx: Transaction, task: str, kind: str, now: int) -> None:
    """``task`` needed ``kind`` (once per task and kind)."""
    tx.execute(
        "INSERT OR IGNORE INTO task_exceptions (task, kind, at_ms) VALUES (?, ?, ?)",
        (task, kind, now),
    )


def accuracy(db: Reads, since_ms: int) -> tuple[int, int]:
    """(locations counted, of which matched) since ``since_ms``."""
    row = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(matched), 0) FROM count_results WHERE at_ms >= ?",
        (since_ms,),
    ).fetchone()
    return int(row[0]), int(row[1])


def exceptions(db: Reads, since_ms: int) -> tuple[int, int]:
    """(tasks finished since ``since_ms``, of which needed an exception)."""
    row = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(EXISTS (SELECT 1 FROM task_exceptions e "
        "WHERE e.task = t.task)), 0) FROM tasks t "
        "WHERE t.kind = 'pick' AND t.state IN ('done', 'cancelled') AND t.finished_ms >= ?",
        (since_ms,),
    ).fetchone()
    return int(row[0]), int(row[1])


def exceptions_by_kind(db: Reads, since_ms: int) -> dict[str, int]:
    """Tasks that needed each kind (short, skip, cancel, supervisor) since ``since_ms``."""
    rows = db.execute(
        "SELECT kind, COUNT(*) FROM task_exceptions WHERE at_ms >= ? GROUP BY kind", (since_ms,)
    ).fetchall()
    return {str(kind): int(n) for kind, n in rows}


def walking(db: Reads, since_ms: int) -> tuple[float, float, int]:
    """(metres planned, metres one order per tour on S-shape, units) of the
    pick tours done since ``since_ms`` whose figures are known."""
    row = db.execute(
        "SELECT COALESCE(SUM(planned_m), 0), COALESCE(SUM(single_s_shape_m), 0), "
        "COALESCE(SUM(planned_units), 0) FROM tours WHERE kind = 'pick' AND state = 'done' "
        "AND ended_ms >= ? AND planned_m IS NOT NULL AND single_s_shape_m IS NOT NULL",
        (since_ms,),
    ).fetchone()
    return float(row[0]), float(row[1]), int(row[2])


def purge(tx: Transaction) -> int:
    """Drop the rows more than :data:`KEEP_MS` older than the newest of their
    table (no clock read: a box's wall clock may be years off, and these rows
    are figures, not promises); returns how many went."""
    gone = 0
    for table in ("count_results", "task_exceptions"):
        gone += tx.execute(
            f"DELETE FROM {table} WHERE at_ms < (SELECT MAX(at_ms) FROM {table}) - ?",  # noqa: S608
            (KEEP_MS,),
        ).rowcount
    return int(gone)
