"""The picking tests share the seeded zone of tests/support/api_fixtures.py."""

from tests.support.api_fixtures import zone, zone_store

__all__ = ["zone", "zone_store"]
