"""The batching engine: which orders ride on the same cart (batching-v1).

Pure functions, no I/O:

- :func:`batch` — ``batch(problem: dict) -> dict`` per ``contracts/batching-v1.md``:
  orders into carts under a units and an orders (totes) capacity, never split,
  the total walk as short as the search finds within ``time_limit_ms``, every
  cart's route exact (:func:`edge.routing.route`).
- :func:`baselines` — first-come-first-served carts (S-shape and exact routes)
  and one order per tour, on the same orders, for comparisons.

Bad problems raise :class:`BatchingProblemError` (a ``ValueError``) naming the
field. See ``docs/batching.md``.
"""

from edge.batching.engine import baselines, batch
from edge.batching.model import BatchingProblemError

__all__ = ["BatchingProblemError", "baselines", "batch"]
