"""Put-back (issue 12): the units of an order the cloud cancelled go back.

Through the real PDA API over a seeded SQLite zone: a cancel after units
were picked leaves put-back lines for the picker; once the tour is over,
scanning a unit and then a location that stocks it returns it (stock row,
``stock_delta`` reason ``return``); wrong locations and items change nothing;
no new work starts until everything is back.
"""

from __future__ import annotations

from functools import partial

from edge.maintenance import Maintenance
from edge.masterdata import Notice, apply_changes
from edge.store.sync_state import StoreChangeSink
from tests.support.api_fixtures import (
    GTIN_A,
    GTIN_C,
    Pda,
    Zone,
    add_task,
    delta_sum,
    events,
    stock,
)


def cancel_page(zone: Zone, *tasks: str) -> list[Notice]:
    """The cloud's cancels as the downloader applies them: one page, one transaction."""
    sink = StoreChangeSink(zone.store, partial(apply_changes, planner=zone.picking.planner))
    page = [{"type": "task_cancel", "data": {"task": t}} for t in tasks]
    return zone.store.run(lambda tx: sink.apply(tx, page))


async def picked_then_cancelled(zone: Zone) -> Pda:
    """P1 picks 3 SKU-A of T-1 (from A-01-05), the cloud cancels T-1 while
    the tour still has a stop of it, and the tour ends without it."""
    add_task(zone.store, "T-1", [("SKU-A", 3), ("SKU-C", 1)], order="O-1")
    pda = await zone.picker()
    await pda.scan("T-1")
    await pda.scan("A-01-05")
    for _ in range(3):
        answer = await pda.scan(GTIN_A)
    assert answer["result"] == "stop_done", answer
    cancel_page(zone, "T-1")
    status, _ = await pda.tour()
    assert status == 404  # the tour ended with its last open stop cancelled
    assert not events(zone.store, "task_picked")  # a cancelled task is not picked
    (cancelled,) = events(zone.store, "task_cancelled")
    assert cancelled["put_back"] == [{"sku": "SKU-A", "location": "A-01-05", "qty": 3}]
    return pda


def open_lines(zone: Zone) -> list[dict[str, object]]:
    return zone.store.query("SELECT * FROM put_backs WHERE closed_ms IS NULL ORDER BY id")


async def test_units_go_back_by_scanning_the_unit_then_its_location(zone: Zone) -> None:
    pda = await picked_then_cancelled(zone)
    assert stock(zone.store, "SKU-A", "A-01-05") == (7, 0)
    status, body = await pda.call("GET", "/api/v1/put-backs")
    assert status == 200
    assert body["put_backs"] == [
        {"task": "T-1", "sku": "SKU-A", "origin": "A-01-05", "lot": None, "qty": 3, "in_hand": 0}
    ]
    before = len(events(zone.store))

    held = await pda.scan(GTIN_A)
    assert (held["result"], held["feedback"]) == ("put_back_item", "success")
    assert "A-01-05" in held["message"]
    assert held["put_backs"][0]["in_hand"] == 1
    assert len(events(zone.store)) == before  # in hand is not back yet
    back = await pda.scan("A-01-05")
    assert (back["result"], back["feedback"]) == ("put_back_done", "success")
    assert back["put_backs"][0]["qty"] == 2
    assert stock(zone.store, "SKU-A", "A-01-05") == (8, 0)
    (returned,) = [e for e in events(zone.store, "stock_delta") if e["reason"] == "return"]
    assert (returned["sku"], returned["location"], returned["qty"], returned["ref"]) == (
        "SKU-A",
        "A-01-05",
        1,
        "T-1",
    )
    # two at once (a count of 2 in one GS1 scan: AI 30), back: the line closes
    await pda.scan(f"01{GTIN_A}302")
    done = await pda.scan("A-01-05")
    assert done["result"] == "put_back_done"
    assert done["put_backs"] == []
    assert "everything is put back" in done["message"]
    assert not open_lines(zone)
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 0)
    # the ledger: picked 3 out, 3 returned
    assert delta_sum(zone.store, "SKU-A", "A-01-05") == 0


async def test_nothing_new_starts_until_everything_is_back(zone: Zone) -> None:
    pda = await picked_then_cancelled(zone)
    add_task(zone.store, "T-2", [("SKU-C", 1)], order="O-2")
    for code in ("START", "T-2", "O-2"):
        refused = await pda.scan(code)
        assert (refused["result"], refused["feedback"]) == ("put_back_required", "warning")
        assert "3 × SKU-A (from A-01-05)" in refused["message"]
        assert refused["tour"] is None
    (state,) = zone.store.query("SELECT state FROM tasks WHERE task = 'T-2'")
    assert state["state"] == "open"


async def test_wrong_locations_and_items_change_nothing(zone: Zone) -> None:
    pda = await picked_then_cancelled(zone)
    before = len(events(zone.store))
    first = await pda.scan("A-01-05")  # nothing in hand yet
    assert (first["result"], first["feedback"]) == ("put_back_required", "warning")
    other = await pda.scan(GTIN_C)  # not to be put back
    assert (other["result"], other["feedback"]) == ("wrong_item", "error")
    await pda.scan(GTIN_A)
    wrong = await pda.scan("A-06-15")  # a location of SKU-C, not of SKU-A
    assert (wrong["result"], wrong["feedback"]) == ("wrong_location", "error")
    too_many = await pda.scan(f"01{GTIN_A}303")  # 1 in hand + 3 > 3
    assert (too_many["result"], too_many["feedback"]) == ("over_pick", "error")
    assert len(events(zone.store)) == before
    assert open_lines(zone)[0]["in_hand"] == 1
    assert stock(zone.store, "SKU-A", "A-01-05") == (7, 0)


async def test_a_location_that_stocks_the_sku_takes_it_too(zone: Zone) -> None:
    """SKU-C picked at A-06-15 may go back to A-08-04, its other location."""
    add_task(zone.store, "T-1", [("SKU-C", 2), ("SKU-A", 1)], order="O-1")
    pda = await zone.picker()
    answer = await pda.scan("T-1")
    stop = next(s for s in answer["tour"]["stops"] if s["sku"] == "SKU-C")
    origin = stop["location"]
    if answer["tour"]["next_stop"] != stop["stop"]:
        await pda.call("POST", "/api/v1/tour/skip", {"stop": answer["tour"]["next_stop"]})
    await pda.scan(origin)
    await pda.scan(GTIN_C)
    await pda.scan(GTIN_C)
    cancel_page(zone, "T-1")
    other = "A-08-04" if origin == "A-06-15" else "A-06-15"
    qty_other = stock(zone.store, "SKU-C", other)[0]
    await pda.scan(f"01{GTIN_C}302")
    back = await pda.scan(other)
    assert back["result"] == "put_back_done", back
    assert stock(zone.store, "SKU-C", other)[0] == qty_other + 2
    assert delta_sum(zone.store, "SKU-C", other) == 2
    assert delta_sum(zone.store, "SKU-C", origin) == -2


async def test_a_supervisor_sees_everyones_put_backs_a_picker_only_their_own(zone: Zone) -> None:
    await picked_then_cancelled(zone)
    other = await zone.picker("BADGE-2")
    status, body = await other.call("GET", "/api/v1/put-backs")
    assert (status, body) == (200, {"put_backs": []})
    status, body = await other.call("GET", "/api/v1/put-backs?all=1")
    assert status == 403
    assert body["error"]["code"] == "forbidden"
    boss = await zone.picker("BADGE-S")
    status, body = await boss.call("GET", "/api/v1/put-backs?all=1")
    assert status == 200
    assert [(line["picker"], line["sku"], line["qty"]) for line in body["put_backs"]] == [
        ("P1", "SKU-A", 3)
    ]


async def test_a_retried_put_back_scan_returns_units_once(zone: Zone) -> None:
    pda = await picked_then_cancelled(zone)
    await pda.scan(GTIN_A, scan_id="pb-1")
    first = await pda.scan("A-01-05", scan_id="pb-2")
    again = await pda.scan("A-01-05", scan_id="pb-2")
    assert first == again
    returns = [e for e in events(zone.store, "stock_delta") if e["reason"] == "return"]
    assert [e["qty"] for e in returns] == [1]


def overdue_alerts(zone: Zone) -> list[dict[str, object]]:
    return [e for e in events(zone.store, "alert") if e["kind"] == "put_back_overdue"]


async def test_a_put_back_left_open_too_long_alerts_once_and_clears_when_back(
    zone: Zone,
) -> None:
    pda = await picked_then_cancelled(zone)
    upkeep = Maintenance(zone.store, interval_s=60, warn_backlog=10**6, put_back_alert_s=0.0)
    await upkeep.tick()
    await upkeep.tick()
    (raised,) = overdue_alerts(zone)
    assert (raised["severity"], raised.get("state", "raised")) == ("warn", "raised")
    assert raised["detail"] == {"task": "T-1", "picker": "P1", "sku": "SKU-A", "units": 3}
    await pda.scan(f"01{GTIN_A}303")
    await pda.scan("A-01-05")
    await upkeep.tick()
    raised_then_cleared = overdue_alerts(zone)
    assert [a.get("state", "raised") for a in raised_then_cleared] == ["raised", "cleared"]
    assert raised_then_cleared[1]["subject"] == raised["subject"]
    await upkeep.tick()
    assert len(overdue_alerts(zone)) == 2


async def test_a_young_put_back_raises_nothing(zone: Zone) -> None:
    await picked_then_cancelled(zone)
    await Maintenance(zone.store, interval_s=60, warn_backlog=10**6).tick()  # 30 min default
    assert not overdue_alerts(zone)


async def test_the_answer_that_ends_a_tour_lists_what_is_to_be_put_back(zone: Zone) -> None:
    """One order in two tasks on one tour: the task of the first stop is
    cancelled once its unit is picked; the scan that ends the tour answers
    with the unit to put back."""
    add_task(zone.store, "T-1", [("SKU-A", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-C", 1)], order="O-1")
    pda = await zone.picker()
    started = await pda.scan("O-1")
    assert "put_backs" not in started
    first, second = started["tour"]["stops"]
    code = {"SKU-A": GTIN_A, "SKU-C": GTIN_C}
    await pda.scan(first["location"])
    assert (await pda.scan(code[first["sku"]]))["result"] == "stop_done"
    cancel_page(zone, first["task"])
    await pda.scan(second["location"])
    done = await pda.scan(code[second["sku"]])
    assert done["result"] == "tour_done", done
    assert [(line["sku"], line["origin"], line["qty"]) for line in done["put_backs"]] == [
        (first["sku"], first["location"], 1)
    ]
