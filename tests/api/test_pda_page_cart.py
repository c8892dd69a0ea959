"""The PDA page on a cart (issue 11), in a real headless Chromium (Debian's).

A zone picking on carts of 3 totes: START takes a cart of 3 orders; the page
asks for a tote for each slot, shows the cart panel (slot, order, tote,
picked of units, state), refuses a tote already on the cart without changing
anything, then walks the whole tour: each stop says its tote, the units in
hand wait for the scan of that tote, and a wrong tote is an error that
changes nothing. What the page shows is checked against what the box answers
(``GET /api/v1/tour``) at every step. A cancelled order's row is struck
through. The screenshot is tests/artifacts/pda_cart_360.png.
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
from tests.support.api_fixtures import Zone, add_task, events, item_code, walk
from tests.support.pda_page import box_tour, logged_in, wedge_scan

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
ROW = """
li => [...li.querySelectorAll(':scope > span')].slice(0, 4).map(s => s.textContent)
  .concat([li.dataset.state, li.classList.contains('current')])
"""


@pytest.fixture
async def carts(zone_store: tuple[Store, Config]) -> AsyncIterator[Zone]:
    """The seeded zone picking on carts of 3 totes, puts confirmed by a tote scan."""
    store, cfg = zone_store
    picking = PickingService(store, cfg.layout_dict(), carts=CartSettings(totes=3, units=20))
    server = TestServer(create_app(store, cfg, picking=picking), host="127.0.0.1", port=0)
    await server.start_server()
    http = aiohttp.ClientSession()
    try:
        yield Zone(store, cfg, picking, server, http)
    finally:
        await http.close()
        await server.close()


def three_orders(store: Store) -> None:
    add_task(store, "T-1", [("SKU-A", 2)], order="O-1", priority=5)
    add_task(store, "T-2", [("SKU-C", 1), ("SKU-A", 1)], order="O-2", priority=4)
    add_task(store, "T-3", [("SKU-D", 1)], order="O-3", priority=3)


async def rows(page: Page) -> list[list[Any]]:
    """The cart panel as shown: slot, order, tote, picked/units, state, highlighted."""
    shown: list[list[Any]] = await page.locator("#cart-slots li").evaluate_all(
        f"lis => lis.map({ROW})"
    )
    return shown


def expected_rows(tour: dict[str, Any]) -> list[list[Any]]:
    """The cart panel the box's tour calls for."""
    cart = tour["cart"]
    current = cart["next_slot"]
    if current is None and tour["next_stop"] is not None:
        current = next(s["slot"] for s in tour["stops"] if s["stop"] == tour["next_stop"])
    return [
        [
            str(t["slot"]),
            t["order"],
            t["tote"]
            or ("—" if t["state"] == "cancelled" else f"scan {t['assigned'] or 'a tote'}"),
            f"{t['picked']}/{t['units']}",
            t["state"],
            t["slot"] == current,
        ]
        for t in cart["totes"]
    ]


async def shows_the_cart(page: Page) -> dict[str, Any]:
    """The page's cart panel is the box's cart; the box's tour."""
    tour = await box_tour(page)
    assert await rows(page) == expected_rows(tour)
    return tour


async def test_a_cart_of_three_orders_through_the_page(carts: Zone, browser: Browser) -> None:
    three_orders(carts.store)
    errors: list[str] = []
    context, page = await logged_in(carts, browser, errors, device="cart-pda")
    body = page.locator("body")
    await expect(page.locator("#cart")).to_be_hidden()

    # START takes the cart; the walk waits for a tote in each slot
    await wedge_scan(page, "START")
    await expect(body).to_have_attribute("data-result", "tour_started")
    await expect(page.locator("#message")).to_contain_text("cart of 3 orders")
    await expect(page.locator("#cart")).to_be_visible()
    await expect(page.locator("#cart-slots li")).to_have_count(3)
    tour = await shows_the_cart(page)
    assert [r[1:3] for r in await rows(page)] == [
        ["O-1", "scan a tote"],
        ["O-2", "scan a tote"],
        ["O-3", "scan a tote"],
    ]
    await expect(body).to_have_attribute("data-cart", "binding")
    await expect(page.locator("#stop-location")).to_have_text("Slot 1")
    await expect(page.locator("#stop-tote")).to_have_text("Scan a tote for slot 1 (order O-1)")
    await expect(page.locator("#stop-hint")).to_have_text("0 of 3 totes on the cart")
    await expect(page.locator("#stop-item")).to_be_hidden()
    await expect(page.locator("#btn-short")).to_be_disabled()
    await expect(page.locator("#btn-skip")).to_be_disabled()

    # a location before the totes: a warning that names the slot
    await wedge_scan(page, walk(tour)[0]["location"])
    await expect(body).to_have_attribute("data-result", "tote_expected")
    await expect(body).to_have_attribute("data-feedback", "warning")
    await expect(page.locator("#message")).to_contain_text("slot 1")

    await wedge_scan(page, "TOTE-C1")
    await expect(body).to_have_attribute("data-result", "tote_bound")
    await expect(body).to_have_attribute("data-feedback", "success")
    await expect(page.locator("#message")).to_contain_text("slot 2")
    await expect(page.locator("#stop-tote")).to_have_text("Scan a tote for slot 2 (order O-2)")
    before = await shows_the_cart(page)
    assert (await rows(page))[0][2:5] == ["TOTE-C1", "0/2", "open"]

    # a tote already on the cart: an error, and nothing changed
    await wedge_scan(page, "TOTE-C1")
    await expect(body).to_have_attribute("data-result", "wrong_tote")
    await expect(body).to_have_attribute("data-feedback", "error")
    await expect(page.locator("#flash")).to_have_class("error")
    await expect(page.locator("#message")).to_contain_text("already")
    await expect(page.locator("#stop-tote")).to_have_text("Scan a tote for slot 2 (order O-2)")
    assert await shows_the_cart(page) == before

    await wedge_scan(page, "TOTE-C2")
    await wedge_scan(page, "TOTE-C3")
    await expect(body).to_have_attribute("data-cart", "walking")
    tour = await shows_the_cart(page)
    assert [r[2] for r in await rows(page)] == ["TOTE-C1", "TOTE-C2", "TOTE-C3"]
    await expect(page.locator("#stop-item")).to_be_visible()

    # the walk: each stop names its tote; its units in hand wait for that tote
    stops = walk(tour)
    assert len(stops) == 4
    wrong_tote_tried = False
    for n, stop in enumerate(stops):
        where = f"tote {stop['tote']} (slot {stop['slot']})"
        await expect(page.locator("#stop-location")).to_have_text(stop["location"])
        await expect(page.locator("#stop-tote")).to_have_text("→ " + where)
        await wedge_scan(page, stop["location"])
        for _ in range(stop["qty"]):
            await wedge_scan(page, item_code(stop))
        await expect(body).to_have_attribute("data-result", "item_ok")
        await expect(body).to_have_attribute("data-stop-state", "to_put")
        await expect(page.locator("#message")).to_contain_text(stop["tote"])
        await expect(page.locator("#stop-tote")).to_have_text(
            f"Put {stop['qty']} × {stop['sku']} into {where} — scan the tote"
        )
        await expect(page.locator("#btn-short")).to_be_disabled()
        in_hand = await shows_the_cart(page)
        if n == 1:
            # the handheld's view mid-tour: one stop done, units in hand
            ARTIFACTS.mkdir(exist_ok=True)
            await page.wait_for_function(
                "getComputedStyle(document.getElementById('flash')).opacity === '0'"
            )
            await page.screenshot(path=str(ARTIFACTS / "pda_cart_360.png"), full_page=True)
            assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        if not wrong_tote_tried:
            # another tote of the cart: an error, the units stay in hand
            other = next(t["tote"] for t in tour["cart"]["totes"] if t["tote"] != stop["tote"])
            await wedge_scan(page, other)
            await expect(body).to_have_attribute("data-result", "wrong_tote")
            await expect(body).to_have_attribute("data-feedback", "error")
            await expect(page.locator("#message")).to_contain_text(stop["tote"])
            await expect(body).to_have_attribute("data-stop-state", "to_put")
            assert await shows_the_cart(page) == in_hand
            wrong_tote_tried = True
        await wedge_scan(page, stop["tote"])
        await expect(page.locator("#done-count")).to_have_text(str(n + 1))
        if n + 1 < len(stops):
            await expect(body).to_have_attribute("data-result", "stop_done")
            await shows_the_cart(page)

    await expect(body).to_have_attribute("data-result", "tour_done")
    await expect(page.locator("#message")).to_contain_text("Tour complete")
    assert await rows(page) == [
        ["1", "O-1", "TOTE-C1", "2/2", "done", False],
        ["2", "O-2", "TOTE-C2", "2/2", "done", False],
        ["3", "O-3", "TOTE-C3", "1/1", "done", False],
    ]
    assert await page.locator("#cart-slots .slot-state").all_text_contents() == ["✓"] * 3
    await expect(page.locator("#stop-tote")).to_be_hidden()
    picked = {e["task"]: e["totes"] for e in events(carts.store, "task_picked")}
    assert picked == {"T-1": ["TOTE-C1"], "T-2": ["TOTE-C2"], "T-3": ["TOTE-C3"]}
    assert errors == []
    await context.close()


async def test_a_cancelled_order_is_struck_through(carts: Zone, browser: Browser) -> None:
    three_orders(carts.store)
    errors: list[str] = []
    context, page = await logged_in(carts, browser, errors, device="cart-pda")
    await wedge_scan(page, "START")
    await wedge_scan(page, "TOTE-C1")

    # the cloud cancels O-2: the box pushes the tour and the cancel to the page
    sink = StoreChangeSink(carts.store, partial(apply_changes, planner=carts.picking.planner))
    page_of_changes = [{"type": "task_cancel", "data": {"task": "T-2"}}]
    notices = carts.store.run(lambda tx: sink.apply(tx, page_of_changes))
    carts.server.app[HUB].deliver(notices)

    cancelled = page.locator("#cart-slots li[data-slot='2']")
    await expect(cancelled).to_have_attribute("data-state", "cancelled")
    await expect(cancelled).to_have_css("text-decoration-line", "line-through")
    await expect(page.locator("#stop-tote")).to_have_text("Scan a tote for slot 3 (order O-3)")
    await shows_the_cart(page)
    assert errors == []
    await context.close()
