"""The box's side of sync: :mod:`cloud_sync.ports` implemented on the store.

- :class:`StoreOutbox` is the uploader's :class:`cloud_sync.ports.Outbox`;
- :class:`StoreChangeSink` is the downloader's :class:`cloud_sync.ports.ChangeSink`,
  around the function that applies a page of changes in a transaction (the
  wiring passes :func:`edge.masterdata.apply_changes`; the store does not know
  the warehouse tables);
- :func:`read_status` is what ``pickedge sync status`` shows.

Reads use the calling thread's read-only connection (the uploader and
downloader call them off the event loop); each write is one transaction on
the store's writer thread (:meth:`Store.write`). The ``sync_state`` row — ack
mark, last error, back-off, cursor — is written here and by
:mod:`edge.store.outbox`, nowhere else. Wall-clock stamps written here are for
people only.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Generic, TypeVar

from cloud_sync.codec import RawEvent
from cloud_sync.events import Alert
from cloud_sync.ports import EpochChange, SendState
from common.errors import PickEdgeError
from common.faults import crash_point
from edge.store import outbox
from edge.store.db import Store, Transaction, now_ms
from edge.store.syncmark import SyncMark

R = TypeVar("R")
#: applies one page of downstream changes in the caller's transaction
ApplyFn = Callable[[Transaction, Sequence[Mapping[str, Any]]], R]

_ERROR_CHARS = 500  # sync_state.last_error keeps this much of a message

log = logging.getLogger(__name__)


def raise_alert(tx: Transaction, alert: Alert, *, once: bool = True) -> bool:
    """:func:`edge.store.outbox.raise_alert` of a typed alert."""
    return outbox.raise_alert(
        tx, alert.kind, str(alert.severity), alert.subject, alert.detail, once=once
    )


class StoreOutbox:
    """The outbox of ``store``, as :class:`cloud_sync.ports.Outbox`; with the
    store's sync mark (:mod:`edge.store.syncmark`) to tell a restored or
    copied database before it sends."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.mark = SyncMark(store)

    @property
    def box_id(self) -> str:
        return self.store.box_id

    def send_state(self) -> SendState:
        return outbox.send_state(self.store)

    def read_raw(self, epoch: str, *, after_seq: int, limit: int) -> list[RawEvent]:
        if outbox.moves_pending(self.store):
            # an epoch change cut short (a failed chunk): finish it before
            # reading, or the new epoch reads as empty
            moved = outbox.finish_moves(self.store)
            log.warning("finished an epoch change cut short: %d rows moved or stamped", moved)
        return outbox.read_raw(self.store, epoch, after_seq=after_seq, limit=limit)

    def open_alerts(self, kinds: Collection[str]) -> set[str]:
        return outbox.open_alert_kinds(self.store, kinds)

    def will_send(self, epoch: str, last: int) -> None:
        self.mark.will_send(epoch, last)

    async def check_copy(self) -> EpochChange | None:
        # first, an epoch change a crash or SIGTERM cut short
        if moved := await self._finish_moves():
            log.warning("finished an epoch change cut short: %d rows moved or stamped", moved)
        restore = await asyncio.to_thread(self.mark.reconcile)
        if restore is None:
            return None
        move = restore.move
        return EpochChange(move.old, move.new, move.moved, kept=move.kept, reason=restore.reason)

    async def settle_ack(self, epoch: str, upto: int, *, clear: Collection[str]) -> int:
        def settle(tx: Transaction) -> int:
            stored = outbox.mark_acked(tx, epoch, upto)
            tx.execute("UPDATE sync_state SET backoff_s = 0, retry_at_ms = NULL WHERE id = 1")
            if clear:
                outbox.clear_alerts(tx, clear)
            return stored

        return await self.store.write(settle)

    async def record_error(self, message: str, *, backoff_s: float, alert: Alert | None) -> None:
        retry_at = now_ms() + int(backoff_s * 1000)

        def record(tx: Transaction) -> None:
            tx.execute(
                "UPDATE sync_state SET last_error = ?, last_error_ms = ?, backoff_s = ?, "
                "retry_at_ms = ? WHERE id = 1",
                (message[:_ERROR_CHARS], now_ms(), backoff_s, retry_at),
            )
            if alert is not None:
                raise_alert(tx, alert)

        await self.store.write(record)

    async def raise_alert(self, alert: Alert) -> bool:
        return await self.store.write(lambda tx: raise_alert(tx, alert))

    async def start_new_epoch(
        self,
        alert: Callable[[EpochChange], Alert],
        *,
        epoch: str | None = None,
        conflict_at: int | None = None,
    ) -> EpochChange:
        def conflict(tx: Transaction) -> EpochChange:
            move = outbox.start_new_epoch(tx, epoch=epoch, conflict_at=conflict_at)
            change = EpochChange(move.old, move.new, move.moved, kept=move.kept)
            # bookkeeping: never refused by the backlog limit (Transaction.append_bookkeeping)
            raise_alert(tx, alert(change), once=False)
            return change

        # the switch is one transaction whatever the backlog; the rows then
        # move a chunk per transaction, scans committing in between
        change = await self.store.write(conflict)
        await self._finish_moves()
        return change

    async def _finish_moves(self) -> int:
        crash_point("during_epoch_move")  # tests only: inert unless armed
        total = 0
        while step := await self.store.write(outbox.move_step):
            total += step
            crash_point("during_epoch_move")
        return total

    async def prune_acked(self, *, max_age_ms: int) -> int:
        def prune(tx: Transaction) -> int:
            # on the box's uptime: a wall clock that jumps forward prunes nothing early
            cutoff = self.store.uptime_ms() - max_age_ms
            return outbox.prune_acked(tx, acked_before_up=cutoff)

        return await self.store.write(prune)


class StoreChangeSink(Generic[R]):
    """Downstream changes into ``store`` through ``apply``, as
    :class:`cloud_sync.ports.ChangeSink`."""

    def __init__(self, store: Store, apply: ApplyFn[R]) -> None:
        self.store = store
        self.apply = apply

    def cursor(self) -> str | None:
        row = self.store.reader().execute("SELECT cursor FROM sync_state WHERE id = 1").fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def open_alerts(self, kinds: Collection[str]) -> set[str]:
        return outbox.open_alert_kinds(self.store, kinds)

    async def apply_page(
        self, changes: Sequence[Mapping[str, Any]], cursor: str, *, clear: Collection[str]
    ) -> R:
        def page(tx: Transaction) -> R:
            result = self.apply(tx, changes)
            tx.execute(
                "UPDATE sync_state SET cursor = ?, last_pull_ms = ? WHERE id = 1",
                (cursor, now_ms()),
            )
            if clear:
                outbox.clear_alerts(tx, clear)
            return result

        return await self.store.write(page)

    async def record_error(self, message: str, *, alert: Alert | None) -> None:
        def record(tx: Transaction) -> None:
            tx.execute(
                "UPDATE sync_state SET last_error = ?, last_error_ms = ? WHERE id = 1",
                (message[:_ERROR_CHARS], now_ms()),
            )
            if alert is not None:
                raise_alert(tx, alert)

        await self.store.write(record)


def read_status(conn: sqlite3.Connection, *, now: int) -> dict[str, Any]:
    """The figures of ``pickedge sync status`` from an open (read-only) database;
    ages are against ``now`` (unix ms, this machine's clock: for people)."""
    conn.row_factory = sqlite3.Row
    box = conn.execute("SELECT box_id, epoch, next_seq FROM box WHERE id = 1").fetchone()
    if box is None:
        raise PickEdgeError("the database has no box yet: start the daemon once")
    # SELECT *: a database from before the back-off columns still reports the rest
    row = conn.execute("SELECT * FROM sync_state WHERE id = 1").fetchone()
    state = {k: row[k] for k in row.keys()}  # noqa: SIM118 - sqlite3.Row is not a mapping
    last = box["next_seq"] - 1
    columns = {r[1] for r in conn.execute("PRAGMA table_info(epochs)")}
    if "last_seq" in columns:
        epochs = conn.execute(
            "SELECT epoch, acked, last_seq FROM epochs "
            "WHERE last_seq IS NULL OR acked < last_seq ORDER BY n"
        ).fetchall()
    else:  # a database from before per-epoch acks: the current epoch only
        mine = state["acked_epoch"] == box["epoch"]
        epochs = [{"epoch": box["epoch"], "acked": state["acked_seq"] if mine else 0}]
        epochs[0]["last_seq"] = None
    acked = next((e["acked"] for e in epochs if e["epoch"] == box["epoch"]), 0)
    # sealed epochs still draining (a restored box's old tail) go first
    sealed = [
        {"epoch": e["epoch"], "acked_seq": e["acked"], "last_seq": e["last_seq"]}
        for e in epochs
        if e["last_seq"] is not None
    ]
    backlog = last - acked + sum(e["last_seq"] - e["acked_seq"] for e in sealed)
    first = sealed[0] if sealed else {"epoch": box["epoch"], "acked_seq": acked}
    oldest = conn.execute(
        "SELECT at_ms FROM outbox WHERE epoch = ? AND seq = ?",
        (first["epoch"], first["acked_seq"] + 1),
    ).fetchone()
    alerts = conn.execute(
        "SELECT kind, severity, subject, raised_ms FROM alerts WHERE cleared_ms IS NULL ORDER BY id"
    ).fetchall()

    def age(ms: int | None) -> float | None:
        return None if ms is None else round((now - ms) / 1000, 1)

    return {
        "box": box["box_id"],
        "epoch": box["epoch"],
        "last_seq": last,
        "acked_seq": acked,
        "backlog": backlog,
        "sealed_epochs": sealed,
        "oldest_unacked_ms": oldest["at_ms"] if oldest else None,
        "oldest_unacked_age_s": age(oldest["at_ms"]) if oldest else None,
        "last_ack_ms": state["last_ack_ms"],
        "last_ack_age_s": age(state["last_ack_ms"]),
        "last_error": state["last_error"],
        "last_error_ms": state["last_error_ms"],
        "backoff_s": state.get("backoff_s"),
        "retry_at_ms": state.get("retry_at_ms"),
        "cursor": state["cursor"],
        "last_pull_ms": state.get("last_pull_ms"),
        "open_alerts": [dict(a) for a in alerts],
    }


__all__ = ["ApplyFn", "StoreChangeSink", "StoreOutbox", "raise_alert", "read_status"]
