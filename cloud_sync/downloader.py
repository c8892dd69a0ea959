"""The downloader: ``GET /sync/v1/changes`` into the box, page by page.

Promises (contracts/sync-v1.md, "Downstream"):

- **Signed or nothing.** A page whose answer is unsigned or wrongly signed is
  not applied (a ``crit`` alert once per episode, then back-off).
- **One transaction per page**: the page's changes and the new cursor go to
  :meth:`cloud_sync.ports.ChangeSink.apply_page` together, which applies them
  in one transaction, so a crash applies a page wholly or not at all, and a
  page is never applied under a cursor that does not follow it.
- It loops at once while the cloud says ``more``, and otherwise pulls every
  ``pull_interval_s``; errors back off (capped exponential with jitter, never
  below ``backoff_min_s``).
- **It never crash-loops.** Any failure — the network, the cloud's answer, a
  change the box cannot apply, the box's own store — is recorded as the last
  error, logged in one line (once per distinct failure, not per retry), raised
  as a ``crit`` alert where a person must act, and retried after the back-off.
- **A change the box cannot apply stops the feed visibly**: the sink refuses
  the page whole (a ``ValueError``, :class:`cloud_sync.ports.ChangeRefused`
  naming the change and why), the cursor stays, the alert says which change,
  and the same page is fetched again after the back-off. Nothing is skipped.
- It knows nothing about warehouse tables: the box's :class:`ChangeSink`
  applies the changes, and what applying returns reaches ``on_applied`` after
  the commit (the notices a picker must hear about at once).
- Reads of the sink run off the event loop (a worker thread); its writes are
  awaitables. It never reads the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cloud_sync.client import CloudUnreachableError, SyncClient
from cloud_sync.codec import url_safe
from cloud_sync.events import Alert, Severity
from cloud_sync.ports import ChangeSink
from common.backoff import Backoff

if TYPE_CHECKING:
    from cloud_sync.metrics import SyncMetrics

log = logging.getLogger(__name__)

R = TypeVar("R")

#: the downloader's alerts, each raised once per episode and cleared by the next
#: page applied: an unsigned answer; a malformed answer or a change the box
#: cannot apply; a stock baseline ahead of what the box wrote (a restored or
#: cloned box, see edge.masterdata); any other failure (the box's store)
_EPISODE_KINDS = (
    "sync_changes_unsigned",
    "sync_changes_invalid",
    "sync_stock_ahead",
    "sync_changes_failed",
)


class Downloader(Generic[R]):
    """Component ``downloader``; ``run()`` until cancelled."""

    name = "downloader"

    def __init__(
        self,
        sink: ChangeSink[R],
        client: SyncClient,
        *,
        on_applied: Callable[[R], Awaitable[None] | None] | None = None,
        limit: int = 500,
        pull_interval_s: float = 5.0,
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 60.0,
        metrics: SyncMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.client = client
        self.on_applied = on_applied
        self.limit = limit
        self.pull_interval_s = pull_interval_s
        self.backoff_min_s = backoff_min_s
        self._backoff = Backoff(initial_s=2 * backoff_min_s, cap_s=backoff_max_s)
        self.metrics = metrics
        self._rng = rng or random.Random()
        self._attempt = 0
        self._open_alerts: set[str] | None = None
        self.backoff_s = 0.0
        self.last_error: str | None = None
        self._record_failed: str | None = None

    async def run(self) -> None:
        while True:
            ok, more = await self.pull_once()
            if ok and more:
                continue
            await asyncio.sleep(self.pull_interval_s if ok else self.backoff_s)

    async def pull_all(self, *, max_pages: int = 100_000) -> int:
        """Pull until the cloud has no more; returns the pages applied. Raises
        :class:`CloudUnreachableError`-free: failures back off and retry."""
        pages = 0
        for _ in range(max_pages):
            ok, more = await self.pull_once()
            if ok:
                pages += 1
                if not more:
                    break
            else:
                await asyncio.sleep(self.backoff_s)
        return pages

    async def pull_once(self) -> tuple[bool, bool]:
        """Fetch and apply one page: (succeeded, the cloud has more).

        Never raises for a failure (only cancellation propagates): whatever
        goes wrong — the network, the cloud's answer, a change the box cannot
        apply, the box's own store — is recorded, logged once, alerted where a
        person must act, and retried after a back-off.
        """
        try:
            return await self._pull()
        except Exception as exc:  # any failure backs off: it must not crash-loop
            log.debug("download failed", exc_info=True)
            return await self._fail(
                f"{type(exc).__name__}: {exc}",
                alert=("sync_changes_failed", "downstream changes could not be stored"),
            ), False

    async def _pull(self) -> tuple[bool, bool]:
        if self._open_alerts is None:
            self._open_alerts = await asyncio.to_thread(self.sink.open_alerts, _EPISODE_KINDS)
        cursor = await asyncio.to_thread(self.sink.cursor)
        try:
            reply = await self.client.get_changes(cursor, self.limit)
        except CloudUnreachableError as exc:
            return await self._fail(str(exc), kind="unreachable"), False
        if 200 <= reply.status < 300 and not reply.signed:
            what = "wrongly signed" if reply.has_signature else "unsigned"
            return await self._fail(
                f"changes answer {what}: not applied",
                alert=("sync_changes_unsigned", f"the cloud's changes answer was {what}"),
            ), False
        if reply.status != 200:
            return await self._fail(
                f"changes: {reply.status} from the cloud", kind=f"http_{reply.status}"
            ), False
        doc = reply.doc
        if not (
            isinstance(doc, dict)
            and isinstance(doc.get("cursor"), str)
            and isinstance(doc.get("more"), bool)
            and isinstance(doc.get("changes"), list)
        ):
            return await self._fail(
                "changes answer is not {cursor, more, changes}",
                alert=("sync_changes_invalid", "the cloud's changes answer is malformed"),
            ), False
        changes: list[Mapping[str, Any]] = doc["changes"]
        new_cursor: str = doc["cursor"]
        if not url_safe(new_cursor):
            # Stored, it would be refused by every later request (the client
            # sends a cursor only as it is signed): the feed would stop for good.
            return await self._fail(
                f"the cloud's cursor {new_cursor[:80]!r} is not URL-safe: page not applied",
                alert=("sync_changes_invalid", "the cloud's changes cursor is not URL-safe"),
            ), False
        clear = sorted(self._open_alerts or ())
        try:
            result = await self.sink.apply_page(changes, new_cursor, clear=clear)
        except ValueError as exc:
            # ChangeRefused and friends: a change the box cannot apply. The page
            # is refused whole and the cursor stays: the feed stops, visibly,
            # rather than skipping work; it is fetched again after the back-off.
            kind = getattr(exc, "alert_kind", None)
            kind = kind if isinstance(kind, str) else "sync_changes_invalid"
            return await self._fail(
                f"changes page after cursor {cursor!r} refused: {exc}",
                alert=(kind, f"the feed is stopped: a downstream change cannot be applied: {exc}"),
            ), False
        self._open_alerts = set()
        self._attempt = 0
        self.backoff_s = 0.0
        self.last_error = None
        if self.metrics is not None:
            self.metrics.applied(len(changes))
        if self.on_applied is not None:
            try:
                pending = self.on_applied(result)
                if pending is not None:
                    await pending
            except Exception as exc:  # the page is committed: only a push is lost
                log.error(
                    "download: page applied, but acting on it failed: %s: %s",
                    type(exc).__name__,
                    exc,
                )
        return True, bool(doc["more"])

    async def _fail(
        self, message: str, *, alert: tuple[str, str] | None = None, kind: str = ""
    ) -> bool:
        delay = max(self.backoff_min_s, self._backoff.delay(self._attempt, self._rng))
        self._attempt += 1
        self.backoff_s = delay
        if self.metrics is not None:
            self.metrics.error("download", kind or (alert[0] if alert else "failed"))
        if message != self.last_error:
            # one line per distinct failure, not one per retry
            level = logging.ERROR if alert is not None else logging.WARNING
            log.log(level, "download: %s (retrying in %.1f s)", message, delay)
        self.last_error = message
        open_alerts = self._open_alerts if self._open_alerts is not None else set()
        raise_it = alert is not None and alert[0] not in open_alerts
        try:
            await self.sink.record_error(
                f"download: {message}",
                alert=Alert(
                    kind=alert[0],
                    severity=Severity.CRIT,
                    subject=alert[1][:300],
                    detail={"error": message[:300]},
                )
                if raise_it and alert is not None
                else None,
            )
        except Exception as exc:  # the store itself fails: log, back off, retry
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._record_failed:
                log.error("download: cannot record the failure in the store: %s", problem)
            self._record_failed = problem
            return False
        self._record_failed = None
        if raise_it and alert is not None:
            open_alerts.add(alert[0])
            self._open_alerts = open_alerts
        return False
