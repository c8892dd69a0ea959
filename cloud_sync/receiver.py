"""The cloud side of sync-v1 as plain logic: apply a batch, answer; serve changes.

This is the reference a cloud OMS can run or copy (the simulator wraps it in
HTTP and faults). It promises, per ``(box, epoch)``:

- **Exactly-once effect.** Events are applied in seq order, contiguously, in one
  SQLite transaction per batch together with the new acked mark; a batch whose
  ``last`` ≤ the acked mark applies nothing and is answered 200 with the mark.
- **Gaps are refused.** ``first`` > acked + 1 → 409 ``{"acked": N}``.
- **Other content under a held seq is a conflict, not a duplicate.** Every
  applied event keeps a digest of ``(type, at, data)``; a resent seq whose
  digest differs → 409 ``{"error": {"code": "epoch_conflict"}, "conflict_at": S}``
  with S the first such seq, nothing applied. (``keep_digests=False`` makes a
  cloud that compares nothing, to test a box against one.)
- **Every 200 and 409 echoes** the batch's ``epoch``, ``first`` and ``last``
  beside ``acked`` (:func:`cloud_sync.codec.batch_answer`), so a signed answer
  cannot be replayed to another batch or epoch.
- **Net stock** per ``(box, sku, location)`` is the sum of applied
  :class:`~cloud_sync.events.StockDelta` quantities, kept in the same
  transaction, so the ``stock`` changes it serves include exactly the deltas
  up to the acked mark (sync-v1 rule).

Batches arrive decoded into the typed events of :mod:`cloud_sync.events`
(:func:`cloud_sync.codec.decode_batch`); what is stored and digested is each
event's ``(type, at, data)`` exactly as received.

It never checks signatures (the HTTP layer does) and never trusts a clock.
State lives in SQLite: ``:memory:`` by default, or a file that survives a
restart of the process.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from cloud_sync.codec import (
    MAX_BATCH_BYTES,
    Batch,
    BatchError,
    batch_answer,
    decode_batch,
    epoch_conflict_answer,
    url_safe,
)
from cloud_sync.events import StockDelta

_SCHEMA = """
CREATE TABLE IF NOT EXISTS heads (
    n      INTEGER PRIMARY KEY AUTOINCREMENT,
    box    TEXT NOT NULL,
    epoch  TEXT NOT NULL,
    acked  INTEGER NOT NULL,
    UNIQUE (box, epoch)
);
CREATE TABLE IF NOT EXISTS events (
    box     TEXT NOT NULL,
    epoch   TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    digest  BLOB NOT NULL,
    body    BLOB NOT NULL,
    PRIMARY KEY (box, epoch, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stock (
    box       TEXT NOT NULL,
    sku       TEXT NOT NULL,
    location  TEXT NOT NULL,
    qty       INTEGER NOT NULL,
    PRIMARY KEY (box, sku, location)
) WITHOUT ROWID;
"""

_pack = msgpack.Packer(use_bin_type=True).pack


@dataclass(frozen=True, slots=True)
class Answer:
    """What the HTTP layer sends: a status and a document."""

    status: int
    doc: dict[str, Any]


def _event_body(ev: dict[str, Any]) -> bytes:
    return _pack((ev["type"], ev["at"], ev["data"]))  # type: ignore[no-any-return]


def _digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()[:16]


class Receiver:
    """Applies batches of any number of boxes; one instance per process."""

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        keep_digests: bool = True,
    ) -> None:
        self.path = str(path) if path is not None else ":memory:"
        self.max_batch_bytes = max_batch_bytes
        #: False: a cloud that compares no content (for tests of the box): a
        #: resent seq it holds is a duplicate whatever it carries, never an
        #: ``epoch_conflict`` — what a box must survive without the cloud's help
        self.keep_digests = keep_digests
        #: events received again (seq at or below the acked mark, same content)
        #: and discarded, since this receiver was created: a box's resends after
        #: a lost answer, counted once each time they arrive
        self.discarded = 0
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ upstream

    def receive(self, box: str, body: bytes) -> Answer:
        """Decode, validate and apply one batch body of an authenticated ``box``."""
        try:
            batch = decode_batch(body, box=box, max_bytes=self.max_batch_bytes)
        except BatchError as exc:
            status = 413 if exc.code == "batch_too_large" else 400
            return Answer(status, {"error": {"code": exc.code, "message": str(exc)}})
        return self.apply(batch)

    def apply(self, batch: Batch) -> Answer:
        """Apply a validated batch; the answer follows the sync-v1 table."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            answer = self._apply(batch)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return answer

    def _apply(self, batch: Batch) -> Answer:
        db = self._db
        acked = self._acked(batch.box, batch.epoch)
        echo = (batch.epoch, batch.first, batch.last)
        if batch.first > acked + 1:
            return Answer(409, batch_answer(acked, *echo))
        bodies = [_event_body(ev) for ev in batch.raw]
        held = min(batch.last, acked)
        if held >= batch.first and self.keep_digests:
            stored = db.execute(
                "SELECT seq, digest FROM events "
                "WHERE box = ? AND epoch = ? AND seq BETWEEN ? AND ?",
                (batch.box, batch.epoch, batch.first, held),
            ).fetchall()
            digests = dict(stored)
            for seq in range(batch.first, held + 1):
                if digests.get(seq) != _digest(bodies[seq - batch.first]):
                    message = f"seq {seq} of epoch {batch.epoch} is held with other content"
                    doc = epoch_conflict_answer(acked, *echo, conflict_at=seq, message=message)
                    return Answer(409, doc)
        if held >= batch.first:
            self.discarded += held - batch.first + 1
        if batch.last <= acked:
            return Answer(200, batch_answer(acked, *echo))
        start = acked + 1 - batch.first
        db.executemany(
            "INSERT INTO events (box, epoch, seq, digest, body) VALUES (?, ?, ?, ?, ?)",
            [
                (batch.box, batch.epoch, seq, _digest(body), body)
                for seq, body in enumerate(bodies[start:], start=acked + 1)
            ],
        )
        moves: dict[tuple[str, str], int] = {}
        for event in batch.events[start:]:
            if isinstance(event, StockDelta):
                key = (event.sku, event.location)
                moves[key] = moves.get(key, 0) + event.qty
        if moves:
            db.executemany(
                "INSERT INTO stock (box, sku, location, qty) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (box, sku, location) DO UPDATE SET qty = qty + excluded.qty",
                [(batch.box, sku, loc, qty) for (sku, loc), qty in moves.items()],
            )
        db.execute(
            "INSERT INTO heads (box, epoch, acked) VALUES (?, ?, ?) "
            "ON CONFLICT (box, epoch) DO UPDATE SET acked = excluded.acked",
            (batch.box, batch.epoch, batch.last),
        )
        return Answer(200, batch_answer(batch.last, *echo))

    def _acked(self, box: str, epoch: str) -> int:
        row = self._db.execute(
            "SELECT acked FROM heads WHERE box = ? AND epoch = ?", (box, epoch)
        ).fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ inspection

    def acked(self, box: str, epoch: str) -> int:
        return self._acked(box, epoch)

    def epochs(self, box: str) -> list[tuple[str, int]]:
        """(epoch, acked) of ``box`` in the order the cloud first saw them."""
        rows = self._db.execute(
            "SELECT epoch, acked FROM heads WHERE box = ? ORDER BY n", (box,)
        ).fetchall()
        return [(str(e), int(a)) for e, a in rows]

    def events(self, box: str, epoch: str) -> list[dict[str, Any]]:
        """Applied events of ``(box, epoch)`` in seq order, as maps."""
        out = []
        for seq, body in self._db.execute(
            "SELECT seq, body FROM events WHERE box = ? AND epoch = ? ORDER BY seq", (box, epoch)
        ):
            type_, at, data = msgpack.unpackb(body, raw=False)
            out.append({"seq": seq, "type": type_, "at": at, "data": data})
        return out

    def count(self, box: str) -> int:
        row = self._db.execute("SELECT count(*) FROM events WHERE box = ?", (box,)).fetchone()
        return int(row[0])

    def net_stock(self, box: str) -> dict[tuple[str, str], int]:
        """Net applied stock movement per (sku, location) of ``box``."""
        rows = self._db.execute(
            "SELECT sku, location, qty FROM stock WHERE box = ?", (box,)
        ).fetchall()
        return {(s, loc): int(q) for s, loc, q in rows}

    def stock_view(self, box: str, sku: str, location: str) -> tuple[int, str | None, int]:
        """(net applied delta, epoch, acked) for a ``stock`` change: the figure
        includes every applied delta, i.e. all of earlier epochs and seqs ≤
        ``acked`` of ``epoch`` (the latest epoch seen); (0, None, 0) for none."""
        row = self._db.execute(
            "SELECT qty FROM stock WHERE box = ? AND sku = ? AND location = ?",
            (box, sku, location),
        ).fetchone()
        head = self._db.execute(
            "SELECT epoch, acked FROM heads WHERE box = ? ORDER BY n DESC LIMIT 1", (box,)
        ).fetchone()
        if head is None:
            return 0, None, 0
        return (int(row[0]) if row else 0), str(head[0]), int(head[1])


# --------------------------------------------------------------------------- downstream


class ChangeFeed:
    """An append-only list of changes served by ``GET /sync/v1/changes``.

    The cursor is the position after the last change served, as an opaque
    URL-safe string (``p`` and a number). A ``stock`` entry is served as the
    cloud's absolute view *at the time of serving*: its ``base`` plus the box's
    applied deltas, with the ``epoch``/``acked`` those include.
    """

    def __init__(self, receiver: Receiver, changes: list[dict[str, Any]] | None = None) -> None:
        self.receiver = receiver
        self.changes: list[dict[str, Any]] = list(changes or [])

    def add(self, *changes: dict[str, Any]) -> None:
        self.changes.extend(changes)

    def page(self, box: str, cursor: str | None, limit: int) -> Answer:
        try:
            pos = int(cursor[1:]) if cursor else 0
            if cursor and not cursor.startswith("p"):
                raise ValueError(cursor)
        except ValueError:
            return Answer(400, {"error": {"code": "bad_cursor", "message": "unknown cursor"}})
        if pos < 0 or pos > len(self.changes) or limit < 1:
            return Answer(400, {"error": {"code": "bad_cursor", "message": "unknown cursor"}})
        chunk = self.changes[pos : pos + limit]
        out = [self._resolve(box, c) for c in chunk]
        end = pos + len(chunk)
        cursor = f"p{end}"
        assert url_safe(cursor), cursor  # sync-v1: nobody re-encodes a cursor
        return Answer(200, {"cursor": cursor, "more": end < len(self.changes), "changes": out})

    def _resolve(self, box: str, change: dict[str, Any]) -> dict[str, Any]:
        if change["type"] != "stock":
            return change
        d = change["data"]
        net, epoch, acked = self.receiver.stock_view(box, d["sku"], d["location"])
        return {
            "type": "stock",
            "data": {
                "sku": d["sku"],
                "location": d["location"],
                "qty": int(d.get("base", d.get("qty", 0))) + net,
                "epoch": epoch,
                "acked": acked,
            },
        }


__all__ = ["Answer", "BatchError", "ChangeFeed", "Receiver"]
