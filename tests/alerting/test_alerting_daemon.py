"""The alert rules in the real daemon (edge.wiring): a serial scanner on a pty
that goes away and comes back, a ZPL printer simulator that runs out of paper
and gets a new roll; the cloud simulator receives each alert raised and
cleared, once each, through the daemon's own uploader."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devices.events import DeviceEvent, DeviceState, DeviceStateEvent
from edge.config import load_config
from edge.store import Store
from edge.wiring import build_daemon
from simulators.cloud import CloudSimulator
from simulators.printer import PrinterSimulator
from simulators.serial_scanner import ScannerSimulator

BOX = "alert-daemon-box"
SECRET = "alert-daemon-secret"
WAIT = 30.0  # generous: the suite shares the cores; nothing here is a timing claim


async def until(what: str, check: Callable[[], bool], within: float = WAIT) -> None:
    """Poll ``check`` until it holds (the daemon works on its own timers)."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the store has no event to await
            await asyncio.sleep(0.05)
    assert check(), what


def open_alert(store: Store, kind: str, subject: str) -> bool | None:
    """True while open, False once cleared, None when never raised."""
    rows = store.query(
        "SELECT cleared_ms FROM alerts WHERE kind = ? AND subject = ? ORDER BY id DESC LIMIT 1",
        (kind, subject),
    )
    return None if not rows else rows[0]["cleared_ms"] is None


def states_at_cloud(cloud: CloudSimulator, epoch: str, kind: str) -> list[tuple[str, Any]]:
    return [
        (e["data"]["subject"], e["data"].get("state"))
        for e in cloud.receiver.events(BOX, epoch)
        if e["type"] == "alert" and e["data"]["kind"] == kind
    ]


async def test_device_offline_and_paper_out_raised_and_cleared_through_the_daemon(
    tmp_path: Path,
) -> None:
    (tmp_path / "box.secret").write_text(SECRET + "\n")
    link = tmp_path / "scanner"
    async with (
        CloudSimulator(SECRET) as cloud,
        PrinterSimulator() as printer,
    ):
        scanner = ScannerSimulator(link=link)
        await scanner.start()
        try:
            (tmp_path / "pe.toml").write_text(
                f"""
[box]
id = "{BOX}"
secret_file = "box.secret"
[cloud]
url = "{cloud.url}"
[store]
path = "pe.db"
[api]
port = 0
[alerts]
interval_s = 0.1
device_offline_s = 0.5
disk_low = false
disk_filling = false
[[devices]]
id = "scanner-1"
driver = "serial-scanner"
role = "pick_zone"
url = "{link}"
[[devices]]
id = "printer-1"
driver = "zpl-printer"
role = "pick_zone"
url = "{printer.url}"
options = {{ poll_s = 0.1 }}
"""
            )
            daemon = build_daemon(load_config(tmp_path / "pe.toml", env={}))
            store = daemon.store
            statuses: list[DeviceStateEvent] = []

            def seen(event: DeviceEvent) -> None:
                if isinstance(event, DeviceStateEvent):
                    statuses.append(event)

            daemon.parts["device_events"].listeners.append(seen)
            runner = asyncio.create_task(daemon.run(install_signals=False))
            try:
                await until(
                    "both devices connected",
                    lambda: (
                        {e.device_id for e in statuses if e.state is DeviceState.CONNECTED}
                        == {"scanner-1", "printer-1"}
                    ),
                )

                # the printer runs out of paper, then gets a new roll
                printer.set_condition("paper-out", True)
                await until(
                    "paper out raised",
                    lambda: open_alert(store, "printer_paper_out", "printer printer-1") is True,
                )
                printer.load_paper()
                await until(
                    "paper out cleared",
                    lambda: open_alert(store, "printer_paper_out", "printer printer-1") is False,
                )

                # the scanner's cable is pulled (its pty closes), then it is back
                await scanner.stop()
                await until(
                    "scanner offline raised",
                    lambda: open_alert(store, "device_offline", "device scanner-1") is True,
                )
                assert open_alert(store, "device_offline", "device printer-1") is None
                scanner = ScannerSimulator(link=link)
                await scanner.start()
                await until(
                    "scanner offline cleared",
                    lambda: open_alert(store, "device_offline", "device scanner-1") is False,
                )

                # the daemon's uploader takes both episodes to the cloud
                epoch = store.epoch
                await until(
                    "the cloud holds both episodes",
                    lambda: (
                        len(states_at_cloud(cloud, epoch, "device_offline")) == 2
                        and len(states_at_cloud(cloud, epoch, "printer_paper_out")) == 2
                    ),
                )
                assert states_at_cloud(cloud, epoch, "device_offline") == [
                    ("device scanner-1", "raised"),
                    ("device scanner-1", "cleared"),
                ]
                assert states_at_cloud(cloud, epoch, "printer_paper_out") == [
                    ("printer printer-1", "raised"),
                    ("printer printer-1", "cleared"),
                ]
                rows = store.query("SELECT kind, cleared_ms FROM alerts ORDER BY id")
                assert [r["kind"] for r in rows] == ["printer_paper_out", "device_offline"]
                assert all(r["cleared_ms"] is not None for r in rows)
            finally:
                daemon.stop()
                await asyncio.wait_for(runner, 15)
        finally:
            await scanner.stop()
