"""Online batching: the cart a picker takes when they start one, from the open tasks.

Input: the *pool* (open tasks, each with its units still to pick and the
routing-v1 ``(aisle, y)`` of its lines' likely locations), the cart's rules
(units, totes, the longest a task may wait) and the time now (passed in: this
module never reads a clock). Output: the tasks of ONE cart (:func:`propose`),
or a partition of the whole pool computed at leisure (:func:`improve`) that
later proposals reuse while it still holds. Pure, no I/O: the daemon reads the
pool (:mod:`edge.picking.pool`) and runs :func:`improve` in a worker process.

**Urgency** (:func:`urgency`): *overdue* tasks — received more than
``max_wait_ms`` ago — come first, oldest first; then the others by priority
(highest first), then age, then task id. The most urgent task is the *seed*.

**What a proposal guarantees:**

1. The cart always carries the seed; so the most urgent task leaves with the
   next cart that starts. An overdue task therefore waits for at most as many
   cart starts as there are older overdue tasks, whatever the priorities of
   younger work; a task that is not overdue can be passed over in favour of
   lower-priority work only until it becomes overdue (``max_wait_ms``).
2. Overdue tasks fill the cart before any task that is not overdue: tasks that
   are not overdue join only once no further overdue task fits in what the
   overdue ones leave of the cart (units and totes).
3. Never more units than ``rules.units`` nor more tasks than ``rules.totes``;
   a task bigger than a cart, or with no pick to route, goes alone (a cart of
   one); only tasks of the pool are ever proposed.
4. Within those rules the cart is chosen for walking: the batching engine
   (:func:`edge.batching.batch`, exact routes) partitions the seed and the
   most promising candidates (shared aisles, shallow extra depth, then
   urgency) into carts, and the seed's cart is proposed. The sub-pool is
   capped (:func:`sub_pool_size`) so that the engine gets past its
   construction and local search well inside the budget on a 2-core box.

A cached :class:`Partition` is used as it is (no search) when the seed's
cart in it still has every task in the pool with the same units, fits the
rules, and keeps rule 2 at ``now_ms``. Deterministic: the same pool, rules
and time give the same proposal when the engine's budget is not binding
(a binding wall-clock budget can stop it at a different point).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from edge.batching.engine import batch

#: how a proposal was found
How = Literal["cached", "search", "alone", "empty"]

#: a sub-pool never goes below / above these many tasks (see sub_pool_size)
MIN_SUB_POOL = 8
MAX_SUB_POOL = 48
#: routing-v1 picks per ms of budget a sub-pool may hold: the engine's seed
#: construction and local search take ~30 ms for 24 orders of ~15 picks
#: (360 picks) on this 2-core box, so 4 picks a ms leaves it most of its
#: budget for iterated local search, and headroom on a busy box
PICKS_PER_MS = 4
#: one y nudged off a cross aisle (routing-v1 forbids picks on one), metres
_NUDGE_M = 0.001


@dataclass(frozen=True, slots=True)
class PoolTask:
    """An open pick task as the batcher sees it."""

    task: str
    priority: int
    received_ms: int
    units: int
    #: routing-v1 (aisle, y) of each open line's likely location (lines
    #: without stock in the zone add none)
    picks: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True)
class CartRules:
    units: int
    totes: int
    max_wait_ms: int


@dataclass(frozen=True, slots=True)
class Partition:
    """A cached answer of the background improvement: carts of the pool."""

    batches: tuple[tuple[str, ...], ...]
    #: task -> units when computed (a cart is reused only while they match)
    units: Mapping[str, int]
    computed_ms: int


@dataclass(frozen=True, slots=True)
class Proposal:
    """The tasks of one cart, seed first then in urgency order."""

    tasks: tuple[str, ...]
    how: How
    #: what the engine's searches took (0: no search)
    elapsed_ms: float = 0.0


def overdue(task: PoolTask, now_ms: int, rules: CartRules) -> bool:
    """Received more than ``max_wait_ms`` before ``now_ms``."""
    return now_ms - task.received_ms > rules.max_wait_ms


def _urgency_key(now_ms: int, rules: CartRules) -> Any:
    def key(t: PoolTask) -> tuple[int, int, int, str]:
        if overdue(t, now_ms, rules):
            return (0, 0, t.received_ms, t.task)
        return (1, -t.priority, t.received_ms, t.task)

    return key


def urgency(pool: Iterable[PoolTask], now_ms: int, rules: CartRules) -> list[PoolTask]:
    """Overdue tasks first, oldest first; then priority (highest first), age, task id."""
    return sorted(pool, key=_urgency_key(now_ms, rules))


def sub_pool_size(budget_ms: int, totes: int) -> tuple[int, int]:
    """(most tasks, most picks) a proposal's search may take on for ``budget_ms``."""
    tasks = max(MIN_SUB_POOL, min(MAX_SUB_POOL, budget_ms // 4), 2 * totes + 1)
    return tasks, max(64, PICKS_PER_MS * budget_ms)


# ---------------------------------------------------------------------- problems


class _Picks:
    """routing-v1 picks of tasks on a ``blocks`` layout: outside ones dropped,
    ones on a cross aisle nudged into the block (for choosing carts only; the
    tour is routed from the real locations)."""

    def __init__(self, layout: dict[str, Any]) -> None:
        if layout.get("kind") != "blocks":
            raise ValueError("layout.kind: online batching needs a 'blocks' layout")
        self.aisles = int(layout["aisles"])
        self.length = float(layout["block_length_m"])
        self.depth = self.length * int(layout["blocks"])
        self._memo: dict[tuple[tuple[int, float], ...], list[tuple[int, float]]] = {}

    def of(self, t: PoolTask) -> list[tuple[int, float]]:
        found = self._memo.get(t.picks)
        if found is None:
            found = self._memo[t.picks] = self._clean(t.picks)
        return found

    def _clean(self, raw: tuple[tuple[int, float], ...]) -> list[tuple[int, float]]:
        out: list[tuple[int, float]] = []
        for aisle, raw_y in raw:
            if not 0 <= aisle < self.aisles or not 0.0 <= raw_y <= self.depth:
                continue
            y = raw_y
            if round(y * 1000) % round(self.length * 1000) == 0:
                y = y + _NUDGE_M if y < self.depth else y - _NUDGE_M
            if (aisle, y) not in out:
                out.append((aisle, y))
        return out


def _order(oid: str, groups: Sequence[PoolTask], picks: _Picks) -> dict[str, Any]:
    """One batching-v1 order for tasks that ride together (its units: theirs)."""
    spots = [s for t in groups for s in picks.of(t)]
    units = sum(t.units for t in groups)
    out = []
    for j, (aisle, y) in enumerate(spots):
        # all the units on the first pick: the engine only needs the total
        u = units - (len(spots) - 1) if j == 0 else 1
        out.append({"id": f"{oid}/{j}", "aisle": aisle, "y": y, "units": max(1, u)})
    return {"id": oid, "picks": out}


def _search(
    layout: dict[str, Any],
    groups: Sequence[Sequence[PoolTask]],
    *,
    units: int,
    orders: int,
    budget_ms: int,
    picks: _Picks,
) -> tuple[list[list[int]], float]:
    """The engine's carts of ``groups`` (each group one order), by group index."""
    problem = {
        "layout": layout,
        "capacity": {"units": units, "orders": orders},
        "orders": [_order(str(i), g, picks) for i, g in enumerate(groups)],
        "time_limit_ms": max(1, budget_ms),
    }
    answer = batch(problem)
    carts = [[int(o) for o in b["orders"]] for b in answer["batches"]]
    return carts, float(answer["elapsed_ms"])


def _fits(members: Sequence[PoolTask], t: PoolTask, rules: CartRules) -> bool:
    return len(members) < rules.totes and sum(m.units for m in members) + t.units <= rules.units


def _alone(t: PoolTask, rules: CartRules, picks: _Picks) -> bool:
    return rules.totes == 1 or t.units > rules.units or not picks.of(t)


# ---------------------------------------------------------------------- propose


def _nearness(core: Sequence[PoolTask], picks: _Picks) -> Any:
    """Key ranking candidates by what they add to the core's walk: aisles it
    does not visit yet, then depth beyond the core's in the aisles it does."""
    deepest: dict[int, float] = {}
    for t in core:
        for aisle, y in picks.of(t):
            deepest[aisle] = max(deepest.get(aisle, 0.0), y)

    def key(t: PoolTask) -> tuple[int, float]:
        new: set[int] = set()
        extra = 0.0
        for aisle, y in picks.of(t):
            if aisle in deepest:
                extra += max(0.0, y - deepest[aisle])
            else:
                new.add(aisle)
        return (len(new), round(extra, 3))

    return key


def _fill(
    layout: dict[str, Any],
    core: list[PoolTask],
    candidates: Sequence[PoolTask],
    rules: CartRules,
    *,
    budget_ms: int,
    picks: _Picks,
) -> tuple[list[PoolTask], float]:
    """The core plus the candidates the engine puts on its cart.

    The core rides as one batching-v1 order; the orders capacity is lowered by
    the core's extra totes so that its cart holds at most ``rules.totes`` tasks.
    """
    left_units = rules.units - sum(t.units for t in core)
    fitting = [t for t in candidates if t.units <= left_units and t not in core]
    if len(core) >= rules.totes or not fitting:
        return core, 0.0
    most_tasks, most_picks = sub_pool_size(budget_ms, rules.totes)
    near = _nearness(core, picks)
    rank = {t.task: i for i, t in enumerate(fitting)}
    fitting.sort(key=lambda t: (near(t), rank[t.task]))
    chosen: list[PoolTask] = []
    n_picks = sum(len(picks.of(t)) for t in core)
    for t in fitting:
        if len(chosen) + 1 >= most_tasks or n_picks >= most_picks:
            break
        chosen.append(t)
        n_picks += len(picks.of(t))
    groups: list[list[PoolTask]] = [core, *([t] for t in chosen)]
    carts, elapsed = _search(
        layout,
        groups,
        units=rules.units,
        orders=rules.totes - (len(core) - 1),
        budget_ms=budget_ms,
        picks=picks,
    )
    mine = next(c for c in carts if 0 in c)
    return core + [chosen[i - 1] for i in sorted(mine) if i], elapsed


def _overdue_core(
    layout: dict[str, Any],
    seed: PoolTask,
    late: Sequence[PoolTask],
    rules: CartRules,
    *,
    budget_ms: int,
    picks: _Picks,
) -> tuple[list[PoolTask], float]:
    """The seed and overdue tasks until no other overdue task fits (rule 2)."""
    core = [seed]
    if not late:
        return core, 0.0
    elapsed = 0.0
    if sum(t.units for t in late) + seed.units > rules.units or len(late) + 1 > rules.totes:
        # more overdue work than one cart: the engine chooses which ride with the seed
        most_tasks, _ = sub_pool_size(budget_ms, rules.totes)
        sub = [seed, *late[: most_tasks - 1]]
        carts, elapsed = _search(
            layout,
            [[t] for t in sub],
            units=rules.units,
            orders=rules.totes,
            budget_ms=budget_ms,
            picks=picks,
        )
        mine = next(c for c in carts if 0 in c)
        core = [sub[i] for i in sorted(mine)]
    for t in late:  # then the oldest overdue tasks that still fit
        if t not in core and _fits(core, t, rules):
            core.append(t)
    return core, elapsed


def _cached(
    cached: Partition,
    seed: PoolTask,
    by_id: Mapping[str, PoolTask],
    *,
    now_ms: int,
    rules: CartRules,
    picks: _Picks,
) -> tuple[str, ...] | None:
    """The seed's cart of ``cached`` when it still holds, else None."""
    cart = next((b for b in cached.batches if seed.task in b), None)
    if cart is None:
        return None
    members = []
    for task in cart:
        t = by_id.get(task)
        if t is None or cached.units.get(task) != t.units:
            return None
        members.append(t)
    if len(members) > rules.totes or sum(t.units for t in members) > rules.units:
        return None
    late = [t for t in members if overdue(t, now_ms, rules)]
    if len(late) < len(members):  # rule 2: no overdue task outside that fits the overdue part
        for t in by_id.values():
            if (
                t.task not in cart
                and overdue(t, now_ms, rules)
                and not _alone(t, rules, picks)
                and _fits(late, t, rules)
            ):
                return None
    key = _urgency_key(now_ms, rules)
    return tuple(t.task for t in sorted(members, key=key))


def quick(
    layout: dict[str, Any],
    pool: Sequence[PoolTask],
    rules: CartRules,
    *,
    now_ms: int,
    cached: Partition | None = None,
) -> Proposal | None:
    """The proposal when it needs no search — an empty pool, a seed that goes
    alone, or the seed's cart in ``cached`` still holding —, else None."""
    by_id = {t.task: t for t in pool}
    if len(by_id) != len(pool):
        raise ValueError("pool: duplicate task ids")
    if not pool:
        return Proposal((), "empty")
    picks = _Picks(layout)
    seed = urgency(pool, now_ms, rules)[0]
    if _alone(seed, rules, picks):
        return Proposal((seed.task,), "alone")
    if cached is not None:
        hit = _cached(cached, seed, by_id, now_ms=now_ms, rules=rules, picks=picks)
        if hit is not None:
            return Proposal(hit, "cached")
    return None


def propose(
    layout: dict[str, Any],
    pool: Sequence[PoolTask],
    rules: CartRules,
    *,
    now_ms: int,
    budget_ms: int,
    cached: Partition | None = None,
) -> Proposal:
    """The tasks of the next cart; see the module docstring for the rules."""
    known = quick(layout, pool, rules, now_ms=now_ms, cached=cached)
    if known is not None:
        return known
    picks = _Picks(layout)
    ranked = urgency(pool, now_ms, rules)
    seed = ranked[0]
    usable = [t for t in ranked[1:] if not _alone(t, rules, picks)]
    late = [t for t in usable if overdue(t, now_ms, rules)]
    core, spent = _overdue_core(
        layout,
        seed,
        late if overdue(seed, now_ms, rules) else [],
        rules,
        budget_ms=budget_ms,
        picks=picks,
    )
    rest = [t for t in usable if not overdue(t, now_ms, rules)]
    cart, more = _fill(
        layout, core, rest, rules, budget_ms=max(1, budget_ms - int(spent)), picks=picks
    )
    key = _urgency_key(now_ms, rules)
    tasks = tuple(t.task for t in sorted(cart, key=key))
    return Proposal(tasks, "search" if len(tasks) > 1 or spent + more else "alone", spent + more)


# ---------------------------------------------------------------------- improve

#: the share of an improvement's budget the carts of overdue seeds may use
OVERDUE_SHARE = 0.5
#: the least budget a cart of an overdue seed gets in an improvement
MIN_CART_MS = 10
#: most tasks the background partition takes on (the most urgent); the engine
#: gets past its construction for these within ~1 s on this box
MAX_PARTITION = 120


def improve(
    layout: dict[str, Any],
    pool: Sequence[PoolTask],
    rules: CartRules,
    *,
    budget_ms: int,
    now_ms: int,
) -> Partition:
    """Carts for the whole pool, for later proposals to reuse.

    The carts of overdue seeds are built one after another exactly as
    :func:`propose` would (each the most urgent left), sharing half the
    budget (at least :data:`MIN_CART_MS` each); the rest — the most urgent
    :data:`MAX_PARTITION` tasks — are partitioned by the engine for the least
    total walk with what is left.
    Runs in the daemon's worker process.
    """
    picks = _Picks(layout)
    left = urgency(pool, now_ms, rules)
    batches: list[tuple[str, ...]] = []
    spent = 0.0
    late = [t for t in left if overdue(t, now_ms, rules) and not _alone(t, rules, picks)]
    # every overdue task gets its cart here (rule 2 holds for them), each a share
    n_carts = max(-(-len(late) // rules.totes), -(-sum(t.units for t in late) // rules.units), 1)
    per_cart = max(MIN_CART_MS, min(100, int(budget_ms * OVERDUE_SHARE / n_carts)))
    while left and overdue(left[0], now_ms, rules) and spent < budget_ms:
        p = propose(layout, left, rules, now_ms=now_ms, budget_ms=per_cart)
        batches.append(p.tasks)
        spent += max(p.elapsed_ms, 1.0)
        taken = set(p.tasks)
        left = [t for t in left if t.task not in taken]
    alone = [t for t in left if _alone(t, rules, picks)]
    batches.extend((t.task,) for t in alone)
    rest = [t for t in left if not _alone(t, rules, picks)][:MAX_PARTITION]
    if rest:
        carts, _ = _search(
            layout,
            [[t] for t in rest],
            units=rules.units,
            orders=rules.totes,
            budget_ms=max(1, int(budget_ms - spent)),
            picks=picks,
        )
        key = _urgency_key(now_ms, rules)
        for c in carts:
            batches.append(tuple(t.task for t in sorted((rest[i] for i in c), key=key)))
    kept = {task for b in batches for task in b}
    units = {t.task: t.units for t in pool if t.task in kept}
    return Partition(tuple(batches), units, now_ms)
