"""Restores and clones, end to end (issue 17, finding 1).

A backup holds the box's events 1..B of its epoch, some of them unacked; after
the backup the box went on and the cloud applied more of the same epoch. Put
back, the box must find out before it sends anything (its sync mark, beside the
database, says it had sent more than the database holds), resend what it holds
as it is (a prefix of what the cloud has: duplicates, or applied once if the
cloud lacked them) and write every new fact to a new epoch — so that neither a
cloud with digests (which would report a conflict) nor one without (which would
take new facts under reused seqs for duplicates and drop them) counts anything
twice or loses anything.

The floor is real picking (:class:`edge.picking.PickingService`, the scan path
the PDA API calls); what the pickers were *told* (a unit per ``item_ok``,
``stop_done``, ``tour_done``) is what the cloud must hold, per (sku, location).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import BOX, SECRET, box_rows, nonzero, uploader, write_moves

from cloud_sync.client import SyncClient
from cloud_sync.receiver import Receiver
from edge.config import load_config
from edge.picking import Picker, PickingService
from edge.store import Store
from edge.store.outbox import send_state
from edge.store.syncmark import RESTORE_ALERT, SyncMark, mark_path, read_mark
from edge.store.upkeep import backup_file
from edge.wiring import check_copy
from simulators.cloud import CloudSimulator
from tests.support.api_fixtures import add_task, item_code, seed_zone, walk, write_config

P1 = Picker("P1", "Pia", "picker")
TOLD = ("item_ok", "stop_done", "tour_done")


@pytest.fixture(params=["digests", "no digests"])
async def cloud(request: pytest.FixtureRequest) -> AsyncIterator[CloudSimulator]:
    async with CloudSimulator(SECRET) as sim:
        if request.param == "no digests":
            sim.receiver.close()
            sim.receiver = Receiver(keep_digests=False)
        yield sim


class Floor:
    """A box's picking, counting what the pickers were told per (sku, location)."""

    def __init__(self, store: Store, layout: dict[str, Any], told: Counter[tuple[str, str]]):
        self.store = store
        self.picking = PickingService(store, layout)
        self.told = told
        self._n = 0

    async def pick(self, task: str, lines: list[tuple[str, int]]) -> None:
        add_task(self.store, task, lines, order=f"O-{task}")
        answer = (await self.picking.scan(P1, f"O-{task}", self._id())).json()
        while answer["tour"]["next_stop"] is not None:
            stop = walk(answer["tour"])[0]
            if stop["state"] == "pending":
                answer = (await self.picking.scan(P1, stop["location"], self._id())).json()
                assert answer["result"] == "location_ok", answer
            for _ in range(stop["qty"] - stop["picked"]):
                answer = (await self.picking.scan(P1, item_code(stop), self._id())).json()
                assert answer["result"] in TOLD, answer
                self.told[stop["sku"], stop["location"]] += 1

    def _id(self) -> str:
        self._n += 1
        return f"{self.store.epoch}-{self._n}"


TASKS = [
    [("SKU-A", 2), ("SKU-C", 1)],
    [("SKU-C", 2)],
    [("SKU-A", 1), ("SKU-D", 1)],
    [("SKU-B", 2), ("SKU-A", 1)],
]


async def pick(floor: Floor, first: int, count: int) -> None:
    for n in range(first, first + count):
        await floor.pick(f"T-{n}", TASKS[n % len(TASKS)])


def open_box(path: Path) -> Store:
    """What the daemon does at start: open, then the start-up hook."""
    store = Store.open(path, box_id=BOX)
    check_copy(store)
    return store


def cloud_units(sim: CloudSimulator) -> Counter[tuple[str, str]]:
    """Units the cloud holds as picked, per (sku, location), every epoch."""
    units: Counter[tuple[str, str]] = Counter()
    for epoch, _ in sim.receiver.epochs(BOX):
        for e in sim.receiver.events(BOX, epoch):
            if e["type"] == "pick_confirmed":
                units[e["data"]["sku"], e["data"]["location"]] += e["data"]["qty"]
    return units


def alert_kinds(store: Store) -> list[str]:
    return [r["kind"] for r in store.query("SELECT kind FROM alerts ORDER BY id")]


async def test_a_restored_backup_is_found_before_it_sends_and_nothing_counts_twice(
    tmp_path: Path, cloud: CloudSimulator
) -> None:
    cfg = load_config(write_config(tmp_path))
    layout = cfg.layout_dict()
    db = tmp_path / "box.db"
    told: Counter[tuple[str, str]] = Counter()
    async with SyncClient(cloud.url, BOX, SECRET) as client:
        store = open_box(db)
        seed_zone(store)
        store.run(lambda tx: tx.execute("UPDATE stock SET qty = qty + 1000"))
        floor = Floor(store, layout, told)
        await pick(floor, 1, 4)
        await uploader(store, client).send_all()
        epoch = store.epoch
        acked_at_backup = send_state(store).acked
        await pick(floor, 5, 3)  # not sent before the backup: unacked in it
        backup_file(db, tmp_path / "backup.db")  # what `pickedge db backup` runs, live
        in_backup = send_state(store).next_seq - 1
        assert in_backup > acked_at_backup
        await pick(floor, 8, 4)  # after the backup: the cloud gets these, the backup not
        await uploader(store, client).send_all()
        sent = send_state(store).next_seq - 1
        assert cloud.receiver.acked(BOX, epoch) == sent > in_backup
        assert read_mark(mark_path(db))[0].sent == sent  # type: ignore[union-attr]
        original = box_rows(store, epoch)
        store.close()

        # The card is replaced by the backup: the writer stopped, the file copied back.
        db.unlink()
        shutil.copyfile(tmp_path / "backup.db", db)
        batches = sum(n for (endpoint, _), n in cloud.stats.items() if endpoint == "batches")
        store = open_box(db)
        try:
            # found at start-up, before a single request
            assert sum(n for (e, _), n in cloud.stats.items() if e == "batches") == batches
            assert alert_kinds(store) == [RESTORE_ALERT]
            new_epoch = store.epoch
            assert new_epoch != epoch
            sealed = store.query("SELECT acked, last_seq FROM epochs WHERE epoch = ?", (epoch,))
            assert sealed == [{"acked": acked_at_backup, "last_seq": in_backup}]
            state = send_state(store)
            assert (state.epoch, state.acked, state.sealed) == (epoch, acked_at_backup, True)

            floor = Floor(store, layout, told)
            await pick(floor, 12, 4)  # new facts, the restored box's own
            up = uploader(store, client)
            await up.send_all()

            # the cloud: the original's history untouched, once; the restored box's
            # new facts under the new epoch, once
            assert cloud.receiver.events(BOX, epoch) == original
            assert cloud.receiver.events(BOX, new_epoch) == box_rows(store, new_epoch)
            assert [e for e, _ in cloud.receiver.epochs(BOX)] == [epoch, new_epoch]
            count = cloud.receiver.count(BOX)
            assert count == len(original) + send_state(store).next_seq - 1
            # what the pickers were told, per (sku, location), is what the cloud holds
            assert cloud_units(cloud) == told
            moved = {k: -v for k, v in told.items()}
            assert nonzero(cloud.receiver.net_stock(BOX)) == nonzero(moved)
            # the box: its old tail acked as the duplicates they were, nothing waits
            state = send_state(store)
            assert (state.epoch, state.acked, state.next_seq - 1) == (
                new_epoch,
                cloud.receiver.acked(BOX, new_epoch),
                cloud.receiver.acked(BOX, new_epoch),
            )
            assert store.query("SELECT acked FROM epochs WHERE epoch = ?", (epoch,)) == [
                {"acked": in_backup}
            ]
            assert store.query("SELECT count(*) AS n FROM outbox WHERE acked = 0") == [{"n": 0}]
            # no lying ack, no conflict: the mark explained everything
            assert alert_kinds(store) == [RESTORE_ALERT]
            assert store.query("SELECT cleared_ms FROM alerts")[0]["cleared_ms"] is not None
        finally:
            store.close()

        # The same backup restored again later: found again (the mark names an
        # epoch this copy never had), and still nothing counts twice.
        db.unlink()
        shutil.copyfile(tmp_path / "backup.db", db)
        store = open_box(db)
        try:
            assert alert_kinds(store) == [RESTORE_ALERT]
            assert store.epoch not in (epoch, new_epoch)
            await pick(Floor(store, layout, told), 16, 2)
            await uploader(store, client).send_all()
            assert cloud_units(cloud) == told
            assert nonzero(cloud.receiver.net_stock(BOX)) == nonzero(
                {k: -v for k, v in told.items()}
            )
            assert alert_kinds(store) == [RESTORE_ALERT]
        finally:
            store.close()


async def test_a_cloned_database_without_its_mark_sends_under_its_own_epoch(
    tmp_path: Path, cloud: CloudSimulator
) -> None:
    """A database file copied elsewhere without the mark beside it (a cloned
    card, a file copied to a new disk): it had a mark, so it is a copy; both
    the original and the copy go on and sync, and the cloud holds every fact
    of both exactly once."""
    async with SyncClient(cloud.url, BOX, SECRET) as client:
        with Store.open(tmp_path / "box.db", box_id=BOX) as original:
            check_copy(original)
            write_moves(original, 10)
            await uploader(original, client).send_all()
            write_moves(original, 5, seed=2)  # unsent when the card is cloned
            backup_file(original.path, tmp_path / "copy.db")
            epoch = original.epoch
            clone_dir = tmp_path / "other-box"
            clone_dir.mkdir()
            shutil.copyfile(tmp_path / "copy.db", clone_dir / "box.db")
            assert not mark_path(clone_dir / "box.db").exists()

            with Store.open(clone_dir / "box.db", box_id=BOX) as clone:
                check_copy(clone)
                assert alert_kinds(clone) == [RESTORE_ALERT]
                reason = clone.query("SELECT detail FROM alerts")[0]["detail"]
                assert b"no sync mark" in reason
                assert clone.epoch != epoch
                # both write different facts, both sync, in any order
                write_moves(original, 7, seed=3)
                write_moves(clone, 6, seed=4)
                await uploader(clone, client).send_all()
                await uploader(original, client).send_all()
                write_moves(clone, 3, seed=5)
                await uploader(clone, client).send_all()

                assert cloud.receiver.events(BOX, epoch) == box_rows(original, epoch)
                assert cloud.receiver.events(BOX, clone.epoch) == box_rows(clone, clone.epoch)
                # the clone's copy of the shared tail went as duplicates: once
                count = cloud.receiver.count(BOX)
                assert count == len(box_rows(original, epoch)) + len(box_rows(clone, clone.epoch))
                expected: Counter[tuple[str, str]] = Counter()
                for rows in (box_rows(original, epoch), box_rows(clone, clone.epoch)):
                    for e in rows:
                        if e["type"] == "stock_delta":
                            expected[e["data"]["sku"], e["data"]["location"]] += e["data"]["qty"]
                assert nonzero(cloud.receiver.net_stock(BOX)) == nonzero(dict(expected))
                assert "sync_epoch_conflict" not in alert_kinds(clone)
                assert "sync_lying_ack" not in alert_kinds(clone) + alert_kinds(original)


async def test_a_restore_detected_only_by_the_uploader_still_seals_before_sending(
    tmp_path: Path, cloud: CloudSimulator
) -> None:
    """Without the daemon's start-up hook (a tool that opens the store and
    uploads), the uploader's first step finds the copy before the first send."""
    async with SyncClient(cloud.url, BOX, SECRET) as client:
        db = tmp_path / "box.db"
        with Store.open(db, box_id=BOX) as store:
            write_moves(store, 10)
            await uploader(store, client).send_all()
            write_moves(store, 5, seed=2)
            backup_file(store.path, tmp_path / "backup.db")
            write_moves(store, 5, seed=3)
            await uploader(store, client).send_all()
            epoch = store.epoch
            original = box_rows(store, epoch)
        db.unlink()
        shutil.copyfile(tmp_path / "backup.db", db)
        with Store.open(db, box_id=BOX) as store:
            up = uploader(store, client)
            await up.send_all()  # nothing new yet: the old tail goes, as duplicates
            assert alert_kinds(store) == [RESTORE_ALERT]
            assert cloud.receiver.events(BOX, epoch) == original
            write_moves(store, 4, seed=9)
            await up.send_all()
            assert cloud.receiver.events(BOX, store.epoch) == box_rows(store, store.epoch)
            expected: Counter[tuple[str, str]] = Counter()
            for e in [*original, *box_rows(store, store.epoch)]:
                if e["type"] == "stock_delta":
                    expected[e["data"]["sku"], e["data"]["location"]] += e["data"]["qty"]
            assert nonzero(cloud.receiver.net_stock(BOX)) == nonzero(dict(expected))
            assert alert_kinds(store) == [RESTORE_ALERT]


def test_the_mark_is_written_at_start_and_advanced_only_beyond_it(tmp_path: Path) -> None:
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        mark = SyncMark(store)
        assert mark.reconcile() is None
        first, problem = read_mark(mark_path(db))
        assert problem is None and first is not None and first.sent == 0
        assert store.query("SELECT marked FROM box") == [{"marked": 1}]
        write_moves(store, 5)
        mark.will_send(store.epoch, 4)
        stamp = mark_path(db).stat().st_mtime_ns
        mark.will_send(store.epoch, 3)  # not beyond: no write
        mark.will_send(store.epoch, 4)
        assert mark_path(db).stat().st_mtime_ns == stamp
        mark.will_send(store.epoch, 10)
        assert read_mark(mark_path(db))[0].sent == 10  # type: ignore[union-attr]
        # a plain restart is no restore
        assert SyncMark(store).reconcile() is None
        assert not store.query("SELECT * FROM alerts")


@pytest.mark.parametrize(
    "damage",
    ["unreadable", "other box", "other database", "unknown epoch", "behind", "missing"],
)
def test_every_kind_of_mismatch_is_a_copy(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        SyncMark(store).reconcile()
        write_moves(store, 3)
        SyncMark(store).will_send(store.epoch, 6)
        path = mark_path(db)
        doc = read_mark(path)[0]
        assert doc is not None
        fields = {"v": 1, "box": doc.box, "db": doc.db, "epoch": doc.epoch, "sent": doc.sent}
        if damage == "unreadable":
            path.write_text("{not json")
        elif damage == "missing":
            path.unlink()
        else:
            key, value = {
                "other box": ("box", "box-2"),
                "other database": ("db", "0123456789abcdef"),
                "unknown epoch": ("epoch", "feedfeedfeedfeed"),
                "behind": ("sent", 7),
            }[damage]
            fields[key] = value
            import json

            path.write_text(json.dumps(fields))
        old = store.epoch
        restore = SyncMark(store).reconcile()
        assert restore is not None and restore.move.old == old and restore.move.kept == 6
        assert store.epoch == restore.move.new != old
        assert alert_kinds(store) == [RESTORE_ALERT]
        again = read_mark(path)[0]
        assert again is not None and (again.epoch, again.sent) == (store.epoch, 0)
        assert SyncMark(store).reconcile() is None  # and it is settled


def test_a_box_that_moved_to_a_new_epoch_before_sending_in_it_is_no_copy(
    tmp_path: Path,
) -> None:
    """The mark names the previous epoch (the box stopped between an
    epoch_conflict and its first send in the new epoch): not a copy."""
    from edge.store.outbox import start_new_epoch

    db = tmp_path / "box.db"
    with Store.open(db, box_id=BOX) as store:
        SyncMark(store).reconcile()
        write_moves(store, 5)
        SyncMark(store).will_send(store.epoch, 10)
        store.run(lambda tx: start_new_epoch(tx, conflict_at=4))
        assert SyncMark(store).reconcile() is None
        assert not store.query("SELECT * FROM alerts")


async def test_a_box_that_cannot_write_its_mark_sends_nothing(
    tmp_path: Path, cloud: CloudSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge.store.syncmark

    def broken(path: Path, mark: object) -> None:
        raise OSError(30, "Read-only file system")

    async with SyncClient(cloud.url, BOX, SECRET) as client:
        with Store.open(tmp_path / "box.db", box_id=BOX) as store:
            write_moves(store, 3)
            up = uploader(store, client)
            with monkeypatch.context() as m:
                m.setattr(edge.store.syncmark, "write_mark", broken)
                assert (await up.step()).value == "retry"  # the check at the first step
                assert alert_kinds(store) == ["sync_mark_unwritable"]
            # 6 moves + the alert, once the disk is back, + its `cleared` after the ack
            assert await up.send_all() == 8
            write_moves(store, 2, seed=2)
            with monkeypatch.context() as m:
                m.setattr(edge.store.syncmark, "write_mark", broken)
                assert (await up.step()).value == "retry"  # advancing it before a batch
            assert cloud.receiver.acked(BOX, store.epoch) == 8  # nothing went
            assert alert_kinds(store) == ["sync_mark_unwritable"] * 2  # a second episode
            assert await up.send_all() == 14  # and the second episode's `cleared`
