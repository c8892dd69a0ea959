"""The serial simulator commands, run as real processes, read by the real drivers."""

from __future__ import annotations

import asyncio
import signal
import sys

from simulators.serial_scanner import DEMO_CODES
from tests.support.serial_fixtures import Collector, make_driver, running

RUN_SIM = (
    "import sys, click; from simulators.serial_cli import commands; "
    "click.Group('sim', commands={c.name: c for c in commands})(sys.argv[1:])"
)


async def start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_SIM, *args, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    assert " simulator on " in line, line
    path = line.split(" simulator on ", 1)[1].split()[0]
    return proc, path


async def stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGINT)
    return await asyncio.wait_for(proc.wait(), 20)


async def test_sim_scanner_command() -> None:
    proc, path = await start("scanner", "--rate", "200", "--fault", "split", "--seed", "1")
    try:
        collector = Collector()
        async with running(make_driver("serial-scanner", path), collector):
            await collector.wait(lambda c: len(c.scans) >= 2 * len(DEMO_CODES))
        known = {(c, a) for c, a in DEMO_CODES}
        # The driver joined mid-stream: its first scan may have lost its head.
        assert all((e.code, e.symbology) in known for e in collector.scans[1:])
    finally:
        assert await stop(proc) == 0


async def test_sim_rfid_a0_command() -> None:
    proc, path = await start("rfid-a0", "--tags", "3")
    try:
        collector = Collector()
        async with running(make_driver("rfid-a0", path, inventory_interval_ms=0), collector):
            await collector.wait(lambda c: len(c.tags) >= 6)
        assert len({e.epc_hex for e in collector.tags}) == 3
        assert all(e.epc_hex.startswith("3074257BF7194E4") for e in collector.tags)
    finally:
        assert await stop(proc) == 0


async def test_sim_rfid_m100_command_with_fixed_epc() -> None:
    proc, path = await start("rfid-m100", "--epc", "E2801160600002054CC2096F", "--round-ms", "5")
    try:
        collector = Collector()
        async with running(make_driver("rfid-m100", path), collector):
            await collector.wait(lambda c: len(c.tags) >= 3)
        assert {e.epc_hex for e in collector.tags} == {"E2801160600002054CC2096F"}
    finally:
        assert await stop(proc) == 0
