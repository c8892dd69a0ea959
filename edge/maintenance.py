"""Store upkeep while the daemon runs: WAL checkpoints, backlog alerts, purges.

A component (see :mod:`edge.daemon`). Every ``checkpoint_interval_s`` it
truncates the WAL (so the file stays bounded even when readers kept the
automatic checkpoint from finishing) and checks the outbox backlog: crossing
``warn_backlog`` raises one ``warn`` alert (upstream too, as an ``alert`` event)
and crossing back below clears it. It never drops or rewrites an event.

Finished work — tours done or cancelled, their scans, finished tasks, expired
sessions — is purged after ``retention_days`` (DESIGN.md decision 6: customer
data stays minimal). The cut-off uses the box's clock, which is fine here: a
wrong clock only purges finished work early or late, never a confirmed fact's
event (the outbox is pruned by the uploader, and only once acked).
"""

from __future__ import annotations

import asyncio
import logging

from edge.store import Store, Transaction, now_ms
from edge.store.outbox import clear_alerts, raise_alert, status

log = logging.getLogger(__name__)


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
        self.last_purge: dict[str, int] = {}
        self._purged_at = -float("inf")

    def purge(self, tx: Transaction, now: int) -> dict[str, int]:
        """Delete finished work older than the retention period, in ``tx``."""
        cutoff = now - self.retention_ms
        old_tours = (
            "SELECT tour FROM tours WHERE state != 'active' AND ended_ms IS NOT NULL "
            "AND ended_ms < ?"
        )
        counts = {
            "scans": tx.execute(
                f"DELETE FROM scans WHERE at_ms < ? AND (tour IS NULL OR tour IN ({old_tours}))",  # noqa: S608 - constant SQL
                (cutoff, cutoff),
            ).rowcount,
            "tours": tx.execute(
                "DELETE FROM tours WHERE state != 'active' AND ended_ms IS NOT NULL "
                "AND ended_ms < ?",
                (cutoff,),
            ).rowcount,
            "tasks": tx.execute(
                "DELETE FROM tasks WHERE state IN ('done', 'cancelled') "
                "AND finished_ms IS NOT NULL AND finished_ms < ?",
                (cutoff,),
            ).rowcount,
            "sessions": tx.execute("DELETE FROM sessions WHERE expires_ms < ?", (now,)).rowcount,
        }
        return counts

    async def tick(self) -> None:
        loop_now = asyncio.get_running_loop().time()
        if loop_now - self._purged_at >= self.purge_every_s:
            self._purged_at = loop_now
            self.last_purge = await self.store.write(lambda tx: self.purge(tx, now_ms()))
            if any(self.last_purge.values()):
                log.info("purged finished work: %s", self.last_purge)
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
        while True:
            await asyncio.sleep(self.interval_s)
            await self.tick()
