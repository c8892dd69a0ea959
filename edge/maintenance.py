"""Store upkeep while the daemon runs: box uptime, WAL checkpoints, backlog
alerts, purges.

A component (see :mod:`edge.daemon`). Every ``checkpoint_interval_s`` it
stores the box's uptime (:meth:`edge.store.Store.uptime_ms`), truncates
the WAL (so the file stays bounded even when readers kept the automatic
checkpoint from finishing) and checks the outbox backlog: crossing
``warn_backlog`` raises one ``warn`` alert (upstream too, as an ``alert``
event) and crossing back below clears it. It never drops or rewrites an event.

Finished work — tours done or cancelled with their scans, finished tasks — is
purged ``retention_days`` of box *uptime* after maintenance first saw it
finished (DESIGN.md decision 6: customer data stays minimal). Uptime comes from
the monotonic clock, so a wall clock that is years off or jumps can neither
purge work early (which would drop the dedup record of a scan whose answer was
lost) nor keep it forever. A purged task leaves a tombstone of its id for
``TOMBSTONE_DAYS`` of uptime, so a task the cloud sends again is never picked
twice. A crash loses at most one tick of uptime: purges come later, never
earlier. Sessions expire on the same uptime; expired ones are dropped here.

The statements belong to the tables' owners: :mod:`edge.picking.retention`
(tours, scans), :mod:`edge.masterdata.tables` (tasks, tombstones),
:mod:`edge.api.auth_tables` (sessions), :mod:`edge.store.upkeep` (uptime).
"""

from __future__ import annotations

import asyncio
import logging

from edge.api import auth_tables
from edge.masterdata import tables as masterdata_tables
from edge.picking import retention
from edge.store import Store, Transaction, upkeep
from edge.store.outbox import clear_alerts, raise_alert, status

log = logging.getLogger(__name__)

#: how long the id of a purged task is remembered, in days of box uptime
TOMBSTONE_DAYS = 365.0


class Maintenance:
    name = "maintenance"

    def __init__(
        self,
        store: Store,
        *,
        interval_s: float,
        warn_backlog: int,
        retention_days: float = 30.0,
        purge_every_s: float = 3600.0,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.warn_backlog = warn_backlog
        self.retention_ms = int(retention_days * 86_400_000)
        self.purge_every_s = purge_every_s
        self.last_checkpoint: tuple[int, int, int] | None = None
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
        return counts

    async def tick(self) -> None:
        loop_now = asyncio.get_running_loop().time()
        purge = loop_now - self._purged_at >= self.purge_every_s

        def upkeep(tx: Transaction) -> dict[str, int]:
            self.uptime_ms = self.advance_uptime(tx)
            return self.purge(tx, self.uptime_ms) if purge else {}

        counts = await self.store.write(upkeep)
        if purge:
            self._purged_at = loop_now
            self.last_purge = counts
            if any(counts.values()):
                log.info("purged finished work: %s", counts)
        self.last_checkpoint = await asyncio.to_thread(self.store.checkpoint)
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

    async def run(self) -> None:
        self.uptime_ms = await self.store.write(self.advance_uptime)  # the reference point
        while True:
            await asyncio.sleep(self.interval_s)
            await self.tick()
