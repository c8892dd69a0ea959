"""The dashboard page (issue 13), in a real headless Chromium (Debian's), over
a real aiohttp server on loopback and the figures of a real run.

A picker picks order O-1 (2 × SKU-A, 1 × SKU-C) through the PDA API to its
end; another starts O-2 and takes its first unit, and walks on. The devices
table holds a scanner online and a portal offline (as the device supervisor
writes it); the maintenance has raised a ``backlog_high`` and a ``disk_low``
alert. A tablet (768 × 1024) enrolled as a PDA opens ``/dashboard``, enters
its device key and a supervisor's badge; the page then shows: the picks
chart with the latest hour's bar at the 4 units picked (and no other bar),
the p99 chart with a point for that hour, both devices with their state and
since when, the sync state (never synced, the backlog), the exception rate
and walking saved, both alerts (crit first), and O-2's tour on the zone map
(its picker and remaining stops) and in the list. The supervisor
acknowledges the backlog alert through the page: its row says who, the
alert stays open, the box has S1 as ``acked_by``. No console errors. The
screenshot is tests/artifacts/dashboard.png.
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, ConsoleMessage, Page, expect

from edge.api import auth
from edge.store.db import Transaction, now_ms
from edge.store.outbox import raise_alert
from tests.support.api_fixtures import Zone, add_task, item_code, pick_all, walk

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


async def real_run(zone: Zone) -> dict[str, object]:
    """O-1 picked to its end, O-2 under way; returns O-2's tour as started."""
    add_task(zone.store, "T-1", [("SKU-A", 2), ("SKU-C", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 1), ("SKU-B", 1)], order="O-2")
    p1 = await zone.picker("BADGE-1")
    started = await p1.scan("O-1")
    assert (await pick_all(p1, started["tour"]))["result"] == "tour_done"
    p2 = await zone.picker("BADGE-2")
    other = await p2.scan("O-2")
    first = walk(other["tour"])[0]
    assert (await p2.scan(first["location"]))["result"] == "location_ok"
    assert (await p2.scan(item_code(first)))["result"] in ("stop_done", "item_ok")
    tour: dict[str, object] = other["tour"]
    return tour


def floor_state(zone: Zone) -> None:
    now = now_ms()

    def fn(tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO devices (id, driver, role, state, last_seen_ms, state_since_ms) "
            "VALUES ('scan-1', 'newland-serial', 'pack_station', 'connected', ?, ?), "
            "('portal-1', 'impinj-mqtt', 'dock_door', 'disconnected', NULL, ?)",
            (now, now - 3_600_000, now - 300_000),
        )
        raise_alert(tx, "backlog_high", "warn", "1200 events wait for the cloud", {"n": 1200})
        raise_alert(tx, "disk_low", "crit", "4 % of the disk free", {"free": 0.04})

    zone.store.run(fn)


async def open_dashboard(zone: Zone, browser: Browser, errors: list[str]) -> Page:
    _, key = auth.enroll_pda(zone.store, "tablet-1")
    context = await browser.new_context(viewport={"width": 768, "height": 1024}, has_touch=True)
    page = await context.new_page()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{message.text} ({message.location.get('url', '')})")

    page.on("console", console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(zone.base + "/dashboard")
    await expect(page.locator("body")).to_have_attribute("data-screen", "setup")
    await page.locator("#login-input").fill(key)
    await page.locator("#login-input").press("Enter")
    await expect(page.locator("body")).to_have_attribute("data-screen", "login")
    await page.locator("#login-input").fill("BADGE-S")
    await page.locator("#login-input").press("Enter")
    await expect(page.locator("body")).to_have_attribute("data-screen", "dashboard")
    await page.wait_for_function("Number(document.body.dataset.loads) >= 1")
    return page


async def test_the_dashboard_shows_a_real_run(zone: Zone, browser: Browser) -> None:
    other = await real_run(zone)
    floor_state(zone)
    errors: list[str] = []
    page = await open_dashboard(zone, browser, errors)
    await expect(page.locator("#conn")).to_have_text("online")

    # the charts: the latest hour carries the 4 units picked, no other hour any
    bars = page.locator("#chart-picks rect.bar")
    await expect(bars).to_have_count(24)
    values = await bars.evaluate_all("rs => rs.map(r => Number(r.dataset.value))")
    assert values[-1] == 4 and sum(values) == 4, values
    heights = await bars.evaluate_all("rs => rs.map(r => Number(r.getAttribute('height')))")
    assert heights[-1] > 0
    points = page.locator("#chart-p99 circle.point")
    await expect(points).to_have_count(1)
    assert float(await points.first.get_attribute("data-value") or "0") > 0

    # devices with their state and since when
    rows = page.locator("#devices li")
    await expect(rows).to_have_count(2)
    await expect(page.locator('#devices li[data-device="portal-1"]')).to_have_attribute(
        "data-state", "offline"
    )
    await expect(page.locator('#devices li[data-device="portal-1"] .device-since')).to_contain_text(
        "offline since"
    )
    await expect(page.locator('#devices li[data-device="scan-1"] .device-since')).to_contain_text(
        "(1 h 0 min)"
    )
    await expect(page.locator("#sync-state")).to_have_attribute("data-state", "never_synced")
    await expect(page.locator("#sync-backlog")).to_contain_text("events")
    await expect(page.locator("#exception-rate")).to_contain_text("0.0 % of 1")
    await expect(page.locator("#walking-saved")).to_contain_text(" m")

    # the tour in progress, on the map and in the list
    remaining = len(walk(other)) - 1  # type: ignore[arg-type]
    await expect(page.locator("#tours li")).to_have_count(1)
    await expect(page.locator("#tours li")).to_contain_text("Per (P2)")
    await expect(page.locator("#map circle.picker")).to_have_count(1)
    await expect(page.locator("#map circle.stop")).to_have_count(remaining)
    await expect(page.locator("#map .aisle")).to_have_count(zone.cfg.layout.aisles)

    # the alerts, the most severe first; acknowledge the backlog's
    alerts = page.locator("#alerts li")
    await expect(alerts).to_have_count(2)
    await expect(alerts.nth(0)).to_have_attribute("data-severity", "crit")
    backlog = page.locator('#alerts li[data-severity="warn"]')
    before = int(await page.evaluate("document.body.dataset.loads"))
    await backlog.locator("button.ack").click()
    await expect(page.locator("#alert-result")).to_have_text(
        "Alert " + (await backlog.get_attribute("data-alert") or "") + " acknowledged by S1"
    )
    await page.wait_for_function(f"Number(document.body.dataset.loads) > {before}")
    await expect(backlog).to_have_attribute("data-acked", "true")
    await expect(backlog).to_contain_text("acknowledged by S1")
    await expect(backlog.locator("button.ack")).to_have_count(0)
    await expect(alerts).to_have_count(2)  # still open
    stored = zone.store.query(
        "SELECT kind, acked_by, cleared_ms FROM alerts WHERE acked_by IS NOT NULL"
    )
    assert stored == [{"kind": "backlog_high", "acked_by": "S1", "cleared_ms": None}]

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert errors == []


async def test_a_picker_is_told_the_dashboard_is_for_supervisors(
    zone: Zone, browser: Browser
) -> None:
    _, key = auth.enroll_pda(zone.store, "tablet-2")
    context = await browser.new_context(viewport={"width": 768, "height": 1024})
    page = await context.new_page()
    await page.goto(zone.base + "/dashboard")
    await page.evaluate(f"localStorage.setItem('pe.deviceKey', {key!r})")
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-screen", "login")
    await page.locator("#login-input").fill("BADGE-1")
    await page.locator("#login-input").press("Enter")
    await expect(page.locator("body")).to_have_attribute("data-screen", "refused")
    await expect(page.locator("#login-error")).to_contain_text("Only a supervisor")
    await expect(page.locator("#btn-logout")).to_be_visible()
