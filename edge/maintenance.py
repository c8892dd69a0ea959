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

import msgpack

from edge.store import Store, Transaction, now_ms
from edge.store.outbox import status

log = logging.getLogger(__name__)


def raise_alert(
    tx: Transaction, kind: str, severity: str, subject: str, detail: dict[str, object]
) -> int:
    """Record an alert on the box and send it upstream, in the caller's transaction.

    An alert of the same kind and subject that is still open is not raised
    again (one alert per episode, not per retry). Returns the alert id.
    """
    row = tx.execute(
        "SELECT id FROM alerts WHERE kind = ? AND subject = ? AND cleared_ms IS NULL",
        (kind, subject),
    ).fetchone()
    if row is not None:
        return int(row[0])
    cur = tx.execute(
        "INSERT INTO alerts (kind, severity, subject, detail, raised_ms) VALUES (?, ?, ?, ?, ?)",
        (kind, severity, subject, msgpack.packb(detail, use_bin_type=True), now_ms()),
    )
    tx.append_event(
        "alert", {"kind": kind, "severity": severity, "subject": subject, "detail": detail}
    )
    log.warning("alert %s (%s) on %s: %s", kind, severity, subject, detail)
    return int(cur.lastrowid or 0)


def clear_alert(tx: Transaction, kind: str, subject: str) -> bool:
    cur = tx.execute(
        "UPDATE alerts SET cleared_ms = ? WHERE kind = ? AND subject = ? AND cleared_ms IS NULL",
        (now_ms(), kind, subject),
    )
    return cur.rowcount > 0


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
                    self.store.box_id,
                    {"backlog": backlog, "threshold": self.warn_backlog},
                )

            await self.store.write(warn)
        else:
            await self.store.write(lambda tx: clear_alert(tx, "backlog_high", self.store.box_id))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.tick()
