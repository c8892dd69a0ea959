"""``route(problem) -> route``: the routing-v1 entry point.

Validates the problem (``ValueError`` naming the field), picks the solver —
the exact column DP for conventional layouts with up to MAX_EXACT_BLOCKS blocks,
the bounded local search (or Held–Karp when small) for graph layouts and larger
block counts — and returns the route dict of routing-v1 plus ``legs_m``: the
shortest-path length of each leg start → first pick → … → end, whose sum is
``length_m`` to the millimetre. Pure, no I/O, safe from many threads.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from edge.routing import graph as graph_solver
from edge.routing.blocks import solve_blocks
from edge.routing.localsearch import solve_path
from edge.routing.metric import BlockMetric
from edge.routing.model import (
    MAX_EXACT_BLOCKS,
    BlockProblem,
    GraphProblem,
    Point,
    parse_problem,
    to_m,
)

#: time budget of the local search when no exact algorithm applies
DEFAULT_BUDGET_MS = 11.0


def route(problem: dict[str, Any]) -> dict[str, Any]:
    """Route a routing-v1 problem; see ``contracts/routing-v1.md`` and ``docs/routing.md``."""
    started = time.perf_counter()
    parsed = parse_problem(problem)
    if isinstance(parsed, GraphProblem):
        out = graph_solver.route_graph(parsed, budget_ms=DEFAULT_BUDGET_MS)
    else:
        out = route_blocks(parsed)
    out["elapsed_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
    return out


def route_blocks(problem: BlockProblem, budget_ms: float = DEFAULT_BUDGET_MS) -> dict[str, Any]:
    metric = BlockMetric(problem.layout, problem.blocked)
    if problem.layout.blocks <= MAX_EXACT_BLOCKS:
        sol = solve_blocks(problem)
        order = list(sol.sequence)
        legs = block_legs(problem, metric, order)
        assert sum(legs) == sol.length, "walk and re-summed legs disagree"
        algorithm = (
            "ratliff-rosenthal" if problem.layout.blocks == 1 else "pansart-catusse-cambazard"
        )
        return _result(
            problem, order=order, legs=legs, walk=list(sol.walk), algorithm=algorithm, optimal=True
        )
    spots = [p.spot for p in problem.picks]
    n = len(spots)
    everything = [*spots, problem.start, problem.end]
    matrix = [[metric.dist(a, b) for b in everything] for a in everything]
    order, optimal = solve_path(matrix, n, n, n + 1, budget_ms=budget_ms)
    legs = block_legs(problem, metric, order)
    walk = block_polyline(problem, metric, [problem.start, *(spots[i] for i in order), problem.end])
    algorithm = "held-karp" if optimal else "local-search"
    return _result(problem, order=order, legs=legs, walk=walk, algorithm=algorithm, optimal=optimal)


def block_legs(problem: BlockProblem, metric: BlockMetric, order: list[int]) -> list[int]:
    """Shortest-path length of every leg of start → picks in ``order`` → end."""
    spots = [problem.start, *(problem.picks[i].spot for i in order), problem.end]
    return [metric.dist(a, b) for a, b in itertools.pairwise(spots)]


def block_polyline(
    problem: BlockProblem, metric: BlockMetric, spots: list[Point]
) -> list[tuple[int, int]]:
    """A drawable walk through ``spots`` along shortest paths (where no tour subgraph exists)."""
    out: list[tuple[int, int]] = [(spots[0].x, spots[0].y)]
    lay = problem.layout
    for a, b in itertools.pairwise(spots):
        best = metric.dist(a, b)
        if (a.block is not None and a.block == b.block and a.x == b.x) or (
            a.cross is not None and a.cross == b.cross and abs(a.x - b.x) == best
        ):
            out.append((b.x, b.y))
            continue
        done = False
        for na, da in metric.exits(a):
            for nb, db in metric.exits(b):
                if da + metric.node_dist(na, nb) + db == best and not done:
                    ya, yb = na[1] * lay.block_length, nb[1] * lay.block_length
                    xa, xb = lay.aisle_x(na[0]), lay.aisle_x(nb[0])
                    # L-shaped hop between the two nodes; exact when nothing is blocked
                    out.extend([(xa, ya), (xa, yb) if not problem.blocked else (xb, ya), (xb, yb)])
                    done = True
        out.append((b.x, b.y))
    return out


def compress(walk: list[tuple[int, int]]) -> list[list[float]]:
    """Drop repeated points and points a straight line passes through; keep turns and U-turns."""
    pts: list[tuple[int, int]] = []
    for p in walk:
        if not pts or pts[-1] != p:
            pts.append(p)
    out: list[tuple[int, int]] = []
    for i, p in enumerate(pts):
        if 0 < i < len(pts) - 1:
            a, c = out[-1], pts[i + 1]
            straight = (a[0] == p[0] == c[0] and min(a[1], c[1]) < p[1] < max(a[1], c[1])) or (
                a[1] == p[1] == c[1] and min(a[0], c[0]) < p[0] < max(a[0], c[0])
            )
            if straight:
                continue
        out.append(p)
    return [[to_m(x), to_m(y)] for x, y in out]


def _result(
    problem: BlockProblem,
    *,
    order: list[int],
    legs: list[int],
    walk: list[tuple[int, int]],
    algorithm: str,
    optimal: bool,
) -> dict[str, Any]:
    return {
        "length_m": to_m(sum(legs)),
        "sequence": [problem.picks[i].id for i in order],
        "waypoints": compress(walk),
        "algorithm": algorithm,
        "optimal": optimal,
        "legs_m": [to_m(d) for d in legs],
    }
