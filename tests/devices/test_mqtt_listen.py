"""``pickedge listen`` end to end: a config file, a real broker, simulated devices."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from simulators.rfid_mqtt import ImpinjReaderSim, MqttScannerSim
from tests.support.mosquitto import MosquittoBroker


def write_config(tmp_path: Path, broker: MosquittoBroker) -> Path:
    (tmp_path / "mqtt.secret").write_text(broker.password + "\n")
    path = tmp_path / "pickedge.toml"
    path.write_text(
        f"""
[box]
id = "zone-t"

[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{broker.username}"
password_file = "mqtt.secret"
client_id_prefix = "listen-test"

[[devices]]
id = "pack-1"
driver = "mqtt-scanner"
role = "pack_station"
topic = "scanners/pack-1"

[[devices]]
id = "dock-1"
driver = "impinj-iot"
role = "dock_door"
topic = "impinj/dock-1/events"
[devices.options]
gone_after = 30.0
"""
    )
    return path


async def test_listen_prints_json_lines(tmp_path: Path, mosquitto_broker: MosquittoBroker) -> None:
    config = write_config(tmp_path, mosquitto_broker)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from edge.cli import main; main()",
        "listen",
        "--config",
        str(config),
        "--json",
        "--count",
        "6",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        connected: set[str] = set()
        async with asyncio.timeout(20):
            while connected != {"pack-1", "dock-1"}:
                line = (await proc.stderr.readline()).decode()
                assert line, "listen exited early"
                for device in ("pack-1", "dock-1"):
                    if f"device {device} " in line and "connected" in line:
                        connected.add(device)
        settings = mosquitto_broker.settings()
        async with MqttScannerSim(
            settings, scanner_id="pack-1", topic="scanners/pack-1"
        ) as scanner:
            await scanner.scan("0109501101020917\x1d10ABC", "]C1")
        async with ImpinjReaderSim(
            settings, reader_id="dock-1", topic="impinj/dock-1/events", tags=1, rate=0
        ) as reader:
            await reader.publish_reads([reader.read(antenna=2)])
            await reader.publish_reads([reader.read(antenna=2)])  # a repeat: smoothed away
            await reader.send(reader.state_payload("antennaDisconnected", {"antennaPort": 3}))
            await reader.send(b"{broken")  # counted and logged, not printed
            await reader.send(reader.state_payload("overflow", {}))
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    by_type = [(e["type"], e["device_id"]) for e in lines]
    assert sorted(by_type) == sorted(
        [
            ("DeviceStateEvent", "pack-1"),  # connected
            ("DeviceStateEvent", "dock-1"),  # connected
            ("ScanEvent", "pack-1"),
            ("TagPresenceEvent", "dock-1"),
            ("DeviceStateEvent", "dock-1"),
            ("DeviceStateEvent", "dock-1"),
        ]
    )
    scan = next(e for e in lines if e["type"] == "ScanEvent")
    assert scan["code"] == "0109501101020917\x1d10ABC" and scan["symbology"] == "]C1"
    seen = next(e for e in lines if e["type"] == "TagPresenceEvent")
    assert seen["kind"] == "seen" and seen["epc_hex"] == reader.population[0]
    states = [e["state"] for e in lines if e["type"] == "DeviceStateEvent"]
    assert states == ["connected", "connected", "antenna_disconnected", "overflow"]
    assert "malformed payload" in err.decode()


def test_text_lines_and_json_dicts() -> None:
    from devices.events import (
        DeviceState,
        DeviceStateEvent,
        PresenceKind,
        ScanEvent,
        TagPresenceEvent,
        TagReadEvent,
    )
    from edge.cli.listen import event_dict, event_line

    t = 1767600000.5  # 08:00:00.500 UTC
    assert event_line(ScanEvent("pack-1", "01\x1d10A", "]C1", t)) == (
        "08:00:00.500 pack-1 scan ]C1 01<GS>10A"
    )
    assert event_line(TagPresenceEvent("d1", "3034AB", PresenceKind.GONE, 2, t)) == (
        "08:00:00.500 d1 gone 3034AB antenna 2"
    )
    assert event_line(TagReadEvent("d1", "3034AB", 1, -61.5, t, t, 3)) == (
        "08:00:00.500 d1 read 3034AB antenna 1 -61.5 dBm x3"
    )
    assert event_line(DeviceStateEvent("d1", DeviceState.OVERFLOW, "reader purged events", t)) == (
        "08:00:00.500 d1 overflow reader purged events"
    )
    assert event_dict(TagPresenceEvent("d1", "3034AB", PresenceKind.SEEN, None, t)) == {
        "type": "TagPresenceEvent",
        "device_id": "d1",
        "epc_hex": "3034AB",
        "kind": "seen",
        "antenna": None,
        "at": t,
    }


def test_unknown_device_is_a_clear_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edge.cli.listen import listen_command

    broker_less = tmp_path / "pickedge.toml"
    broker_less.write_text(
        '[box]\nid = "t"\n[[devices]]\nid = "pack-1"\ndriver = "mqtt-scanner"\n'
        'role = "pack_station"\ntopic = "scanners/pack-1"\n'
    )
    result = CliRunner().invoke(listen_command, ["--config", str(broker_less), "--device", "nope"])
    assert result.exit_code == 2
    assert "no enabled device named nope" in result.output
