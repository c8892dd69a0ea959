"""Device supervision: every configured device runs on its own, reconnecting
with capped exponential back-off and jitter, with availability logged once.

:class:`DeviceSupervisor` builds one driver per :class:`~devices.driver.DeviceSpec`
with :func:`devices.registry.create_driver` — once, so that state a driver keeps
across connections (RFID presence windows) survives reconnects — and calls its
``run(emit)`` again whenever it ends: a serial port unplugged and plugged back,
a broker restarted, a driver bug. One device failing never touches another.

Availability is logged **once** when a device is lost (WARNING) and **once**
when it is back (INFO), never per retry (retries go to DEBUG), and reported to
``on_event`` as :class:`~devices.events.DeviceStateEvent` ``disconnected`` /
``connected``. :meth:`DeviceSupervisor.snapshot` gives the dashboard and
``/metrics`` per-device counters. Cancelling :meth:`DeviceSupervisor.run`
cancels every driver and returns once they have closed their transports.

The supervisor never parses device bytes: it only sees typed events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from common.backoff import Backoff
from devices.driver import DeviceSpec, DeviceStats, Driver, MqttSettings
from devices.errors import DeviceConfigError, DeviceDisconnectedError
from devices.events import DeviceEvent, DeviceState, DeviceStateEvent
from devices.registry import create_driver

log = logging.getLogger(__name__)

OnEvent = Callable[[DeviceEvent], Awaitable[None]]


class _WatchedStats(DeviceStats):
    """The driver's counters, telling the supervisor when ``connected`` changes.

    Drivers only assign ``stats.connected``; replacing their :class:`DeviceStats`
    with this subclass lets the supervisor await the change instead of polling,
    so a connection that drops again a millisecond later is still seen.
    """

    __slots__ = ("_up", "changed", "went_up")

    def __init__(self, base: DeviceStats) -> None:
        self._up = False
        self.went_up = False  # set when connected becomes True; reset per run
        self.changed = asyncio.Event()
        for f in dataclasses.fields(DeviceStats):
            setattr(self, f.name, getattr(base, f.name))

    @property
    def connected(self) -> bool:
        return self._up

    @connected.setter
    def connected(self, value: bool) -> None:
        if value and not self._up:
            self.went_up = True
        self._up = value
        self.changed.set()


@dataclass(slots=True)
class _DeviceState:
    """What the supervisor knows about one device beyond the driver's counters."""

    available: bool | None = None  # None until the first connect or failure
    down_since: float | None = None  # monotonic, when it was lost
    retries: int = 0  # failed attempts since it was last connected
    reconnects: int = 0


class DeviceSupervisor:
    """Run every configured device concurrently; see the module docstring."""

    name = "devices"

    def __init__(
        self,
        specs: Sequence[DeviceSpec],
        *,
        mqtt: MqttSettings,
        on_event: OnEvent,
        backoff: Backoff | None = None,
        stable_after_s: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        ids = [spec.id for spec in specs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise DeviceConfigError(f"duplicate device ids: {', '.join(duplicates)}")
        self.specs = tuple(specs)
        self.on_event = on_event
        self.backoff = backoff or Backoff()
        self.stable_after_s = stable_after_s
        self._rng = rng or random.Random()
        # Built once: a driver keeps its smoothing windows across reconnects.
        self.drivers: dict[str, Driver] = {s.id: create_driver(s, mqtt=mqtt) for s in specs}
        self._stats: dict[str, _WatchedStats] = {}
        for device_id, driver in self.drivers.items():
            watched = _WatchedStats(driver.stats)
            driver.stats = watched
            self._stats[device_id] = watched
        self._state = {s.id: _DeviceState() for s in specs}

    # -- public ------------------------------------------------------------------

    async def run(self) -> None:
        """Supervise every device until cancelled."""
        if not self.specs:
            log.info("no devices configured")
            await asyncio.Event().wait()
        try:
            async with asyncio.TaskGroup() as group:
                for spec in self.specs:
                    group.create_task(self._supervise(spec), name=f"device-{spec.id}")
        finally:
            for driver in self.drivers.values():
                driver.stats.connected = False

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per-device counters for the dashboard and /metrics (JSON-ready)."""
        out: dict[str, dict[str, Any]] = {}
        now = time.monotonic()
        for spec in self.specs:
            stats = self.drivers[spec.id].stats
            state = self._state[spec.id]
            out[spec.id] = {
                "driver": spec.driver,
                "role": spec.role.value,
                "connected": stats.connected,
                "available": bool(state.available),
                "frames": stats.frames,
                "bad_frames": stats.bad_frames,
                "dropped_bytes": stats.dropped_bytes,
                "events": stats.events,
                "reconnects": stats.reconnects,
                "retries": state.retries,
                "last_seen": stats.last_seen,
                "last_error": stats.last_error,
                "down_for_s": (now - state.down_since) if state.down_since is not None else None,
            }
        return out

    # -- per device -------------------------------------------------------------

    def _emit_for(self, spec: DeviceSpec) -> OnEvent:
        return self.on_event

    async def _announce(self, spec: DeviceSpec, state: DeviceState, detail: str) -> None:
        event = DeviceStateEvent(
            device_id=spec.id, state=state, detail=detail, received_at=time.time()
        )
        try:
            await self.on_event(event)
        except Exception:  # the consumer's problem must not stop supervision
            log.exception("device %s: consumer failed on %s event", spec.id, state.value)

    async def _on_connected(self, spec: DeviceSpec, driver: Driver) -> None:
        state = self._state[spec.id]
        if state.available is False:
            down = time.monotonic() - state.down_since if state.down_since else 0.0
            state.reconnects += 1
            driver.stats.reconnects = state.reconnects
            log.info(
                "device %s (%s) is back after %.1f s and %d retries",
                spec.id,
                spec.driver,
                down,
                state.retries,
            )
        elif state.available is None:
            log.info("device %s (%s) connected", spec.id, spec.driver)
        state.available = True
        state.down_since = None
        state.retries = 0
        await self._announce(spec, DeviceState.CONNECTED, "connected")

    async def _on_failure(self, spec: DeviceSpec, driver: Driver, exc: BaseException) -> None:
        state = self._state[spec.id]
        reason = f"{type(exc).__name__}: {exc}"
        driver.stats.last_error = reason
        state.retries += 1
        if state.available is not False:
            was = state.available
            state.available = False
            state.down_since = time.monotonic()
            if isinstance(exc, DeviceDisconnectedError | DeviceConfigError):
                log.warning(
                    "device %s (%s) %s: %s; retrying with back-off",
                    spec.id,
                    spec.driver,
                    "lost" if was else "unavailable",
                    exc,
                )
            else:  # not a transport failure: a driver or consumer bug, keep the trace
                log.error(
                    "device %s (%s) failed; retrying with back-off",
                    spec.id,
                    spec.driver,
                    exc_info=exc,
                )
            if was:
                await self._announce(spec, DeviceState.DISCONNECTED, reason)
        else:
            log.debug("device %s retry %d failed: %s", spec.id, state.retries, reason)

    async def _supervise(self, spec: DeviceSpec) -> None:
        driver = self.drivers[spec.id]
        stats = self._stats[spec.id]
        emit = self._emit_for(spec)
        attempt = 0
        while True:
            stats.went_up = False
            task = asyncio.create_task(driver.run(emit), name=f"driver-{spec.id}")
            connected_at: float | None = None
            try:
                while True:
                    stats.changed.clear()
                    if connected_at is None and stats.went_up:
                        connected_at = time.monotonic()
                        await self._on_connected(spec, driver)
                    if task.done():
                        break
                    waiter = asyncio.create_task(stats.changed.wait())
                    try:
                        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
            except asyncio.CancelledError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            error: BaseException
            if task.cancelled():  # cancelled from inside: treat as a failure
                error = DeviceDisconnectedError(f"driver of {spec.id} was cancelled")
            else:
                error = task.exception() or DeviceDisconnectedError(f"driver of {spec.id} returned")
            if connected_at is not None and time.monotonic() - connected_at >= self.stable_after_s:
                attempt = 0  # it had been up for a while: start the back-off afresh
            await self._on_failure(spec, driver, error)
            delay = self.backoff.delay(attempt, self._rng)
            attempt += 1
            await asyncio.sleep(delay)
