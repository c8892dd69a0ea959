"""Cart picking (issue 11): several orders on one tour, a tote each.

Through the real PDA API over a seeded SQLite zone: a START on a zone with
carts takes a cart of orders, each order gets a slot whose tote is bound by
scanning its label before the walk begins; each stop says which tote its
units go into and the put is confirmed by scanning that tote; a wrong tote
changes nothing. Upstream, ``pick_confirmed`` carries the tote and every task
of the cart has its own ``task_picked``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from edge.api.app import create_app
from edge.config import Config
from edge.masterdata import Notice, apply_changes
from edge.picking import PickingService
from edge.picking.model import CartSettings
from edge.store.db import Store
from edge.store.sync_state import StoreChangeSink
from tests.support.api_fixtures import (
    Pda,
    Zone,
    add_task,
    bind_totes,
    delta_sum,
    events,
    item_code,
    pick_all,
    stock,
    walk,
)


async def _zone(store: Store, cfg: Config, carts: CartSettings) -> AsyncIterator[Zone]:
    picking = PickingService(store, cfg.layout_dict(), carts=carts)
    server = TestServer(create_app(store, cfg, picking=picking), host="127.0.0.1", port=0)
    await server.start_server()
    http = aiohttp.ClientSession()
    try:
        yield Zone(store, cfg, picking, server, http)
    finally:
        await http.close()
        await server.close()


@pytest.fixture
async def carts(zone_store: tuple[Store, Config]) -> AsyncIterator[Zone]:
    """The seeded zone picking on carts of 3 totes, puts confirmed by a tote scan."""
    async for zone in _zone(*zone_store, CartSettings(totes=3, units=20)):
        yield zone


def three_orders(store: Store) -> None:
    add_task(store, "T-1", [("SKU-A", 2)], order="O-1", priority=5)
    add_task(store, "T-2", [("SKU-C", 1), ("SKU-A", 1)], order="O-2", priority=4)
    add_task(store, "T-3", [("SKU-D", 1)], order="O-3", priority=3)


def outbox_size(store: Store) -> int:
    return len(events(store))


def stop_states(tour: dict[str, Any]) -> list[tuple[int, str, int]]:
    return [(s["stop"], s["state"], s["picked"]) for s in tour["stops"]]


async def test_start_takes_a_cart_of_orders_each_waiting_for_its_tote(carts: Zone) -> None:
    three_orders(carts.store)
    add_task(carts.store, "T-4", [("SKU-A", 1)], order="O-4", priority=1)
    pda = await carts.picker()
    answer = await pda.scan("START")
    assert answer["result"] == "tour_started", answer
    assert "cart of 3 orders" in answer["message"]
    assert "slot 1" in answer["message"]
    cart = answer["tour"]["cart"]
    assert [(t["slot"], t["task"], t["order"], t["tote"], t["state"]) for t in cart["totes"]] == [
        (1, "T-1", "O-1", None, "unbound"),
        (2, "T-2", "O-2", None, "unbound"),
        (3, "T-3", "O-3", None, "unbound"),
    ]
    assert cart["next_slot"] == 1
    # every stop tells its slot; the fourth order waits for the next cart
    assert {s["task"]: s["slot"] for s in answer["tour"]["stops"]} == {
        "T-1": 1,
        "T-2": 2,
        "T-3": 3,
    }
    (state,) = carts.store.query("SELECT state FROM tasks WHERE task = 'T-4'")
    assert state["state"] == "open"


async def test_the_walk_waits_until_every_tote_is_bound(carts: Zone) -> None:
    three_orders(carts.store)
    pda = await carts.picker()
    answer = await pda.scan("START")
    first = walk(answer["tour"])[0]
    before = outbox_size(carts.store)
    refused = await pda.scan(first["location"])
    assert (refused["result"], refused["feedback"]) == ("tote_expected", "warning")
    assert "slot 1" in refused["message"]
    assert stop_states(refused["tour"]) == stop_states(answer["tour"])

    bound = await pda.scan("TOTE-11")
    assert (bound["result"], bound["feedback"]) == ("tote_bound", "success")
    assert "slot 1" in bound["message"] and "slot 2" in bound["message"]
    again = await pda.scan("TOTE-11")
    assert (again["result"], again["feedback"]) == ("wrong_tote", "error")
    assert "already" in again["message"]
    await pda.scan("TOTE-12")
    ready = await pda.scan("TOTE-13")
    assert ready["result"] == "tote_bound"
    assert f"go to {first['location']}" in ready["message"]
    assert ready["tour"]["cart"]["next_slot"] is None
    assert [t["tote"] for t in ready["tour"]["cart"]["totes"]] == ["TOTE-11", "TOTE-12", "TOTE-13"]
    assert outbox_size(carts.store) == before  # binding totes sends nothing upstream


async def test_a_tote_on_another_pickers_cart_is_refused(carts: Zone) -> None:
    three_orders(carts.store)
    add_task(carts.store, "T-5", [("SKU-C", 1)], order="O-5")
    one, two = await carts.picker("BADGE-1"), await carts.picker("BADGE-2")
    await pda_start(one)
    await one.scan("TOTE-BUSY")
    answer = await two.scan("START")
    assert [t["task"] for t in answer["tour"]["cart"]["totes"]] == ["T-5"]
    refused = await two.scan("TOTE-BUSY")
    assert (refused["result"], refused["feedback"]) == ("tote_in_use", "error")
    assert refused["tour"]["cart"]["totes"][0]["tote"] is None


async def pda_start(pda: Pda) -> dict[str, Any]:
    answer = await pda.scan("START")
    assert answer["result"] == "tour_started", answer
    return answer


async def test_each_stop_is_put_into_its_tote_and_a_wrong_tote_changes_nothing(
    carts: Zone,
) -> None:
    three_orders(carts.store)
    pda = await carts.picker()
    answer = await bind_totes(pda, await pda_start(pda))
    current = walk(answer["tour"])[0]
    await pda.scan(current["location"])
    for _ in range(current["qty"] - 1):
        await pda.scan(item_code(current))
    taken = await pda.scan(item_code(current))
    assert (taken["result"], taken["feedback"]) == ("item_ok", "success")
    assert current["tote"] in taken["message"]
    in_hand = walk(taken["tour"])[0]
    assert (in_hand["stop"], in_hand["state"], in_hand["picked"]) == (
        current["stop"],
        "to_put",
        current["qty"],
    )
    before = outbox_size(carts.store)
    # the units are confirmed upstream as they leave the location, with their tote
    confirmed = [e for e in events(carts.store, "pick_confirmed") if e["task"] == current["task"]]
    assert {e["tote"] for e in confirmed} == {current["tote"]}

    nxt = walk(taken["tour"])[1]
    not_yet = await pda.scan(nxt["location"])
    assert (not_yet["result"], not_yet["feedback"]) == ("tote_expected", "warning")
    other = next(t["tote"] for t in taken["tour"]["cart"]["totes"] if t["tote"] != current["tote"])
    wrong = await pda.scan(other)
    assert (wrong["result"], wrong["feedback"]) == ("wrong_tote", "error")
    assert current["tote"] in wrong["message"]
    stranger = await pda.scan("TOTE-NOT-ON-CART")
    assert stranger["result"] == "wrong_tote"
    assert stop_states(stranger["tour"]) == stop_states(taken["tour"])
    assert outbox_size(carts.store) == before

    put = await pda.scan(current["tote"])
    assert (put["result"], put["feedback"]) == ("stop_done", "success")
    assert [s["state"] for s in put["tour"]["stops"] if s["stop"] == current["stop"]] == ["done"]
    assert outbox_size(carts.store) == before  # the put itself moves nothing upstream


async def test_a_tote_scanned_when_no_put_is_due_is_refused(carts: Zone) -> None:
    three_orders(carts.store)
    pda = await carts.picker()
    answer = await bind_totes(pda, await pda_start(pda))
    tote = answer["tour"]["cart"]["totes"][0]["tote"]
    refused = await pda.scan(tote)
    assert (refused["result"], refused["feedback"]) == ("wrong_tote", "error")
    assert stop_states(refused["tour"]) == stop_states(answer["tour"])


async def test_a_whole_cart_goes_upstream_per_task_with_its_tote(carts: Zone) -> None:
    three_orders(carts.store)
    pda = await carts.picker()
    started = await pda_start(pda)
    done = await pick_all(pda, started["tour"])
    assert done["result"] == "tour_done", done
    assert done["tour"]["state"] == "done"
    totes = {t["task"]: t["tote"] for t in done["tour"]["cart"]["totes"]}
    assert [t["state"] for t in done["tour"]["cart"]["totes"]] == ["done"] * 3
    picked = {e["task"]: e for e in events(carts.store, "task_picked")}
    assert set(picked) == {"T-1", "T-2", "T-3"}
    for task, event in picked.items():
        assert event["totes"] == [totes[task]]
        assert event["tour"] == started["tour"]["tour"]
        assert all(line["short"] == 0 for line in event["lines"])
    for event in events(carts.store, "pick_confirmed"):
        assert event["tote"] == totes[event["task"]]
    # stock: 3 SKU-A left A-01-05, once each unit
    assert delta_sum(carts.store, "SKU-A", "A-01-05") == -3
    assert stock(carts.store, "SKU-A", "A-01-05") == (7, 0)


async def test_a_tote_the_cloud_assigned_must_be_the_one_scanned(carts: Zone) -> None:
    add_task(carts.store, "T-1", [("SKU-A", 1)], order="O-1", tote="TOTE-77", priority=2)
    add_task(carts.store, "T-2", [("SKU-C", 1)], order="O-2", priority=1)
    pda = await carts.picker()
    answer = await pda_start(pda)
    assert "tote TOTE-77" in answer["message"]
    assert answer["tour"]["cart"]["totes"][0]["assigned"] == "TOTE-77"
    # a free tote goes to the order without one; then only TOTE-77 is accepted
    bound = await pda.scan("TOTE-20")
    assert bound["result"] == "tote_bound", bound
    assert [t["tote"] for t in bound["tour"]["cart"]["totes"]] == [None, "TOTE-20"]
    wrong = await pda.scan("TOTE-21")
    assert (wrong["result"], wrong["feedback"]) == ("wrong_tote", "error")
    assert "TOTE-77" in wrong["message"]
    ok = await pda.scan("TOTE-77")
    assert ok["result"] == "tote_bound"
    assert [t["tote"] for t in ok["tour"]["cart"]["totes"]] == ["TOTE-77", "TOTE-20"]


async def test_scanning_an_assigned_tote_starts_its_order_with_the_tote_bound(
    carts: Zone,
) -> None:
    add_task(carts.store, "T-1", [("SKU-A", 1)], order="O-1", tote="TOTE-77")
    pda = await carts.picker()
    answer = await pda.scan("TOTE-77")
    assert answer["result"] == "tour_started", answer
    assert answer["tour"]["cart"]["totes"][0]["tote"] == "TOTE-77"
    assert answer["tour"]["cart"]["next_slot"] is None
    done = await pick_all(pda, answer["tour"])
    assert done["result"] == "tour_done"


async def test_a_cart_label_starts_a_cart_like_start(carts: Zone) -> None:
    three_orders(carts.store)
    pda = await carts.picker()
    answer = await pda.scan("CART-07")
    assert answer["result"] == "tour_started", answer
    assert len(answer["tour"]["cart"]["totes"]) == 3
    (row,) = carts.store.query("SELECT cart FROM tours WHERE tour = ?", (answer["tour"]["tour"],))
    assert row["cart"] == "CART-07"
    busy = await pda.scan("CART-08")
    assert busy["result"] == "tour_active"


async def test_a_cart_is_filled_by_units_as_well_as_totes(carts: Zone) -> None:
    add_task(carts.store, "T-1", [("SKU-A", 8)], order="O-1", priority=3)
    add_task(carts.store, "T-2", [("SKU-C", 10)], order="O-2", priority=2)
    add_task(carts.store, "T-3", [("SKU-C", 3)], order="O-3", priority=1)
    pda = await carts.picker()
    answer = await pda_start(pda)
    # 8 + 10 = 18 units; T-3's 3 more would make 21 > 20
    assert [t["task"] for t in answer["tour"]["cart"]["totes"]] == ["T-1", "T-2"]


async def test_a_short_pick_inside_a_cart_concerns_its_task_only(carts: Zone) -> None:
    three_orders(carts.store)
    pda = await carts.picker()
    answer = await bind_totes(pda, await pda_start(pda))
    current = walk(answer["tour"])[0]
    status, short = await pda.short(current["stop"], 0, "damaged")
    assert status == 200, short
    exceptions = events(carts.store, "pick_exception")
    assert [(e["task"], e["reason"]) for e in exceptions] == [(current["task"], "damaged")]
    done = await pick_all(pda, short["tour"])
    assert done["result"] == "tour_done"
    picked = {e["task"]: e for e in events(carts.store, "task_picked")}
    assert set(picked) == {"T-1", "T-2", "T-3"}
    shorts = {task: sum(line["short"] for line in e["lines"]) for task, e in picked.items()}
    assert sum(shorts.values()) <= current["qty"]


async def test_units_in_hand_cannot_be_skipped_or_shorted(carts: Zone) -> None:
    three_orders(carts.store)
    pda = await carts.picker()
    answer = await bind_totes(pda, await pda_start(pda))
    current = walk(answer["tour"])[0]
    await pda.scan(current["location"])
    for _ in range(current["qty"]):
        answer = await pda.scan(item_code(current))
    assert walk(answer["tour"])[0]["state"] == "to_put"
    status, body = await pda.call("POST", "/api/v1/tour/skip", {"stop": current["stop"]})
    assert status == 409, body
    assert "tote" in body["error"]["message"]
    status, body = await pda.short(current["stop"], 0)
    assert status in (400, 409), body


async def test_a_retried_tote_scan_replays_its_answer(carts: Zone) -> None:
    three_orders(carts.store)
    pda = await carts.picker()
    await pda_start(pda)
    first = await pda.scan("TOTE-31", scan_id="bind-1")
    again = await pda.scan("TOTE-31", scan_id="bind-1")
    assert first == again
    assert first["result"] == "tote_bound"
    assert again["tour"]["cart"]["next_slot"] == 2


async def test_without_carts_a_start_takes_one_task_and_no_tote(zone: Zone) -> None:
    three_orders(zone.store)
    pda = await zone.picker()
    answer = await pda_start(pda)
    assert "cart" not in answer["tour"]
    assert {s["task"] for s in answer["tour"]["stops"]} == {"T-1"}
    done = await pick_all(pda, answer["tour"])
    assert done["result"] == "tour_done"
    assert {e["tote"] for e in events(zone.store, "pick_confirmed")} == {None}


async def test_carts_without_put_confirmation_finish_stops_on_the_last_unit(
    zone_store: tuple[Store, Config],
) -> None:
    three_orders(zone_store[0])
    async for zone in _zone(*zone_store, CartSettings(totes=3, units=20, confirm_put=False)):
        pda = await zone.picker()
        answer = await bind_totes(pda, await pda_start(pda))
        current = walk(answer["tour"])[0]
        await pda.scan(current["location"])
        for _ in range(current["qty"]):
            answer = await pda.scan(item_code(current))
        assert answer["result"] in ("stop_done", "tour_done"), answer
        totes = {t["task"]: t["tote"] for t in answer["tour"]["cart"]["totes"]}
        confirmed = events(zone.store, "pick_confirmed")
        assert {e["tote"] for e in confirmed} == {totes[current["task"]]}


async def test_a_cancelled_order_leaves_the_cart_and_needs_no_tote(carts: Zone) -> None:
    three_orders(carts.store)
    pda = await carts.picker()
    answer = await pda_start(pda)
    await pda.scan("TOTE-41")  # slot 1 bound; slots 2 and 3 still open
    cancel_page(carts, "T-2")
    status, tour = await pda.tour()
    assert status == 200
    states = {t["task"]: t["state"] for t in tour["cart"]["totes"]}
    assert states == {"T-1": "open", "T-2": "cancelled", "T-3": "unbound"}
    assert tour["cart"]["next_slot"] == 3
    done = await pick_all(pda, tour)
    assert done["result"] == "tour_done", done
    assert {e["task"] for e in events(carts.store, "task_picked")} == {"T-1", "T-3"}
    (cancelled,) = events(carts.store, "task_cancelled")
    assert (cancelled["task"], cancelled["at_stage"], cancelled["put_back"]) == (
        "T-2",
        "picking",
        [],
    )
    assert answer["tour"]["tour"] == done["tour"]["tour"]


async def test_units_in_hand_of_a_cancelled_order_become_put_back_work(carts: Zone) -> None:
    three_orders(carts.store)
    pda = await carts.picker()
    answer = await bind_totes(pda, await pda_start(pda))
    current = walk(answer["tour"])[0]
    await pda.scan(current["location"])
    for _ in range(current["qty"]):
        answer = await pda.scan(item_code(current))
    assert walk(answer["tour"])[0]["state"] == "to_put"
    cancel_page(carts, current["task"])
    status, tour = await pda.tour()
    assert status == 200
    gone = [s for s in tour["stops"] if s["task"] == current["task"]]
    assert {s["state"] for s in gone} == {"cancelled"}
    (cancelled,) = events(carts.store, "task_cancelled")
    assert cancelled["put_back"] == [
        {"sku": current["sku"], "location": current["location"], "qty": current["qty"]}
    ]
    done = await pick_all(pda, tour)
    assert done["result"] == "tour_done", done


def cancel_page(zone: Zone, *tasks: str) -> list[Notice]:
    """The cloud's cancels as the downloader applies them: one page, one transaction."""
    sink = StoreChangeSink(zone.store, partial(apply_changes, planner=zone.picking.planner))
    page = [{"type": "task_cancel", "data": {"task": t}} for t in tasks]
    return zone.store.run(lambda tx: sink.apply(tx, page))


async def test_start_takes_the_proposed_cart_topped_up_when_another_picker_took_some(
    zone_store: tuple[Store, Config],
) -> None:
    """The proposal is made on a snapshot before the transaction: a task
    another picker started since is left out, and its room goes to the next
    open task by priority that fits."""
    store, _ = zone_store
    three_orders(store)
    add_task(store, "T-4", [("SKU-C", 1)], order="O-4", priority=1)
    proposals: list[int] = []

    def proposer(db: Any) -> tuple[str, ...]:
        proposals.append(1)
        return ("T-3", "T-2", "T-1")

    carts = CartSettings(totes=3, units=20)
    picking = PickingService(store, zone_store[1].layout_dict(), carts=carts, proposer=proposer)
    server = TestServer(create_app(store, zone_store[1], picking=picking), port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            zone = Zone(store, zone_store[1], picking, server, http)
            one, two = await zone.picker("BADGE-1"), await zone.picker("BADGE-2")
            taken = await two.scan("T-2")  # P2 starts order O-2 by its code
            assert taken["result"] == "tour_started"
            answer = await pda_start(one)
            assert proposals == [1]
            assert [t["task"] for t in answer["tour"]["cart"]["totes"]] == ["T-3", "T-1", "T-4"]
            assert {s["task"] for s in answer["tour"]["stops"]} == {"T-3", "T-1", "T-4"}
    finally:
        await server.close()
