"""Serial UHF RFID readers on real ptys: the "A0" (R2000) and M100 protocols.

Promises: each simulator holds a pty (see ``simulators.serial_scanner.Pty``),
frames what the driver writes with the real framers, and answers the
inventory commands byte for byte as the modules do, for the tag population in
``tags`` (change it at any time):

- :class:`A0ReaderSimulator`: on ``cmd_real_time_inventory`` (0x89) one tag
  record per tag and repeat, then the 0x0A-length summary; ``error_code`` makes
  it answer ``A0 04 Addr 89 <code> Check`` instead (e.g. 0x22 antenna missing).
- :class:`M100ReaderSimulator`: single inventory (0x22) answers one
  notification per tag or error 0x15 when the field is empty; multi-poll (0x27)
  starts rounds every ``round_interval`` seconds until the count is used or
  stop (0x28) arrives, each round a notification per tag or 0x15;
  ``error_code`` makes every round that error instead.

Every answer goes through the same :class:`Faults` as the scanner simulator.
``commands`` counts commands received and ``wait_commands(n)`` awaits them;
``frames_sent`` / ``wait_sent(n)`` do the same for answers.
Never decides anything from time alone except the M100 polling rhythm.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from devices.framing import a0, m100
from simulators.serial_scanner import Faults, PtySimulator


@dataclass(frozen=True, slots=True)
class Tag:
    epc: bytes
    antenna: int = 0  # 0-based, as on the wire of the A0 protocol
    rssi_dbm: int = -55

    @classmethod
    def from_hex(cls, epc_hex: str, antenna: int = 0, rssi_dbm: int = -55) -> Tag:
        return cls(bytes.fromhex(epc_hex), antenna, rssi_dbm)


def sgtin_population(n: int, *, start: int = 1) -> list[Tag]:
    """``n`` SGTIN-96 tags of the TDS example item (0614141.812345), serials from ``start``."""
    # 3074257BF7194E4 + 38-bit serial: the TDS example with varying serial numbers.
    base = int("3074257BF7194E4000000000", 16) & ~((1 << 38) - 1)
    return [
        Tag((base | (start + i)).to_bytes(12, "big"), antenna=i % 4, rssi_dbm=-40 - i % 30)
        for i in range(n)
    ]


class _ReaderSimulator(PtySimulator, abc.ABC):
    """What both reader simulators share: answering commands, counting them."""

    def __init__(
        self,
        *,
        tags: Sequence[Tag] = (),
        faults: Faults | None = None,
        link: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(faults=faults, link=link)
        self.tags: list[Tag] = list(tags)
        self.commands = 0
        self.frames_sent = 0
        self._command_seen = asyncio.Condition()
        self._sent_changed = asyncio.Condition()
        self._write_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await super().start()
        self.pty.start_reading(self._on_data)

    async def stop(self) -> None:
        await self._stop_tasks()
        await super().stop()

    async def _stop_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @abc.abstractmethod
    def _on_data(self, data: bytes) -> None:
        """Frame and answer what the driver wrote."""

    def _counted(self) -> None:
        self.commands += 1
        self._spawn(self._notify())

    async def _notify(self) -> None:
        async with self._command_seen:
            self._command_seen.notify_all()

    async def wait_commands(self, n: int) -> None:
        """Wait until at least ``n`` commands have arrived in total."""
        async with self._command_seen:
            await self._command_seen.wait_for(lambda: self.commands >= n)

    async def send_frames(self, frames: list[bytes]) -> None:
        damaged = [self.injector.frame(f) for f in frames]
        # One answer at a time: split writes of two answers must not interleave.
        async with self._write_lock:
            for chunk in self.injector.writes(damaged):
                await self.pty.write(chunk)
                if self.faults.one_byte or self.faults.split:
                    await asyncio.sleep(0)
            self.frames_sent += len(frames)
        async with self._sent_changed:
            self._sent_changed.notify_all()

    async def wait_sent(self, n: int) -> None:
        """Wait until at least ``n`` frames have been written in total."""
        async with self._sent_changed:
            await self._sent_changed.wait_for(lambda: self.frames_sent >= n)

    async def disconnect(self) -> None:
        """Hang up and offer a new pty behind the same path; polling stops."""
        await self._stop_tasks()
        await super().disconnect()


class A0ReaderSimulator(_ReaderSimulator):
    """An R2000 "A0" reader; see the module docstring."""

    def __init__(
        self,
        *,
        tags: Sequence[Tag] = (),
        faults: Faults | None = None,
        link: str | os.PathLike[str] | None = None,
        address: int = 1,
        error_code: int | None = None,
    ) -> None:
        super().__init__(tags=tags, faults=faults, link=link)
        self.address = address
        self.error_code = error_code
        self.framer = a0.A0Framer()
        self.total_reads = 0

    def _on_data(self, data: bytes) -> None:
        for frame in self.framer.feed(data):
            if frame.cmd == a0.CMD_REAL_TIME_INVENTORY:
                self._counted()
                repeat = frame.data[0] if frame.data else 1
                self._spawn(self.send_frames(self.round(repeat)))

    def round(self, repeat: int = 1) -> list[bytes]:
        """The frames one inventory command is answered with."""
        addr = self.address
        if self.error_code is not None:
            return [a0.encode_error(addr, a0.CMD_REAL_TIME_INVENTORY, self.error_code)]
        frames = [
            a0.encode_tag_record(
                addr,
                t.epc,
                antenna=t.antenna,
                rssi_raw=max(0, min(255, t.rssi_dbm + a0.RSSI_OFFSET)),
            )
            for _ in range(max(1, repeat))
            for t in self.tags
        ]
        self.total_reads += len(frames)
        frames.append(
            a0.encode_summary(
                addr, antenna=0, read_rate=len(frames) * 10, total_reads=self.total_reads
            )
        )
        return frames


class M100ReaderSimulator(_ReaderSimulator):
    """A MagicRF M100 module; see the module docstring."""

    def __init__(
        self,
        *,
        tags: Sequence[Tag] = (),
        faults: Faults | None = None,
        link: str | os.PathLike[str] | None = None,
        round_interval: float = 0.02,
        error_code: int | None = None,
    ) -> None:
        super().__init__(tags=tags, faults=faults, link=link)
        self.round_interval = round_interval
        self.error_code = error_code
        self.framer = m100.M100Framer()
        self._poll_generation = 0
        self.rounds = 0

    def _on_data(self, data: bytes) -> None:
        for frame in self.framer.feed(data):
            if frame.type != m100.TYPE_COMMAND:
                continue
            self._counted()
            if frame.cmd == m100.CMD_SINGLE_INVENTORY:
                self._spawn(self.send_frames(self.round()))
            elif frame.cmd == m100.CMD_MULTI_POLL and len(frame.params) == 3:
                count = int.from_bytes(frame.params[1:3], "big")
                self._stop_polls()
                self._spawn(self._poll(count))
            elif frame.cmd == m100.CMD_STOP:
                self._stop_polls()
                self._spawn(
                    self.send_frames(
                        [m100.encode_frame(m100.TYPE_RESPONSE, m100.CMD_STOP, b"\x00")]
                    )
                )

    @property
    def polling(self) -> bool:
        return self._poll_generation % 2 == 1

    def _stop_polls(self) -> None:
        if self.polling:
            self._poll_generation += 1

    def round(self) -> list[bytes]:
        self.rounds += 1
        if self.error_code is not None:
            return [m100.encode_error(self.error_code)]
        if not self.tags:
            return [m100.encode_error(m100.ERROR_NO_TAG)]
        return [m100.encode_tag_notification(t.epc, rssi_dbm=t.rssi_dbm) for t in self.tags]

    async def _poll(self, count: int) -> None:
        self._poll_generation += 1  # odd: polling
        mine = self._poll_generation
        for _ in range(count):
            if self._poll_generation != mine:
                return  # stopped, or a newer multi-poll took over
            await self.send_frames(self.round())
            await asyncio.sleep(self.round_interval)
        self._stop_polls()
