"""Hand-made edge cases, metamorphic relations and validation of routing problems."""

from __future__ import annotations

import copy
import itertools
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_routing import mm, optimal_length
from test_routing_oracle import problems

from edge.routing import RoutingProblemError, route


def layout(aisles: int = 5, blocks: int = 1, depot_x: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "blocks",
        "aisles": aisles,
        "aisle_pitch_m": 3.0,
        "blocks": blocks,
        "block_length_m": 20.0,
        "depot": {"x": depot_x, "y": 0.0},
        **extra,
    }


def picks(*spots: tuple[int, float]) -> list[dict[str, Any]]:
    return [{"id": f"L{i}", "aisle": a, "y": y} for i, (a, y) in enumerate(spots)]


# --------------------------------------------------------------------------- edge cases


def test_no_picks_is_an_empty_walk() -> None:
    result = route({"layout": layout(depot_x=4.5), "picks": []})
    assert result["length_m"] == 0
    assert result["sequence"] == []
    assert result["waypoints"] == [[4.5, 0.0]]
    assert result["optimal"] is True


def test_one_pick() -> None:
    result = route({"layout": layout(), "picks": picks((2, 5.0))})
    assert result["length_m"] == pytest.approx(2 * 6 + 2 * 5)
    assert result["sequence"] == ["L0"]
    assert result["waypoints"] == [[0.0, 0.0], [6.0, 0.0], [6.0, 5.0], [6.0, 0.0], [0.0, 0.0]]


def test_all_picks_in_one_aisle_returns_from_the_front_when_shorter() -> None:
    result = route({"layout": layout(), "picks": picks((1, 2.0), (1, 9.0), (1, 4.0))})
    assert result["length_m"] == pytest.approx(2 * 3 + 2 * 9)
    assert result["sequence"] == ["L0", "L2", "L1"]


def test_far_block_of_the_depot_aisle_is_walked_out_and_back() -> None:
    # 2 blocks: the optimum walks aisle 0 twice, through the middle cross aisle
    result = route({"layout": layout(blocks=2), "picks": picks((0, 35.0))})
    assert result["length_m"] == pytest.approx(70.0)
    result = route({"layout": layout(blocks=3), "picks": picks((0, 55.0), (0, 5.0))})
    assert result["length_m"] == pytest.approx(110.0)


@pytest.mark.parametrize("depot_x", [-6.0, 18.5, 4.5])
def test_depot_outside_or_between_aisles(depot_x: float) -> None:
    problem = {"layout": layout(depot_x=depot_x), "picks": picks((0, 5.0), (4, 7.0))}
    result = route(problem)
    assert mm(result["length_m"]) == optimal_length(problem)
    assert result["waypoints"][0] == result["waypoints"][-1] == [depot_x, 0.0]


def test_picks_at_one_spot_are_visited_together() -> None:
    problem = {"layout": layout(), "picks": picks((3, 5.0), (1, 5.0), (3, 5.0))}
    result = route(problem)
    seq = result["sequence"]
    assert abs(seq.index("L0") - seq.index("L2")) == 1


def test_start_differs_from_end() -> None:
    # cart from the depot to a pack station at the right end of the front cross aisle
    problem = {
        "layout": layout(depot_x=0.0),
        "picks": picks((2, 5.0)),
        "end": {"x": 12.0, "y": 0.0},
    }
    result = route(problem)
    assert result["length_m"] == pytest.approx(12 + 2 * 5)
    assert result["waypoints"][0] == [0.0, 0.0]
    assert result["waypoints"][-1] == [12.0, 0.0]


def test_reroute_from_inside_an_aisle() -> None:
    # the picker stands in aisle 2 at y = 15 after a short pick; remaining pick in aisle 3
    problem = {"layout": layout(), "picks": picks((3, 16.0)), "start": {"aisle": 2, "y": 15.0}}
    result = route(problem)
    assert result["length_m"] == pytest.approx(5 + 3 + 4 + 16 + 9)
    assert result["waypoints"][0] == [6.0, 15.0]


def test_walk_inside_a_single_sub_aisle() -> None:
    problem = {
        "layout": layout(),
        "picks": picks((2, 5.0), (2, 9.0)),
        "start": {"aisle": 2, "y": 7.0},
        "end": {"aisle": 2, "y": 8.0},
    }
    result = route(problem)
    assert result["length_m"] == pytest.approx(2 + 4 + 1)
    assert result["waypoints"] == [[6.0, 7.0], [6.0, 5.0], [6.0, 9.0], [6.0, 8.0]]


def test_blocked_sub_aisle_forces_a_detour() -> None:
    problem = {
        "layout": layout(blocks=2),
        "picks": picks((0, 30.0)),
        "blocked": [{"aisle": 0, "block": 0}],
    }
    result = route(problem)
    assert result["length_m"] == pytest.approx(3 + 20 + 3 + 10 + 10 + 3 + 20 + 3)


def test_every_layout_vertex_of_the_contract_example() -> None:
    problem = {
        "layout": layout(aisles=10, blocks=2),
        "picks": [{"id": "L-0001", "aisle": 3, "y": 12.5}, {"id": "L-0002", "aisle": 7, "y": 31.0}],
    }
    result = route(problem)
    assert set(result) >= {
        "length_m",
        "sequence",
        "waypoints",
        "algorithm",
        "optimal",
        "elapsed_ms",
    }
    assert mm(result["length_m"]) == optimal_length(problem)


# --------------------------------------------------------------------------- metamorphic


def mirror(problem: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(problem)
    lay = out["layout"]
    last = (lay["aisles"] - 1) * lay["aisle_pitch_m"]
    lay["depot"]["x"] = round(last - lay["depot"]["x"], 6)
    for p in out["picks"]:
        p["aisle"] = lay["aisles"] - 1 - p["aisle"]
    return out


@settings(max_examples=60, deadline=None, derandomize=True)
@given(problems(max_picks=14), st.randoms(use_true_random=False))
def test_metamorphic_relations(problem: dict[str, Any], rnd: random.Random) -> None:
    base = mm(route(problem)["length_m"])
    shuffled = copy.deepcopy(problem)
    rnd.shuffle(shuffled["picks"])
    assert mm(route(shuffled)["length_m"]) == base
    assert mm(route(mirror(problem))["length_m"]) == base
    lay = problem["layout"]
    if lay["depot"]["x"] <= (lay["aisles"] - 1) * lay["aisle_pitch_m"]:
        wider = copy.deepcopy(problem)
        wider["layout"]["aisles"] += 1
        assert mm(route(wider)["length_m"]) == base
    if problem["picks"]:
        doubled = copy.deepcopy(problem)
        doubled["picks"].append({**rnd.choice(problem["picks"]), "id": "twin"})
        assert mm(route(doubled)["length_m"]) == base
        # moving the depot's layout one aisle pitch right and adding an aisle on the
        # left shifts everything: nothing changes
        shifted = copy.deepcopy(problem)
        shifted["layout"]["aisles"] += 1
        shifted["layout"]["depot"]["x"] += lay["aisle_pitch_m"]
        for p in shifted["picks"]:
            p["aisle"] += 1
        if lay["depot"]["x"] >= 0:
            assert mm(route(shifted)["length_m"]) == base


def test_longer_blocks_never_shorten_the_walk() -> None:
    rnd = random.Random(7)
    for _ in range(20):
        spots = [(rnd.randrange(6), rnd.uniform(0.5, 9.5)) for _ in range(8)]
        short = route(
            {"layout": {**layout(aisles=6), "block_length_m": 10.0}, "picks": picks(*spots)}
        )
        long = route(
            {"layout": {**layout(aisles=6), "block_length_m": 12.0}, "picks": picks(*spots)}
        )
        assert long["length_m"] >= short["length_m"]


# --------------------------------------------------------------------------- validation

GOOD: dict[str, Any] = {"layout": layout(blocks=2), "picks": picks((1, 5.0), (2, 25.0))}


def broken(path: str, value: Any) -> dict[str, Any]:
    """GOOD with ``path`` (dotted, list indices as numbers) set to value; DELETE removes it."""
    problem = copy.deepcopy(GOOD)
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    target: Any = problem
    for k in keys[:-1]:
        target = target[k]
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return problem


DELETE = object()

MALFORMED = [
    (broken("layout.kind", "spiral"), "layout.kind"),
    (broken("layout.kind", DELETE), "layout.kind"),
    (broken("layout", DELETE), "layout"),
    (broken("layout", []), "layout"),
    (broken("layout.aisles", 0), "layout.aisles"),
    (broken("layout.aisles", 2.5), "layout.aisles"),
    (broken("layout.aisles", DELETE), "layout.aisles"),
    (broken("layout.aisle_pitch_m", -3.0), "layout.aisle_pitch_m"),
    (broken("layout.aisle_pitch_m", "3"), "layout.aisle_pitch_m"),
    (broken("layout.blocks", -1), "layout.blocks"),
    (broken("layout.block_length_m", 0), "layout.block_length_m"),
    (broken("layout.block_length_m", float("nan")), "layout.block_length_m"),
    (broken("layout.depot", DELETE), "layout.depot"),
    (broken("layout.depot.y", 4.0), "layout.depot.y"),
    (broken("layout.depot.x", None), "layout.depot.x"),
    (broken("picks", DELETE), "picks"),
    (broken("picks", {"id": 1}), "picks"),
    (broken("picks.0", "L-1"), "picks[0]"),
    (broken("picks.1.y", 40.0), "picks[1].y"),
    (broken("picks.1.y", 20.0), "picks[1].y"),
    (broken("picks.1.y", 0.0), "picks[1].y"),
    (broken("picks.1.y", -2.0), "picks[1].y"),
    (broken("picks.1.y", 41.0), "picks[1].y"),
    (broken("picks.1.aisle", 12), "picks[1].aisle"),
    (broken("picks.1.aisle", -1), "picks[1].aisle"),
    (broken("picks.1.aisle", DELETE), "picks[1].aisle"),
    (broken("picks.1.id", DELETE), "picks[1].id"),
    (broken("picks.1.id", "L0"), "picks[1].id"),
    (broken("picks.1.y", True), "picks[1].y"),
    ({**GOOD, "start": {"aisle": 1, "y": 50.0}}, "start.y"),
    ({**GOOD, "start": {"x": 100.0, "y": 0.0}}, "start.x"),
    ({**GOOD, "end": {"x": 4.0, "y": 3.0}}, "end.y"),
    ({**GOOD, "end": "pack"}, "end"),
    ({**GOOD, "blocked": [{"aisle": 1, "block": 5}]}, "blocked[0].block"),
    ({**GOOD, "blocked": [{"aisle": 1, "block": 0}]}, "picks[0]"),
    ({**GOOD, "blocked": "all"}, "blocked"),
    ([1, 2], "problem"),
]


@pytest.mark.parametrize(("problem", "field"), MALFORMED)
def test_malformed_problem_names_the_field(problem: Any, field: str) -> None:
    with pytest.raises(ValueError, match=r"^" + field.replace("[", r"\[").replace("]", r"\]")):
        route(problem)


def test_error_is_a_project_error_with_a_code() -> None:
    with pytest.raises(RoutingProblemError) as info:
        route(broken("picks.1.y", 40.0))
    assert info.value.code == "routing_problem_invalid"
    assert str(info.value) == "picks[1].y: 40.0 lies on cross aisle 2"


# ------------------------------------------------------------------ outside the exact model


@pytest.mark.parametrize("n", [6, 14])
def test_five_blocks_fall_back_to_search_with_consistent_legs(n: int) -> None:
    rnd = random.Random(n)
    problem = {
        "layout": {**layout(aisles=6, blocks=5), "block_length_m": 8.0},
        "picks": [
            {
                "id": f"P{i}",
                "aisle": rnd.randrange(6),
                "y": rnd.randrange(5) * 8 + rnd.randint(1, 7),
            }
            for i in range(n)
        ],
    }
    result = route(problem)
    optimum = optimal_length(problem) if n <= 8 else None
    assert result["optimal"] is (n <= 8)
    assert result["algorithm"] == ("held-karp" if n <= 8 else "local-search")
    assert mm(sum(result["legs_m"])) == mm(result["length_m"])
    if optimum is not None:
        assert mm(result["length_m"]) == optimum
    walk = result["waypoints"]
    assert walk[0] == walk[-1] == [0.0, 0.0]
    walked = sum(abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in itertools.pairwise(walk))
    assert walked == pytest.approx(result["length_m"], abs=0.01)


def test_integer_ids_come_back_as_given() -> None:
    problem = {
        "layout": layout(),
        "picks": [{"id": 7, "aisle": 1, "y": 3.0}, {"id": "7", "aisle": 2, "y": 3.0}],
    }
    assert sorted(route(problem)["sequence"], key=str) == [7, "7"]
