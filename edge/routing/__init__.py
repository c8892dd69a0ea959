"""The pick-path engine: shortest walks through a pick list (routing-v1).

Pure functions, no I/O:

- :func:`route` — ``route(problem: dict) -> dict`` per ``contracts/routing-v1.md``
  (plus the extensions ``start``, ``end`` and ``blocked`` of ``docs/routing.md``);
  exact on conventional layouts, bounded local search on graph layouts.
- :func:`heuristic_length` / :data:`HEURISTICS` — the classic baselines (S-shape,
  return, midpoint, largest gap, combined) for the "walk saved" figure.
- :func:`choose_locations` — which of several stocked locations to pick each line
  from so that the route is short.

Bad problems raise :class:`RoutingProblemError` (a ``ValueError``) naming the field.
"""

from edge.routing.engine import route
from edge.routing.heuristics import (
    HEURISTICS,
    heuristic_length,
    heuristic_lengths,
    heuristic_sequence,
)
from edge.routing.locations import choose_locations
from edge.routing.model import RoutingProblemError, parse_problem

__all__ = [
    "HEURISTICS",
    "RoutingProblemError",
    "choose_locations",
    "heuristic_length",
    "heuristic_lengths",
    "heuristic_sequence",
    "parse_problem",
    "route",
]
