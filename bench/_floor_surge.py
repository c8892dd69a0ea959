"""``bench/floor.py --surge``: scan latency at 5x the normal rate, with and
without peak protection (issue 13).

Runs the whole daemon (``python -m edge run``: the PDA API, the maintenance
tick checkpointing every second, the alert rules, the dashboard's
aggregation — everything a box runs), not the API alone, over the floor
benchmark's zone. ``--pdas`` simulated PDAs pick 10-line orders with a mean
think time before each scan: ``--think-ms`` at the normal rate, a fifth of it
in the surge (five times the scans a second, as at the start of a wave).
Four runs a repeat, each on a fresh zone and daemon, in rotated order:
protection off / on x normal / surge; ``[peak] rate_per_s`` sits between the
two rates. Each run lasts ``--seconds``; scans answered in its first
``--settle-s`` (the peak window filling) are left out.

Prints per cell the medians over ``--repeat`` runs of scans a second, scan
p50 and p99 (client-side, HTTP included), whether the box entered peak mode
and what it deferred (scraped from /metrics at the end of the run).

    .venv/bin/python bench/floor.py --surge              # 10 PDAs, 3 repeats of 25 s runs
    .venv/bin/python bench/floor.py --surge --quick      # 1 repeat of 8 s runs
    .venv/bin/python bench/floor.py --surge --json       # the runs as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp
import floor

from edge.store.db import Store

METRIC = re.compile(r"^(pickedge_peak_\w+|pickedge_inflow_per_second)(\{[^}]*\})? (\S+)$", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, port: int, *, protect: bool, rate_per_s: float) -> Path:
    (tmp / "scrape.token").write_text("surge-bench\n")
    (tmp / "scrape.token").chmod(0o600)
    config = tmp / "surge.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [box]
            id = "surge-box"
            [store]
            path = "floor.db"
            checkpoint_interval_s = 1
            [api]
            host = "127.0.0.1"
            port = {port}
            metrics_token_file = "scrape.token"
            [layout]
            aisles = {floor.AISLES}
            aisle_pitch_m = {floor.PITCH}
            blocks = {floor.BLOCKS}
            block_length_m = {floor.BLOCK_LEN}
            [peak]
            enabled = {"true" if protect else "false"}
            rate_per_s = {rate_per_s}
            window_s = 5
            """
        )
    )
    return config


class FullDaemon:
    """``python -m edge run`` in its own process, reaped on exit."""

    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.base = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> FullDaemon:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge",
            "run",
            "--config",
            str(self.config),
            cwd=floor.ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            async with aiohttp.ClientSession() as http:
                deadline = time.monotonic() + 60
                while True:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{self.base}/readyz") as r:
                            if r.status == 200:
                                break
                    if self.proc.returncode is not None or time.monotonic() > deadline:
                        raise RuntimeError("the daemon did not become ready")
                    await asyncio.sleep(0.1)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def scrape(self) -> dict[str, float]:
        headers = {"Authorization": "Bearer surge-bench"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.base}/metrics", headers=headers) as r,
        ):
            text = await r.text()
        return {name + labels: float(value) for name, labels, value in METRIC.findall(text)}

    async def __aexit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def one_run(args: argparse.Namespace, *, protect: bool, surge: bool) -> dict[str, Any]:
    rng = random.Random(args.seed)
    think_s = args.think_ms / 1000.0 / (5.0 if surge else 1.0)
    # enough 10-line orders that no PDA runs out within the run
    per_pda = max(4, int(args.seconds / (28 * (think_s + 0.01))) + 2)
    orders = [10] * per_pda
    with tempfile.TemporaryDirectory(prefix="pickedge-surge-") as tmp:
        port = free_port()
        config = write_config(Path(tmp), port, protect=protect, rate_per_s=args.rate_per_s)
        with Store.open(Path(tmp) / "floor.db", box_id="surge-box") as store:
            world = floor.seed(store, args.pdas, floor.classic_tasks(args.pdas, orders, rng))
        async with FullDaemon(config, port) as daemon:
            figures = floor.Figures()
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                pickers = [
                    asyncio.create_task(
                        floor.pda(
                            n,
                            daemon.base,
                            http,
                            world,
                            orders,
                            figures,
                            think_s,
                            0.0,
                            random.Random(args.seed + n),
                        )
                    )
                    for n in range(args.pdas)
                ]
                await asyncio.sleep(args.settle_s)
                figures.scan_ms.clear()  # the peak window filled: measure from here
                started = time.perf_counter()
                await asyncio.sleep(args.seconds - args.settle_s)
                wall = time.perf_counter() - started
                scans = list(figures.scan_ms)
                peak = await daemon.scrape()
                for task in pickers:
                    task.cancel()
                await asyncio.gather(*pickers, return_exceptions=True)
    deferred = {
        key.split('"')[1]: int(v)
        for key, v in peak.items()
        if key.startswith("pickedge_peak_deferred_total") and v
    }
    return {
        "scans_per_s": len(scans) / wall if wall else 0.0,
        "p50": floor.pct(scans, 50),
        "p99": floor.pct(scans, 99),
        "entered": int(peak.get("pickedge_peak_entered_total", 0)),
        "deferred": deferred,
        "errors": figures.errors[:3],
    }


CELLS = [(False, False), (True, False), (False, True), (True, True)]


async def run_surge(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[tuple[bool, bool], list[dict[str, Any]]] = {cell: [] for cell in CELLS}
    for r in range(args.repeat):
        for i in range(len(CELLS)):
            protect, surge = CELLS[(i + r) % len(CELLS)]
            runs[(protect, surge)].append(await one_run(args, protect=protect, surge=surge))
    return {"args": vars(args), "runs": runs}


def report(result: dict[str, Any]) -> None:
    args = result["args"]
    print(
        f"surge: {args['pdas']} PDAs, think {args['think_ms']:.0f} ms (surge "
        f"{args['think_ms'] / 5:.0f} ms), [peak] rate_per_s {args['rate_per_s']}, "
        f"{args['seconds']} s runs less {args['settle_s']} s settling, "
        f"medians over {args['repeat']} run(s)"
    )
    print(f"{'rate':8} {'protection':11} {'scans/s':>8} {'p50 ms':>8} {'p99 ms':>8}  peak mode")
    for protect, surge in CELLS:
        runs = result["runs"][(protect, surge)]

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        entered = sum(r["entered"] > 0 for r in runs)
        deferred: dict[str, int] = {}
        for r in runs:
            for k, v in r["deferred"].items():
                deferred[k] = deferred.get(k, 0) + v
        said = f"entered in {entered}/{len(runs)}"
        if deferred:
            said += "; deferred " + ", ".join(f"{k} {v}" for k, v in sorted(deferred.items()))
        print(
            f"{'5x' if surge else 'normal':8} {'on' if protect else 'off':11} "
            f"{med('scans_per_s'):8.1f} {med('p50'):8.2f} {med('p99'):8.2f}  {said}"
        )
        for r in runs:
            for e in r["errors"]:
                print(f"  error: {e}")
    on = statistics.median(r["p99"] for r in result["runs"][(True, True)])
    off = statistics.median(r["p99"] for r in result["runs"][(False, True)])
    print(f"surge scan p99 with protection / without: {on:.2f} / {off:.2f} ms = {on / off:.2f}")


def main(args: argparse.Namespace) -> None:
    if args.quick:
        args.repeat, args.seconds, args.settle_s = 1, 8.0, 3.0
    result = asyncio.run(run_surge(args))
    if args.json:
        runs = {
            f"{'surge' if surge else 'normal'}/{'on' if protect else 'off'}": r
            for (protect, surge), r in result["runs"].items()
        }
        print(json.dumps({"args": result["args"], "runs": runs}))
        return
    report(result)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("--surge")
    g.add_argument("--surge", action="store_true", help="the peak-protection benchmark")
    g.add_argument("--seconds", type=float, default=25.0, help="length of one run")
    g.add_argument("--settle-s", type=float, default=7.0, help="left out at the start of a run")
    g.add_argument(
        "--rate-per-s", type=float, default=60.0, help="[peak] rate_per_s (between the rates)"
    )
