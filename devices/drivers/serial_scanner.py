"""Driver for fixed barcode scanners on serial / USB-CDC, and the serial driver base.

Promises: :class:`SerialScannerDriver` reads ``[prefix][AIM id]data[suffix]``
lines from the configured URL and emits one :class:`~devices.events.ScanEvent`
per line, in arrival order, awaiting ``emit`` for each. A line without its
suffix is emitted after ``idle_timeout_ms`` of silence (the fallback for
scanners configured with no suffix). Noise and over-long lines are counted in
``stats`` and logged once per connection; nothing on the wire makes it raise
except loss of the port (``DeviceDisconnectedError``). It never decodes what a
code means (``devices.codes`` does, in the edge) and never reconnects.

:class:`SerialDriverBase` is shared with the RFID serial drivers: option
checking, the transport's lifetime, ``DeviceStats`` bookkeeping and the
log-once rule.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from devices.driver import DeviceSpec, DeviceStats, Emit, MqttSettings
from devices.errors import DeviceConfigError, DeviceDisconnectedError
from devices.events import DeviceState, DeviceStateEvent, ScanEvent
from devices.framing.base import F, FramerStats, HeaderFramer
from devices.framing.lines import SUFFIXES, LineFramer, Suffix
from devices.transport.serial import SerialTransport

log = logging.getLogger(__name__)

BAUDRATES = frozenset({1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600})


@dataclass(frozen=True, slots=True)
class Option:
    """One driver option: its type, bounds or choices, and default."""

    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None

    def check(self, name: str, value: Any) -> None:
        if self.kind is bool:
            ok = isinstance(value, bool)
        elif self.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, self.kind)
        if not ok:
            raise DeviceConfigError(f"option {name!r} must be {self.kind.__name__}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise DeviceConfigError(f"option {name!r} must be one of {allowed}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise DeviceConfigError(f"option {name!r} must be ≥ {self.minimum:g}, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise DeviceConfigError(f"option {name!r} must be ≤ {self.maximum:g}, got {value!r}")


class SerialDriverBase(abc.ABC):
    """What the serial drivers share; subclasses set ``OPTIONS`` and ``session``."""

    OPTIONS: ClassVar[dict[str, Option]] = {}
    spec: DeviceSpec
    stats: DeviceStats

    def __init__(self, spec: DeviceSpec, *, mqtt: MqttSettings | None = None) -> None:
        self.check_options(spec.options)
        self.spec = spec
        self.stats = DeviceStats()
        self._logged: set[str] = set()
        self._seen = FramerStats()  # framer counters already added to stats
        self._condition: tuple[DeviceState, str] | None = None  # reader-reported problem

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        for name, value in options.items():
            option = cls.OPTIONS.get(name)
            if option is None:
                known = ", ".join(sorted(cls.OPTIONS))
                raise DeviceConfigError(f"unknown option {name!r} (known: {known})")
            option.check(name, value)

    def option(self, name: str) -> Any:
        return self.spec.options.get(name, self.OPTIONS[name].default)

    # -- the connection ------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        url = self.spec.url
        if not url:
            raise DeviceConfigError(f"device {self.spec.id!r}: a serial driver needs a url")
        transport = SerialTransport(url, baudrate=int(self.option("baudrate")))
        self._seen = FramerStats()
        self._logged.clear()  # log-once is per connection
        self._condition = None
        try:
            async with transport:
                self.stats.connected = True
                self.stats.seen()
                await emit(DeviceStateEvent(self.spec.id, DeviceState.CONNECTED, url, time.time()))
                await self.session(transport, emit)
        except DeviceDisconnectedError as exc:
            self.stats.last_error = str(exc)
            raise
        finally:
            self.stats.connected = False
        raise DeviceDisconnectedError(f"{url}: session of {self.spec.id} ended")

    @abc.abstractmethod
    async def session(self, transport: SerialTransport, emit: Emit) -> None:
        """Talk to the device until the transport fails (it raises then)."""

    async def command_loop(
        self,
        transport: SerialTransport,
        framer: HeaderFramer[F],
        pump: Coroutine[Any, Any, None],
        handle: Callable[[F, float], Awaitable[None]],
    ) -> None:
        """Run ``pump`` (the commands a reader needs) beside the receive loop.

        Each frame goes to ``handle(frame, received_at)`` in order; a partial
        frame is given up after ``idle_timeout_ms`` of silence. Whichever fails
        first — a write in ``pump`` or a read — ends the loop with its error.
        """
        idle = int(self.option("idle_timeout_ms")) / 1000.0
        task = asyncio.create_task(pump)
        try:
            while True:
                if task.done():
                    task.result()  # a failed write raises DeviceDisconnectedError here
                data = await transport.read(idle)
                now = time.time()
                if data:
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("device %s rx %s", self.spec.id, data[:256].hex(" "))
                    frames = framer.feed(data)
                else:
                    frames = framer.flush_idle()
                for frame in frames:
                    await handle(frame, now)
                self.account(framer.stats)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def report_condition(
        self, emit: Emit, now: float, problem: tuple[DeviceState, str] | None
    ) -> None:
        """Emit a state event when the device's own condition changes, not per frame.

        ``problem`` is ``(state, detail)`` for a reader-reported error and
        ``None`` when a round went well. A reader answering every round with the
        same error yields one event and one log line, and one more on recovery.
        """
        current = self._condition
        if problem == current:
            return
        self._condition = problem
        if problem is not None:
            state, detail = problem
            self.stats.last_error = detail
            log.warning("device %s: %s", self.spec.id, detail)
        else:
            assert current is not None
            state = (
                DeviceState.ANTENNA_CONNECTED
                if current[0] is DeviceState.ANTENNA_DISCONNECTED
                else DeviceState.STATUS
            )
            detail = f"recovered from: {current[1]}"
            log.info("device %s: %s", self.spec.id, detail)
        await emit(DeviceStateEvent(self.spec.id, state, detail, now))
        self.stats.events += 1

    def bad_record(self, exc: Exception) -> None:
        """A frame passed its check but its content is malformed."""
        self.stats.bad_frames += 1
        self.stats.last_error = str(exc)
        self.once("record", "device %s: %s", self.spec.id, exc)

    # -- bookkeeping -----------------------------------------------------------------

    def account(self, framer: FramerStats) -> None:
        """Add what the framer counted since the last call to ``stats``; log once."""
        seen = self._seen
        frames = framer.frames - seen.frames
        bad = framer.bad_frames - seen.bad_frames
        dropped = framer.dropped_bytes - seen.dropped_bytes
        self.stats.frames += frames
        self.stats.bad_frames += bad
        self.stats.dropped_bytes += dropped
        self._seen = FramerStats(
            framer.frames, framer.bad_frames, framer.dropped_bytes, framer.overflows
        )
        if bad or dropped:
            self.once(
                "malformed",
                "device %s: malformed input on %s (%d bad frames, %d junk bytes so far); "
                "further malformed input on this connection is counted, not logged",
                self.spec.id,
                self.spec.url,
                framer.bad_frames,
                framer.dropped_bytes,
            )

    def once(self, key: str, msg: str, *args: Any) -> None:
        """Log at WARNING the first time ``key`` happens on this connection, then DEBUG."""
        if key in self._logged:
            log.debug(msg, *args)
            return
        self._logged.add(key)
        log.warning(msg, *args)


class SerialScannerDriver(SerialDriverBase):
    """A fixed scanner: lines in, ``ScanEvent`` out (see the module docstring)."""

    OPTIONS: ClassVar[dict[str, Option]] = {
        "baudrate": Option(int, 9600, choices=tuple(sorted(BAUDRATES))),
        "suffix": Option(str, "crlf", choices=SUFFIXES),
        "prefix": Option(str, ""),
        "aim": Option(bool, True),
        "idle_timeout_ms": Option(int, 80, minimum=10, maximum=5000),
        "max_frame": Option(int, 4096, minimum=16, maximum=65536),
    }

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        super().check_options(options)
        prefix = options.get("prefix", "")
        if not str(prefix).isascii():
            raise DeviceConfigError(f"option 'prefix' must be ASCII, got {prefix!r}")

    async def session(self, transport: SerialTransport, emit: Emit) -> None:
        suffix: Suffix = self.option("suffix")
        framer = LineFramer(
            suffix=suffix,
            prefix=str(self.option("prefix")).encode("ascii"),
            aim=bool(self.option("aim")),
            max_frame=int(self.option("max_frame")),
        )
        idle = int(self.option("idle_timeout_ms")) / 1000.0
        device_id = self.spec.id
        while True:
            # Only wait with a deadline while a partial line is pending.
            data = await transport.read(idle if framer.pending else None)
            now = time.time()
            if data:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("device %s rx %s", device_id, data[:256].hex(" "))
                frames = framer.feed(data)
            else:
                frame = framer.flush_idle()
                frames = [frame] if frame is not None else []
                if frame is not None and suffix != "none":
                    self.once(
                        "idle",
                        "device %s: line ended by idle timeout, not by its %s suffix",
                        device_id,
                        suffix,
                    )
            self.account(framer.stats)
            if frames:
                self.stats.last_seen = now
            for frame in frames:
                await emit(ScanEvent(device_id, frame.text(), frame.symbology, now))
                self.stats.events += 1
