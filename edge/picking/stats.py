"""The floor's two quality figures, read from the store when asked (metrics).

- **Inventory accuracy**: of the locations counted in a window (blind counts
  and zero checks, ``count_results``), the share whose final count matched
  the box's on-hand — the field's figure (≥ 99.2 % is good practice).
- **Exception rate**: of the tasks finished in a window (done or cancelled),
  the share that needed a short, a skip, a cancel or a supervisor's action
  (``task_exceptions``, noted by :func:`note` where each happens) — the field
  wants fewer than 8 % of orders to need a person.

Windows are on the box's wall clock (``at_ms``/``finished_ms``): figures for
people, not expiries. Rows older than :data:`KEEP_MS` are purged by the
maintenance tick (:func:`purge`).
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


def purge(tx: Transaction, now: int) -> int:
    """Drop the rows older than :data:`KEEP_MS`; returns how many went."""
    gone = tx.execute("DELETE FROM count_results WHERE at_ms < ?", (now - KEEP_MS,)).rowcount
    gone += tx.execute("DELETE FROM task_exceptions WHERE at_ms < ?", (now - KEEP_MS,)).rowcount
    return int(gone)
