"""The batching search: seed construction, then iterated local search with
destroy-and-repair kicks, anytime.

Works on order indices and batch bitmasks only; a batch's route length comes
from ``cost(mask)`` (memoised by the caller), so the search never routes. Every
batch priced is a memo miss (tens of microseconds) or a hit (a dict lookup), so
the design goal is few new batches priced per improvement:

1. **Seed construction** (de Koster, van der Poort & Wolters 1999; Ho & Tseng
   2006): a batch starts from the unassigned order farthest from the depot and
   repeatedly takes the order that lengthens its tour least, until no order
   fits. Only the nearest orders of the batch's orders are priced: first by a
   cheap proxy from the coster (the depth two orders share per sub-aisle), an
   answer early; then again once the **neighbour lists** are refined (Clarke &
   Wright's savings as a relatedness measure: every order's partners ranked by
   the walk the pair saves on one cart, priced exactly for its ~30 nearest by
   the proxy), the start of the local search.
2. **Local search** (Henn & Wäscher's SHIFT and SWAP neighbourhoods with the
   route priced exactly, as Scholz & Wäscher 2017 advocate): move one order to
   any batch with room, or exchange it with an order of one of the batches of
   its nearest orders (a granular neighbourhood: those are where the cheapest
   insertion lies nine times out of ten), best move per order, while it shortens
   the total. A swap is priced half first: the other half can only cost at least
   what its batch costs without the order, which often settles it. Orders whose
   batches changed are looked at again (don't-look bits).
3. **Kicks** (ALNS-style destroy and repair, Žulj, Kramer & Schneider 2018):
   take a few orders out — at random, the orders of two neighbouring batches,
   or an order and orders grown from it along the neighbour lists (Shaw's
   related removal) — and put each back where it adds least (regret-2: the
   orders with most to lose first), then local search on the batches touched.
   A new solution is accepted when it is within a small threshold of the
   current one (threshold accepting, shrinking as the search goes on); after a
   while without improvement the search returns to the best solution.

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

#: partners per order whose pair saving is priced exactly (the most overlapping)
PAIR_CANDIDATES = 30
#: the batches an order is swapped with: those of its nearest orders
SWAP_WIDTH = 6
#: most orders a kick takes out (and at most a quarter of them)
KICK_MAX = 8
#: how a kick chooses: two neighbouring batches, related orders, else at random
P_BATCHES = 0.35
P_RELATED = 0.4
#: threshold accepting: a trial within this fraction of the current is taken;
#: the threshold shrinks by THRESHOLD_DECAY an iteration down to THRESHOLD_MIN
THRESHOLD = 0.004
THRESHOLD_DECAY = 0.999
THRESHOLD_MIN = 0.0005
#: iterations without a new best after which the search returns to the best
RESTART = 200


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
        overlap: Callable[[int, int], int] | None = None,
        far: list[int],
        max_units: int,
        max_orders: int,
        cost: Callable[[int], int],
        seed: int,
    ) -> None:
        self.n = len(units)
        self.u = units
        self.aisles = aisles  # per order, a bitmask of the aisles it visits (a proxy)
        self.overlap = overlap  # walking two orders share, roughly (a proxy)
        self.far = far  # per order, a distance-from-depot proxy (seed choice)
        self.max_units = max_units
        self.max_orders = max_orders
        self.cost = cost
        self.rng = random.Random(seed)
        #: per order, the others by the walk they save riding with it (best first)
        self.near: list[list[int]] = [[] for _ in units]

    # ---------------------------------------------------------------- neighbours

    def rank_by_proxy(self, budget: Budget) -> None:
        """Neighbour lists by the cheap proxy alone (the coster's pair overlap,
        else shared aisles): good enough for seed construction, refined by
        :meth:`price_pairs`."""
        n, aisles, overlap = self.n, self.aisles, self.overlap
        self.near = []
        for i in range(n):
            budget.tick()
            if overlap is not None:
                proxy = [overlap(i, j) for j in range(n)]
            else:
                proxy = [(aisles[i] & aisles[j]).bit_count() for j in range(n)]
            self.near.append(sorted((j for j in range(n) if j != i), key=lambda j: (-proxy[j], j)))

    def price_pairs(self, budget: Budget) -> None:
        """Rank, for every order, the others by the walk they save riding together.

        The saving of a pair is ``cost(i) + cost(j) - cost(i, j)`` (Clarke and
        Wright's). It is priced exactly for each order's :data:`PAIR_CANDIDATES`
        nearest partners by the proxy that fit on a cart with it (about 2,500
        pairs at 100 orders); the other orders follow in the proxy's order. The
        batches holding an order's best partners are where it most likely fits
        cheaply: SWAP tries those batches, related removal follows these lists.
        """
        n, cost, u = self.n, self.cost, self.u
        single = [cost(1 << i) for i in range(n)]
        fits = self.max_orders >= 2
        saving: list[dict[int, int]] = [{} for _ in range(n)]
        for i in range(n):
            priced = 0
            for j in self.near[i]:
                if priced == PAIR_CANDIDATES:
                    break
                if not fits or u[i] + u[j] > self.max_units:
                    continue
                priced += 1
                if j in saving[i]:
                    continue
                budget.tick()
                s = single[i] + single[j] - cost(1 << i | 1 << j)
                saving[i][j] = s
                saving[j][i] = s
        for i in range(n):
            known = saving[i]
            best = [j for j, _ in sorted(known.items(), key=lambda t: (-t[1], t[0]))]
            self.near[i] = best + [j for j in self.near[i] if j not in known]

    def _candidates(self, sol: Solution, o: int, skip: int, width: int) -> list[int]:
        """The batches of o's nearest orders, nearest first, at most ``width``."""
        where = sol.where
        out: list[int] = []
        for p in self.near[o]:
            b = where.get(p)
            if b is not None and b != skip and b not in out:
                out.append(b)
                if len(out) == width:
                    break
        return out

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
        """Seed batches: farthest order first, then the cheapest additions.

        The additions priced are the nearest orders of the batch's orders (by the
        walk a pair saves), topped up by those adding fewest aisles.
        """
        left = set(range(self.n))
        sol = Solution()
        cost, near, u = self.cost, self.near, self.u
        while left:
            budget.tick()
            s = max(left, key=lambda i: (self.far[i], -i))
            left.discard(s)
            members = [s]
            mask, units, size = 1 << s, u[s], 1
            aisles = self.aisles[s]
            c = cost(mask)
            while size < self.max_orders:
                picked: list[int] = []
                for m in members:
                    for i in near[m]:
                        if i in left and units + u[i] <= self.max_units and i not in picked:
                            picked.append(i)
                if len(picked) < shortlist:
                    fits = [i for i in left if units + u[i] <= self.max_units and i not in picked]
                    fits.sort(
                        key=lambda i: ((self.aisles[i] & ~aisles).bit_count(), -self.far[i], i)
                    )
                    picked += fits[: shortlist - len(picked)]
                if not picked:
                    break
                best_i, best_c = -1, 0
                for i in picked[:shortlist]:
                    budget.tick()
                    ci = cost(mask | 1 << i)
                    if best_i < 0 or ci < best_c:
                        best_i, best_c = i, ci
                left.discard(best_i)
                members.append(best_i)
                mask |= 1 << best_i
                units += u[best_i]
                size += 1
                aisles |= self.aisles[best_i]
                c = best_c
            sol.add_batch(mask, units, size, c)
        return sol

    # ---------------------------------------------------------------- local search

    def local_search(self, sol: Solution, todo: list[int], budget: Budget) -> None:
        """SHIFT and SWAP until no move shortens the total; ``todo``: orders to look at.

        An order is tried in the batches of its nearest orders only (granular),
        and swapped with the orders of the nearest few; the best move per order is
        made, and the orders of the two batches it changed are looked at again.
        """
        cost, u = self.cost, self.u
        max_units, max_orders = self.max_units, self.max_orders
        masks, costs, units, sizes = sol.masks, sol.costs, sol.units, sol.sizes
        queued = set(todo)
        queue = list(todo)
        while queue:
            o = queue.pop()
            queued.discard(o)
            a = sol.where[o]
            bit = 1 << o
            ma, ca, ua = masks[a], costs[a], units[a]
            uo = u[o]
            rest = ma ^ bit
            c_rest = cost(rest) if rest else 0
            gain_out = ca - c_rest  # what taking o out of a saves
            best_delta, best_move = 0, None
            for b in range(len(masks)):
                if b != a and units[b] + uo <= max_units and sizes[b] < max_orders and masks[b]:
                    budget.tick()
                    d = cost(masks[b] | bit) - costs[b] - gain_out
                    if d < best_delta:
                        best_delta, best_move = d, (b, -1)
            for b in self._candidates(sol, o, a, SWAP_WIDTH):
                mb, cb, ub = masks[b], costs[b], units[b]
                m = mb
                while m:
                    low = m & -m
                    m ^= low
                    up = u[low.bit_length() - 1]
                    if ua - uo + up > max_units or ub - up + uo > max_units:
                        continue
                    budget.tick()
                    # o into b first: a's side costs at least c_rest (a route
                    # never gets shorter for more picks), so this may settle it
                    d = cost((mb ^ low) | bit) + c_rest - ca - cb
                    if d >= best_delta:
                        continue
                    d += cost(rest | low) - c_rest
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
        return self._orders(ma | mb)

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
        """Orders to take out: related ones, two neighbouring batches, or random."""
        rng = self.rng
        n = self.n
        q_max = min(n, max(2, min(KICK_MAX, n // 4)))
        if big:
            # a long stagnation: shake a third of the orders at random
            return rng.sample(range(n), max(2, n // 3))
        kind = rng.random()
        full = [b for b, m in enumerate(sol.masks) if m]
        if kind < P_BATCHES and len(full) >= 2:
            # two batches dissolved: a random one and the batch of a near order
            a = full[rng.randrange(len(full))]
            members = self._orders(sol.masks[a])
            o = members[rng.randrange(len(members))]
            nb = self._candidates(sol, o, a, 3)
            b = nb[rng.randrange(len(nb))] if nb else full[full.index(a) - 1]
            return self._orders(sol.masks[a] | sol.masks[b])
        q = rng.randint(2, q_max)
        if kind < P_BATCHES + P_RELATED:
            # related (Shaw): grow from a random order along near-neighbour lists
            picked = [rng.randrange(n)]
            chosen = set(picked)
            tries = 0
            while len(picked) < q and tries < 4 * q:
                tries += 1
                near = self.near[picked[rng.randrange(len(picked))]]
                if not near:
                    continue
                c = near[int(rng.random() ** 3 * len(near))]
                if c not in chosen:
                    chosen.add(c)
                    picked.append(c)
            return picked
        return rng.sample(range(n), q)

    def _repair(self, sol: Solution, orders: list[int], budget: Budget) -> None:
        """Regret-2 insertion: the order that would lose most by waiting goes first.

        Each order is priced in the batches of its nearest orders (and alone).
        """
        cost, u = self.cost, self.u
        left = list(orders)
        while left:
            best_pick: tuple[int, int, int, int] | None = None  # (regret, order, batch, delta)
            for o in left:
                bit = 1 << o
                alone = cost(bit)
                first, second, where = alone, alone, -1
                for b in range(len(sol.masks)):
                    if sol.units[b] + u[o] > self.max_units or sol.sizes[b] >= self.max_orders:
                        continue
                    budget.tick()
                    d = cost(sol.masks[b] | bit) - sol.costs[b]
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
        current = best
        try:
            # a seed on the proxy's lists first: an answer early for a short
            # budget; then the pairs are priced and the seed built again on
            # them, the start of the local search (it ends better from there)
            self.rank_by_proxy(budget)
            seeded = self.seed_construction(budget)
            if seeded.total < best.total:
                best, how = seeded, "seed"
            self.price_pairs(budget)
            seeded = self.seed_construction(budget)
            if seeded.total < best.total:
                best, how = seeded, "seed"
            current = seeded.copy()
            self.local_search(current, list(range(self.n)), budget)
            if current.total < best.total:
                best, how = current.copy(), "seed+local-search"
        except _Stop:
            # moves are made whole, so a local search cut short still holds a
            # solution, no worse than where it started
            if current.total < best.total:
                best, how = current, "seed+local-search"
            best.drop_empty()
            return best, how
        cur_total = current.total
        since = 0
        threshold = THRESHOLD
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
            if since and since % RESTART == 0 and since % 1000 != 0:
                current, cur_total = best.copy(), best.total
            threshold = THRESHOLD if big else max(THRESHOLD_MIN, threshold * THRESHOLD_DECAY)
        best.drop_empty()
        return best, how

    @staticmethod
    def _orders(mask: int) -> list[int]:
        return [i for i in range(mask.bit_length()) if mask >> i & 1]
