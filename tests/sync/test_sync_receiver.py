"""The reference receiver's rules, and the simulator's authentication."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import msgpack
from sync_helpers import BOX, SECRET, uploader, write_moves

from cloud_sync.client import SyncClient
from cloud_sync.codec import encode_batch
from cloud_sync.events import StockDelta, StockReason
from cloud_sync.receiver import Answer, ChangeFeed, Receiver
from cloud_sync.signing import Signer
from cloud_sync.uploader import Step
from edge.store import Store
from simulators.cloud import CloudSimulator


def batch(first: int, last: int, epoch: str = "e1", qty: int = -1) -> bytes:
    delta = StockDelta(sku="S", location="L", qty=qty, reason=StockReason.PICK, ref=None, lot=None)
    return encode_batch(BOX, epoch, [delta] * (last - first + 1), first=first)


def test_apply_dedup_gap_and_conflict(tmp_path: Path) -> None:
    r = Receiver(tmp_path / "cloud.db")
    assert r.receive(BOX, batch(1, 5)).doc == {"acked": 5}
    dup = r.receive(BOX, batch(2, 4))
    assert (dup.status, dup.doc) == (200, {"acked": 5})  # a duplicate: applied nothing
    over = r.receive(BOX, batch(3, 8))  # overlaps: only 6..8 are new
    assert (over.status, over.doc) == (200, {"acked": 8})
    gap = r.receive(BOX, batch(10, 12))
    assert (gap.status, gap.doc) == (409, {"acked": 8})
    conflict = r.receive(BOX, batch(7, 9, qty=+5))  # seq 7 held with other content
    assert conflict.status == 409 and conflict.doc["error"]["code"] == "epoch_conflict"
    assert r.acked(BOX, "e1") == 8 and r.count(BOX) == 8
    assert r.net_stock(BOX) == {("S", "L"): -8}
    assert r.receive(BOX, batch(1, 2, epoch="e2")).doc == {"acked": 2}  # a new epoch
    assert r.epochs(BOX) == [("e1", 8), ("e2", 2)]
    assert r.stock_view(BOX, "S", "L") == (-10, "e2", 2)
    r.close()
    again = Receiver(tmp_path / "cloud.db")  # survives a restart
    assert again.acked(BOX, "e1") == 8 and again.receive(BOX, batch(1, 8)).doc == {"acked": 8}
    again.close()


def test_bad_batches_get_400_and_oversize_413() -> None:
    r = Receiver(max_batch_bytes=2048)
    assert r.receive(BOX, b"junk").status == 400
    assert r.receive("other-box", batch(1, 1)).status == 400
    assert r.receive(BOX, batch(1, 200)).status == 413
    assert r.count(BOX) == 0


def test_feed_pages_and_cursor() -> None:
    r = Receiver()
    feed = ChangeFeed(r, [{"type": "picker", "data": {"n": i}} for i in range(5)])
    feed.add({"type": "stock", "data": {"sku": "S", "location": "L", "base": 10}})
    p1 = feed.page(BOX, None, 4).doc
    assert (p1["cursor"], p1["more"], len(p1["changes"])) == ("p4", True, 4)
    p2 = feed.page(BOX, p1["cursor"], 4).doc
    assert (p2["cursor"], p2["more"]) == ("p6", False)
    assert p2["changes"][1]["data"] == {
        "sku": "S",
        "location": "L",
        "qty": 10,
        "epoch": None,
        "acked": 0,
    }
    assert feed.page(BOX, "nonsense", 4).status == 400
    assert feed.page(BOX, "p99", 4).status == 400


async def test_simulator_refuses_unsigned_and_wrongly_signed_requests() -> None:
    async with CloudSimulator(SECRET) as sim, aiohttp.ClientSession() as session:
        body = batch(1, 3)
        path = "/sync/v1/batches"
        good = Signer(SECRET).request("POST", path, body)
        cases: list[dict[str, Any]] = [
            {"X-Box-Id": BOX},
            {"X-Box-Id": BOX, "X-Signature": Signer("wrong").request("POST", path, body)},
            {"X-Box-Id": BOX, "X-Signature": Signer(SECRET).request("POST", path, body + b"x")},
            {"X-Signature": good},
        ]
        for headers in cases:
            async with session.post(sim.url + path, data=body, headers=headers) as resp:
                assert resp.status == 401
        async with session.post(
            sim.url + path,
            data=body,
            headers={"X-Box-Id": BOX, "X-Signature": good, "Accept": "application/msgpack"},
        ) as resp:
            payload = await resp.read()
            assert resp.status == 200
            assert msgpack.unpackb(payload) == {"acked": 3}
            assert Signer(SECRET).verify_answer(resp.headers["X-Signature"], 200, path, payload)
        assert sim.receiver.count(BOX) == 3


async def test_a_cloud_that_conflicts_every_epoch_gets_one_new_epoch_not_a_storm(
    store: Store,
) -> None:
    write_moves(store, 3)
    async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
        # a confused cloud: every batch "conflicts"
        sim.receiver.apply = lambda batch: Answer(  # type: ignore[method-assign]
            409, {"error": {"code": "epoch_conflict"}}
        )
        up = uploader(store, client)
        steps = [await up.step() for _ in range(5)]
    assert steps[0] is Step.SENT  # the first conflict: a new epoch, as the contract says
    assert steps[1:] == [Step.RETRY] * 4  # then back-off, not an epoch per request
    assert store.query("SELECT count(*) AS n FROM epochs")[0]["n"] == 2


async def test_a_cloud_that_answers_200_without_progress_gets_back_off_not_a_spin(
    store: Store,
) -> None:
    write_moves(store, 3)
    async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
        sim.receiver.apply = lambda batch: Answer(200, {"acked": 0})  # type: ignore[method-assign]
        up = uploader(store, client)
        assert [await up.step() for _ in range(3)] == [Step.RETRY] * 3
        assert up.backoff_s > 0
    assert store.query("SELECT acked_seq FROM sync_state")[0]["acked_seq"] == 0
