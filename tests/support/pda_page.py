"""What the PDA page tests share: Debian's headless Chromium, the hardware
probe, and a scan typed like a keyboard-wedge scanner (the code, then Enter)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
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
