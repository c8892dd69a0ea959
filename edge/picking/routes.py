"""Walking order for a tour's stops through the pick-path engine (routing-v1).

:func:`plan_walk` turns stops at ``(aisle, y)`` into a routing-v1 problem —
from the depot, or from where the picker stands when re-routing (the engine's
``start``/``end`` extensions) — and returns the visiting order plus what the PDA draws.
A layout the engine refuses (a location outside it, or on a cross aisle) must
not stop the floor: the stops are then walked aisle by aisle in S order, the
route carries no waypoints, and the problem is logged once per message.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from edge.picking import counters
from edge.routing import heuristic_length, route

log = logging.getLogger(__name__)

_logged: set[str] = set()


@dataclass(frozen=True, slots=True)
class Spot:
    id: str
    aisle: int
    y: float


def plan_walk(
    layout: dict[str, Any],
    spots: list[Spot],
    start: tuple[int, float] | None = None,
    end: tuple[int, float] | None = None,
    *,
    timed: bool = True,
) -> tuple[list[str], dict[str, Any]]:
    """Visiting order of ``spots`` (their ids) and the route the PDA shows, from
    ``start`` (default: the depot) to ``end`` (default: the depot). The
    engine's time goes to ``pickedge_route_seconds`` unless not ``timed``
    (the planner's warm-up)."""
    problem: dict[str, Any] = {
        "layout": layout,
        "picks": [{"id": s.id, "aisle": s.aisle, "y": s.y} for s in spots],
    }
    if start is not None:
        problem["start"] = {"aisle": start[0], "y": start[1]}
    if end is not None:
        problem["end"] = {"aisle": end[0], "y": end[1]}
    started = time.perf_counter()
    try:
        result = route(problem)
    except ValueError as exc:
        message = str(exc)
        if message not in _logged:
            _logged.add(message)
            log.warning("cannot route a tour, walking it in S order instead: %s", message)
        return _s_order(spots), {"length_m": None, "waypoints": [], "algorithm": "s-order"}
    if timed:
        counters.ROUTE_SECONDS.observe(time.perf_counter() - started)
    return list(result["sequence"]), {
        "length_m": result["length_m"],
        "waypoints": result["waypoints"],
        "algorithm": result["algorithm"],
    }


def _s_order(spots: list[Spot]) -> list[str]:
    def key(s: Spot) -> tuple[int, float]:
        return (s.aisle, s.y if s.aisle % 2 == 0 else -s.y)

    return [s.id for s in sorted(spots, key=key)]


def single_order_s_shape(layout: dict[str, Any], orders: list[list[Spot]]) -> float | None:
    """What ``orders`` (each its spots) would walk picked one order per tour on
    S-shape routes — the way most sites pick without a batcher or routing —,
    in metres; None where the layout has no S-shape (graph layouts) or a spot
    is off it."""
    try:
        return sum(
            heuristic_length(
                {
                    "layout": layout,
                    "picks": [{"id": s.id, "aisle": s.aisle, "y": s.y} for s in spots],
                },
                "s-shape",
            )
            for spots in orders
            if spots
        )
    except ValueError:
        return None
