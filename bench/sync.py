"""Sync benchmark: drain an outage backlog to the cloud simulator over loopback.

    .venv/bin/python bench/sync.py            # 500,000 events (≈ 72 h of a busy zone)
    .venv/bin/python bench/sync.py --quick    # 50,000 events

Figures printed:

- drain rate (events/s) of the uploader from a backlog of N events to the
  cloud simulator running in its own process on loopback (msgpack batches,
  raw payload pass-through, one transaction per ack);
- peak RSS (VmHWM) of the draining process — the backlog is built by a child
  process so its page cache does not count;
- floor latency during the drain: p50/p99 of real PDA scans (``POST
  /api/v1/scan``) of ``--pdas`` simulated PDAs (bench/floor.py's) against the PDA
  API (``python -m edge.api``) on the same database; without the PDA API, the
  stand-in is the commit latency of one ``store.write`` of stock_delta +
  pick_confirmed every 20 ms (``--stand-in`` forces it);
- durable outbox commit rate on this machine (``synchronous=FULL``), with 1
  and 2 events per transaction.

Goals: ≥ 20,000 events/s drained with RSS ≤ 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloud_sync.client import SyncClient  # noqa: E402
from cloud_sync.events import PickConfirmed, StockDelta, StockReason  # noqa: E402
from cloud_sync.uploader import Uploader  # noqa: E402
from edge.store import Store, Transaction  # noqa: E402
from edge.store.outbox import send_state  # noqa: E402
from edge.store.sync_state import StoreOutbox  # noqa: E402

BOX = "bench-box"
SECRET = "bench-secret"


def fact(tx: Transaction, rng: random.Random, n: int) -> None:
    sku, loc = f"SKU-{rng.randrange(2000):05d}", f"A{rng.randrange(40):02d}-{rng.randrange(60):02d}"
    qty = rng.randint(1, 4)
    tx.append(
        StockDelta(
            sku=sku, location=loc, qty=-qty, reason=StockReason.PICK, ref=f"T{n:08d}", lot=None
        )
    )
    tx.append(
        PickConfirmed(
            task=f"T{n:08d}",
            order=f"O{n:08d}",
            line="1",
            sku=sku,
            location=loc,
            qty=qty,
            picker=f"p{rng.randrange(30)}",
            codes=(f"0104000000{n % 10**6:06d}",),
        )
    )


def build(path: Path, events: int) -> None:
    rng = random.Random(1)
    with Store.open(path, box_id=BOX) as store:
        n = 0
        while n * 2 < events:
            with store.transaction() as tx:
                for _ in range(min(2500, (events - n * 2 + 1) // 2)):
                    fact(tx, rng, n)
                    n += 1


def vm_hwm_mb() -> float:
    """Peak resident set of this process in MB (VmHWM; ru_maxrss without /proc)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def drain(path: Path, url: str, batch_events: int, pdas: PdaFloor | None) -> dict[str, float]:
    store = Store.open(path, box_id=BOX)
    next_seq = send_state(store).next_seq
    total = next_seq - 1
    latencies: list[float] = []
    stop = asyncio.Event()

    async def floor() -> None:
        if pdas is not None:
            await pdas.run(latencies, stop)
            return
        rng = random.Random(2)
        n = 10**7
        while not stop.is_set():
            started = time.perf_counter()
            await store.write(lambda tx, n=n: fact(tx, rng, n))
            latencies.append((time.perf_counter() - started) * 1000)
            n += 1
            await asyncio.sleep(0.02)

    async with SyncClient(url, BOX, SECRET, timeout_s=30) as client:
        up = Uploader(
            StoreOutbox(store), client, batch_max_events=batch_events, batch_max_bytes=1_048_576
        )
        floor_task = asyncio.create_task(floor())
        started = time.perf_counter()
        acked = 0
        while acked < total:
            acked = await up.send_all()
        seconds = time.perf_counter() - started
        stop.set()
        await floor_task
        if pdas is not None and pdas.errors:
            raise RuntimeError(f"PDA scans failed during the drain: {pdas.errors[:3]}")
        await up.send_all()  # the floor's own events too
    store.close()
    latencies.sort()
    return {
        "events": total,
        "seconds": seconds,
        "rate": total / seconds,
        "rss_mb": vm_hwm_mb(),
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "floor_commits": len(latencies),
    }


class PdaFloor:
    """Simulated PDAs (bench/floor.py) scanning through the real PDA API process."""

    PDAS_ORDERS = [10, 30] * 20  # more than a drain lasts; they are stopped with it

    def __init__(self, db: Path, pdas: int, think_s: float) -> None:
        import floor  # bench/floor.py, beside this file

        self.floor = floor
        self.db = db
        self.pdas = pdas
        self.think_s = think_s
        self.errors: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.base = ""
        with Store.open(db, box_id=BOX) as store:
            self.world = floor.seed(store, pdas, self.PDAS_ORDERS, random.Random(7))

    def start(self) -> None:
        f = self.floor
        config = self.db.with_suffix(".toml")
        config.write_text(
            f'[box]\nid = "{BOX}"\n[store]\npath = "{self.db.name}"\n'
            f'[api]\nhost = "127.0.0.1"\nport = 0\n'
            f"[layout]\naisles = {f.AISLES}\naisle_pitch_m = {f.PITCH}\n"
            f"blocks = {f.BLOCKS}\nblock_length_m = {f.BLOCK_LEN}\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.api", "--config", str(config), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        self.base = f"http://127.0.0.1:{int(self.proc.stdout.readline().split()[1])}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    async def run(self, latencies: list[float], stop: asyncio.Event) -> None:
        import aiohttp

        figures = self.floor.Figures()
        figures.scan_ms = latencies
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            tasks = [
                asyncio.create_task(
                    self.floor.pda(
                        n,
                        self.base,
                        http,
                        self.world,
                        self.PDAS_ORDERS,
                        figures,
                        self.think_s,
                        0.0,
                        random.Random(n),
                    )
                )
                for n in range(self.pdas)
            ]
            await stop.wait()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.errors = figures.errors


def commit_rate(path: Path, per_tx: int, seconds: float = 3.0) -> float:
    rng = random.Random(3)
    with Store.open(path, box_id=BOX) as store:
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            with store.transaction() as tx:
                if per_tx == 1:
                    tx.append(
                        StockDelta(
                            sku="S",
                            location="L",
                            qty=-1,
                            reason=StockReason.PICK,
                            ref=None,
                            lot=None,
                        )
                    )
                else:
                    fact(tx, rng, count)
            count += 1
        return count / (time.perf_counter() - started)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--quick", action="store_true", help="50,000 events")
    ap.add_argument(
        "--batch-events",
        type=int,
        default=5000,
        help="cloud.batch_max_events for the drain (default 5000)",
    )
    ap.add_argument("--pdas", type=int, default=10, help="simulated PDAs scanning meanwhile")
    ap.add_argument(
        "--think-ms",
        type=float,
        default=500.0,
        help="mean pause of a picker before each scan (0: flat out)",
    )
    ap.add_argument(
        "--stand-in", action="store_true", help="time plain store writes instead of PDA scans"
    )
    ap.add_argument("--build", nargs=2, metavar=("DB", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build:
        build(Path(args.build[0]), int(args.build[1]))
        return
    events = 50_000 if args.quick else args.events
    with tempfile.TemporaryDirectory(prefix="pickedge-bench-") as tmp:
        d = Path(tmp)
        db = d / "box.db"
        pdas: PdaFloor | None = None
        if not args.stand_in and importlib.util.find_spec("edge.api") is not None:
            pdas = PdaFloor(
                db, args.pdas, args.think_ms / 1000
            )  # seeds the zone first; the backlog goes on top
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build", str(db), str(events)], check=True)
        build_s = time.perf_counter() - t0
        secret = d / "secret"
        secret.write_text(SECRET)
        secret.chmod(0o600)
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.cloud",
                "--port",
                "0",
                "--secret-file",
                str(secret),
                "--tasks",
                "0",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert sim.stdout is not None
            url = sim.stdout.readline().split()[-1]
            if pdas is not None:
                pdas.start()
            result = asyncio.run(drain(db, url, args.batch_events, pdas))
        finally:
            sim.terminate()
            sim.wait(timeout=10)
            if pdas is not None:
                pdas.stop()
        rate1 = commit_rate(d / "c1.db", 1)
        rate2 = commit_rate(d / "c2.db", 2)

    print(f"\nPickEdge sync benchmark — {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"backlog of {events:,} events built in {build_s:.1f} s (child process)\n")
    rows = [
        ("backlog drained", f"{result['events']:,} events in {result['seconds']:.1f} s"),
        ("drain rate", f"{result['rate']:,.0f} events/s   (goal ≥ 20,000)"),
        ("peak RSS of the drainer", f"{result['rss_mb']:.0f} MB   (goal ≤ 150 MB, VmHWM)"),
        ("batch size", f"{args.batch_events} events / ≤ 1 MiB"),
        (
            "PDA scan p50 / p99" if pdas else "floor commit p50 / p99",
            f"{result['p50_ms']:.1f} / {result['p99_ms']:.1f} ms during the drain ("
            + (
                f"{result['floor_commits']} scans of {args.pdas} PDAs via the PDA API, "
                f"think {args.think_ms:.0f} ms)"
                if pdas
                else f"{result['floor_commits']} commits; stand-in: store writes, no PDA API)"
            ),
        ),
        ("durable commits, 1 event/tx", f"{rate1:,.0f} tx/s (synchronous=FULL)"),
        ("durable commits, 2 events/tx", f"{rate2:,.0f} tx/s (synchronous=FULL)"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'figure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
