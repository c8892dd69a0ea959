"""What every framer shares: counters and the buffer cap.

A framer is pure: ``feed(data)`` takes whatever bytes arrived (any split, any
glue) and returns the complete frames found so far, keeping the incomplete tail.
It never does I/O, never blocks and never raises on bad input — junk is dropped
and counted, frames with a bad check are dropped and counted, and the buffer
never grows past its cap (the pymodbus framer contract, STYLE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_BUFFER = 8192


@dataclass(slots=True)
class FramerStats:
    """Counters a driver copies into its DeviceStats."""

    frames: int = 0  # good frames returned
    bad_frames: int = 0  # frames dropped for a bad check, length or structure
    dropped_bytes: int = 0  # bytes skipped while resynchronising or over the cap
    overflows: int = 0  # times the buffer hit its cap and was cut
