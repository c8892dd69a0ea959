"""DeviceSupervisor: independent devices, back-off, availability logged once,
counters, clean cancellation — with fake drivers and with a real broker restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from common.backoff import Backoff
from devices import registry
from devices.driver import DeviceSpec, DeviceStats, Emit, MqttSettings
from devices.errors import DeviceDisconnectedError
from devices.events import DeviceRole, DeviceState, DeviceStateEvent, ScanEvent
from edge.device_supervisor import DeviceSupervisor
from simulators.rfid_mqtt import ImpinjReaderSim, MqttScannerSim
from tests.support.mosquitto import Collector, MosquittoBroker, until

FAST = Backoff(initial_s=0.01, cap_s=0.05)


class FlakyDriver:
    """Fails ``fail_times`` times (unplugged, or a bug), then works until cancelled."""

    def __init__(self, spec: DeviceSpec, *, mqtt: MqttSettings) -> None:
        self.spec = spec
        self.stats = DeviceStats()
        self.calls = 0

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        pass

    async def run(self, emit: Emit) -> None:
        self.calls += 1
        opts = self.spec.options
        if self.calls <= int(opts.get("fail_times", 0)):
            if opts.get("bug"):
                raise RuntimeError("driver bug")
            raise DeviceDisconnectedError("/dev/ttyUSB0 unplugged")
        self.stats.connected = True
        try:
            await emit(ScanEvent(self.spec.id, f"hello-{self.calls}", None, 0.0))
            self.stats.events += 1
            if opts.get("drop_after_emit"):
                await asyncio.sleep(0.3)  # long enough for the watcher to see it up
                raise DeviceDisconnectedError("unplugged again")
            await asyncio.Event().wait()
        finally:
            self.stats.connected = False


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.DRIVERS, "flaky", f"{__name__}:FlakyDriver")


def spec(device_id: str, **options: Any) -> DeviceSpec:
    return DeviceSpec(id=device_id, driver="flaky", role=DeviceRole.PACK_STATION, options=options)


def device_logs(caplog: pytest.LogCaptureFixture, device_id: str) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "edge.device_supervisor"
        and r.levelno >= logging.INFO
        and f"device {device_id} " in r.getMessage()
    ]


async def test_retries_with_backoff_and_logs_once(
    flaky: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge.device_supervisor")
    col = Collector()
    sup = DeviceSupervisor(
        [spec("s1", fail_times=6), spec("s2")], mqtt=MqttSettings(), on_event=col.emit, backoff=FAST
    )
    task = asyncio.create_task(sup.run())
    await col.wait(lambda ev: any(isinstance(e, ScanEvent) and e.device_id == "s1" for e in ev))
    await until(lambda: sup.snapshot()["s1"]["available"])
    s1 = device_logs(caplog, "s1")
    assert [level for level, _ in s1] == [logging.WARNING, logging.INFO]
    assert "unavailable" in s1[0][1] and "unplugged" in s1[0][1]
    assert "back after" in s1[1][1] and "6 retries" in s1[1][1]
    # s2 never failed: connected once, unaffected by s1.
    assert device_logs(caplog, "s2") == [(logging.INFO, "device s2 (flaky) connected")]
    snap = sup.snapshot()
    assert snap["s1"]["connected"] and snap["s1"]["retries"] == 0 and snap["s1"]["reconnects"] == 1
    assert snap["s2"]["reconnects"] == 0 and snap["s2"]["events"] == 1
    assert sup.drivers["s1"].calls == 7  # type: ignore[attr-defined]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(d["connected"] for d in sup.snapshot().values())


async def test_loss_after_connection_is_announced_once(
    flaky: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.device_supervisor")
    col = Collector()
    sup = DeviceSupervisor(
        [spec("s1", drop_after_emit=True)], mqtt=MqttSettings(), on_event=col.emit, backoff=FAST
    )
    task = asyncio.create_task(sup.run())
    states = lambda ev: [e.state for e in ev if isinstance(e, DeviceStateEvent)]  # noqa: E731
    await col.wait(
        lambda ev: (
            states(ev)[:4]
            == [
                DeviceState.CONNECTED,
                DeviceState.DISCONNECTED,
                DeviceState.CONNECTED,
                DeviceState.DISCONNECTED,
            ]
        )
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    logs = device_logs(caplog, "s1")
    assert [lvl for lvl, _ in logs[:3]] == [logging.INFO, logging.WARNING, logging.INFO]
    assert "lost" in logs[1][1]


async def test_driver_bug_is_logged_with_trace_and_retried(
    flaky: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.device_supervisor")
    col = Collector()
    sup = DeviceSupervisor(
        [spec("s1", fail_times=3, bug=True)], mqtt=MqttSettings(), on_event=col.emit, backoff=FAST
    )
    task = asyncio.create_task(sup.run())
    await col.wait(lambda ev: any(isinstance(e, ScanEvent) for e in ev))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


async def test_broker_restart_recovers_every_mqtt_device_and_logs_once(
    mosquitto_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.device_supervisor")
    settings = mosquitto_broker.settings()
    specs = [
        DeviceSpec(
            id="r1",
            driver="impinj-iot",
            role=DeviceRole.DOCK_DOOR,
            topic="impinj/r1/events",
            options={"gone_after": 60.0},
        ),
        DeviceSpec(
            id="s1", driver="mqtt-scanner", role=DeviceRole.PACK_STATION, topic="scanners/s1"
        ),
    ]
    col = Collector()
    sup = DeviceSupervisor(
        specs, mqtt=settings, on_event=col.emit, backoff=Backoff(initial_s=0.05, cap_s=0.3)
    )
    task = asyncio.create_task(sup.run())
    await until(lambda: all(d["connected"] for d in sup.snapshot().values()))

    await asyncio.to_thread(mosquitto_broker.stop, kill=True)
    await until(lambda: not any(d["available"] for d in sup.snapshot().values()))
    await asyncio.sleep(0.5)  # several failed retries happen while the broker is down
    assert all(d["retries"] >= 2 for d in sup.snapshot().values())
    await asyncio.to_thread(mosquitto_broker.start)
    await until(lambda: all(d["connected"] for d in sup.snapshot().values()))

    async with MqttScannerSim(settings, scanner_id="s1", topic="scanners/s1") as scanner:
        await scanner.scan("AFTER-RESTART")
    async with ImpinjReaderSim(
        settings, reader_id="r1", topic="impinj/r1/events", tags=1, rate=0
    ) as reader:
        await reader.publish_reads([reader.read()])
    await col.wait(lambda ev: sum(not isinstance(e, DeviceStateEvent) for e in ev) == 2)

    for device_id in ("r1", "s1"):
        logs = device_logs(caplog, device_id)
        assert [lvl for lvl, _ in logs] == [logging.INFO, logging.WARNING, logging.INFO], logs
        states = [
            e.state
            for e in col.events
            if isinstance(e, DeviceStateEvent) and e.device_id == device_id
        ]
        assert states == [DeviceState.CONNECTED, DeviceState.DISCONNECTED, DeviceState.CONNECTED]
        snap = sup.snapshot()[device_id]
        assert snap["reconnects"] == 1 and snap["connected"] and snap["frames"] == 1
        assert snap["last_seen"] is not None

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert not any(d["connected"] for d in sup.snapshot().values())


def test_duplicate_ids_rejected(flaky: None) -> None:
    from devices.errors import DeviceConfigError

    async def sink(event: object) -> None:
        pass

    with pytest.raises(DeviceConfigError, match="s1"):
        DeviceSupervisor([spec("s1"), spec("s1")], mqtt=MqttSettings(), on_event=sink)


def test_edge_never_parses_device_bytes() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in [root / "edge" / "device_supervisor.py", root / "edge" / "cli" / "listen.py"]:
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(
                    ("devices.framing", "devices.dialects", "devices.transport")
                ), (path, name)
