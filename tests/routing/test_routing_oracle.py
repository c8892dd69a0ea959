"""Property tests: the exact engine against an independent Held–Karp oracle.

Random conventional layouts (1–3 blocks, every depot position, empty aisles,
duplicate pick positions, up to 12 picks), with and without the start/end and
blocked extensions: the route length equals the oracle's optimum to the
millimetre, equals the re-summed shortest-path legs of the returned sequence, and
the drawn waypoints are an axis-parallel walk of the same length.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle_routing import INF, mm, optimal_length, sequence_length

from edge.routing import route

SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, Any]:
    aisles = draw(st.integers(1, 7))
    pitch = draw(st.sampled_from([2.5, 3.0]))
    blocks = draw(st.integers(1, 3))
    length = draw(st.sampled_from([10.0, 12.0]))
    last = (aisles - 1) * pitch
    where = draw(st.sampled_from(["left", "aisle", "between", "right"]))
    if where == "left":
        x = -draw(st.sampled_from([0.5, 2.0, 7.0]))
    elif where == "aisle":
        x = draw(st.integers(0, aisles - 1)) * pitch
    elif where == "between" and aisles > 1:
        x = draw(st.integers(0, aisles - 2)) * pitch + draw(st.sampled_from([0.5, 1.25]))
    else:
        x = last + draw(st.sampled_from([0.5, 4.0]))
    return {
        "kind": "blocks",
        "aisles": aisles,
        "aisle_pitch_m": pitch,
        "blocks": blocks,
        "block_length_m": length,
        "depot": {"x": x, "y": 0.0},
    }


def _offsets(length: float) -> st.SearchStrategy[float]:
    # a few fixed offsets make duplicate positions likely; the rest are arbitrary
    return st.one_of(
        st.sampled_from([0.5, 3.0, 5.0, length - 0.5]),
        st.integers(1, int(length * 10) - 1).map(lambda t: t / 10),
    )


@st.composite
def problems(draw: st.DrawFn, max_picks: int = 12, min_picks: int = 0) -> dict[str, Any]:
    lay = draw(layouts())
    n = draw(st.integers(min_picks, max_picks))
    # concentrate picks on a few aisles so that empty aisles are common
    used = draw(st.lists(st.integers(0, lay["aisles"] - 1), min_size=1, max_size=4))
    picks = []
    for i in range(n):
        aisle = draw(st.sampled_from(used))
        block = draw(st.integers(0, lay["blocks"] - 1))
        y = block * lay["block_length_m"] + draw(_offsets(lay["block_length_m"]))
        picks.append({"id": f"P{i}", "aisle": aisle, "y": y})
    return {"layout": lay, "picks": picks}


@st.composite
def spots(draw: st.DrawFn, lay: dict[str, Any]) -> dict[str, Any]:
    """A start/end: a point in an aisle (possibly on a cross aisle) or on a cross aisle."""
    if draw(st.booleans()):
        y = draw(st.integers(0, int(lay["blocks"] * lay["block_length_m"] * 2))) / 2
        return {"aisle": draw(st.integers(0, lay["aisles"] - 1)), "y": y}
    lo = min(0.0, lay["depot"]["x"])
    hi = max((lay["aisles"] - 1) * lay["aisle_pitch_m"], lay["depot"]["x"])
    x = lo + (hi - lo) * draw(st.integers(0, 8)) / 8
    return {"x": round(x, 3), "y": draw(st.integers(0, lay["blocks"])) * lay["block_length_m"]}


def check(problem: dict[str, Any], result: dict[str, Any], optimum: int) -> None:
    assert sorted(result["sequence"]) == sorted(p["id"] for p in problem["picks"])
    assert mm(result["length_m"]) == optimum
    assert sequence_length(problem, result["sequence"]) == optimum
    assert result["optimal"] is True
    assert abs(sum(result["legs_m"]) - result["length_m"]) < 0.001
    walk = result["waypoints"]
    walked = 0
    for (x1, y1), (x2, y2) in itertools.pairwise(walk):
        assert x1 == x2 or y1 == y2, "waypoints must follow aisles and cross aisles"
        walked += mm(abs(x1 - x2) + abs(y1 - y2))
    assert abs(walked - optimum) <= len(walk), "the drawn walk has the route's length"
    pitch = problem["layout"]["aisle_pitch_m"]
    for p in problem["picks"]:
        x, y = p["aisle"] * pitch, p["y"]
        assert any(
            min(a[0], b[0]) - 1e-9 <= x <= max(a[0], b[0]) + 1e-9
            and min(a[1], b[1]) - 1e-9 <= y <= max(a[1], b[1]) + 1e-9
            for a, b in itertools.pairwise(walk)
        ) or walk == [[x, y]], f"the drawn walk passes {p['id']}"


@SETTINGS
@given(problems())
def test_exact_equals_oracle(problem: dict[str, Any]) -> None:
    result = route(problem)
    check(problem, result, optimal_length(problem))
    depot = [problem["layout"]["depot"]["x"], 0.0]
    assert result["waypoints"][0] == depot
    assert result["waypoints"][-1] == depot


@SETTINGS
@given(st.data())
def test_start_end_equals_oracle(data: st.DataObject) -> None:
    problem = data.draw(problems(max_picks=9))
    lay = problem["layout"]
    if data.draw(st.booleans()):
        problem["start"] = data.draw(spots(lay))
    if data.draw(st.booleans()):
        problem["end"] = data.draw(spots(lay))
    result = route(problem)
    check(problem, result, optimal_length(problem))


@SETTINGS
@given(st.data())
def test_blocked_equals_oracle(data: st.DataObject) -> None:
    problem = data.draw(problems(max_picks=9))
    lay = problem["layout"]
    taken = {(p["aisle"], int(p["y"] // lay["block_length_m"])) for p in problem["picks"]}
    free = [
        (a, b) for a in range(lay["aisles"]) for b in range(lay["blocks"]) if (a, b) not in taken
    ]
    chosen = data.draw(st.lists(st.sampled_from(free), unique=True, max_size=6)) if free else []
    problem["blocked"] = [{"aisle": a, "block": b} for a, b in chosen]
    if data.draw(st.booleans()):
        start = data.draw(spots(lay))
        if (
            "aisle" not in start
            or (start["aisle"], start["y"] // lay["block_length_m"]) not in chosen
        ):
            problem["start"] = start
    optimum = optimal_length(problem)
    if optimum >= INF:
        try:
            route(problem)
        except ValueError as exc:
            assert "blocked" in str(exc)
        else:
            raise AssertionError("an unreachable pick must be an error")
        return
    check(problem, route(problem), optimum)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.data())
def test_many_picks_equal_oracle(data: st.DataObject) -> None:
    # the general strategy favours small lists; here always 10–12 picks
    problem = data.draw(problems(max_picks=12, min_picks=10))
    check(problem, route(problem), optimal_length(problem))


def test_route_is_thread_safe_and_deterministic() -> None:
    import random
    from concurrent.futures import ThreadPoolExecutor

    rnd = random.Random(3)
    instances = []
    for k in range(24):
        blocks = 1 + k % 3
        instances.append(
            {
                "layout": {
                    "kind": "blocks",
                    "aisles": 12,
                    "aisle_pitch_m": 3.0,
                    "blocks": blocks,
                    "block_length_m": 10.0,
                    "depot": {"x": rnd.choice([-2.0, 0.0, 16.5]), "y": 0.0},
                },
                "picks": [
                    {
                        "id": f"P{i}",
                        "aisle": rnd.randrange(12),
                        "y": rnd.randrange(blocks) * 10 + 5.5,
                    }
                    for i in range(15)
                ],
            }
        )
    serial = [route(p)["length_m"] for p in instances]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda p: route(p)["length_m"], instances * 3))
    assert parallel == serial * 3
