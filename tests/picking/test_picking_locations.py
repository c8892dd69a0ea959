"""Location choice rules (pure): FEFO first, fewest stops, then the walk."""

from __future__ import annotations

from edge.picking.allocation import Candidate, LinePlan, choose, plan_line

LAYOUT = {
    "kind": "blocks",
    "aisles": 10,
    "aisle_pitch_m": 3.0,
    "blocks": 1,
    "block_length_m": 20.0,
    "depot": {"x": 0.0, "y": 0.0},
}


def c(
    location: str, avail: int, expiry: str | None = None, aisle: int = 1, y: float = 5.0
) -> Candidate:
    return Candidate(location, "", expiry, avail, aisle, y)


def test_fefo_takes_the_earliest_expiry_even_when_it_cannot_fill() -> None:
    plan = plan_line([c("late", 10, "2027-01-01"), c("early", 2, "2026-01-01"), c("none", 50)], 5)
    assert [(a.location, n) for a, n in plan.fixed] == [("early", 2)]
    assert [o.location for o in plan.options] == ["late"] and plan.units == 3
    assert plan.missing == 0


def test_one_location_that_can_fill_is_one_stop_with_a_choice() -> None:
    plan = plan_line([c("a", 3), c("b", 10), c("d", 4)], 4)
    assert plan.fixed == []
    assert {o.location for o in plan.options} == {"b", "d"}
    assert plan.units == 4


def test_split_over_the_largest_rows_and_report_what_is_missing() -> None:
    plan = plan_line([c("a", 3), c("b", 2), c("z", 0)], 7)
    assert [(a.location, n) for a, n in plan.fixed] == [("a", 3), ("b", 2)]
    assert plan.options == [] and plan.missing == 2


def test_many_combinations_go_next_to_picks_the_tour_makes_anyway() -> None:
    fixed = LinePlan(fixed=[(c("fixed", 5, aisle=7, y=12.0), 5)])
    flexible = [
        LinePlan(options=[c(f"x{n}", 5, aisle=2, y=3.0), c(f"y{n}", 5, aisle=7, y=11.0)], units=1)
        for n in range(3)  # 8 combinations: beyond what the engine is asked to price
    ]
    choose([fixed, *flexible], LAYOUT)
    assert [p.options[p.choice].location for p in flexible] == ["y0", "y1", "y2"]


def test_few_combinations_are_priced_by_the_engine() -> None:
    near_other = LinePlan(fixed=[(c("fixed", 5, aisle=8, y=15.0), 5)])
    flexible = LinePlan(
        options=[c("front", 5, aisle=0, y=1.0), c("beside", 5, aisle=8, y=14.0)], units=1
    )
    choose([near_other, flexible], LAYOUT)
    assert flexible.options[flexible.choice].location == "beside"
