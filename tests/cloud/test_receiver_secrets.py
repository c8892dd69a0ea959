"""Per-box secrets of the receiver: rotation with an overlap, refused files,
the box_secrets table, unknown boxes.

Through the real service (both storage engines), with an injected clock: a box
still on its old secret is accepted during the overlap and its answer is signed
with the old secret (so it can verify it); after the overlap it is refused
with a 401 it cannot verify, and the box's real uploader keeps its events and
alerts. A secret file others can read is refused until it is chmod 600; a
removed file revokes the box. Table secrets rotate the same way, one overlap
for every receiver process on the database.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytest

from cloud_sync.client import SyncClient
from cloud_sync.receiver import Receiver
from cloud_sync.receiver.secrets import DirectorySecrets, TableSecrets
from cloud_sync.uploader import Uploader
from tests.cloud.receiver_support import (
    BOX,
    EPOCH,
    MemoryOutbox,
    batch,
    db,
    delta,
    echo,
    live_receiver,
    post_raw,
    raw_rows,
    snapshot,
    write_secret,
)

__all__ = ["db"]  # fixture

OLD = "old-secret-1a2b"
NEW = "new-secret-3c4d5e"  # lengths differ: a rewrite always changes the file's size
NEWER = "newer-secret-6f7a8b9c"
KEY = ("SKU-1", "A01-01")


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    path = tmp_path / "secrets"
    path.mkdir(mode=0o700)
    return path


def seq_batch(first: int, last: int) -> bytes:
    return batch([delta(-1)] * (last - first + 1), first=first)


async def test_a_directory_rotation_accepts_the_old_secret_only_during_the_overlap(
    db: str, secrets: Path
) -> None:
    write_secret(secrets, BOX, OLD)
    clock = Clock()
    source = DirectorySecrets(secrets, overlap_s=60, recheck_s=2, clock=clock)
    async with live_receiver(db, source) as cloud:
        url = cloud.url
        first = await post_raw(url, seq_batch(1, 2), secret=OLD)
        assert (first.status, first.doc) == (200, echo(2, 1, 2))
        assert first.signed_by(OLD) and not first.signed_by(NEW)

        write_secret(secrets, BOX, NEW)  # the operator rotates (in place)
        clock.advance(2)  # the receiver looks at the file again
        old = await post_raw(url, seq_batch(3, 4), secret=OLD)
        assert (old.status, old.doc) == (200, echo(4, 3, 4))
        assert old.signed_by(OLD) and not old.signed_by(NEW)  # the box can verify it
        new = await post_raw(url, seq_batch(5, 6), secret=NEW)
        assert (new.status, new.doc) == (200, echo(6, 5, 6))
        assert new.signed_by(NEW) and not new.signed_by(OLD)
        wrong = await post_raw(url, seq_batch(7, 7), secret="neither")
        assert wrong.status == 401 and wrong.signed_by(NEW)  # the current secret signs

        # the box's real uploader, still on the old secret, drains within the overlap
        outbox = MemoryOutbox(BOX, "e-box", raw_rows([delta(-1)] * 10))
        async with SyncClient(url, BOX, OLD) as old_box:
            up = Uploader(outbox, old_box, backoff_min_s=0.001, backoff_max_s=0.01)
            assert await up.send_all(max_steps=5) == 10
            clock.advance(59)  # 59 s into the overlap (seen at the recheck): still accepted
            outbox.rows += raw_rows([delta(-1)] * 12)[10:]
            assert await up.send_all(max_steps=5) == 12

            clock.advance(1.5)  # 60.5 s: the overlap is over
            outbox.rows += raw_rows([delta(-1)] * 14)[12:]
            refused = await post_raw(url, seq_batch(13, 14), secret=OLD)
            assert refused.status == 401 and refused.code == "bad_signature"
            assert refused.signed_by(NEW) and not refused.signed_by(OLD)
            assert await up.send_all(max_steps=3) == 12  # keeps its events
            assert {a.kind for a in outbox.alerts} == {"sync_unauthorized"}
            assert "401" in outbox.errors[-1]
        new = await post_raw(url, seq_batch(1, 14), secret=NEW)
        assert (new.status, new.doc) == (200, echo(14, 1, 14))

        # a second rotation, by an atomic rename: the previous (NEW) overlaps, OLD stays out
        tmp = secrets / f".{BOX}.tmp"
        write_secret(secrets, tmp.name, NEWER)
        os.replace(tmp, secrets / BOX)
        clock.advance(2)
        for secret, status in ((NEW, 200), (NEWER, 200), (OLD, 401)):
            answer = await post_raw(url, seq_batch(14, 14), secret=secret)
            assert answer.status == status, secret
            assert answer.signed_by(NEWER if secret == OLD else secret), secret
        assert cloud.receiver.epochs(BOX) == [(EPOCH, 14), ("e-box", 12)]
        assert cloud.receiver.net_stock(BOX) == {KEY: -26}


async def test_a_secret_file_others_can_read_is_refused_until_it_is_chmod_600(
    db: str, secrets: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cloud_sync.receiver")
    write_secret(secrets, BOX, OLD, mode=0o640)
    write_secret(secrets, "zone-b", "zone-b-secret", mode=0o604)
    clock = Clock()
    source = DirectorySecrets(secrets, recheck_s=2, clock=clock)
    async with live_receiver(db, source) as cloud:
        for _ in range(3):
            for box, secret in ((BOX, OLD), ("zone-b", "zone-b-secret")):
                answer = await post_raw(cloud.url, seq_batch(1, 1), box=box, secret=secret)
                assert (answer.status, answer.signature) == (401, None), box
            clock.advance(2)
        refusals = [r for r in caplog.records if "readable by others" in r.getMessage()]
        assert len(refusals) == 2  # once per box, not per request
        assert all(r.levelno == logging.ERROR for r in refusals)
        assert snapshot(cloud.receiver)["events"] == []

        (secrets / BOX).chmod(0o600)  # what the log line says to do
        clock.advance(2)
        answer = await post_raw(cloud.url, seq_batch(1, 1), secret=OLD)
        assert (answer.status, answer.doc) == (200, echo(1, 1, 1))
        assert answer.signed_by(OLD)
        # and a file that becomes readable by others is refused again
        (secrets / BOX).chmod(0o644)
        clock.advance(2)
        answer = await post_raw(cloud.url, seq_batch(2, 2), secret=OLD)
        assert (answer.status, answer.signature) == (401, None)
        assert cloud.receiver.acked(BOX, EPOCH) == 1


async def test_a_removed_secret_file_revokes_the_box_at_once(db: str, secrets: Path) -> None:
    """Removing a box's file is how an operator revokes it (a stolen or retired
    box): refused at the next look at the file, with no overlap, which only a
    box whose secret *changed* gets."""
    write_secret(secrets, BOX, OLD)
    clock = Clock()
    source = DirectorySecrets(secrets, overlap_s=3600, recheck_s=2, clock=clock)
    async with live_receiver(db, source) as cloud:
        assert (await post_raw(cloud.url, seq_batch(1, 1), secret=OLD)).status == 200
        (secrets / BOX).unlink()
        clock.advance(2)
        answer = await post_raw(cloud.url, seq_batch(2, 2), secret=OLD)
        assert (answer.status, answer.signature) == (401, None)
        assert cloud.receiver.acked(BOX, EPOCH) == 1
        write_secret(secrets, BOX, NEW)  # re-enrolled with a new secret
        clock.advance(2)
        assert (await post_raw(cloud.url, seq_batch(2, 2), secret=OLD)).status == 401
        answer = await post_raw(cloud.url, seq_batch(2, 2), secret=NEW)
        assert (answer.status, answer.doc) == (200, echo(2, 2, 2))


async def test_table_secrets_rotate_with_one_overlap_for_every_process(db: str) -> None:
    clock = Clock()
    receiver = Receiver(db)
    table = TableSecrets(receiver.db, cache_s=0, clock=clock)
    other = Receiver(db)  # another receiver process on the same database
    other_table = TableSecrets(other.db, cache_s=5, clock=clock)
    try:
        async with live_receiver(db, table, receiver=receiver) as cloud:

            async def status(secret: str, box: str = BOX) -> int:
                answer = await post_raw(cloud.url, seq_batch(1, 1), box=box, secret=secret)
                if answer.status == 200:
                    assert answer.signed_by(secret)
                return answer.status

            assert await status("s1") == 401  # unknown yet: unsigned
            assert other_table.signers(BOX) == []
            table.rotate(BOX, "s1", overlap_s=60)  # t0
            assert await status("s1") == 200
            clock.advance(10)
            table.rotate(BOX, "s2-rotated", overlap_s=60)  # t0+10: s1 until t0+70
            assert (await status("s1"), await status("s2-rotated")) == (200, 200)
            wrong = await post_raw(cloud.url, seq_batch(1, 1), secret="nope")
            assert wrong.status == 401 and wrong.signed_by("s2-rotated")
            clock.advance(10)
            table.rotate(BOX, "s3-rotated-again", overlap_s=60)  # t0+20: s2 until t0+80
            assert [await status(s) for s in ("s1", "s2-rotated", "s3-rotated-again")] == [200] * 3
            # the other process caches for 5 s, then sees the same rows and overlap
            clock.advance(5)
            body = seq_batch(1, 1)
            header = [s.request("POST", "/sync/v1/batches", body) for s in other_table.signers(BOX)]
            assert len(header) == 3
            clock.advance(46)  # t0+71: s1's overlap is over (not extended by the later rotation)
            assert [await status(s) for s in ("s1", "s2-rotated", "s3-rotated-again")] == [
                401,
                200,
                200,
            ]
            clock.advance(10)  # t0+81
            assert [await status(s) for s in ("s1", "s2-rotated", "s3-rotated-again")] == [
                401,
                401,
                200,
            ]
            assert len(other_table.signers(BOX)) == 1
            assert await status("s1", box="zone-unknown") == 401
            assert cloud.receiver.acked(BOX, EPOCH) == 1
            with receiver.db.transaction() as tx:
                rows = tx.all("SELECT count(*) FROM box_secrets WHERE box = ?", (BOX,))
            assert rows == [(3,)]
        for bad_box, secret in (("../x", "s"), (BOX, "")):
            with pytest.raises(ValueError):
                table.rotate(bad_box, secret)
    finally:
        other.close()


def test_unknown_box_ids_are_not_remembered(db: str, secrets: Path) -> None:
    """Anyone may send any well-formed box id: the secret sources must not keep
    a row for each (unbounded memory)."""
    write_secret(secrets, BOX, OLD)
    receiver = Receiver(db)
    try:
        directory = DirectorySecrets(secrets, recheck_s=0)
        table = TableSecrets(receiver.db)
        table.rotate(BOX, OLD)
        rng = random.Random(1)
        for _ in range(300):
            box = "box-" + "".join(rng.choices("abcdefghijklmnop0123456789", k=20))
            assert directory.signers(box) == [] and table.signers(box) == []
        assert len(directory.signers(BOX)) == 1 and len(table.signers(BOX)) == 1
        assert len(directory._entries) == 1
        assert len(table._cache) == 1
    finally:
        receiver.close()
