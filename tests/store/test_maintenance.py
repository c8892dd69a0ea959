"""Store upkeep: the WAL is cut back and a high backlog raises one alert per
episode, cleared when it drains."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgpack

from cloud_sync.events import Alert, Severity, StockDelta, StockReason
from edge.maintenance import Maintenance
from edge.store import Store, outbox


async def test_backlog_alert_once_per_episode_and_checkpoint(tmp_path: Path) -> None:
    with Store.open(tmp_path / "m.db", box_id="b") as store:
        for _ in range(5):
            with store.transaction() as tx:
                tx.append(
                    StockDelta(
                        sku="A", location="L", qty=-1, reason=StockReason.PICK, ref=None, lot=None
                    )
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


def _seed_finished_work(store: Store) -> None:
    with store.transaction() as tx:
        tx.execute("INSERT INTO pickers (id, name, badge, role) VALUES ('p1', 'P', 'B1', 'picker')")
        tx.execute("INSERT INTO pdas (id, name, key_hash, created_ms) VALUES ('d1', 'pda', 'h', 0)")
        tx.execute("INSERT INTO sessions VALUES ('old', 'p1', 'd1', 999)")  # expires_up
        tx.execute("INSERT INTO sessions VALUES ('live', 'p1', 'd1', 5000)")
        for tour, state in ((1, "done"), (2, "cancelled"), (3, "active")):
            tx.execute(
                "INSERT INTO tours (tour, picker, state, started_ms, ended_ms) "
                "VALUES (?, 'p1', ?, 0, 0)",
                (tour, state),
            )
            tx.execute(
                "INSERT INTO scans VALUES (?, 'p1', ?, 'X', 'item_ok', x'00', 0, NULL)",
                (f"s{tour}", tour),
            )
        tx.execute(
            "INSERT INTO scans VALUES ('s0', 'p1', NULL, 'Y', 'unknown_code', x'00', 0, NULL)"
        )
        for task, state in (("T1", "done"), ("T2", "open"), ("T3", "cancelled"), ("T4", "started")):
            tx.execute(
                "INSERT INTO tasks (task, state, received_ms, finished_ms) VALUES (?, ?, 0, 0)",
                (task, state),
            )
        tx.append(Alert(kind="kept", severity=Severity.INFO, subject="kept", detail={}))


#: the finished work these tests follow (the purge counts other tables too)
WORK = ("scans", "tours", "tasks", "tombstones", "sessions", "message_keys", "floor_stats")


def _ids(store: Store, sql: str) -> list[object]:
    return [next(iter(r.values())) for r in store.query(sql)]


async def test_finished_work_is_purged_by_box_uptime_not_wall_clock(tmp_path: Path) -> None:
    day = 86_400_000
    with Store.open(tmp_path / "p.db", box_id="b") as store:
        _seed_finished_work(store)
        m = Maintenance(store, interval_s=60, warn_backlog=100, retention_days=30)
        # First purge at uptime 0: finished work is stamped, nothing goes yet.
        # The wall clock plays no part (the signature has none).
        with store.transaction() as tx:
            counts = m.purge(tx, 0)
        assert {k: counts[k] for k in WORK} == {
            "scans": 0,
            "tours": 0,
            "tasks": 0,
            "tombstones": 0,
            "sessions": 0,
            "message_keys": 0,
            "floor_stats": 0,
        }
        assert _ids(store, "SELECT tour FROM tours ORDER BY 1") == [1, 2, 3]
        # At uptime 1 s the first session (expires_up 999) has ended, not the other.
        with store.transaction() as tx:
            assert m.purge(tx, 1000)["sessions"] == 1
        assert _ids(store, "SELECT token_hash FROM sessions") == ["live"]
        # 29 days of uptime later: still kept.
        with store.transaction() as tx:
            assert m.purge(tx, 29 * day)["tours"] == 0
        # 30 days of uptime: finished tours with their scans, finished tasks, and
        # the scan outside any tour go; active work and open tasks stay.
        with store.transaction() as tx:
            counts = m.purge(tx, 30 * day)
        assert {k: counts[k] for k in WORK} == {
            "scans": 3,
            "tours": 2,
            "tasks": 2,
            "tombstones": 0,
            "sessions": 0,
            "message_keys": 0,
            "floor_stats": 0,
        }
        assert _ids(store, "SELECT tour FROM tours") == [3]
        assert _ids(store, "SELECT scan_id FROM scans") == ["s3"]
        assert _ids(store, "SELECT task FROM tasks ORDER BY 1") == ["T2", "T4"]
        assert _ids(store, "SELECT task FROM task_tombstones ORDER BY 1") == ["T1", "T3"]
        assert store.query("SELECT count(*) AS n FROM outbox") == [{"n": 1}]  # never purged here
        # Tombstones outlive the tasks, then go too.
        with store.transaction() as tx:
            assert m.purge(tx, (30 + 365) * day)["tombstones"] == 2
        # The floor's figures keep 40 days before the newest row, whatever the clock.
        with store.transaction() as tx:
            tx.executemany(
                "INSERT INTO task_exceptions (task, kind, at_ms) VALUES (?, 'short', ?)",
                [("old", 1_000), ("kept", 1_000 + 30 * day), ("new", 1_000 + 41 * day)],
            )
            assert m.purge(tx, (30 + 366) * day)["floor_stats"] == 1
        assert _ids(store, "SELECT task FROM task_exceptions ORDER BY 1") == ["kept", "new"]


async def test_uptime_advances_with_the_monotonic_clock_across_restarts(tmp_path: Path) -> None:
    with Store.open(tmp_path / "u.db", box_id="b") as store:
        m = Maintenance(store, interval_s=60, warn_backlog=100)
        assert await store.write(m.advance_uptime) < 40  # a new box starts at 0
        await asyncio.sleep(0.05)
        first = await store.write(m.advance_uptime)
        assert 40 <= first <= 1000
    with Store.open(tmp_path / "u.db", box_id="b") as store:
        # After a restart the uptime goes on from what was stored.
        assert first <= store.uptime_ms() < first + 40
        m = Maintenance(store, interval_s=60, warn_backlog=100)
        assert first <= await store.write(m.advance_uptime) < first + 40


def test_a_purged_task_sent_again_is_not_picked_again(tmp_path: Path) -> None:
    from edge.masterdata import apply_changes

    task = {
        "type": "task",
        "data": {
            "task": "T9",
            "order": "O9",
            "priority": 1,
            "lines": [{"line": 1, "sku": "A", "qty": 1}],
        },
    }
    with Store.open(tmp_path / "t.db", box_id="b") as store:
        with store.transaction() as tx:
            tx.execute("INSERT INTO task_tombstones (task, purge_at_up) VALUES ('T9', 10)")
            apply_changes(tx, [task])
        assert store.query("SELECT count(*) AS n FROM tasks") == [{"n": 0}]
        alerts = store.query("SELECT kind, subject FROM alerts")
        assert alerts[0]["kind"] == "task_update_ignored" and "T9" in alerts[0]["subject"]


def test_device_message_keys_are_kept_an_hour_of_uptime(tmp_path: Path) -> None:
    """The dedup key of a device message (edge/shipping/inbox.py) outlives any
    redelivery and goes long before a broker's packet ids wrap."""
    with Store.open(tmp_path / "p.db", box_id="b") as store:
        m = Maintenance(store, interval_s=60, warn_backlog=100, retention_days=30)
        store.run(
            lambda tx: tx.execute(
                "INSERT INTO device_inbox (device, key, at_ms) VALUES ('s', 'k', 1000)"
            )
        )
        with store.transaction() as tx:
            assert m.purge(tx, 3_600_999)["message_keys"] == 0
            assert m.purge(tx, 3_601_000)["message_keys"] == 1
