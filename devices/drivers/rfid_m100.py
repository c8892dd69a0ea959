"""Driver for UHF RFID modules speaking the MagicRF M100 ``BB…7E`` protocol.

Promises: while connected, keeps the module polling — ``mode = "multi"`` starts
a multi-poll (0x27) and starts it again when the module has been silent for
``repoll_after_ms`` (polling sends frames continuously, even "no tag" errors,
so silence means it stopped); ``mode = "single"`` sends a single inventory
(0x22) every ``inventory_interval_ms``. Each tag notification whose CRC-16
matches its PC + EPC becomes a :class:`~devices.events.TagReadEvent`
(antenna 1, signed RSSI in dBm). The "no tag" error 0x15, sent continuously
while the field is empty, is counted in ``no_tag_errors`` and otherwise
ignored; other errors become a ``status`` DeviceStateEvent when the module's
condition changes (and one more when reads or "no tag" answers resume), each
change logged once. On the way out it sends stop (0x28), best effort.
Never smooths, never reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import ClassVar

from devices.driver import DeviceSpec, Emit, MqttSettings
from devices.drivers.serial_scanner import BAUDRATES, Option, SerialDriverBase
from devices.errors import DeviceDisconnectedError, FrameError
from devices.events import DeviceState, TagReadEvent
from devices.framing import m100
from devices.transport.serial import SerialTransport

log = logging.getLogger(__name__)


class M100ReaderDriver(SerialDriverBase):
    """M100 module: polling commands out, ``TagReadEvent`` in."""

    OPTIONS: ClassVar[dict[str, Option]] = {
        "baudrate": Option(int, 115200, choices=tuple(sorted(BAUDRATES))),
        "mode": Option(str, "multi", choices=("multi", "single")),
        "poll_count": Option(int, 10000, minimum=1, maximum=65535),
        "repoll_after_ms": Option(int, 1000, minimum=50, maximum=60_000),
        "inventory_interval_ms": Option(int, 100, minimum=10, maximum=60_000),
        "idle_timeout_ms": Option(int, 100, minimum=10, maximum=5000),
        "check_crc": Option(bool, True),
    }

    def __init__(self, spec: DeviceSpec, *, mqtt: MqttSettings | None = None) -> None:
        super().__init__(spec, mqtt=mqtt)
        self.no_tag_errors = 0

    async def session(self, transport: SerialTransport, emit: Emit) -> None:
        activity = asyncio.Event()

        async def handle(frame: m100.M100Frame, now: float) -> None:
            activity.set()
            await self._handle(frame, now, emit)

        try:
            await self.command_loop(
                transport, m100.M100Framer(), self._pump(transport, activity), handle
            )
        finally:
            with contextlib.suppress(DeviceDisconnectedError):
                await transport.write(m100.encode_stop())

    async def _pump(self, transport: SerialTransport, activity: asyncio.Event) -> None:
        if self.option("mode") == "single":
            interval = int(self.option("inventory_interval_ms")) / 1000.0
            command = m100.encode_single_inventory()
            while True:
                await transport.write(command)
                await asyncio.sleep(interval)
        command = m100.encode_multi_poll(int(self.option("poll_count")))
        quiet = int(self.option("repoll_after_ms")) / 1000.0
        while True:
            await transport.write(command)
            # Re-arm while frames keep coming; silence means polling stopped.
            while True:
                activity.clear()
                try:
                    async with asyncio.timeout(quiet):
                        await activity.wait()
                except TimeoutError:
                    break

    async def _handle(self, frame: m100.M100Frame, now: float, emit: Emit) -> None:
        try:
            record = m100.parse_record(frame)
        except FrameError as exc:
            self.bad_record(exc)
            return
        self.stats.last_seen = now
        if isinstance(record, m100.M100TagRead):
            if (
                self.option("check_crc")
                and m100.crc16_epc(record.pc.to_bytes(2, "big") + record.epc) != record.crc
            ):
                self.stats.bad_frames += 1
                self.once("crc", "device %s: tag read with a bad CRC-16 dropped", self.spec.id)
                return
            await self.report_condition(emit, now, None)
            await emit(
                TagReadEvent(
                    device_id=self.spec.id,
                    epc_hex=record.epc.hex().upper(),
                    antenna=1,
                    rssi_dbm=float(record.rssi_dbm),
                    reader_time=None,
                    received_at=now,
                )
            )
            self.stats.events += 1
        elif isinstance(record, m100.M100Error):
            if record.no_tag:
                # An empty field, reported continuously while polling: a working module.
                self.no_tag_errors += 1
                await self.report_condition(emit, now, None)
                return
            detail = f"module error 0x{record.error_code:02X}"
            await self.report_condition(emit, now, (DeviceState.STATUS, detail))
