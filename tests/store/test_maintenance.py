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


async def test_finished_work_is_purged_after_retention(tmp_path: Path) -> None:
    day = 86_400_000
    now = 400 * day
    with Store.open(tmp_path / "p.db", box_id="b") as store:
        with store.transaction() as tx:
            tx.execute(
                "INSERT INTO pickers (id, name, badge, role) VALUES ('p1', 'P', 'B1', 'picker')"
            )
            tx.execute(
                "INSERT INTO pdas (id, name, key_hash, created_ms) VALUES ('d1', 'pda', 'h', 0)"
            )
            tx.execute("INSERT INTO sessions VALUES ('old', 'p1', 'd1', ?)", (now - 1,))
            tx.execute("INSERT INTO sessions VALUES ('live', 'p1', 'd1', ?)", (now + day,))
            for tour, state, ended in (
                (1, "done", now - 40 * day),
                (2, "done", now - day),
                (3, "active", None),
            ):
                tx.execute(
                    "INSERT INTO tours (tour, picker, state, started_ms, ended_ms) "
                    "VALUES (?, 'p1', ?, 0, ?)",
                    (tour, state, ended),
                )
                tx.execute(
                    "INSERT INTO scans VALUES (?, 'p1', ?, 'X', 'item_ok', x'00', ?)",
                    (f"s{tour}", tour, now - 50 * day),
                )
            for task, state, finished in (
                ("T1", "done", now - 40 * day),
                ("T2", "open", None),
                ("T3", "done", now - day),
            ):
                tx.execute(
                    "INSERT INTO tasks (task, state, received_ms, finished_ms) VALUES (?, ?, 0, ?)",
                    (task, state, finished),
                )
            tx.append_event("alert", {"kind": "kept"})
        m = Maintenance(store, interval_s=60, warn_backlog=100, retention_days=30)
        with store.transaction() as tx:
            counts = m.purge(tx, now)
        assert counts == {"scans": 1, "tours": 1, "tasks": 1, "sessions": 1}
        assert [r["tour"] for r in store.query("SELECT tour FROM tours ORDER BY tour")] == [2, 3]
        assert [r["scan_id"] for r in store.query("SELECT scan_id FROM scans ORDER BY 1")] == [
            "s2",
            "s3",
        ]
        assert [r["task"] for r in store.query("SELECT task FROM tasks ORDER BY 1")] == ["T2", "T3"]
        assert store.query("SELECT token_hash FROM sessions") == [{"token_hash": "live"}]
        assert store.query("SELECT count(*) AS n FROM outbox") == [{"n": 1}]  # never purged here
