"""Idle footprint: the memory and CPU of the real ``pickedge run`` doing nothing.

Issue 13 asks for an idle daemon (no devices configured) of at most 50 MB RSS
and under 0.5 % of one core; before the lazy imports it held 68.6 MB (the
issue's figure; ThingsBoard's IoT gateway on the same box: 61.5 MB). Each
scenario starts the daemon (``python -m edge run``, exactly what the systemd
unit runs) on a fresh temporary configuration and store, waits until
``/readyz`` answers and then ``--settle`` seconds more, and samples for
``--seconds``:

- RSS of the daemon (``VmRSS`` of ``/proc/PID/status``, every second; the last
  sample is reported, the peak ``VmHWM`` beside it) and of each child process
  apart (the cart batcher's searcher and worker, multiprocessing's resource
  tracker), with the total of all, and the total PSS (``smaps_rollup``:
  shared library pages split between the processes that map them, so the
  total is not counted twice);
- CPU: user + system ticks of the daemon and of its children over the window,
  as a percentage of one core.

Scenarios (``--only`` picks some):

- ``idle``: the smallest configuration: ``[box]``, ``[store]``, ``[api]``; no
  devices, no cloud, carts off (the default ``totes = 1``);
- ``carts``: the same with ``[carts] totes = 4``: the batcher's searcher and
  background worker processes run;
- ``floor``: devices and 10 PDAs connected: a serial scanner on a pty
  (:mod:`simulators.serial_scanner`), an Impinj RFID reader over a real
  Mosquitto (:mod:`simulators.rfid_mqtt`), a ZPL printer on TCP
  (:mod:`simulators.printer`); each device sends a little first (a GS1 scan,
  an SSCC-96 tag read), so the code decoding is loaded, then stays connected
  and quiet; 10 PDAs log in and keep their WebSockets open.

The median of ``--runs`` runs is printed for each figure, against the goal and
the baselines. ``--quick`` (1 run, 5 s window, 2 s settle) is for the smoke test
(tests/bench/test_bench_idle.py) and ``./dev.sh bench``.

    .venv/bin/python bench/idle.py                 # 3 runs of 60 s per scenario
    .venv/bin/python bench/idle.py --quick
    .venv/bin/python bench/idle.py --only idle --runs 5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.api.auth import add_picker, enroll_pda  # noqa: E402
from edge.store.db import Store  # noqa: E402

GOAL_MB = 50.0
GOAL_CPU_PCT = 0.5
BEFORE_MB = 68.6  # issue 13: the idle daemon before this work
THINGSBOARD_MB = 61.5  # issue 13: ThingsBoard's IoT gateway, same box
SCENARIOS = ("idle", "carts", "floor")
PAGE_KB = os.sysconf("SC_PAGESIZE") // 1024
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- /proc


def status_kb(pid: int, key: str) -> float:
    """A ``kB`` field of /proc/PID/status (0.0 when the process is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return 0.0


def pss_kb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return float(line.split()[1])
    return 0.0


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        kids = sorted(c for c, pp in parent.items() if pp == p)
        found += kids
        frontier += kids
    return found


def role_of(pid: int) -> str:
    """What a child of the daemon is, from its command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "multiprocessing" in cmd:
        nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        return {5: "cart searcher", 19: "cart worker"}.get(nice, f"worker (nice {nice})")
    return cmd[:40]


# --------------------------------------------------------------------------- one run


@dataclass
class Sample:
    scenario: str
    daemon_rss_mb: float = 0.0
    daemon_hwm_mb: float = 0.0
    children_rss_mb: dict[str, float] = field(default_factory=dict)
    total_rss_mb: float = 0.0
    total_pss_mb: float = 0.0
    daemon_cpu_pct: float = 0.0
    children_cpu_pct: float = 0.0
    threads: int = 0
    window_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_config(tmp: Path, port: int) -> str:
    return textwrap.dedent(
        f"""\
        [box]
        id = "idle-box"
        [store]
        path = "idle.db"
        [api]
        host = "127.0.0.1"
        port = {port}
        """
    )


class Floor:
    """The ``floor`` scenario's devices: Mosquitto, a pty scanner, an MQTT
    reader, a TCP printer; started before the daemon, stopped after it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.stack = contextlib.AsyncExitStack()
        self.broker: Any = None
        self.scanner: Any = None
        self.reader: Any = None
        self.printer_port = 0

    async def __aenter__(self) -> Floor:
        from simulators.broker import MosquittoBroker
        from simulators.printer import PrinterSimulator
        from simulators.serial_scanner import ScannerSimulator

        self.broker = MosquittoBroker(self.tmp / "mosquitto")
        self.broker.start()
        self.stack.callback(self.broker.stop)
        self.scanner = await self.stack.enter_async_context(ScannerSimulator(suffix="crlf"))
        printer = await self.stack.enter_async_context(PrinterSimulator(port=0))
        self.printer_port = printer.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()

    def config(self) -> str:
        secret = self.tmp / "mqtt.password"
        secret.write_text(self.broker.password + "\n")
        secret.chmod(0o600)
        return textwrap.dedent(
            f"""\
            [mqtt]
            host = "127.0.0.1"
            port = {self.broker.port}
            username = "{self.broker.username}"
            password_file = "mqtt.password"
            client_id_prefix = "idle"

            [shipping]
            gs1_prefix = "7612345"
            sscc_extension = 1
            door = "dock-1"

            [[devices]]
            id = "pack-1-scanner"
            driver = "serial-scanner"
            role = "pack_station"
            url = "{self.scanner.path}"
            bound_to = "pack-1"

            [[devices]]
            id = "pack-1-printer"
            driver = "zpl-printer"
            role = "pack_station"
            url = "tcp://127.0.0.1:{self.printer_port}"
            bound_to = "pack-1"

            [[devices]]
            id = "dock-1-portal"
            driver = "impinj-iot"
            role = "dock_door"
            topic = "impinj/dock-1/events"
            bound_to = "dock-1"
            """
        )

    async def first_use(self) -> None:
        """A scan and a few tag reads: the daemon decodes a GS1 code and an EPC."""
        from devices.driver import MqttSettings
        from simulators.rfid_mqtt import ImpinjReaderSim

        await self.scanner.send("0109521234543213", "]C1")
        settings: MqttSettings = self.broker.settings(prefix="idle-sim")
        async with ImpinjReaderSim(
            settings, reader_id="dock-1", topic="impinj/dock-1/events", tags=5, rate=0
        ) as reader:
            await reader.pass_portal(["376123450000000016"], company_prefix_digits=7)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def wait_ready(proc: asyncio.subprocess.Process, base: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"the daemon exited: {tail(log)}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the daemon was not ready within 60 s: {tail(log)}")


async def connect_pdas(
    base: str, keys: list[str], stack: contextlib.AsyncExitStack
) -> list[aiohttp.ClientWebSocketResponse]:
    """Each PDA logs in and opens its WebSocket (kept open by ``stack``)."""
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    for n, key in enumerate(keys):
        http = await stack.enter_async_context(aiohttp.ClientSession())
        async with http.post(
            f"{base}/api/v1/sessions", json={"badge": f"BADGE-{n}"}, headers={"X-Device-Key": key}
        ) as r:
            body = await r.json()
            if r.status not in (200, 201):
                raise RuntimeError(f"PDA {n} login: {r.status} {body}")
        auth = {"Authorization": f"Bearer {body['token']}", "X-Device-Key": key}
        ws = await http.ws_connect(f"{base}/api/v1/ws", headers=auth, heartbeat=30)
        stack.push_async_callback(ws.close)
        async with http.get(f"{base}/api/v1/tour", headers=auth) as r:
            await r.read()
        sockets.append(ws)
    return sockets


async def run_once(scenario: str, args: argparse.Namespace) -> Sample:
    sample = Sample(scenario)
    with tempfile.TemporaryDirectory(prefix="pickedge-idle-") as tmpdir:
        tmp = Path(tmpdir)
        port = free_port()
        text = base_config(tmp, port)
        keys: list[str] = []
        async with contextlib.AsyncExitStack() as stack:
            floor: Floor | None = None
            if scenario == "carts":
                text += "[carts]\ntotes = 4\n"
            if scenario == "floor":
                floor = await stack.enter_async_context(Floor(tmp))
                text += floor.config()
                with Store.open(tmp / "idle.db", box_id="idle-box") as store:
                    for n in range(args.pdas):
                        add_picker(store, f"P{n}", f"Picker {n}", f"BADGE-{n}")
                        keys.append(enroll_pda(store, f"pda-{n}")[1])
            config = tmp / "pickedge.toml"
            config.write_text(text)
            log = tmp / "daemon.log"
            env = {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}
            with log.open("wb") as out:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    *("-m", "edge", "run", "--config", str(config), "--log-level", "warning"),
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=out,
                )
            try:
                base = f"http://127.0.0.1:{port}"
                await wait_ready(proc, base, log)
                if floor is not None:
                    await connect_pdas(base, keys, stack)
                    await floor.first_use()
                await asyncio.sleep(args.settle)
                await measure(proc.pid, sample, args.seconds)
                if proc.returncode is not None:
                    raise RuntimeError(f"the daemon exited: {log.read_text()[-2000:]}")
            finally:
                await stop(proc)
            errors = [
                line
                for line in log.read_text(errors="replace").splitlines()
                if " ERROR " in line or "Traceback" in line
            ]
            sample.notes += errors[:5]
    return sample


async def measure(pid: int, sample: Sample, seconds: float) -> None:
    kids = children_of(pid)
    t0 = time.monotonic()
    ticks0 = {p: cpu_ticks(p) for p in (pid, *kids)}
    rss: list[float] = []
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(min(1.0, max(0.0, seconds - (time.monotonic() - t0))))
        rss.append(status_kb(pid, "VmRSS"))
    window = time.monotonic() - t0
    kids_now = children_of(pid)
    ticks1 = {p: cpu_ticks(p) for p in (pid, *kids_now)}
    sample.window_s = window
    sample.daemon_rss_mb = rss[-1] / 1024
    sample.daemon_hwm_mb = status_kb(pid, "VmHWM") / 1024
    sample.threads = int(status_kb(pid, "Threads"))
    for p in kids_now:
        role = role_of(p)
        sample.children_rss_mb[role] = sample.children_rss_mb.get(role, 0.0) + (
            status_kb(p, "VmRSS") / 1024
        )
    sample.total_rss_mb = sample.daemon_rss_mb + sum(sample.children_rss_mb.values())
    sample.total_pss_mb = sum(pss_kb(p) for p in (pid, *kids_now)) / 1024
    used = {p: ticks1[p] - ticks0.get(p, 0) for p in ticks1}
    sample.daemon_cpu_pct = used[pid] * TICK_S / window * 100
    sample.children_cpu_pct = sum(v for p, v in used.items() if p != pid) * TICK_S / window * 100


async def stop(proc: asyncio.subprocess.Process) -> None:
    kids = children_of(proc.pid)
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    for p in kids:  # PR_SET_PDEATHSIG takes them along; never leave one behind
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)


# --------------------------------------------------------------------------- report


def median(samples: list[Sample], key: str) -> float:
    return statistics.median(getattr(s, key) for s in samples)


def summary(scenario: str, samples: list[Sample]) -> dict[str, Any]:
    roles = sorted({r for s in samples for r in s.children_rss_mb})
    return {
        "scenario": scenario,
        "runs": len(samples),
        "window_s": round(median(samples, "window_s"), 1),
        "daemon_rss_mb": round(median(samples, "daemon_rss_mb"), 1),
        "daemon_hwm_mb": round(median(samples, "daemon_hwm_mb"), 1),
        "children_rss_mb": {
            r: round(statistics.median(s.children_rss_mb.get(r, 0.0) for s in samples), 1)
            for r in roles
        },
        "total_rss_mb": round(median(samples, "total_rss_mb"), 1),
        "total_pss_mb": round(median(samples, "total_pss_mb"), 1),
        "daemon_cpu_pct": round(median(samples, "daemon_cpu_pct"), 2),
        "children_cpu_pct": round(median(samples, "children_cpu_pct"), 2),
        "threads": int(median(samples, "threads")),
        "notes": [n for s in samples for n in s.notes],
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"pickedge run, idle: median of {args.runs} run(s), {args.seconds:g} s window "
        f"after {args.settle:g} s settle; {os.cpu_count()} cores; Python "
        f"{sys.version.split()[0]}"
    )
    head = (
        f"{'scenario':<9} {'daemon RSS':>10} {'peak':>6} {'children RSS':>24} "
        f"{'total RSS':>9} {'PSS':>6} {'CPU daemon':>10} {'children':>8} {'threads':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        kids = ", ".join(f"{k} {v:.1f}" for k, v in r["children_rss_mb"].items()) or "-"
        print(
            f"{r['scenario']:<9} {r['daemon_rss_mb']:>7.1f} MB {r['daemon_hwm_mb']:>6.1f} "
            f"{kids:>24} {r['total_rss_mb']:>6.1f} MB {r['total_pss_mb']:>6.1f} "
            f"{r['daemon_cpu_pct']:>9.2f}% {r['children_cpu_pct']:>7.2f}% {r['threads']:>7}"
        )
    idle = next((r for r in results if r["scenario"] == "idle"), None)
    if idle is not None:
        rss, cpu = idle["daemon_rss_mb"], idle["daemon_cpu_pct"]
        verdict = "met" if rss <= GOAL_MB and cpu < GOAL_CPU_PCT else "NOT met"
        print(
            f"idle, no devices: {rss:.1f} MB RSS, {cpu:.2f} % of a core -> goal "
            f"(<= {GOAL_MB:g} MB, < {GOAL_CPU_PCT:g} %) {verdict}; before: {BEFORE_MB} MB "
            f"({rss - BEFORE_MB:+.1f}); ThingsBoard IoT gateway: {THINGSBOARD_MB} MB "
            f"({rss - THINGSBOARD_MB:+.1f})"
        )
    for r in results:
        for note in r["notes"]:
            print(f"  {r['scenario']}: daemon logged: {note}")


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for scenario in args.only:
        samples = [await run_once(scenario, args) for _ in range(args.runs)]
        results.append(summary(scenario, samples))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run, 5 s window, 2 s settle")
    parser.add_argument("--runs", type=int, default=None, help="runs per scenario (3)")
    parser.add_argument("--seconds", type=float, default=None, help="sampling window (60)")
    parser.add_argument("--settle", type=float, default=None, help="wait after ready (10)")
    parser.add_argument("--pdas", type=int, default=10, help="PDAs in the floor scenario")
    parser.add_argument(
        "--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="scenarios"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (5.0 if args.quick else 60.0)
    args.settle = args.settle if args.settle is not None else (2.0 if args.quick else 10.0)
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps({"args": vars(args), "results": results}, indent=2))
    else:
        report(results, args)


if __name__ == "__main__":
    main()
