"""What every framer shares: counters, the buffer cap, and the header-byte framer
base of the binary RFID protocols.

A framer is pure: ``feed(data)`` takes whatever bytes arrived (any split, any
glue) and returns the complete frames found so far, keeping the incomplete tail.
It never does I/O, never blocks and never raises on bad input — junk is dropped
and counted, frames with a bad check are dropped and counted, and the buffer
never grows past its cap (the pymodbus framer contract, STYLE.md).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Generic, TypeVar

DEFAULT_MAX_BUFFER = 8192

F = TypeVar("F")


@dataclass(slots=True)
class FramerStats:
    """Counters a driver copies into its DeviceStats."""

    frames: int = 0  # good frames returned
    bad_frames: int = 0  # frames dropped for a bad check, length or structure
    dropped_bytes: int = 0  # bytes skipped while resynchronising or over the cap
    overflows: int = 0  # times the buffer hit its cap and was cut


# What ``HeaderFramer._frame_at`` says about the bytes at a header.
NEED_MORE = 0  # not enough bytes yet to decide
JUNK = -1  # impossible header fields: skip the header byte, count it as junk
BAD = -2  # complete but failing its check: count a bad frame, skip the header byte


class HeaderFramer(Generic[F], abc.ABC):
    """Framer for binary protocols that start every frame with one header byte.

    Subclasses set ``HEADER`` and implement ``_frame_at``; this class does the
    resync (junk up to the next header), the one-byte step after a bad frame (a
    false header inside junk must not hide the real frames behind it), the
    buffer cap and ``flush_idle``.
    """

    HEADER: int

    def __init__(self, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.max_buffer = max_buffer
        self.stats = FramerStats()
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buf)

    @abc.abstractmethod
    def _frame_at(self, buf: bytearray, pos: int) -> tuple[int, F | None]:
        """At ``buf[pos] == HEADER``: ``(end, frame)`` for a good frame ending
        before ``end``, else ``(NEED_MORE | JUNK | BAD, None)``."""

    def feed(self, data: bytes) -> list[F]:
        buf = self._buf
        buf += data
        frames: list[F] = []
        stats = self.stats
        header = self.HEADER
        pos = 0
        n = len(buf)
        while pos < n:
            if buf[pos] != header:
                nxt = buf.find(header, pos)
                skip_to = n if nxt < 0 else nxt
                stats.dropped_bytes += skip_to - pos
                pos = skip_to
                continue
            end, frame = self._frame_at(buf, pos)
            if frame is not None:
                frames.append(frame)
                stats.frames += 1
                pos = end
            elif end == NEED_MORE:
                break
            else:
                if end == BAD:
                    stats.bad_frames += 1
                stats.dropped_bytes += 1
                pos += 1
        del buf[:pos]
        if len(buf) > self.max_buffer:
            # Only reachable with a cap below the longest frame; keep the newest bytes.
            cut = len(buf) - self.max_buffer
            stats.dropped_bytes += cut
            stats.overflows += 1
            del buf[:cut]
        return frames

    def flush_idle(self) -> list[F]:
        """After the line has been quiet: give up on a stalled partial frame.

        A junk header with a large length would otherwise hold the good frames
        behind it until enough bytes arrive; the header byte is dropped (counted
        as a bad frame) and the rest framed again, until nothing is left.
        """
        frames: list[F] = []
        while self._buf:  # each pass drops at least one byte
            self.stats.bad_frames += 1
            self.stats.dropped_bytes += 1
            rest = bytes(self._buf[1:])
            self._buf.clear()
            frames += self.feed(rest)
        return frames
