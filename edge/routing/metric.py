"""Shortest walking distances on a conventional (``blocks``) layout.

:class:`BlockMetric` answers ``dist(p, q)`` in integer millimetres between two
:class:`~edge.routing.model.Point` on the centre lines of aisles and cross aisles,
honouring blocked sub-aisles. It is what "each leg the shortest path" of
routing-v1 means, and what the heuristics, the local search and the re-summed
``legs_m`` of a route use. Pure; one instance per problem.
"""

from __future__ import annotations

import bisect
import heapq

from edge.routing.model import BlockLayout, Point

Node = tuple[int, int]  # (aisle, cross aisle)


class BlockMetric:
    """Shortest-path distances between spots of one layout (with its blocked sub-aisles)."""

    __slots__ = ("_blocked", "_cache", "_layout", "_xs")

    def __init__(self, layout: BlockLayout, blocked: frozenset[tuple[int, int]]) -> None:
        self._layout = layout
        self._blocked = blocked
        self._xs = [layout.aisle_x(i) for i in range(layout.aisles)]
        self._cache: dict[Node, dict[Node, int]] = {}

    def exits(self, p: Point) -> list[tuple[Node, int]]:
        """The cross-aisle nodes a walk from ``p`` can reach first, with their distance."""
        lay = self._layout
        if p.block is not None:
            assert p.aisle is not None
            below = p.block * lay.block_length
            return [
                ((p.aisle, p.block), p.y - below),
                ((p.aisle, p.block + 1), below + lay.block_length - p.y),
            ]
        assert p.cross is not None
        if p.aisle is not None:
            return [((p.aisle, p.cross), 0)]
        out: list[tuple[Node, int]] = []
        k = bisect.bisect_left(self._xs, p.x)
        if k > 0:
            out.append(((k - 1, p.cross), p.x - self._xs[k - 1]))
        if k < len(self._xs):
            out.append(((k, p.cross), self._xs[k] - p.x))
        return out

    def node_dist(self, a: Node, b: Node) -> int:
        lay = self._layout
        if not self._blocked:
            return abs(self._xs[a[0]] - self._xs[b[0]]) + abs(a[1] - b[1]) * lay.block_length
        table = self._cache.get(a)
        if table is None:
            table = self._dijkstra(a)
            self._cache[a] = table
        return table.get(b, _UNREACHABLE)

    def dist(self, p: Point, q: Point) -> int:
        best = _UNREACHABLE
        if p.block is not None and p.block == q.block and p.x == q.x:
            return abs(p.y - q.y)
        if p.cross is not None and p.cross == q.cross:
            best = abs(p.x - q.x)
        for na, da in self.exits(p):
            for nb, db in self.exits(q):
                d = da + self.node_dist(na, nb) + db
                best = min(best, d)
        return best

    def _dijkstra(self, source: Node) -> dict[Node, int]:
        lay = self._layout
        dist: dict[Node, int] = {source: 0}
        heap = [(0, source)]
        while heap:
            d, (i, c) = heapq.heappop(heap)
            if d > dist[(i, c)]:
                continue
            steps: list[tuple[Node, int]] = []
            if i > 0:
                steps.append(((i - 1, c), self._xs[i] - self._xs[i - 1]))
            if i + 1 < lay.aisles:
                steps.append(((i + 1, c), self._xs[i + 1] - self._xs[i]))
            if c > 0 and (i, c - 1) not in self._blocked:
                steps.append(((i, c - 1), lay.block_length))
            if c < lay.blocks and (i, c) not in self._blocked:
                steps.append(((i, c + 1), lay.block_length))
            for node, w in steps:
                nd = d + w
                if nd < dist.get(node, _UNREACHABLE):
                    dist[node] = nd
                    heapq.heappush(heap, (nd, node))
        return dist


#: larger than any walk on a real floor; marks "no path" without a float infinity
_UNREACHABLE = 1 << 60
UNREACHABLE = _UNREACHABLE
