"""The serial simulator commands, run as real processes, read by the real drivers;
and every ``pickedge sim`` command stopping cleanly on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from simulators.serial_scanner import DEMO_CODES
from tests.support.mosquitto import MosquittoBroker
from tests.support.processes import ProcessReaper, ignoring_sigint
from tests.support.serial_fixtures import Collector, make_driver, running

ROOT = Path(__file__).resolve().parents[2]

RUN_SIM = (
    "import sys, click; from simulators.serial_cli import commands; "
    "click.Group('sim', commands={c.name: c for c in commands})(sys.argv[1:])"
)


async def start(processes: ProcessReaper, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await processes.exec(
        sys.executable, "-c", RUN_SIM, *args, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    assert " simulator on " in line, line
    path = line.split(" simulator on ", 1)[1].split()[0]
    return proc, path


async def stop(proc: asyncio.subprocess.Process) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 20)


async def test_sim_scanner_command(processes: ProcessReaper) -> None:
    proc, path = await start(
        processes, "scanner", "--rate", "200", "--fault", "split", "--seed", "1"
    )
    collector = Collector()
    async with running(make_driver("serial-scanner", path), collector):
        await collector.wait(lambda c: len(c.scans) >= 2 * len(DEMO_CODES))
    known = {(c, a) for c, a in DEMO_CODES}
    # The driver joined mid-stream: its first scan may have lost its head.
    assert all((e.code, e.symbology) in known for e in collector.scans[1:])
    assert await stop(proc) == 0


async def test_sim_rfid_a0_command(processes: ProcessReaper) -> None:
    proc, path = await start(processes, "rfid-a0", "--tags", "3")
    collector = Collector()
    async with running(make_driver("rfid-a0", path, inventory_interval_ms=0), collector):
        await collector.wait(lambda c: len(c.tags) >= 6)
    assert len({e.epc_hex for e in collector.tags}) == 3
    assert all(e.epc_hex.startswith("3074257BF7194E4") for e in collector.tags)
    assert await stop(proc) == 0


async def test_sim_rfid_m100_command_with_fixed_epc(processes: ProcessReaper) -> None:
    proc, path = await start(
        processes, "rfid-m100", "--epc", "E2801160600002054CC2096F", "--round-ms", "5"
    )
    collector = Collector()
    async with running(make_driver("rfid-m100", path), collector):
        await collector.wait(lambda c: len(c.tags) >= 3)
    assert {e.epc_hex for e in collector.tags} == {"E2801160600002054CC2096F"}
    assert await stop(proc) == 0


# command, arguments, what it prints once it runs
SIMULATORS: dict[str, tuple[list[str], str]] = {
    "scanner": (["--rate", "50"], " simulator on "),
    "rfid-a0": (["--tags", "3"], " simulator on "),
    "rfid-m100": (["--tags", "3"], " simulator on "),
    "impinj": (["--rate", "50"], ": publishing "),
    "cloud": (["--port", "0"], "listening on "),
}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("command", list(SIMULATORS))
async def test_sim_command_stops_cleanly_with_sigint_ignored_by_its_parent(
    command: str,
    sig: signal.Signals,
    processes: ProcessReaper,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Started from a shell job or a service that ignores SIGINT (the child
    inherits SIG_IGN), ``pickedge sim`` still stops on SIGTERM and on SIGINT,
    runs its clean-up and exits 0, promptly."""
    args, ready = SIMULATORS[command]
    if command == "impinj":
        broker: MosquittoBroker = request.getfixturevalue("mosquitto_broker")
        password = tmp_path / "mqtt-password"
        password.write_text(broker.password + "\n")
        args = [*args, "--port", str(broker.port), "--password-file", str(password)]
    elif command == "cloud":
        secret = tmp_path / "box.secret"
        secret.write_text("s3cret-for-tests-only\n")
        args = [*args, "--secret-file", str(secret), "--db", str(tmp_path / "cloud.db")]
    proc = await processes.exec(
        sys.executable,
        "-m",
        "edge",
        "sim",
        command,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=ignoring_sigint,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    async with asyncio.timeout(20):
        while not any(ready in line for line in seen):
            line = (await proc.stdout.readline()).decode()
            assert line, f"{command} exited early: {''.join(seen)}"
            seen.append(line)
    await asyncio.sleep(0.2)  # running, not just starting
    proc.send_signal(sig)
    try:
        async with asyncio.timeout(5):
            out = await proc.stdout.read()
            code = await proc.wait()
    except TimeoutError:
        pytest.fail(f"{command} ignored {sig.name}: still running 5 s later")
    assert code == 0, f"{command} exited {code} on {sig.name}:\n{''.join(seen)}{out.decode()}"
    assert "Traceback" not in out.decode()
