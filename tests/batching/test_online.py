"""Online batching (edge.batching.online): the cart a picker takes, from the open tasks."""

from __future__ import annotations

import random
from typing import Any

import pytest

from edge.batching.online import (
    CartRules,
    Partition,
    PoolTask,
    improve,
    overdue,
    propose,
    urgency,
)

LAYOUT: dict[str, Any] = {
    "kind": "blocks",
    "aisles": 10,
    "aisle_pitch_m": 3.0,
    "blocks": 1,
    "block_length_m": 20.0,
    "depot": {"x": 0.0, "y": 0.0},
}
MIN = 60_000
RULES = CartRules(units=10, totes=3, max_wait_ms=15 * MIN)
NOW = 100 * MIN


def task(
    name: str,
    *picks: tuple[int, float],
    priority: int = 0,
    received: int = NOW,
    units: int | None = None,
) -> PoolTask:
    spots = picks or ((1, 5.0),)
    return PoolTask(name, priority, received, len(spots) if units is None else units, spots)


def random_pool(rng: random.Random, n: int) -> list[PoolTask]:
    out = []
    for i in range(n):
        picks = tuple(
            (rng.randrange(10), round(rng.uniform(0.5, 19.5), 1)) for _ in range(rng.randint(1, 4))
        )
        out.append(
            PoolTask(
                f"T{i}",
                rng.randint(0, 2),
                NOW - rng.randint(0, 30 * MIN),
                len(picks) + rng.randint(0, 3),
                picks,
            )
        )
    return out


def test_urgency_puts_overdue_first_oldest_first_then_priority() -> None:
    pool = [
        task("young-high", priority=9, received=NOW - 1 * MIN),
        task("old-low", priority=0, received=NOW - 20 * MIN),
        task("older-low", priority=0, received=NOW - 30 * MIN),
        task("young-mid-b", priority=5, received=NOW - 2 * MIN),
        task("young-mid-a", priority=5, received=NOW - 2 * MIN),
    ]
    assert [t.task for t in urgency(pool, NOW, RULES)] == [
        "older-low",
        "old-low",
        "young-high",
        "young-mid-a",
        "young-mid-b",
    ]
    assert overdue(pool[1], NOW, RULES)
    assert not overdue(task("edge", received=NOW - 15 * MIN), NOW, RULES)  # "older than"


@pytest.mark.parametrize("seed", range(12))
def test_every_proposal_is_a_feasible_cart_with_the_seed(seed: int) -> None:
    rng = random.Random(seed)
    pool = random_pool(rng, rng.randint(1, 40))
    rules = CartRules(units=rng.randint(4, 14), totes=rng.randint(2, 5), max_wait_ms=15 * MIN)
    p = propose(LAYOUT, pool, rules, now_ms=NOW, budget_ms=20)
    by_id = {t.task: t for t in pool}
    seed_task = urgency(pool, NOW, rules)[0]
    assert p.tasks[0] == seed_task.task
    assert len(set(p.tasks)) == len(p.tasks)
    assert set(p.tasks) <= set(by_id)
    if len(p.tasks) > 1:
        assert len(p.tasks) <= rules.totes
        assert sum(by_id[t].units for t in p.tasks) <= rules.units
    else:
        assert p.how in ("alone", "search")
    # rule 2: overdue tasks fill the cart before any that is not
    late = [by_id[t] for t in p.tasks if overdue(by_id[t], NOW, rules)]
    if len(late) < len(p.tasks):
        used = sum(t.units for t in late)
        for t in pool:
            if t.task not in p.tasks and overdue(t, NOW, rules):
                assert len(late) >= rules.totes or used + t.units > rules.units


def test_an_overdue_task_beats_higher_priority_work() -> None:
    o1 = task("O1", (1, 5.0), received=NOW - 40 * MIN)
    o2 = task("O2", (9, 18.0), received=NOW - 30 * MIN)  # far away, but overdue
    h = task("H", (1, 5.5), priority=9, received=NOW - 1 * MIN)  # next to O1, urgent
    rules = CartRules(units=10, totes=2, max_wait_ms=15 * MIN)
    late = propose(LAYOUT, [h, o2, o1], rules, now_ms=NOW, budget_ms=50)
    assert late.tasks == ("O1", "O2")
    # 26 minutes earlier nothing is overdue: H leads and takes its neighbour
    early = propose(LAYOUT, [h, o2, o1], rules, now_ms=NOW - 26 * MIN, budget_ms=50)
    assert early.tasks == ("H", "O1")


def test_a_cart_chooses_by_walking_within_the_rules() -> None:
    seed = task("S", (2, 10.0), priority=5)
    near = [task(f"N{i}", (2, 9.0 + i)) for i in range(2)]
    far = [task(f"F{i}", (8, 15.0 + i)) for i in range(3)]
    p = propose(LAYOUT, [*far, seed, *near], RULES, now_ms=NOW, budget_ms=50)
    assert p.how == "search"
    assert p.tasks == ("S", "N0", "N1")


def test_a_task_bigger_than_a_cart_goes_alone_and_never_joins_one() -> None:
    big = task("BIG", (1, 5.0), priority=9, units=11)
    small = task("SMALL", (1, 6.0))
    assert propose(LAYOUT, [small, big], RULES, now_ms=NOW, budget_ms=20).tasks == ("BIG",)
    big_low = task("BIG", (1, 5.0), units=11)
    seed = task("SEED", (1, 6.0), priority=1)
    p = propose(LAYOUT, [big_low, seed], RULES, now_ms=NOW, budget_ms=20)
    assert p.tasks == ("SEED",)
    assert p.how == "alone"


def test_without_picks_a_task_goes_alone() -> None:
    nowhere = PoolTask("NOWHERE", 9, NOW, 2, ())
    other = task("OTHER")
    assert propose(LAYOUT, [other, nowhere], RULES, now_ms=NOW, budget_ms=20).tasks == ("NOWHERE",)


def test_picks_off_the_layout_are_tolerated() -> None:
    # on a cross aisle (y 0 or 20), outside the aisles: chosen around, never an error
    pool = [
        task("A", (1, 0.0), (1, 20.0), priority=1),
        task("B", (12, 5.0), (1, 3.0)),
        task("C", (2, 25.0)),
    ]
    p = propose(LAYOUT, pool, RULES, now_ms=NOW, budget_ms=20)
    assert p.tasks[0] == "A"
    assert set(p.tasks) <= {"A", "B", "C"}


def test_empty_pool_and_one_tote() -> None:
    assert propose(LAYOUT, [], RULES, now_ms=NOW, budget_ms=20).tasks == ()
    one = CartRules(units=10, totes=1, max_wait_ms=MIN)
    assert propose(LAYOUT, [task("A"), task("B")], one, now_ms=NOW, budget_ms=20).tasks == ("A",)
    with pytest.raises(ValueError, match="duplicate"):
        propose(LAYOUT, [task("A"), task("A")], RULES, now_ms=NOW, budget_ms=20)


def test_deterministic_under_a_fixed_pool() -> None:
    rng = random.Random(7)
    pool = random_pool(rng, 10)  # small: the engine converges well inside the budget
    first = propose(LAYOUT, pool, RULES, now_ms=NOW, budget_ms=1000)
    for order in (pool, pool[::-1], sorted(pool, key=lambda t: t.picks)):
        assert propose(LAYOUT, order, RULES, now_ms=NOW, budget_ms=1000).tasks == first.tasks


def partition(*batches: tuple[str, ...], units: dict[str, int]) -> Partition:
    return Partition(tuple(batches), units, computed_ms=NOW)


def test_a_valid_cached_cart_is_used_without_search() -> None:
    a = task("A", (1, 5.0), priority=9)
    b = task("B", (9, 18.0))  # far: a search would not choose it
    c = task("C", (1, 6.0))
    cached = partition(("B", "A"), ("C",), units={"A": 1, "B": 1, "C": 1})
    p = propose(LAYOUT, [a, b, c], RULES, now_ms=NOW, budget_ms=50, cached=cached)
    assert (p.tasks, p.how, p.elapsed_ms) == (("A", "B"), "cached", 0.0)


@pytest.mark.parametrize(
    "change",
    ["units", "removed", "over-capacity", "overdue-outside", "seed-missing"],
)
def test_a_stale_cached_cart_means_a_search(change: str) -> None:
    a = task("A", (1, 5.0), priority=9)
    b = task("B", (9, 18.0))
    c = task("C", (1, 6.0))
    cached = partition(("A", "B"), ("C",), units={"A": 1, "B": 1, "C": 1})
    pool = [a, b, c]
    rules = CartRules(units=10, totes=2, max_wait_ms=15 * MIN)  # A and one other
    if change == "units":
        pool = [a, task("B", (9, 18.0), units=2), c]
    elif change == "removed":
        pool = [a, c]
    elif change == "over-capacity":
        rules = CartRules(units=1, totes=2, max_wait_ms=rules.max_wait_ms)
    elif change == "overdue-outside":
        # A is overdue, B is not, and overdue C would fit in B's place
        late_a = task("A", (1, 5.0), received=NOW - 40 * MIN)
        pool = [late_a, b, task("C", (1, 6.0), received=NOW - 30 * MIN)]
        cached = partition(("A", "B"), ("C",), units={"A": 1, "B": 1, "C": 1})
    elif change == "seed-missing":
        cached = partition(("B",), ("C",), units={"B": 1, "C": 1})
    p = propose(LAYOUT, pool, rules, now_ms=NOW, budget_ms=30, cached=cached)
    assert p.how != "cached"
    assert set(p.tasks) <= {t.task for t in pool}
    if change != "over-capacity":
        assert p.tasks == ("A", "C")  # the search takes the near one


def test_improve_partitions_the_pool_and_its_carts_are_reused() -> None:
    rng = random.Random(3)
    pool = random_pool(rng, 30)
    rules = CartRules(units=12, totes=4, max_wait_ms=15 * MIN)
    part = improve(LAYOUT, pool, rules, budget_ms=150, now_ms=NOW)
    by_id = {t.task: t for t in pool}
    flat = [t for b in part.batches for t in b]
    assert sorted(flat) == sorted(by_id)
    for b in part.batches:
        assert len(b) <= rules.totes
        assert len(b) == 1 or sum(by_id[t].units for t in b) <= rules.units
    assert dict(part.units) == {t.task: t.units for t in pool}
    seen = set()
    left = list(pool)
    for _ in range(3):  # start three carts in a row: each the seed's cached cart
        p = propose(LAYOUT, left, rules, now_ms=NOW, budget_ms=50, cached=part)
        assert p.how == "cached"
        assert p.tasks[0] == urgency(left, NOW, rules)[0].task
        assert not seen & set(p.tasks)
        seen |= set(p.tasks)
        left = [t for t in left if t.task not in p.tasks]
