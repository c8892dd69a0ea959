"""What the PDA page tests share: Debian's headless Chromium, the hardware
probe, a handheld logged in on the pick screen that collects console errors,
and a scan typed like a keyboard-wedge scanner (the code, then Enter)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    async_playwright,
    expect,
)

from edge.api import auth
from tests.support.api_fixtures import Zone

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Chromium logs every 4xx response as a console error: the box's 404 no_tour
# (GET /api/v1/tour without a tour) is expected, nothing else is.
EXPECTED_404 = ("/api/v1/tour",)
# Records what the page asks of the hardware: vibrations and tones.
HARDWARE_PROBE = """
window.__vibrations = [];
navigator.vibrate = function (p) { window.__vibrations.push(p); return true; };
window.__tones = 0;
const create = AudioContext.prototype.createOscillator;
AudioContext.prototype.createOscillator = function () {
  window.__tones++;
  return create.call(this);
};
"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def logged_in(
    zone: Zone, browser: Browser, errors: list[str], *, device: str, badge: str = "BADGE-1"
) -> tuple[BrowserContext, Page]:
    """A 360 px handheld enrolled as ``device``, ``badge`` logged in, on the pick
    screen with its socket up; console errors and page errors go to ``errors``."""
    _, key = auth.enroll_pda(zone.store, device)
    context = await browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True
    )
    await context.add_init_script(HARDWARE_PROBE)
    page = await context.new_page()

    def console(message: ConsoleMessage) -> None:
        url = message.location.get("url", "")
        if message.type == "error" and not url.endswith(EXPECTED_404):
            errors.append(f"{message.text} ({url})")

    page.on("console", console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(zone.base + "/")
    await page.evaluate(f"localStorage.setItem('pe.deviceKey', {key!r})")
    await page.reload()
    await page.locator("#scan").press_sequentially(badge)
    await page.locator("#scan").press("Enter")
    await expect(page.locator("body")).to_have_attribute("data-screen", "pick")
    await expect(page.locator("#conn")).to_have_text("online")
    return context, page


async def wedge_scan(page: Page, code: str) -> None:
    """Type like a keyboard-wedge scanner (the code, then Enter) and wait for the answer."""
    before = int(await page.evaluate("document.body.dataset.answers || '0'"))
    await page.locator("#scan").press_sequentially(code)
    await page.locator("#scan").press("Enter")
    await expect(page.locator("body")).to_have_attribute("data-answers", str(before + 1))


async def box_tour(page: Page) -> dict[str, Any]:
    """The picker's tour as the box has it (``GET /api/v1/tour`` with the page's token)."""
    answer: dict[str, Any] = await page.evaluate(
        "fetch('/api/v1/tour', {headers: {Authorization: "
        "'Bearer ' + localStorage.getItem('pe.token')}}).then(r => r.json())"
    )
    return answer
