"""Store upkeep while the daemon runs: box uptime, WAL checkpoints, backlog
alerts, purges.

A component (see :mod:`edge.daemon`). Every ``checkpoint_interval_s`` it
stores the box's uptime (:meth:`edge.store.Store.uptime_ms`), checks the
outbox backlog — crossing ``warn_backlog`` raises one ``warn`` alert (upstream
too, as an ``alert`` event) and crossing back below clears it; it never drops
or rewrites an event — flushes the dashboard's hourly figures
(:mod:`edge.ops.hours`; not in peak mode) and checkpoints the WAL.

Checkpoints never stall the writer. Each tick runs a PASSIVE one, which
copies what no reader still needs and waits for no one. When nobody has
committed since the previous tick (the box is idle) it then truncates the WAL
to nothing, waiting at most ``truncate_wait_ms`` for readers holding an older
snapshot — ``pickedge db backup`` copying the file, say — and giving up until
the next idle tick when one does. A WAL file grown past ``wal_limit_bytes``
(readers kept it from being reused) is truncated on a busy tick too, but only
when no reader is in the way: that attempt waits for nobody.

Finished work — tours done or cancelled with their scans, finished tasks — is
purged ``retention_days`` of box *uptime* after maintenance first saw it
finished (DESIGN.md decision 6: customer data stays minimal); confirmed
shipments with their cartons and print jobs ``shipments_days`` after, inactive
pickers ``pickers_days`` after they were first seen inactive, cleared alerts
``alerts_days`` after (``[retention]``, docs/operations.md "Retention and
customer data"). After a purge that deleted anything, and after an erasure
(:meth:`wipe_wal`), the WAL is truncated so the deleted content leaves the
files too (the store zeroes deleted content in its pages: ``secure_delete``). Uptime comes from
the monotonic clock, so a wall clock that is years off or jumps can neither
purge work early (which would drop the dedup record of a scan whose answer was
lost) nor keep it forever. A purged task leaves a tombstone of its id for
``TOMBSTONE_DAYS`` of uptime, so a task the cloud sends again is never picked
twice. A crash loses at most one tick of uptime: purges come later, never
earlier. Sessions expire on the same uptime; expired ones are dropped here.

The statements belong to the tables' owners: :mod:`edge.picking.retention`
(tours, scans), :mod:`edge.masterdata.tables` (tasks, tombstones, pickers),
:mod:`edge.api.auth_tables` (sessions), :mod:`edge.shipping.retention`
(shipments, cartons, print jobs), :mod:`edge.store.upkeep` (uptime, alerts).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.api import auth_tables
from edge.masterdata import DROPPED_FIELDS, ERASURES
from edge.masterdata import tables as masterdata_tables
from edge.ops import hours
from edge.picking import putback, retention, stats
from edge.shipping import retention as shipping_retention
from edge.shipping.service import forget_message_keys
from edge.store import Store, Transaction, upkeep
from edge.store.db import TRUNCATE_WAIT_MS
from edge.store.outbox import clear_alerts, raise_alert, status

log = logging.getLogger(__name__)

#: how long the id of a purged task is remembered, in days of box uptime
TOMBSTONE_DAYS = 365.0


class RetentionCollector(Collector):
    """The retention and minimisation counters, read at scrape time: rows
    purged per table, task fields dropped on ingest per place (``task``,
    ``ship_to``, ``line``), erasures per subject (``order``, ``picker``). No
    label names a person, an order or a field's value."""

    def __init__(self, maintenance: Maintenance) -> None:
        self.maintenance = maintenance

    def collect(self) -> Iterator[Metric]:
        purged = CounterMetricFamily(
            "pickedge_retention_purged_rows",
            "Rows purged by retention (box uptime), per table.",
            labels=["table"],
        )
        for table, n in sorted(self.maintenance.purged_total.items()):
            purged.add_metric([table], float(n))
        dropped = CounterMetricFamily(
            "pickedge_customer_fields_dropped",
            "Fields of downstream tasks dropped on ingest (not in sync-v1: customer data "
            "beyond postcode and region), by where they were.",
            labels=["where"],
        )
        for where in ("task", "ship_to", "line"):
            dropped.add_metric([where], float(DROPPED_FIELDS[where]))
        erased = CounterMetricFamily(
            "pickedge_erasures",
            "Erasures carried out (sync-v1 erase), by subject.",
            labels=["subject"],
        )
        for subject in ("order", "picker"):
            erased.add_metric([subject], float(ERASURES[subject]))
        yield from (purged, dropped, erased)


class Maintenance:
    name = "maintenance"

    def __init__(
        self,
        store: Store,
        *,
        interval_s: float,
        warn_backlog: int,
        retention_days: float = 30.0,
        shipments_days: float = 30.0,
        pickers_days: float = 90.0,
        alerts_days: float = 30.0,
        put_back_alert_s: float = 1800.0,
        purge_every_s: float = 3600.0,
        truncate_wait_ms: int = TRUNCATE_WAIT_MS,
        defer: Callable[[str], bool] | None = None,
        scan_hours: hours.ScanHours | None = None,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.warn_backlog = warn_backlog
        self.retention_ms = int(retention_days * 86_400_000)
        self.shipments_ms = int(shipments_days * 86_400_000)
        self.pickers_ms = int(pickers_days * 86_400_000)
        self.alerts_ms = int(alerts_days * 86_400_000)
        #: rows purged since start, by table (the metrics' retention counters)
        self.purged_total: dict[str, int] = {}
        #: deleted content may still be in the WAL: truncate it at the next tick
        self.wipe_pending = False
        self.put_back_alert_ms = int(put_back_alert_s * 1000)
        self.purge_every_s = purge_every_s
        self.truncate_wait_ms = truncate_wait_ms
        #: peak protection (edge.peak.PeakGuard.defer): whether "purge" or
        #: "compaction" waits now; None: never
        self.defer = defer
        #: the dashboard's hourly figures, flushed each tick (edge.ops.hours)
        self.scan_hours = scan_hours
        #: (busy, WAL frames, frames checkpointed) of the last checkpoint, and its mode
        self.last_checkpoint: tuple[int, int, int] | None = None
        self.last_checkpoint_mode: str | None = None
        #: TRUNCATE attempts that gave up because a reader held a snapshot
        self.truncates_deferred = 0
        # data_version at the end of the last tick: unchanged means nobody wrote
        self._quiet_mark: int | None = None
        self.tombstone_ms = int(TOMBSTONE_DAYS * 86_400_000)
        self.last_purge: dict[str, int] = {}
        self.uptime_ms = 0
        self._purged_at = -float("inf")

    def advance_uptime(self, tx: Transaction) -> int:
        """Store the box's uptime (:meth:`Store.uptime_ms`); returns it (ms)."""
        up = self.store.uptime_ms()
        upkeep.advance_uptime(tx, up)
        return up

    def purge(self, tx: Transaction, up: int) -> dict[str, int]:
        """Purge finished work whose retention ran out by box uptime ``up``."""
        # Stamp what finished since the last purge; it goes ``retention`` later.
        due = up + self.retention_ms
        retention.stamp(tx, due)
        masterdata_tables.stamp_finished_tasks(tx, due)
        counts = retention.purge(tx, up)
        counts["tasks"] = masterdata_tables.purge_tasks(
            tx, up, tombstone_until=up + self.tombstone_ms
        )
        counts["tombstones"] = masterdata_tables.purge_tombstones(tx, up)
        counts["sessions"] = auth_tables.drop_expired_sessions(tx, up)
        counts["message_keys"] = forget_message_keys(tx, up)
        counts["floor_stats"] = stats.purge(tx)
        shipping_retention.stamp(tx, up + self.shipments_ms)
        counts.update(shipping_retention.purge(tx, up))
        masterdata_tables.stamp_inactive_pickers(tx, up + self.pickers_ms)
        counts["pickers"] = masterdata_tables.purge_pickers(tx, up)
        upkeep.stamp_cleared_alerts(tx, up + self.alerts_ms)
        counts["alerts"] = upkeep.purge_alerts(tx, up)
        counts["floor_hours"] = hours.purge(tx)
        return counts

    def wipe_wal(self) -> bool:
        """Truncate the WAL (blocking; waits at most ``truncate_wait_ms`` for
        readers): content deleted by a purge or an erasure leaves the WAL file
        as well as the database's pages. Whether it was truncated; when a
        reader held a snapshot, the next tick tries again."""
        busy, _, _ = self.store.checkpoint("TRUNCATE", wait_ms=self.truncate_wait_ms)
        self.wipe_pending = bool(busy)
        if busy:
            log.info("WAL wipe after a purge or erasure deferred: a reader holds a snapshot")
        return not busy

    def wal_bytes(self) -> int:
        wal = self.store.path.with_name(self.store.path.name + "-wal")
        try:
            return os.stat(wal).st_size
        except FileNotFoundError:
            return 0

    def checkpoint(self, *, idle: bool) -> tuple[int, int, int]:
        """PASSIVE always; then TRUNCATE when ``idle`` (waiting for readers at
        most ``truncate_wait_ms``), or when the WAL file outgrew the store's
        limit (waiting for nobody). Never holds the writer for long."""
        result = self.store.checkpoint("PASSIVE")
        mode = "PASSIVE"
        if idle:
            wait_ms: int | None = self.truncate_wait_ms
        elif self.wal_bytes() > self.store.wal_limit_bytes:
            wait_ms = 0  # past the limit: truncated even in peak mode
        else:
            wait_ms = None
        if wait_ms is not None:
            result = self.store.checkpoint("TRUNCATE", wait_ms=wait_ms)
            mode = "TRUNCATE"
            if result[0]:
                self.truncates_deferred += 1
                log.debug("WAL truncation deferred: a reader holds a snapshot %s", result)
        self.last_checkpoint, self.last_checkpoint_mode = result, mode
        return result

    async def tick(self) -> None:
        loop_now = asyncio.get_running_loop().time()
        purge = loop_now - self._purged_at >= self.purge_every_s
        if purge and self.defer is not None and self.defer("purge"):
            purge = False  # peak mode: the next tick after it purges
        mark = await asyncio.to_thread(self.store.data_version)
        idle = mark == self._quiet_mark
        # peak mode: no checkpoint unless the WAL outgrew its limit
        compact = self.defer is None or not self.defer("compaction")

        def upkeep(tx: Transaction) -> dict[str, int]:
            self.uptime_ms = self.advance_uptime(tx)
            putback.age_alerts(tx, self.uptime_ms, self.put_back_alert_ms)
            return self.purge(tx, self.uptime_ms) if purge else {}

        counts = await self.store.write(upkeep)
        if self.scan_hours is not None and (self.defer is None or not self.defer("dashboard")):
            await self.scan_hours.flush(self.store)
        if purge:
            self._purged_at = loop_now
            self.last_purge = counts
            if any(counts.values()):
                log.info("purged finished work: %s", counts)
                self.wipe_pending = True
                for table, n in counts.items():
                    self.purged_total[table] = self.purged_total.get(table, 0) + n
        backlog = (await asyncio.to_thread(status, self.store)).backlog
        if backlog >= self.warn_backlog:

            def warn(tx: Transaction) -> None:
                raise_alert(
                    tx,
                    "backlog_high",
                    "warn",
                    f"{backlog} events wait for the cloud",
                    {"backlog": backlog, "threshold": self.warn_backlog},
                )

            await self.store.write(warn)
        else:
            await self.store.write(lambda tx: clear_alerts(tx, ["backlog_high"]))
        # Last, so that an idle tick leaves the WAL empty, its own writes included.
        if compact or self.wal_bytes() > self.store.wal_limit_bytes:
            await asyncio.to_thread(lambda: self.checkpoint(idle=idle and compact))
        if self.wipe_pending:
            await asyncio.to_thread(self.wipe_wal)
        self._quiet_mark = await asyncio.to_thread(self.store.data_version)

    async def run(self) -> None:
        self.uptime_ms = await self.store.write(self.advance_uptime)  # the reference point
        self._quiet_mark = await asyncio.to_thread(self.store.data_version)
        while True:
            await asyncio.sleep(self.interval_s)
            await self.tick()
