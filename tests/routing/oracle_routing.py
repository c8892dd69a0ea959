"""An exact oracle for conventional-layout routing problems, independent of edge.routing.

It builds the walkable grid explicitly from the raw problem dict (every aisle cut at
every pick, start and end, every cross aisle cut at every column), runs Dijkstra
from every required point and solves the open path start → all picks → end by
Held–Karp. Slow, simple, and shares no code with the engine.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

INF = 1 << 60
Point = tuple[int, int]


def mm(v: float) -> int:
    return round(v * 1000)


class Grid:
    def __init__(self, problem: dict[str, Any]) -> None:
        lay = problem["layout"]
        self.aisles = lay["aisles"]
        self.pitch = mm(lay["aisle_pitch_m"])
        self.blocks = lay["blocks"]
        self.length = mm(lay["block_length_m"])
        self.depot: Point = (mm(lay["depot"]["x"]), 0)
        blocked = {(b["aisle"], b["block"]) for b in problem.get("blocked", [])}
        self.picks = [(p["id"], (p["aisle"] * self.pitch, mm(p["y"]))) for p in problem["picks"]]
        self.start = self._point(problem.get("start"))
        self.end = self._point(problem.get("end"))
        special = [xy for _, xy in self.picks] + [self.start, self.end, self.depot]
        aisle_xs = [i * self.pitch for i in range(self.aisles)]
        xs = sorted(set(aisle_xs) | {x for x, _ in special})
        self.adj: dict[Point, list[tuple[Point, int]]] = {}
        for c in range(self.blocks + 1):
            y = c * self.length
            for x1, x2 in itertools.pairwise(xs):
                self._edge((x1, y), (x2, y))
        for i, x in enumerate(aisle_xs):
            ys = {c * self.length for c in range(self.blocks + 1)}
            ys |= {y for px, y in special if px == x}
            ys_sorted = sorted(ys)
            for y1, y2 in itertools.pairwise(ys_sorted):
                block = y1 // self.length
                if (i, block) not in blocked:
                    self._edge((x, y1), (x, y2))

    def _point(self, raw: dict[str, Any] | None) -> Point:
        if raw is None:
            return self.depot
        if "aisle" in raw:
            return (raw["aisle"] * self.pitch, mm(raw["y"]))
        return (mm(raw["x"]), mm(raw["y"]))

    def _edge(self, a: Point, b: Point) -> None:
        w = abs(a[0] - b[0]) + abs(a[1] - b[1])
        if w == 0:
            return
        self.adj.setdefault(a, []).append((b, w))
        self.adj.setdefault(b, []).append((a, w))

    def dijkstra(self, source: Point) -> dict[Point, int]:
        dist = {source: 0}
        heap = [(0, source)]
        while heap:
            d, v = heapq.heappop(heap)
            if d > dist[v]:
                continue
            for w, length in self.adj.get(v, []):
                if d + length < dist.get(w, INF):
                    dist[w] = d + length
                    heapq.heappush(heap, (d + length, w))
        return dist

    def dist(self, a: Point, b: Point) -> int:
        return self.dijkstra(a).get(b, INF)


def optimal_length(problem: dict[str, Any]) -> int:
    """Shortest walk start → all picks → end in mm (INF if some pick cannot be reached)."""
    grid = Grid(problem)
    pts = [xy for _, xy in grid.picks]
    n = len(pts)
    if n == 0:
        return grid.dist(grid.start, grid.end)
    trees = [grid.dijkstra(p) for p in pts]
    from_start = grid.dijkstra(grid.start)
    d = [[trees[i].get(pts[j], INF) for j in range(n)] for i in range(n)]
    to_end = [trees[i].get(grid.end, INF) for i in range(n)]
    size = 1 << n
    dp = [[INF] * n for _ in range(size)]
    for i in range(n):
        dp[1 << i][i] = from_start.get(pts[i], INF)
    for mask in range(1, size):
        row = dp[mask]
        for last in range(n):
            c = row[last]
            if c >= INF or not mask >> last & 1:
                continue
            dl = d[last]
            for nxt in range(n):
                if mask >> nxt & 1:
                    continue
                nm = mask | 1 << nxt
                if c + dl[nxt] < dp[nm][nxt]:
                    dp[nm][nxt] = c + dl[nxt]
    return min(dp[size - 1][i] + to_end[i] for i in range(n))


def sequence_length(problem: dict[str, Any], sequence: list[str]) -> int:
    """Re-summed shortest-path legs start → picks in ``sequence`` order → end."""
    grid = Grid(problem)
    where = dict(grid.picks)
    stops = [grid.start, *(where[i] for i in sequence), grid.end]
    return sum(grid.dist(a, b) for a, b in itertools.pairwise(stops))
