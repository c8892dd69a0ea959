"""The reader simulators carrying cartons through a dock door portal
(``portal_pass``, ``ReaderSim.pass_portal``): every antenna reads each carton's
SSCC-96 tag, repeatedly, and smoothing still makes one ``seen`` per carton."""

from __future__ import annotations

import asyncio
import random

import pytest

from devices.codes.epc import SSCC_FILTER_UNIT_LOAD, decode_epc_info, encode_sscc96
from devices.dialects import impinj
from devices.driver import DeviceSpec, MqttSettings
from devices.drivers.mqtt_common import RfidMqttDriverBase
from devices.events import DeviceRole, PresenceKind, TagReadEvent
from devices.registry import create_driver
from devices.smoothing import Smoother, SmoothingConfig
from simulators.rfid_mqtt import ImpinjReaderSim, ZebraReaderSim, portal_pass
from tests.support.mosquitto import Collector, MosquittoBroker, until

SSCCS = ["106141412345678908", "106141410000000019", "106141410000000026"]
OFFLINE = MqttSettings(port=1)


def test_portal_pass_reads_every_carton_on_every_antenna_repeatedly() -> None:
    epcs = [encode_sscc96(s, company_prefix_digits=7) for s in SSCCS]
    reads = portal_pass(epcs, start=1000.0, rng=random.Random(3), antennas=4)
    assert {(r.epc_hex, r.antenna) for r in reads} == {(e, a) for e in epcs for a in (1, 2, 3, 4)}
    times = [r.at for r in reads]
    assert times == sorted(times) and len(set(times)) == len(times) and times[0] >= 1000.0
    for epc in epcs:
        assert sum(r.epc_hex == epc for r in reads) > 4  # duplicates across and per antenna
    # through the Impinj format and smoothing: one `seen` per carton, its SSCC
    sim = ImpinjReaderSim(OFFLINE, reader_id="p1", topic="t", tags=epcs)
    smoother = Smoother("p1", SmoothingConfig(gone_after=5.0))
    seen = []
    for read in reads:
        (event,) = impinj.parse(sim.payload([read]), device_id="p1", received_at=0).events
        assert isinstance(event, TagReadEvent)
        seen += [e for e in smoother.feed(event) if e.kind is PresenceKind.SEEN]
    assert [decode_epc_info(e.epc_hex).gs1_key for e in seen] == SSCCS


@pytest.mark.parametrize("sim_class", [ImpinjReaderSim, ZebraReaderSim])
async def test_pass_portal_through_a_broker_and_the_real_driver(
    mosquitto_broker: MosquittoBroker, sim_class: type[ImpinjReaderSim | ZebraReaderSim]
) -> None:
    settings = mosquitto_broker.settings()
    driver_name, topic = (
        ("impinj-iot", "impinj/p1/events")
        if sim_class is ImpinjReaderSim
        else ("zebra-iotc", "zebra/p1/data")
    )
    spec = DeviceSpec(
        id="p1", driver=driver_name, role=DeviceRole.PICK_ZONE, topic=topic, options={}
    )
    driver = create_driver(spec, mqtt=settings)
    assert isinstance(driver, RfidMqttDriverBase)
    col = Collector()
    task = asyncio.create_task(driver.run(col.emit))
    await until(lambda: driver.stats.connected)
    async with sim_class(settings, reader_id="p1", topic=topic, tags=[], rate=0) as sim:
        reads = await sim.pass_portal(
            SSCCS, company_prefix_digits=7, filter_value=SSCC_FILTER_UNIT_LOAD
        )
        await until(lambda: driver.reads == len(reads))
    seen = col.presence(PresenceKind.SEEN)
    assert [decode_epc_info(e.epc_hex).gs1_key for e in seen] == SSCCS
    assert {decode_epc_info(e.epc_hex).filter for e in seen} == {SSCC_FILTER_UNIT_LOAD}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
