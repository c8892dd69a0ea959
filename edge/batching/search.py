"""The batching search: seed construction, then iterated local search with
destroy-and-repair kicks, anytime.

Works on order indices and batch bitmasks only; a batch's route length comes
from ``cost(mask)`` (memoised by the caller), so the search never routes.

1. **Seed construction** (de Koster, van der Poort & Wolters 1999; Ho & Tseng
   2006): a batch starts from the unassigned order farthest from the depot and
   repeatedly takes the order that lengthens its tour least, until no order
   fits. Candidates are pre-sorted by a cheap proxy (aisles the order adds), and
   only the best few are priced exactly.
2. **Local search** (Henn & Wäscher's SHIFT and SWAP neighbourhoods with the
   route priced exactly, as Scholz & Wäscher 2017 advocate): move one order to
   another batch, or exchange two orders of different batches, while it
   shortens the total; orders whose batches changed are looked at again
   (don't-look bits).
3. **Kicks** (ALNS-style destroy and repair, Žulj, Kramer & Schneider 2018):
   take a few orders out — at random, the orders of two batches, or an order and
   its most related ones (most shared aisles) — and put each back where it adds
   least (regret ordering: the orders with most to lose first), then local
   search again. A new solution is accepted when it is within a small threshold
   of the current one (threshold accepting, shrinking as the search goes on);
   after a while without improvement the search returns to the best solution.

The random choices come from ``random.Random(seed)``; the sequence of
solutions depends only on the seed and the problem, never on the clock, so
stopping later (a larger time or iteration budget) can only return a solution
at least as good. Pure, no I/O.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class _Stop(Exception):
    """The budget ran out in the middle of a local search."""


@dataclass(slots=True)
class Budget:
    """When to stop: a deadline (perf_counter seconds) and/or an iteration count."""

    deadline: float | None
    max_iterations: int | None
    iterations: int = 0
    checks: int = 0

    def spent(self) -> bool:
        if self.max_iterations is not None and self.iterations >= self.max_iterations:
            return True
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def tick(self) -> None:
        """Called inside the local search: raise _Stop past the deadline (checked every 64th)."""
        self.checks += 1
        if (
            self.deadline is not None
            and not self.checks & 63
            and time.perf_counter() >= self.deadline
        ):
            raise _Stop


@dataclass(slots=True)
class Solution:
    """Batches as order bitmasks, with their units, sizes and costs."""

    masks: list[int] = field(default_factory=list)
    units: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)
    where: dict[int, int] = field(default_factory=dict)  # order -> batch index

    @property
    def total(self) -> int:
        return sum(self.costs)

    def copy(self) -> Solution:
        return Solution(
            self.masks[:], self.units[:], self.sizes[:], self.costs[:], dict(self.where)
        )

    def add_batch(self, mask: int, units: int, size: int, cost: int) -> int:
        b = len(self.masks)
        self.masks.append(mask)
        self.units.append(units)
        self.sizes.append(size)
        self.costs.append(cost)
        m = mask
        while m:
            low = m & -m
            self.where[low.bit_length() - 1] = b
            m ^= low
        return b

    def drop_empty(self) -> None:
        keep = [b for b, m in enumerate(self.masks) if m]
        if len(keep) == len(self.masks):
            return
        self.masks = [self.masks[b] for b in keep]
        self.units = [self.units[b] for b in keep]
        self.sizes = [self.sizes[b] for b in keep]
        self.costs = [self.costs[b] for b in keep]
        self.where = {}
        for b, mask in enumerate(self.masks):
            m = mask
            while m:
                low = m & -m
                self.where[low.bit_length() - 1] = b
                m ^= low

    def batches(self) -> list[list[int]]:
        """Orders of every batch, by index, batches in order of their first order."""
        out = []
        for mask in self.masks:
            out.append([i for i in range(mask.bit_length()) if mask >> i & 1])
        return sorted(out)


class Search:
    def __init__(
        self,
        *,
        units: list[int],
        aisles: list[int],
        far: list[int],
        max_units: int,
        max_orders: int,
        cost: Callable[[int], int],
        seed: int,
    ) -> None:
        self.n = len(units)
        self.u = units
        self.aisles = aisles  # per order, a bitmask of the aisles it visits (a proxy)
        self.far = far  # per order, a distance-from-depot proxy (seed choice)
        self.max_units = max_units
        self.max_orders = max_orders
        self.cost = cost
        self.rng = random.Random(seed)
        #: how many of the batches an order fits best it tries to swap into
        self.swap_width = 6

    # ---------------------------------------------------------------- construction

    def first_fit(self) -> Solution:
        """Orders in the given sequence, a new cart when the next does not fit (FCFS)."""
        sol = Solution()
        mask = units = size = 0
        for i in range(self.n):
            if size and (units + self.u[i] > self.max_units or size + 1 > self.max_orders):
                sol.add_batch(mask, units, size, self.cost(mask))
                mask = units = size = 0
            mask |= 1 << i
            units += self.u[i]
            size += 1
        if size:
            sol.add_batch(mask, units, size, self.cost(mask))
        return sol

    def seed_construction(self, budget: Budget, shortlist: int = 12) -> Solution:
        """Seed batches: farthest order first, then the cheapest additions."""
        left = set(range(self.n))
        sol = Solution()
        cost = self.cost
        while left:
            budget.tick()
            s = max(left, key=lambda i: (self.far[i], -i))
            left.discard(s)
            mask, units, size = 1 << s, self.u[s], 1
            aisles = self.aisles[s]
            c = cost(mask)
            while size < self.max_orders:
                fits = [i for i in left if units + self.u[i] <= self.max_units]
                if not fits:
                    break
                fits.sort(key=lambda i: ((self.aisles[i] & ~aisles).bit_count(), -self.far[i], i))
                best_i, best_c = -1, 0
                for i in fits[:shortlist]:
                    budget.tick()
                    ci = cost(mask | 1 << i)
                    if best_i < 0 or ci < best_c:
                        best_i, best_c = i, ci
                left.discard(best_i)
                mask |= 1 << best_i
                units += self.u[best_i]
                size += 1
                aisles |= self.aisles[best_i]
                c = best_c
            sol.add_batch(mask, units, size, c)
        return sol

    # ---------------------------------------------------------------- local search

    def local_search(self, sol: Solution, todo: list[int], budget: Budget) -> None:
        """SHIFT and SWAP until no move shortens the total; ``todo``: orders to look at."""
        cost, u = self.cost, self.u
        swap_width = self.swap_width
        max_units, max_orders = self.max_units, self.max_orders
        queued = set(todo)
        queue = list(todo)
        while queue:
            o = queue.pop()
            queued.discard(o)
            a = sol.where[o]
            bit = 1 << o
            ma, ca, ua = sol.masks[a], sol.costs[a], sol.units[a]
            uo = u[o]
            rest = ma ^ bit
            c_rest = cost(rest) if rest else 0
            gain_out = ca - c_rest  # what taking o out of a saves
            best_delta, best_move = 0, None
            # SHIFT into every batch; the insertion costs rank the batches, and
            # SWAP is tried with the orders of the best-ranked few (a granular
            # neighbourhood: a batch o barely fits into is no swap partner)
            ranked = []
            for b, mb in enumerate(sol.masks):
                if b == a or not mb:
                    continue
                budget.tick()
                cb = sol.costs[b]
                ins = cost(mb | bit) - cb
                ranked.append((ins, b))
                if sol.units[b] + uo <= max_units and sol.sizes[b] < max_orders:
                    d = ins - gain_out
                    if d < best_delta:
                        best_delta, best_move = d, (b, -1)
            ranked.sort()
            for _, b in ranked[:swap_width]:
                mb, cb, ub = sol.masks[b], sol.costs[b], sol.units[b]
                m = mb
                while m:
                    budget.tick()
                    low = m & -m
                    m ^= low
                    up = u[low.bit_length() - 1]
                    if ua - uo + up > max_units or ub - up + uo > max_units:
                        continue
                    d = cost(rest | low) + cost((mb ^ low) | bit) - ca - cb
                    if d < best_delta:
                        best_delta, best_move = d, (b, low.bit_length() - 1)
            if best_move is None:
                continue
            b, p = best_move
            touched = self._apply(sol, o, a, b, p)
            for t in touched:
                if t not in queued:
                    queued.add(t)
                    queue.append(t)

    def _apply(self, sol: Solution, o: int, a: int, b: int, p: int) -> list[int]:
        """Move o from batch a to b (and p from b to a when p >= 0); orders touched."""
        bit = 1 << o
        ma = sol.masks[a] ^ bit
        mb = sol.masks[b] | bit
        sol.units[a] -= self.u[o]
        sol.units[b] += self.u[o]
        sol.sizes[a] -= 1
        sol.sizes[b] += 1
        sol.where[o] = b
        if p >= 0:
            pb = 1 << p
            ma |= pb
            mb ^= pb
            sol.units[a] += self.u[p]
            sol.units[b] -= self.u[p]
            sol.sizes[a] += 1
            sol.sizes[b] -= 1
            sol.where[p] = a
        sol.masks[a], sol.masks[b] = ma, mb
        sol.costs[a] = self.cost(ma) if ma else 0
        sol.costs[b] = self.cost(mb)
        both = ma | mb
        return [i for i in range(both.bit_length()) if both >> i & 1]

    # ---------------------------------------------------------------- kicks

    def _remove(self, sol: Solution, orders: list[int]) -> None:
        changed = set()
        for o in orders:
            b = sol.where.pop(o)
            sol.masks[b] ^= 1 << o
            sol.units[b] -= self.u[o]
            sol.sizes[b] -= 1
            changed.add(b)
        for b in sorted(changed):
            sol.costs[b] = self.cost(sol.masks[b]) if sol.masks[b] else 0
        sol.drop_empty()

    def _destroy(self, sol: Solution, big: bool = False) -> list[int]:
        rng = self.rng
        n = self.n
        q_max = min(n, max(2, min(12, n // 4)))
        if big:
            # a long stagnation: shake a third of the orders at random
            return rng.sample(range(n), max(2, n // 3))
        kind = rng.random()
        if kind < 0.35 and len(sol.masks) >= 2:
            # two batches dissolved: the nearest (most shared aisles) to a random one
            a = rng.randrange(len(sol.masks))
            aisles = [self._aisles_of(m) for m in sol.masks]
            others = [b for b in range(len(sol.masks)) if b != a]
            others.sort(key=lambda b: (-(aisles[a] & aisles[b]).bit_count(), b))
            b = others[rng.randrange(min(3, len(others)))]
            picked = [
                i for m in (sol.masks[a], sol.masks[b]) for i in range(m.bit_length()) if m >> i & 1
            ]
        elif kind < 0.7:
            # related: an order and those sharing most aisles with it
            q = rng.randint(2, q_max)
            s = rng.randrange(n)
            rel = sorted(
                (i for i in range(n) if i != s),
                key=lambda i: (-(self.aisles[i] & self.aisles[s]).bit_count(), rng.random()),
            )
            picked = [s, *rel[: q - 1]]
        else:
            q = rng.randint(2, q_max)
            picked = rng.sample(range(n), q)
        return picked

    def _aisles_of(self, mask: int) -> int:
        out = 0
        while mask:
            low = mask & -mask
            out |= self.aisles[low.bit_length() - 1]
            mask ^= low
        return out

    def _repair(self, sol: Solution, orders: list[int], budget: Budget) -> None:
        """Regret-2 insertion: the order that would lose most by waiting goes first."""
        cost, u = self.cost, self.u
        left = list(orders)
        while left:
            best_pick: tuple[int, int, int, int] | None = None  # (regret, order, batch, delta)
            for o in left:
                bit = 1 << o
                alone = cost(bit)
                first, second, where = alone, alone, -1
                for b, mb in enumerate(sol.masks):
                    if sol.units[b] + u[o] > self.max_units or sol.sizes[b] >= self.max_orders:
                        continue
                    budget.tick()
                    d = cost(mb | bit) - sol.costs[b]
                    if d < first:
                        first, second, where = d, first, b
                    elif d < second:
                        second = d
                regret = second - first
                if best_pick is None or (regret, -o) > (best_pick[0], -best_pick[1]):
                    best_pick = (regret, o, where, first)
            assert best_pick is not None
            _, o, b, _ = best_pick
            left.remove(o)
            if b < 0:
                sol.add_batch(1 << o, u[o], 1, cost(1 << o))
            else:
                sol.masks[b] |= 1 << o
                sol.units[b] += u[o]
                sol.sizes[b] += 1
                sol.costs[b] = cost(sol.masks[b])
                sol.where[o] = b

    # ---------------------------------------------------------------- the loop

    def run(self, budget: Budget) -> tuple[Solution, str]:
        """The best solution found within the budget and what produced it."""
        best = self.first_fit()
        how = "first-fit"
        try:
            seeded = self.seed_construction(budget)
            if seeded.total < best.total:
                best, how = seeded, "seed"
            current = best.copy()
            self.local_search(current, list(range(self.n)), budget)
            if current.total < best.total:
                best, how = current.copy(), "seed+local-search"
        except _Stop:
            return best, how
        cur_total = current.total
        since = 0
        threshold = 0.004
        # a small search that has not improved for this long has converged: stop
        # with time left (deterministic, so a larger budget is still never worse)
        patience = 1500 + 50 * self.n if 2 <= self.n <= 12 else (1 << 62 if self.n >= 2 else 0)
        while not budget.spent() and since < patience:
            budget.iterations += 1
            trial = current.copy()
            big = since > 0 and since % 1000 == 0
            removed = self._destroy(trial, big)
            try:
                self._remove(trial, removed)
                self._repair(trial, removed, budget)
                trial.drop_empty()
                touched = {i for o in removed for i in self._orders(trial.masks[trial.where[o]])}
                self.local_search(trial, sorted(touched), budget)
            except _Stop:
                break
            total = trial.total
            if total < best.total:
                best, how = trial.copy(), "iterated-local-search"
                since = 0
            else:
                since += 1
            if total <= cur_total * (1.0 + threshold) or total < cur_total:
                current, cur_total = trial, total
            if since and since % 200 == 0 and since % 1000 != 0:
                current, cur_total = best.copy(), best.total
            threshold = 0.004 if big else max(0.0005, threshold * 0.999)
        best.drop_empty()
        return best, how

    @staticmethod
    def _orders(mask: int) -> list[int]:
        return [i for i in range(mask.bit_length()) if mask >> i & 1]
