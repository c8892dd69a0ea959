"""The classic picker-routing heuristics, as baselines for "walk saved" figures.

``heuristic_length(problem, name) -> float`` (metres) and
``heuristic_sequence(problem, name) -> list[str]`` for the names in
:data:`HEURISTICS`: ``s-shape``, ``return``, ``midpoint``, ``largest-gap``,
``combined``.

- One block, depot start and end, nothing blocked: the textbook walks, priced
  exactly as a picker following the rule would walk them (Hall 1993; Roodbergen &
  de Koster 2001 for *combined*, here with its per-aisle traverse/return choice
  made by a two-state DP).
- Anything else (2+ blocks, start ≠ end, blocked sub-aisles) uses the multi-block
  generalisation as a visiting *order* — farthest block first, sweeping
  alternately left→right and right→left, each sub-aisle served by the rule — and
  prices every leg as the shortest path. That can only shorten the rule's literal
  walk, so savings quoted against it are conservative. *combined* is then the
  shorter of S-shape and largest gap.

Never used to answer ``route``; pure, no I/O.
"""

from __future__ import annotations

from typing import Any

from edge.routing.engine import block_legs
from edge.routing.metric import BlockMetric
from edge.routing.model import (
    BlockProblem,
    GraphProblem,
    PickId,
    RoutingProblemError,
    parse_problem,
    to_m,
)

HEURISTICS = ("s-shape", "return", "midpoint", "largest-gap", "combined")


def heuristic_length(problem: dict[str, Any], name: str) -> float:
    """Length in metres of the walk heuristic ``name`` produces for ``problem``."""
    parsed = _parse(problem, name)
    return to_m(_length_and_order(parsed, name)[0])


def heuristic_sequence(problem: dict[str, Any], name: str) -> list[PickId]:
    """Pick ids in the order heuristic ``name`` visits them."""
    parsed = _parse(problem, name)
    return [parsed.picks[i].id for i in _length_and_order(parsed, name)[1]]


def heuristic_lengths(problem: dict[str, Any]) -> dict[str, float]:
    """Every heuristic's length in metres, validating the problem once."""
    parsed = _parse(problem, HEURISTICS[0])
    return {name: to_m(_length_and_order(parsed, name)[0]) for name in HEURISTICS}


def _parse(problem: dict[str, Any], name: str) -> BlockProblem:
    if name not in HEURISTICS:
        raise ValueError(
            f"heuristic: unknown name {name!r} (expected one of {', '.join(HEURISTICS)})"
        )
    parsed = parse_problem(problem)
    if isinstance(parsed, GraphProblem):
        raise RoutingProblemError("layout.kind: the classic heuristics need a 'blocks' layout")
    return parsed


def _classic(problem: BlockProblem) -> bool:
    depot = problem.depot
    return (
        problem.layout.blocks == 1
        and not problem.blocked
        and problem.start == problem.end
        and (problem.start.x, problem.start.y) == (depot.x, depot.y)
    )


def _length_and_order(problem: BlockProblem, name: str) -> tuple[int, list[int]]:
    if not problem.picks:
        return 0, []
    if _classic(problem):
        return _one_block(problem, name)
    metric = BlockMetric(problem.layout, problem.blocked)
    if name == "combined":
        options = [_ordered(problem, metric, n) for n in ("s-shape", "largest-gap")]
        return min(options, key=lambda o: o[0])
    return _ordered(problem, metric, name)


# --------------------------------------------------------------------------- one block


def _aisles(problem: BlockProblem) -> list[tuple[int, list[tuple[int, int]]]]:
    """[(x, [(offset, pick index) sorted])] for aisles holding picks, left to right."""
    by_x: dict[int, list[tuple[int, int]]] = {}
    for i, p in enumerate(problem.picks):
        by_x.setdefault(p.spot.x, []).append((p.spot.y, i))
    return [(x, sorted(v)) for x, v in sorted(by_x.items())]


def _one_block(problem: BlockProblem, name: str) -> tuple[int, list[int]]:
    lay = problem.layout
    length = lay.block_length
    aisles = _aisles(problem)
    xl, xr, xd = aisles[0][0], aisles[-1][0], lay.depot_x
    horizontal = 2 * (max(xr, xd) - min(xl, xd))
    ids = [[i for _, i in picks] for _, picks in aisles]
    up = [list(v) for v in ids]
    down = [v[::-1] for v in ids]
    q = len(aisles)
    if name == "return" or (q == 1 and name != "combined"):
        cost = sum(2 * picks[-1][0] for _, picks in aisles)
        return horizontal + cost, [i for v in up for i in v]
    if name == "s-shape":
        order: list[int] = []
        cost = 0
        for k, (_, picks) in enumerate(aisles):
            if k == q - 1 and q % 2 == 1:
                cost += 2 * picks[-1][0]
                order.extend(up[k])
            else:
                cost += length
                order.extend(up[k] if k % 2 == 0 else down[k])
        return horizontal + cost, order
    if name in ("midpoint", "largest-gap"):
        cost = 2 * length
        front: list[list[int]] = []
        back: list[list[int]] = []
        for _, picks in aisles[1:-1]:
            ts = [t for t, _ in picks]
            if name == "midpoint":
                split = length // 2
            else:
                gaps = [(ts[0], 0)] + [(ts[k + 1] - ts[k], k + 1) for k in range(len(ts) - 1)]
                gaps.append((length - ts[-1], len(ts)))
                _, cut = max(gaps)
                split = ts[cut - 1] if cut > 0 else 0
            f = [i for t, i in picks if t <= split]
            b = [i for t, i in picks if t > split]
            if f:
                cost += 2 * max(t for t, _ in picks if t <= split)
            if b:
                cost += 2 * (length - min(t for t, _ in picks if t > split))
            front.append(f)
            back.append(b[::-1])
        order = up[0] + [i for v in back for i in v] + down[-1]
        order += [i for v in reversed(front) for i in v[::-1]]
        return horizontal + cost, order
    return _combined(aisles, horizontal, length)


def _combined(
    aisles: list[tuple[int, list[tuple[int, int]]]], horizontal: int, length: int
) -> tuple[int, list[int]]:
    """Per aisle: traverse it or go in and back from the current side; DP over the side."""
    inf = 1 << 60
    # best[side] = (cost, order); side 0 = front cross aisle, 1 = back
    best: list[tuple[int, list[int]]] = [(0, []), (inf, [])]
    for k, (x, picks) in enumerate(aisles):
        if k:
            dx = x - aisles[k - 1][0]
            best = [(c + dx, o) if c < inf else (c, o) for c, o in best]
        up = [i for _, i in picks]
        nxt: list[tuple[int, list[int]]] = [(inf, []), (inf, [])]
        for side, (c, o) in enumerate(best):
            if c >= inf:
                continue
            cands = [
                (1 - side, c + length, o + (up if side == 0 else up[::-1])),
                (
                    side,
                    c + (2 * picks[-1][0] if side == 0 else 2 * (length - picks[0][0])),
                    o + (up if side == 0 else up[::-1]),
                ),
            ]
            for s, cost, order in cands:
                if cost < nxt[s][0]:
                    nxt[s] = (cost, order)
        best = nxt
    cost, order = best[0]
    # horizontal counts the front cross aisle twice over [xl, xr]; the DP already paid
    # for the stretches walked between aisles, on whichever side
    xl, xr = aisles[0][0], aisles[-1][0]
    return cost + horizontal - (xr - xl), order


# --------------------------------------------------------------------------- any layout


def _ordered(problem: BlockProblem, metric: BlockMetric, name: str) -> tuple[int, list[int]]:
    lay = problem.layout
    length = lay.block_length
    sub: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for i, p in enumerate(problem.picks):
        assert p.spot.block is not None
        sub.setdefault((p.spot.block, p.spot.x), []).append((p.spot.y - p.spot.block * length, i))
    blocks = sorted({b for b, _ in sub}, reverse=True)
    order: list[int] = []
    left_to_right = True
    for b in blocks:
        xs = sorted({x for bb, x in sub if bb == b}, reverse=not left_to_right)
        cells = [sorted(sub[(b, x)]) for x in xs]
        if name == "s-shape":
            # arriving at the back of the block: first sub-aisle downwards, then alternate
            for k, cell in enumerate(cells):
                ids = [i for _, i in cell]
                order.extend(ids[::-1] if k % 2 == 0 else ids)
        elif name == "return":
            for cell in cells:
                order.extend(i for _, i in cell)
        else:
            back_part: list[int] = []
            front_part: list[list[int]] = []
            for cell in cells:
                ts = [t for t, _ in cell]
                if name == "midpoint":
                    split = length // 2
                else:
                    gaps = [(ts[0], 0)] + [(ts[k + 1] - ts[k], k + 1) for k in range(len(ts) - 1)]
                    gaps.append((length - ts[-1], len(ts)))
                    _, cut = max(gaps)
                    split = ts[cut - 1] if cut > 0 else 0
                back_part.extend(i for t, i in reversed(cell) if t > split)
                front_part.append([i for t, i in cell if t <= split])
            order.extend(back_part)
            for ids in reversed(front_part):
                order.extend(ids[::-1])
            left_to_right = not left_to_right
        left_to_right = not left_to_right
    return sum(block_legs(problem, metric, order)), order
