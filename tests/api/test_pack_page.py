"""The pack station page in a real headless Chromium (Debian's), against a real
aiohttp server with a PackingService over a real store.

Login with the device key and badge, the station from ``?station=``, an order
packed by wedge scans ending in Enter, a unit of another order refused in red
with that order named, CLOSE through the button until the order ships with its
cartons' SSCCs on screen; the station's fixed scanner scanning (as the
FloorInbox does) updates the page through the WebSocket without a reload; a
printer fault warned about and REPRINT; a scan retried with its scan_id after
the network dropped; the box's pushes of the page's own CLOSE delivered after its
answer (shown once, the SSCC still taken from them). A screenshot at 360 px for
tests/artifacts.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    WebSocketRoute,
    async_playwright,
    expect,
)

from edge.api import auth
from edge.api.app import create_app
from edge.config import Config, ShippingConfig
from edge.picking import PickingService
from edge.shipping import sscc
from edge.shipping.labels import PrintError
from edge.shipping.service import PackingService, Station
from edge.store.db import Store, Transaction, now_ms
from edge.store.syncmark import SyncMark
from tests.support.api_fixtures import GTIN_A, GTIN_C, GTIN_ONE

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PREFIX = "7612345"
RED = "rgb(198, 40, 40)"  # pack.css: the banner of a refusal


class Printers:
    """A printer port that records jobs; fails with ``fault`` while it is set."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, bytes]] = []
        self.fault: str | None = None

    async def send(self, printer: str, job: bytes) -> None:
        if self.fault is not None:
            raise PrintError(self.fault)
        self.jobs.append((printer, job))


@dataclass
class Floor:
    """A running API with pack stations P1 (printer ZT1) and P2 (none)."""

    store: Store
    packing: PackingService
    printers: Printers
    server: TestServer
    #: what each printer last reported (~HS), as the device supervisor keeps it
    printer_states: dict[str, str] = field(default_factory=lambda: {"ZT1": "ready"})

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def events(self, type_: str) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT type, payload FROM outbox ORDER BY seq")
        return [msgpack.unpackb(r["payload"]) for r in rows if r["type"] == type_]

    def ssccs(self, order: str) -> list[str]:
        rows = self.store.query(
            "SELECT sscc FROM cartons WHERE order_ref = ? ORDER BY carton", (order,)
        )
        return [str(r["sscc"]) for r in rows]


def picked(store: Store, task: str, order: str, lines: dict[str, int], tote: str) -> None:
    """A task as picking leaves it: done, its lines picked."""

    def fn(tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO tasks (task, order_ref, tote, state, ship_postcode, ship_region, "
            "received_ms, finished_ms) VALUES (?, ?, ?, 'done', '8001', 'ZH', ?, ?)",
            (task, order, tote, now_ms(), now_ms()),
        )
        for n, (sku, qty) in enumerate(lines.items(), start=1):
            tx.execute(
                "INSERT INTO task_lines (task, line, sku, qty, picked, state) "
                "VALUES (?, ?, ?, ?, ?, 'picked')",
                (task, str(n), sku, qty, qty),
            )

    store.run(fn)


@pytest.fixture
async def floor(zone_store: tuple[Store, Config]) -> AsyncIterator[Floor]:
    store, cfg = zone_store
    SyncMark(store).reconcile()
    store.run(lambda tx: sscc.configure(tx, ShippingConfig(gs1_prefix=PREFIX, sscc_last=50)))
    picked(store, "T-1", "O-1", {"SKU-A": 2}, tote="TOTE-1")
    picked(store, "T-2", "O-1", {"SKU-ONE": 1}, tote="TOTE-1B")
    picked(store, "T-3", "O-2", {"SKU-C": 2}, tote="TOTE-2")
    printers = Printers()
    states = {"ZT1": "ready"}
    packing = PackingService(
        store,
        allocate=sscc.allocate,
        printers=printers,
        stations={"P1": Station("P1", printer="ZT1"), "P2": Station("P2")},
        box_id=cfg.box.id,
        printer_state=states.get,
    )
    app = create_app(store, cfg, picking=PickingService(store, cfg.layout_dict()), packing=packing)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield Floor(store, packing, printers, server, states)
    finally:
        await server.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


class Console:
    """Console errors and uncaught exceptions of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.allowed: tuple[str, ...] = ()
        page.on("console", lambda m: self._add(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def _add(self, text: str) -> None:
        if not any(a in text for a in self.allowed):
            self.errors.append(text)


async def open_station(
    floor: Floor,
    browser: Browser,
    *,
    key: str | None = None,
    before: Callable[[Page], Awaitable[None]] | None = None,
) -> tuple[BrowserContext, Page, Console]:
    """A 360 px tablet/phone at /pack?station=P1, logged in as Pia (P1)."""
    context = await browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    console = Console(page)
    if before is not None:
        await before(page)
    if key is None:
        _, key = auth.enroll_pda(floor.store, "pack-tablet")
    await page.goto(floor.base + "/pack?station=P1")
    body = page.locator("body")
    await expect(body).to_have_attribute("data-screen", "setup")
    await expect(page.locator("#scan")).to_be_focused()
    await page.locator("#scan").fill(key)
    await page.locator("#scan").press("Enter")
    await expect(body).to_have_attribute("data-screen", "login")
    await page.locator("#scan").press_sequentially("BADGE-1")
    await page.locator("#scan").press("Enter")
    await expect(body).to_have_attribute("data-screen", "pack")
    await expect(page.locator("#who")).to_have_text("Pia")
    await expect(page.locator("#station-name")).to_have_text("P1")
    await expect(page.locator("#conn")).to_have_text("online")
    await expect(page.locator("#printer")).to_have_text("Printer ZT1: ready")
    return context, page, console


async def answers(page: Page) -> int:
    return int(await page.evaluate("document.body.dataset.answers || '0'"))


async def scan(page: Page, code: str) -> None:
    """Type like a keyboard-wedge scanner (the code, then Enter); wait for the answer."""
    before = await answers(page)
    await page.locator("#scan").press_sequentially(code)
    await page.locator("#scan").press("Enter")
    await expect(page.locator("body")).to_have_attribute("data-answers", str(before + 1))


async def press(page: Page, button: str) -> None:
    before = await answers(page)
    await page.locator(button).click()
    await expect(page.locator("body")).to_have_attribute("data-answers", str(before + 1))
    await expect(page.locator("#scan")).to_be_focused()


def hri(s: str) -> str:
    return f"(00) {s[0]} {s[1:17]} {s[17]}"


async def line(page: Page, sku: str) -> list[str]:
    cells = page.locator(f"#lines tbody tr[data-sku='{sku}'] td")
    return [c.strip() for c in await cells.all_inner_texts()]


async def test_pack_an_order_at_the_station_page(floor: Floor, browser: Browser) -> None:
    context, page, console = await open_station(floor, browser)
    body = page.locator("body")
    await expect(page.locator("#order-ref")).to_have_text("No order")
    await expect(page.locator("#btn-close")).to_be_disabled()

    await scan(page, "TOTE-1")
    await expect(body).to_have_attribute("data-result", "order_opened")
    await expect(body).to_have_attribute("data-feedback", "success")
    await expect(page.locator("#order-ref")).to_have_text("Order O-1")
    await expect(page.locator("#lines tbody tr")).to_have_count(2)
    assert await line(page, "SKU-A") == ["SKU-A", "2", "0", "2"]

    await scan(page, GTIN_A)
    await expect(page.locator("#banner-title")).to_have_text("Packed")
    assert await line(page, "SKU-A") == ["SKU-A", "2", "1", "1"]
    await expect(page.locator("#cartons li")).to_have_count(1)
    await expect(page.locator("#cartons li.open .sscc")).to_have_text("SSCC when closed")

    # a unit of O-2 at O-1's station: a red refusal that names O-2, nothing packed
    await scan(page, GTIN_C)
    await expect(body).to_have_attribute("data-result", "wrong_order")
    await expect(body).to_have_attribute("data-feedback", "error")
    await expect(page.locator("#banner-title")).to_have_text("Wrong order")
    await expect(page.locator("#banner-message")).to_contain_text("O-2")
    await expect(page.locator("#banner")).to_have_css("background-color", RED)
    await expect(page.locator("#flash")).to_have_class(re.compile("error"))
    assert await line(page, "SKU-A") == ["SKU-A", "2", "1", "1"]

    await press(page, "#btn-close")
    await expect(body).to_have_attribute("data-result", "carton_closed")
    (first,) = floor.ssccs("O-1")
    await expect(page.locator("#cartons li[data-n='1'] .sscc")).to_have_text(hri(first))
    await expect(page.locator("#cartons li[data-n='1'] .state")).to_have_text("closed")

    await scan(page, GTIN_A)
    await scan(page, GTIN_ONE)
    await expect(page.locator("#order-state")).to_have_text("all packed")
    await press(page, "#btn-close")
    await expect(body).to_have_attribute("data-result", "shipped")
    await expect(body).to_have_attribute("data-order-state", "shipped")
    await expect(page.locator("#banner-title")).to_have_text("Shipped")
    await expect(page.locator("#banner-message")).to_contain_text("shipment confirmed")
    await expect(page.locator("#order-ref")).to_have_text("Order O-1")
    await expect(page.locator("#order-state")).to_have_text("shipped")
    ssccs = floor.ssccs("O-1")
    assert len(ssccs) == 2 and ssccs[0] == first
    await expect(page.locator("#cartons .sscc")).to_have_text([hri(s) for s in ssccs])
    await expect(page.locator("#cartons .state")).to_have_text(["shipped", "shipped"])
    await expect(page.locator("#cartons .label-state")).to_have_text(
        [" · label printed", " · label printed"]
    )
    # one job with both labels; one shipment with both cartons
    ((printer, job),) = floor.printers.jobs
    assert printer == "ZT1" and all(s.encode() in job for s in ssccs)
    (shipment,) = floor.events("shipment_confirmed")
    assert [c["sscc"] for c in shipment["cartons"]] == ssccs and shipment["by"] == "P1"
    # the page showed each of its 7 scans once (the box's pushes of them were not counted)
    assert await answers(page) == 7
    await expect(body).to_have_attribute("data-pushes", "0")

    ARTIFACTS.mkdir(exist_ok=True)
    await page.wait_for_function(
        "getComputedStyle(document.getElementById('flash')).opacity === '0'"
    )
    await page.screenshot(path=str(ARTIFACTS / "pack_page_360.png"), full_page=True)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    for button in ("#btn-close", "#btn-reprint", "#btn-release"):
        box = await page.locator(button).bounding_box()
        assert box is not None and box["height"] >= 48 and box["width"] >= 48
    assert console.errors == []
    await context.close()


async def test_the_fixed_scanner_updates_the_page_without_a_reload(
    floor: Floor, browser: Browser
) -> None:
    context, page, console = await open_station(floor, browser)
    body = page.locator("body")
    await page.evaluate("window.__same_page = true")

    # as the FloorInbox passes on the station's fixed scanner: the packer logged in
    await floor.packing.scan("P1", "TOTE-2", packer="P1")
    await expect(body).to_have_attribute("data-pushes", "1")
    await expect(body).to_have_attribute("data-result", "order_opened")
    await expect(page.locator("#order-ref")).to_have_text("Order O-2")
    await floor.packing.scan("P1", GTIN_C, packer="P1")
    await expect(body).to_have_attribute("data-pushes", "2")
    assert await line(page, "SKU-C") == ["SKU-C", "2", "1", "1"]

    # a scan at the page between two of the fixed scanner: shown once, not as a push
    await scan(page, GTIN_C)
    assert await line(page, "SKU-C") == ["SKU-C", "2", "2", "0"]
    await expect(body).to_have_attribute("data-pushes", "2")

    # the fixed scanner closes: order_packed, then shipped once the labels printed
    await floor.packing.scan("P1", "CLOSE", packer="P1")
    await expect(body).to_have_attribute("data-order-state", "shipped")
    await expect(body).to_have_attribute("data-result", "shipped")
    (carton,) = floor.ssccs("O-2")
    await expect(page.locator("#cartons .sscc")).to_have_text([hri(carton)])
    assert await page.evaluate("window.__same_page") is True
    assert console.errors == []
    await context.close()


async def test_printer_fault_reprint_release_and_a_retried_scan(
    floor: Floor, browser: Browser
) -> None:
    context, page, console = await open_station(floor, browser)
    body = page.locator("body")
    await scan(page, "TOTE-2")

    # the network drops: the unit waits in the queue and goes with its scan_id, once
    await context.set_offline(True)
    console.allowed = ("ERR_INTERNET_DISCONNECTED", "WebSocket")
    before = await answers(page)
    await page.locator("#scan").press_sequentially(GTIN_C)
    await page.locator("#scan").press("Enter")
    await expect(page.locator("#conn")).to_have_class("conn retrying")
    await expect(page.locator("#queue-count")).to_have_text("1")
    assert floor.store.query("SELECT COUNT(*) AS n FROM carton_lines")[0]["n"] == 0
    await context.set_offline(False)
    await expect(body).to_have_attribute("data-answers", str(before + 1))
    await expect(page.locator("#queue-count")).to_have_text("0")
    await expect(page.locator("#conn")).to_have_text("online")
    console.allowed = ()
    assert await line(page, "SKU-C") == ["SKU-C", "2", "1", "1"]
    await scan(page, GTIN_C)
    rows = floor.store.query("SELECT sku, qty FROM carton_lines")
    assert [(r["sku"], r["qty"]) for r in rows] == [("SKU-C", 2)]

    # the printer reports paper out: the labels are not printed, nothing shipped
    floor.printer_states["ZT1"] = "paper out"
    floor.printers.fault = "paper out"
    await press(page, "#btn-close")
    await expect(body).to_have_attribute("data-result", "order_packed")
    await expect(page.locator("#banner-message")).to_contain_text("REPRINT")
    await expect(page.locator("#printer")).to_have_text("Printer ZT1: paper out")
    await expect(page.locator("#printer")).to_have_class("printer warn")
    await expect(page.locator("#cartons .label-state")).to_have_text([" · label not printed"])
    assert floor.events("shipment_confirmed") == []

    floor.printer_states["ZT1"] = "ready"
    floor.printers.fault = None
    await press(page, "#btn-reprint")
    await expect(body).to_have_attribute("data-result", "shipped")
    await expect(page.locator("#printer")).to_have_text("Printer ZT1: ready")
    await expect(page.locator("#cartons .sscc")).to_have_text([hri(floor.ssccs("O-2")[0])])
    assert len(floor.events("shipment_confirmed")) == 1

    # RELEASE lets go of an order nothing of which is packed
    await scan(page, "TOTE-1")
    await expect(page.locator("#order-ref")).to_have_text("Order O-1")
    await press(page, "#btn-release")
    await expect(body).to_have_attribute("data-result", "order_opened")
    await expect(page.locator("#order-ref")).to_have_text("No order")
    await expect(page.locator("#btn-release")).to_be_disabled()
    assert console.errors == []
    await context.close()


async def test_pushes_of_its_own_close_that_come_after_the_answer(
    floor: Floor, browser: Browser
) -> None:
    """The box pushes a CLOSE's order_packed and shipped before it answers; when
    the socket delivers them late, the answer (which carries the shipped
    order's cartons) already shows the SSCC, and the late pushes are not shown
    twice nor change it."""
    late: list[str] = []
    holding = {"on": False}
    to_the_page: list[Callable[[str | bytes], None]] = []

    async def delay_pushes(page: Page) -> None:
        def route(ws: WebSocketRoute) -> None:
            server = ws.connect_to_server()
            to_the_page.append(ws.send)

            def to_page(message: str | bytes) -> None:
                is_station = isinstance(message, str) and json.loads(message)["type"] == "station"
                if holding["on"] and is_station:
                    assert isinstance(message, str)
                    late.append(message)
                else:
                    ws.send(message)

            server.on_message(to_page)

        await page.route_web_socket(re.compile(r"/api/v1/ws$"), route)

    context, page, console = await open_station(floor, browser, before=delay_pushes)
    body = page.locator("body")
    await scan(page, "TOTE-2")
    await scan(page, GTIN_C)
    await scan(page, GTIN_C)
    holding["on"] = True
    await press(page, "#btn-close")
    await expect(body).to_have_attribute("data-result", "shipped")
    (carton,) = floor.ssccs("O-2")
    await expect(page.locator("#cartons .sscc")).to_have_text([hri(carton)])
    assert [json.loads(m)["result"] for m in late] == ["order_packed", "shipped"]
    holding["on"] = False
    answers_before = await answers(page)
    for message in late:
        to_the_page[-1](message)
    await expect(page.locator("#cartons .sscc")).to_have_text([hri(carton)])
    await expect(page.locator("#cartons .state")).to_have_text(["shipped"])
    assert await answers(page) == answers_before
    await expect(body).to_have_attribute("data-pushes", "0")
    assert console.errors == []
    await context.close()
