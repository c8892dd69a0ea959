"""Driver for ZPL label printers: a printer is a ``[[devices]]`` entry like a scanner.

Promises: :class:`ZplPrinterDriver` (driver ``zpl-printer``; ``url`` is
``tcp://host:9100`` or a serial URL) asks the printer ``~HS`` every ``poll_s``
seconds through a :class:`~devices.printer.client.PrinterLink`. ``run(emit)``
emits ``connected`` once the first answer came, then a ``status`` event whose
detail is ``ready`` or the printer's problems (``paper out``, ``head open``,
``paused``, … joined by ``, ``) — once at the start of each connection and
once per change, never per poll, with one log line per change. A garbled
answer is counted in ``stats.bad_frames`` and logged once per connection. A
printer that cannot be reached or stops answering ends ``run`` with
:class:`~devices.errors.PrinterUnavailableError` /
:class:`~devices.errors.PrinterTimeoutError` (both ``DeviceDisconnectedError``):
the supervisor announces ``disconnected`` and decides when to try again; the
driver never reconnects on its own.

:meth:`ZplPrinterDriver.print_job` sends a job through the same link (a poll
and a job never overlap); see :mod:`devices.printer.client` for what a
returned status does and does not prove. Never builds labels, never knows orders.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from devices.driver import DeviceSpec, DeviceStats, Emit, MqttSettings
from devices.drivers.serial_scanner import BAUDRATES
from devices.errors import DeviceConfigError, FrameError
from devices.events import DeviceState, DeviceStateEvent
from devices.printer.client import PrinterLink
from devices.printer.status import PrinterStatus

log = logging.getLogger(__name__)

# option -> (default, minimum, maximum); seconds
_SECONDS: dict[str, tuple[float, float, float]] = {
    "poll_s": (5.0, 0.01, 3600.0),
    "timeout_s": (3.0, 0.05, 60.0),
}


class ZplPrinterDriver:
    """One ZPL printer (see the module docstring)."""

    def __init__(self, spec: DeviceSpec, *, mqtt: MqttSettings | None = None) -> None:
        self.check_options(spec.options)
        if not spec.url:
            raise DeviceConfigError(f"device {spec.id!r}: a printer needs a url")
        self.spec = spec
        self.stats = DeviceStats()
        self.link = PrinterLink(
            spec.url,
            timeout=self._option("timeout_s"),
            baudrate=int(spec.options.get("baudrate", 9600)),
        )
        self.last_status: PrinterStatus | None = None
        self._garbled_logged = False

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        for name, value in options.items():
            if name == "baudrate":
                if value not in BAUDRATES or isinstance(value, bool):
                    raise DeviceConfigError(f"option 'baudrate' must be a baud rate, got {value!r}")
            elif name in _SECONDS:
                _, low, high = _SECONDS[name]
                number = isinstance(value, int | float) and not isinstance(value, bool)
                if not number or not low <= value <= high:
                    raise DeviceConfigError(
                        f"option {name!r} must be seconds within {low:g}–{high:g}, got {value!r}"
                    )
            else:
                known = ", ".join(sorted([*_SECONDS, "baudrate"]))
                raise DeviceConfigError(f"unknown option {name!r} (known: {known})")

    def _option(self, name: str) -> float:
        return float(self.spec.options.get(name, _SECONDS[name][0]))

    async def print_job(self, job: bytes) -> PrinterStatus:
        """Check, send and check again (:meth:`PrinterLink.print_job`)."""
        return await self.link.print_job(job)

    async def run(self, emit: Emit) -> None:
        poll = self._option("poll_s")
        reported: str | None = None  # the detail of the last status event
        self._garbled_logged = False
        try:
            while True:
                status = await self._poll()
                if not self.stats.connected:
                    self.stats.connected = True
                    await self._emit(emit, DeviceState.CONNECTED, self.link.url)
                if status is not None:
                    self.last_status = status
                    detail = ", ".join(status.problems) or "ready"
                    if detail != reported:
                        if reported is not None or detail != "ready":
                            level = logging.INFO if detail == "ready" else logging.WARNING
                            log.log(level, "printer %s: %s", self.spec.id, detail)
                        reported = detail
                        await self._emit(emit, DeviceState.STATUS, detail)
                await asyncio.sleep(poll)
        except Exception as exc:
            self.stats.last_error = str(exc)
            raise
        finally:
            self.stats.connected = False

    async def _poll(self) -> PrinterStatus | None:
        """One ``~HS``; ``None`` for a garbled answer (counted, logged once)."""
        try:
            status = await self.link.status()
        except FrameError as exc:
            self.stats.seen()  # it answered, garbled
            self.stats.bad_frames += 1
            self.stats.last_error = str(exc)
            if not self._garbled_logged:
                self._garbled_logged = True
                log.warning("printer %s: garbled ~HS answer: %s", self.spec.id, exc)
            return None
        self.stats.seen()
        self.stats.frames += 1
        return status

    async def _emit(self, emit: Emit, state: DeviceState, detail: str) -> None:
        await emit(DeviceStateEvent(self.spec.id, state, detail, time.time()))
        self.stats.events += 1
