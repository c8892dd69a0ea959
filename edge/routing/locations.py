"""Location choice for scattered storage: which stocked location serves each line.

``choose_locations(layout, groups, *, start=None, end=None, blocked=None)`` takes a
``blocks`` layout (routing-v1) and one group per order line::

    groups = [{"id": "line-1", "candidates": [{"aisle": 3, "y": 12.5}, {"aisle": 8, "y": 4.0}]},
              {"id": "line-2", "candidates": [{"aisle": 5, "y": 31.0}]}]
    # optional: start, end, blocked as in route(); budget_ms (default 40, None = none)

and returns::

    {"choice": [1, 0],            # index of the chosen candidate, per group
     "picks": [...],              # routing-v1 picks built from the choice (id = group id)
     "route": {...},              # the exact route over them (route() output)
     "exact": true,               # the choice is proven best over all combinations
     "evaluations": 7}            # exact routings done

How: the combination nearest the depot (every group at its candidate with the
shortest walk from the start) is routed first and is never beaten by the answer.
When the number of combinations is at most EXACT_COMBINATIONS, a depth-first
branch and bound fixes one group at a time, bounding a partial choice by the exact
route over the picks fixed so far (a route over fewer points is never longer), so
the result is the best combination. Beyond that, or when the search would exceed
MAX_EVALUATIONS routings or ``budget_ms``, it improves the best choice so far one
group at a time (each move priced by an exact route) until no single change helps
or the budget is spent, and says ``"exact": false``. Errors name the field
(``groups[2].candidates[1].y: …``). Pure.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from edge.routing.blocks import solve_blocks
from edge.routing.engine import route_blocks
from edge.routing.metric import BlockMetric
from edge.routing.model import (
    BlockPick,
    BlockProblem,
    PickId,
    Point,
    RoutingProblemError,
    parse_block_problem,
    pick_spot,
    to_m,
)

#: combinations up to which the choice is proven optimal by branch and bound
EXACT_COMBINATIONS = 4096
#: exact routings the search may spend in all
MAX_EVALUATIONS = 200
#: default time budget of one call; the answer is never worse than nearest-to-depot
DEFAULT_BUDGET_MS = 40.0


def choose_locations(
    layout: dict[str, Any],
    groups: list[dict[str, Any]],
    *,
    start: dict[str, Any] | None = None,
    end: dict[str, Any] | None = None,
    blocked: list[dict[str, Any]] | None = None,
    budget_ms: float | None = DEFAULT_BUDGET_MS,
) -> dict[str, Any]:
    """Choose one candidate location per group so that the route is short; see module doc."""
    started = time.perf_counter()
    deadline = started + budget_ms / 1000.0 if budget_ms is not None else float("inf")
    if not isinstance(layout, dict) or layout.get("kind") != "blocks":
        raise RoutingProblemError("layout.kind: location choice needs a 'blocks' layout")
    raw: dict[str, Any] = {"layout": layout, "picks": []}
    for key, value in (("start", start), ("end", end), ("blocked", blocked)):
        if value is not None:
            raw[key] = value
    base = parse_block_problem(raw)
    cands = _candidates(base, groups)
    ids = [gid for gid, _ in cands]
    metric = BlockMetric(base.layout, base.blocked)

    cache: dict[tuple[int, ...], int] = {}

    def length(choice: tuple[int, ...], upto: int) -> int:
        """Exact route length over the first ``upto`` groups of ``order``."""
        key = choice[:upto]
        if key not in cache:
            picks = tuple(
                BlockPick(ids[g], cands[g][1][c]) for g, c in zip(order, key, strict=False)
            )
            cache[key] = solve_blocks(dataclasses.replace(base, picks=picks)).length
        return cache[key]

    # single-candidate groups first (they are fixed), then the most constrained
    order = sorted(range(len(cands)), key=lambda g: (len(cands[g][1]), g))
    nearest = tuple(_nearest(metric, base.start, cands[g][1]) for g in order)
    n = len(order)
    best, best_len = nearest, length(nearest, n)
    combos = math.prod(len(cands[g][1]) for g in order)
    exact = combos == 1
    if combos > 1 and combos <= EXACT_COMBINATIONS:
        exact = True
        stack: list[tuple[int, ...]] = [()]
        while stack:
            if len(cache) >= MAX_EVALUATIONS or time.perf_counter() > deadline:
                exact = False
                break
            partial = stack.pop()
            k = len(partial)
            if k and length(partial, k) >= best_len:
                continue  # adding picks never shortens the route
            if k == n:
                best, best_len = partial, length(partial, n)
                continue
            # the nearest candidate goes on the stack last so it is explored first
            alts = [c for c in range(len(cands[order[k]][1])) if c != nearest[k]]
            stack.extend((*partial, c) for c in [*alts, nearest[k]])
    if not exact:
        improved = True
        while improved and len(cache) < MAX_EVALUATIONS and time.perf_counter() <= deadline:
            improved = False
            for k in range(n):
                for c in range(len(cands[order[k]][1])):
                    trial = (*best[:k], c, *best[k + 1 :])
                    if trial != best and length(trial, n) < best_len:
                        best, best_len, improved = trial, length(trial, n), True
    choice = [0] * n
    for k, g in enumerate(order):
        choice[g] = best[k]
    picks = tuple(BlockPick(ids[g], cands[g][1][choice[g]]) for g in range(n))
    result = route_blocks(dataclasses.replace(base, picks=picks))
    result["elapsed_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
    return {
        "choice": choice,
        "picks": [{"id": p.id, "aisle": p.spot.aisle, "y": to_m(p.spot.y)} for p in picks],
        "route": result,
        "exact": exact,
        "evaluations": len(cache),
    }


def _nearest(metric: BlockMetric, start: Point, spots: list[Point]) -> int:
    dists = [metric.dist(start, s) for s in spots]
    return dists.index(min(dists))


def _candidates(base: BlockProblem, groups: Any) -> list[tuple[PickId, list[Point]]]:
    if not isinstance(groups, list):
        raise RoutingProblemError("groups: must be a list of {id, candidates}")
    out: list[tuple[PickId, list[Point]]] = []
    seen: set[PickId] = set()
    for i, group in enumerate(groups):
        path = f"groups[{i}]"
        if not isinstance(group, dict):
            raise RoutingProblemError(f"{path}: must be an object")
        gid = group.get("id")
        if isinstance(gid, bool) or not isinstance(gid, str | int):
            raise RoutingProblemError(f"{path}.id: must be a string, got {gid!r}")
        if gid in seen:
            raise RoutingProblemError(f"{path}.id: duplicate id {gid!r}")
        seen.add(gid)
        raw = group.get("candidates")
        if not isinstance(raw, list) or not raw:
            raise RoutingProblemError(f"{path}.candidates: must be a non-empty list")
        spots: list[Point] = []
        for j, cand in enumerate(raw):
            cpath = f"{path}.candidates[{j}]"
            if not isinstance(cand, dict):
                raise RoutingProblemError(f"{cpath}: must be an object")
            spot = pick_spot(base.layout, cand, cpath)
            if (spot.aisle, spot.block) in base.blocked:
                raise RoutingProblemError(f"{cpath}: lies in a blocked sub-aisle")
            spots.append(spot)
        out.append((gid, spots))
    return out
