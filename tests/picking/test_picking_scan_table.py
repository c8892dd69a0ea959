"""Every row of pda-api-v1's scan table, through the real API on loopback."""

from __future__ import annotations

import pytest

from tests.support.api_fixtures import (
    EPC_D,
    GS,
    GTIN_A,
    GTIN_B,
    GTIN_C,
    GTIN_D,
    Zone,
    add_task,
    delta_sum,
    events,
    item_code,
    pick_all,
    stock,
    walk,
)


def _state(zone: Zone) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Everything an error answer must leave alone: stops and outbox."""
    stops = zone.store.query("SELECT * FROM tour_stops ORDER BY tour, stop")
    return stops, events(zone.store)


async def test_order_scan_starts_a_tour_in_walking_order(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 2), ("SKU-C", 1), ("SKU-D", 1)], order="O-1")
    pda = await zone.picker()
    answer = await pda.scan("O-1")
    assert answer["result"] == "tour_started"
    assert answer["feedback"] == "success"
    tour = answer["tour"]
    assert tour["state"] == "active"
    assert [s["location"] for s in tour["stops"]] == ["A-01-05", "A-03-12", "A-06-15"]
    assert tour["next_stop"] == tour["stops"][0]["stop"]
    assert tour["route"]["length_m"] > 0
    assert tour["route"]["waypoints"][0] == [0.0, 0.0] == tour["route"]["waypoints"][-1]
    # the units are reserved so nobody else is sent for them
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 2)
    status, current = await pda.tour()
    assert status == 200 and current == tour


@pytest.mark.parametrize("how", ["task", "tote", "start"])
async def test_task_tote_and_start_scans_start_tours(zone: Zone, how: str) -> None:
    add_task(zone.store, "T-LOW", [("SKU-A", 1)], tote="TOTE-9", priority=1)
    add_task(zone.store, "T-HIGH", [("SKU-C", 1)], priority=5)
    pda = await zone.picker()
    code = {"task": "T-LOW", "tote": "TOTE-9", "start": "START"}[how]
    answer = await pda.scan(code)
    assert answer["result"] == "tour_started"
    expected = "T-HIGH" if how == "start" else "T-LOW"
    assert {s["task"] for s in answer["tour"]["stops"]} == {expected}


async def test_location_item_and_quantity_flow(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 2), ("SKU-C", 1)])
    pda = await zone.picker()
    tour = (await pda.scan("T-1"))["tour"]
    first = walk(tour)[0]
    assert first["sku"] == "SKU-A"
    answer = await pda.scan("A-01-05")
    assert (answer["result"], answer["feedback"]) == ("location_ok", "success")
    assert walk(answer["tour"])[0]["state"] == "location_ok"
    answer = await pda.scan(GTIN_A)
    assert (answer["result"], answer["feedback"]) == ("item_ok", "success")
    assert walk(answer["tour"])[0]["picked"] == 1
    answer = await pda.scan("]E0" + GTIN_A[1:])  # EAN-13 with its AIM id
    assert answer["result"] == "stop_done"
    assert answer["tour"]["next_stop"] == walk(answer["tour"])[0]["stop"]
    await pda.scan(walk(answer["tour"])[0]["location"])
    answer = await pda.scan(GTIN_C)
    assert (answer["result"], answer["feedback"]) == ("tour_done", "success")
    assert answer["tour"]["state"] == "done" and answer["tour"]["next_stop"] is None
    confirmed = events(zone.store, "pick_confirmed")
    assert [(e["sku"], e["qty"]) for e in confirmed] == [("SKU-A", 1), ("SKU-A", 1), ("SKU-C", 1)]
    assert confirmed[0]["picker"] == "P1" and confirmed[0]["codes"] == [GTIN_A]
    assert delta_sum(zone.store, "SKU-A", "A-01-05") == -2
    assert stock(zone.store, "SKU-A", "A-01-05") == (8, 0)
    task = zone.store.query("SELECT state FROM tasks WHERE task = 'T-1'")[0]
    assert task["state"] == "done"
    status, body = await pda.tour()
    assert (status, body["error"]["code"]) == (404, "no_tour")


async def test_wrong_location_changes_nothing(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)])
    pda = await zone.picker()
    await pda.scan("T-1")
    before = _state(zone)
    answer = await pda.scan("A-09-18")
    assert (answer["result"], answer["feedback"]) == ("wrong_location", "error")
    assert "A-01-05" in answer["message"]
    assert _state(zone) == before


async def test_wrong_item_changes_nothing(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)])
    pda = await zone.picker()
    await pda.scan("T-1")
    await pda.scan("A-01-05")
    before = _state(zone)
    answer = await pda.scan(GTIN_C)
    assert (answer["result"], answer["feedback"]) == ("wrong_item", "error")
    assert _state(zone) == before


@pytest.mark.parametrize(
    "code",
    [
        "no such thing",  # readable, but nothing known
        "0952123400009" + "9",  # a GTIN with a wrong check digit
        "ORDER-THAT-DOES-NOT-EXIST",
        "A-07-07",  # a location label the zone does not have
    ],
)
async def test_unknown_code_changes_nothing(zone: Zone, code: str) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)])
    pda = await zone.picker()
    await pda.scan("T-1")
    await pda.scan("A-01-05")
    before = _state(zone)
    answer = await pda.scan(code)
    assert (answer["result"], answer["feedback"]) == ("unknown_code", "error")
    assert _state(zone) == before


async def test_unknown_code_without_a_tour(zone: Zone) -> None:
    pda = await zone.picker()
    answer = await pda.scan("NOT-AN-ORDER")
    assert (answer["result"], answer["feedback"], answer["tour"]) == ("unknown_code", "error", None)


async def test_over_pick_after_the_stop_is_complete(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1), ("SKU-C", 1)])
    pda = await zone.picker()
    await pda.scan("T-1")
    await pda.scan("A-01-05")
    assert (await pda.scan(GTIN_A))["result"] == "stop_done"
    before = _state(zone)
    answer = await pda.scan(GTIN_A)
    assert (answer["result"], answer["feedback"]) == ("over_pick", "error")
    assert _state(zone) == before
    # and after the last stop of the tour
    await pda.scan(walk(answer["tour"])[0]["location"])
    assert (await pda.scan(GTIN_C))["result"] == "tour_done"
    before = _state(zone)
    assert (await pda.scan(GTIN_C))["result"] == "over_pick"
    assert _state(zone) == before


async def test_a_count_beyond_the_quantity_is_an_over_pick(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 2)])
    pda = await zone.picker()
    await pda.scan("T-1")
    await pda.scan("A-01-05")
    answer = await pda.scan(f"02{GTIN_A}373")  # (02) GTIN + (37) count 3
    assert answer["result"] == "over_pick"
    answer = await pda.scan(f"02{GTIN_A}372")
    assert answer["result"] == "tour_done"
    assert [e["qty"] for e in events(zone.store, "pick_confirmed")] == [2]


async def test_item_before_location_asks_for_the_location(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)])
    pda = await zone.picker()
    await pda.scan("T-1")
    before = _state(zone)
    answer = await pda.scan(GTIN_A)
    assert (answer["result"], answer["feedback"]) == ("location_required", "warning")
    assert _state(zone) == before


async def test_fefo_lot_and_expiry_are_checked(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-B", 2)])
    pda = await zone.picker()
    tour = (await pda.scan("T-1"))["tour"]
    (stop,) = tour["stops"]
    # FEFO: lot L1 expires first, at A-04-10
    assert (stop["location"], stop["lot"], stop["expiry"]) == ("A-04-10", "L1", "2026-12-31")
    await pda.scan("A-04-10")
    before = _state(zone)
    wrong_lot = await pda.scan(f"]C101{GTIN_B}17270630" + "10L2")
    assert (wrong_lot["result"], wrong_lot["feedback"]) == ("wrong_item", "error")
    assert "lot" in wrong_lot["message"]
    wrong_date = await pda.scan(f"]d201{GTIN_B}17270101" + "10L1")
    assert wrong_date["result"] == "wrong_item"
    assert _state(zone) == before
    ok = await pda.scan(f"]C101{GTIN_B}10L1{GS}17261231")
    assert ok["result"] == "item_ok"
    ok = await pda.scan(f"(01){GTIN_B}(17)261231(10)L1")  # HRI text from a wedge
    assert ok["result"] == "tour_done"
    deltas = events(zone.store, "stock_delta")
    assert {(d["lot"], d["qty"], d["reason"]) for d in deltas} == {("L1", -1, "pick")}


async def test_sgtin_epc_and_sku_count_as_items(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-D", 2)])
    pda = await zone.picker()
    await pda.scan("T-1")
    await pda.scan("A-03-12")
    assert (await pda.scan(EPC_D))["result"] == "item_ok"
    assert (await pda.scan("SKU-D"))["result"] == "tour_done"


async def test_a_serialised_unit_counts_once(zone: Zone) -> None:
    """The same RFID tag (or AI 21 serial) read twice is one unit, not two."""
    add_task(zone.store, "T-1", [("SKU-D", 3)])
    pda = await zone.picker()
    await pda.scan("T-1")
    await pda.scan("A-03-12")
    assert (await pda.scan(EPC_D))["result"] == "item_ok"
    before = _state(zone)
    again = await pda.scan(EPC_D)
    assert (again["result"], again["feedback"]) == ("over_pick", "error")
    assert _state(zone) == before
    serial = f"01{GTIN_D}21SN-1"
    assert (await pda.scan(serial))["result"] == "item_ok"
    assert (await pda.scan(serial))["result"] == "over_pick"
    assert (await pda.scan(f"01{GTIN_D}21SN-2"))["result"] == "tour_done"


async def test_next_stop_at_the_same_location_needs_no_second_label(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)])
    add_task(zone.store, "T-2", [("SKU-A", 1)], order="O-2")
    add_task(zone.store, "T-3", [("SKU-A", 1)], order="O-2")
    pda = await zone.picker()
    tour = (await pda.scan("O-2"))["tour"]
    assert len(tour["stops"]) == 2
    await pda.scan("A-01-05")
    answer = await pda.scan(GTIN_A)
    assert answer["result"] == "stop_done"
    assert walk(answer["tour"])[0]["state"] == "location_ok"
    assert (await pda.scan(GTIN_A))["result"] == "tour_done"


async def test_unfillable_line_is_reported_upstream_at_once(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1), ("SKU-E", 2), ("SKU-C", 20)])
    pda = await zone.picker()
    answer = await pda.scan("T-1")
    assert (answer["result"], answer["feedback"]) == ("tour_started", "warning")
    missing = {(e["sku"], e["missing"]) for e in answer["exceptions"]}
    assert missing == {("SKU-E", 2), ("SKU-C", 7)}
    exc = events(zone.store, "pick_exception")
    assert {(e["sku"], e["expected"], e["reason"]) for e in exc} == {
        ("SKU-E", 2, "no_stock"),
        ("SKU-C", 7, "no_stock"),
    }
    assert len(events(zone.store, "alert")) == 2
    # SKU-C: all 13 units the zone has are reserved, from both locations
    assert stock(zone.store, "SKU-C", "A-06-15") == (3, 3)
    assert stock(zone.store, "SKU-C", "A-08-04") == (10, 10)


async def test_nothing_fillable_answers_no_stock(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-E", 1)])
    pda = await zone.picker()
    answer = await pda.scan("T-1")
    assert (answer["result"], answer["feedback"], answer["tour"]) == ("no_stock", "error", None)
    assert len(events(zone.store, "pick_exception")) == 1
    again = await pda.scan("T-1")
    assert again["result"] == "task_unavailable"
    assert len(events(zone.store, "pick_exception")) == 1


async def test_start_without_work_and_start_during_a_tour(zone: Zone) -> None:
    pda = await zone.picker()
    assert (await pda.scan("START"))["result"] == "no_work"
    add_task(zone.store, "T-1", [("SKU-A", 1)])
    assert (await pda.scan("START"))["result"] == "tour_started"
    answer = await pda.scan("START")
    assert (answer["result"], answer["feedback"]) == ("tour_active", "warning")


async def test_a_started_task_cannot_be_taken_by_another_picker(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)])
    one, two = await zone.picker("BADGE-1"), await zone.picker("BADGE-2")
    assert (await one.scan("T-1"))["result"] == "tour_started"
    answer = await two.scan("T-1")
    assert (answer["result"], answer["feedback"]) == ("taken", "error")


async def test_repeated_scan_id_returns_the_stored_answer(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 3)])
    pda = await zone.picker()
    await pda.scan("T-1")
    await pda.scan("A-01-05")
    first = await pda.scan(GTIN_A, scan_id="s-1")
    before = _state(zone)
    again = await pda.scan(GTIN_A, scan_id="s-1")
    assert again == first
    assert _state(zone) == before
    # even after the picker moved on, the old id still answers what it answered
    await pda.scan(GTIN_A, scan_id="s-2")
    assert await pda.scan(GTIN_A, scan_id="s-1") == first
    assert sum(e["qty"] for e in events(zone.store, "pick_confirmed")) == 2


async def test_scan_id_of_another_picker_is_refused(zone: Zone) -> None:
    one, two = await zone.picker("BADGE-1"), await zone.picker("BADGE-2")
    await one.scan("START", scan_id="shared")
    status, body = await two.call("POST", "/api/v1/scan", {"code": "START", "scan_id": "shared"})
    assert (status, body["error"]["code"]) == (409, "scan_id_conflict")


async def test_full_tour_with_helper(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 2), ("SKU-B", 3), ("SKU-D", 1), ("SKU-C", 2)])
    pda = await zone.picker()
    answer = await pick_all(pda, (await pda.scan("T-1"))["tour"])
    assert answer["result"] == "tour_done"
    assert all(s["state"] == "done" for s in answer["tour"]["stops"])
    assert item_code(answer["tour"]["stops"][0])
