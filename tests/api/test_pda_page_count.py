"""The PDA page's count screen (issue 12), in a real headless Chromium (Debian's).

A count task of two locations (SKU-D at A-03-12, on-hand 4; SKU-C at A-08-04,
on-hand 10), started by START on the page. The stop card reads as a count —
*Count SKU (description) at LOCATION*, *Scan the location*, then the
picker's own count in large type and *Scan every unit — scan the location
again when done* with a field to type the quantity; no short pick or skip.
The first location is counted by scanning its units and its label again and
matches; the second is counted 7, the box asks for a recount (the yellow
*Count again from zero* band, kept across a reload), and the count is
finished by typing 7 into the field: ``count_done`` (warning) and the stock
corrected. At every step no text on the page (hidden elements and input
values included) holds the quantity the box expects before the picker
counted it, nor ``null``; the tour's list shows *counted N* per finished
location. The outbox then holds both ``count_result`` events and one
``stock_delta`` reason ``count``. The screenshot is
tests/artifacts/pda_count_360.png.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.picking.test_picking_counts import add_count
from tests.support.api_fixtures import EPC_D, GTIN_C, Zone, events, stock
from tests.support.pda_page import box_tour, logged_in, wedge_scan

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# every text node under <body> (hidden ones too, scripts aside) and every input's value
PAGE_TEXT = """
() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest('script')) { continue; }
    const text = n.textContent.trim();
    if (text) { out.push(text); }
  }
  document.querySelectorAll('input').forEach(i => { if (i.value) { out.push(i.value); } });
  return out;
}
"""


async def assert_blind(page: Page, *expected: int) -> None:
    """No number on the page is one of the box's ``expected`` quantities, and
    nothing reads ``null``, ``undefined`` or ``NaN``."""
    texts: list[str] = await page.evaluate(PAGE_TEXT)
    text = " | ".join(texts)
    numbers = re.findall(r"\d+(?:\.\d+)?", text)
    for qty in expected:
        assert str(qty) not in numbers, (qty, text)
    for word in ("null", "undefined", "NaN"):
        assert word not in text, (word, text)


async def count_rows(page: Page) -> list[list[Any]]:
    """The tour's list as shown: location, SKU, state text, highlighted."""
    rows: list[list[Any]] = await page.locator("#count-stops li").evaluate_all(
        "lis => lis.map(li => [...[...li.children].map(c => c.textContent),"
        " li.classList.contains('current')])"
    )
    return rows


async def test_a_blind_count_through_the_page(zone: Zone, browser: Browser) -> None:
    add_count(zone.store, "C-1", [("SKU-D", "A-03-12"), ("SKU-C", "A-08-04")])
    errors: list[str] = []
    context, page = await logged_in(zone, browser, errors, device="count-pda")
    body = page.locator("body")
    card = {
        name: page.locator(f"#stop-{name}")
        for name in ("location", "item", "hint", "counted", "recount")
    }
    form, qty, enter = (
        page.locator("#count-form"),
        page.locator("#count-qty"),
        page.locator("#btn-count"),
    )
    await expect(page.locator("#count-list")).to_be_hidden()
    await expect(body).to_have_attribute("data-kind", "none")

    # START takes the count task: the card asks for the first location, blind
    await wedge_scan(page, "START")
    await expect(body).to_have_attribute("data-result", "tour_started")
    await expect(page.locator("#message")).to_have_text("count tour: 2 locations")
    tour = await box_tour(page)
    assert tour["kind"] == "count"
    assert [(s["location"], s["sku"], s["qty"], s["state"]) for s in tour["stops"]] == [
        ("A-03-12", "SKU-D", None, "pending"),
        ("A-08-04", "SKU-C", None, "pending"),
    ]
    await expect(body).to_have_attribute("data-kind", "count")
    await expect(body).to_have_attribute("data-count", "pending")
    await expect(card["location"]).to_have_text("A-03-12")
    await expect(card["item"]).to_have_text("Count SKU-D (Drill, serialised) at A-03-12")
    await expect(card["hint"]).to_have_text("Scan the location")
    await expect(card["counted"]).to_be_hidden()
    await expect(card["recount"]).to_be_hidden()
    await expect(page.locator("#stop-count")).to_be_hidden()
    await expect(form).to_be_hidden()
    # no short pick or skip on a count
    await expect(page.locator("#actions")).to_be_hidden()
    await expect(page.locator("#btn-short")).to_be_disabled()
    await expect(page.locator("#btn-skip")).to_be_disabled()
    # the map and the list as for picks
    await expect(page.locator("#stop-total")).to_have_text("2")
    await expect(page.locator("#done-count")).to_have_text("0")
    await expect(page.locator("#map circle.stop")).to_have_count(2)
    await expect(page.locator("#map circle.stop.current")).to_have_count(1)
    points = await page.locator("#route-line").get_attribute("points")
    assert points is not None and len(points.split()) == len(tour["route"]["waypoints"])
    assert await count_rows(page) == [
        ["A-03-12", "SKU-D", "to count", True],
        ["A-08-04", "SKU-C", "to count", False],
    ]
    await assert_blind(page, 4, 10)

    # the first location: its label, every unit, its label again — it matches
    await wedge_scan(page, "A-03-12")
    await expect(body).to_have_attribute("data-result", "location_ok")
    await expect(body).to_have_attribute("data-count", "counting")
    await expect(card["hint"]).to_have_text("Scan every unit — scan the location again when done")
    await expect(card["counted"]).to_have_text("0 counted")
    await expect(form).to_be_visible()
    await expect(enter).to_have_text("Enter quantity")
    assert (await count_rows(page))[0] == ["A-03-12", "SKU-D", "counting", True]
    await wedge_scan(page, EPC_D)
    await expect(card["counted"]).to_have_text("1 counted")
    await expect(page.locator("#message")).to_have_text("1 counted")
    for n in (2, 3):
        await wedge_scan(page, "SKU-D")
        await expect(card["counted"]).to_have_text(f"{n} counted")
    await assert_blind(page, 4, 10)
    await wedge_scan(page, "SKU-D")
    await expect(card["counted"]).to_have_text("4 counted")
    await wedge_scan(page, "A-03-12")
    await expect(body).to_have_attribute("data-result", "count_done")
    await expect(body).to_have_attribute("data-feedback", "success")
    await expect(page.locator("#message")).to_have_text("4 counted: recorded")
    await expect(page.locator("#done-count")).to_have_text("1")
    await expect(page.locator("#map circle.stop.done")).to_have_count(1)
    await expect(card["location"]).to_have_text("A-08-04")
    await expect(card["item"]).to_have_text("Count SKU-C (Coffee beans 1 kg) at A-08-04")
    await expect(card["hint"]).to_have_text("Scan the location")
    await expect(form).to_be_hidden()
    assert await count_rows(page) == [
        ["A-03-12", "SKU-D", "counted 4", False],
        ["A-08-04", "SKU-C", "to count", True],
    ]
    await assert_blind(page, 10)

    # the second: 7 of the 10 the box holds — counted again from zero
    await wedge_scan(page, "A-08-04")
    for _ in range(7):
        await wedge_scan(page, GTIN_C)
    await expect(card["counted"]).to_have_text("7 counted")
    await wedge_scan(page, "A-08-04")
    await expect(body).to_have_attribute("data-result", "recount")
    await expect(body).to_have_attribute("data-feedback", "warning")
    await expect(page.locator("#flash")).to_have_class("warning")
    await expect(page.locator("#message")).to_contain_text("please count A-08-04 once more")
    await expect(body).to_have_attribute("data-count", "recount")
    await expect(card["recount"]).to_be_visible()
    await expect(card["recount"]).to_have_text("Count again from zero")
    await expect(card["counted"]).to_have_text("0 counted")
    await expect(card["hint"]).to_have_text("Scan every unit — scan the location again when done")
    await expect(form).to_be_visible()
    assert await count_rows(page) == [
        ["A-03-12", "SKU-D", "counted 4", False],
        ["A-08-04", "SKU-C", "counting", True],
    ]
    assert [e["location"] for e in events(zone.store, "count_result")] == ["A-03-12"]
    await assert_blind(page, 10)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.wait_for_function(
        "getComputedStyle(document.getElementById('flash')).opacity === '0'"
    )
    await page.screenshot(path=str(ARTIFACTS / "pda_count_360.png"), full_page=True)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    for control in (qty, enter):
        box = await control.bounding_box()
        assert box is not None and box["height"] >= 48 and box["width"] >= 48

    # a reload still knows that this is the recount
    await page.reload()
    await expect(body).to_have_attribute("data-count", "recount")
    await expect(card["recount"]).to_have_text("Count again from zero")
    await wedge_scan(page, GTIN_C)
    await wedge_scan(page, GTIN_C)
    await expect(card["counted"]).to_have_text("2 counted")
    await expect(card["recount"]).to_be_visible()

    # nothing typed: the page says so and asks the box nothing
    answers = await page.evaluate("document.body.dataset.answers")
    await enter.click()
    await expect(page.locator("#message")).to_have_text("Type the number of units counted")
    await expect(body).to_have_attribute("data-feedback", "error")
    assert await page.evaluate("document.body.dataset.answers") == answers

    # the quantity typed into the field finishes the count (the field keeps
    # the focus while it is typed into; the scan input has it back after)
    await qty.click()
    await qty.press_sequentially("7")
    await expect(qty).to_be_focused()
    await expect(qty).to_have_value("7")
    await enter.click()
    await expect(body).to_have_attribute("data-answers", str(int(answers or "0") + 1))
    await expect(body).to_have_attribute("data-result", "count_done")
    await expect(body).to_have_attribute("data-feedback", "warning")
    await expect(page.locator("#message")).to_have_text(
        "7 counted: recorded, stock corrected — count tour complete"
    )
    await expect(page.locator("#scan")).to_be_focused()
    await expect(body).to_have_attribute("data-tour", "done")
    await expect(body).to_have_attribute("data-count", "none")
    await expect(card["location"]).to_have_text("—")
    await expect(card["hint"]).to_have_text("Scan an order, task, tote or START")
    await expect(card["recount"]).to_be_hidden()
    await expect(form).to_be_hidden()
    await expect(page.locator("#done-count")).to_have_text("2")
    await expect(page.locator("#map circle.stop.done")).to_have_count(2)
    assert await count_rows(page) == [
        ["A-03-12", "SKU-D", "counted 4", False],
        ["A-08-04", "SKU-C", "counted 7", False],
    ]
    assert await page.evaluate("localStorage.getItem('pe.recount')") is None
    await assert_blind(page, 10)

    # the outbox: both results (expected: the on-hand when counting began),
    # and the difference as one stock_delta reason count
    assert [
        (e["task"], e["location"], e["sku"], e["counted"], e["expected"], e["picker"])
        for e in events(zone.store, "count_result")
    ] == [
        ("C-1", "A-03-12", "SKU-D", 4, 4, "P1"),
        ("C-1", "A-08-04", "SKU-C", 7, 10, "P1"),
    ]
    assert [
        (e["sku"], e["location"], e["qty"], e["ref"])
        for e in events(zone.store, "stock_delta")
        if e["reason"] == "count"
    ] == [("SKU-C", "A-08-04", -3, "C-1")]
    assert stock(zone.store, "SKU-C", "A-08-04") == (7, 0)
    assert stock(zone.store, "SKU-D", "A-03-12") == (4, 0)
    assert zone.store.query("SELECT state FROM tasks WHERE task = 'C-1'") == [{"state": "done"}]
    assert errors == []
    await context.close()
