"""Prometheus metrics of the daemon, read when scraped.

:class:`DaemonCollector` reports what other parts already count — each
device's counters and state (from the device supervisor), each printer's
state (its last ``~HS`` answer), each component's health and restarts (from
the supervisor), the outbox backlog and the age of its oldest unsent event,
the floor's figures per day and month (from the store), the free space of the
store's filesystem and when it fills at the current rate
(:class:`edge.disk.DiskWatch`) — at scrape time, so nothing is counted twice
and nothing needs a timer. The picking workflow's counters
(:mod:`edge.picking.counters`) live with the API's in the process-wide
registry. Every metric is listed in docs/operations.md ("Metrics"); no label
names a person, an order, a task or a SKU. The
figures of sync (:class:`cloud_sync.metrics.SyncMetrics`) live in the same
per-daemon registry, their backlog gauges set from the outbox at scrape time
(:func:`set_sync_backlog`); request counters of the API live in the
process-wide default registry. :func:`exposition` renders both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cloud_sync.metrics import SyncMetrics
from devices.printer.status import PrinterStatus
from edge.daemon import Supervisor
from edge.disk import DiskWatch
from edge.picking import stats as floor_stats
from edge.picking.queries import snapshot
from edge.store import Store, now_ms
from edge.store.outbox import status

log = logging.getLogger(__name__)

#: a printer's conditions that stop it printing (PrinterStatus.problems), as label values
PRINTER_PROBLEMS = {
    "head open": "head_open",
    "paper out": "paper_out",
    "ribbon out": "ribbon_out",
    "paused": "paused",
    "buffer full": "buffer_full",
    "over temperature": "over_temperature",
    "under temperature": "under_temperature",
}

#: (connected, last status or None before the first answer) of each label printer
PrinterStates = Callable[[], dict[str, tuple[bool, PrinterStatus | None]]]


class DaemonCollector(Collector):
    def __init__(
        self,
        *,
        store: Store,
        supervisor: Supervisor | None = None,
        devices: Callable[[], dict[str, dict[str, Any]]] | None = None,
        floor: Callable[[], dict[str, Any]] | None = None,
        printers: PrinterStates | None = None,
        disk: DiskWatch | None = None,
    ) -> None:
        self.store = store
        self.supervisor = supervisor
        self.devices = devices
        self.floor = floor
        self.printers = printers
        self.disk = disk

    def collect(self) -> Iterator[Metric]:
        yield from self._devices()
        yield from self._printers()
        yield from self._floor()
        yield from self._quality()
        yield from self._components()
        yield from self._outbox()
        yield from self._disk()

    def _printers(self) -> Iterator[Metric]:
        if self.printers is None:
            return
        ready = GaugeMetricFamily(
            "pickedge_printer_ready",
            "1 while the label printer is connected and its last status shows no problem.",
            labels=["printer"],
        )
        problem = GaugeMetricFamily(
            "pickedge_printer_problem",
            "1 while the printer's last status shows this problem (kind: paper_out, head_open, …).",
            labels=["printer", "kind"],
        )
        for printer, (connected, last) in sorted(self.printers().items()):
            problems = set(last.problems) if last is not None else set()
            ok = connected and last is not None and not problems
            ready.add_metric([printer], 1.0 if ok else 0.0)
            for text, kind in PRINTER_PROBLEMS.items():
                problem.add_metric([printer, kind], 1.0 if text in problems else 0.0)
        yield ready
        yield problem

    def _disk(self) -> Iterator[Metric]:
        if self.disk is None:
            return
        try:
            figures = self.disk.sample()
        except OSError:
            log.warning("free space of %s unavailable for /metrics", self.disk.path, exc_info=True)
            return
        free = GaugeMetricFamily(
            "pickedge_disk_free_bytes", "Bytes free on the store's filesystem (for this user)."
        )
        free.add_metric([], float(figures.free_bytes))
        ratio = GaugeMetricFamily(
            "pickedge_disk_free_ratio", "Share of the store's filesystem that is free."
        )
        ratio.add_metric([], figures.free_ratio)
        yield free
        yield ratio
        until = self.disk.until_full_s()
        if until is not None:
            full = GaugeMetricFamily(
                "pickedge_disk_full_in_seconds",
                "Seconds until the store's filesystem is full at the rate of the last hour "
                "(+Inf while free space is not falling; absent until there is a rate).",
            )
            full.add_metric([], until)
            yield full

    def _quality(self) -> Iterator[Metric]:
        """Inventory accuracy and the exception rate over the last day and 30
        days (edge.picking.stats), read from a snapshot at scrape time."""
        counted = GaugeMetricFamily(
            "pickedge_locations_counted", "Locations counted (blind counts).", labels=["window"]
        )
        accuracy = GaugeMetricFamily(
            "pickedge_inventory_accuracy_ratio",
            "Share of counted locations whose count matched the box's on-hand.",
            labels=["window"],
        )
        finished = GaugeMetricFamily(
            "pickedge_tasks_finished", "Pick tasks done or cancelled.", labels=["window"]
        )
        rate = GaugeMetricFamily(
            "pickedge_exception_rate_ratio",
            "Share of finished pick tasks that needed a short, skip, cancel or supervisor.",
            labels=["window"],
        )
        walked = GaugeMetricFamily(
            "pickedge_walk_metres",
            "Metres the pick tours done were planned to walk.",
            labels=["window"],
        )
        alone = GaugeMetricFamily(
            "pickedge_walk_single_order_s_shape_metres",
            "Metres the same orders would walk picked one per tour on S-shape routes.",
            labels=["window"],
        )
        units = GaugeMetricFamily(
            "pickedge_walk_units", "Units of the pick tours done.", labels=["window"]
        )
        saved = GaugeMetricFamily(
            "pickedge_walk_saved_metres",
            "Metres the pick tours done saved against their orders picked one per tour "
            "on S-shape routes.",
            labels=["window"],
        )
        kinds = GaugeMetricFamily(
            "pickedge_task_exceptions",
            "Pick tasks that needed a short, a skip, a cancel or a supervisor, by kind.",
            labels=["kind", "window"],
        )
        now = now_ms()
        try:
            with snapshot(self.store.reader().conn) as db:
                for window, days in (("1d", 1), ("30d", 30)):
                    since = now - days * floor_stats.DAY_MS
                    n, matched = floor_stats.accuracy(db, since)
                    counted.add_metric([window], float(n))
                    if n:
                        accuracy.add_metric([window], matched / n)
                    tasks, needed = floor_stats.exceptions(db, since)
                    finished.add_metric([window], float(tasks))
                    if tasks:
                        rate.add_metric([window], needed / tasks)
                    planned, single, picked = floor_stats.walking(db, since)
                    walked.add_metric([window], planned)
                    alone.add_metric([window], single)
                    units.add_metric([window], float(picked))
                    saved.add_metric([window], single - planned)
                    by_kind = floor_stats.exceptions_by_kind(db, since)
                    for kind in floor_stats.EXCEPTION_KINDS:
                        kinds.add_metric([kind, window], float(by_kind.get(kind, 0)))
        except Exception:  # a scrape must never fail the daemon
            log.exception("floor quality metrics unavailable")
            return
        yield from (counted, accuracy, finished, rate, walked, alone, units, saved, kinds)

    def _devices(self) -> Iterator[Metric]:
        if self.devices is None:
            return
        snapshot = self.devices()
        counters = {
            "frames": "Frames read from the device.",
            "bad_frames": "Frames or payloads dropped as malformed.",
            "dropped_bytes": "Bytes discarded while resynchronising.",
            "events": "Events the device produced.",
            "reconnects": "Times the device was connected again after a loss.",
        }
        for key, help_text in counters.items():
            family = CounterMetricFamily(f"pickedge_device_{key}", help_text, labels=["device"])
            for device, stats in snapshot.items():
                family.add_metric([device], float(stats.get(key) or 0))
            yield family
        up = GaugeMetricFamily(
            "pickedge_device_connected", "1 while the device is connected.", labels=["device"]
        )
        seen = GaugeMetricFamily(
            "pickedge_device_last_seen_timestamp_seconds",
            "When the device was last heard from (box clock, informational).",
            labels=["device"],
        )
        failures = CounterMetricFamily(
            "pickedge_device_failures",
            "Connection attempts that failed and connections lost.",
            labels=["device"],
        )
        in_state = GaugeMetricFamily(
            "pickedge_device_state_seconds",
            "Seconds the device has been connected, or not, without a change "
            "(monotonic clock; since the start while it never connected).",
            labels=["device"],
        )
        for device, stats in snapshot.items():
            up.add_metric([device], 1.0 if stats.get("connected") else 0.0)
            if stats.get("last_seen") is not None:
                seen.add_metric([device], float(stats["last_seen"]))
            failures.add_metric([device], float(stats.get("failures") or 0))
            if stats.get("state_for_s") is not None:
                in_state.add_metric([device], float(stats["state_for_s"]))
        yield up
        yield seen
        yield failures
        yield in_state

    def _floor(self) -> Iterator[Metric]:
        """What the fixed devices' events led to (edge.shipping.inbox.FloorInbox)."""
        if self.floor is None:
            return
        snapshot = self.floor()
        dock = CounterMetricFamily(
            "pickedge_dock_reads",
            "Tags seen at dock door portals, by what they led to (item tags are counted only).",
            labels=["outcome"],
        )
        for outcome, n in sorted(snapshot.get("dock", {}).items()):
            dock.add_metric([outcome], float(n))
        yield dock
        redelivered = CounterMetricFamily(
            "pickedge_device_messages_redelivered",
            "Device messages already confirmed, recognised by their key and not applied again.",
        )
        redelivered.add_metric([], float(snapshot.get("counts", {}).get("redelivered_scan", 0)))
        yield redelivered

    def _components(self) -> Iterator[Metric]:
        if self.supervisor is None:
            return
        running = GaugeMetricFamily(
            "pickedge_component_running", "1 while the component runs.", labels=["component"]
        )
        restarts = CounterMetricFamily(
            "pickedge_component_restarts", "Crashes followed by a restart.", labels=["component"]
        )
        for name, health in self.supervisor.health.items():
            running.add_metric([name], 1.0 if health.running else 0.0)
            restarts.add_metric([name], float(health.restarts))
        yield running
        yield restarts

    def _outbox(self) -> Iterator[Metric]:
        try:
            st = status(self.store)
        except Exception:  # a scrape must not fail because the store is busy
            log.warning("outbox status unavailable for /metrics", exc_info=True)
            return
        backlog = GaugeMetricFamily(
            "pickedge_outbox_backlog_events", "Confirmed events not yet acked by the cloud."
        )
        backlog.add_metric([], float(st.backlog))
        yield backlog
        oldest = GaugeMetricFamily(
            "pickedge_outbox_oldest_unsent_age_seconds",
            "Age of the oldest event not yet acked by the cloud, by the box's clock (0 when none).",
        )
        age = 0.0
        if st.oldest_unacked_ms is not None:
            age = max(0.0, (now_ms() - st.oldest_unacked_ms) / 1000)
        oldest.add_metric([], age)
        yield oldest
        written = CounterMetricFamily(
            "pickedge_outbox_events", "Events appended to the outbox in the current epoch."
        )
        written.add_metric([], float(st.next_seq - 1))
        yield written


def set_sync_backlog(metrics: SyncMetrics, store: Store) -> None:
    """Sync's backlog gauges from the outbox (cheap: two indexed reads)."""
    st = status(store)
    age = 0.0
    if st.oldest_unacked_ms is not None:
        age = (now_ms() - st.oldest_unacked_ms) / 1000
    metrics.set_backlog(backlog=st.backlog, acked_seq=st.acked_seq, oldest_unacked_age_s=age)


def exposition(registry: CollectorRegistry) -> bytes:
    """The text exposition of the daemon's registry and the process-wide one."""
    return generate_latest(registry) + generate_latest(REGISTRY)
