"""The alert rules at work: read the figures, decide (:mod:`edge.alerting.rules`),
write the difference in one transaction.

:class:`AlertEngine` is a daemon component (``alerts``): every ``[alerts]
interval_s`` it reads a :class:`~edge.alerting.rules.Figures` — stock per SKU
and the outbox's oldest unsent event and the exception rate from the store,
the device supervisor's snapshot, the store disk's ``statvfs`` — adds what it
keeps in memory (each printer's last status and each reader's overflows, seen
through :meth:`AlertEngine.observe` on the device events; the disk's free
bytes over ``disk_window_s``; the wall clock against the monotonic one), and
:func:`reconcile` raises what is newly true and clears what no longer is, in
one write transaction: one ``alert`` event ``raised`` per (kind, subject)
episode and one ``cleared`` when it ends, both upstream (sync-v1). Open alerts
live in the ``alerts`` table, so a restart neither raises them again nor
forgets to clear them.

This module owns its SQL: the stock read below (the rest goes through
:mod:`edge.store.outbox` and :mod:`edge.picking.stats`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.events import DeviceEvent, DeviceState, DeviceStateEvent
from edge.alerting import rules
from edge.alerting.rules import Disk, Figures, Key, Overflow, SkuStock, Want
from edge.config import AlertsConfig
from edge.disk import fill_rate
from edge.picking import stats
from edge.picking.queries import Reads
from edge.shipping.inbox import PRINTER_DRIVER
from edge.store import Store, Transaction
from edge.store.outbox import clear_subject_alert, open_alert_keys, raise_subject_alert, status

log = logging.getLogger(__name__)

#: the device supervisor's snapshot (edge.device_supervisor.DeviceSupervisor.snapshot)
DeviceSnapshot = Callable[[], Mapping[str, Mapping[str, Any]]]
#: (free bytes, total bytes) of the store's file system
DiskUsage = Callable[[], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Changes:
    """What one reconciliation did."""

    raised: tuple[Key, ...] = ()
    cleared: tuple[Key, ...] = ()


def reconcile(tx: Transaction, wanted: Mapping[Key, Want], kinds: Collection[str]) -> Changes:
    """Raise the ``wanted`` alerts not open yet and clear the open ones of
    ``kinds`` not wanted, in ``tx``; each goes upstream (``raised`` /
    ``cleared``). Alerts of other kinds are never touched."""
    kinds = set(kinds)
    open_now = open_alert_keys(tx, kinds)
    raised: list[Key] = []
    cleared: list[Key] = []
    for key, want in sorted(wanted.items()):
        if (
            want.kind in kinds
            and key not in open_now
            and raise_subject_alert(tx, want.kind, want.severity, want.subject, want.detail)
        ):
            raised.append(key)
    for key in sorted(open_now - set(wanted)):
        kind, subject = key
        if clear_subject_alert(tx, kind, subject, rules.CLEARED_WHY.get(kind, "resolved")):
            cleared.append(key)
    return Changes(tuple(raised), tuple(cleared))


def read_stock(db: Reads, cfg: AlertsConfig) -> dict[str, SkuStock]:
    """On-hand per SKU with its locations, for the SKUs with a threshold: every
    SKU stocked in the zone when ``low_stock_default`` is set, else the listed
    ones (a listed SKU with no stock row has on-hand 0)."""
    listed = {sku for sku, low in cfg.low_stock_skus.items() if low > 0}
    if cfg.low_stock_default <= 0 and not listed:
        return {}
    where, params = "", list[str]()
    if cfg.low_stock_default <= 0:
        where, params = f"WHERE sku IN ({', '.join('?' * len(listed))})", sorted(listed)
    per: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for sku, location, qty in db.execute(
        f"SELECT sku, location, SUM(qty) FROM stock {where} GROUP BY sku, location",  # noqa: S608 - placeholders only
        params,
    ):
        per[str(sku)][str(location)] = int(qty)
    for sku in listed:
        per.setdefault(sku, {})
    return {
        sku: SkuStock(sku, sum(locs.values()), tuple(sorted(locs.items())))
        for sku, locs in per.items()
    }


def statvfs_usage(path: Path) -> DiskUsage:
    """(free bytes for this user, total bytes) of the file system holding ``path``."""

    def usage() -> tuple[int, int]:
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    return usage


class AlertEngine:
    """Evaluate the rules every ``interval_s``; see the module docstring."""

    name = "alerts"

    def __init__(
        self,
        store: Store,
        cfg: AlertsConfig,
        *,
        devices: DeviceSnapshot | None = None,
        printers: Collection[str] = (),
        disk: DiskUsage | None = None,
        on_commit: Callable[[], None] | None = None,
        defer: Callable[[str], bool] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.devices = devices
        self.printers = set(printers)
        self.disk = disk if disk is not None else statvfs_usage(store.path.parent)
        self.on_commit = on_commit
        #: peak protection (edge.peak.PeakGuard.defer): low-priority rules wait
        self.defer = defer
        self.monotonic = monotonic
        self.wall = wall
        #: printer id -> its last status detail (since this process started)
        self.printer_status: dict[str, str] = {}
        #: reader id -> (overflows this episode, last detail, monotonic of the last)
        self._overflows: dict[str, tuple[int, str, float]] = {}
        self._disk_samples: collections.deque[tuple[float, int]] = collections.deque()
        self._clock: tuple[float, float] | None = None
        #: the last jump seen: (seconds, monotonic when seen)
        self._jump: tuple[float, float] | None = None
        self.last: Changes = Changes()

    # -- inputs kept in memory --------------------------------------------------

    def observe(self, event: DeviceEvent) -> None:
        """A device event (:attr:`edge.shipping.inbox.FloorInbox.listeners`):
        printers' statuses and readers' overflows are kept for the rules."""
        if not isinstance(event, DeviceStateEvent):
            return
        if event.state is DeviceState.STATUS and event.device_id in self.printers:
            self.printer_status[event.device_id] = event.detail
        elif event.state is DeviceState.OVERFLOW:
            now = self.monotonic()
            count, _, last = self._overflows.get(event.device_id, (0, "", now))
            if now - last >= self.cfg.rfid_overflow_clear_s:
                count = 0  # a new episode
            self._overflows[event.device_id] = (count + 1, event.detail, now)

    def _sample_disk(self, now: float) -> Disk | None:
        try:
            free, total = self.disk()
        except OSError as exc:
            log.warning("alerts: cannot read the free space of the store's disk: %s", exc)
            return None
        window = self.cfg.disk_window_s
        samples = self._disk_samples
        samples.append((now, free))
        while samples and now - samples[0][0] > window:
            samples.popleft()
        spanned = samples[-1][0] - samples[0][0] >= window / 4
        rate = fill_rate(list(samples)) if spanned else None
        return Disk(str(self.store.path.parent), free, total, rate)

    def _sample_clock(self, now: float) -> None:
        reading = (now, self.wall())
        if self._clock is not None:
            jump = rules.jump_of(self._clock, reading)
            if abs(jump) >= self.cfg.clock_jump_s:
                log.warning("alerts: the wall clock jumped %+.1f s", jump)
                self._jump = (jump, now)
        self._clock = reading

    # -- one evaluation ---------------------------------------------------------

    def read(self) -> tuple[Figures, frozenset[Key]]:
        """The figures and the open alerts of the rules' kinds (off the event
        loop: it reads the store)."""
        opened = frozenset(open_alert_keys(self.store.reader(), rules.KINDS))
        return self.figures(), opened

    def figures(self) -> Figures:
        """Read everything the rules look at (off the event loop: it reads the store)."""
        cfg = self.cfg
        now = self.monotonic()
        self._sample_clock(now)
        disk = self._sample_disk(now)
        db = self.store.reader()
        out = status(self.store)
        wall_ms = int(self.wall() * 1000)  # informational ages, as the outbox stamps
        finished, bad = stats.exceptions(db, wall_ms - int(cfg.exception_window_h * 3_600_000))
        devices = []
        for device_id, snap in (self.devices() if self.devices is not None else {}).items():
            down = snap.get("down_for_s")
            devices.append(
                rules.DeviceFigure(
                    device_id,
                    str(snap.get("driver", "")),
                    str(snap.get("role", "")),
                    bool(snap.get("connected")),
                    float(down) if down is not None else None,
                )
            )
        overflows = {
            reader: Overflow(count, detail, now - last)
            for reader, (count, detail, last) in self._overflows.items()
        }
        return Figures(
            stock=read_stock(db, cfg) if cfg.low_stock else {},
            devices=devices,
            printers=dict(self.printer_status),
            overflows=overflows,
            backlog=out.backlog,
            oldest_unsent_s=(
                max(0.0, (wall_ms - out.oldest_unacked_ms) / 1000.0)
                if out.oldest_unacked_ms is not None
                else None
            ),
            disk=disk,
            tasks_finished=finished,
            tasks_with_exception=bad,
            clock_jump_s=self._jump[0] if self._jump is not None else None,
            clock_quiet_s=now - self._jump[1] if self._jump is not None else 0.0,
        )

    def kinds_now(self) -> tuple[str, ...]:
        """The kinds reconciled this time: all, less the low-priority ones while
        the box is in peak mode (their open alerts stay as they are)."""
        if self.defer is not None and self.defer("alerts"):
            return tuple(k for k in rules.KINDS if k not in rules.LOW_PRIORITY)
        return rules.KINDS

    async def tick(self) -> Changes:
        """Evaluate once: figures, rules, one write; returns what changed."""
        kinds = self.kinds_now()
        figures, open_now = await asyncio.to_thread(self.read)
        wanted = rules.evaluate(figures, self.cfg, open_now)
        changes = await self.store.write(lambda tx: reconcile(tx, wanted, kinds))
        for kind, subject in changes.raised:
            log.warning("alert raised: %s %s", kind, subject)
        for kind, subject in changes.cleared:
            log.info("alert cleared: %s %s", kind, subject)
        if (changes.raised or changes.cleared) and self.on_commit is not None:
            self.on_commit()
        self.last = changes
        return changes

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except OSError as exc:  # a disk or store hiccup: the next tick tries again
                log.warning("alerts: evaluation failed: %s", exc)
            await asyncio.sleep(self.cfg.interval_s)


def printer_ids(specs: Sequence[Any]) -> set[str]:
    """The ids of the label printers among device specs."""
    return {s.id for s in specs if getattr(s, "driver", None) == PRINTER_DRIVER}
