"""The downloader against the real simulator: pages, cursor, signatures, the
stock rule end to end, notices."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any, cast

import msgpack
import pytest
from sync_helpers import BOX, LOCS, SECRET, SKUS, uploader, write_moves

from cloud_sync.client import Reply, SyncClient
from cloud_sync.downloader import Downloader
from edge.masterdata import Notice, apply_changes
from edge.store import Store, Transaction
from edge.store.errors import StoreError
from edge.store.outbox import finish_moves, start_new_epoch
from edge.store.sync_state import StoreChangeSink
from simulators.cloud import CloudSimulator, Faults, task_feed


def downloader(store: Store, client: SyncClient, **kw: Any) -> Downloader[list[Notice]]:
    opts: dict[str, Any] = {
        "limit": 7,
        "backoff_min_s": 0.005,
        "backoff_max_s": 0.02,
        "rng": random.Random(1),
    }
    opts.update(kw)
    return Downloader(StoreChangeSink(store, apply_changes), client, **opts)


def count(store: Store, table: str) -> int:
    return int(store.query(f"SELECT count(*) AS n FROM {table}")[0]["n"])


def cursor(store: Store) -> str | None:
    return store.query("SELECT cursor FROM sync_state")[0]["cursor"]


async def test_pulls_every_page_and_stores_the_cursor(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    sim.feed.add(*task_feed(items=10, locations=10, pickers=2, tasks=5))
    total = len(sim.feed.changes)  # 37 changes, 7 per page
    dl = downloader(store, client)
    assert await dl.pull_all() == 6
    assert cursor(store) == f"p{total}"
    assert (count(store, "items"), count(store, "locations"), count(store, "tasks")) == (10, 10, 5)
    assert store.query("SELECT last_pull_ms FROM sync_state")[0]["last_pull_ms"] is not None
    # nothing new: one empty page, same cursor, same state
    assert await dl.pull_all() == 1
    assert cursor(store) == f"p{total}"
    sim.feed.add({"type": "task_cancel", "data": {"task": "T00001"}})
    await dl.pull_all()
    assert store.query("SELECT state FROM tasks WHERE task = 'T00001'")[0]["state"] == "cancelled"


@pytest.mark.parametrize("fault", ["bad_sig", "unsigned"])
async def test_unsigned_or_wrongly_signed_pages_are_never_applied(
    store: Store, sim: CloudSimulator, client: SyncClient, fault: str
) -> None:
    sim.feed.add(*task_feed(items=3, locations=3, pickers=1, tasks=2))
    sim.changes_faults = Faults(script=[fault] * 3)
    dl = downloader(store, client)
    for _ in range(3):
        assert await dl.pull_once() == (False, False)
    assert count(store, "items") == 0 and cursor(store) is None
    [alert] = store.query("SELECT kind, severity, cleared_ms FROM alerts")
    assert alert["kind"] == "sync_changes_unsigned" and alert["cleared_ms"] is None
    await dl.pull_all()
    assert count(store, "items") == 3
    assert store.query("SELECT cleared_ms FROM alerts")[0]["cleared_ms"] is not None


@pytest.mark.parametrize("fault", ["fail_before", "drop_before", "429", "503", "401"])
async def test_failed_pulls_back_off_and_retry(
    store: Store, sim: CloudSimulator, client: SyncClient, fault: str
) -> None:
    sim.feed.add(*task_feed(items=3, locations=3, pickers=1, tasks=2))
    sim.changes_faults = Faults(script=[fault, fault])
    dl = downloader(store, client)
    await dl.pull_all()
    assert sim.changes_faults.drawn[fault] == 2
    assert count(store, "tasks") == 2
    assert store.query("SELECT last_error FROM sync_state")[0]["last_error"].startswith("download:")


async def test_stock_from_the_cloud_plus_unacked_deltas_is_the_box_truth(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    feed = task_feed(items=5, locations=4, pickers=1, tasks=0, stock_qty=1000)
    sim.feed.add(*feed)
    write_moves(store, 40)  # deltas on SKU-1.. / A01-..
    up = uploader(store, client, batch_max_events=30)
    assert await up.step() is not None  # the cloud now holds seqs 1..30 only
    write_moves(store, 10, seed=9)
    homes = {(c["data"]["sku"], c["data"]["location"]) for c in feed if c["type"] == "stock"}
    # stock changes for the pairs the floor moved, too
    sim.feed.add(
        *(
            {"type": "stock", "data": {"sku": s, "location": loc, "base": 1000}}
            for s in SKUS
            for loc in LOCS
        )
    )
    await downloader(store, client, limit=100).pull_all()
    ledger = {
        (r["sku"], r["location"]): r["q"]
        for r in store.query(
            "SELECT sku, location, SUM(qty) AS q FROM stock_ledger GROUP BY sku, location"
        )
    }
    stock = {(r["sku"], r["location"]): r["qty"] for r in store.query("SELECT * FROM stock")}
    for key in {(s, loc) for s in SKUS for loc in LOCS} | homes:
        assert stock[key] == 1000 + ledger.get(key, 0), key


async def test_notices_reach_on_applied_after_the_commit(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    sim.feed.add(*task_feed(items=3, locations=3, pickers=1, tasks=1))
    got: list[list[Notice]] = []
    dl = downloader(store, client, on_applied=got.append)
    await dl.pull_all()
    with store.transaction() as tx:
        tx.execute("UPDATE tasks SET state = 'started'")
        tx.execute("INSERT INTO tours (tour, picker, started_ms) VALUES (1, 'p1', 0)")
        tx.execute(
            "INSERT INTO tour_stops (tour, stop, task, line, sku, location, qty) "
            "VALUES (1, 1, 'T00001', '1', 'SKU-0001', 'A01-01', 1)"
        )
    sim.feed.add({"type": "task_cancel", "data": {"task": "T00001"}})
    await dl.pull_all()
    assert [n for page in got for n in page] == [
        Notice(kind="task_cancelled", task="T00001", pickers=("p1",), tours=(1,))
    ]


async def test_a_box_with_a_wrong_secret_gets_nothing(store: Store, sim: CloudSimulator) -> None:
    sim.feed.add(*task_feed(items=2, locations=2, pickers=1, tasks=1))
    async with SyncClient(sim.url, BOX, SECRET + "x") as wrong:
        assert await downloader(store, wrong).pull_once() == (False, False)
    assert sim.stats["changes", "401"] == 1 and count(store, "items") == 0


# --------------------------------------------------------------------------- failures (issue 17, 5)


def bad_task(task: str = "T-BAD") -> dict[str, Any]:
    """A task whose two lines share an id: the box's tables cannot hold it."""
    lines = [{"line": "1", "sku": "SKU-0001", "qty": 1}, {"line": 1, "sku": "SKU-0002", "qty": 2}]
    return {"type": "task", "data": {"task": task, "order": "O-BAD", "lines": lines}}


def open_alerts(store: Store) -> list[dict[str, Any]]:
    return store.query(
        "SELECT kind, severity, subject, detail FROM alerts WHERE cleared_ms IS NULL ORDER BY id"
    )


async def test_a_change_the_box_cannot_apply_stops_the_feed_visibly(
    store: Store, sim: CloudSimulator, client: SyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cloud_sync.downloader")
    sim.feed.add(*task_feed(items=3, locations=3, pickers=1, tasks=1))
    dl = downloader(store, client, limit=100)
    await dl.pull_all()
    before = cursor(store)
    sim.feed.add(
        {"type": "task", "data": {"task": "T-OK", "lines": [{"line": 1, "sku": "S", "qty": 1}]}}
    )
    sim.feed.add(bad_task())
    for _ in range(3):  # refused, not raised: no crash loop; the same page each time
        assert await dl.pull_once() == (False, False)
        assert dl.backoff_s > 0
    assert cursor(store) == before  # nothing skipped: the page waits
    assert count(store, "tasks") == 1  # the good change of the page is not applied either
    [alert] = open_alerts(store)
    assert (alert["kind"], alert["severity"]) == ("sync_changes_invalid", "crit")
    assert "T-BAD" in alert["subject"] and "line 1" in alert["subject"]
    assert "T-BAD" in msgpack.unpackb(alert["detail"])["error"]
    last = store.query("SELECT last_error FROM sync_state")[0]["last_error"]
    assert last.startswith("download:") and "T-BAD" in last
    lines = [r for r in caplog.records if "T-BAD" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR  # one clear line, not one a retry
    # the cloud fixes its change: the same page now applies and the episode ends
    sim.feed.changes[-1] = {
        "type": "task",
        "data": {"task": "T-BAD", "lines": [{"line": "1", "sku": "S", "qty": 1}]},
    }
    await dl.pull_all()
    assert count(store, "tasks") == 3 and not open_alerts(store)


async def test_a_store_failure_is_a_crit_alert_and_a_back_off_not_a_crash(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    sim.feed.add(*task_feed(items=3, locations=3, pickers=1, tasks=1))
    broken = [True]

    def apply(tx: Transaction, changes: Sequence[Mapping[str, Any]]) -> list[Notice]:
        if broken[0]:
            raise StoreError(f"{store.path}: database or disk is full")
        return apply_changes(tx, changes)

    dl = Downloader(
        StoreChangeSink(store, apply),
        client,
        limit=100,
        pull_interval_s=0.01,
        backoff_min_s=0.005,
        backoff_max_s=0.02,
        rng=random.Random(1),
    )
    runner = asyncio.create_task(dl.run())
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if sim.stats["changes", "200"] >= 3:
                break
        assert not runner.done()  # still running: failures back off, they do not crash it
        assert sim.stats["changes", "200"] >= 3 and cursor(store) is None
        [alert] = open_alerts(store)
        assert (alert["kind"], alert["severity"]) == ("sync_changes_failed", "crit")
        assert "disk is full" in msgpack.unpackb(alert["detail"])["error"]
        broken[0] = False
        for _ in range(200):
            await asyncio.sleep(0.01)
            if cursor(store) is not None:
                break
        assert count(store, "tasks") == 1
        assert not open_alerts(store)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_a_stock_figure_ahead_of_a_restored_box_stops_the_feed_until_a_new_epoch(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    # Issue 17, 6. The cloud holds 40 events of the box's epoch; the box then
    # goes back to seq 10 (a restored backup, faked in SQL so the test does not
    # depend on how a restore is detected) and writes new moves of its own.
    write_moves(store, 20)
    assert await uploader(store, client, batch_max_events=100).step() is not None
    assert sim.receiver.acked(BOX, store.epoch) == 40
    with store.transaction() as tx:
        tx.execute("DELETE FROM outbox WHERE seq > 10")
        tx.execute("DELETE FROM stock_ledger WHERE seq > 10")
        tx.execute("UPDATE box SET next_seq = 11")
        tx.execute("UPDATE sync_state SET acked_seq = 10")
        tx.execute("UPDATE epochs SET acked = 10")  # the ack mark lives per epoch
    write_moves(store, 3, seed=5)  # seqs 11..16: the cloud has other events under them
    pairs = [(s, loc) for s in SKUS for loc in LOCS]
    sim.feed.add(
        *({"type": "stock", "data": {"sku": s, "location": loc, "base": 1000}} for s, loc in pairs)
    )
    dl = downloader(store, client, limit=100)
    assert await dl.pull_once() == (False, False)
    assert cursor(store) is None and count(store, "stock") == 0  # refused whole
    [alert] = open_alerts(store)
    assert (alert["kind"], alert["severity"]) == ("sync_stock_ahead", "crit")
    assert "up to seq 40" in alert["subject"] and "written only 16" in alert["subject"]
    # The box moves its unacked events (its own 11..16) to a new epoch, as on
    # the cloud's epoch_conflict: the same page now applies, and on-hand is the
    # cloud's figure (all 40 events it holds) plus the box's new moves in full.
    with store.transaction() as tx:
        start_new_epoch(tx)
    await dl.pull_all()  # (applies while the rows are still moving: they count)
    finish_moves(store)
    assert not open_alerts(store)
    cloud = sim.receiver.net_stock(BOX)
    own = {
        (r["sku"], r["location"]): r["q"]
        for r in store.query(
            "SELECT sku, location, SUM(qty) AS q FROM stock_ledger WHERE epoch = ? "
            "GROUP BY sku, location",
            (store.epoch,),
        )
    }
    assert own  # the new moves are there
    stock = {(r["sku"], r["location"]): r["qty"] for r in store.query("SELECT * FROM stock")}
    for key in pairs:
        assert stock[key] == 1000 + cloud.get(key, 0) + own.get(key, 0), key


class OneAnswer:
    """A client whose every changes answer is ``doc``, signed."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.cursors: list[str | None] = []

    async def get_changes(self, cursor: str | None, limit: int) -> Reply:
        self.cursors.append(cursor)
        return Reply(200, self.doc, signed=True, has_signature=True)


async def test_a_cursor_that_is_not_url_safe_is_never_stored(store: Store) -> None:
    # Stored, it would make every later request fail: refuse the page instead.
    cancel = {"type": "task_cancel", "data": {"task": "T-1"}}
    page: dict[str, Any] = {"cursor": "p 7/é", "more": False, "changes": [cancel]}
    client = OneAnswer(page)
    dl = downloader(store, cast(SyncClient, client))
    assert await dl.pull_once() == (False, False)
    assert cursor(store) is None and count(store, "task_tombstones") == 0
    [alert] = open_alerts(store)
    assert (alert["kind"], alert["severity"]) == ("sync_changes_invalid", "crit")
    client.doc = {**page, "cursor": "p7"}
    assert await dl.pull_once() == (True, False)
    assert cursor(store) == "p7" and client.cursors == [None, None]
    assert not open_alerts(store)
