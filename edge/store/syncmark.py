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

The mark also carries the box's **SSCC high-water** (``"sscc"``: serial space
→ the highest serial the box may have handed out in it; a serial space is the
extension digit and the GS1 company prefix, :func:`sscc_space`). A database
restored from a backup has its ``sscc_range.next_serial`` of that moment, but
serials it handed out after the backup are on labels and with the carrier:
they must never be handed out again. So :mod:`edge.shipping.sscc` reserves
serials in blocks (:func:`reserve_sscc`: the mark is written, durably, before
any serial of the block is used — in the transaction that allocates it, so
before it commits and before its label prints), and :func:`catch_up_sscc`, run
by :meth:`SyncMark.reconcile` once for every store opened, moves the database's
``next_serial`` past the mark's high-water: after a crash it skips what is
left of the block (skipping is fine, reuse never), after a restore it skips
everything the backup does not know of. A copy whose mark cannot vouch for its
serials (no mark beside a database that had one, an unreadable mark, another
box's) **closes** its range (``next_serial`` past the end, ``crit``
``sscc_range_closed``): the box cannot know what it handed out, and a clone
running beside the original would hand out the same serials. A new range
configured beyond the old one reopens it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cloud_sync.events import Severity
from edge.store import outbox
from edge.store.db import Store, Transaction, new_db_id
from edge.store.errors import StoreError

log = logging.getLogger(__name__)

#: the alert a detected restore or copy raises
RESTORE_ALERT = "sync_restore_detected"
#: the alert of a copy whose SSCC high-water is unknown: its range is closed
SSCC_CLOSED_ALERT = "sscc_range_closed"
SUFFIX = ".syncmark"


class MarkUnavailableError(StoreError):
    """The sync mark cannot be read or written, so nothing that must be on it
    first (a batch, a block of SSCC serials) may leave the box."""

    code = "sync_mark_unavailable"


@dataclass(frozen=True, slots=True)
class Mark:
    box: str
    db: str
    epoch: str
    sent: int
    #: serial space (:func:`sscc_space`) -> the highest serial the box may
    #: have handed out in it (reserved, maybe not used)
    sscc: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        doc = {
            "v": 1,
            "box": self.box,
            "db": self.db,
            "epoch": self.epoch,
            "sent": self.sent,
            "sscc": dict(sorted(self.sscc.items())),
        }
        return json.dumps(doc, sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class SsccCatchUp:
    """What :func:`catch_up_sscc` did to the database's SSCC range."""

    space: str
    before: int  # next_serial before
    after: int  # next_serial after
    closed: bool  # the high-water was unknown: the range was closed


@dataclass(frozen=True, slots=True)
class Restore:
    """What :func:`reconcile` did about a copy."""

    reason: str
    move: outbox.EpochMove
    sscc: SsccCatchUp | None = None


def sscc_space(extension: int, prefix: str) -> str:
    """The key of an SSCC serial space in the mark: the extension digit and
    the GS1 company prefix (``0`` + ``0614141`` -> ``"00614141"``)."""
    return f"{extension}{prefix}"


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
        sscc = doc.get("sscc", {})  # absent in marks written before SSCCs
        if not isinstance(sscc, dict):
            raise TypeError(f"sscc is {type(sscc).__name__}, not a map")
        mark = Mark(
            str(doc["box"]),
            str(doc["db"]),
            str(doc["epoch"]),
            int(doc["sent"]),
            {str(k): int(v) for k, v in sscc.items()},
        )
        if doc.get("v") != 1:
            raise ValueError(f"version {doc.get('v')!r}")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
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


_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def _path_lock(path: Path) -> threading.Lock:
    """One lock per mark file in this process: the uploader (:meth:`SyncMark.
    will_send`) and the SSCC allocator (:func:`reserve_sscc`) each read the
    file, change their part and write it back, and neither may lose the other's."""
    with _path_locks_guard:
        return _path_locks.setdefault(os.path.abspath(path), threading.Lock())


def _write_merged(path: Path, mark: Mark) -> Mark:
    """Write ``mark`` keeping every SSCC high-water the file on disk has for
    the same box (a high-water only ever grows); returns what was written."""
    with _path_lock(path):
        disk, _ = read_mark(path)
        if disk is not None and disk.box == mark.box:
            merged = dict(disk.sscc)
            for space, serial in mark.sscc.items():
                merged[space] = max(serial, merged.get(space, serial))
            mark = replace(mark, sscc=merged)
        write_mark(path, mark)
        return mark


def reserve_sscc(path: Path, space: str, serial: int, upto: int) -> int:
    """Make the mark at ``path`` cover ``serial`` of ``space`` before it is
    used: nothing is written when it does already; otherwise the mark's
    high-water becomes ``upto`` (≥ ``serial``: a block, so that this fsync is
    rare), durably, before this returns. Returns the high-water now on the
    mark. Raises :class:`MarkUnavailableError` (nothing reserved) when there
    is no readable mark — :meth:`SyncMark.reconcile` writes it at start — or
    it cannot be written."""
    if upto < serial:
        raise ValueError(f"cannot reserve up to {upto} for serial {serial}")
    with _path_lock(path):
        mark, problem = read_mark(path)
        if mark is None:
            raise MarkUnavailableError(
                f"the sync mark {path} is {problem or 'missing'}: no SSCC is handed out "
                "until the box has checked and written it (it does at start)"
            )
        have = mark.sscc.get(space)
        if have is not None and have >= serial:
            return have
        try:
            write_mark(path, replace(mark, sscc={**mark.sscc, space: upto}))
        except OSError as exc:
            raise MarkUnavailableError(
                f"cannot write the sync mark {path} ({exc}): no SSCC is handed out "
                "until it can record them"
            ) from exc
        return upto


def catch_up_sscc(tx: Transaction, mark: Mark | None, *, close: bool) -> SsccCatchUp | None:
    """Move the database's SSCC range past what the box may have handed out.

    ``mark``: this box's mark (read in ``tx``, under the writer lock every
    reservation is written under): ``next_serial`` goes past the mark's
    high-water of the range's serial space, never back. ``close`` (the
    database is a copy and no mark can vouch for its serials): the range is
    closed, ``next_serial`` past its end, with a ``crit`` alert
    :data:`SSCC_CLOSED_ALERT`. Returns what changed, None when nothing did
    (or there is no range)."""
    row = tx.execute(
        "SELECT prefix, extension, last_serial, next_serial FROM sscc_range WHERE id = 1"
    ).fetchone()
    if row is None:
        return None
    prefix, extension, last, before = str(row[0]), int(row[1]), int(row[2]), int(row[3])
    space = sscc_space(extension, prefix)
    if close:
        after = last + 1
    else:
        high = mark.sscc.get(space) if mark is not None else None
        after = before if high is None else min(max(before, high + 1), last + 1)
    if after <= before:
        return None
    tx.execute("UPDATE sscc_range SET next_serial = ? WHERE id = 1", (after,))
    if close:
        outbox.raise_alert(
            tx,
            SSCC_CLOSED_ALERT,
            str(Severity.CRIT),
            "this database is a copy and no sync mark says which SSCCs the box handed "
            "out: its range is closed (no SSCC is ever reused); configure a new range",
            {"space": space, "next_serial": before, "last_serial": last},
        )
    return SsccCatchUp(space, before, after, close)


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
                with _path_lock(self.path):
                    write_mark(self.path, mark)
            if not db.marked:
                self.store.run(_set_marked)
            if self.store not in _caught_up:
                # after a crash or an undetected restore alike: past the mark's
                # SSCC high-water (read again under the writer lock)
                jump = self.store.run(
                    lambda tx: catch_up_sscc(tx, _own(read_mark(self.path)[0], db), close=False)
                )
                if jump is not None:
                    log.info(
                        "SSCC serials %d..%d of %s skipped at start: they were reserved on "
                        "the sync mark and may have been handed out",
                        jump.before,
                        jump.after - 1,
                        jump.space,
                    )
                _caught_up.add(self.store)
            self._mark = mark
            return None
        # the mark vouches for the SSCCs when it is this box's, readable
        vouches = _own(mark, db)

        def seal(tx: Transaction) -> tuple[outbox.EpochMove, str, SsccCatchUp | None]:
            jump = catch_up_sscc(tx, vouches, close=vouches is None)
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
            return move, identity, jump

        move, identity, jump = self.store.run(seal)
        sscc = dict(vouches.sscc) if vouches is not None else {}
        if jump is not None:
            sscc[jump.space] = max(jump.after - 1, sscc.get(jump.space, jump.after - 1))
        self._mark = _write_merged(self.path, Mark(db.box, identity, move.new, 0, sscc))
        _caught_up.add(self.store)
        log.error(
            "%s; epoch %s sealed at seq %d (resent as it is), new events go to epoch %s",
            reason,
            move.old,
            move.kept,
            move.new,
        )
        if jump is not None:
            log.error(
                "SSCC range %s %s: next serial %d -> %d",
                jump.space,
                "closed (no mark vouches for what was handed out)" if jump.closed else "caught up",
                jump.before,
                jump.after,
            )
        return Restore(reason, move, jump)

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
            # the SSCC high-waters on disk are kept (the allocator writes them)
            self._mark = _write_merged(self.path, replace(mark, epoch=epoch, sent=max(last, 0)))


#: stores whose SSCC range was caught up with the mark since they were opened
_caught_up: weakref.WeakSet[Store] = weakref.WeakSet()


def is_reconciled(store: Store) -> bool:
    """Whether :meth:`SyncMark.reconcile` ran on ``store`` since it was opened
    (its SSCC range is past the mark's high-water): the SSCC allocator refuses
    before."""
    return store in _caught_up


def _own(mark: Mark | None, db: _DbState) -> Mark | None:
    """``mark`` when it is this box's (its SSCC high-waters are this box's)."""
    return mark if mark is not None and mark.box == db.box else None


def _set_marked(tx: Transaction) -> None:
    tx.execute("UPDATE box SET marked = 1 WHERE id = 1")


__all__ = [
    "RESTORE_ALERT",
    "SSCC_CLOSED_ALERT",
    "Mark",
    "MarkUnavailableError",
    "Restore",
    "SsccCatchUp",
    "SyncMark",
    "catch_up_sscc",
    "is_reconciled",
    "mark_path",
    "read_mark",
    "reserve_sscc",
    "sscc_space",
    "write_mark",
]
