"""Bounded-time near-optimal paths over a distance matrix (asymmetric allowed).

``solve_path(matrix, n, start, end)`` orders the cities ``0 … n-1`` of an integer
distance matrix into a short path start → cities → end (start may equal end: a
tour). Up to HELD_KARP_MAX cities it is solved exactly by Held–Karp and says so;
beyond, it runs nearest-neighbour + cheapest-insertion starts improved by Or-opt
and 2-opt (both evaluated in O(1) per move with prefix sums, so one-way edges are
priced correctly), then iterated local search with seeded double-bridge kicks
until a kick count or the time budget runs out. The seed is fixed, so on an
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
        cand = _improve(matrix, _double_bridge(current, rng), start, end)
        cost = path_cost(matrix, cand, start, end)
        if cost <= current_cost:
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


def _double_bridge(order: list[int], rng: random.Random) -> list[int]:
    n = len(order)
    if n < 8:
        out = order[:]
        i, j = rng.sample(range(n), 2)
        out[i], out[j] = out[j], out[i]
        return out
    a, b, c = sorted(rng.sample(range(1, n), 3))
    return order[:a] + order[b:c] + order[a:b] + order[c:]


def _improve(matrix: Matrix, order: list[int], start: int, end: int) -> list[int]:
    """First-improvement 2-opt and Or-opt (segments of 1–3, both ways) to a local optimum."""
    seq = [start, *order, end]
    m = len(seq)
    improved = True
    while improved:
        improved = False
        # prefix sums of the path forwards and of each edge walked backwards, for
        # O(1) pricing of reversed stretches on asymmetric matrices
        fwd = [0] * m
        bwd = [0] * m
        for t in range(1, m):
            fwd[t] = fwd[t - 1] + matrix[seq[t - 1]][seq[t]]
            bwd[t] = bwd[t - 1] + matrix[seq[t]][seq[t - 1]]
        # 2-opt: reverse seq[i..j]
        for i in range(1, m - 2):
            a, si = seq[i - 1], seq[i]
            da_si = matrix[a][si]
            for j in range(i + 1, m - 1):
                sj, b = seq[j], seq[j + 1]
                delta = (
                    matrix[a][sj]
                    + matrix[si][b]
                    - da_si
                    - matrix[sj][b]
                    + (bwd[j] - bwd[i])
                    - (fwd[j] - fwd[i])
                )
                if delta < 0:
                    seq[i : j + 1] = seq[i : j + 1][::-1]
                    improved = True
                    break
            if improved:
                break
        if improved:
            continue
        # Or-opt: move seq[i:i+k] between seq[p-1] and seq[p]
        for k in (1, 2, 3):
            for i in range(1, m - k):
                seg = seq[i : i + k]
                a, b = seq[i - 1], seq[i + k]
                first, last = seg[0], seg[-1]
                inner_f = fwd[i + k - 1] - fwd[i]
                inner_b = bwd[i + k - 1] - bwd[i]
                gain = matrix[a][first] + matrix[last][b] - matrix[a][b]
                rest = seq[:i] + seq[i + k :]
                for p in range(1, len(rest)):
                    c, d = rest[p - 1], rest[p]
                    base = -matrix[c][d] - gain
                    fwd_delta = base + matrix[c][first] + matrix[last][d]
                    rev_delta = base + matrix[c][last] + matrix[first][d] + inner_b - inner_f
                    if fwd_delta < 0:
                        seq = rest[:p] + seg + rest[p:]
                        improved = True
                        break
                    if rev_delta < 0:
                        seq = rest[:p] + seg[::-1] + rest[p:]
                        improved = True
                        break
                if improved:
                    break
            if improved:
                break
    return seq[1:-1]
