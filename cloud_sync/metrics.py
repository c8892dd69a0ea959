"""Prometheus metrics of sync, in a registry the caller passes in.

The same figures as ``pickedge sync status``: backlog, age of the oldest unsent
event, acked seq, current back-off; plus counters of batches by outcome, acked
events, and downstream changes applied. Nothing here touches the network or
a store: the uploader and downloader report what they do, and the box sets the
backlog figures (:meth:`SyncMetrics.set_backlog`) from its outbox when its
``/metrics`` is scraped.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SyncMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.backlog = Gauge(
            "pickedge_sync_backlog_events", "Outbox events not yet acked.", registry=registry
        )
        self.oldest_age = Gauge(
            "pickedge_sync_oldest_unacked_age_seconds",
            "Age of the oldest unacked event by the box's clock (0 when none).",
            registry=registry,
        )
        self.acked_seq = Gauge(
            "pickedge_sync_acked_seq", "Acked seq of the current epoch.", registry=registry
        )
        self.backoff_seconds = Gauge(
            "pickedge_sync_backoff_seconds",
            "Current retry pause of the uploader (0 when sending normally).",
            registry=registry,
        )
        self.batches = Counter(
            "pickedge_sync_batches_total",
            "Upstream batch requests by outcome (HTTP status or 'unreachable').",
            ["outcome"],
            registry=registry,
        )
        self.events_sent = Counter(
            "pickedge_sync_events_sent_total",
            "Events carried by batches that got an answer.",
            registry=registry,
        )
        self.request_seconds = Histogram(
            "pickedge_sync_batch_seconds",
            "Time of one upstream batch request.",
            registry=registry,
        )
        self.changes = Counter(
            "pickedge_sync_changes_applied_total",
            "Downstream changes applied.",
            registry=registry,
        )
        self.errors = Counter(
            "pickedge_sync_errors_total",
            "Failed upload and download attempts, by kind: 'upload_' or 'download_' then "
            "unreachable, http_<status>, the alert kind raised (sync_…), bad_answer or failed.",
            ["kind"],
            registry=registry,
        )

    def error(self, direction: str, kind: str) -> None:
        """One failed attempt of ``direction`` (upload, download)."""
        self.errors.labels(kind=f"{direction}_{kind}").inc()

    def batch(self, outcome: str, events: int, seconds: float) -> None:
        self.batches.labels(outcome=outcome).inc()
        if events:
            self.events_sent.inc(events)
        self.request_seconds.observe(seconds)

    def acked(self, seq: int) -> None:
        self.acked_seq.set(seq)
        self.backoff_seconds.set(0)

    def backoff(self, seconds: float) -> None:
        self.backoff_seconds.set(seconds)

    def applied(self, changes: int) -> None:
        self.changes.inc(changes)

    def set_backlog(self, *, backlog: int, acked_seq: int, oldest_unacked_age_s: float) -> None:
        """The outbox's figures as the box reads them (at scrape time)."""
        self.backlog.set(backlog)
        self.acked_seq.set(acked_seq)
        self.oldest_age.set(max(0.0, oldest_unacked_age_s))
