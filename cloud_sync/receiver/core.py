"""The cloud side of sync-v1: apply a box's batch, answer; serve its change feed.

Promises, per ``(box, epoch)``, on either engine (SQLite for one process,
PostgreSQL for any number of receiver processes sharing one database):

- **Exactly-once effect.** A batch is applied in one transaction: its new
  events (primary key ``(box, epoch, seq)``, the dedup key), the OMS hook's
  writes and the new high-water mark commit together or not at all. The
  transaction's first statement updates the box's row, so two receivers
  handling the same box wait for each other (a row lock, not process state),
  and the second one sees the first one's mark.
- **Gaps are refused**: ``first`` > acked + 1 → 409 with the mark.
- **Other content under a held seq is a conflict, not a duplicate**: each
  applied event keeps a digest of ``(type, at, data)`` as received; a resent
  seq whose digest differs → 409 ``epoch_conflict`` with ``conflict_at``, the
  first such seq, nothing applied. (``keep_digests=False`` makes a cloud that
  compares nothing, to test a box against one.)
- **Every 200 and 409 echoes** the batch's ``epoch``, ``first`` and ``last``.
- **Unknown event types are stored and acked** (sync-v1 as amended).
- **The change feed** is per box, in the database: positions 1, 2, 3… given
  under the box's row lock (so they commit in order), an opaque cursor per
  page, resumable after any restart. A ``stock`` change is enqueued with the
  cloud's ``base`` quantity and served as base + the box's applied deltas,
  with the ``epoch``/``acked`` they include, read in one snapshot.

It never checks signatures (:mod:`cloud_sync.receiver.service` does) and never
trusts a clock: the wall clock only stamps last contact, for operators.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
from cloud_sync.receiver.oms import Applied, OmsHook, ReferenceOms
from cloud_sync.receiver.schema import RECEIVER_MIGRATIONS, migrate
from cloud_sync.receiver.storage import Database, Tx, open_database

_pack = msgpack.Packer(use_bin_type=True).pack

_EVENT_COLUMNS = (
    ("box", "text"),
    ("epoch", "text"),
    ("seq", "bigint"),
    ("type", "text"),
    ("digest", "bytea"),
    ("body", "bytea"),
)

#: what the change feed serves at most per page
MAX_PAGE = 5000


@dataclass(frozen=True, slots=True)
class Answer:
    """What the HTTP layer sends: a status and a document; ``outcome`` and the
    counts say what happened, for metrics and logs."""

    status: int
    doc: dict[str, Any]
    #: applied, duplicate, gap, conflict, malformed, too_large, page, bad_cursor
    outcome: str = ""
    applied: int = 0
    duplicates: int = 0
    #: the box's clock of the newest applied event (informational: lag metric)
    newest_at_ms: int | None = field(default=None, compare=False)


def _event_body(ev: Mapping[str, Any]) -> bytes:
    return _pack((ev["type"], ev["at"], ev["data"]))  # type: ignore[no-any-return]


def _digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()[:16]


class ChangeError(ValueError):
    """A change an OMS tried to enqueue that sync-v1 cannot carry."""


def _change_row(change: Mapping[str, Any]) -> tuple[str, str]:
    type_, data = change.get("type"), change.get("data")
    if not isinstance(type_, str) or not type_ or not isinstance(data, Mapping):
        raise ChangeError("a change is a map of a non-empty str type and a map data")
    if type_ == "stock":
        # served as base + the box's deltas (_resolve): one that cannot be
        # would fail every page of the box from here on
        base = data.get("base", data.get("qty", 0))
        if not (
            isinstance(data.get("sku"), str)
            and isinstance(data.get("location"), str)
            and isinstance(base, int)
            and not isinstance(base, bool)
        ):
            raise ChangeError("a stock change has a str sku, a str location and an int base")
    try:
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ChangeError(f"change data is not plain JSON: {exc}") from None
    return type_, text


class Receiver:
    """Applies batches of any number of boxes and serves their feeds.

    ``db`` is a :class:`~cloud_sync.receiver.storage.Database`, or what
    :func:`~cloud_sync.receiver.storage.open_database` takes (a PostgreSQL URL,
    a SQLite path, None for a SQLite database in memory). Thread-safe: each
    call is its own transaction. One instance per process; any number of
    processes on one PostgreSQL database.
    """

    def __init__(
        self,
        db: Database | Path | str | None = None,
        *,
        oms: OmsHook | None = None,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        keep_digests: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db: Database = open_database(db) if db is None or isinstance(db, (Path, str)) else db
        self.oms: OmsHook = oms if oms is not None else ReferenceOms()
        self.max_batch_bytes = max_batch_bytes
        #: False: a cloud that compares no content (for tests of the box): a
        #: resent seq it holds is a duplicate whatever it carries
        self.keep_digests = keep_digests
        #: events received again (at or below the mark, same content) and
        #: discarded by this instance: a box's resends after a lost answer
        self.discarded = 0
        self._clock = clock
        migrate(self.db, "receiver", RECEIVER_MIGRATIONS)
        migrate(self.db, self.oms.name, self.oms.migrations)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ upstream

    def receive(self, box: str, body: bytes) -> Answer:
        """Decode, validate and apply one batch body of an authenticated ``box``."""
        try:
            batch = decode_batch(body, box=box, max_bytes=self.max_batch_bytes)
        except BatchError as exc:
            too_large = exc.code == "batch_too_large"
            return Answer(
                413 if too_large else 400,
                {"error": {"code": exc.code, "message": str(exc)}},
                "too_large" if too_large else "malformed",
            )
        return self.apply(batch)

    def apply(self, batch: Batch) -> Answer:
        """Apply a validated batch in one transaction; the answer follows sync-v1."""
        with self.db.transaction() as tx:
            answer = self._apply(tx, batch)
        self.discarded += answer.duplicates
        return answer

    def _apply(self, tx: Tx, batch: Batch) -> Answer:
        box, epoch = batch.box, batch.epoch
        epochs = self._touch(tx, box)  # takes the box's row lock
        head = tx.one("SELECT acked FROM heads WHERE box = ? AND epoch = ?", (box, epoch))
        acked = int(head[0]) if head else 0
        echo = (epoch, batch.first, batch.last)
        if batch.first > acked + 1:
            return Answer(409, batch_answer(acked, *echo), "gap")
        bodies = [_event_body(ev) for ev in batch.raw]
        held = min(batch.last, acked)
        duplicates = max(0, held - batch.first + 1)
        if duplicates and self.keep_digests:
            digests = {
                int(seq): bytes(digest)
                for seq, digest in tx.all(
                    "SELECT seq, digest FROM events"
                    " WHERE box = ? AND epoch = ? AND seq BETWEEN ? AND ?",
                    (box, epoch, batch.first, held),
                )
            }
            for seq in range(batch.first, held + 1):
                if digests.get(seq) != _digest(bodies[seq - batch.first]):
                    message = f"seq {seq} of epoch {epoch} is held with other content"
                    doc = epoch_conflict_answer(acked, *echo, conflict_at=seq, message=message)
                    return Answer(409, doc, "conflict")
        if batch.last <= acked:
            return Answer(200, batch_answer(acked, *echo), "duplicate", duplicates=duplicates)
        start = acked + 1 - batch.first
        new_raw = batch.raw[start:]
        tx.insert(
            "events",
            _EVENT_COLUMNS,
            [
                (box, epoch, ev["seq"], ev["type"], _digest(body), body)
                for ev, body in zip(new_raw, bodies[start:], strict=True)
            ],
        )
        self.oms.apply(
            tx,
            box,
            epoch,
            [
                Applied(int(ev["seq"]), int(ev["at"]), typed)
                for ev, typed in zip(new_raw, batch.events[start:], strict=True)
            ],
        )
        newest_at = int(new_raw[-1]["at"])
        if head is None:
            tx.execute(
                "INSERT INTO heads (box, epoch, n, acked, last_at_ms) VALUES (?, ?, ?, ?, ?)",
                (box, epoch, epochs + 1, batch.last, newest_at),
            )
            tx.execute("UPDATE boxes SET epochs = ? WHERE box = ?", (epochs + 1, box))
        else:
            tx.execute(
                "UPDATE heads SET acked = ?, last_at_ms = ? WHERE box = ? AND epoch = ?",
                (batch.last, newest_at, box, epoch),
            )
        return Answer(
            200,
            batch_answer(batch.last, *echo),
            "applied",
            applied=len(new_raw),
            duplicates=duplicates,
            newest_at_ms=newest_at,
        )

    def _touch(self, tx: Tx, box: str) -> int:
        """Stamp the box's last contact, creating its row; the UPDATE holds the
        row's lock to the end of ``tx``. The box's epoch count."""
        now = int(self._clock() * 1000)
        sql = "UPDATE boxes SET last_contact_ms = ? WHERE box = ? RETURNING epochs"
        row = tx.one(sql, (now, box))
        if row is None:
            tx.execute(
                "INSERT INTO boxes (box, first_contact_ms) VALUES (?, ?)"
                " ON CONFLICT (box) DO NOTHING",
                (box, now),
            )
            row = tx.one(sql, (now, box))
            assert row is not None
        return int(row[0])

    # ------------------------------------------------------------------ downstream

    def register(self, box: str, *, site: str | None) -> None:
        """Record ``box`` (and its site, for :meth:`enqueue_site`)."""
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO boxes (box, site) VALUES (?, ?)"
                " ON CONFLICT (box) DO UPDATE SET site = excluded.site",
                (box, site),
            )

    def enqueue(self, box: str, *changes: Mapping[str, Any]) -> int:
        """Append ``changes`` to ``box``'s feed; the position of the last one.
        An OMS may also call :meth:`enqueue_in` inside its own transaction, or
        the SQL function ``pickedge_enqueue(box, type, data)`` (PostgreSQL)."""
        with self.db.transaction() as tx:
            return self.enqueue_in(tx, box, changes)

    def enqueue_site(self, site: str, *changes: Mapping[str, Any]) -> dict[str, int]:
        """Append ``changes`` to the feed of every box registered to ``site``,
        in one transaction; each box's last position. A box registered later
        does not get them."""
        with self.db.transaction() as tx:
            boxes = [
                str(b)
                for (b,) in tx.all("SELECT box FROM boxes WHERE site = ? ORDER BY box", (site,))
            ]
            return {box: self.enqueue_in(tx, box, changes) for box in boxes}

    def enqueue_in(self, tx: Tx, box: str, changes: Sequence[Mapping[str, Any]]) -> int:
        rows = [_change_row(c) for c in changes]
        if not rows:
            raise ChangeError("nothing to enqueue")
        tx.execute("INSERT INTO boxes (box) VALUES (?) ON CONFLICT (box) DO NOTHING", (box,))
        row = tx.one(
            "UPDATE boxes SET feed_pos = feed_pos + ? WHERE box = ? RETURNING feed_pos",
            (len(rows), box),
        )
        assert row is not None
        end = int(row[0])
        tx.executemany(
            "INSERT INTO changes (box, pos, type, data) VALUES (?, ?, ?, ?)",
            [(box, pos, t, d) for pos, (t, d) in enumerate(rows, start=end - len(rows) + 1)],
        )
        self.oms.enqueued(tx, box, changes)
        return end

    def page(self, box: str, cursor: str | None, limit: int) -> Answer:
        """One page of ``box``'s feed after ``cursor`` (None: from the start)."""
        pos = parse_cursor(box, cursor)
        if pos is None or limit < 1:
            return Answer(
                400, {"error": {"code": "bad_cursor", "message": "unknown cursor"}}, "bad_cursor"
            )
        with self.db.transaction(snapshot=True) as tx:
            row = tx.one("SELECT feed_pos FROM boxes WHERE box = ?", (box,))
            end = int(row[0]) if row else 0
            if pos > end:
                return Answer(
                    400,
                    {"error": {"code": "bad_cursor", "message": "cursor beyond the feed"}},
                    "bad_cursor",
                )
            rows = tx.all(
                "SELECT pos, type, data FROM changes WHERE box = ? AND pos > ?"
                " ORDER BY pos LIMIT ?",
                (box, pos, min(limit, MAX_PAGE)),
            )
            changes = [self._resolve(tx, box, str(t), json.loads(d)) for _, t, d in rows]
        last = int(rows[-1][0]) if rows else pos
        doc = {"cursor": make_cursor(box, last), "more": last < end, "changes": changes}
        return Answer(200, doc, "page")

    def _resolve(self, tx: Tx, box: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        if type_ != "stock":
            return {"type": type_, "data": data}
        return stock_change(data, *self._stock_view(tx, box, data["sku"], data["location"]))

    def _stock_view(self, tx: Tx, box: str, sku: str, location: str) -> tuple[int, str | None, int]:
        head = tx.one(
            "SELECT epoch, acked FROM heads WHERE box = ? ORDER BY n DESC LIMIT 1", (box,)
        )
        if head is None:
            return 0, None, 0
        return self.oms.net_stock(tx, box, sku, location), str(head[0]), int(head[1])

    # ------------------------------------------------------------------ inspection

    def acked(self, box: str, epoch: str) -> int:
        with self.db.transaction(snapshot=True) as tx:
            row = tx.one("SELECT acked FROM heads WHERE box = ? AND epoch = ?", (box, epoch))
        return int(row[0]) if row else 0

    def epochs(self, box: str) -> list[tuple[str, int]]:
        """(epoch, acked) of ``box`` in the order the cloud first saw them."""
        with self.db.transaction(snapshot=True) as tx:
            rows = tx.all("SELECT epoch, acked FROM heads WHERE box = ? ORDER BY n", (box,))
        return [(str(e), int(a)) for e, a in rows]

    def events(self, box: str, epoch: str) -> list[dict[str, Any]]:
        """Applied events of ``(box, epoch)`` in seq order, as maps."""
        with self.db.transaction(snapshot=True) as tx:
            rows = tx.all(
                "SELECT seq, body FROM events WHERE box = ? AND epoch = ? ORDER BY seq",
                (box, epoch),
            )
        out = []
        for seq, body in rows:
            type_, at, data = msgpack.unpackb(bytes(body), raw=False)
            out.append({"seq": int(seq), "type": type_, "at": at, "data": data})
        return out

    def count(self, box: str) -> int:
        with self.db.transaction(snapshot=True) as tx:
            row = tx.one("SELECT count(*) FROM events WHERE box = ?", (box,))
        return int(row[0]) if row else 0

    def net_stock(self, box: str) -> dict[tuple[str, str], int]:
        """Net applied stock movement per (sku, location) of ``box``, from the
        events themselves (whatever the OMS hook keeps)."""
        with self.db.transaction(snapshot=True) as tx:
            rows = tx.all("SELECT body FROM events WHERE box = ? AND type = 'stock_delta'", (box,))
        out: dict[tuple[str, str], int] = {}
        for (body,) in rows:
            _, _, data = msgpack.unpackb(bytes(body), raw=False)
            key = (str(data["sku"]), str(data["location"]))
            out[key] = out.get(key, 0) + int(data["qty"])
        return out

    def stock_view(self, box: str, sku: str, location: str) -> tuple[int, str | None, int]:
        """(net applied delta, epoch, acked) for a ``stock`` change: the figure
        includes every applied delta, i.e. all of earlier epochs and seqs ≤
        ``acked`` of ``epoch`` (the latest epoch seen); (0, None, 0) for none."""
        with self.db.transaction(snapshot=True) as tx:
            return self._stock_view(tx, box, sku, location)

    def contacts(self) -> list[tuple[str, int | None, int | None]]:
        """(box, last contact ms, box clock of its newest applied event) of
        every box: what the lag metrics summarise."""
        with self.db.transaction(snapshot=True) as tx:
            rows = tx.all(
                "SELECT b.box, b.last_contact_ms, max(h.last_at_ms) FROM boxes b"
                " LEFT JOIN heads h ON h.box = b.box GROUP BY b.box, b.last_contact_ms"
            )
        return [(str(b), _opt_int(c), _opt_int(a)) for b, c, a in rows]


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def stock_change(
    data: Mapping[str, Any], net: int, epoch: str | None, acked: int
) -> dict[str, Any]:
    """The ``stock`` change served for an enqueued one (``base``, or ``qty`` as
    the base): the cloud's absolute view, base + the box's applied deltas of
    the (sku, location), with the ``epoch``/``acked`` those deltas include."""
    return {
        "type": "stock",
        "data": {
            "sku": data["sku"],
            "location": data["location"],
            "qty": int(data.get("base", data.get("qty", 0))) + net,
            "epoch": epoch,
            "acked": acked,
        },
    }


# --------------------------------------------------------------------------- cursors


def make_cursor(box: str, pos: int) -> str:
    """An opaque, URL-safe cursor for position ``pos`` of ``box``'s feed: the
    position and a check that it was made for this box (a cursor of another box
    or a typo is refused, not served from the wrong place)."""
    tag = hashlib.sha256(f"{box}\n{pos}".encode()).hexdigest()[:8]
    cursor = f"v1.{pos}.{tag}"
    assert url_safe(cursor), cursor
    return cursor


def parse_cursor(box: str, cursor: str | None) -> int | None:
    """The position of a cursor made by :func:`make_cursor` for ``box``; 0 for
    none; None when it is not one."""
    if not cursor:
        return 0
    parts = cursor.split(".")
    if len(parts) != 3 or parts[0] != "v1" or not parts[1].isdigit() or len(parts[1]) > 18:
        return None
    pos = int(parts[1])
    return pos if make_cursor(box, pos) == cursor else None


__all__ = ["MAX_PAGE", "Answer", "BatchError", "ChangeError", "Receiver", "make_cursor"]
