"""The PDA page in a real headless Chromium (Debian's), through a full tour.

Setup with the device key, badge login, an order scan, every stop by wedge
scans ending in Enter, a wrong scan (error flash, buzz, beep), a scan typed
while the Wi-Fi is down that is retried with its scan_id and counted once, and
a screenshot at 360 px for tests/artifacts.
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from edge.api import auth
from tests.support.api_fixtures import Zone, add_task, events, item_code
from tests.support.pda_page import HARDWARE_PROBE, box_tour, wedge_scan

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


async def test_full_tour_in_chromium(zone: Zone, browser: Browser) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 2), ("SKU-B", 1), ("SKU-D", 1)], order="O-77")
    _, key = auth.enroll_pda(zone.store, "handheld-7")
    context = await browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
    )
    await context.add_init_script(HARDWARE_PROBE)
    page = await context.new_page()
    await page.goto(zone.base + "/")
    body = page.locator("body")
    await expect(body).to_have_attribute("data-screen", "setup")
    await expect(page.locator("#scan")).to_be_focused()

    await page.locator("#scan").fill(key)
    await page.locator("#scan").press("Enter")
    await expect(body).to_have_attribute("data-screen", "login")
    await page.locator("#scan").press_sequentially("BADGE-1")
    await page.locator("#scan").press("Enter")
    await expect(body).to_have_attribute("data-screen", "pick")
    await expect(page.locator("#who")).to_have_text("Pia")
    await expect(page.locator("#conn")).to_have_text("online")

    await wedge_scan(page, "O-77")
    await expect(body).to_have_attribute("data-result", "tour_started")
    tour = await box_tour(page)
    stops = tour["stops"]
    assert len(stops) == 3
    await expect(page.locator("#stop-location")).to_have_text(stops[0]["location"])
    await expect(page.locator("#stop-total")).to_have_text("3")
    # not a cart: no cart panel, no tote on the stop card
    await expect(page.locator("#cart")).to_be_hidden()
    await expect(page.locator("#stop-tote")).to_be_hidden()
    await expect(body).to_have_attribute("data-cart", "none")
    route = page.locator("#route-line")
    points = await route.get_attribute("points")
    assert points is not None and len(points.split()) == len(tour["route"]["waypoints"])
    await expect(page.locator("#map circle.stop")).to_have_count(3)
    await expect(page.locator("#map circle.stop.current")).to_have_count(1)

    # a wrong location: error feedback in every channel, nothing counted
    await wedge_scan(page, "A-09-18")
    await expect(body).to_have_attribute("data-result", "wrong_location")
    await expect(body).to_have_attribute("data-feedback", "error")
    await expect(page.locator("#flash")).to_have_class("error")
    assert await page.evaluate("window.__vibrations.length") >= 1
    assert await page.evaluate("window.__tones") >= 1

    # first stop complete
    first = stops[0]
    await wedge_scan(page, first["location"])
    await expect(page.locator("#stop-hint")).to_have_text("Scan the item")
    for _ in range(first["qty"]):
        await wedge_scan(page, item_code(first))
    await expect(body).to_have_attribute("data-result", "stop_done")
    await expect(body).to_have_attribute("data-feedback", "success")
    await expect(page.locator("#done-count")).to_have_text("1")
    await expect(page.locator("#stop-location")).to_have_text(stops[1]["location"])
    await expect(page.locator("#map circle.stop.done")).to_have_count(1)

    # the screenshot of the test artefacts: mid-tour, route on the map
    ARTIFACTS.mkdir(exist_ok=True)
    await page.wait_for_function(
        "getComputedStyle(document.getElementById('flash')).opacity === '0'"
    )
    await page.screenshot(path=str(ARTIFACTS / "pda_page_360.png"), full_page=True)

    # layout: nothing wider than the handheld; touch targets of at least 48 px
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    for button in ("#btn-short", "#btn-skip"):
        box = await page.locator(button).bounding_box()
        assert box is not None and box["height"] >= 48 and box["width"] >= 48

    second = stops[1]
    await wedge_scan(page, second["location"])
    # the Wi-Fi drops: the scan waits in the queue, then goes with its scan_id
    picked_before = sum(e["qty"] for e in events(zone.store, "pick_confirmed"))
    await context.set_offline(True)
    answers = await page.evaluate("document.body.dataset.answers")
    await page.locator("#scan").press_sequentially(item_code(second))
    await page.locator("#scan").press("Enter")
    await expect(page.locator("#conn")).to_have_class("conn retrying")
    await expect(page.locator("#queue-count")).to_have_text("1")
    assert sum(e["qty"] for e in events(zone.store, "pick_confirmed")) == picked_before
    await context.set_offline(False)
    await expect(body).to_have_attribute("data-answers", str(int(answers) + 1))
    await expect(page.locator("#queue-count")).to_have_text("0")
    assert sum(e["qty"] for e in events(zone.store, "pick_confirmed")) == picked_before + 1

    third = stops[2]
    await wedge_scan(page, third["location"])
    for _ in range(third["qty"]):
        await wedge_scan(page, item_code(third))
    await expect(body).to_have_attribute("data-result", "tour_done")
    await expect(page.locator("#message")).to_contain_text("Tour complete")
    assert sum(e["qty"] for e in events(zone.store, "pick_confirmed")) == 4
    await context.close()


async def test_short_pick_button_reroutes(zone: Zone, browser: Browser) -> None:
    zone.store.run(
        lambda tx: tx.execute("UPDATE stock SET reserved = 9 WHERE location = 'A-08-04'")
    )
    add_task(zone.store, "T-2", [("SKU-C", 2)], order="O-88")
    _, key = auth.enroll_pda(zone.store, "handheld-8")
    context = await browser.new_context(viewport={"width": 360, "height": 740})
    page = await context.new_page()
    await page.goto(zone.base + "/")
    await page.evaluate(f"localStorage.setItem('pe.deviceKey', {key!r})")
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-screen", "login")
    await page.locator("#scan").press_sequentially("BADGE-2")
    await page.locator("#scan").press("Enter")
    await expect(page.locator("body")).to_have_attribute("data-screen", "pick")
    await wedge_scan(page, "O-88")
    await expect(page.locator("#stop-location")).to_have_text("A-06-15")
    await page.locator("#btn-short").click()
    await expect(page.locator("#short-dialog")).to_be_visible()
    await page.locator("#short-found").fill("0")
    before = await page.evaluate("document.body.dataset.answers")
    await page.locator("#short-dialog [data-reason=empty]").click()
    await expect(page.locator("body")).to_have_attribute("data-answers", str(int(before) + 1))
    # A-06-15 was empty; one unit is left at A-08-04 and the picker is sent there
    await expect(page.locator("body")).to_have_attribute("data-result", "rerouted")
    await expect(page.locator("#stop-location")).to_have_text("A-08-04")
    await expect(page.locator("#map circle.stop.short")).to_have_count(1)
    await expect(page.locator("#scan")).to_be_focused()
    await context.close()
