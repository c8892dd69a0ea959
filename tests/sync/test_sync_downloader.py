"""The downloader against the real simulator: pages, cursor, signatures, the
stock rule end to end, notices."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sync_helpers import BOX, LOCS, SECRET, SKUS, uploader, write_moves

from cloud_sync.client import SyncClient
from cloud_sync.downloader import Downloader
from edge.masterdata import Notice, apply_changes
from edge.store import Store
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
