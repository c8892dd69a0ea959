"""The reference receiver's rules, and the simulator's authentication."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import msgpack
from sync_helpers import BOX, SECRET, uploader, write_moves

from cloud_sync.client import SyncClient
from cloud_sync.codec import batch_answer, encode_batch, epoch_conflict_answer, url_safe
from cloud_sync.events import StockDelta, StockReason
from cloud_sync.receiver import Answer, ChangeFeed, Receiver
from cloud_sync.signing import Signer
from cloud_sync.uploader import Step
from edge.store import Store
from simulators.cloud import CloudSimulator, Faults


def batch(first: int, last: int, epoch: str = "e1", qty: int = -1) -> bytes:
    delta = StockDelta(sku="S", location="L", qty=qty, reason=StockReason.PICK, ref=None, lot=None)
    return encode_batch(BOX, epoch, [delta] * (last - first + 1), first=first)


def ack(acked: int, first: int, last: int, epoch: str = "e1") -> dict[str, Any]:
    """sync-v1's 200 / gap 409 document: the mark and the echo of the batch."""
    return {"acked": acked, "epoch": epoch, "first": first, "last": last}


def test_apply_dedup_gap_and_conflict(tmp_path: Path) -> None:
    r = Receiver(tmp_path / "cloud.db")
    assert r.receive(BOX, batch(1, 5)).doc == ack(5, 1, 5)
    dup = r.receive(BOX, batch(2, 4))
    assert (dup.status, dup.doc) == (200, ack(5, 2, 4))  # a duplicate: applied nothing
    over = r.receive(BOX, batch(3, 8))  # overlaps: only 6..8 are new
    assert (over.status, over.doc) == (200, ack(8, 3, 8))
    gap = r.receive(BOX, batch(10, 12))
    assert (gap.status, gap.doc) == (409, ack(8, 10, 12))
    conflict = r.receive(BOX, batch(7, 9, qty=+5))  # seq 7 held with other content
    assert conflict.status == 409 and conflict.doc["error"]["code"] == "epoch_conflict"
    assert {k: conflict.doc[k] for k in ("acked", "epoch", "first", "last", "conflict_at")} == {
        **ack(8, 7, 9),
        "conflict_at": 7,
    }
    assert r.acked(BOX, "e1") == 8 and r.count(BOX) == 8
    assert r.net_stock(BOX) == {("S", "L"): -8}
    assert r.receive(BOX, batch(1, 2, epoch="e2")).doc == ack(2, 1, 2, "e2")  # a new epoch
    assert r.epochs(BOX) == [("e1", 8), ("e2", 2)]
    assert r.stock_view(BOX, "S", "L") == (-10, "e2", 2)
    r.close()
    again = Receiver(tmp_path / "cloud.db")  # survives a restart
    assert again.acked(BOX, "e1") == 8 and again.receive(BOX, batch(1, 8)).doc == ack(8, 1, 8)
    again.close()


def test_epoch_conflict_names_the_first_seq_that_differs() -> None:
    """sync-v1: ``conflict_at`` is the first seq of the batch held with other
    content; every seq before it matched, so the cloud applied those as the box
    holds them."""
    r = Receiver()

    def delta(qty: int) -> StockDelta:
        return StockDelta(
            sku="S", location="L", qty=qty, reason=StockReason.PICK, ref=None, lot=None
        )

    held = [delta(-1), delta(-2), delta(-3), delta(-4), delta(-5)]
    assert r.receive(BOX, encode_batch(BOX, "e1", held)).status == 200
    restored = [*held[:3], delta(+7), delta(+8), delta(+9)]  # 4.. differ, 6 is new
    for first in (1, 2, 4):
        answer = r.receive(BOX, encode_batch(BOX, "e1", restored[first - 1 :], first=first))
        assert answer.status == 409 and answer.doc["error"]["code"] == "epoch_conflict"
        assert answer.doc["conflict_at"] == 4
        echo = {k: v for k, v in answer.doc.items() if k not in ("error", "conflict_at")}
        assert echo == ack(5, first, 6)
    assert r.count(BOX) == 5 and r.net_stock(BOX) == {("S", "L"): -15}  # nothing applied


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
    for limit in (1, 2, 5):  # every cursor the feed hands out goes into a query as it is
        cursor = None
        while True:
            page = feed.page(BOX, cursor, limit).doc
            cursor = page["cursor"]
            assert url_safe(cursor) and quote(cursor, safe="") == cursor, cursor
            if not page["more"]:
                break
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
        for n, headers in enumerate(cases):
            async with session.post(sim.url + path, data=body, headers=headers) as resp:
                assert resp.status == 401
                signature = resp.headers.get("X-Signature")
                if n < 3:  # the box is named: the cloud knows its secret and signs the 401
                    payload = await resp.read()
                    assert Signer(SECRET).verify_answer(signature, 401, path, payload)
                else:  # no box: nobody's secret to sign with
                    assert signature is None
        async with session.post(
            sim.url + path,
            data=body,
            headers={"X-Box-Id": BOX, "X-Signature": good, "Accept": "application/msgpack"},
        ) as resp:
            payload = await resp.read()
            assert resp.status == 200
            assert msgpack.unpackb(payload) == ack(3, 1, 3)
            assert Signer(SECRET).verify_answer(resp.headers["X-Signature"], 200, path, payload)
        assert sim.receiver.count(BOX) == 3


async def test_a_cloud_that_conflicts_every_epoch_gets_one_new_epoch_not_a_storm(
    store: Store,
) -> None:
    write_moves(store, 3)
    async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
        # a confused cloud: every batch "conflicts"
        sim.receiver.apply = lambda batch: Answer(  # type: ignore[method-assign]
            409,
            epoch_conflict_answer(
                0, batch.epoch, batch.first, batch.last, conflict_at=batch.first, message="?"
            ),
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
        sim.receiver.apply = lambda batch: Answer(  # type: ignore[method-assign]
            200, batch_answer(0, batch.epoch, batch.first, batch.last)
        )
        up = uploader(store, client)
        assert [await up.step() for _ in range(3)] == [Step.RETRY] * 3
        assert up.backoff_s > 0
    assert store.query("SELECT acked_seq FROM sync_state")[0]["acked_seq"] == 0


async def test_the_simulator_signs_its_faults_and_echoes_the_batch() -> None:
    """Every answer of the simulator is signed (sync-v1), a fault's too, and an
    answer to a readable batch echoes its epoch, first and last."""
    faults = ["409", "400", "401", "413", "429", "500", "503", "fail_before", "fail_after"]
    faults += ["lying_ack", None]
    async with CloudSimulator(SECRET) as sim, aiohttp.ClientSession() as session:
        sim.batch_faults = Faults(script=faults)
        path = "/sync/v1/batches"
        for fault in faults:
            body = batch(1, 3)
            headers = {"X-Box-Id": BOX, "X-Signature": Signer(SECRET).request("POST", path, body)}
            async with session.post(sim.url + path, data=body, headers=headers) as resp:
                payload = await resp.read()
                signature = resp.headers.get("X-Signature")
                assert Signer(SECRET).verify_answer(signature, resp.status, path, payload), fault
                doc = json.loads(payload)
                assert (doc["epoch"], doc["first"], doc["last"]) == ("e1", 1, 3), fault
