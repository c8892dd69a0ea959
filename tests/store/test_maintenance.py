"""Store upkeep: the WAL is cut back and a high backlog raises one alert per
episode, cleared when it drains."""

from __future__ import annotations

from pathlib import Path

import msgpack

from edge.maintenance import Maintenance
from edge.store import Store, outbox


async def test_backlog_alert_once_per_episode_and_checkpoint(tmp_path: Path) -> None:
    with Store.open(tmp_path / "m.db", box_id="b") as store:
        for _ in range(5):
            with store.transaction() as tx:
                tx.append_event(
                    "stock_delta",
                    {
                        "sku": "A",
                        "location": "L",
                        "qty": -1,
                        "reason": "pick",
                        "ref": None,
                        "lot": None,
                    },
                )
        m = Maintenance(store, interval_s=60, warn_backlog=5)
        await m.tick()
        await m.tick()  # still high: no second alert
        alerts = store.query("SELECT kind, severity, cleared_ms FROM alerts")
        assert alerts == [{"kind": "backlog_high", "severity": "warn", "cleared_ms": None}]
        sent = [
            msgpack.unpackb(r["payload"])
            for r in store.query("SELECT payload FROM outbox WHERE type = 'alert'")
        ]
        assert [a["kind"] for a in sent] == ["backlog_high"]
        assert m.last_checkpoint is not None and m.last_checkpoint[0] == 0
        assert (tmp_path / "m.db-wal").stat().st_size == 0
        with store.transaction() as tx:
            outbox.mark_acked(tx, store.epoch, 6)
        await m.tick()
        assert store.query("SELECT cleared_ms IS NOT NULL AS cleared FROM alerts") == [
            {"cleared": 1}
        ]
