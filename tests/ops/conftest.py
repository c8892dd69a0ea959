"""The ops tests use the PDA API tests' seeded zone (tests/support/api_fixtures.py)."""

from tests.support.api_fixtures import zone, zone_store

__all__ = ["zone", "zone_store"]
