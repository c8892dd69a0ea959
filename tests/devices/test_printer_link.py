"""PrinterLink and the zpl-printer driver against the real printer simulator on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator

import pytest

from devices.errors import (
    DeviceConfigError,
    DeviceDisconnectedError,
    PrinterFaultError,
    PrinterTimeoutError,
    PrinterUnavailableError,
)
from devices.events import DeviceState
from devices.printer.client import PrinterLink
from devices.printer.zpl import CartonLabel, render, render_batch
from devices.registry import driver_class
from simulators.printer import PrinterSimulator
from tests.support.serial_fixtures import Collector, make_driver, running

SSCCS = [
    "376123450000000016",
    "376123450000000023",
    "376123450000000030",
    "376123450000000047",
    "376123450000000054",
]
TIMEOUT = 0.5


def labels(n: int = 1) -> list[CartonLabel]:
    return [
        CartonLabel(sscc, "8001", "Zürich", "SO-4711", i, n)
        for i, sscc in enumerate(SSCCS[:n], start=1)
    ]


def printed_ssccs(sim: PrinterSimulator) -> list[str]:
    return [label.barcodes[0].data[2:] for label in sim.printed]


@pytest.fixture
async def sim() -> AsyncIterator[PrinterSimulator]:
    async with PrinterSimulator() as printer:
        yield printer


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- the link -----------------------------------------------------------------------


async def test_status_of_a_ready_printer(sim: PrinterSimulator) -> None:
    status = await PrinterLink(sim.url, timeout=TIMEOUT).status()
    assert status.ready and status.formats_in_buffer == 0
    assert sim.hs_answered == 1


async def test_print_job_prints_and_returns_the_status_after(sim: PrinterSimulator) -> None:
    status = await PrinterLink(sim.url, timeout=TIMEOUT).print_job(render_batch(labels(3)))
    assert status.ready
    assert printed_ssccs(sim) == SSCCS[:3]
    assert sim.connections == 1  # check, job, check: one connection
    assert sim.errors == []


async def test_send_hands_over_the_bytes(sim: PrinterSimulator) -> None:
    await PrinterLink(sim.url, timeout=TIMEOUT).send(render(labels()[0]))
    await sim.wait_for(lambda s: len(s.printed) == 1)
    assert printed_ssccs(sim) == SSCCS[:1]


@pytest.mark.parametrize("condition", ["paper-out", "head-open", "paused"])
async def test_a_faulted_printer_gets_nothing(sim: PrinterSimulator, condition: str) -> None:
    sim.set_condition(condition)
    with pytest.raises(PrinterFaultError) as raised:
        await PrinterLink(sim.url, timeout=TIMEOUT).print_job(render(labels()[0]))
    assert raised.value.problem == condition.replace("-", " ")
    assert raised.value.sent is False
    assert sim.printed == [] and sim.pending == []


async def test_paper_out_mid_batch_holds_the_rest_until_paper_is_back() -> None:
    async with PrinterSimulator(media=2) as sim:
        link = PrinterLink(sim.url, timeout=TIMEOUT)
        with pytest.raises(PrinterFaultError) as raised:
            await link.print_job(render_batch(labels(5)))
        assert (raised.value.problem, raised.value.sent) == ("paper out", True)
        assert printed_ssccs(sim) == SSCCS[:2]
        status = await link.status()
        assert status.paper_out and status.formats_in_buffer == 3
        sim.load_paper()
        assert printed_ssccs(sim) == SSCCS  # in order, each once
        assert (await link.status()).ready


async def test_connection_refused_is_unavailable_and_recovers(sim: PrinterSimulator) -> None:
    link = PrinterLink(sim.url, timeout=TIMEOUT)
    await sim.refuse()
    with pytest.raises(PrinterUnavailableError) as raised:
        await link.status()
    assert isinstance(raised.value, DeviceDisconnectedError)
    assert raised.value.code == "printer_unavailable"
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    with pytest.raises(PrinterUnavailableError):
        await link.print_job(render(labels()[0]))
    await sim.accept()
    assert (await link.status()).ready


async def test_nobody_listening_is_unavailable() -> None:
    with pytest.raises(PrinterUnavailableError):
        await PrinterLink(f"tcp://127.0.0.1:{free_port()}", timeout=TIMEOUT).status()


async def test_a_mute_printer_times_out_but_takes_the_job(sim: PrinterSimulator) -> None:
    sim.set_condition("mute")
    link = PrinterLink(sim.url, timeout=TIMEOUT)
    started = time.monotonic()
    with pytest.raises(PrinterTimeoutError) as raised:
        await link.status()
    elapsed = time.monotonic() - started
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 2.0
    assert isinstance(raised.value, TimeoutError) and raised.value.code == "printer_timeout"
    with pytest.raises(PrinterTimeoutError):
        await link.print_job(render(labels()[0]))
    await link.send(render(labels()[0]))  # raw 9100: bytes go in, no answer comes out
    await sim.wait_for(lambda s: len(s.printed) == 1)


async def test_a_serial_url_reaches_the_same_printer(sim: PrinterSimulator) -> None:
    link = PrinterLink(f"socket://127.0.0.1:{sim.port}", timeout=TIMEOUT)
    assert (await link.status()).ready
    await link.print_job(render_batch(labels(2)))
    assert printed_ssccs(sim) == SSCCS[:2]
    await sim.refuse()
    with pytest.raises(PrinterUnavailableError):
        await link.status()


async def test_one_link_never_overlaps_its_operations(sim: PrinterSimulator) -> None:
    link = PrinterLink(sim.url, timeout=TIMEOUT)
    jobs = [link.print_job(render(label)) for label in labels(3)]
    results = await asyncio.gather(*jobs, *(link.status() for _ in range(5)))
    assert all(r.ready for r in results)
    assert sorted(printed_ssccs(sim)) == SSCCS[:3]
    assert sim.max_concurrent == 1


@pytest.mark.parametrize("url", ["", "tcp://", "tcp://host:port", "tcp://host:9100/x"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(DeviceConfigError):
        PrinterLink(url)


# --- the driver ------------------------------------------------------------------------


def statuses(collector: Collector) -> list[str]:
    return [e.detail for e in collector.states if e.state is DeviceState.STATUS]


async def test_driver_reports_each_change_once(sim: PrinterSimulator) -> None:
    collector = Collector()
    driver = make_driver("zpl-printer", sim.url, poll_s=0.02, timeout_s=TIMEOUT)
    async with running(driver, collector):
        await collector.wait(lambda c: statuses(c) == ["ready"])
        sim.set_condition("paper-out")
        await collector.wait(lambda c: len(statuses(c)) == 2)
        polls = sim.hs_answered
        await sim.wait_for(lambda s: s.hs_answered >= polls + 5)  # five more polls, no news
        sim.set_condition("head-open")
        await collector.wait(lambda c: len(statuses(c)) == 3)
        sim.set_condition("head-open", False)
        sim.set_condition("paper-out", False)
        await collector.wait(lambda c: len(statuses(c)) == 4)
        polls = sim.hs_answered
        await sim.wait_for(lambda s: s.hs_answered >= polls + 5)
        status = await driver.print_job(render(labels()[0]))
        assert status.ready
    assert statuses(collector) == ["ready", "paper out", "head open, paper out", "ready"]
    assert collector.connected_count() == 1
    assert printed_ssccs(sim) == SSCCS[:1]
    assert driver.stats.frames >= 10 and driver.stats.bad_frames == 0
    assert driver.stats.connected is False


async def test_driver_ends_with_the_link_error_when_the_printer_goes(
    sim: PrinterSimulator,
) -> None:
    collector = Collector()
    driver = make_driver("zpl-printer", sim.url, poll_s=0.02, timeout_s=TIMEOUT)
    async with running(driver, collector) as task:
        sim.set_condition("mute")
        with pytest.raises(PrinterTimeoutError):
            await asyncio.wait_for(task, 10)
    assert driver.stats.connected is False
    assert "no ~HS answer" in (driver.stats.last_error or "")
    await sim.refuse()
    with pytest.raises(PrinterUnavailableError):  # never connected: no event at all
        await asyncio.wait_for(driver.run(collector), 10)
    assert collector.connected_count() == 1


@contextlib.asynccontextmanager
async def garbling_printer(answers: int) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A fake printer in front of nothing: it answers every ~HS with garbage and
    sets the event once ``answers`` requests came (so all before were read)."""
    asked = 0
    enough = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal asked
        with contextlib.suppress(ConnectionError):
            while await reader.read(100):
                asked += 1
                if asked >= answers:
                    enough.set()
                writer.write(b"\x02garbage\x03\r\n" * 3)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}", enough
    finally:
        server.close()


async def test_driver_counts_garbled_answers_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = Collector()
    async with garbling_printer(answers=6) as (url, enough):
        driver = make_driver("zpl-printer", url, poll_s=0.02, timeout_s=TIMEOUT)
        with caplog.at_level(logging.WARNING, logger="devices.drivers.zpl_printer"):
            async with running(driver, collector):
                await asyncio.wait_for(enough.wait(), 10)
    assert driver.stats.bad_frames >= 5
    assert statuses(collector) == []  # an unreadable answer is no status
    assert collector.connected_count() == 1  # it does answer
    assert driver.stats.frames == 0
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1, messages  # five and more garbled answers, one line
    assert "garbled ~HS answer" in messages[0] and "not 12 and 11" in messages[0]


@pytest.mark.parametrize(
    "options",
    [{"poll_s": 0}, {"poll_s": "5"}, {"timeout_s": True}, {"baudrate": 1234}, {"speed": 1}],
)
def test_driver_options_are_checked(options: dict[str, object]) -> None:
    with pytest.raises(DeviceConfigError):
        driver_class("zpl-printer").check_options(options)


def test_driver_options_accept_integers_from_toml() -> None:
    driver_class("zpl-printer").check_options({"poll_s": 5, "timeout_s": 2.5, "baudrate": 9600})
