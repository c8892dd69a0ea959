"""``batch(problem) -> answer``: the batching-v1 entry point, and its baselines.

Validates the problem (``ValueError`` naming the field), builds a route coster —
the memoised exact DP of :mod:`edge.batching.cost` on conventional layouts of up
to :data:`FAST_MAX_BLOCKS` blocks, :func:`edge.routing.route` itself (memoised)
elsewhere — runs the anytime search of :mod:`edge.batching.search` until the
budget (less the time the final routes will take) is spent, and routes every
batch with :func:`edge.routing.route`. Pure, no I/O, safe from many threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge.batching.cost import BlockCoster, Spot
from edge.batching.model import BatchProblem, parse_batch_problem
from edge.batching.search import Budget, Search, Solution
from edge.routing import heuristic_length, route
from edge.routing.model import BlockProblem, to_m, to_mm

#: conventional layouts up to this many blocks get the fast coster (the DP is
#: written out per number of cross aisles; 4 blocks would take ~0.6 s to build)
FAST_MAX_BLOCKS = 3


class _RouteCoster:
    """Any layout: the length route() returns, memoised per set of orders."""

    def __init__(self, problem: BatchProblem) -> None:
        self.problem = problem
        self.memo: dict[int, int] = {}

    def cost(self, mask: int) -> int:
        found = self.memo.get(mask)
        if found is None:
            orders = [i for i in range(mask.bit_length()) if mask >> i & 1]
            found = to_mm(route(self.problem.route_problem(orders))["length_m"])
            self.memo[mask] = found
        return found


Overlap = Callable[[int, int], int]


def coster(problem: BatchProblem) -> tuple[Callable[[int], int], list[int]]:
    """The cost function (orders bitmask -> mm) and a per-order aisle bitmask proxy."""
    cost, aisles, _ = pricing(problem)
    return cost, aisles


def pricing(problem: BatchProblem) -> tuple[Callable[[int], int], list[int], Overlap | None]:
    """As :func:`coster`, plus a cheap pair-overlap proxy where the layout has one."""
    routing = problem.routing
    if isinstance(routing, BlockProblem) and routing.layout.blocks <= FAST_MAX_BLOCKS:
        lay = routing.layout
        spots: list[list[Spot]] = []
        k = 0
        for order in problem.orders:
            mine = []
            for _ in order.picks:
                s = routing.picks[k].spot
                k += 1
                assert s.aisle is not None and s.block is not None
                mine.append(Spot(s.aisle, s.block, s.y - s.block * lay.block_length))
            spots.append(mine)
        fast = BlockCoster(
            aisles=lay.aisles,
            pitch=lay.pitch,
            blocks=lay.blocks,
            block_length=lay.block_length,
            depot_x=lay.depot_x,
            spots=spots,
        )
        return fast.cost, fast.order_aisles, fast.overlap
    slow = _RouteCoster(problem)
    aisles = []
    for order in problem.orders:
        bits = 0
        for p in order.picks:
            key = p.get("aisle", p.get("edge", 0))
            bits |= 1 << (key if isinstance(key, int) and 0 <= key < 4096 else 0)
        aisles.append(bits)
    return slow.cost, aisles, None


def batch(problem: dict[str, Any]) -> dict[str, Any]:
    """Batch and route a batching-v1 problem; see ``contracts/batching-v1.md``."""
    started = time.perf_counter()
    parsed = parse_batch_problem(problem)
    cost, aisles, overlap = pricing(parsed)
    n = len(parsed.orders)
    singles = [cost(1 << i) for i in range(n)]
    search = Search(
        units=[o.units for o in parsed.orders],
        aisles=aisles,
        overlap=overlap,
        far=singles,
        max_units=parsed.max_units,
        max_orders=parsed.max_orders,
        cost=cost,
        seed=parsed.seed,
    )
    deadline = None
    if parsed.time_limit_ms is not None:
        # leave time for routing every batch at the end: time one route now (the
        # faster of two: the first may pay one-off warm-up costs, and a busy
        # box may preempt either)
        per_route = 0.0
        if n:
            largest = parsed.route_problem(
                [max(range(n), key=lambda i: len(parsed.orders[i].picks))]
            )
            timings = []
            for _ in range(2):
                t0 = time.perf_counter()
                route(largest)
                timings.append(time.perf_counter() - t0)
            per_route = min(timings)
        expected = len(search.first_fit().masks) if n else 0
        reserve = 1.5 * per_route * expected + 0.002
        deadline = started + parsed.time_limit_ms / 1000.0 - reserve
    budget = Budget(deadline=deadline, max_iterations=parsed.max_iterations)
    if n:
        best, how = search.run(budget)
    else:
        best, how = Solution(), "empty"
    batches = []
    total = 0
    for orders in best.batches():
        routed = route(parsed.route_problem(orders))
        length = to_mm(routed["length_m"])
        assert length == cost(sum(1 << i for i in orders)), "coster and route() disagree"
        total += length
        batches.append(
            {
                "orders": [parsed.orders[i].id for i in orders],
                "units": sum(parsed.orders[i].units for i in orders),
                "route": routed,
            }
        )
    return {
        "batches": batches,
        "total_length_m": to_m(total),
        "single_order_length_m": to_m(sum(singles)),
        "algorithm": f"seed+ils ({how}, {budget.iterations} iterations)",
        "iterations": budget.iterations,
        "elapsed_ms": round((time.perf_counter() - started) * 1000.0, 3),
    }


def baselines(problem: dict[str, Any]) -> dict[str, float | None]:
    """What a site does today, on the same orders (metres; None where undefined).

    - ``fcfs_s_shape_m``: first come first served (orders in the given sequence,
      a new cart when the next order does not fit), each cart on an S-shape route;
    - ``fcfs_exact_m``: the same carts on optimal routes;
    - ``single_s_shape_m`` / ``single_exact_m``: one order per tour.

    S-shape is defined for conventional layouts only (None on graphs).
    """
    parsed = parse_batch_problem(problem)
    cost, aisles = coster(parsed)
    n = len(parsed.orders)
    search = Search(
        units=[o.units for o in parsed.orders],
        aisles=aisles,
        far=[0] * n,
        max_units=parsed.max_units,
        max_orders=parsed.max_orders,
        cost=cost,
        seed=0,
    )
    fcfs = search.first_fit().batches() if n else []
    blocks = isinstance(parsed.routing, BlockProblem)

    def s_shape(orders: list[int]) -> float:
        return heuristic_length(parsed.route_problem(orders), "s-shape")

    return {
        "fcfs_s_shape_m": sum(s_shape(b) for b in fcfs) if blocks else None,
        "fcfs_exact_m": to_m(sum(cost(sum(1 << i for i in b)) for b in fcfs)),
        "single_s_shape_m": sum(s_shape([i]) for i in range(n)) if blocks else None,
        "single_exact_m": to_m(sum(cost(1 << i) for i in range(n))),
    }
