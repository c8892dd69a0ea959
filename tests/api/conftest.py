"""The PDA API tests share the seeded zone of tests/support/api_fixtures.py
and the page tests' Chromium of tests/support/pda_page.py."""

from tests.support.api_fixtures import zone, zone_store
from tests.support.pda_page import browser

__all__ = ["browser", "zone", "zone_store"]
