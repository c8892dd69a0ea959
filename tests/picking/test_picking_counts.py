"""Blind cycle counts and zero checks (issue 12), through the real PDA API.

A count task becomes a count tour: the PDA never sees the quantity the box
expects; a count that differs from the box's on-hand is counted once more;
the result goes upstream as ``count_result`` and, when it differs, the stock
is corrected with ``stock_delta`` reason ``count``. Picks confirmed at the
location while it is counted are accounted for. Zero checks come from an
``empty`` short and from a location picked to zero.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from edge.api.app import create_app
from edge.config import Config
from edge.picking import PickingService
from edge.store.db import Store, Transaction, now_ms
from tests.support.api_fixtures import (
    EPC_D,
    GTIN_A,
    GTIN_C,
    GTIN_ONE,
    Pda,
    Zone,
    add_task,
    delta_sum,
    events,
    stock,
)


def add_count(store: Store, task: str, lines: list[tuple[str, str]], priority: int = 0) -> None:
    """A count task as the cloud sends it: (sku, location) per line."""

    def fn(tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO tasks (task, kind, priority, received_ms) VALUES (?, 'count', ?, ?)",
            (task, priority, now_ms()),
        )
        tx.executemany(
            "INSERT INTO task_lines (task, line, sku, qty, location) VALUES (?, ?, ?, 0, ?)",
            [(task, str(n), sku, loc) for n, (sku, loc) in enumerate(lines, start=1)],
        )

    store.run(fn)


async def count_units(pda: Pda, gtin: str, units: int) -> dict[str, object]:
    answer: dict[str, object] = {}
    for _ in range(units):
        answer = await pda.scan(gtin)
        assert answer["result"] == "counted", answer
    return answer


def results(store: Store, type_: str) -> list[dict[str, object]]:
    return events(store, type_)


def count_deltas(store: Store) -> list[dict[str, object]]:
    return [e for e in events(store, "stock_delta") if e["reason"] == "count"]


async def test_a_count_that_matches_is_recorded_blind(zone: Zone) -> None:
    add_count(zone.store, "C-1", [("SKU-A", "A-01-05")])
    pda = await zone.picker()
    started = await pda.scan("START")
    assert started["result"] == "tour_started", started
    tour = started["tour"]
    assert tour["kind"] == "count"
    assert [(s["location"], s["sku"], s["qty"]) for s in tour["stops"]] == [
        ("A-01-05", "SKU-A", None)  # the PDA never sees what the box expects
    ]
    begun = await pda.scan("A-01-05")
    assert begun["result"] == "location_ok"
    assert "10" not in begun["message"]
    answer = await count_units(pda, GTIN_A, 9)
    assert answer["message"] == "9 counted"
    assert "10" not in json.dumps(answer)
    last = await pda.scan(f"01{GTIN_A}301")  # one more, as a count of 1
    assert last["result"] == "counted"
    done = await pda.scan("A-01-05")
    assert (done["result"], done["feedback"]) == ("count_done", "success")
    assert done["tour"]["state"] == "done"
    (result,) = results(zone.store, "count_result")
    assert {k: result[k] for k in ("task", "location", "sku", "counted", "expected", "picker")} == {
        "task": "C-1",
        "location": "A-01-05",
        "sku": "SKU-A",
        "counted": 10,
        "expected": 10,
        "picker": "P1",
    }
    assert not count_deltas(zone.store)
    (task,) = zone.store.query("SELECT state FROM tasks WHERE task = 'C-1'")
    assert task["state"] == "done"


async def test_a_difference_is_counted_twice_then_corrects_the_stock(zone: Zone) -> None:
    add_count(zone.store, "C-1", [("SKU-A", "A-01-05")])
    pda = await zone.picker()
    await pda.scan("START")
    await pda.scan("A-01-05")
    await count_units(pda, GTIN_A, 8)
    again = await pda.scan("A-01-05")
    assert (again["result"], again["feedback"]) == ("recount", "warning")
    assert again["tour"]["stops"][0]["picked"] == 0  # the recount starts from 0
    assert again["tour"]["stops"][0]["attempt"] == 2
    assert not results(zone.store, "count_result")
    await count_units(pda, GTIN_A, 8)
    done = await pda.scan("A-01-05")
    assert (done["result"], done["feedback"]) == ("count_done", "warning")
    (result,) = results(zone.store, "count_result")
    assert (result["counted"], result["expected"]) == (8, 10)
    (delta,) = count_deltas(zone.store)
    assert (delta["sku"], delta["location"], delta["qty"], delta["ref"]) == (
        "SKU-A",
        "A-01-05",
        -2,
        "C-1",
    )
    assert stock(zone.store, "SKU-A", "A-01-05") == (8, 0)
    assert delta_sum(zone.store, "SKU-A", "A-01-05") == -2


async def test_a_recount_that_matches_changes_no_stock(zone: Zone) -> None:
    add_count(zone.store, "C-1", [("SKU-A", "A-01-05")])
    pda = await zone.picker()
    await pda.scan("START")
    await pda.scan("A-01-05")
    await count_units(pda, GTIN_A, 7)
    assert (await pda.scan("A-01-05"))["result"] == "recount"
    await count_units(pda, GTIN_A, 10)
    done = await pda.scan("A-01-05")
    assert (done["result"], done["feedback"]) == ("count_done", "success")
    assert not count_deltas(zone.store)
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 0)
    (row,) = zone.store.query("SELECT attempts, matched FROM count_results")
    assert (row["attempts"], row["matched"]) == (2, 1)


async def test_picks_at_the_location_during_the_count_are_accounted_for(zone: Zone) -> None:
    """P1 counts SKU-A at A-01-05 (10 when counting begins); P2 picks 2 there
    meanwhile. The 8 P1 counts match: expected stays the 10 of the start, the
    stock is not touched, and the ledger holds only the picks."""
    add_count(zone.store, "C-1", [("SKU-A", "A-01-05")], priority=9)
    add_task(zone.store, "T-1", [("SKU-A", 2)], order="O-1")
    counter, picker = await zone.picker("BADGE-1"), await zone.picker("BADGE-2")
    await counter.scan("START")
    await counter.scan("A-01-05")
    await count_units(counter, GTIN_A, 3)
    started = await picker.scan("T-1")
    assert started["result"] == "tour_started"
    await picker.scan("A-01-05")
    await picker.scan(GTIN_A)
    assert (await picker.scan(GTIN_A))["result"] == "tour_done"
    await count_units(counter, GTIN_A, 5)
    done = await counter.scan("A-01-05")
    assert (done["result"], done["feedback"]) == ("count_done", "success")
    (result,) = results(zone.store, "count_result")
    assert (result["counted"], result["expected"]) == (8, 10)
    assert not count_deltas(zone.store)
    assert stock(zone.store, "SKU-A", "A-01-05") == (8, 0)
    assert delta_sum(zone.store, "SKU-A", "A-01-05") == -2


async def test_wrong_scans_in_a_count_change_nothing(zone: Zone) -> None:
    add_count(zone.store, "C-1", [("SKU-D", "A-03-12")])
    pda = await zone.picker()
    await pda.scan("START")
    early = await pda.scan(EPC_D)
    assert early["result"] == "location_required"
    wrong = await pda.scan("A-01-05")
    assert (wrong["result"], wrong["feedback"]) == ("wrong_location", "error")
    await pda.scan("A-03-12")
    other = await pda.scan(GTIN_A)
    assert (other["result"], other["feedback"]) == ("wrong_item", "error")
    assert (await pda.scan(EPC_D))["result"] == "counted"
    twice = await pda.scan(EPC_D)  # the same serialised unit
    assert (twice["result"], twice["feedback"]) == ("over_pick", "error")
    assert twice["tour"]["stops"][0]["picked"] == 1
    busy = await pda.scan("START")
    assert busy["result"] == "tour_active"
    # 1 of 4 differs: the recount counts the same unit again, once
    assert (await pda.scan("A-03-12"))["result"] == "recount"
    assert (await pda.scan(EPC_D))["result"] == "counted"
    assert (await pda.scan(EPC_D))["result"] == "over_pick"


async def test_an_entered_quantity_finishes_the_count(zone: Zone) -> None:
    add_count(zone.store, "C-1", [("SKU-A", "A-01-05"), ("SKU-C", "A-08-04")])
    pda = await zone.picker()
    tour = (await pda.scan("START"))["tour"]
    first = next(s for s in tour["stops"] if s["stop"] == tour["next_stop"])
    await pda.scan(first["location"])
    status, body = await pda.call("POST", "/api/v1/tour/count", {"stop": first["stop"], "qty": 999})
    assert status == 200, body
    assert body["result"] == "recount"
    status, body = await pda.call("POST", "/api/v1/tour/count", {"stop": first["stop"], "qty": 999})
    assert (status, body["result"]) == (200, "count_done")
    (result,) = results(zone.store, "count_result")
    assert result["counted"] == 999
    nxt = next(s for s in body["tour"]["stops"] if s["stop"] == body["tour"]["next_stop"])
    status, body = await pda.call("POST", "/api/v1/tour/count", {"stop": nxt["stop"], "qty": 1})
    assert status == 409, body  # its location is not scanned yet


async def test_counts_and_picks_interleave_by_priority(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-C", 1)], order="O-1", priority=5)
    add_count(zone.store, "C-1", [("SKU-A", "A-01-05")], priority=1)
    pda = await zone.picker()
    first = await pda.scan("START")
    assert first["tour"]["kind"] == "pick"
    await pda.scan(first["tour"]["stops"][0]["location"])
    assert (await pda.scan(GTIN_C))["result"] == "tour_done"
    second = await pda.scan("START")
    assert second["tour"]["kind"] == "count"
    await pda.scan("A-01-05")
    await count_units(pda, GTIN_A, 10)
    assert (await pda.scan("A-01-05"))["tour"]["state"] == "done"
    # a count task may be started by its id as well
    add_count(zone.store, "C-2", [("SKU-C", "A-08-04")])
    by_id = await pda.scan("C-2")
    assert (by_id["result"], by_id["tour"]["kind"]) == ("tour_started", "count")


# --------------------------------------------------------------------------- zero checks


@pytest.fixture
async def checks(zone_store: tuple[Store, Config]) -> AsyncIterator[Zone]:
    """The seeded zone with zero checks on."""
    store, cfg = zone_store
    picking = PickingService(store, cfg.layout_dict(), zero_checks=True)
    server = TestServer(create_app(store, cfg, picking=picking), host="127.0.0.1", port=0)
    await server.start_server()
    http = aiohttp.ClientSession()
    try:
        yield Zone(store, cfg, picking, server, http)
    finally:
        await http.close()
        await server.close()


def zero_checks(store: Store) -> list[tuple[str, str, str]]:
    rows = store.query(
        "SELECT t.task, l.sku, l.location FROM tasks t JOIN task_lines l ON l.task = t.task "
        "WHERE t.kind = 'count' ORDER BY t.task"
    )
    return [(r["task"], r["sku"], r["location"]) for r in rows]


async def test_an_empty_short_creates_a_zero_check_counted_next(checks: Zone) -> None:
    add_task(checks.store, "T-1", [("SKU-A", 3)], order="O-1")
    pda = await checks.picker()
    answer = await pda.scan("T-1")
    status, _ = await pda.short(answer["tour"]["next_stop"], 0, "empty")
    assert status == 200
    ((task, sku, location),) = zero_checks(checks.store)
    assert (task.startswith("ZC-"), sku, location) == (True, "SKU-A", "A-01-05")
    # the next START counts it (a zero check goes before ordinary work)
    add_task(checks.store, "T-2", [("SKU-C", 1)], order="O-2", priority=50)
    count = await pda.scan("START")
    assert count["tour"]["kind"] == "count"
    await pda.scan("A-01-05")
    done = await pda.scan("A-01-05")  # nothing there: a count of 0
    assert done["result"] == "count_done", done
    (result,) = results(checks.store, "count_result")
    assert (result["task"], result["counted"]) == (task, 0)


async def test_a_location_picked_to_zero_gets_one_zero_check(checks: Zone) -> None:
    add_task(checks.store, "T-1", [("SKU-ONE", 1)], order="O-1")
    pda = await checks.picker()
    await pda.scan("T-1")
    await pda.scan("A-05-05")
    assert (await pda.scan(GTIN_ONE))["result"] == "tour_done"
    assert [(s, loc) for _, s, loc in zero_checks(checks.store)] == [("SKU-ONE", "A-05-05")]


async def test_without_zero_checks_nothing_is_created(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-ONE", 1)], order="O-1")
    pda = await zone.picker()
    await pda.scan("T-1")
    await pda.scan("A-05-05")
    await pda.scan(GTIN_ONE)
    assert not zero_checks(zone.store)


async def test_a_count_cancelled_mid_count_leaves_no_put_back_and_no_reservation(
    zone: Zone,
) -> None:
    """Found by the kill loop: counted units never left the shelf."""
    from tests.picking.test_picking_put_back import cancel_page

    add_count(zone.store, "C-1", [("SKU-A", "A-01-05"), ("SKU-C", "A-08-04")])
    pda = await zone.picker()
    tour = (await pda.scan("START"))["tour"]
    stop = next(s for s in tour["stops"] if s["stop"] == tour["next_stop"])
    await pda.scan(stop["location"])
    await count_units(pda, GTIN_A if stop["sku"] == "SKU-A" else GTIN_C, 4)
    cancel_page(zone, "C-1")
    (cancelled,) = results(zone.store, "task_cancelled")
    assert cancelled["put_back"] == []
    assert not zone.store.query("SELECT * FROM put_backs")
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 0)
    assert stock(zone.store, "SKU-C", "A-08-04") == (10, 0)
    status, _ = await pda.tour()
    assert status == 404
    assert (await pda.scan("START"))["result"] == "no_work"


async def test_a_released_count_tour_leaves_no_put_back(zone: Zone) -> None:
    add_count(zone.store, "C-1", [("SKU-A", "A-01-05")])
    pda = await zone.picker()
    tour = (await pda.scan("START"))["tour"]
    await pda.scan("A-01-05")
    await count_units(pda, GTIN_A, 3)
    boss = await zone.picker("BADGE-S")
    status, body = await boss.call(
        "POST", f"/api/v1/supervisor/tours/{tour['tour']}/release", {"reason": "went home"}
    )
    assert status == 200, body
    assert not zone.store.query("SELECT * FROM put_backs")
    (row,) = zone.store.query("SELECT state FROM tasks WHERE task = 'C-1'")
    assert row["state"] == "open"
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 0)
