"""MQTT drivers against a real Mosquitto: dialects end to end, bad input counted
and logged once, acknowledgement only after ``emit``, persistent sessions."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

from devices.driver import DeviceSpec, MqttSettings
from devices.drivers.impinj import ImpinjDriver
from devices.drivers.mqtt_common import MqttDriverBase
from devices.drivers.mqtt_scanner import MqttScannerDriver
from devices.drivers.zebra import ZebraDriver
from devices.errors import DeviceConfigError, DeviceDisconnectedError
from devices.events import (
    DeviceEvent,
    DeviceRole,
    DeviceState,
    DeviceStateEvent,
    PresenceKind,
    ScanEvent,
    TagPresenceEvent,
)
from devices.registry import create_driver
from simulators.rfid_mqtt import ImpinjReaderSim, MqttScannerSim, ZebraReaderSim, make_epcs
from tests.support.mosquitto import Collector, MosquittoBroker, until

ROLE = DeviceRole.PICK_ZONE


async def start(driver: MqttDriverBase, collector: Collector) -> asyncio.Task[None]:
    task = asyncio.create_task(driver.run(collector.emit))
    await until(lambda: driver.stats.connected or task.done())
    if task.done():
        task.result()
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def impinj_spec(**options: object) -> DeviceSpec:
    return DeviceSpec(
        id="r1", driver="impinj-iot", role=ROLE, topic="impinj/r1/events", options=options
    )


async def test_impinj_reads_are_smoothed_into_one_seen_per_tag(
    mosquitto_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    settings = mosquitto_broker.settings()
    driver = create_driver(impinj_spec(gone_after=30.0), mqtt=settings)
    assert isinstance(driver, ImpinjDriver)
    col = Collector()
    task = await start(driver, col)
    epcs = make_epcs(20, seed=3)
    async with ImpinjReaderSim(
        settings, reader_id="r1", topic="impinj/r1/events", tags=epcs, rate=0
    ) as sim:
        for _ in range(10):
            for epc in epcs:
                await sim.publish_reads([sim.read(epc)])
        await sim.send(sim.state_payload("overflow", {"count": 12}))
        await col.wait(lambda ev: any(isinstance(e, DeviceStateEvent) for e in ev))
    seen = col.presence(PresenceKind.SEEN)
    assert sorted(e.epc_hex for e in seen) == sorted(epcs)
    assert driver.stats.frames == 201 and driver.stats.bad_frames == 0
    assert driver.reads == 200
    (overflow,) = [e for e in col.events if isinstance(e, DeviceStateEvent)]
    assert overflow.state is DeviceState.OVERFLOW and "12 events" in overflow.detail
    assert any(
        r.levelno == logging.WARNING and "reader purged 12 events" in r.getMessage()
        for r in caplog.records
    )
    await stop(task)
    assert driver.stats.connected is False


async def test_zebra_data_and_events_topics(mosquitto_broker: MosquittoBroker) -> None:
    settings = mosquitto_broker.settings()
    spec = DeviceSpec(
        id="z1",
        driver="zebra-iotc",
        role=ROLE,
        topic="zebra/fx9600/data",
        options={
            "events_topic": "zebra/fx9600/events",
            "per_antenna": True,
            "gone_after": 0.3,
            "silence_timeout": 0.3,
        },
    )
    driver = create_driver(spec, mqtt=settings)
    assert isinstance(driver, ZebraDriver)
    col = Collector()
    task = await start(driver, col)
    async with ZebraReaderSim(
        settings,
        reader_id="z1",
        topic="zebra/fx9600/data",
        events_topic="zebra/fx9600/events",
        tags=["E2000000000000000000AA01"],
        utc_offset_minutes=-360,
        rate=0,
    ) as sim:
        await sim.publish_reads([sim.read(antenna=1), sim.read(antenna=2), sim.read(antenna=1)])
        await sim.send(sim.heartbeat_payload(), topic="zebra/fx9600/events")
        # The reader goes quiet: the box-clock fallback closes both windows.
        await col.wait(lambda ev: len([e for e in ev if isinstance(e, TagPresenceEvent)]) == 4)
    kinds = [(e.kind, e.antenna) for e in col.events if isinstance(e, TagPresenceEvent)]
    assert sorted(kinds) == [
        (PresenceKind.GONE, 1),
        (PresenceKind.GONE, 2),
        (PresenceKind.SEEN, 1),
        (PresenceKind.SEEN, 2),
    ]
    statuses = [e for e in col.events if isinstance(e, DeviceStateEvent)]
    assert len(statuses) == 1 and statuses[0].detail.startswith("heartbeat")
    await stop(task)


async def test_mqtt_scanner_scans_in_order(mosquitto_broker: MosquittoBroker) -> None:
    settings = mosquitto_broker.settings()
    spec = DeviceSpec(
        id="s1", driver="mqtt-scanner", role=DeviceRole.PACK_STATION, topic="scanners/s1"
    )
    driver = create_driver(spec, mqtt=settings)
    assert isinstance(driver, MqttScannerDriver)
    col = Collector()
    task = await start(driver, col)
    codes = [f"00{i:016d}" for i in range(30)]
    async with MqttScannerSim(settings, scanner_id="s1", topic="scanners/s1") as sim:
        for code in codes:
            await sim.scan(code, "]C1")
        await col.wait(lambda ev: len(ev) == 30)
    assert [e.code for e in col.events if isinstance(e, ScanEvent)] == codes
    assert all(isinstance(e, ScanEvent) and e.symbology == "]C1" for e in col.events)
    await stop(task)


async def test_bad_input_is_counted_logged_once_per_kind_and_never_fatal(
    mosquitto_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    settings = mosquitto_broker.settings()
    # A first configuration leaves a subscription to "old/r1" in the persistent
    # session; after reconfiguration, messages there are an unknown topic.
    old = create_driver(
        DeviceSpec(id="r1", driver="impinj-iot", role=ROLE, topic="old/r1"), mqtt=settings
    )
    task = await start(old, Collector())  # type: ignore[arg-type]
    await stop(task)

    driver = create_driver(impinj_spec(gone_after=30.0), mqtt=settings)
    col = Collector()
    caplog.set_level(logging.WARNING, logger="devices")
    task = await start(driver, col)  # type: ignore[arg-type]
    async with ImpinjReaderSim(
        settings, reader_id="r1", topic="impinj/r1/events", tags=3, rate=0
    ) as sim:
        for kind in ("malformed", "truncate", "unknown") * 3:
            await sim.publish_fault(kind)
        for _ in range(3):
            await sim.send(b"{}", topic="old/r1")
            await sim.send(b"x" * 300_000)  # over the payload cap
        await sim.publish_reads([sim.read(sim.population[0])])
        await col.wait(lambda ev: len(ev) == 1)
    assert driver.stats.frames == 16
    assert driver.stats.bad_frames == 15
    assert not task.done()
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("devices")
    ]
    kinds = sorted(r.args[1] for r in warnings)  # type: ignore[index]
    assert kinds == ["malformed payload", "unknown event type", "unknown topic"]
    assert all("r1" in r.getMessage() for r in warnings)
    await stop(task)


async def test_ack_only_after_emit_returned(mosquitto_broker: MosquittoBroker) -> None:
    """A consumer that fails before committing gets the message again."""
    settings = mosquitto_broker.settings()
    spec = DeviceSpec(
        id="s1", driver="mqtt-scanner", role=DeviceRole.PACK_STATION, topic="scanners/s1"
    )
    driver = create_driver(spec, mqtt=settings)

    class CommitFailed(Exception):
        pass

    attempts: list[str] = []

    async def failing_emit(event: DeviceEvent) -> None:
        assert isinstance(event, ScanEvent)
        attempts.append(event.code)
        raise CommitFailed  # e.g. SQLite is locked: nothing committed

    task = asyncio.create_task(driver.run(failing_emit))
    await until(lambda: driver.stats.connected)
    async with MqttScannerSim(settings, scanner_id="s1", topic="scanners/s1") as sim:
        await sim.scan("ORDER-1")
        with pytest.raises(CommitFailed):
            await task
        assert attempts == ["ORDER-1"]

        # The next run (same persistent session) receives it again, commits, acks.
        col = Collector()
        task = await start(driver, col)  # type: ignore[arg-type]
        await col.wait(lambda ev: len(ev) == 1)
        assert [e.code for e in col.events] == ["ORDER-1"]  # type: ignore[union-attr]
        await sim.scan("ORDER-2")
        await col.wait(lambda ev: len(ev) == 2)
        await stop(task)

        # Acknowledged messages are not redelivered on the next connection.
        col2 = Collector()
        task = await start(driver, col2)  # type: ignore[arg-type]
        await sim.scan("ORDER-3")
        await col2.wait(lambda ev: len(ev) >= 1)
        assert [e.code for e in col2.events] == ["ORDER-3"]  # type: ignore[union-attr]
        await stop(task)


async def test_unacked_message_held_while_emit_blocks(mosquitto_broker: MosquittoBroker) -> None:
    """While emit has not returned, the broker still owns the message."""
    settings = mosquitto_broker.settings()
    spec = DeviceSpec(
        id="s2", driver="mqtt-scanner", role=DeviceRole.PACK_STATION, topic="scanners/s2"
    )
    driver = create_driver(spec, mqtt=settings)
    entered = asyncio.Event()

    async def stuck_emit(event: DeviceEvent) -> None:
        entered.set()
        await asyncio.Event().wait()  # the commit never finishes (process dies)

    task = asyncio.create_task(driver.run(stuck_emit))
    await until(lambda: driver.stats.connected)
    async with MqttScannerSim(settings, scanner_id="s2", topic="scanners/s2") as sim:
        await sim.scan("PICK-9")
        await asyncio.wait_for(entered.wait(), 10)
    await stop(task)
    col = Collector()
    task = await start(driver, col)  # type: ignore[arg-type]
    await col.wait(lambda ev: len(ev) == 1)
    assert [e.code for e in col.events] == ["PICK-9"]  # type: ignore[union-attr]
    await stop(task)


async def test_persistent_session_keeps_messages_published_while_away(
    mosquitto_broker: MosquittoBroker,
) -> None:
    settings = mosquitto_broker.settings()
    driver = create_driver(impinj_spec(gone_after=60.0), mqtt=settings)
    col = Collector()
    task = await start(driver, col)  # type: ignore[arg-type]
    await stop(task)
    epcs = make_epcs(100, seed=9)
    async with ImpinjReaderSim(
        settings, reader_id="r1", topic="impinj/r1/events", tags=epcs, rate=0
    ) as sim:
        for epc in epcs:
            await sim.publish_reads([sim.read(epc)])
    task = await start(driver, col)  # type: ignore[arg-type]
    await col.wait(lambda ev: len(ev) == 100)
    assert sorted(e.epc_hex for e in col.presence(PresenceKind.SEEN)) == sorted(epcs)
    await stop(task)


async def test_wrong_password_is_a_disconnect_error(mosquitto_broker: MosquittoBroker) -> None:
    good = mosquitto_broker.settings()
    bad = MqttSettings(host=good.host, port=good.port, username=good.username, password="nope")
    driver = create_driver(impinj_spec(), mqtt=bad)
    with pytest.raises(DeviceDisconnectedError, match=r"(?i)not authori"):
        await driver.run(Collector().emit)
    assert driver.stats.connected is False


async def test_broker_loss_raises_disconnected(mosquitto_broker: MosquittoBroker) -> None:
    driver = create_driver(impinj_spec(), mqtt=mosquitto_broker.settings())
    col = Collector()
    task = await start(driver, col)  # type: ignore[arg-type]
    t0 = time.monotonic()
    await asyncio.to_thread(mosquitto_broker.stop, kill=True)
    with pytest.raises(DeviceDisconnectedError):
        await asyncio.wait_for(task, 10)
    assert time.monotonic() - t0 < 5
    assert driver.stats.connected is False


@pytest.mark.parametrize(
    ("driver_name", "options", "match"),
    [
        ("impinj-iot", {"bogus": 1}, "bogus"),
        ("impinj-iot", {"epc_format": "b32"}, "epc_format"),
        ("impinj-iot", {"gone_after": 0}, "gone_after"),
        ("impinj-iot", {"per_antenna": "yes"}, "per_antenna"),
        ("zebra-iotc", {"events_topic": ""}, "events_topic"),
        ("zebra-iotc", {"qos": 2}, "qos"),
        ("mqtt-scanner", {"gone_after": 1}, "gone_after"),
        ("mqtt-scanner", {"queue_size": 0}, "queue_size"),
    ],
)
def test_check_options(driver_name: str, options: dict[str, object], match: str) -> None:
    from devices.registry import driver_class

    with pytest.raises(DeviceConfigError, match=match):
        driver_class(driver_name).check_options(options)


def test_missing_topic_is_config_error() -> None:
    with pytest.raises(DeviceConfigError, match="topic"):
        create_driver(DeviceSpec(id="r9", driver="impinj-iot", role=ROLE), mqtt=MqttSettings())


async def test_client_id_is_stable_per_device(mosquitto_broker: MosquittoBroker) -> None:
    settings = mosquitto_broker.settings(prefix="box7")
    driver = create_driver(impinj_spec(), mqtt=settings)
    task = await start(driver, Collector())  # type: ignore[arg-type]
    await stop(task)
    # "c0": the broker saw clean_session = 0, i.e. a persistent session.
    assert re.search(r"as box7-r1 \(p\d, c0,", mosquitto_broker.logs())


async def test_consumer_failure_on_a_fallback_gone_ends_the_run(
    mosquitto_broker: MosquittoBroker,
) -> None:
    """A gone emitted by the silence fallback goes through the same emit; its
    failure is not lost in a background task."""
    settings = mosquitto_broker.settings()
    driver = create_driver(impinj_spec(gone_after=0.2, silence_timeout=0.2), mqtt=settings)

    class Refused(Exception):
        pass

    async def emit(event: DeviceEvent) -> None:
        if isinstance(event, TagPresenceEvent) and event.kind is PresenceKind.GONE:
            raise Refused

    task = asyncio.create_task(driver.run(emit))
    await until(lambda: driver.stats.connected)
    async with ImpinjReaderSim(
        settings, reader_id="r1", topic="impinj/r1/events", tags=1, rate=0
    ) as sim:
        await sim.publish_reads([sim.read()])
    with pytest.raises(Refused):
        await asyncio.wait_for(task, 10)
    assert driver.stats.connected is False
