"""Peak protection: under a surge of scans and reads, non-core work waits.

A zone box has two cores. A wave of pickers at the start of a shift, or a
dock portal reading a full pallet of tagged cartons, can keep both busy; the
work that can wait (the purge of finished work and the WAL truncation of the
maintenance tick, the background improvement of cart proposals, the
dashboard's aggregation, low-priority alert rules) must not then take CPU and
the store's writer from the scans a person is waiting on.

:class:`PeakGuard` counts the inflow (each PDA scan and each device scan or
tag read, :meth:`PeakGuard.note`) in one-second buckets. The box **enters**
peak mode when the mean rate over the last ``window_s`` seconds reaches
``rate_per_s``, and **leaves** it when that mean falls below
``rate_per_s * leave_ratio`` (the hysteresis keeps a rate hovering at the
threshold from flapping). A burst shorter than the window does not trip it
unless it carries a whole window's worth of inflow. Entering and leaving are
logged once each, with the rate, and are visible in the metrics
(:meth:`PeakGuard.collect`): ``pickedge_peak_mode``, ``pickedge_peak_entered_total``,
``pickedge_inflow_per_second`` and ``pickedge_peak_deferred_total{work}``.

Work that may wait asks :meth:`PeakGuard.defer` before it runs; a deferral is
counted per kind of work. Nothing core ever asks: scans, confirmations, the
outbox and its upload, and alerts a person must act on run whatever the
inflow. Deferred work is not lost, only late: each asker runs it on its next
turn after the peak.

Pure bookkeeping on the event loop (no I/O, no threads): :meth:`note` costs
a few integer operations (a running total over at most ``window_s`` buckets).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: the kinds of work that may be deferred (the metric's ``work`` label)
DEFERRABLE = ("purge", "compaction", "batching", "dashboard", "alerts")


class PeakGuard(Collector):
    def __init__(
        self,
        *,
        rate_per_s: float,
        window_s: float = 10.0,
        leave_ratio: float = 0.5,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or window_s < 1 or not 0 < leave_ratio <= 1:
            raise ValueError("peak: rate_per_s > 0, window_s >= 1 and 0 < leave_ratio <= 1")
        self.rate_per_s = rate_per_s
        self.window = int(window_s)
        self.leave_ratio = leave_ratio
        self.enabled = enabled
        self.clock = clock
        #: (second, inflow in it), oldest first, at most ``window`` of them
        self._buckets: collections.deque[list[int]] = collections.deque()
        self._total = 0  # the inflow in _buckets
        self.active = False
        self.entered = 0
        self.since: float | None = None
        self.deferred: collections.Counter[str] = collections.Counter()

    # ------------------------------------------------------------------ inflow

    def note(self, n: int = 1) -> None:
        """``n`` scans or reads arrived now."""
        second = int(self.clock())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += n
        else:
            self._buckets.append([second, n])
        self._total += n
        self._evaluate(second)

    def _expire(self, second: int) -> None:
        first = second - self.window + 1
        while self._buckets and self._buckets[0][0] < first:
            self._total -= self._buckets.popleft()[1]

    def rate(self, now: float | None = None) -> float:
        """Mean inflow per second over the last ``window`` whole seconds
        (the current, unfinished second included)."""
        self._expire(int(self.clock() if now is None else now))
        return self._total / self.window

    # ------------------------------------------------------------------ mode

    def _evaluate(self, second: int) -> None:
        if not self.enabled:
            return
        rate = self.rate(second)
        if not self.active and rate >= self.rate_per_s:
            self.active = True
            self.entered += 1
            self.since = self.clock()
            log.warning(
                "peak mode: %.1f scans and reads a second over %d s (threshold %.1f); "
                "purges, compaction, background batching, dashboard aggregation and "
                "low-priority alerts wait",
                rate,
                self.window,
                self.rate_per_s,
            )
        elif self.active and rate < self.rate_per_s * self.leave_ratio:
            lasted = self.clock() - (self.since or self.clock())
            self.active = False
            self.since = None
            waited = ", ".join(f"{k} {v}" for k, v in sorted(self.deferred.items())) or "nothing"
            log.warning(
                "peak mode over after %.0f s: %.1f scans and reads a second; deferred so far: %s",
                lasted,
                rate,
                waited,
            )

    def defer(self, work: str) -> bool:
        """Whether ``work`` (one of :data:`DEFERRABLE`) should wait now;
        counted when it does. Re-evaluates the mode first, so that the end of
        a surge is seen even when no scan arrives any more."""
        if work not in DEFERRABLE:
            raise ValueError(f"peak: unknown kind of work {work!r}")
        self._evaluate(int(self.clock()))
        if self.active:
            self.deferred[work] += 1
        return self.active

    # ------------------------------------------------------------------ metrics

    def collect(self) -> Iterator[Metric]:
        self._evaluate(int(self.clock()))
        yield GaugeMetricFamily(
            "pickedge_peak_mode", "1 while peak protection defers non-core work.", value=self.active
        )
        yield CounterMetricFamily(
            "pickedge_peak_entered", "Times the box entered peak mode.", value=self.entered
        )
        yield GaugeMetricFamily(
            "pickedge_inflow_per_second",
            "Scans and device reads a second, mean over the peak window.",
            value=self.rate(),
        )
        deferred = CounterMetricFamily(
            "pickedge_peak_deferred",
            "Runs of non-core work deferred by peak mode.",
            labels=["work"],
        )
        for work in DEFERRABLE:
            deferred.add_metric([work], self.deferred[work])
        yield deferred
