"""The daemon's lifecycle: components under one supervisor, and a clean stop.

A *component* is anything with a ``name`` and an ``async run()`` that works
until it is cancelled (the API server, the device supervisor, the uploader, the
downloader, store maintenance). The :class:`Supervisor` runs them side by side;
when one crashes it is restarted with capped exponential back-off and jitter
while the others keep running, and the crash is logged once with its traceback
(repeats of the same failure are counted, not re-logged).

Stopping (SIGTERM/SIGINT or :meth:`Supervisor.stop`): components that have a
``drain()`` are asked first to stop taking new work and finish what is in flight
(the API server finishes open requests), then every component is cancelled, and
``on_stopped`` callbacks run (the store flushes and checkpoints its WAL). The
whole stop is bounded by ``stop_timeout_s`` (10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from common.backoff import Backoff

log = logging.getLogger(__name__)


@runtime_checkable
class Component(Protocol):
    name: str

    async def run(self) -> None:
        """Work until cancelled. Raising means a crash: the supervisor restarts it."""
        ...


@runtime_checkable
class Drainable(Protocol):
    async def drain(self) -> None:
        """Stop taking new work and finish in-flight work (bounded by the caller)."""
        ...


@dataclass(slots=True)
class ComponentHealth:
    name: str
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    last_crash_monotonic: float | None = None


@dataclass
class Supervisor:
    components: list[Component]
    backoff: Backoff = field(default_factory=Backoff)
    stop_timeout_s: float = 10.0
    #: a component that ran this long before crashing starts its back-off afresh
    healthy_after_s: float = 60.0
    on_stopped: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    health: dict[str, ComponentHealth] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        for c in self.components:
            self.health[c.name] = ComponentHealth(c.name)

    async def _keep_running(self, component: Component) -> None:
        health = self.health[component.name]
        attempt = 0
        while not self._stop.is_set():
            started = time.monotonic()
            health.running = True
            try:
                await component.run()
            except asyncio.CancelledError:
                health.running = False
                raise
            except Exception as exc:
                health.running = False
                health.restarts += 1
                health.last_crash_monotonic = time.monotonic()
                message = f"{type(exc).__name__}: {exc}"
                if time.monotonic() - started >= self.healthy_after_s:
                    attempt = 0
                if message != health.last_error:
                    log.exception("component %s crashed; restarting", component.name)
                else:
                    log.warning(
                        "component %s crashed again (%d restarts): %s",
                        component.name,
                        health.restarts,
                        message,
                    )
                health.last_error = message
                delay = self.backoff.delay(attempt)
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
            else:
                health.running = False
                if not self._stop.is_set():
                    log.info("component %s finished", component.name)
                return

    async def run(self, *, install_signals: bool = True) -> None:
        """Run every component until :meth:`stop` or SIGTERM/SIGINT, then stop cleanly."""
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        try:
            for c in self.components:
                self._tasks[c.name] = asyncio.create_task(
                    self._keep_running(c), name=f"component:{c.name}"
                )
            log.info("ready: %s", ", ".join(c.name for c in self.components))
            await self._stop.wait()
            await self._shutdown()
        finally:
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    def stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping")
            self._stop.set()

    async def _shutdown(self) -> None:
        deadline = time.monotonic() + self.stop_timeout_s
        drains = [c.drain() for c in self.components if isinstance(c, Drainable)]
        if drains:
            budget = max(0.1, (deadline - time.monotonic()) * 0.6)
            try:
                await asyncio.wait_for(asyncio.gather(*drains, return_exceptions=True), budget)
            except TimeoutError:
                log.warning("in-flight work did not finish within %.1f s", budget)
        for task in self._tasks.values():
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(
                list(self._tasks.values()), timeout=max(0.1, deadline - time.monotonic())
            )
            for task in pending:
                log.error("%s did not stop in time; leaving it behind", task.get_name())
        for callback in self.on_stopped:
            result = callback()
            if result is not None:
                await result
        log.info("stopped")
