"""The floor's figures per wall-clock hour, for the dashboard's charts; this
module owns the SQL of ``floor_hours`` and ``floor_hours_mark``.

- **Scans and their answer times**: the PDA API calls :meth:`ScanHours.record`
  once per answered scan — a dict update in memory, never a write;
- **Picks**: pick confirmations (one per item scan, or per quantity entered)
  and their units, counted from the outbox's
  ``pick_confirmed`` events past a mark (``floor_hours_mark``: epoch and seq),
  so nothing is written per pick either.

:meth:`ScanHours.flush` (the maintenance tick) adds both to ``floor_hours`` in
one transaction and moves the mark. A crash loses at most the answer times
since the last flush; picks are never lost (they are read from the outbox).
An epoch change (a restored database) restarts the count at the new epoch's
first seq. :func:`live_hours` is what a reader sees now: the stored rows plus
what memory and the outbox hold past the last flush.

A scan's answer time goes into a histogram of :data:`SCAN_BUCKETS_MS`; the
p99 of an hour is the upper bound of the bucket that holds its 99th
percentile (an overestimate by at most one bucket, never an underestimate;
``None`` past the last bound).

Hours are on the box's wall clock: figures for people, never expiries.
:func:`purge` drops rows more than :data:`KEEP_MS` older than the newest row,
without reading the clock.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from edge.picking.queries import Reads
from edge.store.db import Store, Transaction, now_ms

HOUR_MS = 3_600_000
#: how long hourly rows are kept, behind the newest one (the 24 h charts and a day more)
KEEP_MS = 48 * HOUR_MS
#: upper bounds (ms) of the answer-time buckets; one more bucket takes the rest
SCAN_BUCKETS_MS: tuple[float, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000,
)  # fmt: skip
_BUCKETS = len(SCAN_BUCKETS_MS) + 1


def hour_of(ms: int) -> int:
    """The start of the wall-clock hour of ``ms`` (unix ms)."""
    return ms - ms % HOUR_MS


def _empty() -> list[int]:
    return [0] * _BUCKETS


@dataclass(slots=True)
class HourFigures:
    """One hour's figures: scans answered, their answer-time histogram, pick
    confirmations and their units."""

    hour_ms: int
    scans: int = 0
    hist: list[int] = field(default_factory=_empty)
    picks: int = 0
    units: int = 0

    def add(self, other: HourFigures) -> None:
        self.scans += other.scans
        self.picks += other.picks
        self.units += other.units
        self.hist = [a + b for a, b in zip(self.hist, other.hist, strict=True)]

    def quantile_ms(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile ``q`` of the answer
        times (None: no scans, or past the last bound)."""
        total = sum(self.hist)
        if total == 0:
            return None
        rank = q * total
        seen = 0
        for bound, n in zip((*SCAN_BUCKETS_MS, None), self.hist, strict=True):
            seen += n
            if seen >= rank:
                return None if bound is None else float(bound)
        return None  # pragma: no cover - seen reaches total

    def as_dict(self) -> dict[str, Any]:
        return {
            "hour_ms": self.hour_ms,
            "scans": self.scans,
            "scan_p99_ms": self.quantile_ms(0.99),
            "scan_p50_ms": self.quantile_ms(0.5),
            "picks": self.picks,
            "units": self.units,
        }


def _hist(stored: str) -> list[int]:
    """A stored histogram; one written with other buckets is dropped (the
    figures are for people, and only for 48 hours)."""
    try:
        values = json.loads(stored)
    except ValueError:
        return _empty()
    if not isinstance(values, list) or len(values) != _BUCKETS:
        return _empty()
    return [int(v) for v in values]


class ScanHours:
    """Answer times per hour in memory until :meth:`flush`. ``clock`` gives
    unix ms (the box's wall clock: only to name the hour)."""

    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self.clock = clock
        self._pending: dict[int, HourFigures] = {}

    def record(self, seconds: float) -> None:
        """One scan answered after ``seconds``; called on the event loop."""
        hour = hour_of(self.clock())
        figures = self._pending.get(hour)
        if figures is None:
            figures = self._pending[hour] = HourFigures(hour)
        figures.scans += 1
        figures.hist[bisect.bisect_left(SCAN_BUCKETS_MS, seconds * 1000.0)] += 1

    def pending(self) -> dict[int, HourFigures]:
        """A copy of what is not flushed yet."""
        return {
            h: HourFigures(h, f.scans, list(f.hist), f.picks, f.units)
            for h, f in self._pending.items()
        }

    async def flush(self, store: Store) -> None:
        """Add what memory holds and the picks past the mark to ``floor_hours``,
        in one transaction; on failure memory keeps it for the next flush."""
        taken, self._pending = self._pending, {}
        try:
            await store.write(lambda tx: write_hours(tx, taken))
        except BaseException:
            for hour, figures in taken.items():
                self._pending.setdefault(hour, HourFigures(hour)).add(figures)
            raise


# ---------------------------------------------------------------------- SQL


def _mark(db: Reads) -> tuple[str, int]:
    """(epoch, last seq counted) in the current epoch's terms: a mark of
    another epoch (or none yet) starts at the current epoch's beginning."""
    epoch = str(db.execute("SELECT epoch FROM box WHERE id = 1").fetchone()[0])
    row = db.execute("SELECT epoch, seq FROM floor_hours_mark WHERE id = 1").fetchone()
    return epoch, int(row[1]) if row is not None and row[0] == epoch else 0


def _picks_after(db: Reads, epoch: str, after: int) -> tuple[dict[int, HourFigures], int]:
    """Pick lines and units of the ``pick_confirmed`` events after seq
    ``after`` of ``epoch``, per hour; and the last seq of the epoch."""
    out: dict[int, HourFigures] = {}
    for at, payload in db.execute(
        "SELECT at_ms, payload FROM outbox WHERE epoch = ? AND seq > ? AND type = 'pick_confirmed'",
        (epoch, after),
    ):
        hour = hour_of(int(at))
        figures = out.get(hour)
        if figures is None:
            figures = out[hour] = HourFigures(hour)
        try:
            qty = int(msgpack.unpackb(payload, raw=False).get("qty", 0))
        except (ValueError, TypeError, AttributeError, msgpack.UnpackException):
            qty = 0
        figures.picks += 1
        figures.units += qty
    last = db.execute(
        "SELECT COALESCE(MAX(seq), ?) FROM outbox WHERE epoch = ?", (after, epoch)
    ).fetchone()[0]
    return out, int(last)


def write_hours(tx: Transaction, scans: Mapping[int, HourFigures]) -> None:
    """Add ``scans`` and the picks past the mark to ``floor_hours``; move the mark."""
    epoch, after = _mark(tx)
    picks, last = _picks_after(tx, epoch, after)
    merged: dict[int, HourFigures] = {}
    for source in (scans, picks):
        for hour, figures in source.items():
            merged.setdefault(hour, HourFigures(hour)).add(figures)
    for hour, figures in merged.items():
        row = tx.execute(
            "SELECT scans, scan_hist, picks, units FROM floor_hours WHERE hour_ms = ?", (hour,)
        ).fetchone()
        if row is not None:
            figures.add(HourFigures(hour, int(row[0]), _hist(row[1]), int(row[2]), int(row[3])))
        tx.execute(
            "INSERT OR REPLACE INTO floor_hours (hour_ms, scans, scan_hist, picks, units) "
            "VALUES (?, ?, ?, ?, ?)",
            (hour, figures.scans, json.dumps(figures.hist), figures.picks, figures.units),
        )
    tx.execute(
        "INSERT OR REPLACE INTO floor_hours_mark (id, epoch, seq) VALUES (1, ?, ?)", (epoch, last)
    )


def purge(tx: Transaction) -> int:
    """Drop rows more than :data:`KEEP_MS` older than the newest (no clock
    read: a box's wall clock may be years off); returns how many went."""
    return int(
        tx.execute(
            "DELETE FROM floor_hours WHERE hour_ms < (SELECT MAX(hour_ms) FROM floor_hours) - ?",
            (KEEP_MS,),
        ).rowcount
    )


def live_hours(
    db: Reads, now: int, *, hours: int = 24, pending: Mapping[int, HourFigures] | None = None
) -> list[HourFigures]:
    """The last ``hours`` hours up to the one of ``now``, oldest first, each
    with what is stored, what ``pending`` holds (the API's memory) and the
    picks past the mark; hours without anything are there with zeros."""
    first = hour_of(now) - (hours - 1) * HOUR_MS
    out = {h: HourFigures(h) for h in range(first, first + hours * HOUR_MS, HOUR_MS)}
    for hour, scans, hist, picks, units in db.execute(
        "SELECT hour_ms, scans, scan_hist, picks, units FROM floor_hours WHERE hour_ms >= ?",
        (first,),
    ):
        if hour in out:
            out[hour].add(HourFigures(hour, int(scans), _hist(hist), int(picks), int(units)))
    epoch, after = _mark(db)
    late, _ = _picks_after(db, epoch, after)
    for source in (pending or {}, late):
        for hour, figures in source.items():
            if hour in out:
                out[hour].add(figures)
    return [out[h] for h in sorted(out)]
