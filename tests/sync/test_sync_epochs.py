"""epoch_conflict as amended sync-v1 has it (``conflict_at``), the old cloud
without it, and the box's bookkeeping at a full backlog (issue 17, findings 1
and 4).

The conflicts here come from a copy the box *cannot* tell is one: the whole
card cloned, sync mark included. Only the cloud's digests can see it; with
``conflict_at`` it says where the two histories part, and nothing is counted
twice.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import BOX, SECRET, box_rows, nonzero, uploader, write_moves

from cloud_sync.client import SyncClient
from cloud_sync.downloader import Downloader
from cloud_sync.events import Alert, Severity
from cloud_sync.receiver import Answer
from edge.masterdata import apply_changes
from edge.store import Store
from edge.store.outbox import send_state
from edge.store.sync_state import StoreChangeSink, StoreOutbox
from edge.store.syncmark import mark_path
from edge.store.upkeep import backup_file
from edge.wiring import check_copy
from simulators.cloud import CloudSimulator, Faults


def moves(*histories: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    out: Counter[tuple[str, str]] = Counter()
    for rows in histories:
        for e in rows:
            if e["type"] == "stock_delta":
                out[e["data"]["sku"], e["data"]["location"]] += e["data"]["qty"]
    return nonzero(dict(out))


def clone_card(src: Store, dest_dir: Path) -> Path:
    """The whole card copied, the sync mark with it: locally indistinguishable."""
    dest_dir.mkdir()
    dest = dest_dir / "box.db"
    backup_file(src.path, dest)
    shutil.copyfile(mark_path(src.path), mark_path(dest))
    return dest


def alerts(store: Store) -> list[str]:
    return [r["kind"] for r in store.query("SELECT kind FROM alerts ORDER BY id")]


async def clone_diverges(
    tmp_path: Path, sim: CloudSimulator, client: SyncClient, **store_kw: Any
) -> tuple[str, list[dict[str, Any]], Store]:
    """The original sends 1..20, writes 21..30 and is cloned (mark and all);
    then it sends 21..40. Returns (epoch, the original's history, the open
    clone, which holds 21..30 unacked and writes its own 31..40)."""
    with Store.open(tmp_path / "box.db", box_id=BOX) as original:
        check_copy(original)
        write_moves(original, 10)
        await uploader(original, client).send_all()
        write_moves(original, 5, seed=2)  # 21..30: unacked when cloned
        clone_path = clone_card(original, tmp_path / "clone")
        write_moves(original, 5, seed=3)  # 31..40
        await uploader(original, client).send_all()
        epoch = original.epoch
        history = box_rows(original, epoch)
    assert sim.receiver.acked(BOX, epoch) == 40
    clone = Store.open(clone_path, box_id=BOX, **store_kw)
    check_copy(clone)
    assert alerts(clone) == []  # the mark came along: the box cannot tell
    write_moves(clone, 5, seed=4)  # its own 31..40: other content
    return epoch, history, clone


async def test_conflict_at_acks_what_matched_and_moves_only_the_rest(tmp_path: Path) -> None:
    async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
        epoch, history, clone = await clone_diverges(tmp_path, sim, client)
        with clone:
            facts = box_rows(clone, epoch)[30:]  # the clone's own, written after the copy
            await uploader(clone, client, batch_max_events=100).send_all()
            assert sim.stats["batches", "409"] == 1
            assert alerts(clone) == ["sync_epoch_conflict"]
            new = clone.epoch
            # 21..30 matched what the cloud held: acked in the old epoch, not resent
            assert clone.query("SELECT acked, last_seq FROM epochs WHERE epoch = ?", (epoch,)) == [
                {"acked": 30, "last_seq": 30}
            ]
            cloud_new = sim.receiver.events(BOX, new)
            assert cloud_new == box_rows(clone, new)
            own = box_rows(clone, epoch)  # the clone keeps 1..30 there
            assert [e["seq"] for e in own] == list(range(1, 31))
            detail = cloud_new[-1]["data"]["detail"]
            assert cloud_new[-1]["data"]["kind"] == "sync_epoch_conflict"
            assert (detail["conflict_at"], detail["kept"], detail["moved"]) == (31, 30, 10)
            assert sim.receiver.events(BOX, epoch) == history  # untouched
            # every fact once: the original's 40 and the clone's own 10 (+ its alert)
            clone_own = box_rows(clone, new)
            assert [(e["type"], e["data"]) for e in clone_own[:10]] == [
                (e["type"], e["data"]) for e in facts
            ]
            assert sim.receiver.count(BOX) == 40 + len(clone_own)
            assert nonzero(sim.receiver.net_stock(BOX)) == moves(history, facts)


async def test_an_old_cloud_without_conflict_at_moves_every_unacked_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cloud from before the amendment does not say where the histories part:
    the box moves every unacked event (the documented old behaviour; the cloud
    may then count the ones it held twice — here 21..30)."""
    async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
        apply = sim.receiver.apply

        def old_cloud(batch: Any) -> Answer:
            answer = apply(batch)
            answer.doc.pop("conflict_at", None)
            return answer

        monkeypatch.setattr(sim.receiver, "apply", old_cloud)
        epoch, _, clone = await clone_diverges(tmp_path, sim, client)
        with clone:
            await uploader(clone, client, batch_max_events=100).send_all()
            new = clone.epoch
            assert clone.query("SELECT acked, last_seq FROM epochs WHERE epoch = ?", (epoch,)) == [
                {"acked": 20, "last_seq": 20}
            ]
            conflict = sim.receiver.events(BOX, new)[-1]["data"]
            assert (conflict["detail"]["moved"], conflict["detail"]["conflict_at"]) == (20, None)
            assert "count some of them twice" in conflict["subject"]
            assert sim.receiver.count(BOX) == 40 + len(box_rows(clone, new))


async def test_epoch_conflict_at_a_full_backlog_starts_the_new_epoch(tmp_path: Path) -> None:
    """Finding 4: the new epoch and its crit alert are the box's bookkeeping;
    the backlog limit refuses new work, never them (no crash loop)."""
    async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
        epoch, history, clone = await clone_diverges(tmp_path, sim, client, max_backlog=20)
        with clone:
            assert send_state(clone).next_seq - 1 - send_state(clone).acked == 20  # full
            with pytest.raises(Exception, match="wait for the cloud"):
                write_moves(clone, 1, seed=8)
            up = uploader(clone, client, batch_max_events=100)
            await up.send_all()
            assert alerts(clone) == ["sync_epoch_conflict"]
            assert clone.epoch != epoch
            assert sim.receiver.count(BOX) == 40 + len(box_rows(clone, clone.epoch))
            write_moves(clone, 2, seed=9)  # drained: new work is taken again
            await up.send_all()
            assert nonzero(sim.receiver.net_stock(BOX)) == moves(
                history, box_rows(clone, clone.epoch)
            )


async def test_the_port_starts_a_new_epoch_at_a_full_backlog(tmp_path: Path) -> None:
    with Store.open(tmp_path / "box.db", box_id=BOX, max_backlog=10) as store:
        write_moves(store, 5)  # 10 events: full
        change = await StoreOutbox(store).start_new_epoch(
            lambda c: Alert(
                kind="sync_epoch_conflict", severity=Severity.CRIT, subject="x", detail={}
            ),
            conflict_at=4,
        )
        assert (change.moved, change.kept) == (7, 3)
        assert send_state(store).next_seq == 9  # 7 moved + the alert


async def test_alerts_at_a_full_backlog_never_crash_the_uploader_or_downloader(
    tmp_path: Path,
) -> None:
    async with CloudSimulator(SECRET) as sim, SyncClient(sim.url, BOX, SECRET) as client:
        with Store.open(tmp_path / "box.db", box_id=BOX, max_backlog=10) as store:
            write_moves(store, 5)  # full
            # the uploader: a 400 is a crit alert, appended at a full backlog
            sim.batch_faults = Faults(script=["400"])
            up = uploader(store, client)
            assert (await up.step()).value == "retry"
            assert alerts(store) == ["sync_batch_rejected"]
            # the downloader: a change the box cannot apply is a crit alert too
            sim.feed.add({"type": "task", "data": {"task": "T-1", "lines": "not a list"}})
            dl = Downloader(
                StoreChangeSink(store, apply_changes), client, backoff_min_s=0.001, limit=10
            )
            await dl.pull_once()
            assert "sync_changes_invalid" in alerts(store)
            # both alerts went to the outbox beside the full backlog
            kinds = [e["type"] for e in box_rows(store, store.epoch)]
            assert kinds.count("alert") == 2 and len(kinds) == 12
            await up.send_all()
            # ... and the batch rejection's `cleared`, once the cloud acked (issue 13)
            assert sim.receiver.acked(BOX, store.epoch) == 13
            cleared = [e for e in box_rows(store, store.epoch) if e["type"] == "alert"][-1]
            assert cleared["data"]["kind"] == "sync_batch_rejected"
            assert cleared["data"]["state"] == "cleared"
