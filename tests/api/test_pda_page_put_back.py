"""The PDA page's put-back screen (issue 12), in a real headless Chromium (Debian's).

The picker starts T-1 by its code on the page, picks the first stop and one
unit of the second, and the cloud cancels T-1 while the page is open: the
box's push reaches the page, which shows the put-back panel (one row per
line: item and description, units left, origin, units in hand) instead of
the stop card. START is refused with the box's warning; a reload fetches the
lines again; a unit, then a location that does not stock it (an error that
changes nothing), then its origin put units back, the panel following every
answer; the last one, into another location of its SKU, ends with
"Everything is put back" and the normal prompt. The outbox then holds one
``stock_delta`` reason ``return`` per unit put back and no put-back line is
open. On a cart, a cancelled order's units wait for the end of the tour: the
page fetches the lines when the tour is done. The screenshot is
tests/artifacts/pda_put_back_360.png.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect

from edge.api.app import HUB, create_app
from edge.config import Config
from edge.masterdata import apply_changes
from edge.picking import PickingService
from edge.picking.model import CartSettings
from edge.store.db import Store
from edge.store.sync_state import StoreChangeSink
from tests.support.api_fixtures import (
    GTIN_A,
    GTIN_C,
    ITEMS,
    Zone,
    add_task,
    delta_sum,
    events,
    item_code,
    stock,
    walk,
)
from tests.support.pda_page import box_tour, logged_in, wedge_scan

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# one row of the panel: sku, description, left, origin, in hand, highlighted
ROW = """
tr => [tr.cells[0].firstChild.textContent,
       (tr.querySelector('.pb-desc') || {textContent: ''}).textContent,
       tr.cells[1].textContent, tr.cells[2].textContent, tr.cells[3].textContent,
       tr.classList.contains('current')]
"""


async def rows(page: Page) -> list[list[Any]]:
    """The put-back panel as shown."""
    shown: list[list[Any]] = await page.locator("#put-back-lines tbody tr").evaluate_all(
        f"trs => trs.map({ROW})"
    )
    return shown


async def box_put_backs(page: Page) -> list[dict[str, Any]]:
    """The picker's open lines as the box has them (``GET /api/v1/put-backs``)."""
    answer: dict[str, Any] = await page.evaluate(
        "fetch('/api/v1/put-backs', {headers: {Authorization: "
        "'Bearer ' + localStorage.getItem('pe.token')}}).then(r => r.json())"
    )
    lines: list[dict[str, Any]] = answer["put_backs"]
    return lines


async def shows_the_put_backs(page: Page) -> list[dict[str, Any]]:
    """The page's panel is the box's open lines, described as in the tour;
    returns the lines."""
    lines = await box_put_backs(page)
    held = next((n for n in lines if n["in_hand"]), None)
    assert await rows(page) == [
        [
            n["sku"],
            ITEMS[n["sku"]][0],
            str(n["qty"]),
            n["origin"],
            str(n["in_hand"]),
            n is held,
        ]
        for n in lines
    ]
    return lines


def cancel_and_push(zone: Zone, task: str) -> None:
    """The cloud's cancel as the downloader applies it (one page, one
    transaction), then the hub's pushes to the picker's open page."""
    sink = StoreChangeSink(zone.store, partial(apply_changes, planner=zone.picking.planner))
    page_of_changes = [{"type": "task_cancel", "data": {"task": task}}]
    notices = zone.store.run(lambda tx: sink.apply(tx, page_of_changes))
    zone.server.app[HUB].deliver(notices)


def returns(zone: Zone) -> list[tuple[str, str, int, str]]:
    """The ``stock_delta`` reason ``return`` events: (sku, location, qty, ref)."""
    return [
        (e["sku"], e["location"], e["qty"], e["ref"])
        for e in events(zone.store, "stock_delta")
        if e["reason"] == "return"
    ]


async def test_put_back_after_a_cancel_through_the_page(zone: Zone, browser: Browser) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 2), ("SKU-C", 2)], order="O-1")
    errors: list[str] = []
    context, page = await logged_in(zone, browser, errors, device="put-back-pda")
    body = page.locator("body")
    await expect(page.locator("#put-back")).to_be_hidden()
    await expect(body).to_have_attribute("data-put-back", "none")

    # T-1 by its code: all of SKU-A at A-01-05, then one of the two SKU-C
    await wedge_scan(page, "T-1")
    await expect(body).to_have_attribute("data-result", "tour_started")
    first, second = walk(await box_tour(page))
    assert (first["sku"], first["location"], second["sku"]) == ("SKU-A", "A-01-05", "SKU-C")
    await wedge_scan(page, first["location"])
    for _ in range(first["qty"]):
        await wedge_scan(page, item_code(first))
    await expect(body).to_have_attribute("data-result", "stop_done")
    await wedge_scan(page, second["location"])
    await wedge_scan(page, item_code(second))
    await expect(body).to_have_attribute("data-result", "item_ok")
    origin_c = second["location"]
    other_c = "A-08-04" if origin_c == "A-06-15" else "A-06-15"

    # the cloud cancels T-1 while the page is open: the push brings the panel
    cancel_and_push(zone, "T-1")
    put_back = page.locator("#put-back")
    await expect(put_back).to_be_visible()
    await expect(body).to_have_attribute("data-tour", "none")
    await expect(body).to_have_attribute("data-put-back", "todo")
    await expect(page.locator("#message")).to_contain_text("T-1 was cancelled")
    await expect(body).to_have_attribute("data-feedback", "warning")
    await expect(page.locator("#put-back h2")).to_have_text("Put back")
    await expect(page.locator("#put-back-todo")).to_have_text("Scan a unit to put back")
    await expect(page.locator("#stop")).to_be_hidden()
    await expect(page.locator("#btn-short")).to_be_disabled()
    (cancelled,) = events(zone.store, "task_cancelled")
    assert cancelled["put_back"] == [
        {"sku": "SKU-A", "location": "A-01-05", "qty": 2},
        {"sku": "SKU-C", "location": origin_c, "qty": 1},
    ]
    lines = await shows_the_put_backs(page)
    assert [(n["sku"], n["qty"], n["origin"], n["in_hand"]) for n in lines] == [
        ("SKU-A", 2, "A-01-05", 0),
        ("SKU-C", 1, origin_c, 0),
    ]

    # no new work until everything is back: START is a warning that changes nothing
    add_task(zone.store, "T-2", [("SKU-D", 1)], order="O-2")
    await wedge_scan(page, "START")
    await expect(body).to_have_attribute("data-result", "put_back_required")
    await expect(body).to_have_attribute("data-feedback", "warning")
    await expect(page.locator("#flash")).to_have_class("warning")
    await expect(page.locator("#message")).to_contain_text("put back first: 2 × SKU-A")
    await expect(put_back).to_be_visible()
    assert await shows_the_put_backs(page) == lines
    assert zone.store.query("SELECT state FROM tasks WHERE task = 'T-2'") == [{"state": "open"}]

    # a reload fetches the open lines (the tour's descriptions were kept)
    await page.reload()
    await expect(body).to_have_attribute("data-put-back", "todo")
    assert await shows_the_put_backs(page) == lines

    # a unit in hand: the panel says where it goes
    await wedge_scan(page, GTIN_A)
    await expect(body).to_have_attribute("data-result", "put_back_item")
    await expect(body).to_have_attribute("data-feedback", "success")
    await expect(page.locator("#message")).to_contain_text("A-01-05")
    await expect(body).to_have_attribute("data-put-back", "in_hand")
    await expect(page.locator("#put-back-todo")).to_have_text(
        "Put 1 × SKU-A into A-01-05 (or another location of SKU-A) — scan the location"
    )
    in_hand = await shows_the_put_backs(page)
    assert in_hand[0]["in_hand"] == 1
    ARTIFACTS.mkdir(exist_ok=True)
    await page.wait_for_function(
        "getComputedStyle(document.getElementById('flash')).opacity === '0'"
    )
    await page.screenshot(path=str(ARTIFACTS / "pda_put_back_360.png"), full_page=True)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360

    # a location that does not stock SKU-A: an error, and nothing changed
    before = len(events(zone.store))
    await wedge_scan(page, origin_c)
    await expect(body).to_have_attribute("data-result", "wrong_location")
    await expect(body).to_have_attribute("data-feedback", "error")
    await expect(page.locator("#flash")).to_have_class("error")
    await expect(page.locator("#message")).to_contain_text("does not stock SKU-A")
    await expect(body).to_have_attribute("data-put-back", "in_hand")
    assert await shows_the_put_backs(page) == in_hand
    assert len(events(zone.store)) == before
    assert stock(zone.store, "SKU-A", "A-01-05") == (8, 0)

    # its origin: one unit back, one left
    await wedge_scan(page, "A-01-05")
    await expect(body).to_have_attribute("data-result", "put_back_done")
    await expect(body).to_have_attribute("data-feedback", "success")
    await expect(page.locator("#message")).to_contain_text("1 × SKU-A back at A-01-05")
    await expect(body).to_have_attribute("data-put-back", "todo")
    await expect(page.locator("#put-back-todo")).to_have_text("Scan a unit to put back")
    lines = await shows_the_put_backs(page)
    assert [(n["sku"], n["qty"], n["in_hand"]) for n in lines] == [("SKU-A", 1, 0), ("SKU-C", 1, 0)]
    assert returns(zone) == [("SKU-A", "A-01-05", 1, "T-1")]

    # the other SKU-A: its line goes
    await wedge_scan(page, GTIN_A)
    await wedge_scan(page, "A-01-05")
    await expect(page.locator("#put-back-lines tbody tr")).to_have_count(1)
    lines = await shows_the_put_backs(page)
    assert [(n["sku"], n["qty"]) for n in lines] == [("SKU-C", 1)]

    # the last unit into the other location of SKU-C: everything is back
    await wedge_scan(page, GTIN_C)
    await expect(page.locator("#put-back-todo")).to_have_text(
        f"Put 1 × SKU-C into {origin_c} (or another location of SKU-C) — scan the location"
    )
    await wedge_scan(page, other_c)
    await expect(body).to_have_attribute("data-result", "put_back_done")
    await expect(page.locator("#message")).to_have_text("Everything is put back")
    await expect(put_back).to_be_hidden()
    await expect(body).to_have_attribute("data-put-back", "none")
    await expect(page.locator("#stop")).to_be_visible()
    await expect(page.locator("#stop-hint")).to_have_text("Scan an order, task, tote or START")

    assert returns(zone) == [
        ("SKU-A", "A-01-05", 1, "T-1"),
        ("SKU-A", "A-01-05", 1, "T-1"),
        ("SKU-C", other_c, 1, "T-1"),
    ]
    assert zone.store.query("SELECT id FROM put_backs WHERE closed_ms IS NULL") == []
    assert await box_put_backs(page) == []
    assert stock(zone.store, "SKU-A", "A-01-05") == (10, 0)
    assert delta_sum(zone.store, "SKU-A", "A-01-05") == 0
    assert delta_sum(zone.store, "SKU-C", origin_c) == -1
    assert delta_sum(zone.store, "SKU-C", other_c) == 1

    # and new work starts again
    await wedge_scan(page, "START")
    await expect(body).to_have_attribute("data-result", "tour_started")
    await expect(page.locator("#stop-location")).to_have_text("A-03-12")
    assert errors == []
    await context.close()


@pytest.fixture
async def carts(zone_store: tuple[Store, Config]) -> AsyncIterator[Zone]:
    """The seeded zone picking on carts of 2 totes."""
    store, cfg = zone_store
    picking = PickingService(store, cfg.layout_dict(), carts=CartSettings(totes=2, units=20))
    server = TestServer(create_app(store, cfg, picking=picking), host="127.0.0.1", port=0)
    await server.start_server()
    http = aiohttp.ClientSession()
    try:
        yield Zone(store, cfg, picking, server, http)
    finally:
        await http.close()
        await server.close()


async def test_a_cart_goes_on_and_the_put_back_follows_the_tour(
    carts: Zone, browser: Browser
) -> None:
    """O-2 is cancelled after its only unit went into its tote: the cart goes
    on with O-1, and once the tour is done the page asks for the unit back."""
    add_task(carts.store, "T-1", [("SKU-D", 1), ("SKU-C", 1)], order="O-1", priority=5)
    add_task(carts.store, "T-2", [("SKU-A", 1)], order="O-2", priority=4)
    errors: list[str] = []
    context, page = await logged_in(carts, browser, errors, device="cart-put-back-pda")
    body = page.locator("body")
    await wedge_scan(page, "START")
    await wedge_scan(page, "TOTE-P1")
    await wedge_scan(page, "TOTE-P2")
    first, *rest = walk(await box_tour(page))
    assert (first["task"], first["location"]) == ("T-2", "A-01-05")
    await wedge_scan(page, first["location"])
    await wedge_scan(page, item_code(first))
    await wedge_scan(page, first["tote"])
    await expect(body).to_have_attribute("data-result", "stop_done")

    cancel_and_push(carts, "T-2")
    await expect(page.locator("#cart-slots li[data-slot='2']")).to_have_attribute(
        "data-state", "cancelled"
    )
    await expect(page.locator("#message")).to_contain_text("T-2 was cancelled")
    # the tour goes on: no put-back before it is done
    await expect(page.locator("#put-back")).to_be_hidden()
    await expect(page.locator("#stop-location")).to_have_text(rest[0]["location"])
    for stop in rest:
        await wedge_scan(page, stop["location"])
        await wedge_scan(page, item_code(stop))
        await wedge_scan(page, stop["tote"])
    await expect(body).to_have_attribute("data-result", "tour_done")

    # the tour's end fetches the lines: the unit in T-2's tote goes back
    await expect(page.locator("#put-back")).to_be_visible()
    await expect(page.locator("#message")).to_have_text("Tour complete — put back first")
    lines = await shows_the_put_backs(page)
    assert [(n["task"], n["sku"], n["qty"], n["origin"]) for n in lines] == [
        ("T-2", "SKU-A", 1, "A-01-05")
    ]
    await wedge_scan(page, GTIN_A)
    await wedge_scan(page, "A-01-05")
    await expect(page.locator("#message")).to_have_text("Everything is put back")
    await expect(page.locator("#put-back")).to_be_hidden()
    assert returns(carts) == [("SKU-A", "A-01-05", 1, "T-2")]
    assert [e["task"] for e in events(carts.store, "task_picked")] == ["T-1"]
    assert errors == []
    await context.close()
