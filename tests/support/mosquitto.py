"""Test support for MQTT: the real broker (:mod:`simulators.broker`) as a fixture.

:class:`MosquittoBroker` writes its own configuration into a scratch directory —
no anonymous access, a password file made with ``mosquitto_passwd`` (or an
equivalent PBKDF2-SHA512 ``$7$`` hash when that tool is missing), persistence on
so persistent sessions and their queued QoS 1 messages survive a restart — and
can be stopped (gracefully or with SIGKILL) and restarted on the same port.

The pytest fixture ``mosquitto_broker`` *fails* (never skips) when no mosquitto
binary exists: the test command is expected to install it. :class:`Collector`
(an ``emit`` that tests can await) and :func:`until` help tests that drive
devices through the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devices.events import DeviceEvent, PresenceKind, TagPresenceEvent
from simulators.broker import USERNAME, MosquittoBroker, find_mosquitto, free_port

__all__ = [
    "USERNAME",
    "Collector",
    "MosquittoBroker",
    "find_mosquitto",
    "free_port",
    "mosquitto_broker",
    "until",
]


class Collector:
    """An ``emit`` that records events and lets a test await a condition."""

    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []
        self._changed = asyncio.Event()

    async def emit(self, event: DeviceEvent) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait(
        self, predicate: Callable[[list[DeviceEvent]], bool], within: float = 10
    ) -> None:
        async with asyncio.timeout(within):
            while not predicate(self.events):
                self._changed.clear()
                await self._changed.wait()

    def presence(self, kind: PresenceKind) -> list[TagPresenceEvent]:
        return [e for e in self.events if isinstance(e, TagPresenceEvent) and e.kind is kind]


async def until(condition: Callable[[], bool], within: float = 10) -> None:
    """Poll a driver-side condition that has no awaitable of its own."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - counters have no event to await
            await asyncio.sleep(0.01)


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh broker per test; fails the test clearly when mosquitto is missing."""
    if find_mosquitto() is None:
        pytest.fail(
            "mosquitto is required for MQTT tests but was not found on PATH or in /usr/sbin; "
            "install it (apt-get install mosquitto)",
            pytrace=False,
        )
    broker = MosquittoBroker(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
