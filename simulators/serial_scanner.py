"""A barcode scanner on a real pty, speaking the serial line format byte for byte.

Promises: :class:`ScannerSimulator` owns a pseudo-terminal (it holds the master
and keeps one slave fd open so the line never hangs up between clients) and
publishes the slave's path — optionally through a stable symlink, like
``/dev/serial/by-id`` — for a driver to open with pyserial. ``send`` writes
``[prefix][AIM id]code[suffix]`` through the :class:`Faults` chosen: one byte
at a time, random splits, several frames glued in one write, junk between
frames, bit flips, truncated frames. ``disconnect()`` closes the pty (the
driver sees EOF/EIO) and opens a new one behind the same symlink.

:class:`Pty`, :class:`Faults` and :class:`PtySimulator` are shared with
``simulators.serial_rfid``.
Used by tests, ``bench/ingest_serial.py`` and ``pickedge sim scanner``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import tempfile
import tty
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from devices.framing.lines import Suffix, encode_line

FAULT_NAMES = ("one-byte", "split", "glue", "junk", "bitflip", "truncate", "disconnect")

# Codes a demo scanner cycles through: GS1 examples (demo prefix 952, GS1
# General Specifications, EPC TDS SSCC), a location label and a SKU.
DEMO_CODES: tuple[tuple[str, str | None], ...] = (
    ("0109521234543213" + "10ABC123\x1d" + "17261231", "]C1"),
    ("00106141412345678908", "]C1"),
    ("9521234543213", "]E0"),
    ("0109501101530003" + "17140704" + "10AB-123", "]d2"),
    ("A-01-02", "]C0"),
    ("SKU-4711", "]C0"),
)


@dataclass(frozen=True, slots=True)
class Faults:
    """What goes wrong on the wire. Rates are per frame, 0.0–1.0."""

    one_byte: bool = False  # every byte in its own write
    split: bool = False  # frames cut at random points into several writes
    glue: bool = False  # several frames in one write
    junk: float = 0.0  # random bytes before a frame
    bitflip: float = 0.0  # one bit of the frame flipped
    truncate: float = 0.0  # the frame's tail is lost
    disconnect_every: int = 0  # CLI only: reopen the pty every N frames (0: never)
    seed: int | None = None

    @classmethod
    def from_names(
        cls, names: Iterable[str], *, rate: float = 0.05, seed: int | None = None
    ) -> Faults:
        """``["junk", "split"]`` → Faults; unknown names raise ``ValueError``."""
        chosen = set(names)
        unknown = chosen - set(FAULT_NAMES)
        if unknown:
            raise ValueError(f"unknown fault {sorted(unknown)} (known: {', '.join(FAULT_NAMES)})")
        return cls(
            one_byte="one-byte" in chosen,
            split="split" in chosen,
            glue="glue" in chosen,
            junk=rate if "junk" in chosen else 0.0,
            bitflip=rate if "bitflip" in chosen else 0.0,
            truncate=rate if "truncate" in chosen else 0.0,
            disconnect_every=200 if "disconnect" in chosen else 0,
            seed=seed,
        )


class FaultInjector:
    """Turns frames into writes according to :class:`Faults`; remembers what it broke."""

    def __init__(self, faults: Faults, *, junk_alphabet: bytes | None = None) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.junk_alphabet = junk_alphabet
        self.damaged = 0  # frames bit-flipped or truncated
        self.junk_bytes = 0

    def frame(self, data: bytes) -> bytes:
        f = self.faults
        rng = self.rng
        out = bytearray(data)
        if f.truncate and len(out) > 1 and rng.random() < f.truncate:
            del out[rng.randrange(1, len(out)) :]
            self.damaged += 1
        elif f.bitflip and out and rng.random() < f.bitflip:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
            self.damaged += 1
        if f.junk and rng.random() < f.junk:
            n = rng.randint(1, 8)
            if self.junk_alphabet:
                junk = bytes(rng.choice(self.junk_alphabet) for _ in range(n))
            else:
                junk = bytes(rng.randrange(256) for _ in range(n))
            self.junk_bytes += len(junk)
            out[0:0] = junk
        return bytes(out)

    def writes(self, frames: list[bytes]) -> list[bytes]:
        """The chunks to write for ``frames`` (each already through ``frame``)."""
        f = self.faults
        rng = self.rng
        if f.glue and len(frames) > 1:
            glued: list[bytes] = []
            i = 0
            while i < len(frames):
                k = rng.randint(1, 4)
                glued.append(b"".join(frames[i : i + k]))
                i += k
            frames = glued
        if f.one_byte:
            return [bytes([b]) for chunk in frames for b in chunk]
        if f.split:
            out: list[bytes] = []
            for chunk in frames:
                rest = chunk
                while len(rest) > 1 and rng.random() < 0.7:
                    cut = rng.randrange(1, len(rest))
                    out.append(rest[:cut])
                    rest = rest[cut:]
                out.append(rest)
            return out
        return frames


class Pty:
    """A pseudo-terminal whose master this process holds.

    ``path`` is what a client opens: the symlink when ``link`` is given, else the
    slave device. ``reopen()`` replaces the pty (the client sees a hang-up).
    """

    def __init__(self, *, link: str | os.PathLike[str] | None = None) -> None:
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if link is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="pickedge-pty-")
            link = Path(self._tmpdir.name) / "tty"
        self.link = Path(link)
        self.master = -1
        self._slave = -1
        self.slave_path = ""
        self.generation = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_data: Callable[[bytes], None] | None = None
        self._open()

    @property
    def path(self) -> str:
        return str(self.link)

    def _open(self) -> None:
        master, slave = os.openpty()
        # Raw before any client opens it: no echo, no CR/NL translation.
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self.master, self._slave = master, slave
        self.slave_path = os.ttyname(slave)
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self.slave_path)
        tmp.replace(self.link)  # atomic: a client never sees no link
        self.generation += 1

    def start_reading(self, on_data: Callable[[bytes], None]) -> None:
        """Call ``on_data`` with what the client writes (commands)."""
        self._loop = asyncio.get_running_loop()
        self._on_data = on_data
        self._loop.add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # no client on the slave side right now; we keep our own open
        if data and self._on_data is not None:
            self._on_data(data)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                await asyncio.sleep(0.001)  # client not reading: the pty buffer is full
                continue
            view = view[n:]

    def write_now(self, data: bytes) -> int:
        """Non-blocking write; returns bytes written (0 when the buffer is full)."""
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0

    def _close_fds(self) -> None:
        if self._loop is not None and self._on_data is not None and self.master >= 0:
            self._loop.remove_reader(self.master)
        for fd in (self.master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self._slave = -1

    def reopen(self) -> None:
        """Hang up on the client and offer a new pty behind the same path."""
        self._close_fds()
        self._open()
        if self._loop is not None and self._on_data is not None:
            self._loop.add_reader(self.master, self._readable)

    def close(self) -> None:
        self._close_fds()
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


class PtySimulator:
    """A device on a pty with a fault injector; an async context manager.

    Subclasses add what the device says; ``path`` is what a driver opens.
    """

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        link: str | os.PathLike[str] | None = None,
        junk_alphabet: bytes | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self.injector = FaultInjector(self.faults, junk_alphabet=junk_alphabet)
        self._link = link
        self._pty: Pty | None = None

    @property
    def pty(self) -> Pty:
        if self._pty is None:
            raise RuntimeError("simulator not started")
        return self._pty

    @property
    def path(self) -> str:
        return self.pty.path

    async def start(self) -> None:
        self._pty = Pty(link=self._link)

    async def stop(self) -> None:
        if self._pty is not None:
            self._pty.close()
            self._pty = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def disconnect(self) -> None:
        """Close the pty (the driver sees a hang-up) and open a new one at ``path``."""
        self.pty.reopen()


class ScannerSimulator(PtySimulator):
    """A serial barcode scanner on a pty; an async context manager.

    >>> async with ScannerSimulator(suffix="crlf") as sim:
    ...     driver_url = sim.path
    ...     await sim.send("0109521234543213", "]C1")
    """

    def __init__(
        self,
        *,
        suffix: Suffix = "crlf",
        prefix: bytes = b"",
        faults: Faults | None = None,
        link: str | os.PathLike[str] | None = None,
        byte_gap: float = 0.0,
    ) -> None:
        # Line noise a real RS-232 line produces (NUL, 0xFF), not printable text:
        # printable junk on a CR/LF line is indistinguishable from a scan.
        alphabet = None if suffix == "stx-etx" else bytes([0x00, 0x11, 0x13, 0x7F, 0xFF])
        super().__init__(faults=faults, link=link, junk_alphabet=alphabet)
        self.suffix: Suffix = suffix
        self.prefix = prefix
        self.byte_gap = byte_gap
        self.sent = 0

    def encode(self, code: str, symbology: str | None = None) -> bytes:
        return encode_line(code, symbology=symbology, suffix=self.suffix, prefix=self.prefix)

    async def send(self, code: str, symbology: str | None = None) -> None:
        await self.send_many([(code, symbology)])

    async def send_many(self, scans: Iterable[tuple[str, str | None]]) -> None:
        frames = [self.injector.frame(self.encode(c, s)) for c, s in scans]
        await self.send_raw_chunks(self.injector.writes(frames))
        self.sent += len(frames)

    async def send_raw_chunks(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            await self.pty.write(chunk)
            if self.byte_gap:
                await asyncio.sleep(self.byte_gap)
            elif self.faults.one_byte or self.faults.split:
                await asyncio.sleep(0)  # let the reader see the pieces apart

    async def send_raw(self, data: bytes) -> None:
        await self.pty.write(data)
