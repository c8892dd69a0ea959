"""Routing problems: validation of routing-v1 dicts into frozen internal models.

Input: a problem dict as described in ``contracts/routing-v1.md`` plus the
documented extensions (``start``, ``end``, ``blocked``; see ``docs/routing.md``).
Output: a :class:`BlockProblem` or :class:`GraphProblem` whose lengths are integer
millimetres, so that the solvers never compare floats.

Every defect raises :class:`RoutingProblemError` (a ``ValueError``) whose message
starts with the path of the offending field, e.g. ``picks[3].y: 40.0 lies on cross
aisle 2``. Nothing is clamped or guessed. This module does no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from common.errors import PickEdgeError

#: internal unit: one millimetre; every length inside the engine is an int of these
MM_PER_M = 1000

#: the largest length or coordinate a problem may hold, in metres (1000 km)
MAX_METRES = 1_000_000

#: the largest number of blocks the exact DP accepts; beyond it the state space
#: (partitions of blocks + 1 cross-aisle nodes) grows too fast for milliseconds
MAX_EXACT_BLOCKS = 4


class RoutingProblemError(PickEdgeError, ValueError):
    """A routing problem that cannot be routed; the message names the field."""

    code = "routing_problem_invalid"
    exit_code = 2


def to_mm(metres: float) -> int:
    return round(metres * MM_PER_M)


def to_m(mm: int) -> float:
    return mm / MM_PER_M


# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class BlockLayout:
    """A conventional layout: ``aisles`` parallel aisles cut by ``blocks + 1`` cross aisles."""

    aisles: int
    pitch: int  # mm between aisle centre lines
    blocks: int
    block_length: int  # mm
    depot_x: int  # mm, on the front cross aisle (y = 0)

    @property
    def depth(self) -> int:
        return self.blocks * self.block_length

    def aisle_x(self, aisle: int) -> int:
        return aisle * self.pitch

    @property
    def span(self) -> tuple[int, int]:
        """The x extent of the cross aisles."""
        return min(0, self.depot_x), max(self.aisle_x(self.aisles - 1), self.depot_x)


@dataclass(frozen=True, slots=True)
class Point:
    """A point of a conventional layout on the walkable centre lines.

    ``aisle`` is None for a point on a cross aisle away from every aisle. ``block`` is
    the block whose sub-aisle holds the point, or None when the point lies on cross
    aisle ``cross`` (then ``y == cross * block_length``).
    """

    x: int
    y: int
    aisle: int | None
    block: int | None
    cross: int | None


#: a pick id as given (routing-v1 uses strings; integers are passed through as is)
PickId = str | int


@dataclass(frozen=True, slots=True)
class BlockPick:
    id: PickId
    spot: Point


@dataclass(frozen=True, slots=True)
class BlockProblem:
    layout: BlockLayout
    picks: tuple[BlockPick, ...]
    start: Point
    end: Point
    blocked: frozenset[tuple[int, int]]  # (aisle, block) sub-aisles with no travel

    @property
    def depot(self) -> Point:
        return Point(self.layout.depot_x, 0, self._depot_aisle(), None, 0)

    def _depot_aisle(self) -> int | None:
        lay = self.layout
        if lay.depot_x % lay.pitch == 0 and 0 <= lay.depot_x // lay.pitch < lay.aisles:
            return lay.depot_x // lay.pitch
        return None


@dataclass(frozen=True, slots=True)
class GraphEdge:
    u: int
    v: int
    length: int  # mm
    one_way: bool


@dataclass(frozen=True, slots=True)
class GraphLayout:
    node_ids: tuple[str, ...]
    coords: tuple[tuple[float, float], ...]  # metres, for waypoints only
    edges: tuple[GraphEdge, ...]
    depot: int  # node index


@dataclass(frozen=True, slots=True)
class GraphPick:
    id: PickId
    edge: int
    offset: int  # mm from the edge's first node


@dataclass(frozen=True, slots=True)
class GraphProblem:
    layout: GraphLayout
    picks: tuple[GraphPick, ...]


# --------------------------------------------------------------------------- helpers


def _fail(path: str, message: str) -> RoutingProblemError:
    return RoutingProblemError(f"{path}: {message}")


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, f"must be an object, got {type(value).__name__}")
    return value


def _field(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise _fail(f"{path}.{key}" if path else key, "missing")
    return obj[key]


def _number(value: Any, path: str) -> float:
    """A length or coordinate in metres: finite and within ``MAX_METRES``
    (``1e308`` m would overflow to an infinite number of millimetres, and an
    integer of 400 digits overflows ``float`` itself)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, f"must be a number, got {value!r:.40}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(path, f"must be finite, got {value!r}")
    if not -MAX_METRES <= value <= MAX_METRES:
        raise _fail(path, f"must be within ±{MAX_METRES:,} m, got {value!r:.40}")
    return float(value)


def _positive(value: Any, path: str) -> int:
    number = _number(value, path)
    mm = to_mm(number)
    if number <= 0 or mm <= 0:
        raise _fail(path, f"must be > 0 (at least 1 mm), got {value!r}")
    return mm


def _count(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an integer, got {value!r}")
    if value < 1:
        raise _fail(path, f"must be ≥ 1, got {value!r}")
    return value


def _index(value: Any, path: str, size: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an integer, got {value!r}")
    if not 0 <= value < size:
        raise _fail(path, f"{value} outside 0..{size - 1}")
    return value


def _new_pick_id(obj: dict[str, Any], p: str, index: int, seen: dict[PickId, int]) -> PickId:
    """The pick's id, refused when an earlier pick has it (recorded in ``seen``)."""
    pid = _pick_id(_field(obj, "id", p), f"{p}.id")
    if pid in seen:
        raise _fail(f"{p}.id", f"duplicate id {pid!r} (also picks[{seen[pid]}])")
    seen[pid] = index
    return pid


def _pick_id(value: Any, path: str) -> PickId:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(path, f"must be a string, got {value!r}")
    return value


def _node_id(value: Any, path: str) -> str:
    return str(_pick_id(value, path))


# --------------------------------------------------------------------------- blocks


def parse_block_layout(raw: Any, path: str = "layout") -> BlockLayout:
    lay = _obj(raw, path)
    aisles = _count(_field(lay, "aisles", path), f"{path}.aisles")
    pitch = _positive(_field(lay, "aisle_pitch_m", path), f"{path}.aisle_pitch_m")
    blocks = _count(_field(lay, "blocks", path), f"{path}.blocks")
    length = _positive(_field(lay, "block_length_m", path), f"{path}.block_length_m")
    depot = _obj(_field(lay, "depot", path), f"{path}.depot")
    dx = _number(_field(depot, "x", f"{path}.depot"), f"{path}.depot.x")
    dy = _number(_field(depot, "y", f"{path}.depot"), f"{path}.depot.y")
    if dy != 0:
        raise _fail(
            f"{path}.depot.y", f"must be 0 (the depot lies on the front cross aisle), got {dy!r}"
        )
    return BlockLayout(aisles, pitch, blocks, length, to_mm(dx))


def block_spot(layout: BlockLayout, aisle: int, y_m: float, path: str) -> Point:
    """A point inside aisle ``aisle`` at depth ``y_m``; may lie on a cross aisle."""
    y = to_mm(y_m)
    if y_m < 0 or y < 0 or y_m > layout.depth / MM_PER_M or y > layout.depth:
        raise _fail(f"{path}.y", f"{y_m!r} outside the aisle (0..{layout.depth / MM_PER_M})")
    x = layout.aisle_x(aisle)
    if y % layout.block_length == 0:
        cross = y // layout.block_length
        return Point(x, y, aisle, None, cross)
    return Point(x, y, aisle, y // layout.block_length, None)


def pick_spot(layout: BlockLayout, raw: dict[str, Any], path: str) -> Point:
    aisle = _index(_field(raw, "aisle", path), f"{path}.aisle", layout.aisles)
    y_m = _number(_field(raw, "y", path), f"{path}.y")
    spot = block_spot(layout, aisle, y_m, path)
    if spot.block is None:
        raise _fail(f"{path}.y", f"{y_m!r} lies on cross aisle {spot.cross}")
    return spot


def _end_spot(layout: BlockLayout, raw: Any, path: str) -> Point:
    """``{"aisle": a, "y": y}`` anywhere in an aisle, or ``{"x": x, "y": y}`` on a cross aisle."""
    obj = _obj(raw, path)
    if "aisle" in obj:
        aisle = _index(obj["aisle"], f"{path}.aisle", layout.aisles)
        return block_spot(layout, aisle, _number(_field(obj, "y", path), f"{path}.y"), path)
    x_m = _number(_field(obj, "x", path), f"{path}.x")
    y_m = _number(_field(obj, "y", path), f"{path}.y")
    x, y = to_mm(x_m), to_mm(y_m)
    lo, hi = layout.span
    if x % layout.pitch == 0 and 0 <= x // layout.pitch < layout.aisles:
        return block_spot(layout, x // layout.pitch, y_m, path)
    if not lo <= x <= hi:
        raise _fail(
            f"{path}.x", f"{x_m!r} outside the cross aisles ({lo / MM_PER_M}..{hi / MM_PER_M})"
        )
    if y % layout.block_length != 0 or not 0 <= y <= layout.depth:
        raise _fail(f"{path}.y", f"{y_m!r}: a point between aisles must lie on a cross aisle")
    return Point(x, y, None, None, y // layout.block_length)


def parse_block_problem(problem: dict[str, Any]) -> BlockProblem:
    layout = parse_block_layout(problem["layout"])
    raw_picks = _field(problem, "picks", "")
    if not isinstance(raw_picks, list):
        raise _fail("picks", f"must be a list, got {type(raw_picks).__name__}")
    blocked: set[tuple[int, int]] = set()
    raw_blocked = problem.get("blocked", [])
    if not isinstance(raw_blocked, list):
        raise _fail("blocked", "must be a list of {aisle, block}")
    for i, item in enumerate(raw_blocked):
        p = f"blocked[{i}]"
        obj = _obj(item, p)
        aisle = _index(_field(obj, "aisle", p), f"{p}.aisle", layout.aisles)
        block = _index(_field(obj, "block", p), f"{p}.block", layout.blocks)
        blocked.add((aisle, block))
    picks: list[BlockPick] = []
    seen: dict[PickId, int] = {}
    for i, item in enumerate(raw_picks):
        p = f"picks[{i}]"
        obj = _obj(item, p)
        pid = _new_pick_id(obj, p, i, seen)
        spot = pick_spot(layout, obj, p)
        if (spot.aisle, spot.block) in blocked:
            raise _fail(p, f"lies in blocked sub-aisle (aisle {spot.aisle}, block {spot.block})")
        picks.append(BlockPick(pid, spot))
    depot = Point(layout.depot_x, 0, None, None, 0)
    if layout.depot_x % layout.pitch == 0 and 0 <= layout.depot_x // layout.pitch < layout.aisles:
        depot = Point(layout.depot_x, 0, layout.depot_x // layout.pitch, None, 0)
    ends: list[Point] = []
    for key in ("start", "end"):
        if problem.get(key) is None:
            ends.append(depot)
            continue
        spot = _end_spot(layout, problem[key], key)
        if spot.block is not None and (spot.aisle, spot.block) in blocked:
            raise _fail(key, f"lies in blocked sub-aisle (aisle {spot.aisle}, block {spot.block})")
        ends.append(spot)
    return BlockProblem(layout, tuple(picks), ends[0], ends[1], frozenset(blocked))


# --------------------------------------------------------------------------- graph


def parse_graph_problem(problem: dict[str, Any]) -> GraphProblem:
    lay = _obj(problem["layout"], "layout")
    raw_nodes = _field(lay, "nodes", "layout")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise _fail("layout.nodes", "must be a non-empty list")
    index: dict[str, int] = {}
    coords: list[tuple[float, float]] = []
    for i, item in enumerate(raw_nodes):
        p = f"layout.nodes[{i}]"
        obj = _obj(item, p)
        nid = _node_id(_field(obj, "id", p), f"{p}.id")
        if nid in index:
            raise _fail(f"{p}.id", f"duplicate node id {nid!r}")
        index[nid] = i
        coords.append(
            (_number(_field(obj, "x", p), f"{p}.x"), _number(_field(obj, "y", p), f"{p}.y"))
        )
    raw_edges = _field(lay, "edges", "layout")
    if not isinstance(raw_edges, list):
        raise _fail("layout.edges", "must be a list")
    edges: list[GraphEdge] = []
    for i, item in enumerate(raw_edges):
        p = f"layout.edges[{i}]"
        obj = _obj(item, p)
        ends = []
        for key in ("from", "to"):
            ref = _node_id(_field(obj, key, p), f"{p}.{key}")
            if ref not in index:
                raise _fail(f"{p}.{key}", f"unknown node {ref!r}")
            ends.append(index[ref])
        u, v = ends
        if u == v:
            raise _fail(p, "an edge must join two different nodes")
        if obj.get("length_m") is None:
            (x1, y1), (x2, y2) = coords[u], coords[v]
            length = to_mm(math.hypot(x2 - x1, y2 - y1))
            if length <= 0:
                raise _fail(f"{p}.length_m", "nodes coincide: give a length_m > 0")
        else:
            length = _positive(obj["length_m"], f"{p}.length_m")
        one_way = obj.get("one_way", False)
        if not isinstance(one_way, bool):
            raise _fail(f"{p}.one_way", f"must be true or false, got {one_way!r}")
        edges.append(GraphEdge(u, v, length, one_way))
    depot_ref = _node_id(_field(lay, "depot", "layout"), "layout.depot")
    if depot_ref not in index:
        raise _fail("layout.depot", f"unknown node {depot_ref!r}")
    layout = GraphLayout(tuple(index), tuple(coords), tuple(edges), index[depot_ref])
    raw_picks = _field(problem, "picks", "")
    if not isinstance(raw_picks, list):
        raise _fail("picks", f"must be a list, got {type(raw_picks).__name__}")
    for key in ("start", "end", "blocked"):
        if problem.get(key) is not None:
            raise _fail(key, "not supported for graph layouts (only for kind 'blocks')")
    picks: list[GraphPick] = []
    seen: dict[PickId, int] = {}
    for i, item in enumerate(raw_picks):
        p = f"picks[{i}]"
        obj = _obj(item, p)
        pid = _new_pick_id(obj, p, i, seen)
        edge = _index(_field(obj, "edge", p), f"{p}.edge", len(edges))
        off_m = _number(_field(obj, "offset_m", p), f"{p}.offset_m")
        off = to_mm(off_m)
        if off_m < 0 or off < 0 or off > edges[edge].length:
            raise _fail(
                f"{p}.offset_m",
                f"{off_m!r} outside edge {edge} (0..{edges[edge].length / MM_PER_M})",
            )
        picks.append(GraphPick(pid, edge, off))
    return GraphProblem(layout, tuple(picks))


def parse_problem(problem: Any) -> BlockProblem | GraphProblem:
    """Validate a routing-v1 problem dict; raise RoutingProblemError naming the field."""
    obj = _obj(problem, "problem")
    lay = _obj(_field(obj, "layout", ""), "layout")
    kind = _field(lay, "kind", "layout")
    if kind == "blocks":
        return parse_block_problem(obj)
    if kind == "graph":
        return parse_graph_problem(obj)
    raise _fail("layout.kind", f"unknown layout kind {kind!r} (expected 'blocks' or 'graph')")
