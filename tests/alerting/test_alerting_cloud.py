"""Each alert rule raised and cleared on a real store, and the cloud simulator
receiving both ``alert`` events (sync-v1: ``state`` raised, then cleared)
through the real uploader.

The engine's inputs that are not in the store — the device supervisor's
snapshot, the device events, the disk's free space, the two clocks — are
handed to it by the test, so nothing here waits on the wall clock.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloud_sync.client import SyncClient
from cloud_sync.events import StockDelta, StockReason
from cloud_sync.uploader import Uploader
from devices.events import DeviceState, DeviceStateEvent
from edge.alerting import AlertEngine, Changes
from edge.config import AlertsConfig, ShippingConfig
from edge.maintenance import Maintenance
from edge.shipping.sscc import LOW_ALERT, Allocator, configure
from edge.store import Store, Transaction
from edge.store.db import now_ms
from edge.store.sync_state import StoreOutbox
from edge.store.syncmark import SyncMark
from simulators.cloud import CloudSimulator

BOX = "alert-box"
SECRET = "alerting-shared-secret"
GB = 1_000_000_000
CFG = AlertsConfig(
    interval_s=0.05,
    device_offline_s=30.0,
    backlog_age_min=15.0,
    disk_window_s=100.0,
    exception_min_tasks=50,
    rfid_overflow_clear_s=300.0,
    clock_jump_s=60.0,
    clock_jump_clear_s=600.0,
)

#: SKU-1 watched: under 10 units it alerts (a listed SKU with no stock is at 0)
LOW_STOCK_CFG = dataclasses.replace(CFG, low_stock_skus={"SKU-1": 10})


@dataclass
class Rig:
    """A store, the engine with the test's inputs, and the cloud."""

    store: Store
    engine: AlertEngine
    cloud: CloudSimulator
    uploader: Uploader
    mono: float = 1_000.0
    wall: float = field(default_factory=time.time)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    disk: list[int] = field(default_factory=lambda: [50 * GB, 100 * GB])

    def advance(self, seconds: float) -> None:
        """Time passes: both clocks move together (no jump)."""
        self.mono += seconds
        self.wall += seconds

    async def tick(self) -> Changes:
        return await self.engine.tick()

    def write(self, fn: Callable[[Transaction], object]) -> None:
        with self.store.transaction() as tx:
            fn(tx)

    def at_cloud(self, kind: str) -> list[dict[str, Any]]:
        return [
            e["data"]
            for e in self.cloud.receiver.events(BOX, self.store.epoch)
            if e["type"] == "alert" and e["data"]["kind"] == kind
        ]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with CloudSimulator(SECRET) as cloud, SyncClient(cloud.url, BOX, SECRET) as client:
        with Store.open(tmp_path / "box.db", box_id=BOX) as store:
            up = Uploader(
                StoreOutbox(store),
                client,
                backoff_min_s=0.005,
                backoff_max_s=0.03,
                poll_interval_s=0.05,
                rng=random.Random(7),
            )
            holder: list[Rig] = []
            engine = AlertEngine(
                store,
                CFG,
                devices=lambda: holder[0].devices,
                printers={"printer-1"},
                disk=lambda: (holder[0].disk[0], holder[0].disk[1]),
                monotonic=lambda: holder[0].mono,
                wall=lambda: holder[0].wall,
            )
            r = Rig(store, engine, cloud, up)
            holder.append(r)
            yield r


def stock_row(sku: str, location: str, qty: int) -> Callable[[Transaction], object]:
    def fn(tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO stock (sku, location, qty) VALUES (?, ?, ?) "
            "ON CONFLICT (sku, location, lot) DO UPDATE SET qty = excluded.qty",
            (sku, location, qty),
        )

    return fn


def finished_tasks(first: int, n: int, exceptions: int) -> Callable[[Transaction], object]:
    def fn(tx: Transaction) -> None:
        at = now_ms()
        for i in range(first, first + n):
            tx.execute(
                "INSERT INTO tasks (task, state, received_ms, finished_ms) "
                "VALUES (?, 'done', ?, ?)",
                (f"T-{i}", at, at),
            )
            if i - first < exceptions:
                tx.execute(
                    "INSERT INTO task_exceptions (task, kind, at_ms) VALUES (?, 'short', ?)",
                    (f"T-{i}", at),
                )

    return fn


def delta(qty: int) -> StockDelta:
    return StockDelta(
        sku="SKU-1", location="A-01", qty=qty, reason=StockReason.ADJUST, ref=None, lot=None
    )


def event(device: str, state: DeviceState, detail: str) -> DeviceStateEvent:
    return DeviceStateEvent(device, state, detail, time.time())


# Each scenario: what makes the rule true (and the ticks it takes), then what
# makes it false again. The rig's first tick has already run.
Step = Callable[[Rig], Awaitable[None]]


async def low_stock_up(r: Rig) -> None:
    r.engine.cfg = LOW_STOCK_CFG
    r.write(stock_row("SKU-1", "A-01", 3))
    r.write(stock_row("SKU-1", "B-07", 1))


async def low_stock_down(r: Rig) -> None:
    r.write(stock_row("SKU-1", "A-01", 11))  # 12: threshold + margin (2)


async def offline_up(r: Rig) -> None:
    r.devices["scan-1"] = {"driver": "serial-scanner", "role": "pick_zone", "connected": False}
    r.devices["scan-1"]["down_for_s"] = 29.0
    assert await r.tick() == Changes()  # not yet
    r.devices["scan-1"]["down_for_s"] = 31.0


async def offline_down(r: Rig) -> None:
    r.devices["scan-1"].update(connected=True, down_for_s=None)


async def paper_up(r: Rig) -> None:
    r.engine.observe(event("printer-1", DeviceState.STATUS, "paper out"))
    r.engine.observe(event("scan-9", DeviceState.STATUS, "paper out"))  # not a printer


async def paper_down(r: Rig) -> None:
    r.engine.observe(event("printer-1", DeviceState.DISCONNECTED, "gone"))
    assert await r.tick() == Changes()  # unknown: stays open
    r.engine.observe(event("printer-1", DeviceState.STATUS, "ready"))


async def backlog_up(r: Rig) -> None:
    # an event left unsent (no cloud), its stamp aged by hand: the clocks
    # stay where the events the alerts write are stamped
    r.write(lambda tx: tx.append(delta(-1)))
    r.write(lambda tx: tx.execute("UPDATE outbox SET at_ms = at_ms - ?", (14 * 60_000,)))
    assert await r.tick() == Changes()
    r.write(lambda tx: tx.execute("UPDATE outbox SET at_ms = at_ms - ?", (61_000,)))


async def backlog_down(r: Rig) -> None:
    await r.uploader.send_all()  # the cloud is back: the backlog drains


async def disk_low_up(r: Rig) -> None:
    r.disk[0] = 9 * GB


async def disk_low_down(r: Rig) -> None:
    r.disk[0] = 11 * GB
    assert await r.tick() == Changes()  # hovering under 10 % + 2 %
    r.disk[0] = 12 * GB


async def filling_up(r: Rig) -> None:
    # 1 GB every 10 s: 50 GB gone in ~8 min; the rate is known once the
    # samples span a quarter of the window (25 s)
    for _ in range(2):
        r.advance(10)
        r.disk[0] -= GB
        assert await r.tick() == Changes()
    r.advance(10)
    r.disk[0] -= GB


async def filling_down(r: Rig) -> None:
    for _ in range(12):  # steady from now on: the falling samples age out of the window
        r.advance(10)
        changes = await r.tick()
        assert not changes.raised
        if changes.cleared:
            return
    raise AssertionError("disk_filling never cleared")


async def exceptions_up(r: Rig) -> None:
    r.write(finished_tasks(0, 40, exceptions=5))
    assert await r.tick() == Changes()  # 40 tasks: too few to judge
    r.write(finished_tasks(40, 20, exceptions=1))  # 6 of 60: 10 %


async def exceptions_down(r: Rig) -> None:
    r.write(finished_tasks(60, 40, exceptions=0))  # 6 of 100: 6 %


async def overflow_up(r: Rig) -> None:
    r.engine.observe(event("reader-1", DeviceState.OVERFLOW, "reader purged 40 events"))


async def overflow_down(r: Rig) -> None:
    r.advance(299)
    assert await r.tick() == Changes()
    r.advance(2)


async def jump_up(r: Rig) -> None:
    r.wall -= 3600  # the wall clock set back an hour


async def jump_down(r: Rig) -> None:
    r.advance(599)
    assert await r.tick() == Changes()
    r.advance(2)


SCENARIOS: dict[str, tuple[str, Step, Step]] = {
    "low_stock": ("sku SKU-1", low_stock_up, low_stock_down),
    "device_offline": ("device scan-1", offline_up, offline_down),
    "printer_paper_out": ("printer printer-1", paper_up, paper_down),
    "backlog_age": ("outbox", backlog_up, backlog_down),
    "disk_low": ("disk ?", disk_low_up, disk_low_down),
    "disk_filling": ("disk ?", filling_up, filling_down),
    "exception_rate_high": ("zone", exceptions_up, exceptions_down),
    "rfid_overflow": ("reader reader-1", overflow_up, overflow_down),
    "clock_jump": ("wall clock", jump_up, jump_down),
}


def test_every_rule_has_a_scenario() -> None:
    from edge.alerting.rules import KINDS

    assert set(SCENARIOS) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(SCENARIOS))
async def test_each_rule_is_raised_once_and_cleared_once_and_the_cloud_hears_both(
    rig: Rig, kind: str
) -> None:
    subject, up, down = SCENARIOS[kind]
    subject = subject.replace("?", str(rig.store.path.parent))
    assert await rig.tick() == Changes()  # nothing to say at first
    await up(rig)
    assert (await rig.tick()).raised == ((kind, subject),)
    assert await rig.tick() == Changes()  # still true: not raised again
    [row] = rig.store.query("SELECT kind, subject, cleared_ms FROM alerts")
    assert (row["kind"], row["subject"], row["cleared_ms"]) == (kind, subject, None)
    await rig.uploader.send_all()

    await down(rig)
    if not rig.engine.last.cleared:
        assert (await rig.tick()).cleared == ((kind, subject),)
    assert await rig.tick() == Changes()  # cleared once
    await rig.uploader.send_all()

    sent = rig.at_cloud(kind)
    assert [(a["subject"], a["state"]) for a in sent] == [
        (subject, "raised"),
        (subject, "cleared"),
    ]
    assert sent[1]["detail"]["cleared"]  # why, for the person reading it
    assert [r["cleared_ms"] is not None for r in rig.store.query("SELECT * FROM alerts")] == [True]
    if kind == "low_stock":
        detail = sent[0]["detail"]
        assert detail["on_hand"] == 4 and detail["threshold"] == 10
        assert detail["replenish"] == 16  # back to 2 x threshold
        assert [x["location"] for x in detail["locations"]] == ["B-07", "A-01"]


async def test_peak_mode_holds_the_low_priority_rules(rig: Rig) -> None:
    peak = [True]
    rig.engine.cfg = LOW_STOCK_CFG
    rig.engine.defer = lambda work: peak[0]
    rig.write(stock_row("SKU-1", "A-01", 1))
    rig.disk[0] = 5 * GB
    # in peak mode low stock waits; the disk does not
    assert (await rig.tick()).raised == (("disk_low", f"disk {rig.store.path.parent}"),)
    peak[0] = False
    assert (await rig.tick()).raised == (("low_stock", "sku SKU-1"),)
    rig.write(stock_row("SKU-1", "A-01", 50))
    peak[0] = True
    assert await rig.tick() == Changes()  # held open while the surge lasts
    peak[0] = False
    assert (await rig.tick()).cleared == (("low_stock", "sku SKU-1"),)


async def test_a_restart_neither_raises_again_nor_forgets_to_clear(rig: Rig) -> None:
    rig.engine.cfg = LOW_STOCK_CFG
    rig.write(stock_row("SKU-1", "A-01", 1))
    assert len((await rig.tick()).raised) == 1
    again = AlertEngine(rig.store, LOW_STOCK_CFG, disk=lambda: (50 * GB, 100 * GB))
    assert await again.tick() == Changes()
    rig.write(stock_row("SKU-1", "A-01", 50))
    assert (await again.tick()).cleared == (("low_stock", "sku SKU-1"),)


async def test_turning_the_rules_off_clears_what_they_raised(rig: Rig) -> None:
    rig.disk[0] = 5 * GB
    assert len((await rig.tick()).raised) == 1
    rig.engine.cfg = dataclasses.replace(CFG, enabled=False)
    assert (await rig.tick()).cleared == (("disk_low", f"disk {rig.store.path.parent}"),)


async def test_sscc_range_low_is_raised_and_cleared_and_the_cloud_hears_both(rig: Rig) -> None:
    # not a rule of the engine: raised where serials are taken, cleared by a new range
    short = ShippingConfig(gs1_prefix="0614141", sscc_first=1, sscc_last=12, sscc_low=10)
    SyncMark(rig.store).reconcile()
    rig.store.run(lambda tx: configure(tx, short))
    take = Allocator(short)
    for _ in range(3):  # 9 left: under 10
        rig.store.run(lambda tx: take(tx, now=now_ms()))
    await rig.uploader.send_all()
    rig.store.run(lambda tx: configure(tx, dataclasses.replace(short, sscc_last=999)))
    await rig.uploader.send_all()
    sent = rig.at_cloud(LOW_ALERT)
    assert [a["state"] for a in sent] == ["raised", "cleared"]
    assert sent[0]["subject"] == sent[1]["subject"]


async def test_backlog_high_clears_upstream_too(rig: Rig) -> None:
    for n in range(3):
        rig.write(lambda tx, n=n: tx.append(delta(n + 1)))
    maintenance = Maintenance(rig.store, interval_s=60, warn_backlog=3)
    await maintenance.tick()
    await rig.uploader.send_all()  # drains it
    await maintenance.tick()
    await rig.uploader.send_all()
    assert [a["state"] for a in rig.at_cloud("backlog_high")] == ["raised", "cleared"]
