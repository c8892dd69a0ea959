"""The supervisor restarts a crashed component with back-off while the others
keep running, logs a repeated failure once, and stops within its budget."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from common.backoff import Backoff
from edge.daemon import Supervisor


class Flaky:
    def __init__(self, name: str, failures: int) -> None:
        self.name = name
        self.failures = failures
        self.starts = 0
        self.healthy = asyncio.Event()

    async def run(self) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise ConnectionError("peer went away")
        self.healthy.set()
        await asyncio.Event().wait()


class Ticker:
    name = "ticker"

    def __init__(self) -> None:
        self.ticks = 0
        self.drained = False

    async def run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.005)

    async def drain(self) -> None:
        self.drained = True


async def test_crashed_component_restarts_others_keep_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flaky, ticker = Flaky("flaky", failures=3), Ticker()
    sup = Supervisor([flaky, ticker], backoff=Backoff(initial_s=0.01, cap_s=0.05))
    closed: list[str] = []
    sup.on_stopped.append(lambda: closed.append("store"))
    with caplog.at_level(logging.INFO, logger="edge.daemon"):
        runner = asyncio.create_task(sup.run(install_signals=False))
        await asyncio.wait_for(flaky.healthy.wait(), 5)
        ticks_then = ticker.ticks
        await asyncio.sleep(0.05)
        assert ticker.ticks > ticks_then  # never paused by the other's crashes
        sup.stop()
        await asyncio.wait_for(runner, 5)
    assert flaky.starts == 4
    assert sup.health["flaky"].restarts == 3
    assert ticker.drained and closed == ["store"]
    tracebacks = [r for r in caplog.records if r.exc_info and "flaky crashed" in r.getMessage()]
    assert len(tracebacks) == 1  # the same failure is logged once with its traceback
    assert sum("crashed again" in r.getMessage() for r in caplog.records) == 2


async def test_stop_is_bounded_even_when_a_component_ignores_cancellation() -> None:
    class Stubborn:
        name = "stubborn"

        async def run(self) -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                await asyncio.sleep(5)  # misbehaves: ignores the first cancellation

    sup = Supervisor([Stubborn()], stop_timeout_s=0.3)
    runner = asyncio.create_task(sup.run(install_signals=False))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sup.stop()
    await asyncio.wait_for(runner, 2)
    assert loop.time() - started < 1.0


def test_backoff_is_capped_and_jittered() -> None:
    b = Backoff(initial_s=0.5, cap_s=60)
    rng = random.Random(1)
    delays = [b.delay(a, rng) for a in range(12)]
    assert all(0.25 <= d <= 60 for d in delays)
    assert max(delays[8:]) <= 60 and min(delays[8:]) >= 30
    assert len({round(d, 6) for d in delays}) == len(delays)
