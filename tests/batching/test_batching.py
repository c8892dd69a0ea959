"""The batching engine (batching-v1): the contract's example, validation, exact
batch lengths, feasibility and determinism properties, brute-force optima."""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.batching import BatchingProblemError, baselines, batch
from edge.batching.cost import BlockCoster, Spot
from edge.routing import parse_problem, route
from edge.routing.engine import block_legs
from edge.routing.metric import BlockMetric
from edge.routing.model import BlockProblem

CONTRACT_EXAMPLE: dict[str, Any] = {
    "layout": {
        "kind": "blocks",
        "aisles": 10,
        "aisle_pitch_m": 5.0,
        "blocks": 1,
        "block_length_m": 47.0,
        "depot": {"x": 0.0, "y": 0.0},
    },
    "capacity": {"units": 45, "orders": 4},
    "orders": [
        {
            "id": "SO-1",
            "picks": [
                {"id": "SO-1/1", "aisle": 3, "y": 12.5, "units": 2},
                {"id": "SO-1/2", "aisle": 7, "y": 31.5, "units": 1},
            ],
        },
        {"id": "SO-2", "picks": [{"id": "SO-2/1", "aisle": 3, "y": 14.5, "units": 5}]},
    ],
    "time_limit_ms": 1000,
}


def random_problem(
    rng: random.Random,
    *,
    orders: int,
    blocks: int = 1,
    aisles: int = 6,
    units: int = 12,
    max_orders: int | None = None,
    depot_x: float | None = None,
) -> dict[str, Any]:
    length = 20.0
    out: list[dict[str, Any]] = []
    for o in range(orders):
        picks = []
        for j in range(rng.randint(1, 4)):
            picks.append(
                {
                    "id": f"O{o}/{j}",
                    "aisle": rng.randrange(aisles),
                    "y": rng.randrange(blocks) * length + rng.randint(1, 39) / 2,
                    "units": rng.randint(1, 3),
                }
            )
        out.append({"id": f"O{o}", "picks": picks})
    biggest = max((sum(p["units"] for p in o["picks"]) for o in out), default=1)
    cap: dict[str, Any] = {"units": max(units, biggest)}
    if max_orders is not None:
        cap["orders"] = max_orders
    if depot_x is None:
        depot_x = rng.choice([0.0, 4.5, 7.5, -3.0, (aisles - 1) * 3.0])
    return {
        "layout": {
            "kind": "blocks",
            "aisles": aisles,
            "aisle_pitch_m": 3.0,
            "blocks": blocks,
            "block_length_m": length,
            "depot": {"x": depot_x, "y": 0.0},
        },
        "capacity": cap,
        "orders": out,
    }


def order_units(problem: dict[str, Any]) -> dict[str, int]:
    return {o["id"]: sum(p.get("units", 1) for p in o["picks"]) for o in problem["orders"]}


def check_answer(problem: dict[str, Any], answer: dict[str, Any]) -> None:
    """Every order once, capacities kept, every route recomputable to 1 mm."""
    units = order_units(problem)
    picks_of = {o["id"]: o["picks"] for o in problem["orders"]}
    seen = [oid for b in answer["batches"] for oid in b["orders"]]
    assert sorted(seen) == sorted(units), "every order exactly once"
    cap = problem["capacity"]
    total = 0.0
    for b in answer["batches"]:
        assert b["units"] == sum(units[o] for o in b["orders"]) <= cap["units"]
        assert len(b["orders"]) <= cap.get("orders", len(units))
        picks = [
            {k: v for k, v in p.items() if k != "units"} for o in b["orders"] for p in picks_of[o]
        ]
        r = b["route"]
        assert sorted(r["sequence"]) == sorted(p["id"] for p in picks)
        parsed = parse_problem({"layout": problem["layout"], "picks": picks})
        assert isinstance(parsed, BlockProblem)
        index = {p.id: i for i, p in enumerate(parsed.picks)}
        legs = block_legs(
            parsed, BlockMetric(parsed.layout, parsed.blocked), [index[i] for i in r["sequence"]]
        )
        assert abs(sum(legs) / 1000 - r["length_m"]) <= 0.001
        assert r["optimal"] is True
        assert (
            abs(route({"layout": problem["layout"], "picks": picks})["length_m"] - r["length_m"])
            <= 0.001
        )
        total += r["length_m"]
    assert abs(total - answer["total_length_m"]) <= 0.001 * max(1, len(answer["batches"]))
    singles = sum(
        route(
            {
                "layout": problem["layout"],
                "picks": [{k: v for k, v in p.items() if k != "units"} for p in o["picks"]],
            }
        )["length_m"]
        for o in problem["orders"]
    )
    assert abs(singles - answer["single_order_length_m"]) <= 0.001 * len(problem["orders"])


# --------------------------------------------------------------------------- the contract


def test_contract_example() -> None:
    answer = batch(copy.deepcopy(CONTRACT_EXAMPLE))
    check_answer(CONTRACT_EXAMPLE, answer)
    assert [b["orders"] for b in answer["batches"]] == [["SO-1", "SO-2"]]
    assert answer["batches"][0]["units"] == 8
    assert set(answer) >= {
        "batches",
        "total_length_m",
        "single_order_length_m",
        "algorithm",
        "elapsed_ms",
    }
    assert answer["total_length_m"] <= answer["single_order_length_m"]


def test_units_default_to_one_and_orders_capacity_splits_carts() -> None:
    problem = copy.deepcopy(CONTRACT_EXAMPLE)
    for o in problem["orders"]:
        for p in o["picks"]:
            p.pop("units")
    problem["capacity"] = {"units": 45, "orders": 1}
    answer = batch(problem)
    assert sorted(b["units"] for b in answer["batches"]) == [1, 2]
    assert len(answer["batches"]) == 2
    check_answer(problem, answer)


def test_no_orders_is_no_batches() -> None:
    problem = {**CONTRACT_EXAMPLE, "orders": []}
    answer = batch(problem)
    assert answer["batches"] == [] and answer["total_length_m"] == 0


def test_graph_layouts_are_batched_by_route() -> None:
    layout = {
        "kind": "graph",
        "nodes": [
            {"id": "A", "x": 0.0, "y": 0.0},
            {"id": "B", "x": 0.0, "y": 20.0},
            {"id": "C", "x": 10.0, "y": 20.0},
        ],
        "edges": [{"from": "A", "to": "B"}, {"from": "B", "to": "C"}],
        "depot": "A",
    }
    problem = {
        "layout": layout,
        "capacity": {"units": 3},
        "orders": [
            {"id": "a", "picks": [{"id": "a1", "edge": 0, "offset_m": 5.0}]},
            {"id": "b", "picks": [{"id": "b1", "edge": 1, "offset_m": 5.0}]},
            {"id": "c", "picks": [{"id": "c1", "edge": 1, "offset_m": 9.0}]},
        ],
        "max_iterations": 20,
    }
    answer = batch(problem)
    assert answer["total_length_m"] == pytest.approx(2 * 29.0)  # one tour to C covers all
    assert baselines(problem)["fcfs_s_shape_m"] is None


# --------------------------------------------------------------------------- validation


def _bad(mutate: Any) -> str:
    problem = copy.deepcopy(CONTRACT_EXAMPLE)
    mutate(problem)
    with pytest.raises(BatchingProblemError) as info:
        batch(problem)
    assert isinstance(info.value, ValueError)
    return str(info.value)


@pytest.mark.parametrize(
    ("mutate", "prefix"),
    [
        (lambda p: p.pop("capacity"), "capacity: missing"),
        (lambda p: p["capacity"].update(units=0), "capacity.units"),
        (lambda p: p["capacity"].update(units=5.5), "capacity.units"),
        (lambda p: p["capacity"].update(orders=0), "capacity.orders"),
        (lambda p: p["capacity"].update(totes=3), "capacity.totes"),
        (lambda p: p.update(orders={}), "orders: must be a list"),
        (lambda p: p["orders"][1].update(id="SO-1"), "orders[1].id: duplicate order id"),
        (lambda p: p["orders"][1].update(picks=[]), "orders[1].picks: must be a non-empty"),
        (
            lambda p: p["orders"][1]["picks"][0].update(id="SO-1/2"),
            "orders[1].picks[0].id: duplicate id",
        ),
        (lambda p: p["orders"][1]["picks"][0].update(y=47.0), "orders[1].picks[0].y"),
        (lambda p: p["orders"][1]["picks"][0].update(aisle=10), "orders[1].picks[0].aisle"),
        (lambda p: p["orders"][0]["picks"][1].update(units=0), "orders[0].picks[1].units"),
        (lambda p: p["orders"][0]["picks"][1].pop("y"), "orders[0].picks[1].y: missing"),
        (lambda p: p["layout"].update(kind="maze"), "layout.kind"),
        (lambda p: p["layout"].update(aisles=-1), "layout.aisles"),
        (lambda p: p.update(time_limit_ms=0), "time_limit_ms"),
        (lambda p: p.update(time_limit_ms="1s"), "time_limit_ms"),
        (lambda p: p.update(max_iterations=-1), "max_iterations"),
        (lambda p: p.update(seed="x"), "seed"),
        (lambda p: p.update(picks=[]), "picks: not part of a batching problem"),
    ],
)
def test_bad_problems_name_the_field(mutate: Any, prefix: str) -> None:
    assert _bad(mutate).startswith(prefix)


def test_an_order_over_capacity_is_an_error_not_a_split() -> None:
    message = _bad(lambda p: p["capacity"].update(units=4))
    assert message.startswith("orders[1].picks: order 'SO-2' has 5 units")
    assert "never split" in message


def test_duplicate_pick_id_across_orders_names_both() -> None:
    message = _bad(lambda p: p["orders"][1]["picks"][0].update(id="SO-1/1"))
    assert message == "orders[1].picks[0].id: duplicate id 'SO-1/1' (also orders[0].picks[0])"


def test_cli_prints_json_and_exits_2_on_a_bad_problem(tmp_path: Any) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({**CONTRACT_EXAMPLE, "max_iterations": 5}))
    run = [sys.executable, "-m", "edge", "batch"]
    out = subprocess.run([*run, str(good)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["batches"][0]["orders"] == ["SO-1", "SO-2"]
    out = subprocess.run([*run, str(good), "--compare"], capture_output=True, text=True, check=True)
    assert "FCFS carts, S-shape routes" in out.stdout and "one order per tour" in out.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**CONTRACT_EXAMPLE, "capacity": {"units": 4}}))
    out = subprocess.run([*run, str(bad)], capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert out.stderr.startswith("error: orders[1].picks: ") and out.stderr.count("\n") == 1


# --------------------------------------------------------------------------- exact lengths


def _coster_for(problem: dict[str, Any]) -> BlockCoster:
    lay = problem["layout"]
    length = round(lay["block_length_m"] * 1000)
    spots = []
    for o in problem["orders"]:
        mine = []
        for p in o["picks"]:
            y = round(p["y"] * 1000)
            mine.append(Spot(p["aisle"], y // length, y - (y // length) * length))
        spots.append(mine)
    return BlockCoster(
        aisles=lay["aisles"],
        pitch=round(lay["aisle_pitch_m"] * 1000),
        blocks=lay["blocks"],
        block_length=length,
        depot_x=round(lay["depot"]["x"] * 1000),
        spots=spots,
    )


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_the_fast_coster_agrees_with_route(blocks: int) -> None:
    rng = random.Random(blocks)
    for _ in range(60):
        aisles = rng.randint(1, 7)
        problem = random_problem(
            rng,
            orders=5,
            blocks=blocks,
            aisles=aisles,
            depot_x=rng.choice([0.0, 1.5, 3.0, -3.0, aisles * 3.0]),
        )
        coster = _coster_for(problem)
        for mask in rng.sample(range(1, 32), 8):
            picks = [
                {k: v for k, v in p.items() if k != "units"}
                for i, o in enumerate(problem["orders"])
                if mask >> i & 1
                for p in o["picks"]
            ]
            expected = route({"layout": problem["layout"], "picks": picks})["length_m"]
            assert coster.cost(mask) == round(expected * 1000), (problem, mask)


# --------------------------------------------------------------------------- brute force


def set_partitions(items: list[int]) -> Iterator[list[list[int]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in set_partitions(rest):
        yield [[first], *part]
        for k in range(len(part)):
            yield [*part[:k], [first, *part[k]], *part[k + 1 :]]


def brute_force(problem: dict[str, Any]) -> float:
    coster = _coster_for(problem)
    units = [sum(p.get("units", 1) for p in o["picks"]) for o in problem["orders"]]
    cap = problem["capacity"]
    best = float("inf")
    for part in set_partitions(list(range(len(units)))):
        if any(
            sum(units[i] for i in b) > cap["units"] or len(b) > cap.get("orders", 99) for b in part
        ):
            continue
        best = min(best, sum(coster.cost(sum(1 << i for i in b)) for b in part))
    return best / 1000


def test_set_partitions_enumerates_bell_numbers() -> None:
    assert [sum(1 for _ in set_partitions(list(range(n)))) for n in range(1, 8)] == [
        1,
        2,
        5,
        15,
        52,
        203,
        877,
    ]


@pytest.mark.parametrize("seed", range(12))
def test_small_instances_reach_the_brute_force_optimum(seed: int) -> None:
    rng = random.Random(100 + seed)
    problem = random_problem(
        rng,
        orders=rng.randint(4, 8),
        blocks=rng.choice([1, 1, 2]),
        aisles=rng.randint(3, 8),
        units=rng.randint(8, 16),
        max_orders=rng.choice([None, 2, 3]),
    )
    problem["max_iterations"] = 300
    answer = batch(problem)
    check_answer(problem, answer)
    assert answer["total_length_m"] == pytest.approx(brute_force(problem), abs=1e-6)


# --------------------------------------------------------------------------- properties

_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw: st.DrawFn) -> dict[str, Any]:
    seed = draw(st.integers(0, 10**6))
    rng = random.Random(seed)
    return random_problem(
        rng,
        orders=draw(st.integers(1, 14)),
        blocks=draw(st.sampled_from([1, 1, 2])),
        aisles=draw(st.integers(1, 8)),
        units=draw(st.integers(12, 30)),
        max_orders=draw(st.sampled_from([None, 1, 2, 3, 5])),
    )


@_SETTINGS
@given(problems(), st.integers(0, 3))
def test_every_answer_is_feasible(problem: dict[str, Any], seed: int) -> None:
    problem["max_iterations"] = 15
    problem["seed"] = seed
    check_answer(problem, batch(problem))


@_SETTINGS
@given(problems(), st.integers(0, 40))
def test_a_larger_budget_is_never_worse_and_answers_are_deterministic(
    problem: dict[str, Any], small: int
) -> None:
    problem["seed"] = 7
    answers = {}
    for iterations in (small, small + 25):
        first = batch({**problem, "max_iterations": iterations})
        again = batch({**problem, "max_iterations": iterations})
        assert [b["orders"] for b in first["batches"]] == [b["orders"] for b in again["batches"]]
        assert first["total_length_m"] == again["total_length_m"]
        answers[iterations] = first["total_length_m"]
    assert answers[small + 25] <= answers[small]


def test_a_larger_time_budget_is_never_worse() -> None:
    rng = random.Random(3)
    problem = random_problem(rng, orders=30, aisles=8, units=20)
    totals = [batch({**problem, "time_limit_ms": ms})["total_length_m"] for ms in (30, 300)]
    assert totals[1] <= totals[0]


def test_batching_beats_the_baselines_it_reports() -> None:
    rng = random.Random(11)
    problem = random_problem(rng, orders=25, aisles=8, units=20)
    problem["max_iterations"] = 50
    answer = batch(problem)
    base = baselines(problem)
    assert answer["single_order_length_m"] == pytest.approx(base["single_exact_m"])
    assert answer["total_length_m"] <= base["fcfs_exact_m"] <= base["fcfs_s_shape_m"] + 1e-9
    assert base["single_exact_m"] <= base["single_s_shape_m"] + 1e-9
