"""Driver for UHF RFID readers speaking the R2000-style "A0" serial protocol.

Promises: while connected, sends the real-time inventory command (0x89) —
again when a round ends (summary or error frame) and no sooner than
``inventory_interval_ms`` after the last one, or after ``response_timeout_ms``
without an answer — and emits one :class:`~devices.events.TagReadEvent` per
tag record (antenna made 1-based, RSSI ≈ raw − 129 dBm). A reader error frame
becomes a :class:`~devices.events.DeviceStateEvent` (``antenna_disconnected``
for a missing antenna, ``status`` otherwise) when the reader's condition
changes — not once per round — and one more (``antenna_connected`` /
``status``) when a round completes again; each change is logged once. Frames
with a bad check, records whose PC disagrees with their length, and junk are
counted in ``stats`` and logged once. Never smooths reads
(``devices.smoothing`` does), never reconnects, never switches antennas (the
reader's configured work antenna is used).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import ClassVar

from devices.driver import Emit
from devices.drivers.serial_scanner import BAUDRATES, Option, SerialDriverBase
from devices.errors import FrameError
from devices.events import DeviceState, TagReadEvent
from devices.framing import a0
from devices.transport.serial import SerialTransport

log = logging.getLogger(__name__)

_ANTENNA_ERRORS = frozenset({0x22, 0x4B})


class A0ReaderDriver(SerialDriverBase):
    """R2000 "A0" reader: inventory commands out, ``TagReadEvent`` in."""

    OPTIONS: ClassVar[dict[str, Option]] = {
        "baudrate": Option(int, 115200, choices=tuple(sorted(BAUDRATES))),
        "address": Option(int, 1, minimum=0, maximum=255),  # 0xFF = broadcast
        "repeat": Option(int, 1, minimum=1, maximum=255),  # rounds per command
        "inventory_interval_ms": Option(int, 50, minimum=0, maximum=60_000),
        "response_timeout_ms": Option(int, 2000, minimum=50, maximum=60_000),
        "idle_timeout_ms": Option(int, 100, minimum=10, maximum=5000),
    }

    async def session(self, transport: SerialTransport, emit: Emit) -> None:
        command = a0.encode_inventory_command(
            int(self.option("address")), int(self.option("repeat"))
        )
        interval = int(self.option("inventory_interval_ms")) / 1000.0
        answer_within = int(self.option("response_timeout_ms")) / 1000.0
        round_done = asyncio.Event()

        async def handle(frame: a0.A0Frame, now: float) -> None:
            await self._handle(frame, now, emit, round_done)

        pump = self._pump(transport, command, interval, answer_within, round_done)
        await self.command_loop(transport, a0.A0Framer(), pump, handle)

    async def _pump(
        self,
        transport: SerialTransport,
        command: bytes,
        interval: float,
        answer_within: float,
        round_done: asyncio.Event,
    ) -> None:
        """Send the inventory command, then again after each round (or its timeout)."""
        while True:
            round_done.clear()
            await transport.write(command)
            sent = time.monotonic()
            try:
                async with asyncio.timeout(answer_within):
                    await round_done.wait()
            except TimeoutError:
                self.once(
                    "timeout",
                    "device %s: no answer to inventory within %.0f ms; resending",
                    self.spec.id,
                    answer_within * 1000,
                )
            wait = interval - (time.monotonic() - sent)
            if wait > 0:
                await asyncio.sleep(wait)

    async def _handle(
        self, frame: a0.A0Frame, now: float, emit: Emit, round_done: asyncio.Event
    ) -> None:
        try:
            record = a0.parse_record(frame)
        except FrameError as exc:
            self.bad_record(exc)
            return
        self.stats.last_seen = now
        if isinstance(record, a0.A0TagRead):
            await emit(
                TagReadEvent(
                    device_id=self.spec.id,
                    epc_hex=record.epc.hex().upper(),
                    antenna=record.antenna + 1,
                    rssi_dbm=record.rssi_dbm,
                    reader_time=None,
                    received_at=now,
                )
            )
            self.stats.events += 1
        elif isinstance(record, a0.A0Summary):
            log.debug(
                "device %s: round done, %d reads/s, %d reads",
                self.spec.id,
                record.read_rate,
                record.total_reads,
            )
            round_done.set()
            await self.report_condition(emit, now, None)
        elif isinstance(record, a0.A0Error):
            round_done.set()
            state = (
                DeviceState.ANTENNA_DISCONNECTED
                if record.error_code in _ANTENNA_ERRORS
                else DeviceState.STATUS
            )
            detail = (
                f"reader error 0x{record.error_code:02X} ({record.name}) on cmd 0x{record.cmd:02X}"
            )
            await self.report_condition(emit, now, (state, detail))
