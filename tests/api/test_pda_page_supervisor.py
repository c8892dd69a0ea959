"""The PDA page's supervisor view (issue 12), in a real headless Chromium (Debian's).

Two handhelds at 360 px. A picker (page A, P1) starts O-1 (2 × SKU-A) and
picks one unit, then leaves it: the tour's start and scans are moved 45
minutes back. Another picker counts two locations through the API (one
differs twice, one matches). The supervisor (page B, S1) opens the view with
the *Supervisor* button: the tour stands out as idle (*abandoned?*), the
counts show both results (matched / differed) and the accuracy. Refusals are
shown with the box's message: a reassignment to an unknown picker (404
``unknown_picker``) and an adjustment below what the tour reserves (409
``below_reserved``), both changing nothing. The release with a reason reaches
page A as ``tour_withdrawn``: its message, no tour. B then sees the put-back
line (now held by S1), adjusts SKU-A at A-01-05 by +2 (``stock_delta`` reason
``adjust`` and a ``supervisor_action`` per action in the outbox), finds the
adjustment on top of the exceptions, and once demoted to picker is answered
403 on the next read. A plain picker's page never shows the button. Neither
page logs a console error but the known 404 of ``GET /api/v1/tour`` without
a tour and the refusals the test provokes. The screenshot (the abandoned tour
and the 409) is tests/artifacts/pda_supervisor.png.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from edge.store.db import Transaction
from tests.picking.test_picking_counts import add_count
from tests.support.api_fixtures import Zone, add_task, events, item_code, stock, walk
from tests.support.pda_page import box_tour, logged_in, wedge_scan

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
IDLE_MS = 45 * 60_000
# the refusals this test provokes: Chromium logs each 4xx answer as a console error
PROVOKED = re.compile(
    r"status of (403|404|409) .*\(http://[^)]*/api/v1/(supervisor/|put-backs\?all=1)"
)


def unexpected(errors: list[str]) -> list[str]:
    return [e for e in errors if not PROVOKED.search(e)]


async def count_through_the_api(zone: Zone) -> None:
    """P2 counts SKU-D at A-03-12 (on-hand 4) as 3, twice, and SKU-ONE at
    A-05-05 (on-hand 1) as 1: one count that differs, one that matches."""
    add_count(zone.store, "C-1", [("SKU-D", "A-03-12"), ("SKU-ONE", "A-05-05")])
    counter = await zone.picker("BADGE-2")
    answer = await counter.scan("START")
    assert answer["tour"]["kind"] == "count", answer
    typed = {"A-03-12": [3, 3], "A-05-05": [1]}
    for stop in answer["tour"]["stops"]:
        assert (await counter.scan(stop["location"]))["result"] == "location_ok"
        for qty in typed[stop["location"]]:
            status, done = await counter.call(
                "POST", "/api/v1/tour/count", {"stop": stop["stop"], "qty": qty}
            )
            assert status == 200, done
    results = events(zone.store, "count_result")
    assert sorted((e["location"], e["counted"], e["expected"]) for e in results) == [
        ("A-03-12", 3, 4),
        ("A-05-05", 1, 1),
    ]


def abandon(zone: Zone, tour: int) -> None:
    """The picker went home 45 minutes ago."""

    def fn(tx: Transaction) -> None:
        tx.execute("UPDATE tours SET started_ms = started_ms - ? WHERE tour = ?", (IDLE_MS, tour))
        tx.execute("UPDATE scans SET at_ms = at_ms - ? WHERE tour = ?", (IDLE_MS, tour))

    zone.store.run(fn)


async def refreshed(page: Page) -> None:
    """Wait for the view's next complete read of its lists."""
    before = int(await page.evaluate("document.body.dataset.svLoads || '0'"))
    await page.wait_for_function(f"Number(document.body.dataset.svLoads || 0) > {before}")


async def result(page: Page, status: str, text: str) -> None:
    box = page.locator("#sv-result")
    await expect(box).to_have_attribute("data-status", status)
    await expect(box).to_contain_text(text)


async def cells(page: Page, selector: str) -> list[list[str]]:
    rows: list[list[str]] = await page.locator(selector).evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(c => c.textContent))"
    )
    return rows


async def test_the_supervisor_view_releases_adjusts_and_lists(zone: Zone, browser: Browser) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 2)], order="O-1")
    errors_a: list[str] = []
    errors_b: list[str] = []
    context_a, a = await logged_in(zone, browser, errors_a, device="picker-pda")
    await expect(a.locator("#btn-supervisor")).to_be_hidden()
    await expect(a.locator("#supervisor")).to_be_hidden()

    # page A: the tour and one of its two units, then the picker leaves
    await wedge_scan(a, "O-1")
    await expect(a.locator("body")).to_have_attribute("data-result", "tour_started")
    tour = await box_tour(a)
    (stop,) = walk(tour)
    await wedge_scan(a, stop["location"])
    await wedge_scan(a, item_code(stop))
    await expect(a.locator("body")).to_have_attribute("data-result", "item_ok")
    assert stock(zone.store, "SKU-A", "A-01-05") == (9, 1)
    abandon(zone, tour["tour"])
    await count_through_the_api(zone)

    # page B: the supervisor opens the view
    context_b, b = await logged_in(
        zone, browser, errors_b, device="supervisor-pda", badge="BADGE-S"
    )
    button = b.locator("#btn-supervisor")
    await expect(button).to_be_visible()
    await expect(button).to_have_text("Supervisor")
    await button.click()
    await expect(b.locator("body")).to_have_attribute("data-view", "supervisor")
    await expect(b.locator("#supervisor")).to_be_visible()
    await expect(b.locator("#scan-form")).to_be_hidden()
    await expect(b.locator("#stop")).to_be_hidden()
    await expect(button).to_have_text("Picking")
    await b.wait_for_function("document.body.dataset.svLoads")

    # the abandoned tour stands out
    row = b.locator(f'#sv-tours li[data-tour="{tour["tour"]}"]')
    await expect(b.locator("#sv-tours li")).to_have_count(1)
    await expect(row).to_have_attribute("data-idle", "long")
    await expect(row).to_have_class(re.compile(r"\bidle\b"))
    await expect(row.locator(".sv-who")).to_have_text(f"Tour {tour['tour']} · Pia (P1)")
    await expect(row.locator(".sv-idle")).to_have_text(re.compile(r"idle 4[5-6] min — abandoned\?"))
    await expect(row.locator(".sv-tour-info")).to_contain_text("0 of 1 stops · 1 of 2 units")

    # the counts: both results, newest first, and the accuracy
    recent = await cells(b, "#sv-counts-recent tbody tr")
    assert [r[1:] for r in recent] == [
        ["A-05-05 SKU-ONE", "1", "1", "matched · P2"],
        ["A-03-12 SKU-D", "3", "4", "differed -1 · recounted · P2"],
    ], recent
    matched = b.locator("#sv-counts-recent tbody tr")
    await expect(matched.nth(0)).to_have_attribute("data-matched", "true")
    await expect(matched.nth(1)).to_have_attribute("data-matched", "false")
    await expect(b.locator("#sv-accuracy")).to_have_text(
        "Accuracy: last day 50 % (1 of 2 matched) · 30 days 50 % (1 of 2)"
    )
    await expect(b.locator("#sv-counts-open li")).to_have_text(["No open count"])
    await expect(b.locator("#sv-put-backs tbody tr")).to_have_text(["Nothing to put back"])

    # a reassignment to nobody: 404 with the box's message, nothing changed
    before = len(events(zone.store))
    await row.locator(".sv-reassign").click()
    await expect(b.locator("#sv-dialog")).to_be_visible()
    await expect(b.locator("#sv-dialog-title")).to_have_text(f"Reassign tour {tour['tour']} (Pia)")
    await b.locator("#sv-dialog-input").fill("NOPE")
    await b.locator("#sv-dialog-ok").click()
    await result(b, "error", "Refused (404 unknown_picker): no picker NOPE")
    await expect(b.locator("#sv-dialog")).to_be_hidden()

    # an adjustment below what the tour reserves: 409
    await adjust(b, "SKU-A", "A-01-05", "-9", "shelf empty")
    await result(
        b, "error", "Refused (409 below_reserved): SKU-A at A-01-05 would hold 0, fewer than the 1"
    )
    assert len(events(zone.store)) == before
    assert stock(zone.store, "SKU-A", "A-01-05") == (9, 1)

    ARTIFACTS.mkdir(exist_ok=True)
    await b.wait_for_function("getComputedStyle(document.getElementById('flash')).opacity === '0'")
    assert await b.evaluate("document.documentElement.scrollWidth") <= 360
    await b.screenshot(path=str(ARTIFACTS / "pda_supervisor.png"), full_page=True)

    # the release asks for a reason; page A is told and drops the tour
    await row.locator(".sv-release").click()
    await expect(b.locator("#sv-dialog-title")).to_have_text(f"Release tour {tour['tour']} (Pia)")
    await b.locator("#sv-dialog-ok").click()  # no reason: refused on the page
    await result(b, "error", "Give a reason for the release")
    await expect(b.locator("#sv-dialog")).to_be_visible()
    await b.locator("#sv-dialog-input").fill("picker went home")
    await b.locator("#sv-dialog-ok").click()
    await result(b, "ok", f"Tour {tour['tour']} released: 1 × SKU-A to put back (yours now)")
    await expect(a.locator("#message")).to_have_text(
        f"a supervisor ended tour {tour['tour']}: scan START for new work"
    )
    await expect(a.locator("body")).to_have_attribute("data-tour", "none")
    await expect(a.locator("body")).to_have_attribute("data-feedback", "warning")
    await expect(a.locator("#stop-location")).to_have_text("—")
    await expect(a.locator("#stop-hint")).to_have_text("Scan an order, task, tote or START")
    await expect(a.locator("#put-back")).to_be_hidden()
    assert (await a.evaluate("localStorage.getItem('pe.token')")) is not None
    status = await a.evaluate(
        "fetch('/api/v1/tour', {headers: {Authorization: "
        "'Bearer ' + localStorage.getItem('pe.token')}}).then(r => r.status)"
    )
    assert status == 404

    # B: no active tour; the put-back line is the supervisor's now
    await expect(b.locator("#sv-tours li")).to_have_text(["No active tour"])
    assert await cells(b, "#sv-put-backs tbody tr") == [["S1", "SKU-A T-1", "1", "A-01-05", "0"]]

    # an adjustment with a reason
    await adjust(b, "SKU-A", "A-01-05", "2", "found behind the shelf")
    await result(b, "ok", "SKU-A at A-01-05: 9 → 11 (+2)")
    assert await b.locator("#sv-adjust-qty").input_value() == ""
    assert stock(zone.store, "SKU-A", "A-01-05") == (11, 0)
    adjusts = [e for e in events(zone.store, "stock_delta") if e["reason"] == "adjust"]
    assert [(e["sku"], e["location"], e["qty"], e["ref"]) for e in adjusts] == [
        ("SKU-A", "A-01-05", 2, None)
    ]
    actions = events(zone.store, "supervisor_action")
    assert [(e["action"], e["by"], e["subject"], e["detail"]["reason"]) for e in actions] == [
        ("release", "S1", f"tour {tour['tour']}", "picker went home"),
        ("adjust", "S1", "SKU-A at A-01-05", "found behind the shelf"),
    ]
    assert actions[0]["detail"]["put_back"] == [
        {"task": "T-1", "line": "1", "sku": "SKU-A", "location": "A-01-05", "qty": 1}
    ]

    # the exceptions, newest first: the adjustment on top
    await refreshed(b)
    kinds = await b.locator("#sv-exceptions li").evaluate_all(
        "lis => lis.map(li => li.dataset.kind)"
    )
    assert kinds[0] == "supervisor_action", kinds
    assert {"supervisor_action", "put_back"} <= set(kinds), kinds
    first = b.locator("#sv-exceptions li").first
    await expect(first).to_contain_text("S1: adjust SKU-A at A-01-05 — found behind the shelf")
    await expect(b.locator("#sv-exceptions li[data-kind='put_back']")).to_contain_text(
        "1 × SKU-A to A-01-05 (T-1) held by S1"
    )

    assert await b.evaluate("document.documentElement.scrollWidth") <= 360

    # back to picking: the supervisor's own put-back work
    await button.click()
    await expect(b.locator("body")).to_have_attribute("data-view", "pick")
    await expect(b.locator("#supervisor")).to_be_hidden()
    await expect(b.locator("#put-back")).to_be_visible()
    await expect(b.locator("#put-back-lines tbody tr")).to_have_count(1)

    # a supervisor demoted meanwhile: the next read is refused with 403
    zone.store.run(lambda tx: tx.execute("UPDATE pickers SET role = 'picker' WHERE id = 'S1'"))
    await button.click()
    await result(b, "error", "Refused (403 forbidden): only a supervisor may do this")

    # a plain picker's page, reloaded: still no supervisor button
    await a.reload()
    await expect(a.locator("body")).to_have_attribute("data-screen", "pick")
    await expect(a.locator("#conn")).to_have_text("online")
    await expect(a.locator("#btn-supervisor")).to_be_hidden()
    await expect(a.locator("#supervisor")).to_be_hidden()

    assert errors_a == [], errors_a
    assert unexpected(errors_b) == [], errors_b
    await context_a.close()
    await context_b.close()


async def adjust(page: Page, sku: str, location: str, qty: str, reason: str) -> None:
    """Fill the Adjust stock form and send it."""
    await page.locator("#sv-adjust-sku").fill(sku)
    await page.locator("#sv-adjust-location").fill(location)
    await page.locator("#sv-adjust-qty").fill(qty)
    await page.locator("#sv-adjust-reason").fill(reason)
    await page.locator("#sv-adjust-submit").click()


async def test_a_reassignment_through_the_view(zone: Zone, browser: Browser) -> None:
    """Reassign hands the tour to P2: page A is told, the list names P2."""
    add_task(zone.store, "T-1", [("SKU-A", 2)], order="O-1")
    errors: list[str] = []
    context_a, a = await logged_in(zone, browser, errors, device="picker-pda")
    await wedge_scan(a, "O-1")
    tour = (await box_tour(a))["tour"]
    context_b, b = await logged_in(zone, browser, errors, device="boss-pda", badge="BADGE-S")
    await b.locator("#btn-supervisor").click()
    row = b.locator(f'#sv-tours li[data-tour="{tour}"]')
    await expect(row).to_have_attribute("data-idle", "short")
    await expect(row).not_to_have_class(re.compile(r"\bidle\b"))
    await row.locator(".sv-reassign").click()
    await b.locator("#sv-dialog-input").fill("P2")
    await b.locator("#sv-dialog-input").press("Enter")
    await result(b, "ok", f"Tour {tour} handed from P1 to P2")
    await expect(a.locator("#message")).to_have_text(
        f"a supervisor handed tour {tour} to another picker"
    )
    await expect(a.locator("body")).to_have_attribute("data-tour", "none")
    await expect(row).to_have_attribute("data-picker", "P2")
    await expect(row.locator(".sv-who")).to_have_text(f"Tour {tour} · Per (P2)")
    (action,) = events(zone.store, "supervisor_action")
    assert (action["action"], action["by"], action["detail"]["to"]) == ("reassign", "S1", "P2")
    assert errors == [], errors
    await context_a.close()
    await context_b.close()
