"""The alert rules, pure: a snapshot of figures in, the alerts that should be
open now out.

Each rule is a function ``(figures, settings, open) -> list[Want]``: which
``(kind, subject)`` should be open, with its severity and detail. ``open`` is
what is open now (from the store); a rule uses it only for hysteresis — an
open alert stays open while its figure hovers between the raise and the clear
levels (stock under threshold + margin, disk under free % + margin, the
exception rate above the threshold less the margin), or while the figure is
unknown (a printer not heard from since start, a disk rate not yet measured).
Nothing here reads the database, a clock or a device: :mod:`edge.alerting.engine`
gathers :class:`Figures` and writes what :func:`evaluate` decides
(:func:`edge.alerting.engine.reconcile`: newly true raised, no longer true
cleared, each once per episode).

The SSCC range alert (``sscc_range_low``) is raised where serials are taken
(:mod:`edge.shipping.sscc`) and cleared by a new range; it is not a rule here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.config import AlertsConfig

LOW_STOCK = "low_stock"
DEVICE_OFFLINE = "device_offline"
PRINTER_PAPER_OUT = "printer_paper_out"
BACKLOG_AGE = "backlog_age"
DISK_LOW = "disk_low"
DISK_FILLING = "disk_filling"
EXCEPTION_RATE = "exception_rate_high"
RFID_OVERFLOW = "rfid_overflow"
CLOCK_JUMP = "clock_jump"

#: why each kind clears (the ``cleared`` event's ``detail.cleared``)
CLEARED_WHY: dict[str, str] = {
    LOW_STOCK: "on-hand back at threshold + margin",
    DEVICE_OFFLINE: "device connected",
    PRINTER_PAPER_OUT: "printer reports paper again",
    BACKLOG_AGE: "the oldest unsent event is younger than the limit",
    DISK_LOW: "free space back above the limit + margin",
    DISK_FILLING: "the disk no longer fills within the limit",
    EXCEPTION_RATE: "exception rate back under the limit less the margin",
    RFID_OVERFLOW: "no overflow reported for the quiet period",
    CLOCK_JUMP: "no jump for the quiet period",
}
#: every kind the rules own (the reconciler clears only these)
KINDS: tuple[str, ...] = tuple(CLEARED_WHY)
#: kinds that wait while the box is in peak mode (edge.peak: "alerts")
LOW_PRIORITY: tuple[str, ...] = (LOW_STOCK, EXCEPTION_RATE, DISK_FILLING)

Key = tuple[str, str]  # (kind, subject)


@dataclass(frozen=True, slots=True)
class Want:
    """An alert that should be open."""

    kind: str
    subject: str
    severity: str
    detail: dict[str, Any]

    @property
    def key(self) -> Key:
        return (self.kind, self.subject)


@dataclass(frozen=True, slots=True)
class SkuStock:
    """A SKU's on-hand in the zone and where it lies (location, qty)."""

    sku: str
    on_hand: int
    locations: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceFigure:
    id: str
    driver: str
    role: str
    connected: bool
    #: seconds since it was lost; None while never lost (or not yet tried)
    down_for_s: float | None


@dataclass(frozen=True, slots=True)
class Overflow:
    """Overflows an RFID reader reported in the current episode."""

    count: int
    last_detail: str
    #: seconds since the last one
    quiet_s: float


@dataclass(frozen=True, slots=True)
class Disk:
    path: str
    free_bytes: int
    total_bytes: int
    #: bytes a second the free space shrinks (negative: it grows); None: not measured yet
    decline_per_s: float | None = None

    @property
    def free_pct(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 100.0

    @property
    def hours_to_full(self) -> float | None:
        """At the measured rate; ``inf`` when not filling, None when unknown."""
        if self.decline_per_s is None:
            return None
        if self.decline_per_s <= 0:
            return math.inf
        return self.free_bytes / self.decline_per_s / 3600.0


@dataclass(frozen=True, slots=True)
class Figures:
    """What the rules look at, read at one moment (:mod:`edge.alerting.engine`)."""

    #: the SKUs with a threshold: stocked in the zone, or listed in the config
    stock: Mapping[str, SkuStock] = field(default_factory=dict)
    devices: Sequence[DeviceFigure] = ()
    #: printer id -> its last reported status ("ready", "paper out, head open"…);
    #: printers not heard from since start are absent
    printers: Mapping[str, str] = field(default_factory=dict)
    overflows: Mapping[str, Overflow] = field(default_factory=dict)
    backlog: int = 0
    #: age of the oldest unsent outbox event (box wall clock), None when none
    oldest_unsent_s: float | None = None
    disk: Disk | None = None
    #: (tasks finished in the window, of which needed an exception)
    tasks_finished: int = 0
    tasks_with_exception: int = 0
    #: the last jump of the wall clock against the monotonic one, seconds
    #: (signed) and how long ago; None when none was seen since start
    clock_jump_s: float | None = None
    clock_quiet_s: float = 0.0


Rule = Callable[[Figures, AlertsConfig, frozenset[Key]], list[Want]]


def threshold_of(sku: str, cfg: AlertsConfig) -> int:
    return int(cfg.low_stock_skus.get(sku, cfg.low_stock_default))


def low_stock(f: Figures, cfg: AlertsConfig, open_: frozenset[Key]) -> list[Want]:
    """On-hand under the SKU's threshold; clears at threshold + margin. The
    detail's hint: the quantity that brings it to threshold x target factor and
    the locations that hold the SKU (emptiest first: where it goes)."""
    out: list[Want] = []
    for sku, s in f.stock.items():
        low = threshold_of(sku, cfg)
        if low <= 0:
            continue
        subject = f"sku {sku}"
        held = (LOW_STOCK, subject) in open_ and s.on_hand < low + cfg.low_stock_margin
        if s.on_hand < low or held:
            target = math.ceil(low * cfg.low_stock_target_factor)
            out.append(
                Want(
                    LOW_STOCK,
                    subject,
                    "warn",
                    {
                        "sku": sku,
                        "on_hand": s.on_hand,
                        "threshold": low,
                        "target": target,
                        "replenish": max(0, target - s.on_hand),
                        "locations": [
                            {"location": loc, "qty": qty}
                            for loc, qty in sorted(s.locations, key=lambda lq: (lq[1], lq[0]))
                        ],
                    },
                )
            )
    return out


def device_offline(f: Figures, cfg: AlertsConfig, open_: frozenset[Key]) -> list[Want]:
    """A device down for ``device_offline_s``; stays open until it connects."""
    out: list[Want] = []
    for d in f.devices:
        subject = f"device {d.id}"
        down = d.down_for_s
        long_down = not d.connected and down is not None and down >= cfg.device_offline_s
        if long_down or ((DEVICE_OFFLINE, subject) in open_ and not d.connected):
            out.append(
                Want(
                    DEVICE_OFFLINE,
                    subject,
                    "warn",
                    {
                        "device": d.id,
                        "driver": d.driver,
                        "role": d.role,
                        "down_s": round(down or 0.0, 1),
                        "threshold_s": cfg.device_offline_s,
                    },
                )
            )
    return out


def printer_paper_out(f: Figures, cfg: AlertsConfig, open_: frozenset[Key]) -> list[Want]:
    """A printer whose last status says paper out; an open one stays while the
    printer has not reported since (unknown)."""
    out: list[Want] = []
    subjects = {s for k, s in open_ if k == PRINTER_PAPER_OUT}
    known = {f"printer {p}" for p in f.printers}
    for printer, status in f.printers.items():
        if "paper out" in status:
            out.append(
                Want(
                    PRINTER_PAPER_OUT,
                    f"printer {printer}",
                    "warn",
                    {"printer": printer, "status": status},
                )
            )
    for subject in sorted(subjects - known):  # not heard from: kept as it is
        printer = subject.removeprefix("printer ")
        out.append(Want(PRINTER_PAPER_OUT, subject, "warn", {"printer": printer}))
    return out


def backlog_age(f: Figures, cfg: AlertsConfig, open_: frozenset[Key]) -> list[Want]:
    """The oldest unsent event older than ``backlog_age_min``."""
    age = f.oldest_unsent_s
    if age is None or age < cfg.backlog_age_min * 60.0:
        return []
    detail = {
        "oldest_s": round(age, 1),
        "backlog": f.backlog,
        "threshold_min": cfg.backlog_age_min,
    }
    return [Want(BACKLOG_AGE, "outbox", "warn", detail)]


def disk_low(f: Figures, cfg: AlertsConfig, open_: frozenset[Key]) -> list[Want]:
    """Free space under ``disk_free_pct``; clears above it + ``disk_margin_pct``."""
    d = f.disk
    if d is None:
        return []
    subject = f"disk {d.path}"
    pct = d.free_pct
    held = (DISK_LOW, subject) in open_ and pct < cfg.disk_free_pct + cfg.disk_margin_pct
    if pct >= cfg.disk_free_pct and not held:
        return []
    severity = "crit" if d.free_bytes == 0 else "warn"
    detail = {
        "path": d.path,
        "free_bytes": d.free_bytes,
        "total_bytes": d.total_bytes,
        "free_pct": round(pct, 2),
        "threshold_pct": cfg.disk_free_pct,
    }
    return [Want(DISK_LOW, subject, severity, detail)]


def disk_filling(f: Figures, cfg: AlertsConfig, open_: frozenset[Key]) -> list[Want]:
    """Full within ``disk_full_h`` at the rate measured over the window;
    clears when that is a quarter longer (or the disk stops filling); kept
    while the rate is unknown."""
    d = f.disk
    if d is None:
        return []
    subject = f"disk {d.path}"
    hours = d.hours_to_full
    is_open = (DISK_FILLING, subject) in open_
    if hours is None:
        firing = is_open
    else:
        firing = hours < cfg.disk_full_h or (is_open and hours < cfg.disk_full_h * 1.25)
    if not firing:
        return []
    detail: dict[str, Any] = {
        "path": d.path,
        "free_bytes": d.free_bytes,
        "threshold_h": cfg.disk_full_h,
    }
    if hours is not None:
        detail["hours_to_full"] = round(hours, 2)
        detail["bytes_per_s"] = round(d.decline_per_s or 0.0, 1)
    return [Want(DISK_FILLING, subject, "warn", detail)]


def exception_rate(f: Figures, cfg: AlertsConfig, open_: frozenset[Key]) -> list[Want]:
    """More than ``exception_rate_max`` of the tasks finished in the window
    needed an exception (at least ``exception_min_tasks`` finished); clears
    at the limit less the margin, or when too few tasks are left to judge."""
    n, bad = f.tasks_finished, f.tasks_with_exception
    if n < cfg.exception_min_tasks:
        return []
    rate = bad / n
    is_open = (EXCEPTION_RATE, "zone") in open_
    limit = cfg.exception_rate_max - cfg.exception_rate_margin if is_open else None
    if rate > cfg.exception_rate_max or (limit is not None and rate > limit):
        detail = {
            "rate": round(rate, 4),
            "tasks": n,
            "with_exception": bad,
            "threshold": cfg.exception_rate_max,
            "window_h": cfg.exception_window_h,
        }
        return [Want(EXCEPTION_RATE, "zone", "warn", detail)]
    return []


def rfid_overflow(f: Figures, cfg: AlertsConfig, open_: frozenset[Key]) -> list[Want]:
    """A reader reported it dropped reads; clears after ``rfid_overflow_clear_s``
    without another."""
    out: list[Want] = []
    for reader, o in f.overflows.items():
        if o.count and o.quiet_s < cfg.rfid_overflow_clear_s:
            detail = {"reader": reader, "overflows": o.count, "last": o.last_detail}
            out.append(Want(RFID_OVERFLOW, f"reader {reader}", "warn", detail))
    return out


def clock_jump(f: Figures, cfg: AlertsConfig, open_: frozenset[Key]) -> list[Want]:
    """The wall clock moved more than ``clock_jump_s`` against the monotonic
    clock between two evaluations; clears after ``clock_jump_clear_s`` without
    another jump."""
    if f.clock_jump_s is None or f.clock_quiet_s >= cfg.clock_jump_clear_s:
        return []
    detail = {"jump_s": round(f.clock_jump_s, 1), "threshold_s": cfg.clock_jump_s}
    return [Want(CLOCK_JUMP, "wall clock", "warn", detail)]


#: each rule under the config flag that turns it on
RULES: tuple[tuple[str, str, Rule], ...] = (
    (LOW_STOCK, "low_stock", low_stock),
    (DEVICE_OFFLINE, "device_offline", device_offline),
    (PRINTER_PAPER_OUT, "printer_paper_out", printer_paper_out),
    (BACKLOG_AGE, "backlog_age", backlog_age),
    (DISK_LOW, "disk_low", disk_low),
    (DISK_FILLING, "disk_filling", disk_filling),
    (EXCEPTION_RATE, "exception_rate", exception_rate),
    (RFID_OVERFLOW, "rfid_overflow", rfid_overflow),
    (CLOCK_JUMP, "clock_jump", clock_jump),
)


def evaluate(f: Figures, cfg: AlertsConfig, open_: frozenset[Key] = frozenset()) -> dict[Key, Want]:
    """Every alert that should be open now, by (kind, subject). A rule turned
    off (or ``enabled = false``) wants nothing: its open alerts clear."""
    wanted: dict[Key, Want] = {}
    if not cfg.enabled:
        return wanted
    for _, flag, rule in RULES:
        if getattr(cfg, flag):
            for w in rule(f, cfg, open_):
                wanted[w.key] = w
    return wanted


def jump_of(previous: tuple[float, float], now: tuple[float, float]) -> float:
    """How far the wall clock moved against the monotonic clock between two
    (monotonic, wall) readings, in seconds (signed)."""
    return (now[1] - previous[1]) - (now[0] - previous[0])
