"""``task_picked``: once per task, when every line is picked or short (issue 10)."""

from __future__ import annotations

from tests.support.api_fixtures import Zone, add_task, events, pick_all, walk


async def test_a_picked_task_goes_upstream_once_with_its_lines_and_tote(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 2), ("SKU-E", 1)], order="O-1", tote="TOTE-7")
    add_task(zone.store, "T-2", [("SKU-C", 1)], order="O-2")
    pda = await zone.picker()
    answer = await pda.scan("T-1")
    assert not events(zone.store, "task_picked")  # started, not picked
    done = await pick_all(pda, answer["tour"])
    assert done["result"] == "tour_done", done
    assert [e["task"] for e in events(zone.store, "task_picked")] == ["T-1"]
    done = await pick_all(pda, (await pda.scan("T-2"))["tour"])
    assert done["result"] == "tour_done", done
    picked = {e["task"]: e for e in events(zone.store, "task_picked")}
    assert set(picked) == {"T-1", "T-2"}
    one = picked["T-1"]
    assert (one["order"], one["totes"], one["picker"]) == ("O-1", ["TOTE-7"], "P1")
    assert one["tour"] == answer["tour"]["tour"]
    assert [(line["sku"], line["picked"], line["short"]) for line in one["lines"]] == [
        ("SKU-A", 2, 0),
        ("SKU-E", 0, 1),  # the zone has none: short from the start
    ]
    assert picked["T-2"]["totes"] == []
    # a scan after the tour changes nothing upstream
    await pda.scan("T-1")
    assert len(events(zone.store, "task_picked")) == 2


async def test_a_task_nothing_of_which_can_be_picked_is_reported_at_once(zone: Zone) -> None:
    add_task(zone.store, "T-E", [("SKU-E", 3)], order="O-E")
    pda = await zone.picker()
    answer = await pda.scan("T-E")
    assert answer["tour"] is None or not walk(answer["tour"]), answer
    (event,) = events(zone.store, "task_picked")
    assert (event["task"], event["order"]) == ("T-E", "O-E")
    assert [(line["picked"], line["short"]) for line in event["lines"]] == [(0, 3)]


async def test_a_short_line_counts_what_was_found(zone: Zone) -> None:
    add_task(zone.store, "T-S", [("SKU-A", 4)], order="O-S")
    pda = await zone.picker()
    answer = await pda.scan("T-S")
    stop = walk(answer["tour"])[0]
    await pda.scan(stop["location"])
    status, answer = await pda.short(stop["stop"], found=0, reason="empty")
    assert status == 200, answer
    (event,) = events(zone.store, "task_picked")
    assert [(line["picked"], line["short"]) for line in event["lines"]] == [(0, 4)]
