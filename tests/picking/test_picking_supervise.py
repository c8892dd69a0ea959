"""Supervisor actions (issue 12): release an abandoned tour, reassign a tour,
adjust stock, the lists; and two PDAs racing for one order.

Through the real PDA API over a seeded SQLite zone, with the pushes read on
real WebSockets: each action's exact outbox events, the stock and
reservation rows, 403 for a picker, 404/409 for bad targets, and the
cloud's view (a real :class:`cloud_sync.receiver.Receiver` fed the box's
outbox) of the net stock per (sku, location) equal to the box's own movement.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from cloud_sync.codec import encode_batch_raw
from cloud_sync.receiver import Receiver
from edge.store.db import now_ms
from edge.store.outbox import read_raw
from tests.support.api_fixtures import (
    GTIN_A,
    GTIN_C,
    STOCK,
    Pda,
    Zone,
    add_task,
    events,
    pick_all,
    stock,
)

# --------------------------------------------------------------------------- helpers


@asynccontextmanager
async def socket(zone: Zone, pda: Pda) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A PDA's WebSocket, authenticated, its greeting read."""
    async with zone.http.ws_connect(f"{zone.base}/api/v1/ws") as ws:
        await ws.send_json({"type": "auth", "token": pda.token})
        assert (await ws.receive_json(timeout=5))["text"] == "connected"
        yield ws


async def next_of(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next push of type ``kind`` (earlier pushes of the tour are passed over)."""
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=5)
        if message["type"] == kind:
            return message


def new_events(zone: Zone, after: int) -> list[dict[str, Any]]:
    return [e for e in events(zone.store) if e["seq"] > after]


def last_seq(zone: Zone) -> int:
    all_events = events(zone.store)
    return int(all_events[-1]["seq"]) if all_events else 0


def cloud_net_stock(zone: Zone) -> dict[tuple[str, str], int]:
    """What a cloud holds once it has applied every event of the box's outbox."""
    receiver = Receiver()
    try:
        epoch = zone.store.epoch
        rows = read_raw(zone.store, epoch, after_seq=0, limit=100_000)
        answer = receiver.receive(zone.cfg.box.id, encode_batch_raw(zone.cfg.box.id, epoch, rows))
        assert answer.status == 200, answer.doc
        return {k: v for k, v in receiver.net_stock(zone.cfg.box.id).items() if v}
    finally:
        receiver.close()


def box_movement(zone: Zone) -> dict[tuple[str, str], int]:
    """The box's stock now against the seeded stock, per (sku, location)."""
    seeded: dict[tuple[str, str], int] = {}
    for sku, location, _, _, qty in STOCK:
        seeded[sku, location] = seeded.get((sku, location), 0) + qty
    now: dict[tuple[str, str], int] = {}
    for row in zone.store.query("SELECT sku, location, SUM(qty) AS q FROM stock GROUP BY 1, 2"):
        now[row["sku"], row["location"]] = int(row["q"])
    keys = set(seeded) | set(now)
    moved = {k: now.get(k, 0) - seeded.get(k, 0) for k in keys}
    return {k: v for k, v in moved.items() if v}


async def started_and_partly_picked(zone: Zone, pda: Pda) -> dict[str, Any]:
    """T-1 (order O-1): 3 SKU-A and 1 SKU-C; the picker takes 2 SKU-A and stops."""
    add_task(zone.store, "T-1", [("SKU-A", 3), ("SKU-C", 1)], order="O-1")
    answer = await pda.scan("O-1")
    assert answer["result"] == "tour_started", answer
    stop_a = next(s for s in answer["tour"]["stops"] if s["sku"] == "SKU-A")
    if answer["tour"]["next_stop"] != stop_a["stop"]:
        await pda.call("POST", "/api/v1/tour/skip", {"stop": answer["tour"]["next_stop"]})
    assert (await pda.scan("A-01-05"))["result"] == "location_ok"
    await pda.scan(GTIN_A)
    answer = await pda.scan(GTIN_A)
    assert answer["result"] == "item_ok", answer
    return answer["tour"]


def row(zone: Zone, sql: str, *params: Any) -> dict[str, Any]:
    (found,) = zone.store.query(sql, params)
    return found


# --------------------------------------------------------------------------- release


async def test_release_ends_the_tour_and_its_units_become_the_supervisors_put_back(
    zone: Zone,
) -> None:
    picker, boss, other = (
        await zone.picker("BADGE-1"),
        await zone.picker("BADGE-S"),
        await zone.picker("BADGE-2"),
    )
    async with socket(zone, picker) as ws:
        tour = await started_and_partly_picked(zone, picker)
        number = tour["tour"]
        c_stop = next(s for s in tour["stops"] if s["sku"] == "SKU-C")
        assert stock(zone.store, "SKU-A", "A-01-05") == (8, 1)
        assert stock(zone.store, "SKU-C", c_stop["location"])[1] == 1

        status, listed = await boss.call("GET", "/api/v1/supervisor/tours")
        assert status == 200
        (active,) = listed["tours"]
        assert active["tour"] == number and active["picker"] == {"id": "P1", "name": "Pia"}
        assert (active["stops"], active["stops_open"], active["units"], active["picked"]) == (
            2,
            2,
            4,
            2,
        )
        assert active["last_scan_ms"] >= active["started_ms"] and active["idle_s"] >= 0

        before = last_seq(zone)
        status, body = await boss.call(
            "POST", f"/api/v1/supervisor/tours/{number}/release", {"reason": "went home"}
        )
        assert status == 200, body
        pushed = await next_of(ws, "tour_withdrawn")

    # exactly one event: who released what, with what becomes put-back work
    (action,) = new_events(zone, before)
    assert action["type"] == "supervisor_action"
    assert (action["action"], action["by"], action["subject"]) == (
        "release",
        "S1",
        f"tour {number}",
    )
    assert action["detail"] == {
        "tour": number,
        "picker": "P1",
        "reason": "went home",
        "reopened": ["T-1"],
        "put_back": [{"task": "T-1", "line": "1", "sku": "SKU-A", "location": "A-01-05", "qty": 2}],
        "put_backs_moved": 0,
    }
    assert body["action"] == "release" and body["put_backs"] == [
        {"task": "T-1", "sku": "SKU-A", "origin": "A-01-05", "lot": None, "qty": 2, "in_hand": 0}
    ]
    # the picker is told; the tour is over for them
    assert pushed["type"] == "tour_withdrawn"
    assert (pushed["tour"], pushed["action"]) == (number, "released")
    assert "Sue" not in pushed["message"] and "S1" not in pushed["message"]
    assert (await picker.tour())[0] == 404
    # rows: reservations released, stock untouched (the units are on the cart)
    assert stock(zone.store, "SKU-A", "A-01-05") == (8, 0)
    assert stock(zone.store, "SKU-C", c_stop["location"])[1] == 0
    assert row(zone, "SELECT state FROM tours WHERE tour = ?", number)["state"] == "cancelled"
    states = zone.store.query("SELECT state FROM tour_stops WHERE tour = ?", (number,))
    assert {s["state"] for s in states} == {"cancelled"}
    assert row(zone, "SELECT state FROM tasks WHERE task = 'T-1'")["state"] == "open"
    lines = zone.store.query("SELECT state, picked FROM task_lines WHERE task = 'T-1'")
    assert [(r["state"], r["picked"]) for r in lines] == [("open", 0), ("open", 0)]
    recorded = row(zone, "SELECT * FROM supervisor_actions")
    assert (recorded["action"], recorded["by_picker"]) == ("release", "S1")
    assert json.loads(recorded["detail"]) == action["detail"]

    # the supervisor puts the units back through the put-back scans
    for _ in range(2):
        assert (await boss.scan(GTIN_A))["result"] == "put_back_item"
        assert (await boss.scan("A-01-05"))["result"] == "put_back_done"
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 0)
    returns = [e for e in events(zone.store, "stock_delta") if e["reason"] == "return"]
    assert [(e["qty"], e["ref"]) for e in returns] == [(1, "T-1"), (1, "T-1")]

    # the order is whole again for the next picker
    again = await other.scan("O-1")
    assert again["result"] == "tour_started"
    assert sum(s["qty"] for s in again["tour"]["stops"] if s["sku"] == "SKU-A") == 3
    await pick_all(other, again["tour"])
    (picked,) = events(zone.store, "task_picked")
    assert picked["picker"] == "P2" and all(line["short"] == 0 for line in picked["lines"])
    assert cloud_net_stock(zone) == box_movement(zone)


async def test_release_refuses_unknown_and_finished_tours(zone: Zone) -> None:
    boss = await zone.picker("BADGE-S")
    status, body = await boss.call(
        "POST", "/api/v1/supervisor/tours/999/release", {"reason": "gone"}
    )
    assert (status, body["error"]["code"]) == (404, "unknown_tour")
    add_task(zone.store, "T-1", [("SKU-A", 1)])
    picker = await zone.picker()
    answer = await picker.scan("T-1")
    await pick_all(picker, answer["tour"])
    before = last_seq(zone)
    status, body = await boss.call(
        "POST", f"/api/v1/supervisor/tours/{answer['tour']['tour']}/release", {"reason": "x"}
    )
    assert (status, body["error"]["code"]) == (409, "tour_not_active")
    status, body = await boss.call("POST", "/api/v1/supervisor/tours/1/release", {})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    status, body = await boss.call("POST", "/api/v1/supervisor/tours/x1/release", {"reason": "x"})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert last_seq(zone) == before
    assert not zone.store.query("SELECT * FROM supervisor_actions")


async def test_release_moves_the_pickers_put_backs_of_the_tour_to_the_supervisor(
    zone: Zone,
) -> None:
    """A task cancelled on the tour left put-back lines with the picker: they
    are on the abandoned cart, so the supervisor holds them after a release."""
    from tests.picking.test_picking_put_back import cancel_page

    add_task(zone.store, "T-1", [("SKU-A", 2)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 1)], order="O-1")
    picker, boss = await zone.picker(), await zone.picker("BADGE-S")
    answer = await picker.scan("O-1")
    first = answer["tour"]["next_stop"]
    stop_a = next(s for s in answer["tour"]["stops"] if s["sku"] == "SKU-A")
    if first != stop_a["stop"]:
        await picker.call("POST", "/api/v1/tour/skip", {"stop": first})
    await picker.scan("A-01-05")
    await picker.scan(GTIN_A)
    cancel_page(zone, "T-1")
    assert zone.store.query("SELECT picker FROM put_backs")[0]["picker"] == "P1"
    status, body = await boss.call(
        "POST", f"/api/v1/supervisor/tours/{answer['tour']['tour']}/release", {"reason": "ill"}
    )
    assert status == 200, body
    assert body["put_backs_moved"] == 1 and body["reopened"] == ["T-2"]
    assert [r["picker"] for r in zone.store.query("SELECT picker FROM put_backs")] == ["S1"]
    assert row(zone, "SELECT state FROM tasks WHERE task = 'T-1'")["state"] == "cancelled"
    assert stock(zone.store, "SKU-D", "A-03-12") == (4, 0)


# --------------------------------------------------------------------------- reassign


async def test_reassign_hands_the_tour_over_and_tells_both(zone: Zone) -> None:
    one, two, boss = (
        await zone.picker("BADGE-1"),
        await zone.picker("BADGE-2"),
        await zone.picker("BADGE-S"),
    )
    async with socket(zone, one) as ws_one, socket(zone, two) as ws_two:
        tour = await started_and_partly_picked(zone, one)
        before = last_seq(zone)
        status, body = await boss.call(
            "POST", f"/api/v1/supervisor/tours/{tour['tour']}/reassign", {"picker": "P2"}
        )
        assert status == 200, body
        told_one = await next_of(ws_one, "tour_withdrawn")
        told_two = await next_of(ws_two, "tour_assigned")
    assert (told_one["type"], told_one["tour"], told_one["action"]) == (
        "tour_withdrawn",
        tour["tour"],
        "reassigned",
    )
    assert "P2" not in told_one["message"] and "Per" not in told_one["message"]
    assert told_two["type"] == "tour_assigned" and told_two["tour"]["tour"] == tour["tour"]
    (action,) = new_events(zone, before)
    assert (action["type"], action["action"], action["by"], action["subject"]) == (
        "supervisor_action",
        "reassign",
        "S1",
        f"tour {tour['tour']}",
    )
    assert action["detail"] == {
        "tour": tour["tour"],
        "from": "P1",
        "to": "P2",
        "put_backs_moved": 0,
    }
    # the reservations stay: the tour goes on as it stood
    assert stock(zone.store, "SKU-A", "A-01-05") == (8, 1)
    assert (await one.tour())[0] == 404
    status, mine = await two.tour()
    assert status == 200 and mine["tour"] == tour["tour"]
    await pick_all(two, mine)
    (picked,) = events(zone.store, "task_picked")
    assert picked["picker"] == "P2"
    lines = {line["sku"]: line for line in picked["lines"]}
    assert lines["SKU-A"]["picked"] == 3 and lines["SKU-C"]["picked"] == 1
    assert cloud_net_stock(zone) == box_movement(zone)


async def test_reassign_refuses_busy_unknown_and_inactive_pickers(zone: Zone) -> None:
    one, two, boss = (
        await zone.picker("BADGE-1"),
        await zone.picker("BADGE-2"),
        await zone.picker("BADGE-S"),
    )
    add_task(zone.store, "T-1", [("SKU-A", 1)])
    add_task(zone.store, "T-2", [("SKU-D", 1)])
    tour = (await one.scan("T-1"))["tour"]["tour"]
    assert (await two.scan("T-2"))["result"] == "tour_started"
    path = f"/api/v1/supervisor/tours/{tour}/reassign"
    before = last_seq(zone)
    for to, status_code, code in [
        ("P2", 409, "picker_busy"),  # on a tour of their own
        ("P1", 409, "picker_busy"),  # theirs already
        ("NOBODY", 404, "unknown_picker"),
    ]:
        status, body = await boss.call("POST", path, {"picker": to})
        assert (status, body["error"]["code"]) == (status_code, code), (to, body)
    zone.store.run(lambda tx: tx.execute("UPDATE pickers SET active = 0 WHERE id = 'P2'"))
    zone.store.run(lambda tx: tx.execute("UPDATE tours SET state = 'done' WHERE picker = 'P2'"))
    status, body = await boss.call("POST", path, {"picker": "P2"})
    assert (status, body["error"]["code"]) == (409, "picker_busy")
    status, body = await boss.call(
        "POST", "/api/v1/supervisor/tours/999/reassign", {"picker": "S1"}
    )
    assert (status, body["error"]["code"]) == (404, "unknown_tour")
    assert last_seq(zone) == before


# --------------------------------------------------------------------------- adjust


async def adjust(boss: Pda, **body: Any) -> tuple[int, dict[str, Any]]:
    return await boss.call("POST", "/api/v1/supervisor/stock/adjust", body)


async def test_adjust_moves_stock_and_sends_a_delta_reason_adjust(zone: Zone) -> None:
    boss = await zone.picker("BADGE-S")
    before = last_seq(zone)
    status, body = await adjust(
        boss, sku="SKU-C", location="A-08-04", qty=-2, reason="damaged in aisle"
    )
    assert status == 200, body
    assert (body["before"], body["after"], body["delta"]) == (10, 8, -2)
    status, body = await adjust(
        boss, sku="SKU-B", location="A-04-10", lot="L1", set=7, reason="recount", ref="INC-42"
    )
    assert status == 200, body
    # a location that had none of it gets a row
    status, body = await adjust(boss, sku="SKU-A", location="A-09-18", qty=4, reason="found")
    assert status == 200, body
    assert stock(zone.store, "SKU-C", "A-08-04") == (8, 0)
    assert stock(zone.store, "SKU-B", "A-04-10") == (7, 0)
    assert stock(zone.store, "SKU-A", "A-09-18") == (4, 0)
    got = [(e["type"], e.get("action")) for e in new_events(zone, before)]
    assert got == [("stock_delta", None), ("supervisor_action", "adjust")] * 3
    deltas = [e for e in new_events(zone, before) if e["type"] == "stock_delta"]
    assert [
        (e["sku"], e["location"], e["qty"], e["reason"], e["ref"], e["lot"]) for e in deltas
    ] == [
        ("SKU-C", "A-08-04", -2, "adjust", None, None),
        ("SKU-B", "A-04-10", 2, "adjust", "INC-42", "L1"),
        ("SKU-A", "A-09-18", 4, "adjust", None, None),
    ]
    actions = [e for e in new_events(zone, before) if e["type"] == "supervisor_action"]
    assert actions[1]["subject"] == "SKU-B at A-04-10"
    assert actions[1]["detail"] == {
        "sku": "SKU-B",
        "location": "A-04-10",
        "lot": "L1",
        "before": 5,
        "after": 7,
        "delta": 2,
        "reserved": 0,
        "reason": "recount",
        "ref": "INC-42",
    }
    assert len(zone.store.query("SELECT * FROM supervisor_actions")) == 3
    assert (
        cloud_net_stock(zone)
        == box_movement(zone)
        == {
            ("SKU-C", "A-08-04"): -2,
            ("SKU-B", "A-04-10"): 2,
            ("SKU-A", "A-09-18"): 4,
        }
    )


async def test_adjust_never_goes_below_what_tours_reserve(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 3)])
    picker, boss = await zone.picker(), await zone.picker("BADGE-S")
    assert (await picker.scan("T-1"))["result"] == "tour_started"
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 3)
    before = last_seq(zone)
    for body in ({"set": 2}, {"qty": -8}):
        status, answer = await adjust(boss, sku="SKU-A", location="A-01-05", reason="count", **body)
        assert (status, answer["error"]["code"]) == (409, "below_reserved"), answer
    assert last_seq(zone) == before
    status, answer = await adjust(boss, sku="SKU-A", location="A-01-05", qty=-7, reason="count")
    assert status == 200 and answer["after"] == 3
    assert stock(zone.store, "SKU-A", "A-01-05") == (3, 3)
    # the tour still gets its three units
    await picker.scan("A-01-05")
    for _ in range(3):
        answer = await picker.scan(GTIN_A)
    assert answer["result"] == "tour_done"
    assert stock(zone.store, "SKU-A", "A-01-05") == (0, 0)
    assert cloud_net_stock(zone) == box_movement(zone)


async def test_adjust_refuses_bad_targets_and_bodies(zone: Zone) -> None:
    boss = await zone.picker("BADGE-S")
    before = last_seq(zone)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"sku": "SKU-A", "location": "NOWHERE", "qty": 1, "reason": "r"}, 404, "unknown_location"),
        ({"sku": "NOTHING", "location": "A-01-05", "qty": 1, "reason": "r"}, 404, "unknown_sku"),
        ({"sku": "SKU-A", "location": "A-01-05", "reason": "r"}, 400, "invalid_request"),
        (
            {"sku": "SKU-A", "location": "A-01-05", "qty": 1, "set": 2, "reason": "r"},
            400,
            "invalid_request",
        ),
        ({"sku": "SKU-A", "location": "A-01-05", "qty": 0, "reason": "r"}, 400, "invalid_request"),
        ({"sku": "SKU-A", "location": "A-01-05", "set": -1, "reason": "r"}, 400, "invalid_request"),
        ({"sku": "SKU-A", "location": "A-01-05", "qty": 1}, 400, "invalid_request"),
    ]
    for body, status_code, code in cases:
        status, answer = await boss.call("POST", "/api/v1/supervisor/stock/adjust", body)
        assert (status, answer["error"]["code"]) == (status_code, code), body
    assert last_seq(zone) == before
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 0)


# --------------------------------------------------------------------------- roles, lists


async def test_a_picker_gets_403_on_every_supervisor_route(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 1)])
    picker = await zone.picker()
    tour = (await picker.scan("T-1"))["tour"]["tour"]
    before = last_seq(zone)
    for method, path, body in [
        ("POST", f"/api/v1/supervisor/tours/{tour}/release", {"reason": "mine"}),
        ("POST", f"/api/v1/supervisor/tours/{tour}/reassign", {"picker": "P2"}),
        (
            "POST",
            "/api/v1/supervisor/stock/adjust",
            {"sku": "SKU-A", "location": "A-01-05", "qty": 5, "reason": "r"},
        ),
        ("GET", "/api/v1/supervisor/tours", None),
        ("GET", "/api/v1/supervisor/exceptions", None),
    ]:
        status, answer = await picker.call(method, path, body)
        assert (status, answer["error"]["code"]) == (403, "forbidden"), path
    assert last_seq(zone) == before
    assert (await picker.tour())[0] == 200


async def test_an_admin_may_act_too(zone: Zone) -> None:
    zone.store.run(
        lambda tx: tx.execute(
            "INSERT INTO pickers (id, name, badge, role) VALUES ('A1', 'Ada', 'BADGE-A', 'admin')"
        )
    )
    admin = await zone.picker("BADGE-A")
    status, body = await admin.call("GET", "/api/v1/supervisor/tours")
    assert (status, body) == (200, {"tours": []})


async def test_exceptions_list_shorts_cancels_put_backs_and_actions(zone: Zone) -> None:
    from tests.picking.test_picking_put_back import cancel_page

    add_task(zone.store, "T-1", [("SKU-C", 5)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-A", 2)], order="O-2")
    add_task(zone.store, "T-3", [("SKU-E", 1)], order="O-3")
    picker, boss = await zone.picker(), await zone.picker("BADGE-S")
    answer = await picker.scan("O-1")
    stop = answer["tour"]["stops"][0]
    await picker.scan(stop["location"])
    await picker.scan(GTIN_C)
    status, _ = await picker.short(stop["stop"], 1, "damaged")
    assert status == 200
    status, tour = await picker.tour()
    await pick_all(picker, tour)
    answer = await picker.scan("O-2")
    await picker.scan("A-01-05")
    await picker.scan(GTIN_A)
    cancel_page(zone, "T-2")
    assert (await picker.scan("O-3"))["result"] == "put_back_required"
    await adjust(boss, sku="SKU-D", location="A-03-12", qty=1, reason="found one")

    status, body = await boss.call("GET", "/api/v1/supervisor/exceptions?limit=20")
    assert status == 200
    kinds = [e["kind"] for e in body["exceptions"]]
    assert {"short", "cancel", "put_back", "supervisor_action", "alert"} <= set(kinds), kinds
    short = next(e for e in body["exceptions"] if e["kind"] == "short")
    assert (short["task"], short["sku"], short["picker"], short["reason"]) == (
        "T-1",
        "SKU-C",
        "P1",
        "damaged",
    )
    put_back = next(e for e in body["exceptions"] if e["kind"] == "put_back")
    assert (put_back["task"], put_back["picker"], put_back["qty"]) == ("T-2", "P1", 1)
    stamps = [e["at_ms"] for e in body["exceptions"]]
    assert stamps == sorted(stamps, reverse=True)
    status, body = await boss.call("GET", "/api/v1/supervisor/exceptions?limit=2")
    assert status == 200 and len(body["exceptions"]) == 2
    status, body = await boss.call("GET", "/api/v1/supervisor/exceptions?limit=0")
    assert (status, body["error"]["code"]) == (400, "invalid_request")


# --------------------------------------------------------------------------- races


async def test_two_pdas_scanning_one_order_at_once_one_tour_and_a_clear_taken(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 2), ("SKU-C", 1)], order="O-1")
    one, two = await zone.picker("BADGE-1"), await zone.picker("BADGE-2")
    answers = await asyncio.gather(
        one.scan("O-1", str(uuid.uuid4())), two.scan("O-1", str(uuid.uuid4()))
    )
    results = sorted(a["result"] for a in answers)
    assert results == ["taken", "tour_started"], answers
    lost = next(a for a in answers if a["result"] == "taken")
    assert lost["feedback"] == "error" and lost["tour"] is None
    assert "O-1" in lost["message"]
    for personal in ("P1", "P2", "Pia", "Per", "BADGE"):
        assert personal not in lost["message"], lost["message"]
    assert len(zone.store.query("SELECT * FROM tours")) == 1
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 2)


# --------------------------------------------------------------------------- counts


async def test_counts_list_open_and_finished_counts_and_the_accuracy(zone: Zone) -> None:
    from tests.picking.test_picking_counts import add_count, count_units

    add_count(zone.store, "C-1", [("SKU-C", "A-08-04")], priority=5)
    add_count(zone.store, "C-2", [("SKU-A", "A-01-05"), ("SKU-D", "A-03-12")], priority=3)
    add_count(zone.store, "C-3", [("SKU-B", "A-04-10")])
    # a count 20 days old: in the 30-day accuracy, not in the last day's
    old = now_ms() - 20 * 86_400_000
    zone.store.run(
        lambda tx: tx.execute(
            "INSERT INTO count_results (task, location, sku, counted, expected, on_hand, "
            "attempts, matched, picker, at_ms) "
            "VALUES ('C-0', 'A-02-08', 'SKU-B', 5, 5, 5, 1, 1, 'P2', ?)",
            (old,),
        )
    )
    picker, boss = await zone.picker(), await zone.picker("BADGE-S")

    # C-1 first (the most urgent): 9 counted twice where the box holds 10
    assert (await picker.scan("START"))["tour"]["kind"] == "count"
    await picker.scan("A-08-04")
    await count_units(picker, GTIN_C, 9)
    assert (await picker.scan("A-08-04"))["result"] == "recount"
    await count_units(picker, GTIN_C, 9)
    assert (await picker.scan("A-08-04"))["result"] == "count_done"
    # then C-2, its first location being counted
    answer = await picker.scan("START")
    tour = answer["tour"]
    first = tour["stops"][0]
    assert (await picker.scan(first["location"]))["result"] == "location_ok"

    status, body = await boss.call("GET", "/api/v1/supervisor/counts")
    assert status == 200, body
    assert set(body) == {"open", "recent", "accuracy"}
    started, waiting = body["open"]
    assert {k: started[k] for k in ("task", "priority", "state", "tour", "picker")} == {
        "task": "C-2",
        "priority": 3,
        "state": "started",
        "tour": tour["tour"],
        "picker": {"id": "P1", "name": "Pia"},
    }
    assert started["lines"] == [
        {"sku": s["sku"], "location": s["location"], "state": state}
        for s, state in zip(tour["stops"], ("location_ok", "pending"), strict=True)
    ]
    assert {k: waiting[k] for k in ("task", "state", "tour", "picker", "lines")} == {
        "task": "C-3",
        "state": "open",
        "tour": None,
        "picker": None,
        "lines": [{"sku": "SKU-B", "location": "A-04-10", "state": None}],
    }
    # the open counts never carry a quantity the box expects
    assert "expected" not in json.dumps(body["open"]) and "on_hand" not in json.dumps(body["open"])
    newest, oldest = body["recent"]
    assert {k: v for k, v in newest.items() if k != "at_ms"} == {
        "task": "C-1",
        "location": "A-08-04",
        "sku": "SKU-C",
        "counted": 9,
        "expected": 10,
        "on_hand": 10,
        "matched": False,
        "attempts": 2,
        "picker": "P1",
    }
    assert (oldest["task"], oldest["matched"], oldest["at_ms"]) == ("C-0", True, old)
    assert body["accuracy"] == {
        "1d": {"counted": 1, "matched": 0, "ratio": 0.0},
        "30d": {"counted": 2, "matched": 1, "ratio": 0.5},
    }

    # the location being counted is finished by a typed quantity that matches
    on_hand = stock(zone.store, first["sku"], first["location"])[0]
    status, done = await picker.call(
        "POST", "/api/v1/tour/count", {"stop": first["stop"], "qty": on_hand}
    )
    assert (status, done["result"]) == (200, "count_done"), done
    status, body = await boss.call("GET", "/api/v1/supervisor/counts?limit=1")
    assert status == 200
    (latest,) = body["recent"]
    assert (latest["task"], latest["location"], latest["matched"]) == (
        "C-2",
        first["location"],
        True,
    )
    assert [n["state"] for n in body["open"][0]["lines"]] == ["done", "pending"]
    assert body["accuracy"]["1d"] == {"counted": 2, "matched": 1, "ratio": 0.5}
    assert body["accuracy"]["30d"] == {"counted": 3, "matched": 2, "ratio": 2 / 3}

    for bad in ("0", "501", "x"):
        status, body = await boss.call("GET", f"/api/v1/supervisor/counts?limit={bad}")
        assert (status, body["error"]["code"]) == (400, "invalid_request"), bad
    status, body = await picker.call("GET", "/api/v1/supervisor/counts")
    assert (status, body["error"]["code"]) == (403, "forbidden")
