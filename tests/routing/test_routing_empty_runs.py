"""Wide layouts with long runs of empty aisles, against the Held–Karp oracle.

The exact engine leaves out empty aisles whose vertical travel a neighbouring
aisle can take over (``_drop_empty_columns`` in ``edge/routing/blocks.py``). These
properties put picks on a few of up to 16 aisles, so most aisles are empty, vary
the aisle pitch against the block length (vertical travel cheap or dear), and
block sub-aisles inside the empty runs and next to them, with and without a
start and an end. Last, the transition tables filled from cold by many threads
at once.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle_routing import INF, optimal_length
from test_routing_oracle import check, spots

from edge.routing import route

SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@st.composite
def wide_problems(draw: st.DrawFn) -> dict[str, Any]:
    aisles = draw(st.integers(5, 16))
    pitch = draw(st.sampled_from([1.5, 3.0, 8.0, 25.0]))
    blocks = draw(st.integers(1, 4))
    length = draw(st.sampled_from([4.0, 10.0, 20.0]))
    last = (aisles - 1) * pitch
    depot_x = draw(
        st.sampled_from([0.0, -2.0, last, last + 1.5, pitch * (aisles // 2) + pitch / 2])
    )
    used = draw(st.lists(st.integers(0, aisles - 1), min_size=1, max_size=3, unique=True))
    n = draw(st.integers(1, 8 if blocks < 4 else 6))
    picks = []
    for i in range(n):
        block = draw(st.integers(0, blocks - 1))
        t = draw(st.integers(1, int(length * 10) - 1)) / 10
        picks.append({"id": f"P{i}", "aisle": draw(st.sampled_from(used)), "y": block * length + t})
    lay = {
        "kind": "blocks",
        "aisles": aisles,
        "aisle_pitch_m": pitch,
        "blocks": blocks,
        "block_length_m": length,
        "depot": {"x": depot_x, "y": 0.0},
    }
    return {"layout": lay, "picks": picks}


@SETTINGS
@given(wide_problems())
def test_wide_layouts_equal_oracle(problem: dict[str, Any]) -> None:
    check(problem, route(problem), optimal_length(problem))


@SETTINGS
@given(st.data())
def test_wide_layouts_with_blocked_and_ends_equal_oracle(data: st.DataObject) -> None:
    problem = data.draw(wide_problems())
    lay = problem["layout"]
    taken = {(p["aisle"], int(p["y"] // lay["block_length_m"])) for p in problem["picks"]}
    free = [
        (a, b) for a in range(lay["aisles"]) for b in range(lay["blocks"]) if (a, b) not in taken
    ]
    chosen = data.draw(st.lists(st.sampled_from(free), unique=True, max_size=5))
    problem["blocked"] = [{"aisle": a, "block": b} for a, b in chosen]
    for key in ("start", "end"):
        if data.draw(st.booleans()):
            spot = data.draw(spots(lay))
            if "aisle" not in spot or (spot["aisle"], spot["y"] // lay["block_length_m"]) not in {
                *chosen
            }:
                problem[key] = spot
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


def test_long_empty_run_between_two_picks() -> None:
    # 3 blocks, picks only in aisles 0 and 19 at the back: the walk crosses 18 empty
    # aisles; cheapest is up aisle 0, along the back cross aisle and down aisle 19 and
    # back along the front
    problem = {
        "layout": {
            "kind": "blocks",
            "aisles": 20,
            "aisle_pitch_m": 3.0,
            "blocks": 3,
            "block_length_m": 10.0,
            "depot": {"x": 0.0, "y": 0.0},
        },
        "picks": [{"id": "A", "aisle": 0, "y": 25.0}, {"id": "B", "aisle": 19, "y": 25.0}],
    }
    result = route(problem)
    assert result["length_m"] == 2 * 57.0 + 2 * 30.0
    check(problem, result, optimal_length(problem))
    # a blocked sub-aisle in the middle of the run changes nothing here …
    problem["blocked"] = [{"aisle": 9, "block": 1}, {"aisle": 10, "block": 0}]
    check(problem, route(problem), optimal_length(problem))
    # … and blocking the two aisles with picks forces detours through the run
    problem["blocked"] = [{"aisle": 0, "block": 0}, {"aisle": 19, "block": 1}]
    check(problem, route(problem), optimal_length(problem))


def test_cold_transition_tables_under_threads() -> None:
    # From empty transition tables, threads number new states while other sweeps
    # run; a sweep that meets a state numbered after it sized its cost lists starts
    # again. Every answer must equal the serial one.
    import random
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from edge.routing import blocks

    rnd = random.Random(11)
    instances = []
    for k in range(48):
        n_blocks = 1 + k % 4
        instances.append(
            {
                "layout": {
                    "kind": "blocks",
                    "aisles": 12,
                    "aisle_pitch_m": 3.0,
                    "blocks": n_blocks,
                    "block_length_m": 10.0,
                    "depot": {"x": rnd.choice([-2.0, 0.0, 16.5]), "y": 0.0},
                },
                "picks": [
                    {
                        "id": f"P{i}",
                        "aisle": rnd.randrange(12),
                        "y": rnd.randrange(n_blocks) * 10 + 5.5,
                    }
                    for i in range(8)
                ],
            }
        )
    saved = dict(blocks._MEMOS)
    interval = sys.getswitchinterval()
    try:
        blocks._MEMOS.clear()
        sys.setswitchinterval(1e-6)
        with ThreadPoolExecutor(max_workers=8) as pool:
            parallel = list(pool.map(lambda p: route(p)["length_m"], instances))
    finally:
        sys.setswitchinterval(interval)
        blocks._MEMOS.clear()
        blocks._MEMOS.update(saved)
    assert parallel == [route(p)["length_m"] for p in instances]
