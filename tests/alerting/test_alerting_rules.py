"""The alert rules as a table: figures (and what is open) in, the (kind,
subject) that should be open out, with each rule's hysteresis."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from edge.alerting import rules
from edge.alerting.rules import (
    DeviceFigure,
    Disk,
    Figures,
    Key,
    Overflow,
    SkuStock,
    evaluate,
    jump_of,
)
from edge.config import AlertsConfig
from edge.disk import fill_rate

CFG = AlertsConfig(
    low_stock_default=10,
    low_stock_skus={"SKU-B": 4, "SKU-OFF": 0},
    low_stock_margin=2,
    device_offline_s=60.0,
    backlog_age_min=15.0,
    disk_free_pct=10.0,
    disk_margin_pct=2.0,
    disk_full_h=24.0,
    exception_min_tasks=50,
    rfid_overflow_clear_s=300.0,
    clock_jump_s=60.0,
    clock_jump_clear_s=600.0,
)
GB = 1_000_000_000


def stock(sku: str, on_hand: int) -> dict[str, SkuStock]:
    return {sku: SkuStock(sku, on_hand, (("A-01", on_hand),))}


def device(connected: bool, down: float | None) -> list[DeviceFigure]:
    return [DeviceFigure("scan-1", "serial-scanner", "pack_station", connected, down)]


def disk(free_pct: float, decline: float | None = None, total: int = 100 * GB) -> Disk:
    return Disk("/var/lib/pickedge", int(total * free_pct / 100), total, decline)


F = Figures
# (name, figures, open before, what should be open)
TABLE: list[tuple[str, Figures, set[Key], set[Key]]] = [
    ("nothing to say", F(), set(), set()),
    ("stock under the default", F(stock=stock("SKU-A", 9)), set(), {("low_stock", "sku SKU-A")}),
    ("stock at the default", F(stock=stock("SKU-A", 10)), set(), set()),
    # hysteresis: open stays open under threshold + margin (12), clears at it
    (
        "stock hovering, open",
        F(stock=stock("SKU-A", 11)),
        {("low_stock", "sku SKU-A")},
        {("low_stock", "sku SKU-A")},
    ),
    ("stock back at +margin", F(stock=stock("SKU-A", 12)), {("low_stock", "sku SKU-A")}, set()),
    ("per-SKU override", F(stock=stock("SKU-B", 5)), set(), set()),
    ("per-SKU override, under", F(stock=stock("SKU-B", 3)), set(), {("low_stock", "sku SKU-B")}),
    ("a SKU turned off", F(stock=stock("SKU-OFF", 0)), set(), set()),
    ("device down, not long", F(devices=device(False, 59.0)), set(), set()),
    (
        "device down long",
        F(devices=device(False, 60.0)),
        set(),
        {("device_offline", "device scan-1")},
    ),
    ("device never lost", F(devices=device(False, None)), set(), set()),
    # after a restart the supervisor has not timed it yet: an open alert stays
    (
        "device still down after a restart",
        F(devices=device(False, None)),
        {("device_offline", "device scan-1")},
        {("device_offline", "device scan-1")},
    ),
    ("device back", F(devices=device(True, None)), {("device_offline", "device scan-1")}, set()),
    ("device no longer configured", F(), {("device_offline", "device scan-1")}, set()),
    ("printer ready", F(printers={"p1": "ready"}), set(), set()),
    (
        "printer paper out",
        F(printers={"p1": "paper out, head open"}),
        set(),
        {("printer_paper_out", "printer p1")},
    ),
    (
        "printer not heard from since, open",
        F(),
        {("printer_paper_out", "printer p1")},
        {("printer_paper_out", "printer p1")},
    ),
    (
        "printer loaded",
        F(printers={"p1": "head open"}),
        {("printer_paper_out", "printer p1")},
        set(),
    ),
    ("backlog young", F(backlog=5, oldest_unsent_s=899.0), set(), set()),
    ("backlog old", F(backlog=5, oldest_unsent_s=900.0), set(), {("backlog_age", "outbox")}),
    ("backlog drained", F(), {("backlog_age", "outbox")}, set()),
    ("disk fine", F(disk=disk(50.0)), set(), set()),
    ("disk low", F(disk=disk(9.0)), set(), {("disk_low", "disk /var/lib/pickedge")}),
    (
        "disk hovering, open",
        F(disk=disk(11.0)),
        {("disk_low", "disk /var/lib/pickedge")},
        {("disk_low", "disk /var/lib/pickedge")},
    ),
    ("disk freed", F(disk=disk(12.0)), {("disk_low", "disk /var/lib/pickedge")}, set()),
    # 50 GB free, falling 1 MB/s: 13.9 h to full
    (
        "disk filling fast",
        F(disk=disk(50.0, 1e6)),
        set(),
        {("disk_filling", "disk /var/lib/pickedge")},
    ),
    # 50 GB free, falling 0.5 MB/s: 27.8 h: not raised, but < 30 h keeps it
    (
        "disk filling slower, open",
        F(disk=disk(50.0, 5e5)),
        {("disk_filling", "disk /var/lib/pickedge")},
        {("disk_filling", "disk /var/lib/pickedge")},
    ),
    ("disk filling slower", F(disk=disk(50.0, 5e5)), set(), set()),
    ("disk steady", F(disk=disk(50.0, 0.0)), {("disk_filling", "disk /var/lib/pickedge")}, set()),
    (
        "disk rate unknown, open",
        F(disk=disk(50.0)),
        {("disk_filling", "disk /var/lib/pickedge")},
        {("disk_filling", "disk /var/lib/pickedge")},
    ),
    ("exceptions, too few tasks", F(tasks_finished=49, tasks_with_exception=49), set(), set()),
    ("exceptions at 8 %", F(tasks_finished=100, tasks_with_exception=8), set(), set()),
    (
        "exceptions at 9 %",
        F(tasks_finished=100, tasks_with_exception=9),
        set(),
        {("exception_rate_high", "zone")},
    ),
    (
        "exceptions at 7.5 %, open",
        F(tasks_finished=200, tasks_with_exception=15),
        {("exception_rate_high", "zone")},
        {("exception_rate_high", "zone")},
    ),
    (
        "exceptions at 7 %, open",
        F(tasks_finished=100, tasks_with_exception=7),
        {("exception_rate_high", "zone")},
        set(),
    ),
    (
        "overflow now",
        F(overflows={"r1": Overflow(1, "reader purged 3 events", 0.0)}),
        set(),
        {("rfid_overflow", "reader r1")},
    ),
    (
        "overflow long ago",
        F(overflows={"r1": Overflow(2, "x", 300.0)}),
        {("rfid_overflow", "reader r1")},
        set(),
    ),
    (
        "clock jumped",
        F(clock_jump_s=-3600.0, clock_quiet_s=10.0),
        set(),
        {("clock_jump", "wall clock")},
    ),
    (
        "clock quiet since",
        F(clock_jump_s=-3600.0, clock_quiet_s=600.0),
        {("clock_jump", "wall clock")},
        set(),
    ),
]


@pytest.mark.parametrize(
    ("name", "figures", "before", "expected"), TABLE, ids=[t[0] for t in TABLE]
)
def test_the_rules(name: str, figures: Figures, before: set[Key], expected: set[Key]) -> None:
    assert set(evaluate(figures, CFG, frozenset(before))) == expected


def test_a_rule_turned_off_wants_nothing_and_enabled_false_turns_all_off() -> None:
    figures = F(stock=stock("SKU-A", 0), backlog=1, oldest_unsent_s=10_000.0)
    assert set(evaluate(figures, CFG)) == {("low_stock", "sku SKU-A"), ("backlog_age", "outbox")}
    assert set(evaluate(figures, dataclasses.replace(CFG, low_stock=False))) == {
        ("backlog_age", "outbox")
    }
    assert evaluate(figures, dataclasses.replace(CFG, enabled=False)) == {}


def test_low_stock_detail_carries_the_replenishment_hint() -> None:
    figures = F(stock={"SKU-A": SkuStock("SKU-A", 7, (("B-02", 5), ("A-01", 2)))})
    [want] = evaluate(figures, CFG).values()
    detail: dict[str, Any] = want.detail
    assert (want.kind, want.severity) == ("low_stock", "warn")
    # back to threshold x 2 = 20: 13 units, to the emptiest location first
    assert detail["on_hand"] == 7 and detail["threshold"] == 10 and detail["target"] == 20
    assert detail["replenish"] == 13
    assert detail["locations"] == [{"location": "A-01", "qty": 2}, {"location": "B-02", "qty": 5}]


def test_a_full_disk_is_crit() -> None:
    [want] = evaluate(F(disk=disk(0.0)), CFG).values()
    assert (want.kind, want.severity) == ("disk_low", "crit")


def test_every_kind_has_a_rule_and_a_reason_to_clear() -> None:
    assert {kind for kind, _, _ in rules.RULES} == set(rules.KINDS)
    assert all(hasattr(CFG, flag) for _, flag, _ in rules.RULES)


@pytest.mark.parametrize(
    ("samples", "rate"),
    [
        ([], None),
        ([(0.0, 100), (1.0, 90)], None),  # two points: not enough
        ([(0.0, 100), (10.0, 90), (20.0, 80)], 1.0),
        ([(0.0, 80), (10.0, 90), (20.0, 100)], -1.0),  # freeing space
        ([(0.0, 100), (10.0, 100), (20.0, 100)], 0.0),
        ([(5.0, 100), (5.0, 90), (5.0, 80)], None),  # no time passed
    ],
)
def test_fill_rate(samples: list[tuple[float, int]], rate: float | None) -> None:
    got = fill_rate(samples)
    assert got == pytest.approx(rate) if rate is not None else got is None


def test_hours_to_full() -> None:
    assert disk(50.0).hours_to_full is None
    assert disk(50.0, 0.0).hours_to_full == math.inf
    assert disk(50.0, 50 * GB / 3600).hours_to_full == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("before", "after", "jump"),
    [
        ((100.0, 1_000.0), (110.0, 1_010.0), 0.0),  # both moved 10 s
        ((100.0, 1_000.0), (110.0, 4_610.0), 3600.0),  # wall forward an hour
        ((100.0, 1_000.0), (110.0, 910.0), -100.0),  # wall back
    ],
)
def test_jump_of(before: tuple[float, float], after: tuple[float, float], jump: float) -> None:
    assert jump_of(before, after) == pytest.approx(jump)
