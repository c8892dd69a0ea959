"""The MQTT simulators: formats as documented, rates, bounded offline queue and
replay, and the ``pickedge sim`` commands — checked through the real drivers."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from devices.dialects import impinj, zebra
from devices.driver import DeviceSpec, MqttSettings
from devices.drivers.mqtt_common import RfidMqttDriverBase
from devices.events import DeviceRole, PresenceKind, ScanEvent, TagReadEvent
from devices.registry import create_driver
from simulators.mqtt_cli import commands
from simulators.rfid_mqtt import ImpinjReaderSim, ZebraReaderSim, iso_impinj, iso_zebra
from tests.support.mosquitto import Collector, MosquittoBroker, until

OFFLINE = MqttSettings(port=1)  # formats need no broker


def test_impinj_format_matches_the_interface() -> None:
    sim = ImpinjReaderSim(
        OFFLINE, reader_id="r1", topic="t", tags=["3034257BF7194E4000001A85"], epc_hex=True
    )
    read = sim.read(antenna=3)
    doc = json.loads(sim.payload([read]))
    assert set(doc) == {"timestamp", "hostname", "eventType", "tagInventoryEvent"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", doc["timestamp"])
    assert re.fullmatch(r"impinj-[0-9a-f]{2}-[0-9a-f]{2}-[0-9a-f]{2}", doc["hostname"])
    body = doc["tagInventoryEvent"]
    assert body["epc"] == "MDQle/cZTkAAABqF" and body["epcHex"] == "3034257BF7194E4000001A85"
    assert body["antennaPort"] == 3 and isinstance(body["peakRssiCdbm"], int)
    (event,) = impinj.parse(sim.payload([read]), device_id="r1", received_at=0).events
    assert isinstance(event, TagReadEvent) and event.reader_time == pytest.approx(read.at, abs=1e-6)
    assert isinstance(json.loads(sim.payload([read, read])), list)


def test_zebra_format_matches_the_connector() -> None:
    sim = ZebraReaderSim(
        OFFLINE,
        reader_id="z1",
        topic="t",
        tags=["E2801160600002052" + "8F904FA"],
        utc_offset_minutes=-360,
    )
    reads = [sim.read() for _ in range(3)]
    doc = json.loads(sim.payload(reads))
    assert isinstance(doc, list) and len(doc) == 3
    record = doc[0]
    assert set(record) == {"data", "timestamp", "type"} and record["type"] == "SIMPLE"
    assert record["data"]["idHex"] == "e28011606000020528f904fa"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}-0600", record["timestamp"])
    events = zebra.parse_data(sim.payload(reads), device_id="z1", received_at=0).events
    assert [e.reader_time for e in events] == pytest.approx([r.at for r in reads], abs=1e-3)  # type: ignore[union-attr]


def test_timestamp_helpers() -> None:
    assert (
        iso_impinj(1767600000.123456789)
        == "2026-01-05T08:00:00.123456717Z"[:20] + iso_impinj(1767600000.123456789)[20:]
    )
    assert iso_zebra(1767600000.5, -360) == "2026-01-05T02:00:00.500-0600"
    assert iso_zebra(1767600000.5) == "2026-01-05T08:00:00.500+0000"


def rfid_spec(driver: str, topic: str, **options: object) -> DeviceSpec:
    return DeviceSpec(
        id="r1", driver=driver, role=DeviceRole.PICK_ZONE, topic=topic, options=options
    )


async def test_rate_population_and_antennas(mosquitto_broker: MosquittoBroker) -> None:
    settings = mosquitto_broker.settings()
    driver = create_driver(
        rfid_spec("zebra-iotc", "zebra/r1/data", per_antenna=True, gone_after=60.0), mqtt=settings
    )
    assert isinstance(driver, RfidMqttDriverBase)
    col = Collector()
    task = asyncio.create_task(driver.run(col.emit))
    await until(lambda: driver.stats.connected)
    async with ZebraReaderSim(
        settings, reader_id="r1", topic="zebra/r1/data", tags=10, antennas=2, rate=2000, batch=20
    ) as sim:
        await col.wait(lambda ev: len(ev) == 20)  # every (antenna, tag) pair seen once
        await sim.stop()
        await until(lambda: driver.reads == sim.reads_published)
    assert driver.reads == sim.reads_published >= 20
    assert {(e.antenna, e.epc_hex) for e in col.events} == {
        (a, t) for a in (1, 2) for t in sim.population
    }  # type: ignore[union-attr]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_offline_queue_is_bounded_and_replayed_in_order(
    mosquitto_broker: MosquittoBroker,
) -> None:
    settings = mosquitto_broker.settings()
    driver = create_driver(
        rfid_spec("impinj-iot", "impinj/r1/events", gone_after=60.0), mqtt=settings
    )
    assert isinstance(driver, RfidMqttDriverBase)
    col = Collector()
    task = asyncio.create_task(driver.run(col.emit))
    await until(lambda: driver.stats.connected)
    async with ImpinjReaderSim(
        settings, reader_id="r1", topic="impinj/r1/events", tags=25, rate=0, max_backlog=3000
    ) as sim:
        sim.disconnect()
        sim.fill_backlog(5000)
        assert len(sim.backlog) == 3000 and sim.dropped == 2000
        assert await sim.reconnect() == 3000
        await until(lambda: driver.stats.frames == 3000, within=30)
    seen = col.presence(PresenceKind.SEEN)
    assert len(seen) == len({e.epc_hex for e in seen}) == 25
    assert driver.smoother.suppressed == 0 and driver.stats.bad_frames == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_random_faults_are_counted(mosquitto_broker: MosquittoBroker) -> None:
    settings = mosquitto_broker.settings()
    driver = create_driver(rfid_spec("impinj-iot", "impinj/r1/events"), mqtt=settings)
    col = Collector()
    task = asyncio.create_task(driver.run(col.emit))
    await until(lambda: driver.stats.connected)
    faults = {"malformed": 0.1, "truncate": 0.1, "unknown": 0.1}
    async with ImpinjReaderSim(
        settings, reader_id="r1", topic="impinj/r1/events", rate=0, faults=faults, seed=5
    ) as sim:
        await sim.burst(300)  # bursts take no faults: all good
        payloads = [sim._maybe_fault([sim.read()]) for _ in range(300)]
        for p in payloads:
            await sim.send(p)
        await until(lambda: driver.stats.frames == 600)
    assert 0 < sim.faults_published == driver.stats.bad_frames
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_sim_cli_commands(tmp_path: Path, mosquitto_broker: MosquittoBroker) -> None:
    assert [c.name for c in commands] == ["impinj", "zebra", "mqtt-scanner"]
    settings = mosquitto_broker.settings()
    secret = tmp_path / "mqtt.secret"
    secret.write_text(mosquitto_broker.password + "\n")
    scanner = create_driver(
        DeviceSpec(
            id="pack-1",
            driver="mqtt-scanner",
            role=DeviceRole.PACK_STATION,
            topic="scanners/pack-1",
        ),
        mqtt=settings,
    )
    zebra_driver = create_driver(
        rfid_spec("zebra-iotc", "zebra/fx-1/data", events_topic="zebra/fx-1/events"), mqtt=settings
    )
    col = Collector()
    tasks = [asyncio.create_task(d.run(col.emit)) for d in (scanner, zebra_driver)]
    await until(lambda: scanner.stats.connected and zebra_driver.stats.connected)
    broker = ["--port", str(mosquitto_broker.port), "--password-file", str(secret)]
    runner = CliRunner()
    by_name = {c.name: c for c in commands}
    result = await asyncio.to_thread(
        runner.invoke,
        by_name["mqtt-scanner"],
        [
            *broker,
            "--scanner-id",
            "pack-1",
            "--code",
            "0109501101020917<GS>10ABC",
            "--symbology",
            "]C1",
            "--count",
            "2",
            "--interval",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    result = await asyncio.to_thread(
        runner.invoke,
        by_name["zebra"],
        [*broker, "--reader-id", "fx-1", "--tags", "5", "--rate", "500", "--seconds", "1"],
    )
    assert result.exit_code == 0, result.output
    await col.wait(
        lambda ev: (
            len([e for e in ev if isinstance(e, ScanEvent)]) == 2
            and len(col.presence(PresenceKind.SEEN)) == 5
        )
    )
    assert [e.code for e in col.events if isinstance(e, ScanEvent)] == [
        "0109501101020917\x1d10ABC"
    ] * 2
    bad = await asyncio.to_thread(
        runner.invoke, by_name["impinj"], [*broker, "--fault", "gremlins=0.1"]
    )
    assert bad.exit_code == 2 and "KIND must be one of" in bad.output
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
