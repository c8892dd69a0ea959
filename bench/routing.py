"""Benchmark of the pick-path engine against the solvers a user would reach for.

Warm process, pinned to one core, 20 aisles, seeded random instances. Prints:

1. p50 / p99 of ``edge.routing.route()`` (validation, DP, walk and legs included)
   for 10 / 30 / 100 picks on 1 / 2 / 3 blocks; every answer is checked to be
   ``optimal: true`` with legs that re-sum to the length.
2. Side by side, on the same instances: OR-Tools routing (default local search;
   guided local search with a 50 ms budget) and LKH via elkai (1 run) — their
   solve time on a ready distance matrix (building the matrix is not counted for
   them) and their gap to our optimum.
3. The classic heuristics' extra walking distance over the optimum.
4. Graph layouts (one-way aisles): our local search vs elkai (10 runs), 30 picks.
5. Location choice: time of ``choose_locations`` for 10 / 20 / 30 lines with 1–3
   candidate locations each, and how often the choice was proven best.

Usage::

    .venv/bin/python bench/routing.py               # 40 instances per cell
    .venv/bin/python bench/routing.py --quick       # 8 instances, fewer baselines
    .venv/bin/python bench/routing.py --instances 100 --no-baselines
    .venv/bin/python bench/routing.py --clock cpu   # CPU time: a shared, busy box
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools

from edge.routing import HEURISTICS, choose_locations, heuristic_lengths, route
from edge.routing.graph import graph_matrix
from edge.routing.metric import BlockMetric
from edge.routing.model import GraphProblem, parse_problem

AISLES = 20
PITCH_M = 3.0
BLOCK_M = 20.0


def block_instance(rng: random.Random, blocks: int, picks: int) -> dict[str, Any]:
    return {
        "layout": {
            "kind": "blocks",
            "aisles": AISLES,
            "aisle_pitch_m": PITCH_M,
            "blocks": blocks,
            "block_length_m": BLOCK_M,
            "depot": {"x": rng.choice([0.0, 28.5, 57.0, -3.0]), "y": 0.0},
        },
        "picks": [
            {
                "id": f"L{i}",
                "aisle": rng.randrange(AISLES),
                "y": rng.randrange(blocks) * BLOCK_M + rng.randint(5, 195) / 10,
            }
            for i in range(picks)
        ],
    }


def graph_instance(rng: random.Random, picks: int) -> dict[str, Any]:
    """A 2-block, 20-aisle floor as a graph: every other aisle one-way, a few cross edges cut."""
    nodes = [
        {"id": f"{a}.{c}", "x": a * PITCH_M, "y": c * BLOCK_M}
        for a in range(AISLES)
        for c in range(3)
    ]
    edges: list[dict[str, Any]] = []
    for a in range(AISLES):
        for c in range(2):
            up = a % 4 == 1
            down = a % 4 == 3
            lo, hi = f"{a}.{c}", f"{a}.{c + 1}"
            edges.append(
                {"from": hi if down else lo, "to": lo if down else hi, "one_way": up or down}
            )
    for a in range(AISLES - 1):
        for c in range(3):
            if c == 1 and rng.random() < 0.3:
                continue  # a rack bridge across the middle cross aisle
            edges.append({"from": f"{a}.{c}", "to": f"{a + 1}.{c}"})
    aisle_edges = [
        i for i, e in enumerate(edges) if e["from"].split(".")[0] == e["to"].split(".")[0]
    ]
    chosen = [rng.choice(aisle_edges) for _ in range(picks)]
    return {
        "layout": {"kind": "graph", "nodes": nodes, "edges": edges, "depot": "0.0"},
        "picks": [
            {"id": f"L{i}", "edge": e, "offset_m": rng.randint(5, 195) / 10}
            for i, e in enumerate(chosen)
        ],
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


#: the clock of timed(): wall time by default; --clock cpu counts only this
#: process's CPU time, which keeps other people's load on a shared box out
CLOCK: list[Callable[[], float]] = [time.perf_counter]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median time (ms) over ``repeat`` runs, and the last result."""
    times = []
    out = None
    for _ in range(repeat):
        gc.disable()
        clock = CLOCK[0]
        t = clock()
        out = fn()
        times.append((clock() - t) * 1000.0)
        gc.enable()
    return statistics.median(times), out


def block_matrix(problem: dict[str, Any]) -> list[list[int]]:
    parsed = parse_problem(problem)
    assert not isinstance(parsed, GraphProblem)
    metric = BlockMetric(parsed.layout, parsed.blocked)
    spots = [parsed.depot] + [p.spot for p in parsed.picks]
    return [[metric.dist(a, b) for b in spots] for a in spots]


def tour_cost(matrix: list[list[int]], tour: list[int]) -> int:
    return sum(matrix[a][b] for a, b in itertools.pairwise(tour))


def elkai_solve(matrix: list[list[int]], runs: int) -> int:
    import elkai

    tour = elkai.DistanceMatrix(matrix).solve_tsp(runs=runs)
    return tour_cost(matrix, tour)


def ortools_solve(matrix: list[list[int]], guided_ms: int | None) -> int:
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    manager = pywrapcp.RoutingIndexManager(len(matrix), 1, 0)
    model = pywrapcp.RoutingModel(manager)
    transit = model.RegisterTransitMatrix(matrix)
    model.SetArcCostEvaluatorOfAllVehicles(transit)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    if guided_ms is not None:
        params.local_search_metaheuristic = (
            routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
        )
        params.time_limit.FromMilliseconds(guided_ms)
    solution = model.SolveWithParameters(params)
    index = model.Start(0)
    tour = []
    while not model.IsEnd(index):
        tour.append(manager.IndexToNode(index))
        index = solution.Value(model.NextVar(index))
    tour.append(0)
    return tour_cost(matrix, tour)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--instances", type=int, default=40, help="instances per cell (default 40)")
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed runs per instance, median kept"
    )
    parser.add_argument("--quick", action="store_true", help="8 instances, 3 runs, no GLS")
    parser.add_argument("--no-baselines", action="store_true", help="skip OR-Tools and elkai")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--core", type=int, default=None, help="pin to this CPU (default: the last)"
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time (default) or this process's CPU time (for a shared, loaded box)",
    )
    args = parser.parse_args()
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.quick:
        args.instances, args.repeat = 8, 3
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {args.core if args.core is not None else cores[-1]})

    baselines = not args.no_baselines
    print(
        f"# pick-path benchmark: {AISLES} aisles, {args.instances} instances per cell, "
        f"median of {args.repeat} runs per instance, {args.clock} clock, "
        f"python {sys.version.split()[0]}, one core"
    )
    # warm-up: the transition tables fill on first use
    rng = random.Random(args.seed)
    for blocks in (1, 2, 3):
        for _ in range(20):
            route(block_instance(rng, blocks, 30))

    header = f"{'blocks':>6} {'picks':>5} | {'route p50':>9} {'p99':>7} {'max':>7}"
    if baselines:
        header += (
            f" | {'OR-LS p50':>9} {'gap':>6} {'max':>6} | {'elkai p50':>9} {'gap':>6} {'max':>6}"
            f" {'miss':>5}"
        )
        if not args.quick:
            header += f" | {'GLS50 p50':>9} {'gap':>6}"
    print("\n## exact route() vs baselines (times in ms; gap = mean % above our optimum)\n")
    print(header)
    print("-" * len(header))
    heur_extra: dict[tuple[int, int], dict[str, list[float]]] = {}
    for blocks in (1, 2, 3):
        for picks in (10, 30, 100):
            rng = random.Random(args.seed * 1000 + blocks * 100 + picks)
            ours: list[float] = []
            ls_t: list[float] = []
            ls_gap: list[float] = []
            lk_t: list[float] = []
            lk_gap: list[float] = []
            lk_miss = 0
            gls_t: list[float] = []
            gls_gap: list[float] = []
            extra: dict[str, list[float]] = {h: [] for h in HEURISTICS}
            for _ in range(args.instances):
                problem = block_instance(rng, blocks, picks)
                t, result = timed(lambda problem=problem: route(problem), args.repeat)
                assert result["optimal"], result
                assert abs(sum(result["legs_m"]) - result["length_m"]) < 0.0005
                ours.append(t)
                best = round(result["length_m"] * 1000)
                for name, length in heuristic_lengths(problem).items():
                    extra[name].append((length * 1000 - best) / best * 100)
                if not baselines:
                    continue
                matrix = block_matrix(problem)
                t, cost = timed(lambda m=matrix: ortools_solve(m, None), max(1, args.repeat // 2))
                ls_t.append(t)
                ls_gap.append((cost - best) / best * 100)
                t, cost = timed(lambda m=matrix: elkai_solve(m, 1), max(1, args.repeat // 2))
                lk_t.append(t)
                lk_gap.append((cost - best) / best * 100)
                lk_miss += cost > best
                assert cost >= best and min(ls_gap) >= -1e-9, "a baseline beat the proven optimum"
                if not args.quick:
                    t, cost = timed(lambda m=matrix: ortools_solve(m, 50), 1)
                    gls_t.append(t)
                    gls_gap.append((cost - best) / best * 100)
            heur_extra[(blocks, picks)] = extra
            line = (
                f"{blocks:>6} {picks:>5} | {statistics.median(ours):>9.2f} "
                f"{percentile(ours, 0.99):>7.2f} {max(ours):>7.2f}"
            )
            if baselines:
                line += (
                    f" | {statistics.median(ls_t):>9.2f} {statistics.mean(ls_gap):>5.2f}% "
                    f"{max(ls_gap):>5.1f}% | {statistics.median(lk_t):>9.2f} "
                    f"{statistics.mean(lk_gap):>5.2f}% {max(lk_gap):>5.1f}% {lk_miss:>5}"
                )
                if not args.quick:
                    line += f" | {statistics.median(gls_t):>9.2f} {statistics.mean(gls_gap):>5.2f}%"
            print(line, flush=True)

    print("\n## classic heuristics: mean % walked above the optimum\n")
    head = f"{'blocks':>6} {'picks':>5} | " + " ".join(f"{h:>11}" for h in HEURISTICS)
    print(head)
    print("-" * len(head))
    for (blocks, picks), extra in heur_extra.items():
        cells = " ".join(f"{statistics.mean(extra[h]):>10.1f}%" for h in HEURISTICS)
        print(f"{blocks:>6} {picks:>5} | {cells}")

    print("\n## graph layout (2 blocks, every other aisle one-way), 30 picks\n")
    rng = random.Random(args.seed + 7)
    g_t: list[float] = []
    g_gap: list[float] = []
    g_opt = 0
    for _ in range(args.instances):
        problem = graph_instance(rng, 30)
        t, result = timed(lambda problem=problem: route(problem), max(1, args.repeat // 2))
        g_t.append(t)
        ours_len = round(result["length_m"] * 1000)
        if baselines:
            parsed = parse_problem(problem)
            assert isinstance(parsed, GraphProblem)
            full = graph_matrix(parsed)
            n = len(full) - 1
            matrix = [full[n][n:] + full[n][:n]] + [row[n:] + row[:n] for row in full[:n]]
            ref = elkai_solve(matrix, 10)
            g_gap.append((ours_len - ref) / ref * 100)
            g_opt += ours_len <= ref
    line = (
        f"route() p50 {statistics.median(g_t):.2f} ms, p99 {percentile(g_t, 0.99):.2f} ms, "
        f"max {max(g_t):.2f} ms"
    )
    if baselines:
        line += (
            f"; vs elkai (10 runs): mean gap {statistics.mean(g_gap):+.2f} %, "
            f"max {max(g_gap):+.2f} %, equal or better on {g_opt}/{len(g_gap)}"
        )
    print(line)

    print("\n## location choice (2 blocks, 1–3 candidates per line)\n")
    layout = block_instance(random.Random(0), 2, 0)["layout"]
    for lines in (10, 20, 30):
        rng = random.Random(args.seed + lines)
        times: list[float] = []
        exact = 0
        for _ in range(args.instances):
            groups = [
                {
                    "id": f"G{i}",
                    "candidates": [
                        {
                            "aisle": rng.randrange(AISLES),
                            "y": rng.randrange(2) * BLOCK_M + rng.randint(5, 195) / 10,
                        }
                        for _ in range(rng.choice([1, 1, 2, 3]))
                    ],
                }
                for i in range(lines)
            ]
            t, result = timed(lambda g=groups: choose_locations(layout, g), 1)
            times.append(t)
            exact += result["exact"]
        print(
            f"{lines:>3} lines: p50 {statistics.median(times):.1f} ms, "
            f"p99 {percentile(times, 0.99):.1f} ms, proven best on {exact}/{len(times)}"
        )


if __name__ == "__main__":
    main()
