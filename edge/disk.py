"""Free space on the store's filesystem, and how soon it fills at the current rate.

:class:`DiskWatch` reads ``statvfs`` of the directory holding the database —
what SQLite, its WAL and the backups beside it share — and keeps the samples
of the last ``window_s`` in memory (at most one per ``min_spacing_s``, so a
busy scraper cannot grow them). :meth:`DiskWatch.until_full_s` fits a straight
line (least squares, :func:`fill_rate`, which the disk alert rules use too)
through those samples of free bytes against the monotonic clock and answers:

- ``None`` while there are fewer than three samples or they span less than
  ``min_span_s`` (no rate yet: the metric is left out);
- ``math.inf`` when free space is not falling (steady or growing);
- otherwise free bytes / the rate they fall at, in seconds.

It runs as a component (a sample every ``interval_s``) so the estimate does
not depend on who asks; ``/metrics`` also samples when scraped. Nothing here
writes to the disk or reads the wall clock.
"""

from __future__ import annotations

import asyncio
import collections
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DiskFigures:
    free_bytes: int  # available to the daemon's user (statvfs f_bavail)
    total_bytes: int

    @property
    def free_ratio(self) -> float:
        return self.free_bytes / self.total_bytes if self.total_bytes else 0.0


def statvfs_figures(path: Path) -> DiskFigures:
    st = os.statvfs(path)
    return DiskFigures(free_bytes=st.f_bavail * st.f_frsize, total_bytes=st.f_blocks * st.f_frsize)


class DiskWatch:
    """Samples of the free space under ``path``; see the module docstring."""

    name = "disk"

    def __init__(
        self,
        path: Path,
        *,
        window_s: float = 3600.0,
        interval_s: float = 60.0,
        min_spacing_s: float = 5.0,
        min_span_s: float = 60.0,
        read: Callable[[Path], DiskFigures] = statvfs_figures,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.window_s = window_s
        self.interval_s = interval_s
        self.min_spacing_s = min_spacing_s
        self.min_span_s = min_span_s
        self._read = read
        self._clock = clock
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self.last: DiskFigures | None = None

    async def run(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(self.interval_s)

    def sample(self) -> DiskFigures:
        """Read the filesystem now; keep the sample for the rate."""
        figures = self._read(self.path)
        now = self._clock()
        self.last = figures
        if not self._samples or now - self._samples[-1][0] >= self.min_spacing_s:
            self._samples.append((now, figures.free_bytes))
        while self._samples and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        return figures

    def until_full_s(self) -> float | None:
        """Seconds until no space is left at the rate of the window; see above."""
        samples = list(self._samples)
        if len(samples) < 2 or samples[-1][0] - samples[0][0] < self.min_span_s:
            return None
        rate = fill_rate(samples)
        if rate is None:
            return None
        if rate <= 0:
            return math.inf
        free = self.last.free_bytes if self.last is not None else samples[-1][1]
        return max(0.0, free / rate)


def fill_rate(samples: Sequence[tuple[float, int]]) -> float | None:
    """Bytes a second the free space declines over ``samples`` of (monotonic
    seconds, free bytes), oldest first: the least-squares slope, so one
    temporary file does not swing it. None with fewer than 3 samples."""
    if len(samples) < 3:
        return None
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mb = sum(b for _, b in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var <= 0:
        return None
    slope = sum((t - mt) * (b - mb) for t, b in samples) / var
    return -slope
