"""sync-v1 conformance of the deployable receiver, on SQLite and PostgreSQL.

One suite, parametrized over both storage engines (``db``), against the real
HTTP service (:class:`~cloud_sync.receiver.service.ReceiverService` on
loopback, secrets from a directory of mode-600 files), with requests signed by
the box's real :class:`~cloud_sync.client.SyncClient` (its ``Reply.signed`` is
the answer verified with the box's secret) or sent raw and checked with
:meth:`Signer.verify_answer`; then the box's real uploader (an in-memory outbox
and a real edge store) and downloader against it, with resends injected. Every
test checks what the database holds too: the marks, the events, net stock and
the reference OMS's picture.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import psycopg
import pytest

from cloud_sync.client import CHANGES_PATH, SyncClient
from cloud_sync.downloader import Downloader
from cloud_sync.events import PickConfirmed, UnknownEvent, UpstreamEvent
from cloud_sync.receiver import ChangeError, Receiver
from cloud_sync.signing import HEADER, Signer
from cloud_sync.uploader import Uploader
from edge.masterdata import apply_changes
from edge.store import Store
from edge.store.sync_state import StoreChangeSink, StoreOutbox
from edge.store.syncmark import mark_path
from edge.store.upkeep import backup_file
from edge.wiring import check_copy
from simulators.cloud import task_feed
from tests.cloud.receiver_support import (
    AT_MS,
    BOX,
    EPOCH,
    SECRET,
    STORY,
    STORY_STOCK,
    STORY_TASKS,
    LiveReceiver,
    MemoryOutbox,
    ResendingClient,
    batch,
    db,
    delta,
    echo,
    live_receiver,
    nonzero,
    picture,
    post_raw,
    raw_request,
    raw_rows,
    rows_as_events,
    secrets_dir,
    seqs,
    snapshot,
    start_receiver,
    story_picture,
    write_secret,
)
from tests.sync.sync_helpers import box_rows

__all__ = ["db", "secrets_dir"]  # fixtures

KEY = ("SKU-1", "A01-01")


@pytest.fixture
async def cloud(db: str, secrets_dir: Path) -> AsyncIterator[LiveReceiver]:
    async with live_receiver(db, secrets_dir) as live:
        yield live


@pytest.fixture
async def client(cloud: LiveReceiver) -> AsyncIterator[SyncClient]:
    async with SyncClient(cloud.url, BOX, SECRET, timeout_s=10) as c:
        yield c


def empty(receiver: Receiver) -> bool:
    return all(rows == [] for rows in snapshot(receiver).values())


# --------------------------------------------------------------------------- upstream


async def test_duplicates_gaps_and_reordered_retries(
    cloud: LiveReceiver, client: SyncClient
) -> None:
    r = cloud.receiver
    b12 = batch([delta(-1), delta(-2)])
    b34 = batch([delta(-3), delta(-4)], first=3)

    # 3..4 overtakes 1..2: a gap, nothing applied, the mark and the echo
    gap = await client.post_batch(b34)
    assert (gap.status, gap.doc, gap.signed) == (409, echo(0, 3, 4), True)
    assert r.acked(BOX, EPOCH) == 0 and r.count(BOX) == 0

    # then both, in order
    for body, first, last in ((b12, 1, 2), (b34, 3, 4)):
        reply = await client.post_batch(body)
        assert (reply.status, reply.doc, reply.signed) == (200, echo(last, first, last), True)
    assert seqs(r) == [1, 2, 3, 4]
    applied = snapshot(r)

    # then again, out of order and whole: duplicates, 200 with the mark, nothing applied
    for body, first, last in (
        (b34, 3, 4),
        (b12, 1, 2),
        (batch([delta(-1), delta(-2), delta(-3), delta(-4)]), 1, 4),
    ):
        reply = await client.post_batch(body)
        assert (reply.status, reply.doc, reply.signed) == (200, echo(4, first, last), True)
    assert snapshot(r) == applied

    # a resend that reaches beyond the mark applies only what is new
    b36 = batch([delta(-3), delta(-4), delta(-5), delta(-6)], first=3)
    reply = await client.post_batch(b36)
    assert (reply.status, reply.doc) == (200, echo(6, 3, 6))
    assert seqs(r) == [1, 2, 3, 4, 5, 6]
    assert [e["data"]["qty"] for e in r.events(BOX, EPOCH)] == [-1, -2, -3, -4, -5, -6]
    assert r.net_stock(BOX) == {KEY: -21} == picture(r)["stock"]

    # a gap beyond the new mark
    gap = await client.post_batch(batch([delta(-8), delta(-9)], first=8))
    assert (gap.status, gap.doc, gap.signed) == (409, echo(6, 8, 9), True)
    assert r.acked(BOX, EPOCH) == 6 and r.net_stock(BOX) == {KEY: -21}

    # JSON answers (no Accept) are signed the same way
    raw = await post_raw(cloud.url, b12)
    assert (raw.status, raw.doc) == (200, echo(6, 1, 2)) and raw.signed_by(SECRET)
    assert not raw.signed_by("another-secret")


async def test_epoch_conflict_names_the_first_seq_that_differs(
    cloud: LiveReceiver, client: SyncClient
) -> None:
    r = cloud.receiver
    held = [delta(-1), delta(-2), delta(-3), delta(-4), delta(-5)]
    assert (await client.post_batch(batch(held))).doc == echo(5, 1, 5)
    before = snapshot(r)

    restored = [*held[:3], delta(+7), delta(+8), delta(+9)]  # 4.. differ, 6 is new
    for first in (1, 2, 4):
        reply = await client.post_batch(batch(restored[first - 1 :], first=first))
        assert reply.status == 409 and reply.signed
        assert reply.doc["error"]["code"] == "epoch_conflict"
        assert {k: v for k, v in reply.doc.items() if k != "error"} == {
            **echo(5, first, 6),
            "conflict_at": 4,
        }
    # the box's clock is content too (the digest covers type, at and data)
    reply = await client.post_batch(batch(held[:2], at_ms=AT_MS + 1))
    assert (reply.status, reply.doc["conflict_at"]) == (409, 1)
    assert snapshot(r) == before  # seq 6 was not applied either

    # the box moves its events from conflict_at to a new epoch, from seq 1
    reply = await client.post_batch(batch(restored[3:], epoch="e2"))
    assert (reply.status, reply.doc) == (200, echo(3, 1, 3, "e2"))
    assert r.epochs(BOX) == [("e1", 5), ("e2", 3)]
    assert r.net_stock(BOX) == {KEY: -15 + 24} == picture(r)["stock"]
    assert r.stock_view(BOX, *KEY) == (9, "e2", 3)


async def test_bad_signatures_get_401_signed_when_the_box_is_known(
    cloud: LiveReceiver, client: SyncClient, secrets_dir: Path
) -> None:
    write_secret(secrets_dir, "zone-b", "zone-b-secret")
    body = batch([delta(-1)])
    path = "/sync/v1/batches"
    bad: dict[str, dict[str, Any]] = {
        "wrong secret": {"secret": "not-the-secret"},
        "another box's secret": {"secret": "zone-b-secret"},
        "no signature": {"secret": None},
        "tampered body": {"headers": {HEADER: Signer(SECRET).request("POST", path, body + b"x")}},
        "signed for another target": {"signed_path": path + "?x=1"},
        "signed as a GET": {"headers": {HEADER: Signer(SECRET).request("GET", path, body)}},
        "not sha256": {"headers": {HEADER: "md5=" + "0" * 32}},
    }
    for name, kw in bad.items():
        answer = await post_raw(cloud.url, body, **kw)
        assert (answer.status, answer.code) == (401, "bad_signature"), name
        # signed with the box's secret, and only with it
        assert answer.signed_by(SECRET), name
        assert not answer.signed_by("zone-b-secret") and not answer.signed_by("not-the-secret")
    # the same for the change feed
    answer = await raw_request(cloud.url, "GET", CHANGES_PATH + "?limit=5", secret="nope")
    assert answer.status == 401 and answer.signed_by(SECRET)

    # the box's own client on a wrong secret cannot verify the 401 it gets
    async with SyncClient(cloud.url, BOX, "not-the-secret") as wrong:
        reply = await wrong.post_batch(body)
    assert (reply.status, reply.signed, reply.has_signature) == (401, False, True)

    # unknown or unusable box ids: nobody's secret to sign with
    for box in ("zone-unknown", "../secrets/zone-a", "zone a", "z" * 65, ".hidden", "a/b", ""):
        answer = await post_raw(cloud.url, body, box=box)
        assert answer.status == 401 and answer.signature is None, box
        assert answer.code in ("unknown_box", None), box
    answer = await post_raw(cloud.url, body, box=None)
    assert answer.status == 401 and answer.signature is None
    answer = await raw_request(cloud.url, "GET", CHANGES_PATH, box="zone-unknown")
    assert answer.status == 401 and answer.signature is None
    assert empty(cloud.receiver)  # nothing applied, no box recorded

    # the right secret still works
    ok = await client.post_batch(body)
    assert (ok.status, ok.doc, ok.signed) == (200, echo(1, 1, 1), True)


async def test_oversized_batches_get_413(db: str, secrets_dir: Path) -> None:
    limit = 4096
    async with (
        live_receiver(db, secrets_dir, max_batch_bytes=limit) as cloud,
        SyncClient(cloud.url, BOX, SECRET) as client,
    ):
        big = batch([delta(-1, ref="x" * 90)] * 40)
        huge = batch([delta(-1, ref="x" * 90)] * 80)
        assert limit < len(big) <= 2 * limit < len(huge)
        reply = await client.post_batch(big)
        assert (reply.status, reply.signed, reply.doc["error"]["code"]) == (
            413,
            True,
            "batch_too_large",
        )
        raw = await post_raw(cloud.url, big)
        assert raw.status == 413 and raw.signed_by(SECRET)
        # beyond twice the limit aiohttp refuses it unread: 413, unsigned
        raw = await post_raw(cloud.url, huge)
        assert raw.status == 413 and raw.signature is None
        assert empty(cloud.receiver)
        # the box halves it: applied
        reply = await client.post_batch(batch([delta(-1, ref="x" * 90)] * 20))
        assert (reply.status, reply.doc) == (200, echo(20, 1, 20))
        assert cloud.receiver.net_stock(BOX) == {KEY: -20}


def envelope(events: list[Any], **over: Any) -> bytes:
    doc: dict[str, Any] = {
        "v": 1,
        "box": BOX,
        "epoch": EPOCH,
        "first": 4,
        "last": 3 + len(events),
        "events": events,
    }
    doc.update(over)
    return msgpack.packb(doc, use_bin_type=True)  # type: ignore[no-any-return]


def event(seq: int, type_: str = "stock_delta", **data: Any) -> dict[str, Any]:
    base = delta(-1).to_data()
    base.update(data)
    return {"seq": seq, "type": type_, "at": AT_MS, "data": base}


async def test_malformed_batches_get_400_and_change_nothing(
    cloud: LiveReceiver, client: SyncClient
) -> None:
    r = cloud.receiver
    assert (await client.post_batch(batch([delta(-1)] * 3))).doc == echo(3, 1, 3)
    before = snapshot(r)
    no_location = event(4)
    del no_location["data"]["location"]
    bodies = {
        "junk": b"\xc1 not msgpack",
        "not a map": msgpack.packb([1, 2, 3]),
        "version 2": envelope([event(4)], v=2),
        "another box": envelope([event(4)], box="zone-b"),
        "empty epoch": envelope([event(4)], epoch=""),
        "first > last": envelope([], first=5, last=4),
        "seq 0": envelope([event(0)], first=0, last=0),
        "not contiguous": envelope([event(4), event(6)], last=5),
        "count differs": envelope([event(4)], last=5),
        "event not a map": envelope([[4, "stock_delta"]]),
        "at not an int": envelope([{**event(4), "at": "noon"}]),
        "qty not an int": envelope([event(4, qty="three")]),
        "field missing": envelope([no_location]),
        "misfit after a good event": envelope([event(4), event(5, qty=None)]),
    }
    for name, body in bodies.items():
        reply = await client.post_batch(body)
        assert reply.status == 400 and reply.signed, (name, reply)
        assert isinstance(reply.doc["error"]["code"], str) and reply.doc["error"]["code"], name
    assert snapshot(r) == before
    # the stream goes on where it was
    reply = await client.post_batch(batch([delta(-4)], first=4))
    assert (reply.status, reply.doc) == (200, echo(4, 4, 4))
    assert r.net_stock(BOX) == {KEY: -7}


async def test_unknown_event_types_are_stored_and_acked(
    cloud: LiveReceiver, client: SyncClient
) -> None:
    r = cloud.receiver
    events = [
        delta(-1),
        UnknownEvent("robot_docked", {"robot": "R2", "dock": 3, "tags": ["a", "b"]}),
        UnknownEvent("x-future.type", {}),
        delta(-2),
    ]
    reply = await client.post_batch(batch(events))
    assert (reply.status, reply.doc, reply.signed) == (200, echo(4, 1, 4), True)
    stored = r.events(BOX, EPOCH)
    assert [(e["seq"], e["type"], e["data"]) for e in stored] == [
        (1, "stock_delta", delta(-1).to_data()),
        (2, "robot_docked", {"robot": "R2", "dock": 3, "tags": ["a", "b"]}),
        (3, "x-future.type", {}),
        (4, "stock_delta", delta(-2).to_data()),
    ]
    # a resend is a duplicate; other content under an unknown type a conflict
    assert (await client.post_batch(batch(events[1:3], first=2))).doc == echo(4, 2, 3)
    other = UnknownEvent("robot_docked", {"robot": "R3", "dock": 3, "tags": ["a", "b"]})
    reply = await client.post_batch(batch([other], first=2))
    assert (reply.status, reply.doc["conflict_at"]) == (409, 2)
    assert r.count(BOX) == 4 and r.net_stock(BOX) == {KEY: -3}
    assert picture(r)["tasks"] == {} and picture(r)["alerts"] == {}


async def test_the_oms_picture_of_a_shift_counts_every_event_once(
    cloud: LiveReceiver, client: SyncClient
) -> None:
    r = cloud.receiver
    r.enqueue(BOX, *STORY_TASKS)
    assert {t: v["state"] for t, v in picture(r)["tasks"].items()} == dict.fromkeys(
        ("T1", "T2", "T3", "T4"), "open"
    )
    # batches of 4, each delivered twice, and an overlapping resend after each
    for first in range(1, len(STORY) + 1, 4):
        chunk = STORY[first - 1 : first + 3]
        last = first + len(chunk) - 1
        for _ in range(2):
            reply = await client.post_batch(batch(chunk, first=first))
            assert (reply.status, reply.doc["acked"], reply.signed) == (200, last, True)
        overlap = STORY[max(0, first - 3) : last]
        reply = await client.post_batch(batch(overlap, first=max(1, first - 2)))
        assert (reply.status, reply.doc["acked"]) == (200, last)
    assert r.acked(BOX, EPOCH) == len(STORY) == r.count(BOX)
    assert picture(r) == story_picture()
    assert nonzero(r.net_stock(BOX)) == STORY_STOCK
    # a task the OMS updates after picking began stays the box's (picking)
    r.enqueue(BOX, STORY_TASKS[2])
    assert picture(r)["tasks"]["T3"]["state"] == "picking"


# --------------------------------------------------------------------------- the change feed


async def pages(client: SyncClient, cursor: str | None, limit: int) -> tuple[list[Any], str]:
    """Every page from ``cursor`` on; the changes and the last cursor."""
    out: list[Any] = []
    while True:
        reply = await client.get_changes(cursor, limit)
        assert reply.status == 200 and reply.signed, reply
        assert len(reply.doc["changes"]) <= limit
        out += reply.doc["changes"]
        cursor = reply.doc["cursor"]
        if not reply.doc["more"]:
            assert cursor is not None
            return out, cursor


def picker(n: int) -> dict[str, Any]:
    return {
        "type": "picker",
        "data": {
            "id": f"p{n}",
            "name": f"P {n}",
            "badge": f"B{n}",
            "role": "picker",
            "active": True,
        },
    }


async def test_the_feed_pages_and_resumes_after_a_restart(
    db: str, secrets_dir: Path, tmp_path: Path
) -> None:
    write_secret(secrets_dir, "zone-b", "zone-b-secret")
    first = [picker(n) for n in range(1, 8)]
    cloud = await start_receiver(db, secrets_dir)
    try:
        assert cloud.receiver.enqueue(BOX, *first) == 7
        cloud.receiver.enqueue("zone-b", picker(99))
        async with SyncClient(cloud.url, BOX, SECRET) as client:
            sizes, handed_out = [], []
            cursor = None
            while True:
                reply = await client.get_changes(cursor, 3)
                assert reply.status == 200 and reply.signed
                sizes.append((len(reply.doc["changes"]), reply.doc["more"]))
                cursor = reply.doc["cursor"]
                handed_out.append(cursor)
                if not reply.doc["more"]:
                    break
            assert sizes == [(3, True), (3, True), (1, False)]
            served, end = await pages(client, None, 500)
            assert served == first and end == cursor
            # nothing new: an empty page and the same cursor
            reply = await client.get_changes(cursor, 3)
            assert reply.doc == {"cursor": cursor, "more": False, "changes": []}
            # another box's cursor, a made-up one and one beyond the feed: 400, signed
            async with SyncClient(cloud.url, "zone-b", "zone-b-secret") as other:
                theirs = (await other.get_changes(None, 10)).doc
                assert theirs["changes"] == [picker(99)]
            beyond = cursor.replace("v1.7.", "v1.9.")
            for bad in (theirs["cursor"], "v1.3.deadbeef", "p3", "v1.7", beyond):
                reply = await client.get_changes(bad, 3)
                assert reply.status == 400 and reply.signed, bad
                assert reply.doc["error"]["code"] == "bad_cursor", bad
            for limit in ("0", "-1", "x", "99999999999"):
                raw = await raw_request(cloud.url, "GET", f"{CHANGES_PATH}?limit={limit}")
                assert (raw.status, raw.code) == (400, "bad_limit") and raw.signed_by(SECRET)
    finally:
        await cloud.stop()

    # the OMS enqueues while no receiver runs; the service and the Receiver restart
    oms = Receiver(db)
    try:
        oms.enqueue(BOX, picker(8), picker(9))
    finally:
        oms.close()
    async with live_receiver(db, secrets_dir) as again, SyncClient(again.url, BOX, SECRET) as c:
        served, end = await pages(c, cursor, 1)
        assert served == [picker(8), picker(9)]
        assert end.startswith("v1.9.")
        # any cursor handed out before the restart reads on from where it was
        reply = await c.get_changes(handed_out[1], 100)
        assert reply.doc["changes"] == [picker(7), picker(8), picker(9)]
        reply = await c.get_changes(handed_out[0], 2)
        assert (reply.doc["changes"], reply.doc["more"]) == ([picker(4), picker(5)], True)


async def test_changes_for_a_site_reach_the_boxes_registered_to_it(
    cloud: LiveReceiver, secrets_dir: Path
) -> None:
    r = cloud.receiver
    for box, site in (("zone-a", "berlin"), ("zone-b", "berlin"), ("zone-c", "hamburg")):
        r.register(box, site=site)
        if box != BOX:
            write_secret(secrets_dir, box, f"{box}-secret")
    r.enqueue("zone-b", picker(1))  # zone-b's feed already has one change
    assert r.enqueue_site("berlin", picker(2), picker(3)) == {"zone-a": 2, "zone-b": 3}
    r.register("zone-d", site="berlin")  # registered later: does not get them
    assert r.enqueue_site("nowhere", picker(4)) == {}

    async def feed(box: str, secret: str) -> list[Any]:
        async with SyncClient(cloud.url, box, secret) as c:
            return (await pages(c, None, 2))[0]

    assert await feed("zone-a", SECRET) == [picker(2), picker(3)]
    assert await feed("zone-b", "zone-b-secret") == [picker(1), picker(2), picker(3)]
    assert await feed("zone-c", "zone-c-secret") == []
    write_secret(secrets_dir, "zone-d", "zone-d-secret")
    assert await feed("zone-d", "zone-d-secret") == []
    with r.db.transaction() as tx:
        assert dict(tx.all("SELECT box, site FROM boxes ORDER BY box")) == {
            "zone-a": "berlin",
            "zone-b": "berlin",
            "zone-c": "hamburg",
            "zone-d": "berlin",
        }


async def test_a_stock_change_is_its_base_plus_the_applied_deltas(
    cloud: LiveReceiver, client: SyncClient
) -> None:
    r = cloud.receiver
    stock = {"type": "stock", "data": {"sku": "SKU-1", "location": "A01-01", "base": 100}}
    other = {"type": "stock", "data": {"sku": "SKU-9", "location": "A09-09", "base": 5}}
    r.enqueue(BOX, stock, other)

    async def served() -> list[dict[str, Any]]:
        return [c["data"] for c in (await pages(client, None, 10))[0]]

    assert await served() == [
        {"sku": "SKU-1", "location": "A01-01", "qty": 100, "epoch": None, "acked": 0},
        {"sku": "SKU-9", "location": "A09-09", "qty": 5, "epoch": None, "acked": 0},
    ]
    await client.post_batch(batch([delta(-3), delta(-2), delta(+1, "SKU-2")]))
    assert await served() == [
        {"sku": "SKU-1", "location": "A01-01", "qty": 95, "epoch": EPOCH, "acked": 3},
        {"sku": "SKU-9", "location": "A09-09", "qty": 5, "epoch": EPOCH, "acked": 3},
    ]
    # a gap or a conflict changes nothing; a new epoch adds its deltas and names itself
    await client.post_batch(batch([delta(-50)], first=9))
    await client.post_batch(batch([delta(-50)], first=2))
    await client.post_batch(batch([delta(-4)], epoch="e2"))
    assert (await served())[0] == {
        "sku": "SKU-1",
        "location": "A01-01",
        "qty": 91,
        "epoch": "e2",
        "acked": 1,
    }
    assert r.net_stock(BOX) == {KEY: -9, ("SKU-2", "A01-01"): 1}


BAD_CHANGES = [
    {"type": "stock", "data": {"sku": "SKU-1"}},
    {"type": "stock", "data": {"sku": "SKU-1", "location": "A01-01", "base": "7"}},
    {"type": "stock", "data": {"sku": "SKU-1", "location": "A01-01", "base": 1.5}},
    {"type": "stock", "data": {"sku": "SKU-1", "location": 3, "base": 7}},
    {"type": "", "data": {}},
    {"type": "picker", "data": [1]},
]


async def test_a_change_the_feed_could_not_serve_is_refused_when_enqueued(
    cloud: LiveReceiver, client: SyncClient
) -> None:
    """Served, a stock change without sku, location or an int base failed
    every page of the box from there on (500): refused at the OMS's enqueue."""
    r = cloud.receiver
    assert r.enqueue(BOX, picker(1)) == 1
    for bad in [
        *BAD_CHANGES,
        {"type": "stock", "data": {"sku": "S", "location": "L", "base": True}},
    ]:
        with pytest.raises(ChangeError):
            r.enqueue(BOX, picker(2), bad)  # the whole call, not half of it
    stock = {"type": "stock", "data": {"sku": "SKU-1", "location": "A01-01"}}  # base 0
    assert r.enqueue(BOX, stock) == 2
    served, cursor = await pages(client, None, 10)
    assert served == [
        picker(1),
        {
            "type": "stock",
            "data": {"sku": "SKU-1", "location": "A01-01", "qty": 0, "epoch": None, "acked": 0},
        },
    ]
    assert cursor.startswith("v1.2.")


async def test_the_sql_enqueue_function_feeds_boxes_and_refuses_what_it_could_not_serve(
    pg_url: str, secrets_dir: Path
) -> None:
    """``pickedge_enqueue(box, type, data)`` (PostgreSQL): an OMS's own
    transaction enqueues with the positions Receiver.enqueue gives; a change
    the feed could not serve raises in the OMS's transaction instead of
    failing the box's pages later."""
    async with (
        live_receiver(pg_url, secrets_dir) as cloud,
        SyncClient(cloud.url, BOX, SECRET) as client,
    ):
        r = cloud.receiver
        await client.post_batch(batch([delta(-3), delta(-4)]))
        sql = "SELECT pickedge_enqueue(%s, %s, %s)"
        with psycopg.connect(pg_url) as conn:  # one OMS transaction
            assert conn.execute(sql, [BOX, "picker", json.dumps(picker(1)["data"])]).fetchone() == (
                1,
            )
            stock = {"sku": "SKU-1", "location": "A01-01", "base": 50}
            assert conn.execute(sql, [BOX, "stock", json.dumps(stock)]).fetchone() == (2,)
        assert r.enqueue(BOX, picker(3)) == 3
        with psycopg.connect(pg_url) as conn:  # rolled back: no position taken
            conn.execute(sql, [BOX, "picker", json.dumps(picker(9)["data"])])
            conn.rollback()
        for bad in [*BAD_CHANGES, {"type": "picker", "data": "not json"}]:
            data = bad["data"] if isinstance(bad["data"], str) else json.dumps(bad["data"])
            with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.DataError):
                conn.execute(sql, [BOX, bad["type"], data])
        assert r.enqueue(BOX, picker(4)) == 4
        served, cursor = await pages(client, None, 2)
        assert served == [
            picker(1),
            {
                "type": "stock",
                "data": {
                    "sku": "SKU-1",
                    "location": "A01-01",
                    "qty": 43,
                    "epoch": EPOCH,
                    "acked": 2,
                },
            },
            picker(3),
            picker(4),
        ]
        assert cursor.startswith("v1.4.")


# --------------------------------------------------------------------------- the box's uploader


def floor(n: int, seed: int) -> list[UpstreamEvent]:
    rng = random.Random(seed)
    out: list[UpstreamEvent] = []
    for i in range(n):
        sku, loc = rng.choice(["SKU-4", "SKU-5"]), rng.choice(["B01-01", "B01-02"])
        qty = rng.choice([-3, -2, -1, 1, 2])
        out.append(delta(qty, sku, loc, ref=f"F{i}"))
        out.append(
            PickConfirmed(
                task=f"F{i}",
                order=None,
                line="1",
                sku=sku,
                location=loc,
                qty=abs(qty),
                picker="p2",
                codes=(f"c{i}",),
            )
        )
    return out


def with_floor(expected: dict[str, Any], stock: dict[Any, int], floor_tasks: int) -> Any:
    """The story's picture with the floor's moves and picks (each its own task,
    picking) added."""
    expected["stock"] = stock
    for n in range(floor_tasks):
        expected["tasks"][f"F{n}"] = "picking"
    return expected


def floor_view(pic: dict[str, Any]) -> dict[str, Any]:
    """A picture whose floor tasks show their state only."""
    tasks = pic["tasks"]
    pic["tasks"] = {t: (v["state"] if t.startswith("F") else v) for t, v in tasks.items()}
    return pic


def moves(events: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    out: Counter[tuple[str, str]] = Counter()
    for e in events:
        if e["type"] == "stock_delta":
            out[e["data"]["sku"], e["data"]["location"]] += e["data"]["qty"]
    return nonzero(dict(out))


def assert_side_deliveries(client: ResendingClient) -> None:
    """Every injected extra delivery was answered: a signed 200 that applied
    nothing new, or a 413 (a batch the box was about to halve; unsigned when
    beyond twice the limit, refused unread)."""
    assert any(s.status == 200 for s in client.side)
    for reply in client.side:
        assert reply.status in (200, 413), reply
        if reply.status == 200:
            assert reply.signed and reply.doc["acked"] >= reply.doc["last"], reply


SCRIPT = ["lost", None, "twice", "replay", "refused", "lost", "replay", None, "twice", "lost"]


def fast(outbox: Any, client: SyncClient, **kw: Any) -> Uploader:
    opts: dict[str, Any] = {
        "batch_max_events": 8,
        "backoff_min_s": 0.002,
        "backoff_max_s": 0.01,
        "poll_interval_s": 0.05,
        "rng": random.Random(3),
    }
    opts.update(kw)
    return Uploader(outbox, client, **opts)


async def test_the_uploader_drains_an_outbox_through_resends_and_413s(
    db: str, secrets_dir: Path
) -> None:
    """The real uploader, an in-memory outbox of every event type (and one
    unknown), answers lost, deliveries doubled and replayed late, refusals, and
    a cloud whose size limit makes it halve its batches."""
    rows = raw_rows([*STORY, *floor(15, seed=1)])
    outbox = MemoryOutbox(BOX, EPOCH, rows)
    async with (
        live_receiver(db, secrets_dir, max_batch_bytes=2048) as cloud,
        ResendingClient(cloud.url, BOX, SECRET, script=SCRIPT) as client,
    ):
        r = cloud.receiver
        r.enqueue(BOX, *STORY_TASKS)
        acked = await fast(outbox, client, batch_max_events=40).send_all()
        assert acked == len(rows) == outbox.acked
        assert not client.script  # every injected fault happened
        assert r.events(BOX, EPOCH) == rows_as_events(rows)  # each once, same content
        assert r.acked(BOX, EPOCH) == len(rows)
        expected = with_floor(story_picture(), moves(rows_as_events(rows)), 15)
        assert nonzero(r.net_stock(BOX)) == expected["stock"]
        assert floor_view(picture(r)) == expected
        assert_side_deliveries(client)
        assert r.discarded > 0  # the resends reached it and were dropped
        assert outbox.alerts == []
        errors = " ".join(outbox.errors)
        assert "injected: the answer was lost" in errors and "connection refused" in errors
        assert len(client.delivered) > len(rows) // 40  # 413s made it halve


async def test_the_uploader_resends_what_a_cloud_behind_it_lacks(
    db: str, secrets_dir: Path
) -> None:
    """A cloud restored from an older backup: the box thinks 1..10 acked, the
    cloud holds 1..4. Its 409 sends the box back to 5 (and a warn alert)."""
    rows = raw_rows(floor(10, seed=2))  # 20 events
    async with live_receiver(db, secrets_dir) as cloud:
        r = cloud.receiver
        assert r.receive(BOX, batch(rows_as_typed(rows[:4]))).status == 200
        outbox = MemoryOutbox(BOX, EPOCH, rows, acked=10)
        async with SyncClient(cloud.url, BOX, SECRET) as client:
            assert await fast(outbox, client).send_all() == 20
        assert r.events(BOX, EPOCH) == rows_as_events(rows)
        assert [a.kind for a in outbox.alerts] == ["sync_cloud_behind"]
        assert nonzero(r.net_stock(BOX)) == moves(rows_as_events(rows))


def rows_as_typed(rows: list[Any]) -> list[Any]:
    """Typed events of outbox rows (their ``at`` must then be given again)."""
    from cloud_sync.codec import OutboxEvent

    return [OutboxEvent(EPOCH, s, t, at, msgpack.unpackb(p)) for s, t, at, p in rows]


# --------------------------------------------------------------------------- a real box store
# (box_rows: the outbox as the cloud stores it, shared with the sync tests)


def write(store: Store, events: list[UpstreamEvent]) -> None:
    for ev in events:
        with store.transaction() as tx:
            tx.append(ev)


def ledger(store: Store) -> dict[tuple[str, str], int]:
    rows = store.query("SELECT sku, location, SUM(qty) AS q FROM stock_ledger GROUP BY 1, 2")
    return nonzero({(x["sku"], x["location"]): x["q"] for x in rows})


async def test_a_real_box_store_drains_into_the_receiver_exactly_once(
    db: str, secrets_dir: Path, tmp_path: Path
) -> None:
    known = [e for e in STORY if isinstance(e, UpstreamEvent)]  # a box writes known types
    async with live_receiver(db, secrets_dir) as cloud:
        r = cloud.receiver
        r.enqueue(BOX, *STORY_TASKS)
        with Store.open(tmp_path / "box.db", box_id=BOX) as store:
            write(store, known)
            async with ResendingClient(cloud.url, BOX, SECRET, script=SCRIPT) as client:
                up = fast(StoreOutbox(store), client)
                await up.send_all()
                write(store, floor(12, seed=4))  # the floor goes on
                await up.send_all()
            epoch = store.epoch
            last = len(known) + 24
            assert r.events(BOX, epoch) == box_rows(store, epoch)
            assert [e["seq"] for e in r.events(BOX, epoch)] == list(range(1, last + 1))
            assert r.acked(BOX, epoch) == last
            state = store.query("SELECT acked_epoch, acked_seq FROM sync_state")[0]
            assert (state["acked_epoch"], state["acked_seq"]) == (epoch, last)
            assert nonzero(r.net_stock(BOX)) == ledger(store)
            expected = with_floor(story_picture(), ledger(store), 12)
            assert floor_view(picture(r)) == expected
            assert_side_deliveries(client)


async def test_a_cloned_box_gets_epoch_conflict_and_nothing_counts_twice(
    db: str, secrets_dir: Path, tmp_path: Path
) -> None:
    """The card cloned with its sync mark (locally indistinguishable): only the
    receiver's digests see it. conflict_at acks what matched; the clone's own
    events go to a new epoch; the cloud holds every fact once."""
    async with (
        live_receiver(db, secrets_dir) as cloud,
        SyncClient(cloud.url, BOX, SECRET) as client,
    ):
        r = cloud.receiver
        with Store.open(tmp_path / "box.db", box_id=BOX) as original:
            check_copy(original)
            write(original, floor(10, seed=5))  # 1..20
            await fast(StoreOutbox(original), client).send_all()
            write(original, floor(5, seed=6))  # 21..30, unacked when cloned
            (tmp_path / "clone").mkdir()
            clone_path = tmp_path / "clone" / "box.db"
            backup_file(original.path, clone_path)
            shutil.copyfile(mark_path(original.path), mark_path(clone_path))
            write(original, floor(5, seed=7))  # 31..40
            await fast(StoreOutbox(original), client).send_all()
            epoch = original.epoch
            history = box_rows(original, epoch)
        assert r.acked(BOX, epoch) == 40
        with Store.open(clone_path, box_id=BOX) as clone:
            check_copy(clone)
            write(clone, floor(5, seed=8))  # its own 31..40: other content
            own = box_rows(clone, epoch)[30:]
            await fast(StoreOutbox(clone), client, batch_max_events=100).send_all()
            new = clone.epoch
            assert new != epoch
            kinds = [x["kind"] for x in clone.query("SELECT kind FROM alerts")]
            assert kinds == ["sync_epoch_conflict"]
            moved = box_rows(clone, new)
            assert r.events(BOX, epoch) == history  # untouched
            assert r.events(BOX, new) == moved
            assert [(e["type"], e["data"]) for e in moved[:10]] == [
                (e["type"], e["data"]) for e in own
            ]
            alert = moved[-1]["data"]
            assert (alert["kind"], alert["detail"]["conflict_at"]) == ("sync_epoch_conflict", 31)
        assert r.epochs(BOX) == [(epoch, 40), (new, len(moved))]
        assert nonzero(r.net_stock(BOX)) == moves(history + own)


async def test_the_box_downloader_applies_the_feed_and_the_stock_rule(
    db: str, secrets_dir: Path, tmp_path: Path
) -> None:
    """Downstream end to end: the OMS's initial load through the real
    downloader into a real store; the box's on-hand is the cloud's figure plus
    its own deltas after ``acked``."""
    feed = task_feed(items=4, locations=4, pickers=1, tasks=3, stock_qty=1000)
    async with (
        live_receiver(db, secrets_dir) as cloud,
        SyncClient(cloud.url, BOX, SECRET) as client,
    ):
        r = cloud.receiver
        r.enqueue(BOX, *feed)
        with Store.open(tmp_path / "box.db", box_id=BOX) as store:
            sink = StoreChangeSink(store, apply_changes)
            dl = Downloader(sink, client, limit=5, backoff_min_s=0.002, rng=random.Random(1))
            assert await dl.pull_all() == -(-len(feed) // 5)
            count = store.query("SELECT count(*) AS n FROM tasks")[0]["n"]
            assert count == 3
            assert {t["state"] for t in picture(r)["tasks"].values()} == {"open"}
            homes = [
                (c["data"]["sku"], c["data"]["location"]) for c in feed if c["type"] == "stock"
            ]
            picks = [delta(-2, sku, loc) for sku, loc in homes] * 3
            write(store, picks)  # 12 deltas
            up = fast(StoreOutbox(store), client, batch_max_events=7)
            assert (await up.step()).value == "sent"  # the cloud holds 1..7
            r.enqueue(
                BOX,
                *(
                    {"type": "stock", "data": {"sku": s, "location": x, "base": 1000}}
                    for s, x in homes
                ),
            )
            await dl.pull_all()
            on_hand = {
                (x["sku"], x["location"]): x["qty"] for x in store.query("SELECT * FROM stock")
            }
            for key in homes:
                assert on_hand[key] == 1000 + ledger(store)[key], key
            assert r.stock_view(BOX, *homes[0])[1:] == (store.epoch, 7)
            assert sink.cursor() is not None and sink.cursor().startswith("v1.")
            await up.send_all()
            assert nonzero(r.net_stock(BOX)) == ledger(store)
