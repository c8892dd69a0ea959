"""Short picks: what was found, the location corrected, the rest re-routed."""

from __future__ import annotations

from tests.support.api_fixtures import (
    GTIN_A,
    GTIN_C,
    Zone,
    add_task,
    delta_sum,
    events,
    stock,
    walk,
)


async def _at_stop(zone: Zone, sku: str, lines: list[tuple[str, int]]) -> tuple[object, dict]:
    add_task(zone.store, "T-1", lines)
    pda = await zone.picker()
    answer = await pda.scan("T-1")
    while walk(answer["tour"])[0]["sku"] != sku:
        stop = walk(answer["tour"])[0]
        await pda.scan(stop["location"])
        for _ in range(stop["qty"]):
            answer = await pda.scan({"SKU-A": GTIN_A, "SKU-C": GTIN_C}[stop["sku"]])
    stop = walk(answer["tour"])[0]
    await pda.scan(stop["location"])
    return pda, stop


async def test_short_with_an_alternative_location_reroutes_there(zone: Zone) -> None:
    # 3 units of SKU-C: both A-06-15 (3) and A-08-04 (10) could serve; make A-06-15 the
    # only choice by reserving A-08-04 for someone else first.
    zone.store.run(
        lambda tx: tx.execute("UPDATE stock SET reserved = 8 WHERE location = 'A-08-04'")
    )
    pda, stop = await _at_stop(zone, "SKU-C", [("SKU-A", 1), ("SKU-C", 3)])
    assert stop["location"] == "A-06-15"
    assert (await pda.scan(GTIN_C))["result"] == "item_ok"
    status, answer = await pda.short(stop["stop"], found=1, reason="empty")
    assert status == 200, answer
    assert (answer["result"], answer["feedback"]) == ("rerouted", "warning")
    tour = answer["tour"]
    shorted = next(s for s in tour["stops"] if s["stop"] == stop["stop"])
    assert (shorted["state"], shorted["picked"]) == ("short", 1)
    (new,) = walk(tour)
    assert (new["location"], new["sku"], new["qty"]) == ("A-08-04", "SKU-C", 2)
    # re-routed from where the picker stands (A-06-15), back to the depot
    assert tour["route"]["from"] == [18.0, 15.0]
    assert tour["route"]["waypoints"][0] == [18.0, 15.0]
    assert tour["route"]["waypoints"][-1] == [0.0, 0.0]
    # the location said empty: its stock is now zero, and upstream knows why
    assert stock(zone.store, "SKU-C", "A-06-15") == (0, 0)
    deltas = [e for e in events(zone.store, "stock_delta") if e["location"] == "A-06-15"]
    assert [(d["qty"], d["reason"]) for d in deltas] == [(-1, "pick"), (-2, "short")]
    (exc,) = events(zone.store, "pick_exception")
    assert (exc["location"], exc["expected"], exc["picked"], exc["reason"]) == (
        "A-06-15",
        3,
        1,
        "empty",
    )
    assert stock(zone.store, "SKU-C", "A-08-04") == (10, 10)
    await pda.scan("A-08-04")
    await pda.scan(GTIN_C)
    done = await pda.scan(GTIN_C)
    assert done["result"] == "tour_done"
    assert delta_sum(zone.store, "SKU-C", "A-08-04") == -2
    line = zone.store.query("SELECT picked, state FROM task_lines WHERE sku = 'SKU-C'")[0]
    assert line == {"picked": 3, "state": "picked"}


async def test_short_without_an_alternative_records_the_shortage(zone: Zone) -> None:
    pda, stop = await _at_stop(zone, "SKU-A", [("SKU-A", 4), ("SKU-C", 1)])
    status, answer = await pda.short(stop["stop"], found=2, reason="damaged")
    assert status == 200, answer
    assert (answer["result"], answer["feedback"]) == ("short_recorded", "warning")
    assert [s["sku"] for s in walk(answer["tour"])] == ["SKU-C"]
    # 2 found (confirmed now), 2 damaged written off: 10 - 2 - 2
    assert stock(zone.store, "SKU-A", "A-01-05") == (6, 0)
    deltas = [(e["qty"], e["reason"]) for e in events(zone.store, "stock_delta")]
    assert deltas == [(-2, "pick"), (-2, "short")]
    confirmed = events(zone.store, "pick_confirmed")
    assert [(e["sku"], e["qty"]) for e in confirmed] == [("SKU-A", 2)]
    assert {e["kind"] for e in events(zone.store, "alert")} == {"line_short"}
    (exc,) = events(zone.store, "pick_exception")
    assert (exc["expected"], exc["picked"], exc["reason"]) == (4, 2, "damaged")


async def test_short_of_the_last_stop_finishes_the_tour(zone: Zone) -> None:
    pda, stop = await _at_stop(zone, "SKU-A", [("SKU-A", 2)])
    status, answer = await pda.short(stop["stop"], found=0, reason="other")
    assert status == 200
    assert answer["result"] == "tour_done" and answer["tour"]["state"] == "done"
    assert zone.store.query("SELECT state FROM tasks")[0]["state"] == "done"
    status, body = await pda.short(stop["stop"], found=0)
    assert (status, body["error"]["code"]) == (404, "no_tour")


async def test_a_shorted_stop_cannot_be_shorted_twice(zone: Zone) -> None:
    pda, stop = await _at_stop(zone, "SKU-A", [("SKU-A", 2), ("SKU-C", 1)])
    assert (await pda.short(stop["stop"], found=0))[0] == 200
    status, body = await pda.short(stop["stop"], found=0)
    assert (status, body["error"]["code"]) == (409, "stop_closed")
    assert len(events(zone.store, "pick_exception")) == 1


async def test_skip_moves_a_stop_to_the_end(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1), ("SKU-D", 1)])
    pda = await zone.picker()
    tour = (await pda.scan("T-1"))["tour"]
    first, second = walk(tour)
    status, answer = await pda.call("POST", "/api/v1/tour/skip", {"stop": first["stop"]})
    assert status == 200 and answer["result"] == "skipped"
    assert [s["stop"] for s in walk(answer["tour"])] == [second["stop"], first["stop"]]
    assert answer["tour"]["next_stop"] == second["stop"]
    # re-routed: from the depot through the second stop, then the skipped one, home
    points = answer["tour"]["route"]["waypoints"]
    assert points[0] == [0.0, 0.0] and points[-1] == [0.0, 0.0]
    at = [i for i, p in enumerate(points) if p == [first["x"], first["y"]]]
    at_second = [i for i, p in enumerate(points) if p == [second["x"], second["y"]]]
    assert at and at_second and max(at_second) < max(at)
