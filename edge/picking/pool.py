"""The pool of open pick tasks a cart proposal chooses from, read on a snapshot.

Input: a read connection (a reader's WAL snapshot or the write transaction),
the zone, how many tasks at most, and the time and longest wait that make a
task overdue. Output: :class:`edge.batching.online.PoolTask` rows — open pick
tasks with their units still to pick and, for each open line, the routing-v1
``(aisle, y)`` of its *likely* location: the first stock row of its SKU with
unreserved units in the zone, by FEFO (earliest expiry first, rows without an
expiry last, then location and lot). The tour start allocates for real
(:mod:`edge.picking.allocation`); this is only where the batcher expects the
picker to walk. A line whose SKU has no such stock adds no pick (the tour
start reports it). Tasks with nothing left to pick are left out.

Which tasks when there are more than ``limit``: the most urgent in exactly
:func:`edge.batching.online.urgency`'s order — overdue ones (received more
than ``max_wait_ms`` before ``now_ms``) first, oldest first, then by priority,
age and id — so an old low-priority task is never cut off by a limit on
priority. Three set-based queries whatever the pool's size. Never writes.
"""

from __future__ import annotations

from typing import Any

from edge.batching.online import PoolTask
from edge.picking.queries import Reads

# The urgency order of edge.batching.online.urgency, in SQL (:cut: received
# before it is overdue).
_CHOSEN = """
    SELECT task, priority, received_ms FROM tasks
    WHERE state = 'open' AND kind = 'pick'
    ORDER BY received_ms < :cut DESC,
             CASE WHEN received_ms < :cut THEN 0 ELSE -priority END,
             received_ms, task
    LIMIT :limit
"""

_LINES = f"""
    WITH chosen AS MATERIALIZED ({_CHOSEN})
    SELECT l.task, l.sku, l.qty - l.picked
    FROM task_lines l JOIN chosen c ON c.task = l.task
    WHERE l.state IN ('open', 'assigned') AND l.qty > l.picked
    ORDER BY l.task, l.line
"""  # noqa: S608 - constant SQL

# The first stock row with unreserved units in the zone, by FEFO, of every SKU
# the chosen tasks' open lines need. (Joined to the lines in Python: SQLite
# would scan this window's rows once per line.)
_FIRSTS = f"""
    WITH chosen AS MATERIALIZED ({_CHOSEN}),
    skus AS MATERIALIZED (
        SELECT DISTINCT l.sku FROM task_lines l JOIN chosen c ON c.task = l.task
        WHERE l.state IN ('open', 'assigned') AND l.qty > l.picked
    ),
    ranked AS (
        SELECT s.sku, loc.aisle, loc.y,
               ROW_NUMBER() OVER (
                   PARTITION BY s.sku
                   ORDER BY s.expiry IS NULL, s.expiry, s.location, s.lot
               ) AS rn
        FROM skus k JOIN stock s ON s.sku = k.sku
        JOIN locations loc ON loc.code = s.location
        WHERE s.qty - s.reserved > 0 AND (:zone IS NULL OR loc.zone = :zone)
    )
    SELECT sku, aisle, y FROM ranked WHERE rn = 1
"""  # noqa: S608 - constant SQL


def read_pool(
    db: Reads, *, zone: str | None, limit: int, now_ms: int, max_wait_ms: int
) -> list[PoolTask]:
    """The ``limit`` most urgent open pick tasks, most urgent first (see the module)."""
    params: dict[str, Any] = {"cut": now_ms - max_wait_ms, "limit": limit, "zone": zone}
    chosen = db.execute(_CHOSEN, params).fetchall()
    first = {sku: (int(aisle), float(y)) for sku, aisle, y in db.execute(_FIRSTS, params)}
    units: dict[str, int] = {}
    picks: dict[str, list[tuple[int, float]]] = {}
    for task, sku, n in db.execute(_LINES, params):
        units[task] = units.get(task, 0) + int(n)
        spots = picks.setdefault(task, [])
        if sku in first:
            spots.append(first[sku])
    return [
        PoolTask(str(task), int(priority), int(received), units[task], tuple(picks[task]))
        for task, priority, received in chosen
        if units.get(task, 0) > 0
    ]
