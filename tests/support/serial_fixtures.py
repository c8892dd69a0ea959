"""Helpers of the serial device tests: an awaitable event collector and a driver runner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from devices.driver import DeviceSpec, MqttSettings
from devices.events import (
    DeviceEvent,
    DeviceRole,
    DeviceState,
    DeviceStateEvent,
    ScanEvent,
    TagReadEvent,
)
from devices.registry import create_driver

WAIT = 10.0  # generous: the suite shares 2 cores with others


class Collector:
    """An ``emit`` that keeps events and lets a test await a condition on them."""

    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: DeviceEvent) -> None:
        self.events.append(event)
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, predicate: Callable[[Collector], bool], within: float = WAIT) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    @property
    def scans(self) -> list[ScanEvent]:
        return [e for e in self.events if isinstance(e, ScanEvent)]

    @property
    def tags(self) -> list[TagReadEvent]:
        return [e for e in self.events if isinstance(e, TagReadEvent)]

    @property
    def states(self) -> list[DeviceStateEvent]:
        return [e for e in self.events if isinstance(e, DeviceStateEvent)]

    def connected_count(self) -> int:
        return sum(1 for e in self.states if e.state is DeviceState.CONNECTED)


def make_driver(driver: str, url: str, **options: Any) -> Any:
    spec = DeviceSpec(
        id=f"{driver}-1", driver=driver, role=DeviceRole.PACK_STATION, url=url, options=options
    )
    return create_driver(spec, mqtt=MqttSettings())


@contextlib.asynccontextmanager
async def running(driver: Any, collector: Collector) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``driver.run(collector)`` until the block ends; wait for it to be connected."""
    before = collector.connected_count()
    task = asyncio.create_task(driver.run(collector))
    try:
        await collector.wait(lambda c: c.connected_count() > before or task.done())
        if task.done():
            task.result()
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
