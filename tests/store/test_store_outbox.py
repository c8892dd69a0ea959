"""The outbox rule: events are written in the transaction of their change,
with contiguous seqs, and nothing of a rolled-back change survives."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import msgpack
import pytest

from cloud_sync.events import (
    Alert,
    EventError,
    PickConfirmed,
    Severity,
    StockDelta,
    StockReason,
    UpstreamEvent,
)
from edge.store import Store, outbox
from edge.store.errors import BacklogFullError


def _delta(sku: str, location: str, qty: int) -> StockDelta:
    return StockDelta(
        sku=sku, location=location, qty=qty, reason=StockReason.PICK, ref=None, lot=None
    )


def _alert(**detail: Any) -> Alert:
    return Alert(kind="test", severity=Severity.INFO, subject="a test event", detail=detail)


def _pick(sku: str, qty: int) -> PickConfirmed:
    return PickConfirmed(
        task="T1", order=None, line="1", sku=sku, location="L1", qty=qty, picker="p1", codes=()
    )


def test_first_open_mints_identity_and_epoch(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db", box_id="box-1") as store:
        epoch = store.epoch
        assert store.box_id == "box-1"
        assert len(epoch) == 16
    with Store.open(tmp_path / "a.db", box_id="box-1") as store:
        assert store.epoch == epoch  # minted once, on first start
    with Store.open(tmp_path / "b.db", box_id="box-1") as other:
        assert other.epoch != epoch


def test_events_commit_with_their_change(store: Store) -> None:
    with store.transaction() as tx:
        tx.execute("INSERT INTO items (sku) VALUES ('A')")
        s1 = tx.append(_delta("A", "L1", -1))
        s2 = tx.append(_pick("A", 1))
    assert (s1, s2) == (1, 2)
    rows = store.query("SELECT seq, type, payload FROM outbox ORDER BY seq")
    assert [r["type"] for r in rows] == ["stock_delta", "pick_confirmed"]
    assert msgpack.unpackb(rows[0]["payload"]) == {
        "sku": "A",
        "location": "L1",
        "qty": -1,
        "reason": "pick",
        "ref": None,
        "lot": None,
    }
    assert store.query("SELECT qty FROM stock_ledger") == [{"qty": -1}]


def test_rollback_leaves_no_event_and_no_gap(store: Store) -> None:
    with store.transaction() as tx:
        tx.append(_alert(kind="a"))
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.execute("INSERT INTO items (sku) VALUES ('B')")
        tx.append(_delta("B", "L1", -5))
        raise RuntimeError("the change failed after its event was appended")
    with store.transaction() as tx:
        seq = tx.append(_alert(kind="b"))
    assert seq == 2
    assert store.query("SELECT count(*) AS n FROM items WHERE sku = 'B'") == [{"n": 0}]
    assert store.query("SELECT seq FROM outbox ORDER BY seq") == [{"seq": 1}, {"seq": 2}]
    assert store.query("SELECT count(*) AS n FROM stock_ledger") == [{"n": 0}]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Misspelled(UpstreamEvent):
    """An event class of a type sync-v1 does not have (a typo in ``TYPE``)."""

    TYPE: ClassVar[str] = "pick_confrimed"
    sku: str


def test_an_event_of_a_type_outside_the_contract_is_refused(store: Store) -> None:
    with pytest.raises(TypeError, match="not a sync-v1 event"), store.transaction() as tx:
        tx.execute("INSERT INTO items (sku) VALUES ('A')")
        tx.append(_Misspelled(sku="A"))
    assert store.query("SELECT count(*) AS n FROM outbox") == [{"n": 0}]
    assert store.query("SELECT count(*) AS n FROM items") == [{"n": 0}]
    assert store.query("SELECT next_seq FROM box") == [{"next_seq": 1}]


def test_a_raw_data_map_is_not_an_event(store: Store) -> None:
    # The old (type, dict) shape cannot slip into the outbox untyped.
    raw: Any = {"type": "pick_confirmed", "sku": "A", "qty": 1}
    with pytest.raises(TypeError, match="not a sync-v1 event"), store.transaction() as tx:
        tx.append(raw)
    assert store.query("SELECT count(*) AS n FROM outbox") == [{"n": 0}]


def test_an_event_the_cloud_would_refuse_never_enters_the_outbox(store: Store) -> None:
    # A line id read back from SQLite as an int (dynamic typing) would make the
    # receiver answer 400 and stop the whole stream: it fails here, at its source.
    bad: Any = 7
    event = PickConfirmed(
        task="T1", order=None, line=bad, sku="A", location="L1", qty=1, picker="p", codes=()
    )
    with pytest.raises(EventError, match="line must be a string"), store.transaction() as tx:
        tx.append(event)
    assert store.query("SELECT count(*) AS n FROM outbox") == [{"n": 0}]
    assert store.query("SELECT next_seq FROM box") == [{"next_seq": 1}]


def test_many_writer_threads_get_contiguous_seqs(store: Store) -> None:
    per_thread, threads = 60, 8
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(per_thread):
                with store.transaction() as tx:
                    tx.execute(
                        "INSERT INTO stock (sku, location, qty) VALUES (?, ?, 1)",
                        (f"S{n}", f"L{i}"),
                    )
                    tx.append(_delta(f"S{n}", f"L{i}", 1))
                    if i % 7 == 0:
                        tx.append(_alert(n=n, i=i))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    seqs = [r["seq"] for r in store.query("SELECT seq FROM outbox ORDER BY seq")]
    expected = threads * (per_thread + len(range(0, per_thread, 7)))
    assert seqs == list(range(1, expected + 1))
    assert store.query("SELECT count(*) AS n FROM stock") == [{"n": threads * per_thread}]


async def test_async_writes_from_many_tasks_are_contiguous(store: Store) -> None:
    import asyncio

    async def one(i: int) -> int:
        return await store.write(lambda tx: tx.append(_alert(i=i)))

    seqs = await asyncio.gather(*(one(i) for i in range(200)))
    assert sorted(seqs) == list(range(1, 201))


def test_ack_prune_and_status(store: Store) -> None:
    for i in range(5):
        with store.transaction() as tx:
            tx.append(_delta("A", "L1", -1), at_ms=1000 + i)
    epoch = store.epoch
    assert outbox.status(store).backlog == 5
    with store.transaction() as tx:
        assert outbox.mark_acked(tx, epoch, 3) == 3
        assert outbox.mark_acked(tx, epoch, 2) == 3  # never moves back
        assert outbox.mark_acked(tx, "another-epoch", 5) == 0  # stale epoch: nothing
    st = outbox.status(store)
    assert (st.acked_seq, st.backlog, st.oldest_unacked_ms) == (3, 2, 1003)
    assert [e.seq for e in outbox.read_unacked(store, limit=10)] == [4, 5]
    with pytest.raises(ValueError, match="beyond the last event"), store.transaction() as tx:
        outbox.mark_acked(tx, epoch, 6)
    with store.transaction() as tx:
        assert outbox.prune_acked(tx, acked_before_up=store.uptime_ms()) == 3  # only acked go
    assert [r["seq"] for r in store.query("SELECT seq FROM outbox")] == [4, 5]
    with store.transaction() as tx:
        assert tx.append(_alert()) == 6  # pruning never reuses a seq


def test_read_unacked_respects_byte_budget(store: Store) -> None:
    with store.transaction() as tx:
        for i in range(10):
            tx.append(_alert(blob="x" * 1000, i=i))
    batch = outbox.read_unacked(store, limit=100, max_bytes=3500)
    assert [e.seq for e in batch] == [1, 2, 3]
    assert [e.seq for e in outbox.read_unacked(store, limit=100, max_bytes=10)] == [1]
    assert [e.seq for e in outbox.read_unacked(store, limit=4, after_seq=8)] == [9, 10]


def test_new_epoch_moves_unacked_events_in_order(store: Store) -> None:
    with store.transaction() as tx:
        for q in (-1, -2, -3):
            tx.append(_delta("A", "L1", q))
    old = store.epoch
    with store.transaction() as tx:
        outbox.mark_acked(tx, old, 1)
        before = outbox.deltas_after(tx, "A", "L1", old, 1)
        move = outbox.start_new_epoch(tx)
    outbox.finish_moves(store)
    prev, fresh, moved = move.old, move.new, move.moved
    assert (prev, moved, move.kept) == (old, 2, 1)
    assert store.epoch == fresh != old
    events = outbox.read_unacked(store, limit=10)
    assert [(e.epoch, e.seq, e.data["qty"]) for e in events] == [(fresh, 1, -2), (fresh, 2, -3)]
    with store.transaction() as tx:
        # the cloud's view "acked 1 of the old epoch" still sees the moved deltas
        assert outbox.deltas_after(tx, "A", "L1", old, 1) == before == -5
        assert outbox.deltas_after(tx, "A", "L1", fresh, 1) == -3
        assert tx.append(_alert()) == 3


def test_backlog_limit_refuses_new_work_and_keeps_old(tmp_path: Path) -> None:
    with Store.open(tmp_path / "full.db", box_id="b", max_backlog=3) as store:
        for _ in range(3):
            with store.transaction() as tx:
                tx.append(_alert())
        with pytest.raises(BacklogFullError), store.transaction() as tx:
            tx.execute("INSERT INTO items (sku) VALUES ('NEW')")
            tx.append(_alert())
        assert store.query("SELECT count(*) AS n FROM items") == [{"n": 0}]
        with store.transaction() as tx:
            outbox.mark_acked(tx, store.epoch, 1)
            assert tx.append(_alert()) == 4
        assert len(store.query("SELECT seq FROM outbox")) == 4


def test_savepoint_rolls_back_its_part_only_without_a_gap(store: Store) -> None:
    with store.transaction() as tx:
        with tx.savepoint() as a:
            a.execute("INSERT INTO items (sku) VALUES ('A')")
            assert a.append(_alert(unit="a")) == 1
        with pytest.raises(RuntimeError), tx.savepoint() as b:
            b.execute("INSERT INTO items (sku) VALUES ('B')")
            b.append(_alert(unit="b"))
            raise RuntimeError("this scan failed")
        with tx.savepoint() as c:
            assert c.append(_alert(unit="c")) == 2  # b's seq is reused
        assert tx.append(_alert(unit="outer")) == 3
    assert [r["sku"] for r in store.query("SELECT sku FROM items")] == ["A"]
    assert [r["seq"] for r in store.query("SELECT seq FROM outbox ORDER BY seq")] == [1, 2, 3]
    assert store.query("SELECT next_seq FROM box") == [{"next_seq": 4}]
