"""Peak protection (edge.peak): the mode's thresholds and hysteresis on a fake
clock, and the assembled daemon entering and leaving it under a flood of real
scanner frames, its maintenance purge waiting meanwhile, logged once each way
and visible in /metrics."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from devices.events import DeviceEvent, ScanEvent
from edge.config import load_config
from edge.peak import PeakGuard
from edge.wiring import build_daemon
from simulators.serial_scanner import ScannerSimulator


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def feed(guard: PeakGuard, clock: Clock, per_s: int, seconds: int) -> None:
    for _ in range(seconds):
        for _ in range(per_s):
            guard.note()
        clock.t += 1.0


def test_enters_only_when_the_window_mean_reaches_the_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    guard = PeakGuard(rate_per_s=10, window_s=5, leave_ratio=0.5, clock=clock)
    caplog.set_level(logging.WARNING, logger="edge.peak")
    feed(guard, clock, 9, 20)  # just under the rate, for a long time
    assert not guard.active and not guard.defer("purge")
    feed(guard, clock, 30, 1)  # one second of 30: the window's mean reaches 10 at its 14th
    assert guard.active and guard.entered == 1
    assert guard.defer("purge") and guard.defer("batching") and guard.defer("purge")
    assert guard.deferred == {"purge": 2, "batching": 1}
    # 6 a second: above 10 * 0.5, so the mode holds (no flapping at the edge)
    feed(guard, clock, 6, 10)
    assert guard.active and guard.entered == 1
    feed(guard, clock, 4, 6)  # below 5 for a whole window
    assert not guard.defer("compaction")
    assert not guard.active and guard.entered == 1
    entered = [r for r in caplog.records if r.getMessage().startswith("peak mode:")]
    left = [r for r in caplog.records if r.getMessage().startswith("peak mode over")]
    assert len(entered) == 1 and len(left) == 1
    assert "purge 2" in left[0].getMessage()


def test_the_end_of_a_surge_is_seen_without_new_inflow() -> None:
    clock = Clock()
    guard = PeakGuard(rate_per_s=5, window_s=3, clock=clock)
    feed(guard, clock, 20, 3)
    assert guard.active
    clock.t += 10  # silence: no note() at all
    assert not guard.defer("dashboard")
    assert guard.rate() == 0.0


def test_disabled_guard_counts_but_never_defers() -> None:
    clock = Clock()
    guard = PeakGuard(rate_per_s=1, window_s=2, enabled=False, clock=clock)
    feed(guard, clock, 100, 5)
    assert guard.rate() > 1 and not guard.defer("purge") and guard.entered == 0


def test_bad_settings_and_unknown_work_are_refused() -> None:
    with pytest.raises(ValueError):
        PeakGuard(rate_per_s=0)
    with pytest.raises(ValueError):
        PeakGuard(rate_per_s=1, leave_ratio=1.5)
    with pytest.raises(ValueError, match="unknown kind"):
        PeakGuard(rate_per_s=1).defer("scans")


def test_metrics_show_the_mode_and_the_deferrals() -> None:
    clock = Clock()
    guard = PeakGuard(rate_per_s=2, window_s=2, clock=clock)
    registry = CollectorRegistry()
    registry.register(guard)
    feed(guard, clock, 10, 2)
    guard.defer("alerts")
    text = generate_latest(registry).decode()
    assert "pickedge_peak_mode 1.0" in text
    assert "pickedge_peak_entered_total 1.0" in text
    assert 'pickedge_peak_deferred_total{work="alerts"} 1.0' in text
    assert 'pickedge_peak_deferred_total{work="purge"} 0.0' in text
    assert "pickedge_inflow_per_second" in text


async def test_daemon_defers_its_purge_under_a_flood_of_scans(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    (tmp_path / "scrape.token").write_text("scrape-me\n")
    async with ScannerSimulator() as scanner:
        (tmp_path / "pe.toml").write_text(
            f"""
[box]
id = "peak-box"
[store]
path = "pe.db"
checkpoint_interval_s = 3600
[api]
port = 0
metrics_token_file = "scrape.token"
[peak]
rate_per_s = 20
window_s = 2
[[devices]]
id = "scanner-1"
driver = "serial-scanner"
role = "pack_station"
url = "{scanner.path}"
"""
        )
        daemon = build_daemon(load_config(tmp_path / "pe.toml", env={}))
        peak = daemon.parts["peak"]
        maintenance = daemon.parts["maintenance"]
        runner = asyncio.create_task(daemon.run(install_signals=False))
        api = daemon.parts["api"]
        scans: list[ScanEvent] = []
        connected, flooded = asyncio.Event(), asyncio.Event()

        def seen(event: DeviceEvent) -> None:
            if isinstance(event, ScanEvent):
                scans.append(event)
                if len(scans) == 150:
                    flooded.set()
            else:
                connected.set()

        daemon.parts["device_events"].listeners.append(seen)

        async def scrape() -> str:
            url = f"http://127.0.0.1:{api.bound_port}/metrics"
            headers = {"Authorization": "Bearer scrape-me"}
            async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
                return await resp.text()

        try:
            async with asyncio.timeout(30):
                await api.started.wait()
                await connected.wait()
                # 150 frames as fast as the pty takes them: far above 20 a second
                for i in range(150):
                    await scanner.send(f"0952123454321{i % 10}", "]E0")
                await flooded.wait()
                assert peak.active
                await maintenance.tick()
                assert maintenance.last_purge == {}  # the hourly purge waited
                assert peak.deferred["purge"] == 1
                during = await scrape()
                while peak.defer("purge"):  # noqa: ASYNC110 - the flood is over: wait out the window
                    await asyncio.sleep(0.2)
                await maintenance.tick()
                assert "tasks" in maintenance.last_purge  # and ran once the peak passed
                after = await scrape()
        finally:
            daemon.stop()
            await asyncio.wait_for(runner, 15)
    assert "pickedge_peak_mode 1.0" in during
    assert "pickedge_peak_mode 0.0" in after
    assert "pickedge_peak_entered_total 1.0" in after
    assert 'pickedge_peak_deferred_total{work="purge"}' in after
    messages = [r.getMessage() for r in caplog.records if r.name == "edge.peak"]
    assert sum(m.startswith("peak mode:") for m in messages) == 1
    assert sum(m.startswith("peak mode over") for m in messages) == 1
