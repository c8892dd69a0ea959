"""Reading and settling the outbox, and the box's alerts: the SQL of both.

Events are *appended* only through :meth:`edge.store.Transaction.append`
(in the transaction of the change that caused them). This module reads them in
``seq`` order, marks them acked when the cloud says so, moves unacked events to
a new epoch when the cloud reports an ``epoch_conflict`` (sync-v1), and prunes
acked rows after the retention period. It never deletes an unacked row.
:mod:`edge.store.sync_state` builds the uploader's port on these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from cloud_sync.codec import OutboxEvent
from cloud_sync.events import Alert, Severity
from cloud_sync.ports import SendState
from edge.store.db import Store, Transaction, new_epoch, now_ms


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    epoch: str
    next_seq: int
    acked_seq: int
    backlog: int
    oldest_unacked_ms: int | None
    last_ack_ms: int | None
    last_error: str | None


def status(store: Store) -> OutboxStatus:
    """Backlog figures for ``pickedge sync status``, the dashboard and metrics."""
    row = store.query(
        "SELECT b.epoch, b.next_seq, s.acked_epoch, s.acked_seq, s.last_ack_ms, s.last_error "
        "FROM box b, sync_state s"
    )[0]
    acked = row["acked_seq"] if row["acked_epoch"] == row["epoch"] else 0
    oldest = store.query(
        "SELECT at_ms FROM outbox WHERE epoch = ? AND seq = ?", (row["epoch"], acked + 1)
    )
    return OutboxStatus(
        epoch=row["epoch"],
        next_seq=row["next_seq"],
        acked_seq=acked,
        backlog=row["next_seq"] - 1 - acked,
        oldest_unacked_ms=oldest[0]["at_ms"] if oldest else None,
        last_ack_ms=row["last_ack_ms"],
        last_error=row["last_error"],
    )


def read_unacked(
    store: Store, *, limit: int, max_bytes: int | None = None, after_seq: int | None = None
) -> list[OutboxEvent]:
    """Up to ``limit`` unacked events of the current epoch, in seq order.

    ``after_seq`` starts after a given seq (the uploader's send window);
    ``max_bytes`` stops before the payloads exceed it (at least one event is
    always returned so a single large event still goes out).
    """
    state = store.query("SELECT b.epoch, s.acked_epoch, s.acked_seq FROM box b, sync_state s")[0]
    epoch = state["epoch"]
    acked = state["acked_seq"] if state["acked_epoch"] == epoch else 0
    start = max(acked, after_seq or 0)
    rows = store.reader().execute(
        "SELECT seq, type, at_ms, payload FROM outbox "
        "WHERE epoch = ? AND seq > ? ORDER BY seq LIMIT ?",
        (epoch, start, limit),
    )
    events: list[OutboxEvent] = []
    size = 0
    for seq, type_, at_ms, payload in rows:
        size += len(payload) + 32
        if max_bytes is not None and events and size > max_bytes:
            break
        data: dict[str, Any] = msgpack.unpackb(payload, raw=False)
        events.append(OutboxEvent(epoch, seq, type_, at_ms, data))
    return events


def read_raw(
    store: Store, epoch: str, *, after_seq: int, limit: int
) -> list[tuple[int, str, int, bytes]]:
    """Up to ``limit`` rows of ``epoch`` after ``after_seq``, in seq order, with
    ``data`` as the stored msgpack bytes (no decode): the uploader's fast path.

    Rows are returned whether acked or not, so a cloud that lost acked events
    can be sent them again while they are still kept (until pruned).
    """
    cur = store.reader().execute(
        "SELECT seq, type, at_ms, payload FROM outbox "
        "WHERE epoch = ? AND seq > ? ORDER BY seq LIMIT ?",
        (epoch, after_seq, limit),
    )
    rows: list[tuple[int, str, int, bytes]] = cur.fetchall()
    return rows


def send_state(store: Store) -> SendState:
    """(current epoch, its acked seq, its next seq) as a reader sees them now."""
    row = (
        store.reader()
        .execute("SELECT b.epoch, b.next_seq, s.acked_epoch, s.acked_seq FROM box b, sync_state s")
        .fetchone()
    )
    epoch, next_seq, acked_epoch, acked_seq = row
    return SendState(str(epoch), int(acked_seq) if acked_epoch == epoch else 0, int(next_seq))


def mark_acked(tx: Transaction, epoch: str, upto: int) -> int:
    """Record that the cloud durably applied every seq ≤ ``upto`` of ``epoch``.

    Idempotent and monotonic: an older ack never moves the mark back, and an
    ack for an epoch that is no longer current changes nothing. Returns the
    acked seq now stored.
    """
    current_epoch, next_seq = tx.execute("SELECT epoch, next_seq FROM box WHERE id = 1").fetchone()
    if epoch != current_epoch:
        return 0
    if upto >= next_seq:
        # The cloud claims events the box never wrote: a lying or confused peer.
        raise ValueError(f"ack {upto} is beyond the last event {next_seq - 1} of epoch {epoch}")
    acked_epoch, acked_seq = tx.execute(
        "SELECT acked_epoch, acked_seq FROM sync_state WHERE id = 1"
    ).fetchone()
    base = acked_seq if acked_epoch == epoch else 0
    if upto <= base:
        return int(base)
    tx.execute(
        "UPDATE outbox SET acked = 1 WHERE epoch = ? AND seq > ? AND seq <= ?",
        (epoch, base, upto),
    )
    tx.execute(
        "UPDATE sync_state SET acked_epoch = ?, acked_seq = ?, last_ack_ms = ?, "
        "last_error = NULL WHERE id = 1",
        (epoch, upto, now_ms()),
    )
    return upto


def start_new_epoch(tx: Transaction) -> tuple[str, str, int]:
    """Move every unacked event of the current epoch to a new epoch, from seq 1.

    Used when the cloud answers ``epoch_conflict`` (a restored backup or cloned
    card). Order and content are kept; acked rows stay under the old epoch until
    pruned. Returns (old epoch, new epoch, events moved).
    """
    old, _ = tx.execute("SELECT epoch, next_seq FROM box WHERE id = 1").fetchone()
    acked_epoch, acked_seq = tx.execute(
        "SELECT acked_epoch, acked_seq FROM sync_state WHERE id = 1"
    ).fetchone()
    base = acked_seq if acked_epoch == old else 0
    fresh = new_epoch()
    rows = tx.execute(
        "SELECT seq, type, at_ms, payload FROM outbox WHERE epoch = ? AND seq > ? ORDER BY seq",
        (old, base),
    ).fetchall()
    tx.executemany(
        "INSERT INTO outbox (epoch, seq, type, at_ms, payload) VALUES (?, ?, ?, ?, ?)",
        [(fresh, i, r[1], r[2], r[3]) for i, r in enumerate(rows, start=1)],
    )
    tx.execute("DELETE FROM outbox WHERE epoch = ? AND seq > ?", (old, base))
    # The ledger follows its events to the new epoch, seq for seq.
    moved = {r[0]: i for i, r in enumerate(rows, start=1)}
    ledger = tx.execute(
        "SELECT seq, sku, location, qty FROM stock_ledger WHERE epoch = ? AND seq > ?",
        (old, base),
    ).fetchall()
    tx.execute("DELETE FROM stock_ledger WHERE epoch = ? AND seq > ?", (old, base))
    tx.executemany(
        "INSERT INTO stock_ledger (epoch, seq, sku, location, qty) VALUES (?, ?, ?, ?, ?)",
        [(fresh, moved[r[0]], r[1], r[2], r[3]) for r in ledger],
    )
    tx.execute("INSERT INTO epochs (epoch, started_ms) VALUES (?, ?)", (fresh, now_ms()))
    tx.execute("UPDATE box SET epoch = ?, next_seq = ? WHERE id = 1", (fresh, len(rows) + 1))
    tx.execute("UPDATE sync_state SET acked_epoch = ?, acked_seq = 0 WHERE id = 1", (fresh,))
    return str(old), fresh, len(rows)


def prune_acked(tx: Transaction, *, older_than_ms: int) -> int:
    """Delete acked rows written before ``older_than_ms``; returns how many."""
    cur = tx.execute("DELETE FROM outbox WHERE acked = 1 AND at_ms < ?", (older_than_ms,))
    return int(cur.rowcount)


def deltas_after(tx: Transaction, sku: str, location: str, epoch: str | None, acked: int) -> int:
    """This box's net stock movement of (sku, location) after seq ``acked`` of
    ``epoch``, counting every later epoch in full (sync-v1 ``stock`` rule).

    ``epoch`` None (or unknown to this box) means the cloud's figure includes
    none of this box's deltas: every delta counts.
    """
    order = None
    if epoch is not None:
        row = tx.execute("SELECT n FROM epochs WHERE epoch = ?", (epoch,)).fetchone()
        order = row[0] if row else None
    if order is None:
        row = tx.execute(
            "SELECT COALESCE(SUM(qty), 0) FROM stock_ledger WHERE sku = ? AND location = ?",
            (sku, location),
        ).fetchone()
        return int(row[0])
    row = tx.execute(
        "SELECT COALESCE(SUM(l.qty), 0) FROM stock_ledger l JOIN epochs e ON e.epoch = l.epoch "
        "WHERE l.sku = ? AND l.location = ? AND (e.n > ? OR (e.n = ? AND l.seq > ?))",
        (sku, location, order, order, acked),
    ).fetchone()
    return int(row[0])


def raise_alert(
    tx: Transaction,
    kind: str,
    severity: str,
    subject: str,
    detail: dict[str, Any] | None = None,
    *,
    once: bool = True,
) -> bool:
    """Raise an alert: a row in ``alerts`` and an ``alert`` outbox event, in ``tx``.

    With ``once`` (the default) an alert of a ``kind`` that is still open (not
    cleared) is not raised again: one alert per episode, not one per retry.
    Returns whether it was raised.
    """
    level = Severity(severity)  # ValueError for anything but info, warn, crit
    if (
        once
        and tx.execute(
            "SELECT 1 FROM alerts WHERE kind = ? AND cleared_ms IS NULL LIMIT 1", (kind,)
        ).fetchone()
    ):
        return False
    detail = dict(detail or {})
    tx.execute(
        "INSERT INTO alerts (kind, severity, subject, detail, raised_ms) VALUES (?, ?, ?, ?, ?)",
        (kind, str(level), subject, msgpack.packb(detail, use_bin_type=True), now_ms()),
    )
    # Bookkeeping: an alert is never refused by the backlog limit it may report.
    tx.append_bookkeeping(Alert(kind=kind, severity=level, subject=subject, detail=detail))
    return True


def open_alert_kinds(store: Store, kinds: Iterable[str]) -> set[str]:
    """Which of ``kinds`` have an alert raised and not cleared (a reader's view)."""
    kinds = list(kinds)
    if not kinds:
        return set()
    marks = ", ".join("?" * len(kinds))
    rows = store.reader().execute(
        f"SELECT DISTINCT kind FROM alerts WHERE cleared_ms IS NULL AND kind IN ({marks})",  # noqa: S608 - placeholders only
        kinds,
    )
    return {str(r[0]) for r in rows}


def clear_alerts(tx: Transaction, kinds: Iterable[str]) -> int:
    """End the open episodes of ``kinds``; returns how many alerts were cleared."""
    kinds = list(kinds)
    if not kinds:
        return 0
    marks = ", ".join("?" * len(kinds))
    cur = tx.execute(
        f"UPDATE alerts SET cleared_ms = ? WHERE cleared_ms IS NULL AND kind IN ({marks})",  # noqa: S608 - placeholders only
        (now_ms(), *kinds),
    )
    return int(cur.rowcount)
