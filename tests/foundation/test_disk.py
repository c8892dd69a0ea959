"""DiskWatch: free space of the store's filesystem and when it fills at the
current rate, from samples kept over a window (edge/disk.py)."""

from __future__ import annotations

import math
from pathlib import Path

from edge.disk import DiskFigures, DiskWatch, statvfs_figures

TOTAL = 10_000_000


class Fake:
    """A filesystem and a clock the test moves."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.now = 1000.0

    def read(self, path: Path) -> DiskFigures:
        return DiskFigures(free_bytes=self.free, total_bytes=TOTAL)

    def clock(self) -> float:
        return self.now


def watch(fake: Fake, **kw: float) -> DiskWatch:
    return DiskWatch(Path("/"), read=fake.read, clock=fake.clock, **kw)


def test_no_rate_until_samples_span_a_minute() -> None:
    fake = Fake(5_000_000)
    disk = watch(fake)
    assert disk.sample().free_ratio == 0.5
    assert disk.until_full_s() is None
    fake.now += 30
    disk.sample()
    assert disk.until_full_s() is None  # 30 s apart: too short for a rate


def test_falling_free_space_gives_the_time_until_full() -> None:
    fake = Fake(5_000_000)
    disk = watch(fake)
    for _ in range(11):  # 1,000 bytes a second for 100 s
        disk.sample()
        fake.now += 10
        fake.free -= 10_000
    # the last sample read 4,900,000 free; at 1,000 bytes/s that is 4,900 s
    assert disk.until_full_s() == 4_900.0


def test_steady_or_growing_free_space_is_never_full() -> None:
    fake = Fake(5_000_000)
    disk = watch(fake)
    for step in range(7):
        disk.sample()
        fake.now += 20
        fake.free += 1_000 if step % 2 else 0
    assert disk.until_full_s() == math.inf


def test_samples_are_bounded_by_the_window_and_spacing() -> None:
    fake = Fake(5_000_000)
    disk = watch(fake, window_s=300, min_spacing_s=5)
    for _ in range(10_000):  # a scraper every 0.1 s for 1,000 s
        disk.sample()
        fake.now += 0.1
    assert len(disk._samples) <= 300 / 5 + 1
    # an old fall outside the window does not count: free space was steady since
    assert disk.until_full_s() == math.inf


def test_the_real_filesystem(tmp_path: Path) -> None:
    figures = statvfs_figures(tmp_path)
    assert 0 < figures.free_bytes <= figures.total_bytes
    assert 0 < figures.free_ratio <= 1
