"""Inventory accuracy and the exception rate (issue 12), from real floor work.

Counts through the PDA API feed the accuracy; shorts, skips, cancels and a
supervisor's release feed the exception rate; both are read by the metrics
collector at scrape time.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from edge.config import Config
from edge.metrics import DaemonCollector
from edge.picking import stats
from edge.picking.model import CartSettings
from edge.routing import heuristic_length
from edge.store.db import Store, now_ms
from tests.picking.test_picking_carts import _zone, three_orders
from tests.picking.test_picking_counts import add_count, count_units
from tests.picking.test_picking_put_back import cancel_page
from tests.support.api_fixtures import GTIN_A, GTIN_C, Zone, add_task, pick_all


def scrape(zone: Zone) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(DaemonCollector(store=zone.store))
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith(
            (
                "pickedge_inventory",
                "pickedge_exception",
                "pickedge_locations",
                "pickedge_tasks_finished",
                "pickedge_walk",
            )
        ):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_accuracy_is_the_share_of_counts_that_matched(zone: Zone) -> None:
    add_count(zone.store, "C-1", [("SKU-A", "A-01-05"), ("SKU-C", "A-08-04")])
    pda = await zone.picker()
    tour = (await pda.scan("START"))["tour"]
    for _ in tour["stops"]:
        stop = next(s for s in tour["stops"] if s["stop"] == tour["next_stop"])
        await pda.scan(stop["location"])
        if stop["sku"] == "SKU-A":
            await count_units(pda, GTIN_A, 10)  # right
            tour = (await pda.scan(stop["location"]))["tour"]
        else:
            for _ in range(2):  # 3 where the box holds 10, twice: a difference
                await count_units(pda, GTIN_C, 3)
                answer = await pda.scan(stop["location"])
            tour = answer["tour"]
    assert tour["state"] == "done"
    assert stats.accuracy(zone.store.reader().conn, now_ms() - stats.DAY_MS) == (2, 1)
    figures = scrape(zone)
    assert figures['pickedge_locations_counted{window="1d"}'] == 2
    assert figures['pickedge_inventory_accuracy_ratio{window="1d"}'] == 0.5
    assert figures['pickedge_inventory_accuracy_ratio{window="30d"}'] == 0.5


async def test_the_exception_rate_counts_tasks_that_needed_a_person(zone: Zone) -> None:
    add_task(zone.store, "T-OK", [("SKU-A", 1)], order="O-1")
    add_task(zone.store, "T-SHORT", [("SKU-A", 1)], order="O-2")
    add_task(zone.store, "T-SKIP", [("SKU-A", 1), ("SKU-C", 1)], order="O-3")
    add_task(zone.store, "T-CANCEL", [("SKU-C", 1)], order="O-4")
    pda = await zone.picker()
    assert (await pick_all(pda, (await pda.scan("T-OK"))["tour"]))["result"] == "tour_done"
    short = await pda.scan("T-SHORT")
    status, _ = await pda.short(short["tour"]["next_stop"], 0, "damaged")
    assert status == 200
    skip = await pda.scan("T-SKIP")
    await pda.call("POST", "/api/v1/tour/skip", {"stop": skip["tour"]["next_stop"]})
    status, tour = await pda.tour()
    assert (await pick_all(pda, tour))["result"] == "tour_done"
    cancel_page(zone, "T-CANCEL")
    assert stats.exceptions(zone.store.reader().conn, now_ms() - stats.DAY_MS) == (4, 3)
    figures = scrape(zone)
    assert figures['pickedge_tasks_finished{window="1d"}'] == 4
    assert figures['pickedge_exception_rate_ratio{window="1d"}'] == 0.75
    kinds = {r["task"]: r["kind"] for r in zone.store.query("SELECT * FROM task_exceptions")}
    assert kinds == {"T-SHORT": "short", "T-SKIP": "skip", "T-CANCEL": "cancel"}


async def test_no_work_no_ratio(zone: Zone) -> None:
    figures = scrape(zone)
    assert figures['pickedge_locations_counted{window="30d"}'] == 0
    assert not any(name.startswith("pickedge_inventory_accuracy_ratio") for name in figures)


async def test_walking_per_unit_against_one_order_per_tour_on_s_shape(
    zone_store: tuple[Store, Config],
) -> None:
    """A cart of three orders: the metrics hold what the tour was planned to
    walk and what the same orders would walk one per tour on S-shape routes."""
    store, cfg = zone_store
    three_orders(store)
    async for zone in _zone(store, cfg, CartSettings(totes=3, units=20)):
        pda = await zone.picker()
        started = await pda.scan("START")
        done = await pick_all(pda, started["tour"])
        assert done["result"] == "tour_done"
        planned, single, units = stats.walking(zone.store.reader().conn, 0)
        assert planned == started["tour"]["route"]["length_m"]
        assert units == sum(s["qty"] for s in started["tour"]["stops"])
        alone = 0.0
        for task in ("T-1", "T-2", "T-3"):
            picks = [
                {"id": str(s["stop"]), "aisle": round(s["x"] / 3.0), "y": s["y"]}
                for s in started["tour"]["stops"]
                if s["task"] == task
            ]
            alone += heuristic_length({"layout": cfg.layout_dict(), "picks": picks}, "s-shape")
        assert single == pytest.approx(alone)
        assert planned < single
        figures = scrape(zone)
        assert figures['pickedge_walk_metres{window="1d"}'] == pytest.approx(planned)
        assert figures['pickedge_walk_single_order_s_shape_metres{window="1d"}'] == pytest.approx(
            single
        )
        assert figures['pickedge_walk_units{window="1d"}'] == units
