"""The outbox's epochs (issue 17): per-epoch acks, sealed epochs drained oldest
first, ``conflict_at``, pruning on box uptime, the folded ledger, and the
migration that brings an older database there."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import edge.store.db
import edge.store.outbox
import edge.store.sync_state
from cloud_sync.events import Alert, Severity, StockDelta, StockReason
from edge.store import Store, Transaction, outbox
from edge.store.ledger import net_movements
from edge.store.migrations import MIGRATIONS
from edge.store.sync_state import StoreOutbox

DAY = 86_400_000


def delta(tx: Transaction, sku: str, loc: str, qty: int) -> int:
    return tx.append(
        StockDelta(sku=sku, location=loc, qty=qty, reason=StockReason.PICK, ref=None, lot=None)
    )


def deltas(store: Store, *moves: tuple[str, str, int]) -> list[int]:
    return [store.run(lambda tx, m=m: delta(tx, *m)) for m in moves]


def rows(store: Store, epoch: str) -> list[tuple[int, int]]:
    """(seq, qty) of the ledger rows of ``epoch``."""
    return [
        (r["seq"], r["qty"])
        for r in store.query(
            "SELECT seq, qty FROM stock_ledger WHERE epoch = ? ORDER BY seq", (epoch,)
        )
    ]


def test_conflict_at_acks_before_it_and_moves_from_it(store: Store) -> None:
    deltas(store, *(("A", "L", -q) for q in range(1, 7)))  # seqs 1..6
    old = store.epoch
    store.run(lambda tx: outbox.mark_acked(tx, old, 2))
    move = store.run(lambda tx: outbox.start_new_epoch(tx, conflict_at=5))
    assert (move.old, move.moved, move.kept) == (old, 2, 4)
    assert outbox.finish_moves(store) == 4  # 3, 4 stamped acked; 5, 6 moved
    assert store.query("SELECT acked, last_seq FROM epochs WHERE epoch = ?", (old,)) == [
        {"acked": 4, "last_seq": 4}
    ]
    assert store.query("SELECT seq FROM outbox WHERE epoch = ? AND acked = 1", (old,)) == [
        {"seq": s} for s in (1, 2, 3, 4)
    ]
    assert rows(store, old) == [(1, -1), (2, -2), (3, -3), (4, -4)]
    assert rows(store, move.new) == [(1, -5), (2, -6)]
    state = outbox.send_state(store)
    assert (state.epoch, state.acked, state.next_seq, state.sealed) == (move.new, 0, 3, False)
    with store.transaction() as tx:
        # the cloud's figure "up to 4 of the old epoch" excludes exactly the moved ones
        assert outbox.deltas_after(tx, "A", "L", old, 4) == -11
        with pytest.raises(ValueError, match="outside"):
            outbox.start_new_epoch(tx, conflict_at=9)


def test_an_epoch_change_moves_in_chunks_and_hides_the_new_epoch_until_done(
    store: Store,
) -> None:
    """The switch is one short transaction whatever the backlog; rows then move
    a chunk per transaction. Between chunks new events already go to the new
    epoch past the moved range, nothing of the new epoch is read for sending,
    the sealed old epoch reads only what it keeps, the ledger sums stay whole,
    and acks for the new epoch are refused."""
    deltas(store, *(("A", "L", -q) for q in range(1, 11)))  # seqs 1..10
    old = store.epoch
    store.run(lambda tx: outbox.mark_acked(tx, old, 3))
    move = store.run(lambda tx: outbox.start_new_epoch(tx, conflict_at=5))  # 4 acked, 5.. move
    assert (move.moved, move.kept) == (6, 4)
    assert outbox.moves_pending(store)
    deltas(store, ("B", "L", 7))  # a scan during the move
    assert store.query("SELECT seq FROM outbox WHERE epoch = ?", (move.new,)) == [{"seq": 7}]
    assert outbox.read_raw(store, move.new, after_seq=0, limit=100) == []
    assert [r[0] for r in outbox.read_raw(store, old, after_seq=0, limit=100)] == [1, 2, 3, 4]
    assert net_movements(store) == {("A", "L"): -55, ("B", "L"): 7}
    with store.transaction() as tx:
        # a stock baseline of the old epoch, or of none, still sees the moving rows
        assert outbox.deltas_after(tx, "A", "L", old, 4) == -45
        assert outbox.deltas_after(tx, "A", "L", None, 0) == -55
        with pytest.raises(ValueError, match="still moving"):
            outbox.mark_acked(tx, move.new, 1)
    assert store.query("SELECT seq FROM outbox WHERE acked = 1") == [{"seq": s} for s in (1, 2, 3)]
    assert store.run(lambda tx: outbox.move_step(tx, limit=4)) == 1  # 4 stamped acked
    assert store.query("SELECT seq FROM outbox WHERE acked = 1") == [
        {"seq": s} for s in (1, 2, 3, 4)
    ]
    assert store.run(lambda tx: outbox.move_step(tx, limit=4)) == 4
    assert outbox.read_raw(store, move.new, after_seq=0, limit=100) == []
    assert net_movements(store) == {("A", "L"): -55, ("B", "L"): 7}
    with store.transaction() as tx:
        assert outbox.deltas_after(tx, "A", "L", old, 4) == -45
    assert store.run(lambda tx: outbox.move_step(tx, limit=4)) == 2
    assert store.run(lambda tx: outbox.move_step(tx, limit=4)) == 0
    assert not outbox.moves_pending(store)
    assert [(e.seq, e.data["qty"]) for e in outbox.read_unacked(store, limit=100)] == [
        (1, -5), (2, -6), (3, -7), (4, -8), (5, -9), (6, -10), (7, 7)
    ]  # fmt: skip
    assert rows(store, move.new) == [(1, -5), (2, -6), (3, -7), (4, -8), (5, -9), (6, -10), (7, 7)]
    assert net_movements(store) == {("A", "L"): -55, ("B", "L"): 7}
    with store.transaction() as tx:
        assert outbox.deltas_after(tx, "A", "L", old, 4) == -45


async def test_an_epoch_change_cut_short_is_finished_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    """A crash between chunks: the reopened box's uploader port finishes the
    move before its first send (check_copy), and a read finishes it too."""
    path = tmp_path / "box.db"
    with Store.open(path, box_id="b") as store:
        deltas(store, *(("A", "L", -q) for q in range(1, 9)))
        move = store.run(outbox.start_new_epoch)
        store.run(lambda tx: outbox.move_step(tx, limit=3))
    with Store.open(path, box_id="b") as store:
        assert outbox.moves_pending(store)
        await StoreOutbox(store).check_copy()
        assert not outbox.moves_pending(store)
        assert rows(store, move.new) == [(s, -s) for s in range(1, 9)]
    with Store.open(path, box_id="b") as store:
        deltas(store, ("A", "L", -9))
        again = store.run(outbox.start_new_epoch)
        store.run(lambda tx: outbox.move_step(tx, limit=5))
        port = StoreOutbox(store)
        assert [r[0] for r in port.read_raw(again.new, after_seq=0, limit=100)] == list(
            range(1, 10)
        )


def test_a_sealed_epoch_drains_first_and_counts_in_the_backlog(store: Store) -> None:
    deltas(store, *(("A", "L", -1) for _ in range(5)))
    old = store.epoch
    store.run(lambda tx: outbox.mark_acked(tx, old, 2))
    seal = store.run(outbox.seal_epoch)
    assert (seal.old, seal.moved, seal.kept) == (old, 0, 5)
    deltas(store, ("B", "L", 3), ("B", "L", 4))
    state = outbox.send_state(store)
    assert (state.epoch, state.acked, state.next_seq, state.sealed) == (old, 2, 6, True)
    st = outbox.status(store)
    assert (st.epoch, st.acked_seq, st.backlog, st.next_seq) == (seal.new, 0, 5, 3)
    assert [e.seq for e in outbox.read_unacked(store, limit=10)] == [3, 4, 5]
    with store.transaction() as tx:
        with pytest.raises(ValueError, match="beyond the last event 5"):
            outbox.mark_acked(tx, old, 6)  # a sealed epoch gets no more
        assert outbox.mark_acked(tx, old, 5) == 5
    state = outbox.send_state(store)
    assert (state.epoch, state.acked, state.next_seq, state.sealed) == (seal.new, 0, 3, False)
    # the backlog limit counts the sealed tail too
    with Store.open(store.path.with_name("full.db"), box_id="b", max_backlog=4) as full:
        deltas(full, *(("A", "L", -1) for _ in range(3)))
        full.run(outbox.seal_epoch)
        deltas(full, ("A", "L", -1))
        with pytest.raises(Exception, match="wait for the cloud"):
            deltas(full, ("A", "L", -1))


def test_a_conflict_in_a_sealed_epoch_takes_the_later_epochs_along(store: Store) -> None:
    """A restored box draining its sealed tail finds the cloud holds other
    content there (restored twice, say): the tail from conflict_at and the
    current epoch's events (never sent: epochs drain in order) move together,
    in order, to one new epoch, which stays the last."""
    deltas(store, *(("A", "L", -q) for q in range(1, 5)))
    old = store.epoch
    seal = store.run(outbox.seal_epoch)
    deltas(store, ("B", "L", 10), ("B", "L", 20))
    move = store.run(lambda tx: outbox.start_new_epoch(tx, epoch=old, conflict_at=3))
    assert (move.old, move.moved, move.kept) == (old, 4, 2)
    assert outbox.finish_moves(store, limit=3) == 2 + 4  # 1, 2 stamped; 4 moved in chunks
    assert rows(store, move.new) == [(1, -3), (2, -4), (3, 10), (4, 20)]
    assert rows(store, seal.new) == []
    epochs = store.query("SELECT epoch, acked, last_seq FROM epochs ORDER BY n")
    assert [(e["epoch"], e["acked"], e["last_seq"]) for e in epochs] == [
        (old, 2, 2),
        (seal.new, 0, 0),
        (move.new, 0, None),
    ]
    assert outbox.send_state(store).epoch == move.new
    assert net_movements(store) == {("A", "L"): -10, ("B", "L"): 30}


async def test_acked_rows_are_pruned_on_box_uptime_never_on_the_wall_clock(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    deltas(store, *(("A", "L", -1) for _ in range(4)))
    port = StoreOutbox(store)
    await port.settle_ack(store.epoch, 3, clear=())
    # the wall clock jumps ten years ahead: nothing acked goes early
    ahead = edge.store.db.now_ms() + 3650 * DAY
    for module in (edge.store.db, edge.store.outbox, edge.store.sync_state):
        monkeypatch.setattr(module, "now_ms", lambda: ahead)
    assert await port.prune_acked(max_age_ms=7 * DAY) == 0
    assert len(store.query("SELECT seq FROM outbox")) == 4
    # seven days of the box running later, they go (the unacked one stays)
    up = store.uptime_ms()
    monkeypatch.setattr(store, "uptime_ms", lambda: up + 7 * DAY + 1)
    assert await port.prune_acked(max_age_ms=7 * DAY) == 3
    assert store.query("SELECT seq, acked FROM outbox") == [{"seq": 4, "acked": 0}]


def test_the_ledger_folds_what_cannot_be_asked_about_and_stays_exact(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = [0]
    monkeypatch.setattr(store, "uptime_ms", lambda: up[0])
    first = store.epoch
    deltas(store, *((f"S{i % 3}", "L", -(i + 1)) for i in range(30)))  # 1..30
    store.run(lambda tx: outbox.mark_acked(tx, first, 20))  # acked at uptime 0
    store.run(lambda tx: outbox.start_new_epoch(tx, conflict_at=26))  # 21..25 acked, 26.. move
    outbox.finish_moves(store)
    second = store.epoch
    deltas(store, *((f"S{i % 3}", "L", i + 1) for i in range(10)))  # second: 1..5 moved + 10
    store.run(lambda tx: outbox.mark_acked(tx, second, 8))
    total = net_movements(store)
    up[0] = 10 * DAY
    deltas(store, ("S0", "L", 100))  # written later, unacked
    store.run(lambda tx: outbox.mark_acked(tx, second, 10))  # acked at 10 days
    before = store.query("SELECT count(*) AS n FROM stock_ledger")[0]["n"]
    assert before == 41

    # seven days of uptime ago: acks at uptime 0 (first 1..25, second 1..8) fold
    pruned = store.run(lambda tx: outbox.prune_acked(tx, acked_before_up=3 * DAY))
    assert pruned == 33
    assert store.query("SELECT count(*) AS n FROM stock_ledger")[0]["n"] == 41 - 33
    base = store.query("SELECT sku, epoch, seq FROM stock_ledger_base ORDER BY sku")
    assert [(b["sku"], b["epoch"], b["seq"]) for b in base] == [
        (f"S{i}", second, 8) for i in range(3)
    ]
    assert net_movements(store) == {**total, ("S0", "L"): total["S0", "L"] + 100}

    def live_after(sku: str, seq: int) -> int:
        return sum(
            r["qty"]
            for r in store.query(
                "SELECT qty FROM stock_ledger WHERE sku = ? AND epoch = ? AND seq > ?",
                (sku, second, seq),
            )
        )

    with store.transaction() as tx:
        # at the fold point and after it: exact (the live rows after the baseline)
        for s in ("S0", "S1", "S2"):
            for seq in (8, 9, 11, 16):
                assert outbox.deltas_after(tx, s, "L", second, seq) == live_after(s, seq)
        # before it (or no epoch): the folded past counts in full
        for s in ("S0", "S1", "S2"):
            everything = net_movements(store)[s, "L"]
            assert outbox.deltas_after(tx, s, "L", None, 0) == everything
            assert outbox.deltas_after(tx, s, "L", first, 10) == everything
    # a second fold moves the point on and keeps one base row per (sku, location)
    up[0] = 20 * DAY
    pruned = store.run(lambda tx: outbox.prune_acked(tx, acked_before_up=15 * DAY))
    assert pruned == 2
    assert store.query("SELECT count(*) AS n FROM stock_ledger_base")[0]["n"] == 3
    assert [r["seq"] for r in store.query("SELECT seq FROM stock_ledger ORDER BY seq")] == list(
        range(11, 17)
    )  # the unacked rows only
    assert net_movements(store)["S0", "L"] == total["S0", "L"] + 100


def test_the_ledger_stays_bounded_however_long_the_box_runs(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = [0]
    monkeypatch.setattr(store, "uptime_ms", lambda: up[0])
    keys = [(f"S{i}", f"L{j}") for i in range(4) for j in range(3)]
    for day in range(30):
        up[0] = day * DAY
        last = deltas(store, *((s, loc, -1) for s, loc in keys))[-1]
        store.run(lambda tx, last=last: outbox.mark_acked(tx, store.epoch, last))
        store.run(lambda tx: outbox.prune_acked(tx, acked_before_up=up[0] - 7 * DAY))
        ledger = store.query("SELECT count(*) AS n FROM stock_ledger")[0]["n"]
        assert ledger <= 8 * len(keys)  # retention's worth, not 30 days' worth
    assert store.query("SELECT count(*) AS n FROM stock_ledger_base")[0]["n"] == len(keys)
    assert net_movements(store) == {k: -30 for k in keys}


def test_an_older_database_migrates_to_per_epoch_acks(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.executescript(
        """
        INSERT INTO box (id, box_id, epoch, next_seq, created_ms, uptime_ms)
            VALUES (1, 'b', 'e2', 4, 0, 5000);
        INSERT INTO epochs (epoch, started_ms) VALUES ('e1', 0), ('e2', 0);
        UPDATE sync_state SET acked_epoch = 'e2', acked_seq = 2;
        INSERT INTO outbox (epoch, seq, type, at_ms, payload, acked) VALUES
            ('e1', 1, 'alert', 0, x'80', 1), ('e1', 2, 'alert', 0, x'80', 1),
            ('e2', 1, 'alert', 0, x'80', 1), ('e2', 2, 'alert', 0, x'80', 1),
            ('e2', 3, 'alert', 0, x'80', 0);
        """
    )
    conn.close()
    with Store.open(path, box_id="b") as store:
        epochs = store.query("SELECT epoch, acked, last_seq FROM epochs ORDER BY n")
        assert [(e["epoch"], e["acked"], e["last_seq"]) for e in epochs] == [
            ("e1", 2, 2),
            ("e2", 2, None),
        ]
        ids = store.query("SELECT db_id, marked FROM box")
        assert len(ids[0]["db_id"]) == 16 and ids[0]["marked"] == 0
        assert store.query("SELECT seq, acked_up FROM outbox WHERE epoch = 'e2'") == [
            {"seq": 1, "acked_up": 5000},
            {"seq": 2, "acked_up": 5000},
            {"seq": 3, "acked_up": None},
        ]
        state = outbox.send_state(store)
        assert (state.epoch, state.acked, state.next_seq) == ("e2", 2, 4)


def test_alert_event_type_is_unaffected(store: Store) -> None:
    alert = Alert(kind="k", severity=Severity.INFO, subject="s", detail={})
    assert store.run(lambda tx: tx.append_bookkeeping(alert)) == 1
