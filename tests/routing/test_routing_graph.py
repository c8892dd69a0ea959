"""Graph layouts (one-way edges included) against an exact oracle on the split graph."""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_routing import INF, mm

from edge.routing import route

Vertex = tuple[str, Any]


def split_graph(problem: dict[str, Any]) -> dict[Vertex, list[tuple[Vertex, int]]]:
    """Every edge cut at the picks on it; one-way edges only forwards."""
    lay = problem["layout"]
    coords = {n["id"]: (n["x"], n["y"]) for n in lay["nodes"]}
    adj: dict[Vertex, list[tuple[Vertex, int]]] = {}
    for e_idx, e in enumerate(lay["edges"]):
        if e.get("length_m") is not None:
            length = mm(e["length_m"])
        else:
            (x1, y1), (x2, y2) = coords[e["from"]], coords[e["to"]]
            length = mm(math.hypot(x2 - x1, y2 - y1))
        stops: list[tuple[int, Vertex]] = [(0, ("n", e["from"])), (length, ("n", e["to"]))]
        stops += [
            (mm(p["offset_m"]), ("p", p["id"])) for p in problem["picks"] if p["edge"] == e_idx
        ]
        stops.sort(key=lambda s: (s[0], s[1][0] == "n" and s[1][1] == e["to"]))
        for (o1, a), (o2, b) in itertools.pairwise(stops):
            adj.setdefault(a, []).append((b, o2 - o1))
            if not e.get("one_way", False) or o1 == o2:  # one spot: no direction
                adj.setdefault(b, []).append((a, o2 - o1))
    return adj


def dijkstra(adj: dict[Vertex, list[tuple[Vertex, int]]], source: Vertex) -> dict[Vertex, int]:
    dist = {source: 0}
    heap = [(0, source)]
    while heap:
        d, v = heapq.heappop(heap)
        if d > dist[v]:
            continue
        for w, length in adj.get(v, []):
            if d + length < dist.get(w, INF):
                dist[w] = d + length
                heapq.heappush(heap, (d + length, w))
    return dist


def oracle(problem: dict[str, Any]) -> tuple[int, dict[Vertex, dict[Vertex, int]]]:
    adj = split_graph(problem)
    depot: Vertex = ("n", problem["layout"]["depot"])
    stops = [depot] + [("p", p["id"]) for p in problem["picks"]]
    trees = {s: dijkstra(adj, s) for s in stops}
    n = len(stops) - 1
    if n == 0:
        return 0, trees
    d = [[trees[a].get(b, INF) for b in stops] for a in stops]
    dp = [[INF] * n for _ in range(1 << n)]
    for i in range(n):
        dp[1 << i][i] = d[0][i + 1]
    for mask in range(1, 1 << n):
        for last in range(n):
            c = dp[mask][last]
            if c >= INF:
                continue
            for nxt in range(n):
                if not mask >> nxt & 1 and c + d[last + 1][nxt + 1] < dp[mask | 1 << nxt][nxt]:
                    dp[mask | 1 << nxt][nxt] = c + d[last + 1][nxt + 1]
    return min(dp[-1][i] + d[i + 1][0] for i in range(n)), trees


@st.composite
def graph_problems(draw: st.DrawFn, max_picks: int = 8) -> dict[str, Any]:
    w, h = draw(st.integers(2, 4)), draw(st.integers(2, 3))
    nodes = [{"id": f"{i}.{j}", "x": i * 4.0, "y": j * 5.0} for i in range(w) for j in range(h)]
    edges = []
    for i in range(w):
        for j in range(h):
            for di, dj in ((1, 0), (0, 1)):
                if i + di < w and j + dj < h:
                    a, b = f"{i}.{j}", f"{i + di}.{j + dj}"
                    if draw(st.booleans()):
                        a, b = b, a
                    edge: dict[str, Any] = {
                        "from": a,
                        "to": b,
                        "one_way": draw(st.integers(0, 4)) == 0,
                    }
                    if draw(st.booleans()):
                        edge["length_m"] = draw(st.sampled_from([3.0, 4.5, 7.0]))
                    edges.append(edge)
    picks = []
    for k in range(draw(st.integers(0, max_picks))):
        e = draw(st.integers(0, len(edges) - 1))
        ends = {n["id"]: n for n in nodes}
        edge = edges[e]
        a, b = ends[edge["from"]], ends[edge["to"]]
        length = edge.get("length_m") or math.hypot(a["x"] - b["x"], a["y"] - b["y"])
        picks.append(
            {"id": f"P{k}", "edge": e, "offset_m": round(length * draw(st.integers(0, 4)) / 4, 3)}
        )
    depot = draw(st.sampled_from(nodes))["id"]
    return {
        "layout": {"kind": "graph", "nodes": nodes, "edges": edges, "depot": depot},
        "picks": picks,
    }


def resum(problem: dict[str, Any], trees: dict[Vertex, dict[Vertex, int]], seq: list[str]) -> int:
    depot: Vertex = ("n", problem["layout"]["depot"])
    stops = [depot, *(("p", i) for i in seq), depot]
    return sum(trees[a][b] for a, b in itertools.pairwise(stops))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(graph_problems())
def test_small_graphs_are_solved_exactly(problem: dict[str, Any]) -> None:
    optimum, trees = oracle(problem)
    if optimum >= INF:
        with pytest.raises(ValueError, match=r"^picks\["):
            route(problem)
        return
    result = route(problem)
    assert result["optimal"] is True
    assert mm(result["length_m"]) == optimum
    assert resum(problem, trees, result["sequence"]) == optimum
    assert result["waypoints"][0] == result["waypoints"][-1]


@settings(max_examples=25, deadline=None, derandomize=True)
@given(graph_problems(max_picks=11))
def test_larger_graphs_are_near_optimal_and_consistent(problem: dict[str, Any]) -> None:
    optimum, trees = oracle(problem)
    if optimum >= INF:
        return
    result = route(problem)
    assert mm(result["length_m"]) >= optimum
    assert resum(problem, trees, result["sequence"]) == mm(result["length_m"])
    assert mm(result["length_m"]) <= optimum * 1.05


def test_one_way_edge_forces_the_long_way_round() -> None:
    nodes = [
        {"id": "D", "x": 0, "y": 0},
        {"id": "A", "x": 10, "y": 0},
        {"id": "B", "x": 10, "y": 10},
    ]
    edges = [
        {"from": "D", "to": "A", "one_way": True},
        {"from": "A", "to": "B"},
        {"from": "B", "to": "D", "length_m": 20.0, "one_way": True},
    ]
    problem = {
        "layout": {"kind": "graph", "nodes": nodes, "edges": edges, "depot": "D"},
        "picks": [{"id": "x", "edge": 0, "offset_m": 5.0}],
    }
    assert route(problem)["length_m"] == pytest.approx(10 + 10 + 20)


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"depot": "Z"}, "layout.depot"),
        ({"nodes": []}, "layout.nodes"),
        ({"edges": [{"from": "D", "to": "Q"}]}, "layout.edges[0].to"),
        ({"edges": [{"from": "D", "to": "A", "length_m": -1}]}, "layout.edges[0].length_m"),
        ({"edges": [{"from": "D", "to": "A", "one_way": "yes"}]}, "layout.edges[0].one_way"),
    ],
)
def test_bad_graph_layouts_name_the_field(patch: dict[str, Any], needle: str) -> None:
    lay = {
        "kind": "graph",
        "nodes": [{"id": "D", "x": 0, "y": 0}, {"id": "A", "x": 3, "y": 4}],
        "edges": [{"from": "D", "to": "A"}],
        "depot": "D",
        **patch,
    }
    with pytest.raises(ValueError, match="^" + needle.replace("[", r"\[").replace("]", r"\]")):
        route({"layout": lay, "picks": []})


def test_pick_offset_beyond_its_edge() -> None:
    lay = {
        "kind": "graph",
        "nodes": [{"id": "D", "x": 0, "y": 0}, {"id": "A", "x": 3, "y": 4}],
        "edges": [{"from": "D", "to": "A"}],
        "depot": "D",
    }
    with pytest.raises(ValueError, match=r"^picks\[0\]\.offset_m"):
        route({"layout": lay, "picks": [{"id": "p", "edge": 0, "offset_m": 6.0}]})
    with pytest.raises(ValueError, match=r"^picks\[0\]\.edge"):
        route({"layout": lay, "picks": [{"id": "p", "edge": 3, "offset_m": 1.0}]})
