"""Bounded-time near-optimal paths over a distance matrix (asymmetric allowed).

``solve_path(matrix, n, start, end)`` orders the cities ``0 … n-1`` of an integer
distance matrix into a short path start → cities → end (start may equal end: a
tour). Up to HELD_KARP_MAX cities it is solved exactly by Held–Karp and says so;
beyond, it runs nearest-neighbour + cheapest-insertion starts improved by Or-opt
(segments of 1–SEGMENT_MAX cities, either way round) and 2-opt (a reversed stretch
priced in O(1) with prefix sums of the path walked both ways, so one-way edges are
priced correctly), then iterated local search — seeded double-bridge kicks (no
reversal), re-optimised with don't-look bits, threshold acceptance — until a kick
count or the time budget runs out. The seed is fixed, so on an
unloaded machine the same input gives the same answer; under load the time
budget can cut the search short (never below the first local optimum).
Pure, no I/O.
"""

from __future__ import annotations

import itertools
import random
import time

#: largest city count solved exactly (2^n · n² work in plain Python)
HELD_KARP_MAX = 8
#: accept a kicked path up to ACCEPT_NUM / ACCEPT_DEN times the current length
ACCEPT_NUM, ACCEPT_DEN = 1005, 1000
#: longest segment an Or-opt move relocates
SEGMENT_MAX = 10
#: the same after a kick, where short moves repair the damage and time is short
KICK_SEGMENT_MAX = 5
#: kicks of the iterated local search per city (the time budget caps it too)
KICKS_PER_CITY = 12

Matrix = list[list[int]]


def path_cost(matrix: Matrix, order: list[int], start: int, end: int) -> int:
    seq = [start, *order, end]
    return sum(matrix[a][b] for a, b in itertools.pairwise(seq))


def solve_path(
    matrix: Matrix, n: int, start: int, end: int, budget_ms: float = 15.0
) -> tuple[list[int], bool]:
    """Return (order of cities 0..n-1, proven optimal)."""
    if n <= 1:
        return list(range(n)), True
    if n <= HELD_KARP_MAX:
        return held_karp(matrix, n, start, end), True
    deadline = time.perf_counter() + budget_ms / 1000.0
    best: list[int] | None = None
    best_cost = 0
    for initial in (
        _nearest_neighbour(matrix, n, start),
        _cheapest_insertion(matrix, n, start, end),
    ):
        order = _improve(matrix, initial, start, end)
        cost = path_cost(matrix, order, start, end)
        if best is None or cost < best_cost:
            best, best_cost = order, cost
    assert best is not None
    rng = random.Random(n)
    current, current_cost = best, best_cost
    for _ in range(KICKS_PER_CITY * n):
        if time.perf_counter() > deadline:
            break
        kicked, touched = _double_bridge(current, rng)
        cand = _improve(matrix, kicked, start, end, active=touched, longest=KICK_SEGMENT_MAX)
        cost = path_cost(matrix, cand, start, end)
        # accept slightly worse paths too (threshold accepting): the search then
        # drifts across plateaus instead of kicking the same local optimum again
        if cost * ACCEPT_DEN <= current_cost * ACCEPT_NUM:
            current, current_cost = cand, cost
            if cost < best_cost:
                best, best_cost = cand, cost
    return best, False


def held_karp(matrix: Matrix, n: int, start: int, end: int) -> list[int]:
    full = (1 << n) - 1
    inf = 1 << 62
    dp = [[inf] * n for _ in range(1 << n)]
    parent = [[-1] * n for _ in range(1 << n)]
    for i in range(n):
        dp[1 << i][i] = matrix[start][i]
    for mask in range(1, full + 1):
        row = dp[mask]
        for last in range(n):
            c = row[last]
            if c >= inf:
                continue
            dl = matrix[last]
            for nxt in range(n):
                if mask >> nxt & 1:
                    continue
                nm = mask | 1 << nxt
                nc = c + dl[nxt]
                if nc < dp[nm][nxt]:
                    dp[nm][nxt] = nc
                    parent[nm][nxt] = last
    last = min(range(n), key=lambda i: dp[full][i] + matrix[i][end])
    order = []
    mask = full
    while last >= 0:
        order.append(last)
        last, mask = parent[mask][last], mask & ~(1 << last)
    order.reverse()
    return order


def _nearest_neighbour(matrix: Matrix, n: int, start: int) -> list[int]:
    left = set(range(n))
    order = []
    at = start
    while left:
        row = matrix[at]
        at = min(left, key=lambda c: (row[c], c))
        left.remove(at)
        order.append(at)
    return order


def _cheapest_insertion(matrix: Matrix, n: int, start: int, end: int) -> list[int]:
    seq = [start, end]
    for c in sorted(range(n), key=lambda c: -(matrix[start][c] + matrix[c][start])):
        best_pos, best_delta = 1, None
        for p in range(1, len(seq)):
            a, b = seq[p - 1], seq[p]
            delta = matrix[a][c] + matrix[c][b] - matrix[a][b]
            if best_delta is None or delta < best_delta:
                best_pos, best_delta = p, delta
        seq.insert(best_pos, c)
    return seq[1:-1]


def _double_bridge(order: list[int], rng: random.Random) -> tuple[list[int], list[int]]:
    """A random segment swap (no reversal, so fine for one-way edges) and the cities it touched."""
    n = len(order)
    if n < 8:
        out = order[:]
        i, j = rng.sample(range(n), 2)
        out[i], out[j] = out[j], out[i]
        return out, out
    a, b, c = sorted(rng.sample(range(1, n), 3))
    out = order[:a] + order[b:c] + order[a:b] + order[c:]
    ends = {a - 1, a, b - 1, b, c - 1, min(c, n - 1), 0, n - 1}
    return out, [order[k] for k in ends]


def _improve(
    matrix: Matrix,
    order: list[int],
    start: int,
    end: int,
    *,
    active: list[int] | None = None,
    longest: int = SEGMENT_MAX,
) -> list[int]:
    """2-opt and Or-opt (segments of 1–3, either way round) to a local optimum.

    Don't-look bits: only cities in ``active`` (all when None) are examined, and a
    city is re-queued only when an edge at it changes, so re-optimising after a
    kick touches a handful of cities instead of rescanning the whole path.
    """
    seq = [start, *order, end]
    m = len(seq)
    queue = list(order) if active is None else list(active)
    queued = set(queue)
    fwd, bwd = _prefix(matrix, seq)
    while queue:
        v = queue.pop()
        queued.discard(v)
        i = seq.index(v, 1, m - 1)
        touched = _two_opt_at(matrix, seq, i, fwd, bwd)
        if touched is None:
            touched = _or_opt_at(matrix, seq, i, longest)
        if touched is None:
            continue
        fwd, bwd = _prefix(matrix, seq)
        for c in touched:
            if c not in queued and c not in (start, end):
                queued.add(c)
                queue.append(c)
    return seq[1:-1]


def _two_opt_at(
    matrix: Matrix,
    seq: list[int],
    i: int,
    fwd: list[int],
    bwd: list[int],
) -> list[int] | None:
    """Reverse a stretch that starts or ends at position i if that shortens the path."""
    m = len(seq)
    pairs = [(i, j) for j in range(i + 1, m - 1)] + [(j, i) for j in range(1, i)]
    for lo, hi in pairs:
        a, sl, sh, b = seq[lo - 1], seq[lo], seq[hi], seq[hi + 1]
        delta = (
            matrix[a][sh]
            + matrix[sl][b]
            - matrix[a][sl]
            - matrix[sh][b]
            + (bwd[hi] - bwd[lo])
            - (fwd[hi] - fwd[lo])
        )
        if delta < 0:
            seq[lo : hi + 1] = seq[lo : hi + 1][::-1]
            return [a, sl, sh, b]
    return None


def _or_opt_at(matrix: Matrix, seq: list[int], i: int, longest: int) -> list[int] | None:
    """Move the segment of 1–3 cities starting at position i elsewhere, if shorter."""
    m = len(seq)
    for k in range(1, longest + 1):
        if i + k >= m:
            break
        first, last = seq[i], seq[i + k - 1]
        a, b = seq[i - 1], seq[i + k]
        inner_f = sum(matrix[seq[t]][seq[t + 1]] for t in range(i, i + k - 1))
        inner_b = sum(matrix[seq[t + 1]][seq[t]] for t in range(i, i + k - 1))
        gain = matrix[a][first] + matrix[last][b] - matrix[a][b]
        row_last = matrix[last]
        row_first = matrix[first]
        for p in range(1, m):
            if i <= p <= i + k:
                continue
            c, d = seq[p - 1], seq[p]
            base = matrix[c][d] + gain
            if matrix[c][first] + row_last[d] < base:
                seg = seq[i : i + k]
            elif matrix[c][last] + row_first[d] + inner_b - inner_f < base:
                seg = seq[i : i + k][::-1]
            else:
                continue
            rest = seq[:i] + seq[i + k :]
            at = p if p < i else p - k
            seq[:] = rest[:at] + seg + rest[at:]
            return [a, b, c, d, first, last]
    return None


def _prefix(matrix: Matrix, seq: list[int]) -> tuple[list[int], list[int]]:
    fwd = [0] * len(seq)
    bwd = [0] * len(seq)
    for t in range(1, len(seq)):
        fwd[t] = fwd[t - 1] + matrix[seq[t - 1]][seq[t]]
        bwd[t] = bwd[t - 1] + matrix[seq[t]][seq[t - 1]]
    return fwd, bwd
