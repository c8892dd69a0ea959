"""The sync mark: how a box tells it was restored from a backup or copied.

A database file cannot know it is a copy: a backup restored over it, or the SD
card cloned into another box, holds exactly what the original held at that
moment. The cloud may hold more of the same epoch — events the original wrote
and sent *after* the copy was taken. A copy that wrote new events under those
seqs would have them taken for duplicates (a cloud without digests acks and
drops them) or refused as a conflict.

So the box keeps, **outside the database file**, a small mark beside it:
``<db>.syncmark``, JSON ``{"v": 1, "box", "db", "epoch", "sent"}`` — the
database's identity (``box.db_id``, random, created with the database), the
current epoch and the highest seq that may have left the box in it. It is
written atomically (temporary file, ``fsync``, ``rename``, ``fsync`` of the
directory) and advanced **before** a batch goes out, only when the batch goes
beyond it (:meth:`SyncMark.will_send`): at most one small write per batch.

At start-up (:func:`reconcile`, before anything is written or sent) the mark
and the database are compared. The database is a copy when:

- it had a mark (``box.marked``) and none is beside it: copied or restored to
  another path or card;
- the mark is unreadable, or names another box or another database identity;
- the mark's epoch is the database's current one, and the database ends
  before the mark's ``sent``: restored from a backup older than what was sent;
- the mark's epoch is not one the database has: restored from before an
  epoch change.

A mark naming an *older* epoch of the database is not a copy: the database
moved on (a new epoch) and had not sent in it yet when it stopped.

A copy seals its current epoch where it ends (:func:`edge.store.outbox.
seal_epoch`): the events it holds are a prefix of what the original held, so
they are sent as they are (the cloud dedups what it has and applies what it
lacks); new events go to a fresh epoch, which no other copy ever wrote to. The
copy also takes a new database identity (it is a new line of history), raises
a ``crit`` alert ``sync_restore_detected`` and writes its own mark.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_sync.events import Severity
from edge.store import outbox
from edge.store.db import Store, Transaction, new_db_id

log = logging.getLogger(__name__)

#: the alert a detected restore or copy raises
RESTORE_ALERT = "sync_restore_detected"
SUFFIX = ".syncmark"


@dataclass(frozen=True, slots=True)
class Mark:
    box: str
    db: str
    epoch: str
    sent: int

    def to_json(self) -> bytes:
        doc = {"v": 1, "box": self.box, "db": self.db, "epoch": self.epoch, "sent": self.sent}
        return json.dumps(doc, sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class Restore:
    """What :func:`reconcile` did about a copy."""

    reason: str
    move: outbox.EpochMove


def mark_path(db_path: Path) -> Path:
    """Where the mark of the database at ``db_path`` lives."""
    return db_path.with_name(db_path.name + SUFFIX)


def read_mark(path: Path) -> tuple[Mark | None, str | None]:
    """(the mark, None), (None, None) when there is none, or (None, what is
    wrong with it)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot read it ({exc})"
    try:
        doc: Any = json.loads(raw)
        mark = Mark(str(doc["box"]), str(doc["db"]), str(doc["epoch"]), int(doc["sent"]))
        if doc.get("v") != 1:
            raise ValueError(f"version {doc.get('v')!r}")
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"it is not a sync mark ({exc})"
    return mark, None


def write_mark(path: Path, mark: Mark) -> None:
    """Replace the mark atomically and durably (file and directory fsynced)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, mark.to_json())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@dataclass(frozen=True, slots=True)
class _DbState:
    box: str
    db: str
    epoch: str
    last: int
    marked: bool
    epochs: tuple[str, ...]


def _db_state(tx: Transaction) -> _DbState:
    box, db, epoch, next_seq, marked = tx.execute(
        "SELECT box_id, db_id, epoch, next_seq, marked FROM box WHERE id = 1"
    ).fetchone()
    epochs = tuple(str(e) for (e,) in tx.execute("SELECT epoch FROM epochs ORDER BY n"))
    return _DbState(str(box), str(db), str(epoch), int(next_seq) - 1, bool(marked), epochs)


def judge(mark: Mark | None, problem: str | None, db: _DbState, path: Path) -> str | None:
    """Why the database is a restored or copied one, or None when the mark
    (or its absence) agrees with it."""
    if problem is not None:
        return f"the sync mark {path} is unreadable: {problem}"
    if mark is None:
        if db.marked:
            return f"no sync mark {path} beside a database that had one (copied or restored)"
        return None
    if mark.box != db.box:
        return f"the sync mark {path} is box {mark.box!r}'s, not {db.box!r}'s"
    if mark.db != db.db:
        return f"the sync mark {path} belongs to another copy of this database"
    if mark.epoch == db.epoch:
        if db.last < mark.sent:
            return (
                f"the database ends at seq {db.last} of epoch {db.epoch}, but the box had "
                f"sent up to {mark.sent}: restored from an older backup"
            )
        return None
    if mark.epoch in db.epochs:
        return None  # the database moved on to a newer epoch and had not sent in it yet
    return (
        f"the sync mark names epoch {mark.epoch}, which the database never had: restored "
        "from a backup older than an epoch change"
    )


class SyncMark:
    """The mark of one store: compared at start-up, advanced before sends.

    Thread-safe; the uploader calls :meth:`will_send` on its I/O thread.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path = mark_path(store.path)
        self._lock = threading.Lock()
        self._mark: Mark | None = None  # as last read or written, once reconciled

    def reconcile(self) -> Restore | None:
        """Compare mark and database; a copy seals its epoch and starts a new one
        (one transaction, with the ``crit`` alert), then writes its own mark.
        Returns what was done for a copy, None otherwise. Idempotent."""
        with self._lock:
            return self._reconcile()

    def _reconcile(self) -> Restore | None:
        mark, problem = read_mark(self.path)
        db = self.store.run(_db_state)
        reason = judge(mark, problem, db, self.path)
        if reason is None:
            if mark is None:  # the first mark of this database
                mark = Mark(db.box, db.db, db.epoch, db.last)
                write_mark(self.path, mark)
            if not db.marked:
                self.store.run(_set_marked)
            self._mark = mark
            return None

        def seal(tx: Transaction) -> tuple[outbox.EpochMove, str]:
            move = outbox.seal_epoch(tx)
            identity = new_db_id()
            tx.execute("UPDATE box SET db_id = ?, marked = 1 WHERE id = 1", (identity,))
            outbox.raise_alert(
                tx,
                RESTORE_ALERT,
                str(Severity.CRIT),
                "this database was restored from a backup or copied: its events are "
                "resent as they are, new ones go to a new epoch",
                {"reason": reason, "old_epoch": move.old, "new_epoch": move.new, "kept": move.kept},
                once=False,
            )
            return move, identity

        move, identity = self.store.run(seal)
        self._mark = Mark(db.box, identity, move.new, 0)
        write_mark(self.path, self._mark)
        log.error(
            "%s; epoch %s sealed at seq %d (resent as it is), new events go to epoch %s",
            reason,
            move.old,
            move.kept,
            move.new,
        )
        return Restore(reason, move)

    def will_send(self, epoch: str, last: int) -> None:
        """A batch of ``epoch`` up to seq ``last`` is about to leave: make the
        mark cover it first (a write only when it goes beyond the mark). Sends
        of a sealed epoch need none: no copy can write to it any more."""
        with self._lock:
            if self._mark is None:
                self._reconcile()
            mark = self._mark
            assert mark is not None
            if epoch == mark.epoch:
                if last <= mark.sent:
                    return
            else:
                row = (
                    self.store.reader()
                    .execute("SELECT last_seq FROM epochs WHERE epoch = ?", (epoch,))
                    .fetchone()
                )
                if row is None or row[0] is not None:
                    return  # a sealed epoch (or one the box no longer has)
            mark = Mark(mark.box, mark.db, epoch, max(last, 0))
            write_mark(self.path, mark)
            self._mark = mark


def _set_marked(tx: Transaction) -> None:
    tx.execute("UPDATE box SET marked = 1 WHERE id = 1")


__all__ = ["RESTORE_ALERT", "Mark", "Restore", "SyncMark", "mark_path", "read_mark", "write_mark"]
