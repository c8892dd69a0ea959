"""Helpers shared by the sync tests (imported as a plain module)."""

from __future__ import annotations

import random
from typing import Any

import msgpack

from cloud_sync.client import SyncClient
from cloud_sync.events import PickConfirmed, StockDelta, StockReason
from cloud_sync.uploader import Uploader
from edge.store import Store, Transaction
from edge.store.sync_state import StoreOutbox
from simulators.cloud import CloudSimulator

SECRET = "s3cret-for-tests-only"
BOX = "box-1"
SKUS = [f"SKU-{i}" for i in range(1, 6)]
LOCS = [f"A01-{i:02d}" for i in range(1, 5)]


def move(tx: Transaction, rng: random.Random, n: int) -> tuple[int, str, str, int]:
    """One floor fact: a stock move and its pick, in the caller's transaction."""
    sku, loc = rng.choice(SKUS), rng.choice(LOCS)
    qty = rng.choice([-3, -2, -1, 1, 2, 3])
    seq = tx.append(
        StockDelta(sku=sku, location=loc, qty=qty, reason=StockReason.PICK, ref=f"T{n}", lot=None)
    )
    tx.append(
        PickConfirmed(
            task=f"T{n}",
            order=f"O{n}",
            line="1",
            sku=sku,
            location=loc,
            qty=abs(qty),
            picker="p1",
            codes=(f"code-{n}",),
        )
    )
    return seq, sku, loc, qty


def write_moves(store: Store, count: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    for n in range(count):
        with store.transaction() as tx:
            move(tx, rng, n)


def uploader(store: Store, client: SyncClient, **kwargs: Any) -> Uploader:
    opts: dict[str, Any] = {
        "batch_max_events": 50,
        "backoff_min_s": 0.005,
        "backoff_max_s": 0.03,
        "poll_interval_s": 0.05,
        "rng": random.Random(7),
    }
    opts.update(kwargs)
    return Uploader(StoreOutbox(store), client, **opts)


def box_rows(store: Store, epoch: str) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT seq, type, at_ms, payload FROM outbox WHERE epoch = ? ORDER BY seq", (epoch,)
    )
    return [
        {
            "seq": r["seq"],
            "type": r["type"],
            "at": r["at_ms"],
            "data": msgpack.unpackb(r["payload"]),
        }
        for r in rows
    ]


def ledger(store: Store) -> dict[tuple[str, str], int]:
    rows = store.query(
        "SELECT sku, location, SUM(qty) AS q FROM stock_ledger GROUP BY sku, location"
    )
    return {(r["sku"], r["location"]): r["q"] for r in rows if r["q"] != 0}


def nonzero(d: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {k: v for k, v in d.items() if v != 0}


def assert_converged(
    sim: CloudSimulator, store: Store, box: str = BOX, *, stock: bool = True
) -> None:
    """The cloud holds every event of the box's epoch exactly once, contiguous,
    with the same content, and (``stock``) its net stock equals the box's ledger."""
    epoch = store.epoch
    next_seq = store.query("SELECT next_seq FROM box")[0]["next_seq"]
    cloud = sim.receiver.events(box, epoch)
    assert [e["seq"] for e in cloud] == list(range(1, next_seq)), "contiguous, exactly once"
    assert cloud == box_rows(store, epoch), "same content as the box wrote"
    assert sim.receiver.acked(box, epoch) == next_seq - 1
    state = store.query("SELECT acked_epoch, acked_seq FROM sync_state")[0]
    assert (state["acked_epoch"], state["acked_seq"]) == (epoch, next_seq - 1)
    if stock:
        assert nonzero(sim.receiver.net_stock(box)) == ledger(store)
