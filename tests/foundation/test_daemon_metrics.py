"""The assembled daemon: every component up, /metrics behind its scrape token
with device, component, outbox and API figures, and a clean stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from devices.events import DeviceEvent, ScanEvent
from edge.config import load_config
from edge.wiring import build_daemon
from simulators.serial_scanner import ScannerSimulator


async def test_daemon_serves_metrics_with_token(tmp_path: Path) -> None:
    (tmp_path / "box.secret").write_text("box-secret\n")
    (tmp_path / "scrape.token").write_text("scrape-me\n")
    async with ScannerSimulator() as scanner:
        (tmp_path / "pe.toml").write_text(
            f"""
[box]
id = "metrics-box"
secret_file = "box.secret"
[cloud]
url = "http://127.0.0.1:9"
[store]
path = "pe.db"
[api]
port = 0
metrics_token_file = "scrape.token"
[[devices]]
id = "pack-scanner"
driver = "serial-scanner"
role = "pack_station"
url = "{scanner.path}"
"""
        )
        cfg = load_config(tmp_path / "pe.toml", env={})
        daemon = build_daemon(cfg)
        runner = asyncio.create_task(daemon.run(install_signals=False))
        api = daemon.parts["api"]
        connected, scanned = asyncio.Event(), asyncio.Event()

        def seen(event: DeviceEvent) -> None:
            (scanned if isinstance(event, ScanEvent) else connected).set()

        daemon.parts["device_events"].listeners.append(seen)
        async with asyncio.timeout(15):
            await api.started.wait()
            await connected.wait()
            await scanner.send("09521234543213", "]E0")
            await scanned.wait()
        url = f"http://127.0.0.1:{api.bound_port}/metrics"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["code"] == "unauthorized"
            async with http.get(url, headers={"Authorization": "Bearer wrong"}) as resp:
                assert resp.status == 401
            async with http.get(url, headers={"Authorization": "Bearer scrape-me"}) as resp:
                assert resp.status == 200
                text = await resp.text()
        daemon.stop()
        await asyncio.wait_for(runner, 15)
    assert 'pickedge_device_frames_total{device="pack-scanner"} 1.0' in text
    assert 'pickedge_device_connected{device="pack-scanner"} 1.0' in text
    assert 'pickedge_component_running{component="api"} 1.0' in text
    assert 'pickedge_component_running{component="devices"} 1.0' in text
    assert "pickedge_outbox_backlog_events 0.0" in text
    assert "pickedge_sync_backlog_events 0.0" in text
    assert "pickedge_sync_oldest_unacked_age_seconds 0.0" in text
    assert 'pickedge_component_running{component="uploader"} 1.0' in text
    assert "pickedge_api_bad_requests_total" in text
    assert "pickedge_device_messages_redelivered_total 0.0" in text
    assert "# TYPE pickedge_dock_reads_total counter" in text
    assert "scrape-me" not in text and "box-secret" not in text
