"""The device supervisor keeps the ``devices`` table (issue 13): a serial
scanner on a real pty connects, is heard from, goes away, and the daemon stops
— each state with since when, last_seen written on a timer, never per frame."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from common.backoff import Backoff
from devices.driver import DeviceSpec, MqttSettings
from devices.events import DeviceEvent, DeviceRole, ScanEvent
from edge.device_supervisor import DeviceSupervisor
from edge.store import Store
from edge.store import devices as device_table
from simulators.serial_scanner import ScannerSimulator
from tests.support.mosquitto import until


def rows(store: Store) -> dict[str, device_table.DeviceRow]:
    return {r.id: r for r in device_table.devices(store.reader().conn)}


async def test_the_devices_table_follows_a_scanner(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "box.db", box_id="box-devices")
    # a device configured no more: its row goes at start
    store.run(lambda tx: device_table.configure(tx, [("old-reader", "impinj-iot", "dock_door")], 1))
    writes: list[str] = []
    store._conn.set_trace_callback(  # every statement the writer runs
        lambda sql: writes.append(sql) if "devices" in sql and "UPDATE" in sql else None
    )
    scans: list[ScanEvent] = []

    async def on_event(event: DeviceEvent) -> None:
        if isinstance(event, ScanEvent):
            scans.append(event)

    async with ScannerSimulator() as scanner:
        spec = DeviceSpec(
            id="pick-scanner", driver="serial-scanner", role=DeviceRole.PICK_ZONE, url=scanner.path
        )
        started_ms = int(time.time() * 1000)
        sup = DeviceSupervisor(
            [spec],
            mqtt=MqttSettings(),
            on_event=on_event,
            backoff=Backoff(initial_s=5.0, cap_s=5.0),  # it stays away once gone
            store=store,
            seen_interval_s=0.2,
        )
        task = asyncio.create_task(sup.run())
        try:
            async with asyncio.timeout(15):
                await until(lambda: rows(store).get("pick-scanner", None) is not None)
                assert set(rows(store)) == {"pick-scanner"}
                await until(lambda: rows(store)["pick-scanner"].state == "connected")
                row = rows(store)["pick-scanner"]
                assert (row.driver, row.role) == ("serial-scanner", "pick_zone")
                assert row.state_since_ms is not None and row.state_since_ms >= started_ms
                connected_since = row.state_since_ms
                first_seen = row.last_seen_ms or 0  # the port opened counts as heard from

                # a burst of scans: last_seen is written by the timer, not per frame
                for n in range(50):
                    await scanner.send(f"CODE-{n}")
                await until(lambda: len(scans) == 50)
                await asyncio.sleep(0.01)
                await until(lambda: (rows(store)["pick-scanner"].last_seen_ms or 0) > first_seen)
                row = rows(store)["pick-scanner"]
                assert row.last_seen_ms is not None
                assert row.last_seen_ms >= connected_since
                assert row.state == "connected" and row.state_since_ms == connected_since
                assert len(writes) < 10, writes  # not one write per scan

                # the scanner goes away
                await scanner.stop()
                await until(lambda: rows(store)["pick-scanner"].state == "disconnected")
                gone = rows(store)["pick-scanner"]
                assert gone.state_since_ms is not None and gone.state_since_ms >= connected_since
                assert gone.last_seen_ms == row.last_seen_ms
                snap = sup.snapshot()["pick-scanner"]
                assert snap["state"] == "disconnected" and snap["failures"] == 1
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    stopped = rows(store)["pick-scanner"]
    assert stopped.state == "stopped" and stopped.state_since_ms is not None
    assert stopped.state_since_ms >= gone.state_since_ms
    store.close()


async def test_a_device_never_connected_is_unavailable(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "box.db", box_id="box-devices")

    async def on_event(event: DeviceEvent) -> None:
        pass

    spec = DeviceSpec(
        id="missing",
        driver="serial-scanner",
        role=DeviceRole.PACK_STATION,
        url=str(tmp_path / "no-such-tty"),
    )
    sup = DeviceSupervisor(
        [spec],
        mqtt=MqttSettings(),
        on_event=on_event,
        backoff=Backoff(initial_s=0.05, cap_s=0.1),
        store=store,
    )
    task = asyncio.create_task(sup.run())
    try:
        async with asyncio.timeout(10):
            await until(lambda: rows(store).get("missing") is not None)
            await until(lambda: rows(store)["missing"].state == "unavailable")
            await until(lambda: sup.snapshot()["missing"]["failures"] >= 3)
            # retries change nothing in the table: the state and its since stay
            row = rows(store)["missing"]
            assert row.state == "unavailable" and row.last_seen_ms is None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    store.close()
