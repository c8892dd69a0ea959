"""What the protocol needs from a box, as two small interfaces the box implements.

``cloud_sync`` never imports the box: :class:`~cloud_sync.uploader.Uploader`
works against an :class:`Outbox` and :class:`~cloud_sync.downloader.Downloader`
against a :class:`ChangeSink`. The edge implements both on its SQLite store
(``edge/store/sync_state.py``) and ``edge/wiring.py`` connects them.

Two kinds of method, so a caller knows where each may run:

- **reads** are plain blocking calls; the uploader and downloader call them
  off the event loop (an executor thread), never on it;
- **writes** are awaitables, each one durable transaction when it returns (the
  box runs them on its store's writer thread).

Alerts are the :class:`~cloud_sync.events.Alert` events of sync-v1: raising one
records it on the box and appends it to the outbox in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from cloud_sync.codec import RawEvent
from cloud_sync.events import Alert

R_co = TypeVar("R_co", covariant=True)


class SendState(NamedTuple):
    """Where the outbox stands, as one read sees it: the epoch to send now."""

    #: the epoch to send: the oldest with an unacked event, else the current one
    epoch: str
    #: its acked seq (0 when nothing of it is acked)
    acked: int
    #: one past its last event: events ``1 .. next_seq - 1`` exist
    next_seq: int
    #: a sealed epoch: it gets no more events (a restored box's old tail, sent
    #: as it is); the cloud may hold more of it than the box, which is no lie
    sealed: bool = False


@dataclass(frozen=True, slots=True)
class EpochChange:
    """What :meth:`Outbox.start_new_epoch` or :meth:`Outbox.check_copy` did."""

    old: str
    new: str
    #: events moved to ``new`` (renumbered from seq 1)
    moved: int
    #: ``old`` is sealed at this seq: every seq ≤ it stays there (acked, after an
    #: ``epoch_conflict``; still to be sent as it is, after a restore)
    kept: int = 0
    #: why (a detected restore or copy); None for an ``epoch_conflict``
    reason: str | None = None


class Outbox(Protocol):
    """The box's outbox as the uploader sees it."""

    @property
    def box_id(self) -> str: ...

    # -- reads (blocking, called off the event loop)

    def send_state(self) -> SendState: ...

    def read_raw(self, epoch: str, *, after_seq: int, limit: int) -> list[RawEvent]:
        """Up to ``limit`` rows of ``epoch`` after ``after_seq``, in seq order,
        ``data`` as stored msgpack bytes, acked or not (until pruned)."""
        ...

    def open_alerts(self, kinds: Collection[str]) -> set[str]:
        """Which of ``kinds`` have an alert raised and not yet cleared."""
        ...

    def will_send(self, epoch: str, last: int) -> None:
        """A batch of ``epoch`` up to seq ``last`` is about to leave (blocking,
        off the event loop): the box records durably, outside its database,
        how far it may have sent, so a restored or copied database can tell
        (sync-v1). Returns once that is on disk."""
        ...

    # -- writes (each one transaction, durable when it returns)

    async def settle_ack(self, epoch: str, upto: int, *, clear: Collection[str]) -> int:
        """Every seq ≤ ``upto`` of ``epoch`` is acked: store the mark (monotonic;
        an epoch that is no longer current changes nothing), end the back-off in
        the status, and clear the open alerts of ``clear``. Returns the stored
        mark; ``ValueError`` when ``upto`` is beyond the epoch's last event."""
        ...

    async def record_error(self, message: str, *, backoff_s: float, alert: Alert | None) -> None:
        """The last error and the current back-off, for people; and ``alert``,
        unless one of its kind is still open."""
        ...

    async def raise_alert(self, alert: Alert) -> bool:
        """Raise ``alert`` unless one of its kind is still open; whether it was."""
        ...

    async def check_copy(self) -> EpochChange | None:
        """Before the first send: finish an epoch change cut short; then, is
        this database restored from a backup or
        copied (what :meth:`will_send` recorded does not match it)? If so, its
        current epoch is sealed where it ends (those events are sent as they
        are) and new events go to a new epoch, with a ``crit`` alert, in one
        transaction; returns the change. None when nothing was wrong."""
        ...

    async def start_new_epoch(
        self,
        alert: Callable[[EpochChange], Alert],
        *,
        epoch: str | None = None,
        conflict_at: int | None = None,
    ) -> EpochChange:
        """The cloud answered ``epoch_conflict`` to a batch of ``epoch`` (default:
        the epoch being sent). With ``conflict_at`` S: every seq < S is acked and
        stays in the old epoch, the events from S on move to a new epoch from
        seq 1. Without: every unacked event moves. Order and content kept; the
        alert built from the change is raised whatever is open, and never
        refused by the backlog limit. The switch (acks, new epoch, alert) is one
        transaction; moving the events may take several, so long as nothing of
        the new epoch can be read before they all moved, and a move cut short
        is finished before the next read. Returns once every event moved."""
        ...

    async def prune_acked(self, *, max_age_ms: int) -> int:
        """Delete rows acked more than ``max_age_ms`` of box uptime ago (never by
        the wall clock); returns how many. Unacked rows are never deleted."""
        ...


class ChangeRefused(ValueError):
    """A downstream change the box cannot apply, raised by
    :meth:`ChangeSink.apply_page`: the page is refused whole (nothing of it is
    stored, the cursor stays). The message names the change and why; the
    downloader raises a ``crit`` alert of :attr:`alert_kind` and fetches the
    same page again after its back-off, so the feed stops visibly instead of
    skipping work."""

    alert_kind: str = "sync_changes_invalid"


class ChangeSink(Protocol[R_co]):
    """Where the downloader applies the cloud's changes; ``R_co`` is what applying
    a page gives back (the notices the box acts on after the commit)."""

    # -- reads (blocking, called off the event loop)

    def cursor(self) -> str | None:
        """The stored cursor (None before the first page)."""
        ...

    def open_alerts(self, kinds: Collection[str]) -> set[str]: ...

    # -- writes (each one transaction, durable when it returns)

    async def apply_page(
        self, changes: Sequence[Mapping[str, Any]], cursor: str, *, clear: Collection[str]
    ) -> R_co:
        """Apply ``changes`` in order, store ``cursor`` and clear the open alerts
        of ``clear``, all in one transaction. :class:`ChangeRefused` (a
        ``ValueError``) when a change cannot be applied: the page is refused
        whole and nothing is stored. Any other exception (the box's store
        failing) also stores nothing."""
        ...

    async def record_error(self, message: str, *, alert: Alert | None) -> None:
        """The last error, for people; and ``alert``, unless one of its kind is open."""
        ...


__all__ = ["ChangeRefused", "ChangeSink", "EpochChange", "Outbox", "SendState"]
