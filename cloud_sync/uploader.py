"""The uploader: the outbox, in seq order, to the cloud, until every event is acked.

Promises (contracts/sync-v1.md, "Upstream"):

- **Nothing is dropped.** Events leave the outbox only by being acked (and then
  pruned ``cloud.retention_days`` of box uptime later); every failure keeps
  them.
- **Only signed answers are acted on.** A 2xx, 409 or 400 whose signature is
  missing or wrong moves nothing: it is a transport failure (``crit`` alert
  ``sync_answer_unsigned`` once per episode, back-off), so a proxy can neither
  ack, nor start a new epoch, nor move the send window, nor make the box
  report a rejected batch. A 401 signed or not keeps the events and alerts.
- **An answer must be to this batch.** A 200 or 409 whose echoed ``epoch``,
  ``first`` and ``last`` differ from the batch just sent (a recorded answer
  replayed later or into another epoch) is a transport failure too (``warn``
  alert ``sync_answer_mismatch``, back-off).
- **Acks are taken with care.** An ack is never taken beyond what this
  process sent in the epoch (a 200 after a restart may vouch for more than we
  can check, so we take what we sent and let the cloud confirm the rest as
  duplicates), and an ack beyond the box's last event is a lying cloud:
  alert, back off.
- **One transaction per ack**: the acked mark, clearing the episode's alerts
  and the status row (:meth:`cloud_sync.ports.Outbox.settle_ack`).
- **The answers table, row by row**: 200 → drop ≤ N, send from N+1; 409 gap →
  resend from N+1; 409 ``epoch_conflict`` with ``conflict_at`` S → seqs < S
  acked, the events from S on move to a new epoch from seq 1, ``crit`` alert,
  one transaction, send at once (without S, every unacked event moves);
  400 / 401 → keep, ``crit``
  alert, back off; 413 → halve the batch (a single event still too large:
  alert, back off); 429 / 5xx / timeout / reset → back off.
- **Back-off** is capped exponential with jitter, never below
  ``backoff_min_s`` (1 s: at most one request a second while the cloud is
  down) and never above ``backoff_max_s``; any success resets it.
- **Alerts once per episode**: each kind is raised (``alerts`` row + ``alert``
  outbox event) when its trouble starts and cleared by the next ack.
- **Restores and copies** are found before the first send
  (:meth:`cloud_sync.ports.Outbox.check_copy`: the box's durable mark, which
  :meth:`~cloud_sync.ports.Outbox.will_send` advances before every batch that
  goes beyond it, does not match the database): the current epoch is sealed
  and new events go to a new one. Epochs drain oldest first; in a sealed
  epoch an ack beyond the box's last event is the cloud holding what the
  original box sent after the backup, not a lie: it is taken up to what was
  sent.
- **Prompt**: :meth:`Uploader.notify` wakes it after a commit; it also polls.
- Status for ``pickedge sync status``: ``last_error``/``last_error_ms``,
  ``backoff_s``, ``retry_at_ms`` and the ack columns of ``sync_state``.

It works against :class:`cloud_sync.ports.Outbox`, which the box implements:
reads and batch encoding run on the uploader's own I/O thread, writes are the
outbox's awaitables, so the event loop the PDAs share never waits on SQLite.
It never reads the wall clock: ordering, dedup and back-off never depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from cloud_sync.client import CloudUnreachableError, Reply, SyncClient
from cloud_sync.codec import (
    MAX_BATCH_BYTES,
    Echo,
    RawEvent,
    answer_echo,
    conflict_at,
    encode_batch_raw,
    raw_event_size,
)
from cloud_sync.events import Alert, Severity
from cloud_sync.ports import EpochChange, Outbox
from common.backoff import Backoff
from common.faults import crash_point

if TYPE_CHECKING:
    from cloud_sync.metrics import SyncMetrics

log = logging.getLogger(__name__)

#: alert kinds whose episode the next ack ends
EPISODE_KINDS = (
    "sync_batch_rejected",
    "sync_unauthorized",
    "sync_answer_unsigned",
    "sync_lying_ack",
    "sync_event_too_large",
    "sync_events_missing",
    "sync_cloud_behind",
    "sync_epoch_conflict",
    "sync_restore_detected",
    "sync_mark_unwritable",
    "sync_answer_mismatch",
)
_HEADER_ALLOWANCE = 256  # envelope bytes beyond the events (box id, epoch, ints)

T = TypeVar("T")
#: an alert of an episode: (kind, severity, subject)
AlertSpec = tuple[str, str, str]


class Step(enum.Enum):
    """What one :meth:`Uploader.step` did."""

    IDLE = "idle"  # nothing to send
    SENT = "sent"  # progress (or a decision that needs no pause): go again
    RETRY = "retry"  # failed: back off


class Uploader:
    """Component ``uploader``; ``run()`` until cancelled."""

    name = "uploader"

    def __init__(
        self,
        outbox: Outbox,
        client: SyncClient,
        *,
        batch_max_events: int = 500,
        batch_max_bytes: int = MAX_BATCH_BYTES,
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 60.0,
        poll_interval_s: float = 1.0,
        retention_days: float = 7.0,
        prune_interval_s: float = 600.0,
        metrics: SyncMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 1024 <= batch_max_bytes <= MAX_BATCH_BYTES:
            raise ValueError(f"batch_max_bytes must be 1024..{MAX_BATCH_BYTES}")
        self.outbox = outbox
        self.client = client
        self.box_id = outbox.box_id
        self.batch_max_events = max(1, batch_max_events)
        self.batch_max_bytes = batch_max_bytes
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self._backoff = Backoff(initial_s=2 * backoff_min_s, cap_s=backoff_max_s)
        self.poll_interval_s = poll_interval_s
        self.retention_ms = int(retention_days * 86_400_000)
        self.prune_interval_s = prune_interval_s
        self.metrics = metrics
        self._rng = rng or random.Random()
        # send window of the current epoch, in memory (rebuilt from the store)
        self._epoch: str | None = None
        self._from = 0  # the next batch starts after this seq
        self._sent_max = 0  # highest seq this process sent in _epoch
        # _epoch is sealed: a restored box's old tail, drained before the current
        # epoch; the cloud may hold more of it than the box (no lie: capped)
        self._sealed = False
        # the box checks it is no restored or copied database once, before it sends
        self._copy_checked = False
        self._limit = self.batch_max_events
        self._attempt = 0
        self._open_alerts: set[str] | None = None
        self._wake: asyncio.Event | None = None
        #: set while run() waits with nothing to send (for drains and tests)
        self.idle = asyncio.Event()
        self._acked_seq = 0
        self._progress: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # reads and batch encoding run here, off the event loop the PDAs share
        self._io_pool: ThreadPoolExecutor | None = None
        self._last_prune = -float("inf")
        self._draining = False
        # epochs this process started: a fresh random epoch cannot really
        # conflict, so a conflict on one is a confused cloud, not a new epoch
        self._fresh_epochs: set[str] = set()
        self._in_flight = asyncio.Lock()
        #: the last error text (also in sync_state.last_error)
        self.last_error: str | None = None
        self.backoff_s = 0.0

    # ------------------------------------------------------------------ control

    def notify(self) -> None:
        """New events were committed: send soon. Safe from any thread."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            loop.call_soon_threadsafe(wake.set)

    async def drain(self) -> None:
        """Stop after the request in flight (its ack, if any, is stored)."""
        self._draining = True
        # taking the lock waits for the step in flight; run() sees the flag after it
        await self._in_flight.acquire()
        self._in_flight.release()
        if self._wake is not None:
            self._wake.set()  # an idle run() need not wait for its poll to end

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        try:
            while not self._draining:
                self._wake.clear()
                step = await self.step()
                if step is Step.SENT:
                    continue
                if step is Step.IDLE:
                    await self._maybe_prune()
                    self.idle.set()
                    try:
                        await self._sleep(self.poll_interval_s, wakeable=True)
                    finally:
                        self.idle.clear()
                else:
                    await self._sleep(self.backoff_s, wakeable=False)
        finally:
            if self._io_pool is not None:
                self._io_pool.shutdown(wait=False)
                self._io_pool = None  # a restart by the supervisor makes a new one

    async def _sleep(self, seconds: float, *, wakeable: bool) -> None:
        if wakeable and self._wake is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        else:
            await asyncio.sleep(seconds)

    async def wait_acked(self, seq: int) -> None:
        """Return once this uploader stored an ack ≥ ``seq`` (in any epoch)."""
        if self._progress is None:
            self._progress = asyncio.Condition()
        async with self._progress:
            await self._progress.wait_for(lambda: self._acked_seq >= seq)

    async def send_all(self, *, max_steps: int = 1_000_000) -> int:
        """Send until nothing is unacked (tests, benches, ``drain`` tools);
        backs off between failures like :meth:`run`. Returns the acked seq."""
        for _ in range(max_steps):
            step = await self.step()
            if step is Step.IDLE:
                break
            if step is Step.RETRY:
                await asyncio.sleep(self.backoff_s)
        return (await self._io(self.outbox.send_state)).acked

    # ------------------------------------------------------------------ one step

    async def step(self) -> Step:
        """Read one batch, send it, act on the answer."""
        async with self._in_flight:
            return await self._step()

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the uploader's I/O thread (reads, encoding)."""
        if self._io_pool is None:
            self._io_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uploader-io")
        return await asyncio.get_running_loop().run_in_executor(self._io_pool, fn, *args)

    def _read(self) -> tuple[str, int, list[RawEvent]]:
        # the epoch to send: the oldest with unacked events (sealed epochs first)
        epoch, acked, next_seq, sealed = self.outbox.send_state()
        if epoch != self._epoch:
            # first read, or another epoch: the window starts at the stored ack.
            # Otherwise it is ours alone (it may lie below the stored ack after
            # a cloud that lost events asked for them again).
            self._epoch, self._from, self._sent_max = epoch, acked, acked
        self._sealed = sealed
        rows = self.outbox.read_raw(epoch, after_seq=self._from, limit=self._limit)
        budget = self.batch_max_bytes - _HEADER_ALLOWANCE - len(self.box_id) - len(epoch)
        size = 0
        for i, row in enumerate(rows):
            size += raw_event_size(row)
            if size > budget and i > 0:
                rows = rows[:i]
                break
        if rows:
            # the head and the rows are two reads: a scan that commits between
            # them adds rows past the head read, and they are this box's events
            next_seq = max(next_seq, rows[-1][0] + 1)
        return epoch, next_seq, rows

    async def _step(self) -> Step:
        if not self._copy_checked:
            try:
                await self._check_copy()
            except OSError as exc:
                return await self._fail(
                    f"cannot read or write the sync mark ({exc}); nothing sent",
                    alert=("sync_mark_unwritable", "crit", "the box cannot write its sync mark"),
                )
            self._copy_checked = True
        epoch, next_seq, rows = await self._io(self._read)
        if self._open_alerts is None:
            self._open_alerts = await self._io(self.outbox.open_alerts, EPISODE_KINDS)
        if not rows:
            if self._from < next_seq - 1:
                return await self._fail(
                    f"events {self._from + 1}.. of epoch {epoch} are no longer kept",
                    alert=(
                        "sync_events_missing",
                        "crit",
                        "outbox rows needed by the cloud are gone",
                    ),
                )
            return Step.IDLE
        first, last = rows[0][0], rows[-1][0]
        if first != self._from + 1:
            return await self._fail(
                f"event {self._from + 1} of epoch {epoch} is no longer kept",
                alert=("sync_events_missing", "crit", "outbox rows needed by the cloud are gone"),
            )
        body = await self._io(encode_batch_raw, self.box_id, epoch, rows)
        try:
            # the box's durable record of how far it may have sent, before it
            # does: how a restored or copied database tells (sync-v1)
            await self._io(self.outbox.will_send, epoch, last)
        except OSError as exc:
            return await self._fail(
                f"cannot record the send mark ({exc}); nothing sent",
                alert=("sync_mark_unwritable", "crit", "the box cannot write its sync mark"),
            )
        started = time.monotonic()
        # sent once the request leaves, answered or not: an ack up to here may come
        # later (the cloud committed, the answer was lost, a smaller resend is acked)
        self._sent_max = max(self._sent_max, last)
        try:
            reply = await self.client.post_batch(body)
        except CloudUnreachableError as exc:
            self._count("unreachable", 0, started)
            return await self._fail(str(exc), kind="unreachable")
        crash_point("after_send_before_ack")  # tests only: inert unless armed
        self._count(str(reply.status), len(rows), started)
        return await self._answer(
            reply, epoch, first=first, last=last, next_seq=next_seq, count=len(rows)
        )

    async def _answer(
        self, reply: Reply, epoch: str, *, first: int, last: int, next_seq: int, count: int
    ) -> Step:
        status, doc = reply.status, reply.doc
        # sync-v1: the box acts on no ack, gap, epoch_conflict or rejection the
        # cloud did not sign; such an answer (a proxy's, or forged) is a
        # transport failure. 413 / 429 / 5xx only make us shrink or wait.
        if (200 <= status < 300 or status in (400, 409)) and not reply.signed:
            what = "wrongly signed" if reply.has_signature else "unsigned"
            return await self._fail(
                f"{status} answer {what}: ignored",
                alert=("sync_answer_unsigned", "crit", f"the cloud's answer was {what}"),
                detail={"status": status, "epoch": epoch, "first": first, "last": last},
            )
        if status == 401:
            return await self._unauthorized(reply.signed)
        if status in (200, 409) and answer_echo(doc) != Echo(epoch, first, last):
            return await self._mismatch(status, doc, epoch, first, last)
        acked_doc = doc.get("acked") if isinstance(doc, dict) else None
        error = doc.get("error") if isinstance(doc, dict) else None
        if status == 200:
            if not isinstance(acked_doc, int) or isinstance(acked_doc, bool):
                return await self._fail(f"200 without an int 'acked': {doc!r:.200}")
            return await self._ack(epoch, acked_doc, first, next_seq)
        if status == 409 and isinstance(error, dict) and error.get("code") == "epoch_conflict":
            at = conflict_at(doc)
            if "conflict_at" in doc and (at is None or not first <= at <= last):
                return await self._fail(
                    f"409 epoch_conflict at {doc['conflict_at']!r:.40}, "
                    f"outside the batch {first}..{last}: ignored"
                )
            return await self._new_epoch(epoch, error, conflict_at=at)
        if status == 409:
            if not isinstance(acked_doc, int) or isinstance(acked_doc, bool) or acked_doc < 0:
                return await self._fail(f"409 without an int 'acked': {doc!r:.200}")
            if acked_doc + 1 >= first:
                # not a gap from where we stand: the cloud and we disagree; pause
                return await self._fail(f"409 with acked {acked_doc} for a batch from {first}")
            log.warning(
                "cloud holds epoch %s only up to %d; resending from %d",
                epoch,
                acked_doc,
                acked_doc + 1,
            )
            stored_acked = (await self._io(self.outbox.send_state)).acked
            self._from = acked_doc
            self._sent_max = min(self._sent_max, acked_doc)
            if acked_doc < stored_acked:
                await self._raise(
                    ("sync_cloud_behind", "warn", "the cloud lost events it had acked"),
                    {"epoch": epoch, "cloud_acked": acked_doc, "box_acked": stored_acked},
                )
            return Step.SENT
        if status == 413:
            if count > 1:
                self._limit = max(1, count // 2)
                log.info("cloud refused a batch of %d events as too large; halving", count)
                return Step.SENT
            return await self._fail(
                f"413 for a single event {first}",
                alert=("sync_event_too_large", "crit", "an event is too large for the cloud"),
            )
        if status == 400:
            return await self._fail(
                f"400 batch rejected: {error!r:.300}",
                alert=("sync_batch_rejected", "crit", "the cloud rejected a batch as malformed"),
                detail={"epoch": epoch, "first": first, "last": last, "error": _plain(error)},
            )
        return await self._fail(f"{status} from the cloud; will retry", kind=f"http_{status}")

    async def _unauthorized(self, signed: bool) -> Step:
        """401: keep the events, alert, back off. Unsigned, it may be a proxy's
        or a cloud that does not know this box (or a box whose secret is
        wrong cannot verify it): a transport failure, alerted all the same."""
        if signed:
            message = "401 the cloud did not accept this box's signature"
        else:
            message = "401 unsigned (not the cloud's word, or a wrong secret): transport failure"
        return await self._fail(
            message,
            alert=("sync_unauthorized", "crit", "the cloud refused this box's credentials"),
            detail={"signed": signed},
        )

    async def _mismatch(self, status: int, doc: Any, epoch: str, first: int, last: int) -> Step:
        """A signed 200 or 409 that echoes another batch (or none): a recorded
        answer replayed later or into another epoch, or a confused cloud. It
        moves nothing; a transport failure, told once per episode."""
        echo = answer_echo(doc)
        said = f"{echo.epoch} {echo.first}..{echo.last}" if echo else "no epoch/first/last"
        return await self._fail(
            f"{status} answer echoes {said}, not the batch sent ({epoch} {first}..{last}): ignored",
            alert=(
                "sync_answer_mismatch",
                "warn",
                "a signed answer was not to the batch sent (replayed or misrouted); ignored",
            ),
            detail={
                "status": status,
                "epoch": epoch,
                "first": first,
                "last": last,
                "echo_epoch": echo.epoch if echo else None,
                "echo_first": echo.first if echo else None,
                "echo_last": echo.last if echo else None,
            },
        )

    async def _ack(self, epoch: str, cloud_acked: int, first: int, next_seq: int) -> Step:
        if cloud_acked >= next_seq and self._sealed and epoch == self._epoch:
            # a sealed epoch of a restored box: the cloud holds what the box held
            # before its backup and more; we take what we sent, below
            log.info(
                "cloud holds sealed epoch %s up to %d, beyond its last event %d here "
                "(restored database): taking the ack up to what was sent",
                epoch,
                cloud_acked,
                next_seq - 1,
            )
        elif cloud_acked >= next_seq:
            return await self._fail(
                f"ack {cloud_acked} is beyond the last event {next_seq - 1} of epoch {epoch}",
                alert=("sync_lying_ack", "crit", "the cloud acked events this box never wrote"),
                detail={"epoch": epoch, "acked": cloud_acked, "last": next_seq - 1},
            )
        if cloud_acked < first - 1:
            # 200 yet short of where we started: treat it as the gap it is
            self._from = cloud_acked
            self._sent_max = min(self._sent_max, cloud_acked)
            return Step.SENT
        if cloud_acked == first - 1:
            # "applied" yet no further than before: no progress; do not spin on it
            return await self._fail(f"200 with acked {cloud_acked}: nothing of {first}.. applied")
        upto = min(cloud_acked, self._sent_max)
        clear = sorted(self._open_alerts or ())
        try:
            stored = await self.outbox.settle_ack(epoch, upto, clear=clear)
        except ValueError as exc:  # beyond the last event (a race-free re-check)
            return await self._fail(
                str(exc),
                alert=("sync_lying_ack", "crit", "the cloud acked events this box never wrote"),
            )
        if self._open_alerts:
            self._open_alerts.clear()
        self._from = max(self._from, upto)
        if self._attempt:
            log.info("upload: the cloud acks again after %d failed attempts", self._attempt)
        self._attempt = 0
        self.backoff_s = 0.0
        self.last_error = None
        self._limit = min(self.batch_max_events, self._limit * 2)
        if self.metrics is not None:
            self.metrics.acked(stored)
        self._acked_seq = stored
        if self._progress is not None:
            async with self._progress:
                self._progress.notify_all()
        return Step.SENT

    async def _new_epoch(
        self, epoch: str, error: dict[str, Any], *, conflict_at: int | None = None
    ) -> Step:
        # conflict_at: the first seq of the batch the cloud holds with other
        # content (every seq before it matched), None when the answer has none
        if epoch in self._fresh_epochs and (await self._io(self.outbox.send_state)).acked == 0:
            return await self._fail(
                f"epoch_conflict on epoch {epoch}, which this box just started",
                alert=("sync_batch_rejected", "crit", "the cloud refuses a fresh epoch"),
            )

        def conflict(change: EpochChange) -> Alert:
            if conflict_at is not None:
                subject = (
                    "the cloud holds other events under this box's seqs (restored backup or "
                    f"cloned card?); seqs before {conflict_at} matched and are acked, the "
                    "events from there moved to a new epoch"
                )
            else:
                subject = (
                    "the cloud holds other events under this box's seqs (restored backup or "
                    "cloned card?); unsent events moved to a new epoch (the cloud did not say "
                    "where the histories part: it may count some of them twice)"
                )
            return Alert(
                kind="sync_epoch_conflict",
                severity=Severity.CRIT,
                subject=subject,
                detail={
                    "old_epoch": change.old,
                    "new_epoch": change.new,
                    "moved": change.moved,
                    "kept": change.kept,
                    "conflict_at": conflict_at,
                },
            )

        # one transaction: acks below conflict_at, the new epoch, the alert
        # (which the backlog limit never refuses); then the events move
        change = await self.outbox.start_new_epoch(conflict, epoch=epoch, conflict_at=conflict_at)
        self._fresh_epochs.add(change.new)
        if self._open_alerts is not None:
            self._open_alerts.add("sync_epoch_conflict")
        log.error(
            "epoch conflict on %s at %s (%s): seqs up to %d acked there, %d events moved to "
            "new epoch %s",
            change.old,
            conflict_at if conflict_at is not None else "an unknown seq",
            error.get("message", "no detail"),
            change.kept,
            change.moved,
            change.new,
        )
        self._epoch = None  # rebuild the window under the new epoch
        return Step.SENT

    async def _check_copy(self) -> None:
        """Before the first send: a restored or copied database seals its epoch
        and starts a new one for new events (the outbox does it and alerts)."""
        change = await self.outbox.check_copy()
        if change is None:
            return
        self._fresh_epochs.add(change.new)
        if self._open_alerts is not None:
            self._open_alerts.add("sync_restore_detected")
        log.error(
            "%s: epoch %s sealed at %d and resent as it is; new events go to epoch %s",
            change.reason or "restored or copied database",
            change.old,
            change.kept,
            change.new,
        )
        self._epoch = None

    # ------------------------------------------------------------------ failures

    async def _fail(
        self,
        message: str,
        *,
        alert: AlertSpec | None = None,
        detail: dict[str, Any] | None = None,
        kind: str = "",
    ) -> Step:
        """Back off after a failure; ``kind`` (else the alert's, else
        ``bad_answer``) is what the metrics count it as."""
        delay = max(self.backoff_min_s, self._backoff.delay(self._attempt, self._rng))
        self._attempt += 1
        self.backoff_s = delay
        if message != self.last_error:
            log.warning("upload: %s (retrying in %.1f s)", message, delay)
        self.last_error = message
        if self.metrics is not None:
            self.metrics.backoff(delay)
            self.metrics.error("upload", kind or (alert[0] if alert else "bad_answer"))
        raise_it = alert is not None and (
            self._open_alerts is None or alert[0] not in self._open_alerts
        )
        await self.outbox.record_error(
            f"upload: {message}",
            backoff_s=delay,
            alert=_alert(alert, detail or {"error": message[:300]})
            if raise_it and alert is not None
            else None,
        )
        if raise_it and alert is not None and self._open_alerts is not None:
            self._open_alerts.add(alert[0])
        return Step.RETRY

    async def _raise(self, alert: AlertSpec, detail: dict[str, Any]) -> None:
        if self._open_alerts is not None and alert[0] in self._open_alerts:
            return
        await self.outbox.raise_alert(_alert(alert, detail))
        if self._open_alerts is not None:
            self._open_alerts.add(alert[0])

    # ------------------------------------------------------------------ upkeep

    async def _maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune < self.prune_interval_s:
            return
        self._last_prune = time.monotonic()
        pruned = await self.outbox.prune_acked(max_age_ms=self.retention_ms)
        if pruned:
            log.info("pruned %d acked outbox rows older than the retention period", pruned)

    def _count(self, outcome: str, events: int, started: float) -> None:
        if self.metrics is not None:
            self.metrics.batch(outcome, events, time.monotonic() - started)


def _alert(spec: AlertSpec, detail: dict[str, Any]) -> Alert:
    kind, severity, subject = spec
    return Alert(kind=kind, severity=Severity(severity), subject=subject, detail=detail)


def _plain(value: Any) -> Any:
    """A value safe to put in an alert's msgpack detail (str fallback)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return repr(value)
