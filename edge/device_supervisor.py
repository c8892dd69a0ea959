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

Given a ``store``, it keeps the ``devices`` table (:mod:`edge.store.devices`)
through the store's writer: each state change with since when (``connecting``
at start, ``connected``, ``disconnected``, ``unavailable``, ``stopped``), and
``last_seen_ms`` at most every ``seen_interval_s`` — never a write per frame.
A write that fails is logged once and supervision goes on.

The supervisor never parses device bytes: it only sees typed events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
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
from edge.store import Store, Transaction, now_ms
from edge.store import devices as device_table

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
    failures: int = 0  # failed attempts and losses since the start
    state: str = "connecting"  # as written to the devices table
    state_since: float = dataclasses.field(default_factory=time.monotonic)


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
        store: Store | None = None,
        seen_interval_s: float = 30.0,
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
        self.store = store
        self.seen_interval_s = seen_interval_s
        self._seen_written: dict[str, float] = {}
        self._write_failed = False

    # -- public ------------------------------------------------------------------

    async def run(self) -> None:
        """Supervise every device until cancelled."""
        if not self.specs:
            log.info("no devices configured")
            await asyncio.Event().wait()
        await self._write_table(self._configure_table)
        try:
            async with asyncio.TaskGroup() as group:
                for spec in self.specs:
                    group.create_task(self._supervise(spec), name=f"device-{spec.id}")
                if self.store is not None:
                    group.create_task(self._write_seen(), name="devices-last-seen")
        finally:
            for driver in self.drivers.values():
                driver.stats.connected = False
            for spec in self.specs:
                self._set_state(spec, "stopped")
            with contextlib.suppress(Exception):  # stopping: a slow store must not hold it
                await asyncio.wait_for(self._write_table(self._stopped_table), 2.0)

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
                "state": state.state,
                "state_for_s": now - state.state_since,
                "failures": state.failures,
            }
        return out

    # -- the devices table --------------------------------------------------------

    def _set_state(self, spec: DeviceSpec, state: str) -> bool:
        """Note ``state``; True when it changed."""
        known = self._state[spec.id]
        if known.state == state:
            return False
        known.state, known.state_since = state, time.monotonic()
        return True

    async def _write_table(self, fn: Callable[[Transaction], None]) -> None:
        if self.store is None:
            return
        try:
            await self.store.write(fn)
        except Exception as exc:  # the table is for people: supervision goes on
            if not self._write_failed:
                log.warning("cannot write the devices table: %s", exc)
            self._write_failed = True
        else:
            self._write_failed = False

    def _configure_table(self, tx: Transaction) -> None:
        specs = [(s.id, s.driver, s.role.value) for s in self.specs]
        device_table.configure(tx, specs, now_ms())

    def _stopped_table(self, tx: Transaction) -> None:
        for spec in self.specs:
            device_table.set_state(tx, spec.id, "stopped", now_ms(), self._seen_ms(spec.id))

    def _seen_ms(self, device: str) -> int | None:
        seen = self.drivers[device].stats.last_seen
        if seen is None:
            return None
        self._seen_written[device] = seen
        return int(seen * 1000)

    async def _record(self, spec: DeviceSpec, state: str) -> None:
        """A state change, to the devices table (with the last time heard from)."""
        if not self._set_state(spec, state):
            return
        since = now_ms()

        def write(tx: Transaction) -> None:
            device_table.set_state(tx, spec.id, state, since, self._seen_ms(spec.id))

        await self._write_table(write)

    async def _write_seen(self) -> None:
        """Every ``seen_interval_s``: last_seen of the devices heard from since."""
        while True:
            await asyncio.sleep(self.seen_interval_s)
            seen = [
                (device, driver.stats.last_seen)
                for device, driver in self.drivers.items()
                if driver.stats.last_seen is not None
                and driver.stats.last_seen != self._seen_written.get(device)
            ]
            if not seen:
                continue
            for device, at in seen:
                self._seen_written[device] = at
            rows = [(device, int(at * 1000)) for device, at in seen]
            await self._write_table(functools.partial(device_table.set_last_seen, seen=rows))

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
        await self._record(spec, "connected")
        await self._announce(spec, DeviceState.CONNECTED, "connected")

    async def _on_failure(self, spec: DeviceSpec, driver: Driver, exc: BaseException) -> None:
        state = self._state[spec.id]
        reason = f"{type(exc).__name__}: {exc}"
        driver.stats.last_error = reason
        state.retries += 1
        state.failures += 1
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
            await self._record(spec, "disconnected" if was else "unavailable")
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
