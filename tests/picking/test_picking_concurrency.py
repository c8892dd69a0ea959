"""Two pickers, one SKU with stock for one: the units are promised once."""

from __future__ import annotations

import asyncio

from tests.support.api_fixtures import GTIN_ONE, Zone, add_task, events, stock


async def test_two_pickers_one_unit_only_one_is_sent(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-ONE", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-ONE", 1)], order="O-2")
    one, two = await zone.picker("BADGE-1"), await zone.picker("BADGE-2")
    a, b = await asyncio.gather(one.scan("O-1"), two.scan("O-2"))
    results = sorted([a["result"], b["result"]])
    assert results == ["no_stock", "tour_started"]
    assert stock(zone.store, "SKU-ONE", "A-05-05") == (1, 1)
    (exception,) = events(zone.store, "pick_exception")
    assert exception["sku"] == "SKU-ONE" and exception["reason"] == "no_stock"
    winner = one if a["result"] == "tour_started" else two
    await winner.scan("A-05-05")
    assert (await winner.scan(GTIN_ONE))["result"] == "tour_done"
    assert stock(zone.store, "SKU-ONE", "A-05-05") == (0, 0)


async def test_many_pickers_race_for_start(zone: Zone) -> None:
    """Ten pickers scan START at once over five tasks: each task goes to one picker."""
    for n in range(5):
        add_task(zone.store, f"T-{n}", [("SKU-A", 1)], priority=n)
    from edge.api import auth

    for n in range(10):
        auth.add_picker(zone.store, f"X{n}", f"Picker {n}", f"BADGE-X{n}")
    pdas = [await zone.picker(f"BADGE-X{n}") for n in range(10)]
    answers = await asyncio.gather(*(p.scan("START") for p in pdas))
    started = [a for a in answers if a["result"] == "tour_started"]
    assert len(started) == 5
    assert sorted(a["result"] for a in answers).count("no_work") == 5
    tasks = [a["tour"]["stops"][0]["task"] for a in started]
    assert sorted(tasks) == [f"T-{n}" for n in range(5)]
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 5)


async def test_concurrent_scans_of_one_picker_count_each_unit_once(zone: Zone) -> None:
    """A PDA that fires the same unit's scan twice in parallel (double trigger,
    retry racing the original) counts it once when the scan_id is the same."""
    add_task(zone.store, "T-1", [("SKU-A", 3)])
    pda = await zone.picker()
    await pda.scan("T-1")
    await pda.scan("A-01-05")
    from tests.support.api_fixtures import GTIN_A

    answers = await asyncio.gather(*(pda.scan(GTIN_A, scan_id="same") for _ in range(8)))
    assert all(a == answers[0] for a in answers)
    assert sum(e["qty"] for e in events(zone.store, "pick_confirmed")) == 1
    # distinct scans in parallel: exactly the quantity, then over_pick
    answers = await asyncio.gather(*(pda.scan(GTIN_A) for _ in range(4)))
    assert sorted(a["result"] for a in answers) == [
        "item_ok",
        "over_pick",
        "over_pick",
        "tour_done",
    ]
    assert sum(e["qty"] for e in events(zone.store, "pick_confirmed")) == 3
