"""Serial drivers against the pty simulators: faults, reconnects, options."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from devices.errors import DeviceConfigError, DeviceDisconnectedError
from devices.events import DeviceState
from devices.registry import driver_class
from simulators.serial_rfid import A0ReaderSimulator, M100ReaderSimulator, Tag, sgtin_population
from simulators.serial_scanner import DEMO_CODES, Faults, ScannerSimulator
from tests.support.serial_fixtures import Collector, make_driver, running

SCANS = [(f"SKU-{i:05d}", "]C0") for i in range(40)] + list(DEMO_CODES)


# --- scanner --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "faults"),
    [
        ("crlf", Faults(one_byte=True)),
        ("cr", Faults(split=True, glue=True, seed=1)),
        ("lf", Faults(glue=True, junk=0.3, seed=2)),
        ("stx-etx", Faults(split=True, junk=0.5, seed=3)),
    ],
)
async def test_scanner_delivers_every_scan_once_in_order(suffix: str, faults: Faults) -> None:
    collector = Collector()
    async with ScannerSimulator(suffix=suffix, faults=faults) as sim:  # type: ignore[arg-type]
        driver = make_driver("serial-scanner", sim.path, suffix=suffix, baudrate=115200)
        async with running(driver, collector):
            await sim.send_many(SCANS)
            await collector.wait(lambda c: len(c.scans) >= len(SCANS))
        assert [(e.code, e.symbology) for e in collector.scans] == SCANS
        assert driver.stats.events == len(SCANS)
        assert driver.stats.frames == len(SCANS)
        assert driver.stats.dropped_bytes == sim.injector.junk_bytes
        assert driver.stats.bad_frames == 0
        assert collector.scans[0].device_id == "serial-scanner-1"


async def test_scanner_without_suffix_uses_the_idle_timeout() -> None:
    collector = Collector()
    async with ScannerSimulator(suffix="none") as sim:
        driver = make_driver("serial-scanner", sim.path, suffix="none", idle_timeout_ms=30)
        async with running(driver, collector):
            for i, (code, aim) in enumerate(DEMO_CODES):
                await sim.send(code, aim)
                await collector.wait(lambda c, n=i + 1: len(c.scans) >= n)
        assert [(e.code, e.symbology) for e in collector.scans] == list(DEMO_CODES)


async def test_junk_and_damage_are_counted_logged_once_never_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="devices.drivers")
    collector = Collector()
    faults = Faults(truncate=0.3, junk=0.5, seed=7)
    async with ScannerSimulator(suffix="stx-etx", faults=faults) as sim:
        driver = make_driver("serial-scanner", sim.path, suffix="stx-etx", max_frame=64)
        async with running(driver, collector):
            await sim.send_many(SCANS)
            rng = random.Random(5)
            await sim.send_raw(bytes(rng.randrange(256) for _ in range(3000)))
            await sim.send_raw(b"\x02" + b"X" * 500 + b"\x03")  # over max_frame
            await sim.send_raw(b"\x02FINAL-1\x03")
            await collector.wait(lambda c: any(e.code == "FINAL-1" for e in c.scans))
        codes = [e.code for e in collector.scans]
        # Truncated frames are caught by the next STX; the rest arrive intact.
        assert set(codes) - {"FINAL-1"} <= {c for c, _ in SCANS} | set(_random_frames(codes))
        assert (
            len([c for c in codes if c in {s for s, _ in SCANS}])
            == len(SCANS) - sim.injector.damaged
        )
        assert driver.stats.bad_frames >= sim.injector.damaged + 1
        assert driver.stats.dropped_bytes > 0
    warnings = [r for r in caplog.records if "malformed input" in r.getMessage()]
    assert len(warnings) == 1


def _random_frames(codes: list[str]) -> list[str]:
    # Random bytes can contain an STX…ETX pair by chance; such frames are "valid".
    return [c for c in codes if not c.startswith("SKU-") and c != "FINAL-1"]


async def test_scanner_reconnect_no_lost_or_duplicated_events() -> None:
    collector = Collector()
    first = [(f"A-{i:02d}-01", None) for i in range(20)]
    second = [(f"B-{i:02d}-01", None) for i in range(20)]
    async with ScannerSimulator(suffix="crlf") as sim:
        driver = make_driver("serial-scanner", sim.path)
        task = asyncio.create_task(driver.run(collector))
        await collector.wait(lambda c: c.connected_count() == 1)
        await sim.send_many(first)
        await collector.wait(lambda c: len(c.scans) == len(first))
        await sim.disconnect()
        with pytest.raises(DeviceDisconnectedError):
            await asyncio.wait_for(task, 10)
        assert not driver.stats.connected
        assert driver.stats.last_error
        # The supervisor's part: run() again on the same path (now a new pty).
        async with running(driver, collector):
            assert driver.stats.connected
            await sim.send_many(second)
            await collector.wait(lambda c: len(c.scans) == len(first) + len(second))
        assert [e.code for e in collector.scans] == [c for c, _ in first + second]
        assert collector.connected_count() == 2


async def test_unplugged_port_raises_disconnected() -> None:
    with pytest.raises(DeviceDisconnectedError):
        await make_driver("serial-scanner", "/dev/pickedge-missing").run(Collector())


@pytest.mark.parametrize(
    ("driver", "options", "message"),
    [
        ("serial-scanner", {"suffix": "tab"}, "suffix"),
        ("serial-scanner", {"baudrate": 12345}, "baudrate"),
        ("serial-scanner", {"idle_timeout_ms": 1}, "idle_timeout_ms"),
        ("serial-scanner", {"aim": "yes"}, "aim"),
        ("serial-scanner", {"colour": "red"}, "colour"),
        ("serial-scanner", {"prefix": "§"}, "prefix"),
        ("rfid-a0", {"inventory_interval_ms": -1}, "inventory_interval_ms"),
        ("rfid-a0", {"address": 256}, "address"),
        ("rfid-m100", {"mode": "burst"}, "mode"),
        ("rfid-m100", {"poll_count": 0}, "poll_count"),
    ],
)
def test_check_options_names_the_bad_option(
    driver: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(DeviceConfigError, match=message):
        driver_class(driver).check_options(options)


def test_good_options_pass() -> None:
    driver_class("serial-scanner").check_options(
        {"suffix": "stx-etx", "baudrate": 9600, "prefix": "#"}
    )
    driver_class("rfid-a0").check_options({"inventory_interval_ms": 100, "repeat": 2})
    driver_class("rfid-m100").check_options({"mode": "single", "check_crc": False})


async def test_missing_url_is_a_config_error() -> None:
    from devices.driver import DeviceSpec, MqttSettings
    from devices.drivers.serial_scanner import SerialScannerDriver
    from devices.events import DeviceRole

    driver = SerialScannerDriver(
        DeviceSpec("s", "serial-scanner", DeviceRole.DOCK_DOOR), mqtt=MqttSettings()
    )
    with pytest.raises(DeviceConfigError, match="url"):
        await driver.run(Collector())


# --- A0 reader --------------------------------------------------------------------

POPULATION = [
    *sgtin_population(5),
    Tag.from_hex("E2801160600002054CC2096F", antenna=3, rssi_dbm=-70),
]
EPCS = {t.epc.hex().upper() for t in POPULATION}


async def test_a0_reader_inventory_rounds() -> None:
    collector = Collector()
    async with A0ReaderSimulator(tags=POPULATION, faults=Faults(split=True, seed=4)) as sim:
        driver = make_driver("rfid-a0", sim.path, inventory_interval_ms=0)
        async with running(driver, collector):
            await collector.wait(lambda c: len(c.tags) >= 3 * len(POPULATION))
        await sim.wait_commands(3)
    first_round = collector.tags[: len(POPULATION)]
    assert [e.epc_hex for e in first_round] == [t.epc.hex().upper() for t in POPULATION]
    assert [e.antenna for e in first_round] == [t.antenna + 1 for t in POPULATION]
    assert [e.rssi_dbm for e in first_round] == [float(t.rssi_dbm) for t in POPULATION]
    assert driver.stats.bad_frames == 0
    assert driver.stats.last_seen is not None


async def test_a0_reader_bit_flips_never_yield_wrong_epcs() -> None:
    collector = Collector()
    faults = Faults(bitflip=0.2, junk=0.2, glue=True, seed=11)
    async with A0ReaderSimulator(tags=POPULATION, faults=faults) as sim:
        driver = make_driver("rfid-a0", sim.path, inventory_interval_ms=0, response_timeout_ms=100)
        async with running(driver, collector):
            await collector.wait(lambda c: len(c.tags) >= 60)
            await collector.wait(lambda _: driver.stats.bad_frames > 0)
    assert {e.epc_hex for e in collector.tags} <= EPCS
    assert driver.stats.dropped_bytes > 0


async def test_a0_reader_error_is_one_state_event_and_one_on_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="devices.drivers")
    collector = Collector()
    async with A0ReaderSimulator(tags=POPULATION, error_code=0x22) as sim:
        driver = make_driver("rfid-a0", sim.path, inventory_interval_ms=0)
        async with running(driver, collector):
            await sim.wait_commands(5)  # five rounds, each answered with the error
            await collector.wait(lambda c: len(c.states) >= 2)
            sim.error_code = None  # antenna plugged back in
            await collector.wait(lambda c: len(c.tags) >= len(POPULATION))
            await collector.wait(lambda c: len(c.states) >= 3)
    states = [e.state for e in collector.states]
    assert states == [
        DeviceState.CONNECTED,
        DeviceState.ANTENNA_DISCONNECTED,
        DeviceState.ANTENNA_CONNECTED,
    ]
    assert "0x22" in collector.states[1].detail
    assert "0x22" in (driver.stats.last_error or "")
    assert len([r for r in caplog.records if "0x22" in r.getMessage()]) == 1


async def test_a0_reader_reconnect() -> None:
    collector = Collector()
    async with A0ReaderSimulator(tags=POPULATION[:2]) as sim:
        driver = make_driver("rfid-a0", sim.path, inventory_interval_ms=10)
        task = asyncio.create_task(driver.run(collector))
        await collector.wait(lambda c: len(c.tags) >= 2)
        await sim.disconnect()
        with pytest.raises(DeviceDisconnectedError):
            await asyncio.wait_for(task, 10)
        sim.tags = POPULATION[2:4]
        before = len(collector.tags)
        async with running(driver, collector):
            await collector.wait(lambda c: len(c.tags) >= before + 2)
        new_epcs = {e.epc_hex for e in collector.tags[before:]}
        assert new_epcs == {t.epc.hex().upper() for t in POPULATION[2:4]}


# --- M100 module --------------------------------------------------------------------


async def test_m100_multi_poll_emits_reads() -> None:
    collector = Collector()
    async with M100ReaderSimulator(tags=POPULATION, faults=Faults(one_byte=True)) as sim:
        driver = make_driver("rfid-m100", sim.path)
        async with running(driver, collector):
            await collector.wait(lambda c: len(c.tags) >= 2 * len(POPULATION))
        # Cancelling the driver sends stop (0x28) after the multi-poll (0x27).
        await sim.wait_commands(2)
    assert [e.epc_hex for e in collector.tags[: len(POPULATION)]] == [
        t.epc.hex().upper() for t in POPULATION
    ]
    assert {e.antenna for e in collector.tags} == {1}
    assert collector.tags[0].rssi_dbm == float(POPULATION[0].rssi_dbm)


async def test_m100_empty_field_no_tag_noise_is_counted_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="devices.drivers")
    collector = Collector()
    async with M100ReaderSimulator(tags=[], round_interval=0.005) as sim:
        driver = make_driver("rfid-m100", sim.path)
        async with running(driver, collector):
            await asyncio.wait_for(sim.wait_sent(10), 10)
            sim.tags = POPULATION[:1]
            await collector.wait(lambda c: len(c.tags) >= 1)
    assert collector.tags[0].epc_hex == POPULATION[0].epc.hex().upper()
    # The stream is ordered: the ten empty rounds were handled before the tag.
    assert driver.no_tag_errors >= 10
    assert driver.stats.bad_frames == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_m100_bit_flips_are_caught_by_checksum_or_tag_crc() -> None:
    collector = Collector()
    faults = Faults(bitflip=0.3, junk=0.2, split=True, seed=5)
    async with M100ReaderSimulator(tags=POPULATION, faults=faults, round_interval=0.002) as sim:
        driver = make_driver("rfid-m100", sim.path)
        async with running(driver, collector):
            await collector.wait(lambda c: len(c.tags) >= 60)
            await collector.wait(lambda _: driver.stats.bad_frames > 0)
    assert {e.epc_hex for e in collector.tags} <= EPCS


async def test_m100_reconnect_restarts_polling() -> None:
    collector = Collector()
    async with M100ReaderSimulator(tags=POPULATION[:1], round_interval=0.005) as sim:
        driver = make_driver("rfid-m100", sim.path)
        task = asyncio.create_task(driver.run(collector))
        await collector.wait(lambda c: len(c.tags) >= 1)
        await sim.disconnect()  # polling stops with the old pty
        with pytest.raises(DeviceDisconnectedError):
            await asyncio.wait_for(task, 10)
        sim.tags = POPULATION[1:2]
        before = len(collector.tags)
        async with running(driver, collector):
            await collector.wait(lambda c: len(c.tags) >= before + 3)
        assert {e.epc_hex for e in collector.tags[before:]} == {POPULATION[1].epc.hex().upper()}
        assert collector.connected_count() == 2


async def test_m100_module_error_is_one_state_event_until_it_clears() -> None:
    collector = Collector()
    async with M100ReaderSimulator(
        tags=POPULATION[:1], error_code=0x17, round_interval=0.002
    ) as sim:
        path = sim.path
        driver = make_driver("rfid-m100", path)
        async with running(driver, collector):
            await asyncio.wait_for(sim.wait_sent(20), 10)  # twenty rounds of the error
            sim.error_code = None
            await collector.wait(lambda c: len(c.tags) >= 1)
    assert [(e.state, e.detail) for e in collector.states] == [
        (DeviceState.CONNECTED, path),
        (DeviceState.STATUS, "module error 0x17"),
        (DeviceState.STATUS, "recovered from: module error 0x17"),
    ]


async def test_m100_single_inventory_mode() -> None:
    collector = Collector()
    async with M100ReaderSimulator(tags=POPULATION[:2]) as sim:
        driver = make_driver("rfid-m100", sim.path, mode="single", inventory_interval_ms=10)
        async with running(driver, collector):
            await collector.wait(lambda c: len(c.tags) >= 4)
            await sim.wait_commands(2)
    assert sim.rounds >= 2
