"""Reading and settling the outbox, and the box's alerts: the SQL of both.

Events are *appended* only through :meth:`edge.store.Transaction.append`
(in the transaction of the change that caused them). This module reads them in
``seq`` order, marks them acked when the cloud says so, moves unacked events to
a new epoch when the cloud reports an ``epoch_conflict`` (sync-v1), and prunes
acked rows after the retention period. It never deletes an unacked row.
:mod:`edge.store.sync_state` builds the uploader's port on these functions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

from cloud_sync.codec import OutboxEvent
from cloud_sync.events import Alert, AlertState, Severity
from cloud_sync.ports import SendState
from edge.store.db import Store, Transaction, new_epoch, now_ms


class _Reads(Protocol):
    """A :class:`Transaction` or a reader connection."""

    def execute(self, sql: str, params: Any = ..., /) -> sqlite3.Cursor: ...


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    #: the current epoch (new events go to it)
    epoch: str
    next_seq: int
    #: the current epoch's acked seq
    acked_seq: int
    #: unacked events in every epoch (sealed epochs still draining included)
    backlog: int
    oldest_unacked_ms: int | None
    last_ack_ms: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class EpochMove:
    """What :func:`start_new_epoch` or :func:`seal_epoch` did."""

    #: the epoch that conflicted (or was sealed)
    old: str
    #: the new current epoch
    new: str
    #: events moved to ``new`` (renumbered from seq 1)
    moved: int
    #: the old epoch now ends at this seq (sealed); every seq ≤ it stays there
    kept: int


# The epoch the uploader sends now: the oldest one with an unacked event (a
# sealed epoch drains before the current one), else the current epoch. Columns:
# epoch, acked, its last seq, sealed.
_SEND_EPOCH = (
    "SELECT e.epoch, e.acked, COALESCE(e.last_seq, b.next_seq - 1), e.last_seq IS NOT NULL "
    "FROM epochs e, box b WHERE b.id = 1 AND (e.last_seq IS NULL OR e.acked < e.last_seq) "
    "ORDER BY e.n LIMIT 1"
)
_BACKLOG = (
    "SELECT COALESCE(SUM(COALESCE(e.last_seq, b.next_seq - 1) - e.acked), 0) "
    "FROM epochs e, box b WHERE b.id = 1 AND (e.last_seq IS NULL OR e.acked < e.last_seq)"
)


def status(store: Store) -> OutboxStatus:
    """Backlog figures for ``pickedge sync status``, the dashboard and metrics."""
    conn = store.reader().conn
    conn.execute("BEGIN")  # one snapshot for every figure
    try:
        epoch, next_seq, current_acked, last_ack_ms, last_error = conn.execute(
            "SELECT b.epoch, b.next_seq, e.acked, s.last_ack_ms, s.last_error "
            "FROM box b JOIN epochs e ON e.epoch = b.epoch, sync_state s WHERE b.id = 1"
        ).fetchone()
        send_epoch, send_acked, _, _ = conn.execute(_SEND_EPOCH).fetchone()
        backlog = int(conn.execute(_BACKLOG).fetchone()[0])
        oldest = conn.execute(
            "SELECT at_ms FROM outbox WHERE epoch = ? AND seq = ?", (send_epoch, send_acked + 1)
        ).fetchone()
    finally:
        conn.execute("COMMIT")
    return OutboxStatus(
        epoch=str(epoch),
        next_seq=int(next_seq),
        acked_seq=int(current_acked),
        backlog=backlog,
        oldest_unacked_ms=oldest[0] if oldest else None,
        last_ack_ms=last_ack_ms,
        last_error=last_error,
    )


def read_unacked(
    store: Store, *, limit: int, max_bytes: int | None = None, after_seq: int | None = None
) -> list[OutboxEvent]:
    """Up to ``limit`` unacked events of the epoch the uploader sends now (the
    oldest with unacked events), in seq order.

    ``after_seq`` starts after a given seq (the uploader's send window);
    ``max_bytes`` stops before the payloads exceed it (at least one event is
    always returned so a single large event still goes out).
    """
    epoch, acked, _, _ = send_state(store)
    start = max(acked, after_seq or 0)
    events: list[OutboxEvent] = []
    size = 0
    for seq, type_, at_ms, payload in read_raw(store, epoch, after_seq=start, limit=limit):
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
    can be sent them again while they are still kept (until pruned). Only what
    the epoch holds: nothing while an epoch change is still moving rows into
    it (:func:`move_step`), and of a sealed epoch nothing past its end (rows
    still waiting there to move out belong to the new epoch).
    """
    cur = store.reader().execute(
        "SELECT o.seq, o.type, o.at_ms, o.payload FROM outbox o JOIN epochs e "
        "ON e.epoch = o.epoch WHERE o.epoch = ? AND o.seq > ? "
        "AND (e.last_seq IS NULL OR o.seq <= e.last_seq) "
        "AND NOT EXISTS (SELECT 1 FROM epoch_moves m WHERE m.target = o.epoch) "
        "ORDER BY o.seq LIMIT ?",
        (epoch, after_seq, limit),
    )
    rows: list[tuple[int, str, int, bytes]] = cur.fetchall()
    return rows


def send_state(store: Store) -> SendState:
    """The epoch to send now, as a reader sees it: the oldest epoch with an
    unacked event — a sealed one (a restored box's old tail) drains before the
    current one — else the current epoch; its acked seq and its next seq."""
    epoch, acked, last, sealed = store.reader().execute(_SEND_EPOCH).fetchone()
    return SendState(str(epoch), int(acked), int(last) + 1, bool(sealed))


def _epoch_row(tx: Transaction, epoch: str) -> tuple[int, int, int, bool] | None:
    """(n, acked, last seq, sealed) of ``epoch``; None when the box never had it."""
    row = tx.execute(
        "SELECT e.n, e.acked, COALESCE(e.last_seq, b.next_seq - 1), e.last_seq IS NOT NULL "
        "FROM epochs e, box b WHERE b.id = 1 AND e.epoch = ?",
        (epoch,),
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2]), bool(row[3]))


def _ack_rows(tx: Transaction, epoch: str, after: int, upto: int, up: int) -> None:
    """Mark seqs ``after+1 .. upto`` of ``epoch`` acked at box uptime ``up``."""
    tx.execute(
        "UPDATE outbox SET acked = 1, acked_up = ? WHERE epoch = ? AND seq > ? AND seq <= ?",
        (up, epoch, after, upto),
    )
    tx.execute("UPDATE epochs SET acked = ? WHERE epoch = ?", (upto, epoch))


def mark_acked(tx: Transaction, epoch: str, upto: int, *, up: int | None = None) -> int:
    """Record that the cloud durably applied every seq ≤ ``upto`` of ``epoch``.

    Idempotent and monotonic: an older ack never moves the mark back. Any epoch
    the box still has counts (a sealed one drains before the current one); an
    epoch the box never had changes nothing. The rows are stamped with the box
    uptime ``up`` (now, by default): retention runs from there. Returns the
    acked seq now stored for ``epoch``.
    """
    if tx.execute("SELECT 1 FROM epoch_moves WHERE target = ? LIMIT 1", (epoch,)).fetchone():
        # nothing of it was readable, so nothing of it was sent: a lie or a bug
        raise ValueError(f"ack for epoch {epoch} while events are still moving into it")
    row = _epoch_row(tx, epoch)
    if row is None:
        return 0
    _, base, last, _ = row
    if upto > last:
        # The cloud claims events the box never wrote: a lying or confused peer.
        raise ValueError(f"ack {upto} is beyond the last event {last} of epoch {epoch}")
    if upto <= base:
        return base
    _ack_rows(tx, epoch, base, upto, tx.store.uptime_ms() if up is None else up)
    tx.execute(
        "UPDATE sync_state SET acked_epoch = ?, acked_seq = ?, last_ack_ms = ?, "
        "last_error = NULL WHERE id = 1",
        (epoch, upto, now_ms()),
    )
    return upto


#: outbox rows one transaction of an epoch change moves (~1 ms per 100 rows on
#: the reference box: a chunk holds the writer for ~10 ms, bench/epoch_change.py)
MOVE_CHUNK = 1000


def start_new_epoch(
    tx: Transaction, *, epoch: str | None = None, conflict_at: int | None = None
) -> EpochMove:
    """The cloud answered ``epoch_conflict`` for ``epoch`` (by default the epoch
    being sent): what the cloud does not hold as the box does goes to a new
    epoch, from seq 1.

    With ``conflict_at`` S (sync-v1: every seq before S matched what the cloud
    holds) the seqs < S are acked and stay, sealed, in the old epoch, and the
    events from S on move. Without it (a cloud older than the amendment) the box
    cannot tell how much the cloud holds as it does: every unacked event moves,
    which the cloud may count twice if it held some of them already.

    Events of later epochs (never sent: epochs drain in order) follow, so the
    new epoch is the last and only open one. Order and content are kept; the
    ledger follows its events seq for seq.

    This transaction only *plans* the move, in time independent of the backlog:
    it seals the old epochs, opens the new one with its ``next_seq`` past the
    moved range (new events go there at once) and records the ranges in
    ``epoch_moves``. :func:`move_step` then moves :data:`MOVE_CHUNK` rows per
    transaction, so scans commit between chunks instead of waiting for the whole
    backlog; nothing of the new epoch is read for sending until the move is
    complete (:func:`read_raw`). Returns what moves.
    """
    # a conflict while an earlier move is unfinished (the new epoch itself
    # conflicting after a crash): finish it here first; rare, and correct
    while move_step(tx, limit=1 << 40):  # each step moves one whole range
        continue
    if epoch is None:
        epoch = str(tx.execute(_SEND_EPOCH).fetchone()[0])
    row = _epoch_row(tx, epoch)
    if row is None:
        raise ValueError(f"epoch {epoch} is not one of this box's epochs")
    n, acked, last, _ = row
    keep = acked
    if conflict_at is not None:
        if not 1 <= conflict_at <= last + 1:
            raise ValueError(f"conflict_at {conflict_at} is outside epoch {epoch} (1..{last})")
        keep = max(acked, conflict_at - 1)
        if keep > acked:
            # the mark now; the rows' stamps (for pruning) a chunk at a time
            tx.execute("UPDATE epochs SET acked = ? WHERE epoch = ?", (keep, epoch))
            tx.execute(
                "INSERT INTO ack_stamps (epoch, after, upto, up) VALUES (?, ?, ?, ?)",
                (epoch, acked, keep, tx.store.uptime_ms()),
            )
    # what moves, in order: this epoch after `keep`, then every later epoch's
    # unacked tail (each epoch holds seqs 1..its last, contiguous: unacked rows
    # are never pruned)
    sources = [(epoch, keep, last)] + [
        (str(e), int(a), int(lst))
        for e, a, lst in tx.execute(
            "SELECT e.epoch, e.acked, COALESCE(e.last_seq, b.next_seq - 1) "
            "FROM epochs e, box b WHERE b.id = 1 AND e.n > ? ORDER BY e.n",
            (n,),
        ).fetchall()
    ]
    fresh = new_epoch()
    moved = 0
    for source, after, upto in sources:
        if upto > after:
            tx.execute(
                "INSERT INTO epoch_moves (target, source, after, upto, to_seq) "
                "VALUES (?, ?, ?, ?, ?)",
                (fresh, source, after, upto, moved + 1),
            )
            moved += upto - after
        # sealed where it now ends; it never gets another event
        tx.execute("UPDATE epochs SET last_seq = ? WHERE epoch = ?", (after, source))
    tx.execute("INSERT INTO epochs (epoch, started_ms) VALUES (?, ?)", (fresh, now_ms()))
    tx.execute("UPDATE box SET epoch = ?, next_seq = ? WHERE id = 1", (fresh, moved + 1))
    return EpochMove(old=epoch, new=fresh, moved=moved, kept=keep)


def move_step(tx: Transaction, *, limit: int = MOVE_CHUNK) -> int:
    """One step of the unfinished work of epoch changes, in ``tx``: stamp up to
    ``limit`` rows acked by a ``conflict_at``, or else move up to ``limit`` rows
    of the oldest unfinished move (outbox rows with their ledger rows). Returns
    how many rows it handled, 0 when nothing is pending. Each step is atomic: a
    crash between steps resumes where the last committed one ended."""
    stamp = tx.execute(
        "SELECT n, epoch, after, upto, up FROM ack_stamps ORDER BY n LIMIT 1"
    ).fetchone()
    if stamp is not None:
        n, epoch, after, upto, up = stamp
        end = min(upto, after + limit)
        tx.execute(
            "UPDATE outbox SET acked = 1, acked_up = ? WHERE epoch = ? AND seq > ? AND seq <= ?",
            (up, epoch, after, end),
        )
        if end >= upto:
            tx.execute("DELETE FROM ack_stamps WHERE n = ?", (n,))
        else:
            tx.execute("UPDATE ack_stamps SET after = ? WHERE n = ?", (end, n))
        return int(end - after)
    row = tx.execute(
        "SELECT n, target, source, after, upto, to_seq FROM epoch_moves ORDER BY n LIMIT 1"
    ).fetchone()
    if row is None:
        return 0
    n, target, source, after, upto, to_seq = row
    end = min(upto, after + limit)
    shift = to_seq - after - 1  # source seq + shift = target seq
    tx.execute(
        "INSERT INTO outbox (epoch, seq, type, at_ms, payload) "
        "SELECT ?, seq + ?, type, at_ms, payload FROM outbox "
        "WHERE epoch = ? AND seq > ? AND seq <= ? ORDER BY seq",
        (target, shift, source, after, end),
    )
    tx.execute("DELETE FROM outbox WHERE epoch = ? AND seq > ? AND seq <= ?", (source, after, end))
    tx.execute(
        "INSERT INTO stock_ledger (epoch, seq, sku, location, qty) "
        "SELECT ?, seq + ?, sku, location, qty FROM stock_ledger "
        "WHERE epoch = ? AND seq > ? AND seq <= ?",
        (target, shift, source, after, end),
    )
    tx.execute(
        "DELETE FROM stock_ledger WHERE epoch = ? AND seq > ? AND seq <= ?", (source, after, end)
    )
    if end >= upto:
        tx.execute("DELETE FROM epoch_moves WHERE n = ?", (n,))
    else:
        tx.execute(
            "UPDATE epoch_moves SET after = ?, to_seq = ? WHERE n = ?",
            (end, to_seq + end - after, n),
        )
    return int(end - after)


def moves_pending(store: Store) -> bool:
    """Whether an epoch change still has rows to move or stamp (a reader's view)."""
    row = (
        store.reader()
        .execute("SELECT EXISTS (SELECT 1 FROM epoch_moves) OR EXISTS (SELECT 1 FROM ack_stamps)")
        .fetchone()
    )
    return bool(row[0])


def finish_moves(store: Store, *, limit: int = MOVE_CHUNK) -> int:
    """Run :func:`move_step` transactions until nothing is pending (blocking;
    start-up repair, tools, tests); returns how many rows were handled."""
    total = 0
    while step := store.run(lambda tx: move_step(tx, limit=limit)):
        total += step
    return total


def seal_epoch(tx: Transaction) -> EpochMove:
    """Seal the current epoch where it ends and start a new one for new events.

    For a box that finds it was restored or copied (edge/store/syncmark.py):
    what it holds of the current epoch is a prefix of what the box it was
    copied from held, so those events stay as they are (sent as they are, the
    cloud dedups what it has); only events written from now on, which the
    original may have written differently under the same seqs, need a new
    epoch. Returns the move (``moved`` 0, ``kept`` the old epoch's last seq).
    """
    old, next_seq = tx.execute("SELECT epoch, next_seq FROM box WHERE id = 1").fetchone()
    tx.execute("UPDATE epochs SET last_seq = ? WHERE epoch = ?", (next_seq - 1, old))
    fresh = new_epoch()
    tx.execute("INSERT INTO epochs (epoch, started_ms) VALUES (?, ?)", (fresh, now_ms()))
    tx.execute("UPDATE box SET epoch = ?, next_seq = 1 WHERE id = 1", (fresh,))
    return EpochMove(old=str(old), new=fresh, moved=0, kept=int(next_seq) - 1)


def _fold_point(tx: Transaction, acked_before_up: int) -> tuple[str, int] | None:
    """The latest (epoch, seq) up to which every event of the box is acked and
    was acked at box uptime ≤ ``acked_before_up``; None when there is none.

    Epochs are walked in the order they were started (the order they drain and
    are acked in); rows already pruned were acked that long ago too.
    """
    point: tuple[str, int] | None = None
    next_seq = int(tx.execute("SELECT next_seq FROM box WHERE id = 1").fetchone()[0])
    for epoch, acked, last_seq in tx.execute(
        "SELECT epoch, acked, last_seq FROM epochs ORDER BY n"
    ).fetchall():
        last = next_seq - 1 if last_seq is None else int(last_seq)
        young = tx.execute(
            "SELECT seq FROM outbox WHERE epoch = ? AND (acked = 0 OR acked_up IS NULL "
            "OR acked_up > ?) ORDER BY seq LIMIT 1",
            (epoch, acked_before_up),
        ).fetchone()
        if young is not None:
            return (str(epoch), int(young[0]) - 1) if young[0] > 1 else point
        if acked < last:  # unacked seqs without rows: never (defensive)
            return (str(epoch), int(acked)) if acked > 0 else point
        if last > 0:
            point = (str(epoch), last)
        if last_seq is None:
            break
    return point


def fold_ledger(tx: Transaction, *, acked_before_up: int) -> int:
    """Fold the ledger rows nobody can ask about any more into one base row per
    (sku, location); returns how many rows were folded.

    A row can be asked about while a ``stock`` baseline (epoch, acked) from the
    cloud may lie before it. Rows up to the fold point (:func:`_fold_point`:
    acked, and acked at least the outbox retention of box uptime ago — the
    point the outbox prunes too) are summed into ``stock_ledger_base``, which
    records the (epoch, seq) it covers; :func:`deltas_after` stays exact for
    every baseline at or after it.
    """
    point = _fold_point(tx, acked_before_up)
    if point is None:
        return 0
    fold_epoch, fold_seq = point
    (fold_n,) = tx.execute("SELECT n FROM epochs WHERE epoch = ?", (fold_epoch,)).fetchone()
    folded = 0
    for (epoch,) in tx.execute(
        "SELECT epoch FROM epochs WHERE n <= ? ORDER BY n", (fold_n,)
    ).fetchall():
        upto = fold_seq if epoch == fold_epoch else 1 << 62
        sums = tx.execute(
            "SELECT sku, location, SUM(qty), COUNT(*) FROM stock_ledger "
            "WHERE epoch = ? AND seq <= ? GROUP BY sku, location",
            (epoch, upto),
        ).fetchall()
        if not sums:
            continue
        tx.executemany(
            "INSERT INTO stock_ledger_base (sku, location, qty, epoch, seq) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sku, location) DO UPDATE SET "
            "qty = qty + excluded.qty, epoch = excluded.epoch, seq = excluded.seq",
            [(sku, loc, qty, fold_epoch, fold_seq) for sku, loc, qty, _ in sums],
        )
        tx.execute("DELETE FROM stock_ledger WHERE epoch = ? AND seq <= ?", (epoch, upto))
        folded += sum(int(c) for *_, c in sums)
    return folded


def prune_acked(tx: Transaction, *, acked_before_up: int) -> int:
    """Delete rows acked at box uptime ≤ ``acked_before_up`` (folding the ledger
    up to the same point first); returns how many outbox rows went.

    Box uptime, never the wall clock: a clock that jumps forward must not
    prune a row the cloud may still ask for (DESIGN.md decision 5).
    """
    fold_ledger(tx, acked_before_up=acked_before_up)
    # only acked rows have an acked_up; the partial index outbox_acked_up finds them
    cur = tx.execute("DELETE FROM outbox WHERE acked_up <= ?", (acked_before_up,))
    return int(cur.rowcount)


def deltas_after(tx: Transaction, sku: str, location: str, epoch: str | None, acked: int) -> int:
    """This box's net stock movement of (sku, location) after seq ``acked`` of
    ``epoch``, counting every later epoch in full (sync-v1 ``stock`` rule).

    ``epoch`` None (or unknown to this box) means the cloud's figure includes
    none of this box's deltas: every delta counts, the folded past
    (``stock_ledger_base``) included. A baseline at or after the fold point of
    (sku, location) is exact; one before it (older than anything the cloud can
    still be asked about: the fold only reaches events acked a retention period
    ago) counts the folded past in full, as if it included none of it.
    """
    order = None
    if epoch is not None:
        row = tx.execute("SELECT n FROM epochs WHERE epoch = ?", (epoch,)).fetchone()
        order = row[0] if row else None
    base = tx.execute(
        "SELECT b.qty, e.n, b.seq FROM stock_ledger_base b JOIN epochs e ON e.epoch = b.epoch "
        "WHERE b.sku = ? AND b.location = ?",
        (sku, location),
    ).fetchone()
    if order is None:
        row = tx.execute(
            "SELECT COALESCE(SUM(qty), 0) FROM stock_ledger WHERE sku = ? AND location = ?",
            (sku, location),
        ).fetchone()
        return int(row[0]) + (int(base[0]) if base else 0)
    # rows past the end of a sealed epoch are an epoch change's rows still
    # moving (move_step) to the newest epoch, which no baseline can include yet
    row = tx.execute(
        "SELECT COALESCE(SUM(l.qty), 0) FROM stock_ledger l JOIN epochs e ON e.epoch = l.epoch "
        "WHERE l.sku = ? AND l.location = ? AND (e.n > ? OR (e.n = ? AND l.seq > ?) "
        "OR l.seq > COALESCE(e.last_seq, l.seq))",
        (sku, location, order, order, acked),
    ).fetchone()
    live = int(row[0])
    if base is None:
        return live
    qty, base_n, base_seq = int(base[0]), int(base[1]), int(base[2])
    if order > base_n or (order == base_n and acked >= base_seq):
        return live  # the cloud's figure includes the whole folded past
    return live + qty


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


def raise_subject_alert(
    tx: Transaction, kind: str, severity: str, subject: str, detail: dict[str, Any]
) -> bool:
    """Raise an alert about one ``subject`` (a put-back line, a carton…), once
    while that subject's alert of ``kind`` is open; returns whether it was."""
    if tx.execute(
        "SELECT 1 FROM alerts WHERE kind = ? AND subject = ? AND cleared_ms IS NULL LIMIT 1",
        (kind, subject),
    ).fetchone():
        return False
    return raise_alert(tx, kind, severity, subject, detail, once=False)


def clear_subject_alert(tx: Transaction, kind: str, subject: str, why: str) -> int:
    """Clear the open alert of ``kind`` about ``subject``; it goes upstream as
    ``cleared`` with its detail and ``why``. Returns how many were cleared."""
    rows = tx.execute(
        "SELECT id, severity, detail FROM alerts WHERE kind = ? AND subject = ? "
        "AND cleared_ms IS NULL ORDER BY id",
        (kind, subject),
    ).fetchall()
    for alert_id, severity, blob in rows:
        tx.execute("UPDATE alerts SET cleared_ms = ? WHERE id = ?", (now_ms(), alert_id))
        detail = dict(msgpack.unpackb(blob, raw=False))
        detail["cleared"] = why
        tx.append_bookkeeping(
            Alert(
                kind=kind,
                severity=Severity(severity),
                subject=subject,
                detail=detail,
                state=AlertState.CLEARED,
            )
        )
    return len(rows)


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


def open_alert_keys(db: _Reads, kinds: Iterable[str]) -> set[tuple[str, str]]:
    """The (kind, subject) of every open alert of ``kinds``, through ``db`` (a
    transaction or a reader)."""
    kinds = list(kinds)
    if not kinds:
        return set()
    marks = ", ".join("?" * len(kinds))
    rows = db.execute(
        f"SELECT DISTINCT kind, subject FROM alerts WHERE cleared_ms IS NULL AND kind IN ({marks})",  # noqa: S608 - placeholders only
        kinds,
    ).fetchall()
    return {(str(r[0]), str(r[1])) for r in rows}


def clear_alerts(tx: Transaction, kinds: Iterable[str], why: str = "resolved") -> int:
    """End the open episodes of ``kinds``: each open alert is cleared and goes
    upstream as ``cleared`` (sync-v1) with its detail and ``why``, in ``tx``.
    Returns how many alerts were cleared."""
    kinds = list(kinds)
    if not kinds:
        return 0
    marks = ", ".join("?" * len(kinds))
    rows = tx.execute(
        f"SELECT kind, subject FROM alerts WHERE cleared_ms IS NULL AND kind IN ({marks}) "  # noqa: S608 - placeholders only
        "GROUP BY kind, subject ORDER BY min(id)",
        kinds,
    ).fetchall()
    return sum(clear_subject_alert(tx, str(kind), str(subject), why) for kind, subject in rows)
