"""Framer for barcode scanners that send ``[prefix][AIM id]data[suffix]`` lines.

Promises: ``feed`` returns one :class:`LineFrame` per complete line; CR, LF and
CRLF all end a line (so ``suffix`` "cr", "lf" and "crlf" accept each other —
scanners get reconfigured), empty lines are ignored; in "stx-etx" mode only
bytes between STX and ETX count and anything outside is dropped as junk; in
"none" mode frames end only by the idle timeout. ``flush_idle()`` — called by the
transport after ~50–100 ms of silence — returns the pending partial line as a
frame marked ``by_timeout``, the fallback for scanners whose suffix is lost or
not configured.

Line noise is dropped and counted wherever it appears: control bytes other than
GS (0x1D, the GS1 separator) and the framing bytes, plus DEL and 0xFF (what a
break or a framing error on RS-232 reads as). A line longer than ``max_frame``
is dropped whole (counted) and the framer resynchronises at the next line end.
Never decodes text, never raises on input.

What framing cannot see: a truncated CR/LF line is indistinguishable from a
shorter code (GS1 check digits catch most of those in ``devices.codes``); in
"stx-etx" mode a truncated frame is detected when the next STX arrives first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from devices.framing.base import FramerStats

STX = 0x02
ETX = 0x03
CR = 0x0D
LF = 0x0A
GS = 0x1D

Suffix = Literal["cr", "lf", "crlf", "stx-etx", "none"]
SUFFIXES: tuple[str, ...] = ("cr", "lf", "crlf", "stx-etx", "none")
_SUFFIX_BYTES = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n", "none": b""}

_AIM_RE = re.compile(rb"\][A-Za-z][0-9A-Za-z]")
# One search for the next byte of either kind keeps a feed linear: finding CR
# and LF (or STX and ETX) separately rescans the rest of the chunk after every
# line, quadratic in a burst of empty lines or false STX bytes.
_LINE_END = re.compile(rb"[\r\n]")
_STX_OR_ETX = re.compile(rb"[\x02\x03]")
# Bytes that never belong to a scan: C0 controls except GS, DEL, 0xFF. The line
# ends and STX/ETX are handled before this table is consulted.
_NOISE = bytes(b for b in range(256) if (b < 0x20 and b != GS) or b in (0x7F, 0xFF))


@dataclass(frozen=True, slots=True)
class LineFrame:
    """One scanned line with prefix and suffix removed and the AIM id split off."""

    payload: bytes
    symbology: str | None = None
    by_timeout: bool = False

    def text(self) -> str:
        """The payload as text: UTF-8 where valid, otherwise Latin-1 (never fails)."""
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError:
            return self.payload.decode("latin-1")


class LineFramer:
    """Pure line framer; see the module docstring for what it promises."""

    def __init__(
        self,
        *,
        suffix: Suffix = "crlf",
        prefix: bytes = b"",
        aim: bool = True,
        max_frame: int = 4096,
    ) -> None:
        if suffix not in SUFFIXES:
            raise ValueError(f"suffix must be one of {', '.join(SUFFIXES)}, not {suffix!r}")
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.suffix: Suffix = suffix
        self.prefix = prefix
        self.aim = aim
        self.max_frame = max_frame
        self.stats = FramerStats()
        self._buf = bytearray()
        self._in_frame = suffix != "stx-etx"  # stx-etx: outside a frame until STX
        self._discarding = False  # an over-long line is being skipped to its end

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete line."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[LineFrame]:
        if self.suffix == "stx-etx":
            return self._feed_stx(data)
        frames: list[LineFrame] = []
        ends = None if self.suffix == "none" else _LINE_END
        start = 0
        n = len(data)
        while start < n:
            found = ends.search(data, start) if ends is not None else None
            end = -1 if found is None else found.start()
            chunk = data[start:] if end < 0 else data[start:end]
            self._append(chunk)
            if end < 0:
                break
            frame = self._complete(by_timeout=False)
            if frame is not None:
                frames.append(frame)
            start = end + 1
        return frames

    def flush_idle(self) -> LineFrame | None:
        """The pending partial line as a frame, after the line has been idle."""
        if self._discarding:
            self._discarding = False
            self._buf.clear()
            return None
        if self.suffix == "stx-etx" and not self._in_frame:
            return None
        frame = self._complete(by_timeout=True)
        if self.suffix == "stx-etx":
            self._in_frame = False
        return frame

    # -- internals -------------------------------------------------------------

    def _feed_stx(self, data: bytes) -> list[LineFrame]:
        frames: list[LineFrame] = []
        i = 0
        n = len(data)
        while i < n:
            if not self._in_frame:
                stx = data.find(STX, i)
                if stx < 0:
                    self.stats.dropped_bytes += n - i
                    break
                self.stats.dropped_bytes += stx - i
                self._in_frame = True
                self._discarding = False
                i = stx + 1
                continue
            # Inside a frame: up to ETX, or a new STX that means the last one was cut.
            found = _STX_OR_ETX.search(data, i)
            if found is None:
                self._append(data[i:])
                break
            at = found.start()
            if data[at] == STX:
                self._append(data[i:at])
                self._drop_partial()
                i = at + 1
                continue
            etx = at
            self._append(data[i:etx])
            frame = self._complete(by_timeout=False)
            if frame is not None:
                frames.append(frame)
            self._in_frame = False
            i = etx + 1
        return frames

    def _append(self, chunk: bytes) -> None:
        if not chunk:
            return
        clean = chunk.translate(None, _NOISE)
        self.stats.dropped_bytes += len(chunk) - len(clean)
        if self._discarding:
            self.stats.dropped_bytes += len(clean)
            return
        self._buf += clean
        if len(self._buf) > self.max_frame:
            # Over-long: drop what we have and skip to the line end (resync).
            self.stats.dropped_bytes += len(self._buf)
            self.stats.bad_frames += 1
            self.stats.overflows += 1
            self._buf.clear()
            self._discarding = True

    def _drop_partial(self) -> None:
        if self._buf or self._discarding:
            self.stats.bad_frames += 1
            self.stats.dropped_bytes += len(self._buf)
        self._buf.clear()
        self._discarding = False

    def _complete(self, *, by_timeout: bool) -> LineFrame | None:
        if self._discarding:
            self._discarding = False
            self._buf.clear()
            return None
        raw = bytes(self._buf)
        self._buf.clear()
        if self.prefix and raw.startswith(self.prefix):
            raw = raw[len(self.prefix) :]
        if not raw:
            return None  # empty line: the LF of a CRLF, or a bare suffix
        symbology: str | None = None
        if self.aim and _AIM_RE.match(raw):
            symbology = raw[:3].decode("ascii")
            raw = raw[3:]
            if not raw:
                self.stats.bad_frames += 1
                return None
        self.stats.frames += 1
        return LineFrame(raw, symbology, by_timeout)


def encode_line(
    code: str | bytes,
    *,
    symbology: str | None = None,
    suffix: Suffix = "crlf",
    prefix: bytes = b"",
) -> bytes:
    """The bytes a scanner configured this way sends for ``code``."""
    body = code.encode("utf-8") if isinstance(code, str) else code
    aim = symbology.encode("ascii") if symbology else b""
    if suffix == "stx-etx":
        return bytes([STX]) + prefix + aim + body + bytes([ETX])
    return prefix + aim + body + _SUFFIX_BYTES[suffix]
