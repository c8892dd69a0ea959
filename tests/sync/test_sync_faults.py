"""Convergence under faults: each fault alone, all mixed with the floor writing,
a restored backup (epoch conflict), and a box clock that cannot be trusted."""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path

import msgpack
import pytest
from sync_helpers import (
    BOX,
    SECRET,
    assert_converged,
    box_rows,
    move,
    nonzero,
    uploader,
    write_moves,
)

import edge.store.db
import edge.store.outbox
import edge.store.sync_state
from cloud_sync.client import SyncClient
from edge.store import Store
from edge.store.outbox import send_state
from edge.store.upkeep import backup_file
from simulators.cloud import BATCH_FAULTS, CloudSimulator, Faults


@pytest.mark.parametrize("fault", sorted(BATCH_FAULTS))
async def test_each_fault_alone_converges(store: Store, fault: str) -> None:
    write_moves(store, 150)  # 300 events
    async with CloudSimulator(SECRET, slow_s=0.3) as sim:
        sim.batch_faults = Faults({fault: 0.3}, script=[fault, None, fault], seed=11)
        async with SyncClient(sim.url, BOX, SECRET, timeout_s=0.1) as client:
            up = uploader(store, client, batch_max_events=25)
            await up.send_all()
            assert sim.batch_faults.drawn[fault] >= 2, "the fault was exercised"
            assert_converged(sim, store)


async def test_all_faults_mixed_while_the_floor_keeps_writing(store: Store) -> None:
    probabilities = {f: 0.04 for f in BATCH_FAULTS}  # 60 % of requests fail somehow
    script = [f for f in sorted(BATCH_FAULTS) for _ in (0, 1)]  # every fault at least twice
    async with CloudSimulator(SECRET, slow_s=0.3) as sim:
        sim.batch_faults = Faults(probabilities, script=script, seed=5)
        async with SyncClient(sim.url, BOX, SECRET, timeout_s=0.1) as client:
            up = uploader(store, client, batch_max_events=10, poll_interval_s=0.02)
            task = asyncio.create_task(up.run())
            rng = random.Random(3)
            try:
                for n in range(300):
                    await store.write(lambda tx, n=n: move(tx, rng, n))
                    up.notify()
                    if n % 10 == 0:
                        await asyncio.sleep(0.005)  # let batches of varied size form
                async with asyncio.timeout(60):  # the scripted faults all happen ...
                    await sim.batch_faults.script_done.wait()
                sim.batch_faults.clear()  # ... then the cloud heals: everything must arrive
                async with asyncio.timeout(60):
                    while True:
                        await up.idle.wait()
                        _, acked, next_seq, _ = send_state(store)
                        if acked == next_seq - 1:
                            break
                        await up.wait_acked(next_seq - 1)
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert set(sim.batch_faults.drawn) == BATCH_FAULTS
            assert_converged(sim, store)


async def test_restored_backup_conflicts_and_moves_to_a_new_epoch(tmp_path: Path) -> None:
    """A backup restored to another path, written to before anything checked it
    (no daemon start-up hook): the uploader finds it is a copy (no mark beside
    it) and seals its epoch; the cloud then names where the histories part
    (conflict_at) and only the box's own new events move: nothing is counted
    twice, nothing lost."""
    async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
        with Store.open(tmp_path / "box.db", box_id=BOX) as store:
            write_moves(store, 10)
            await uploader(store, client).send_all()
            backup_file(store.path, tmp_path / "backup.db")
            write_moves(store, 10, seed=2)
            await uploader(store, client).send_all()
            old_epoch = store.epoch
            original = box_rows(store, old_epoch)
        assert sim.receiver.acked(BOX, old_epoch) == 40

        # The SD card dies; the box comes back from the backup and keeps working.
        with Store.open(tmp_path / "backup.db", box_id=BOX) as store:
            assert store.epoch == old_epoch
            write_moves(store, 5, seed=3)  # seqs 21..30 again, other content
            written = box_rows(store, old_epoch)[20:]
            up = uploader(store, client)
            await up.send_all()
            assert sim.stats["batches", "409"] == 1
            new_epoch = store.epoch
            assert new_epoch != old_epoch
            # the cloud kept the original timeline untouched ...
            assert sim.receiver.events(BOX, old_epoch) == original
            # ... and got the restored box's own events (from conflict_at 21 on)
            # under the new epoch, then the two alerts
            cloud_new = sim.receiver.events(BOX, new_epoch)
            assert [(e["type"], e["data"]) for e in cloud_new[:10]] == [
                (e["type"], e["data"]) for e in written
            ]
            alerts = [(e["data"]["kind"], e["data"].get("state")) for e in cloud_new[10:]]
            # raised, then cleared by the ack that followed (each clear goes upstream)
            assert alerts == [
                ("sync_restore_detected", "raised"),
                ("sync_epoch_conflict", "raised"),
                ("sync_restore_detected", "cleared"),
                ("sync_epoch_conflict", "cleared"),
            ]
            conflict = cloud_new[11]["data"]
            assert conflict["severity"] == "crit"
            assert conflict["detail"]["moved"] == 11 and conflict["detail"]["conflict_at"] == 21
            assert [e["seq"] for e in cloud_new] == list(range(1, 15))
            rows = store.query("SELECT kind, severity, cleared_ms FROM alerts ORDER BY id")
            assert [(r["kind"], r["severity"]) for r in rows] == [
                ("sync_restore_detected", "crit"),
                ("sync_epoch_conflict", "crit"),
            ]
            assert all(r["cleared_ms"] is not None for r in rows)  # acked since
            # the box goes on under the new epoch
            write_moves(store, 3, seed=4)
            await up.send_all()
            assert_converged(sim, store, stock=False)
            # every fact once: the cloud's net stock is the original's 40 events
            # plus the restored box's own, which is the box's ledger plus the
            # original's events after the backup (lost with its card)
            expected: dict[tuple[str, str], int] = {}
            for e in [*original, *box_rows(store, new_epoch)]:
                if e["type"] == "stock_delta":
                    key = (e["data"]["sku"], e["data"]["location"])
                    expected[key] = expected.get(key, 0) + e["data"]["qty"]
            assert nonzero(sim.receiver.net_stock(BOX)) == nonzero(expected)


async def test_a_box_clock_off_by_years_and_jumping_changes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    year = 365 * 86_400_000
    wild = itertools.cycle([50 * year, -40 * year, 0, 3, 200 * year, 1, -1])
    for module in (edge.store.db, edge.store.outbox, edge.store.sync_state):
        monkeypatch.setattr(module, "now_ms", lambda: next(wild))
    write_moves(store, 60)
    stamps = {r["at_ms"] for r in store.query("SELECT at_ms FROM outbox")}
    assert len(stamps) > 3 and min(stamps) < 0 < max(stamps)
    async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
        sim.batch_faults = Faults({"fail_after": 0.3, "500": 0.2}, seed=2)
        up = uploader(store, client, batch_max_events=17)
        await up.send_all()
        write_moves(store, 10, seed=8)
        await up.send_all()
        assert_converged(sim, store)
        # the cloud got the box's stamps as they were, not reordered by them
        ats = [e["at"] for e in sim.receiver.events(BOX, store.epoch)]
        assert ats == [r["at"] for r in box_rows(store, store.epoch)]


def test_alert_payloads_are_plain_msgpack(store: Store) -> None:
    with store.transaction() as tx:
        edge.store.outbox.raise_alert(tx, "k", "warn", "subject", {"n": 1})
        assert not edge.store.outbox.raise_alert(tx, "k", "warn", "again")  # same episode
    [row] = store.query("SELECT payload FROM outbox")
    assert msgpack.unpackb(row["payload"]) == {
        "kind": "k",
        "severity": "warn",
        "subject": "subject",
        "detail": {"n": 1},
        "state": "raised",
    }
