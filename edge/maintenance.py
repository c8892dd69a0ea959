"""Store upkeep while the daemon runs: WAL checkpoints, backlog alerts.

A component (see :mod:`edge.daemon`). Every ``checkpoint_interval_s`` it
truncates the WAL (so the file stays bounded even when readers kept the
automatic checkpoint from finishing) and checks the outbox backlog: crossing
``warn_backlog`` raises one ``warn`` alert (upstream too, as an ``alert`` event)
and crossing back below clears it. It never drops or rewrites an event.
"""

from __future__ import annotations

import asyncio
import logging

from edge.store import Store, Transaction
from edge.store.outbox import clear_alerts, raise_alert, status

log = logging.getLogger(__name__)


class Maintenance:
    name = "maintenance"

    def __init__(self, store: Store, *, interval_s: float, warn_backlog: int) -> None:
        self.store = store
        self.interval_s = interval_s
        self.warn_backlog = warn_backlog
        self.last_checkpoint: tuple[int, int, int] | None = None

    async def tick(self) -> None:
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
