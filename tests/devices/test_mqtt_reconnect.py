"""Broker killed and restarted, readers replaying their backlog: no smoothed
event lost, none duplicated (real Mosquitto with persistence)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from devices.driver import DeviceSpec
from devices.drivers.impinj import ImpinjDriver
from devices.errors import DeviceDisconnectedError
from devices.events import DeviceEvent, DeviceRole, PresenceKind, TagPresenceEvent
from devices.registry import create_driver
from simulators.rfid_mqtt import ImpinjReaderSim, ZebraReaderSim, make_epcs
from tests.support.mosquitto import Collector, MosquittoBroker, until

TOPIC = "impinj/r1/events"


def spec(driver: str = "impinj-iot", topic: str = TOPIC) -> DeviceSpec:
    return DeviceSpec(
        id="r1", driver=driver, role=DeviceRole.DOCK_DOOR, topic=topic, options={"gone_after": 60.0}
    )


async def run_until_disconnected(task: asyncio.Task[None]) -> None:
    with pytest.raises(DeviceDisconnectedError):
        await asyncio.wait_for(task, 10)


def seen_counts(events: list[DeviceEvent]) -> Counter[str]:
    return Counter(
        e.epc_hex for e in events if isinstance(e, TagPresenceEvent) and e.kind is PresenceKind.SEEN
    )


async def test_broker_restart_with_reader_backlog_replay(mosquitto_broker: MosquittoBroker) -> None:
    settings = mosquitto_broker.settings()
    driver = create_driver(spec(), mqtt=settings)
    assert isinstance(driver, ImpinjDriver)
    col = Collector()
    task = asyncio.create_task(driver.run(col.emit))
    await until(lambda: driver.stats.connected)
    first, later = make_epcs(40, seed=1), make_epcs(10, seed=2)
    async with ImpinjReaderSim(settings, reader_id="r1", topic=TOPIC, tags=first, rate=0) as sim:
        for epc in first:
            await sim.publish_reads([sim.read(epc, 1)])
        await col.wait(lambda ev: len(seen_counts(ev)) == 40)

        # The broker dies; the reader loses it too and queues what it reads.
        sim.disconnect()
        await asyncio.to_thread(mosquitto_broker.stop, kill=True)
        await run_until_disconnected(task)
        for _ in range(5):
            for epc in first + later:
                await sim.publish_reads([sim.read(epc, 2)])
        assert len(sim.backlog) == 250

        await asyncio.to_thread(mosquitto_broker.start)
        task = asyncio.create_task(driver.run(col.emit))
        await until(lambda: driver.stats.connected)
        assert await sim.reconnect(reopen=True) == 250
        await until(lambda: driver.stats.frames >= 40 + 250)
    counts = seen_counts(col.events)
    assert set(counts) == set(first + later)
    assert set(counts.values()) == {1}, "a tag was announced twice"
    assert not [
        e for e in col.events if isinstance(e, TagPresenceEvent) and e.kind is PresenceKind.GONE
    ]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_messages_queued_for_the_session_survive_a_broker_restart(
    mosquitto_broker: MosquittoBroker,
) -> None:
    settings = mosquitto_broker.settings()
    driver = create_driver(spec("zebra-iotc", "zebra/z1/data"), mqtt=settings)
    col = Collector()
    task = asyncio.create_task(driver.run(col.emit))
    await until(lambda: driver.stats.connected)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    epcs = make_epcs(30, seed=4)
    async with ZebraReaderSim(
        settings, reader_id="z1", topic="zebra/z1/data", tags=epcs, rate=0
    ) as sim:
        for epc in epcs:
            await sim.publish_reads([sim.read(epc)])
    # Graceful stop writes the persistence file; the queued QoS 1 messages of the
    # box's persistent session come back with the broker.
    await asyncio.to_thread(mosquitto_broker.restart)
    task = asyncio.create_task(driver.run(col.emit))
    await col.wait(lambda ev: len(seen_counts(ev)) == 30)
    assert set(seen_counts(col.events).values()) == {1}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_unacked_message_redelivered_after_restart_is_not_announced_twice(
    mosquitto_broker: MosquittoBroker,
) -> None:
    """emit committed, the broker died before the PUBACK: redelivery is a no-op."""
    settings = mosquitto_broker.settings()
    driver = create_driver(spec(), mqtt=settings)
    col = Collector()
    release = asyncio.Event()
    blocked = asyncio.Event()

    async def slow_commit(event: DeviceEvent) -> None:
        blocked.set()
        await release.wait()
        await col.emit(event)

    task = asyncio.create_task(driver.run(slow_commit))
    await until(lambda: driver.stats.connected)
    async with ImpinjReaderSim(settings, reader_id="r1", topic=TOPIC, tags=1, rate=0) as sim:
        await sim.publish_reads([sim.read(sim.population[0])])
    await asyncio.wait_for(blocked.wait(), 10)
    await asyncio.to_thread(mosquitto_broker.restart)  # the PUBACK never reaches it
    release.set()
    await run_until_disconnected(task)
    assert len(seen_counts(col.events)) == 1

    task = asyncio.create_task(driver.run(col.emit))
    await until(lambda: driver.stats.frames == 2)  # the redelivery arrived...
    assert seen_counts(col.events) == Counter({sim.population[0]: 1})  # ...and changed nothing
    assert driver.smoother.suppressed == 0  # same window, same time: simply a repeat
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
