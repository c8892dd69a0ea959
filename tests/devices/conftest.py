"""Fixtures of the device tests: a real Mosquitto per test (tests.support.mosquitto)."""

from tests.support.mosquitto import mosquitto_broker

__all__ = ["mosquitto_broker"]
