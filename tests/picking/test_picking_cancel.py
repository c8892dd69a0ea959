"""A task cancelled by the cloud while it is being picked: its stops leave the
tour and its reservations are released in the transaction that records the
cancel, its picker is told at once; start-up repairs a cancel left half done,
and the pick path confirms nothing of a task that is no longer pickable."""

from __future__ import annotations

from functools import partial

from edge.api.app import HUB
from edge.masterdata import Notice, apply_changes, tables
from edge.store.sync_state import StoreChangeSink
from edge.wiring import build_daemon
from tests.support.api_fixtures import GTIN_A, Zone, add_task, events, item_code, stock, walk


async def test_task_cancel_reaches_the_picker_and_reroutes(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 2)], order="O-1")
    pda = await zone.picker()
    async with zone.http.ws_connect(f"{zone.base}/api/v1/ws") as ws:
        await ws.send_json({"type": "auth", "token": pda.token})
        assert (await ws.receive_json(timeout=5))["type"] == "message"
        tour = (await pda.scan("O-1"))["tour"]
        assert (await ws.receive_json(timeout=5))["type"] == "tour_assigned"
        assert {s["task"] for s in walk(tour)} == {"T-1", "T-2"}
        assert stock(zone.store, "SKU-D", "A-03-12") == (4, 2)

        notices = zone.store.run(
            lambda tx: apply_changes(tx, [{"type": "task_cancel", "data": {"task": "T-2"}}])
        )
        assert [n.kind for n in notices] == ["task_cancelled"]
        zone.server.app[HUB].deliver(notices)  # what the downloader's on_applied does
        messages = [await ws.receive_json(timeout=5) for _ in range(2)]
        kinds = {m["type"]: m for m in messages}
        assert kinds["task_cancelled"]["task"] == "T-2"
        rerouted = kinds["tour_rerouted"]["tour"]
        assert [s["task"] for s in walk(rerouted)] == ["T-1"]
        assert stock(zone.store, "SKU-D", "A-03-12") == (4, 0)
        await pda.scan("A-01-05")
        assert (await pda.scan(GTIN_A))["result"] == "tour_done"


# --------------------------------------------------------------------------- issue 17, 7


def cancel_page(zone: Zone, *tasks: str) -> list[Notice]:
    """What the downloader applies for the cloud's cancels: one page, one transaction."""
    sink = StoreChangeSink(zone.store, partial(apply_changes, planner=zone.picking.planner))
    page = [{"type": "task_cancel", "data": {"task": t}} for t in tasks]
    return zone.store.run(lambda tx: sink.apply(tx, page))


def stop_states(zone: Zone, task: str) -> list[str]:
    rows = zone.store.query("SELECT state FROM tour_stops WHERE task = ? ORDER BY stop", (task,))
    return [r["state"] for r in rows]


def picked_tasks(zone: Zone) -> set[str]:
    return {e["task"] for e in events(zone.store, "pick_confirmed")}


def half_done_cancel(zone: Zone, *tasks: str) -> None:
    """A cancel as the box before this fix could leave it after a crash: the task
    is cancelled, its stops are still in the tour, its units still reserved."""
    with zone.store.transaction() as tx:
        for task in tasks:
            tables.cancel_task(tx, task, 1)


async def test_the_cancel_takes_the_stops_out_in_the_transaction_that_records_it(
    zone: Zone,
) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 2)], order="O-1")
    pda = await zone.picker()
    tour = (await pda.scan("O-1"))["tour"]
    assert stock(zone.store, "SKU-D", "A-03-12") == (4, 2)
    # The page commits; the daemon dies before the notices are acted on.
    [notice] = cancel_page(zone, "T-2")
    assert (notice.kind, notice.tours) == ("task_cancelled", (tour["tour"],))
    assert stop_states(zone, "T-2") == ["cancelled"]
    assert stock(zone.store, "SKU-D", "A-03-12") == (4, 0)
    status, now = await pda.tour()
    assert status == 200 and [s["task"] for s in walk(now)] == ["T-1"]
    assert now["route"]["length_m"] < tour["route"]["length_m"]  # re-routed, in that transaction
    await pda.scan("A-01-05")
    assert (await pda.scan(GTIN_A))["result"] == "tour_done"
    assert picked_tasks(zone) == {"T-1"}


async def test_start_up_takes_out_what_a_half_done_cancel_left(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 2)], order="O-1")
    add_task(zone.store, "T-3", [("SKU-C", 2)], order="O-3")
    first, second = await zone.picker(), await zone.picker("BADGE-2")
    tour = (await first.scan("O-1"))["tour"]
    other = (await second.scan("O-3"))["tour"]
    half_done_cancel(zone, "T-2", "T-3")
    assert stock(zone.store, "SKU-D", "A-03-12") == (4, 2)

    daemon = build_daemon(zone.cfg, zone.store)  # start-up, before anything serves
    assert daemon.parts["picking"] is not zone.picking
    assert stop_states(zone, "T-2") == stop_states(zone, "T-3") == ["cancelled"]
    assert stock(zone.store, "SKU-D", "A-03-12") == (4, 0)
    assert stock(zone.store, "SKU-C", "A-06-15")[1] == 0
    _, now = await first.tour()
    assert [s["task"] for s in walk(now)] == ["T-1"]
    assert now["route"]["length_m"] < tour["route"]["length_m"]
    assert (await second.tour())[0] == 404  # nothing left of T-3's tour: finished
    states = {r["tour"]: r["state"] for r in zone.store.query("SELECT tour, state FROM tours")}
    assert states == {tour["tour"]: "active", other["tour"]: "done"}
    tasks = {r["task"]: r["state"] for r in zone.store.query("SELECT task, state FROM tasks")}
    assert tasks == {"T-1": "started", "T-2": "cancelled", "T-3": "cancelled"}


async def test_the_pick_path_confirms_nothing_for_a_task_no_longer_pickable(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 2)], order="O-1")
    pda = await zone.picker()
    tour = (await pda.scan("O-1"))["tour"]
    await pda.scan("A-01-05")
    assert (await pda.scan(GTIN_A))["result"] == "stop_done"  # on to T-2's stop
    half_done_cancel(zone, "T-2")  # and nothing repaired it
    [at] = [s for s in tour["stops"] if s["task"] == "T-2"]
    status, body = await pda.short(at["stop"], 1)  # a short would confirm the unit found
    assert (status, body["error"]["code"]) == (409, "stop_closed")
    answer = await pda.scan("A-03-12")
    assert (answer["result"], answer["feedback"]) == ("task_unavailable", "warning")
    assert "T-2" in answer["message"]
    # ...and the scan that met it took the task's stops out: the tour is over
    assert answer["tour"]["state"] == "done" and stop_states(zone, "T-2") == ["cancelled"]
    assert stock(zone.store, "SKU-D", "A-03-12") == (4, 0)
    assert (await pda.tour())[0] == 404
    assert picked_tasks(zone) == {"T-1"}


# --------------------------------------------------------------------------- issue 12: upstream


async def test_a_cancel_goes_upstream_with_its_stage_and_what_to_put_back(zone: Zone) -> None:
    add_task(zone.store, "T-OPEN", [("SKU-C", 1)], order="O-9")
    add_task(zone.store, "T-1", [("SKU-A", 2)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 2)], order="O-1")
    pda = await zone.picker()
    tour = (await pda.scan("O-1"))["tour"]
    # one unit of the first stop's two, then its task is cancelled
    first = walk(tour)[0]
    assert (await pda.scan(first["location"]))["result"] == "location_ok"
    assert (await pda.scan(item_code(first)))["result"] == "item_ok"
    cancel_page(zone, "T-OPEN", first["task"])
    open_, picking = events(zone.store, "task_cancelled")
    assert (open_["task"], open_["order"], open_["at_stage"], open_["put_back"]) == (
        "T-OPEN",
        "O-9",
        "open",
        [],
    )
    assert (picking["task"], picking["at_stage"]) == (first["task"], "picking")
    held = {"sku": first["sku"], "location": first["location"], "qty": 1}
    assert picking["put_back"] == [held]
    rows = zone.store.query("SELECT task, picker, sku, origin, qty, put_back FROM put_backs")
    assert rows == [
        {"task": first["task"], "picker": "P1", "sku": first["sku"],
         "origin": first["location"], "qty": 1, "put_back": 0}
    ]  # fmt: skip
    # the same cancel again changes nothing and sends nothing more
    cancel_page(zone, first["task"])
    assert len(events(zone.store, "task_cancelled")) == 2


async def test_a_task_picked_but_whose_tour_goes_on_is_cancelled_at_stage_picked(
    zone: Zone,
) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 1)], order="O-1")
    pda = await zone.picker()
    first = walk((await pda.scan("O-1"))["tour"])[0]
    await pda.scan(first["location"])
    answer = await pda.scan(item_code(first))
    assert answer["result"] == "stop_done", answer  # its task picked, the other to go
    cancel_page(zone, first["task"])
    (event,) = events(zone.store, "task_cancelled")
    assert (event["at_stage"], event["put_back"]) == (
        "picked",
        [{"sku": first["sku"], "location": first["location"], "qty": 1}],
    )


async def test_a_cancel_after_the_task_was_picked_is_refused_with_an_alert(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)], order="O-1")
    pda = await zone.picker()
    tour = (await pda.scan("T-1"))["tour"]
    await pda.scan(walk(tour)[0]["location"])
    assert (await pda.scan(GTIN_A))["result"] == "tour_done"
    cancel_page(zone, "T-1")
    cancel_page(zone, "T-1")  # the cloud says it again
    assert zone.store.query("SELECT state FROM tasks WHERE task = 'T-1'") == [{"state": "done"}]
    assert events(zone.store, "task_cancelled") == []
    (alert,) = [a for a in events(zone.store, "alert") if a["kind"] == "cancel_refused"]
    assert alert["severity"] == "warn" and "intercept its shipment" in alert["subject"]
    assert alert["detail"] == {"task": "T-1", "order": "O-1", "shipment": None}
