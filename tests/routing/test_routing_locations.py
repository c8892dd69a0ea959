"""Location choice for scattered storage against brute force over every combination."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle_routing import Grid, mm
from test_routing_oracle import layouts

from edge.routing import choose_locations, route


@st.composite
def instances(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lay = draw(layouts())
    groups = []
    for g in range(draw(st.integers(1, 5))):
        cands = []
        for _ in range(draw(st.integers(1, 3))):
            block = draw(st.integers(0, lay["blocks"] - 1))
            offset = draw(st.integers(1, int(lay["block_length_m"]) - 1))
            cands.append(
                {
                    "aisle": draw(st.integers(0, lay["aisles"] - 1)),
                    "y": block * lay["block_length_m"] + offset,
                }
            )
        groups.append({"id": f"G{g}", "candidates": cands})
    return lay, groups


def brute_force(lay: dict[str, Any], groups: list[dict[str, Any]]) -> int:
    best = None
    for combo in itertools.product(*(g["candidates"] for g in groups)):
        picks = [{"id": g["id"], **c} for g, c in zip(groups, combo, strict=True)]
        length = mm(route({"layout": lay, "picks": picks})["length_m"])
        best = length if best is None else min(best, length)
    assert best is not None
    return best


@settings(max_examples=60, deadline=None, derandomize=True)
@given(instances())
def test_choice_is_the_best_combination(
    instance: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    lay, groups = instance
    result = choose_locations(lay, groups, budget_ms=None)
    assert result["exact"] is True
    assert mm(result["route"]["length_m"]) == brute_force(lay, groups)
    chosen = [g["candidates"][c] for g, c in zip(groups, result["choice"], strict=True)]
    assert [(p["aisle"], p["y"]) for p in result["picks"]] == [
        (c["aisle"], float(c["y"])) for c in chosen
    ]
    assert sorted(result["route"]["sequence"]) == sorted(g["id"] for g in groups)


def test_many_combinations_fall_back_but_never_lose_to_nearest() -> None:
    lay = {
        "kind": "blocks",
        "aisles": 12,
        "aisle_pitch_m": 3.0,
        "blocks": 2,
        "block_length_m": 15.0,
        "depot": {"x": 0.0, "y": 0.0},
    }
    groups = [
        {
            "id": f"G{g}",
            "candidates": [
                {"aisle": (g * 5 + k * 7) % 12, "y": 1.0 + (g * 3 + k * 11) % 28} for k in range(4)
            ],
        }
        for g in range(10)
    ]
    for g in groups:
        for c in g["candidates"]:
            if c["y"] == 15.0:
                c["y"] = 14.0
    result = choose_locations(lay, groups, budget_ms=None)
    assert result["exact"] is False
    # baseline: every line at the candidate with the shortest walk from the depot
    every = [{"id": f"{g['id']}/{k}", **c} for g in groups for k, c in enumerate(g["candidates"])]
    grid = Grid({"layout": lay, "picks": every})
    from_depot = grid.dijkstra(grid.depot)
    nearest = [
        min(g["candidates"], key=lambda c: from_depot[(c["aisle"] * 3000, mm(c["y"]))])
        for g in groups
    ]
    picks = [{"id": g["id"], **c} for g, c in zip(groups, nearest, strict=True)]
    baseline = route({"layout": lay, "picks": picks})
    assert result["route"]["length_m"] <= baseline["length_m"]
    assert result["evaluations"] <= 200 + 1


@pytest.mark.parametrize(
    ("groups", "needle"),
    [
        ("x", "groups"),
        ([{"id": "a", "candidates": []}], "groups[0].candidates"),
        ([{"id": "a", "candidates": [{"aisle": 0, "y": 20.0}]}], "groups[0].candidates[0].y"),
        (
            [
                {"id": "a", "candidates": [{"aisle": 0, "y": 2.0}]},
                {"id": "a", "candidates": [{"aisle": 1, "y": 2.0}]},
            ],
            "groups[1].id",
        ),
    ],
)
def test_bad_groups_name_the_field(groups: Any, needle: str) -> None:
    lay = {
        "kind": "blocks",
        "aisles": 3,
        "aisle_pitch_m": 3.0,
        "blocks": 1,
        "block_length_m": 20.0,
        "depot": {"x": 0.0, "y": 0.0},
    }
    with pytest.raises(ValueError, match="^" + needle.replace("[", r"\[").replace("]", r"\]")):
        choose_locations(lay, groups)


def test_time_budget_keeps_the_answer_valid() -> None:
    lay = {
        "kind": "blocks",
        "aisles": 10,
        "aisle_pitch_m": 3.0,
        "blocks": 2,
        "block_length_m": 10.0,
        "depot": {"x": 0.0, "y": 0.0},
    }
    groups = [
        {
            "id": f"G{g}",
            "candidates": [{"aisle": (g + k * 3) % 10, "y": 1.0 + (g + k) % 9} for k in range(3)],
        }
        for g in range(12)
    ]
    result = choose_locations(lay, groups, budget_ms=0.0)
    assert result["exact"] is False
    assert sorted(result["route"]["sequence"]) == sorted(g["id"] for g in groups)
    assert all(0 <= c < 3 for c in result["choice"])
