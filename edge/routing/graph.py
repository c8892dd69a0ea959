"""Routes on general graph layouts (``"kind": "graph"``), one-way edges included.

Shortest paths by Dijkstra from the nodes a pick can leave by (the adjacency
is memoised per layout: the same floor is routed many times a minute), a pick-to-pick distance
matrix that respects one-way edges, then :func:`~edge.routing.localsearch.solve_path`:
exact Held–Karp for a handful of picks (``optimal: true``), bounded local search
beyond (``optimal: false``). Returns the routing-v1 route dict. Pure.
"""

from __future__ import annotations

import heapq
import itertools
from functools import lru_cache
from typing import Any

from edge.routing.localsearch import solve_path
from edge.routing.metric import UNREACHABLE
from edge.routing.model import GraphLayout, GraphProblem, RoutingProblemError, to_m

Tree = tuple[dict[int, int], dict[int, int]]  # distance, predecessor per node


@lru_cache(maxsize=4096)
def _adjacency(layout: GraphLayout) -> tuple[tuple[tuple[int, int], ...], ...]:
    adj: list[list[tuple[int, int]]] = [[] for _ in layout.node_ids]
    for e in layout.edges:
        adj[e.u].append((e.v, e.length))
        if not e.one_way:
            adj[e.v].append((e.u, e.length))
    return tuple(tuple(a) for a in adj)


def _tree(adj: tuple[tuple[tuple[int, int], ...], ...], source: int) -> Tree:
    dist = {source: 0}
    pred: dict[int, int] = {}
    heap = [(0, source)]
    while heap:
        d, v = heapq.heappop(heap)
        if d > dist[v]:
            continue
        for w, length in adj[v]:
            nd = d + length
            if nd < dist.get(w, UNREACHABLE):
                dist[w] = nd
                pred[w] = v
                heapq.heappush(heap, (nd, w))
    return dist, pred


class _Place:
    """A point of the graph: a node, or a pick at ``offset`` along an edge."""

    __slots__ = ("edge", "entries", "exits", "offset")

    def __init__(self, layout: GraphLayout, edge: int | None, offset: int, node: int = -1) -> None:
        self.edge = edge
        self.offset = offset
        if edge is None:
            self.exits: list[tuple[int, int]] = [(node, 0)]
            self.entries: list[tuple[int, int]] = [(node, 0)]
            return
        e = layout.edges[edge]
        self.exits = [(e.v, e.length - offset)]
        self.entries = [(e.u, offset)]
        if not e.one_way:
            self.exits.append((e.u, offset))
            self.entries.append((e.v, e.length - offset))
        else:
            # a pick at an end of a one-way edge stands on that node: any direction
            if offset == 0:
                self.exits.append((e.u, 0))
            if offset == e.length:
                self.entries.append((e.v, 0))


def _direct(layout: GraphLayout, a: _Place, b: _Place) -> int:
    if a.edge is None or a.edge != b.edge:
        return UNREACHABLE
    if layout.edges[a.edge].one_way:
        return b.offset - a.offset if b.offset >= a.offset else UNREACHABLE
    return abs(a.offset - b.offset)


class _Paths:
    """Shortest-path trees of one call, grown on demand from the cached adjacency."""

    __slots__ = ("adj", "layout", "trees")

    def __init__(self, layout: GraphLayout) -> None:
        self.layout = layout
        self.adj = _adjacency(layout)  # one hash of the layout per call
        self.trees: dict[int, Tree] = {}

    def tree(self, source: int) -> Tree:
        tree = self.trees.get(source)
        if tree is None:
            tree = self.trees[source] = _tree(self.adj, source)
        return tree


def _dist(paths: _Paths, a: _Place, b: _Place) -> tuple[int, int, int]:
    """(distance, exit node of a, entry node of b); nodes -1 for a direct hop."""
    best, bx, by = _direct(paths.layout, a, b), -1, -1
    for x, cx in a.exits:
        dist = paths.tree(x)[0]
        for y, cy in b.entries:
            d = cx + dist.get(y, UNREACHABLE) + cy
            if d < best:
                best, bx, by = d, x, y
    return best, bx, by


def _xy(layout: GraphLayout, place: _Place, node: int = -1) -> tuple[float, float]:
    if place.edge is None:
        return layout.coords[node]
    e = layout.edges[place.edge]
    (x1, y1), (x2, y2) = layout.coords[e.u], layout.coords[e.v]
    f = place.offset / e.length
    return x1 + (x2 - x1) * f, y1 + (y2 - y1) * f


def route_graph(problem: GraphProblem, budget_ms: float) -> dict[str, Any]:
    lay = problem.layout
    places = [_Place(lay, p.edge, p.offset) for p in problem.picks]
    depot = _Place(lay, None, 0, lay.depot)
    everything = [*places, depot]
    n = len(places)
    paths = _Paths(lay)
    matrix = [[_dist(paths, a, b)[0] if a is not b else 0 for b in everything] for a in everything]
    for i in range(n):
        if matrix[n][i] >= UNREACHABLE or matrix[i][n] >= UNREACHABLE:
            raise RoutingProblemError(f"picks[{i}]: cannot be reached from the depot and back")
    order, optimal = solve_path(matrix, n, n, n, budget_ms=budget_ms)
    seq = [n, *order, n]
    legs = [matrix[a][b] for a, b in itertools.pairwise(seq)]
    walk: list[tuple[float, float]] = [lay.coords[lay.depot]]
    for a, b in itertools.pairwise(seq):
        pa, pb = everything[a], everything[b]
        _, x, y = _dist(paths, pa, pb) if a != b else (0, -1, -1)
        if x >= 0:
            pred = paths.tree(x)[1]
            nodes = [y]
            while nodes[-1] != x:
                nodes.append(pred[nodes[-1]])
            walk.extend(lay.coords[v] for v in reversed(nodes))
        walk.append(_xy(lay, pb, lay.depot))
    pts: list[list[float]] = []
    for wx, wy in walk:
        p = [round(wx, 3), round(wy, 3)]
        if not pts or pts[-1] != p:
            pts.append(p)
    return {
        "length_m": to_m(sum(legs)),
        "sequence": [problem.picks[i].id for i in order],
        "waypoints": pts,
        "algorithm": "held-karp" if optimal else "local-search",
        "optimal": optimal,
        "legs_m": [to_m(d) for d in legs],
    }


def graph_matrix(problem: GraphProblem) -> list[list[int]]:
    """Distances (mm) between picks 0..n-1 and the depot (index n); for benchmarks."""
    lay = problem.layout
    places = [_Place(lay, p.edge, p.offset) for p in problem.picks]
    everything = [*places, _Place(lay, None, 0, lay.depot)]
    paths = _Paths(lay)
    return [[_dist(paths, a, b)[0] if a is not b else 0 for b in everything] for a in everything]
