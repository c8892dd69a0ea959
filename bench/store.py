"""Durable outbox commits on this box, and how long a commit can be kept waiting.

Each transaction writes one change and its outbox event(s) with WAL and
synchronous=FULL: when commit returns, the fact is on disk. Prints commits/s and
the p50/p99 commit latency for 1 and 2 events per transaction, sync and through
the async writer thread the daemon uses. Field gateways publish no such figure.

Then write stalls (issue 17, finding 8): scan-like commits (a stock change and
two events, through the async writer, one every 5 ms) while maintenance ticks
every 0.2 s — far more checkpoints than the daemon's 30 s — alone, while real
``pickedge db backup`` processes copy the database back to back, and while a
reader holds one snapshot all along (a backup to slow media). Prints p50 / p99 /
max commit latency and the WAL's size, then the WAL once the reader is gone and
maintenance sees the box idle.

    .venv/bin/python bench/store.py            # 3 rounds of 2,000 commits per case
    .venv/bin/python bench/store.py --quick
    .venv/bin/python bench/store.py --only stall --seconds 5 --pad-mb 128
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cloud_sync.events import PickConfirmed, StockDelta, StockReason
from edge.maintenance import Maintenance
from edge.store import Store, Transaction


def _one_change(events: int, n: int) -> Callable[[Transaction], None]:
    def fn(tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO stock (sku, location, qty) VALUES (?, 'L-01', 1) "
            "ON CONFLICT (sku, location, lot) DO UPDATE SET qty = qty - 1",
            (f"S{n % 500}",),
        )
        tx.append(
            StockDelta(
                sku=f"S{n % 500}",
                location="L-01",
                qty=-1,
                reason=StockReason.PICK,
                ref="T-1",
                lot=None,
            )
        )
        if events == 2:
            tx.append(
                PickConfirmed(
                    task="T-1",
                    order="O-1",
                    line="1",
                    sku=f"S{n % 500}",
                    location="L-01",
                    qty=1,
                    picker="P-1",
                    codes=("09521234543213",),
                )
            )

    return fn


def run_sync(store: Store, events: int, count: int) -> list[float]:
    lat = []
    for n in range(count):
        t0 = time.perf_counter()
        store.run(_one_change(events, n))
        lat.append(time.perf_counter() - t0)
    return lat


async def run_async(store: Store, events: int, count: int) -> list[float]:
    lat = []
    for n in range(count):
        t0 = time.perf_counter()
        await store.write(_one_change(events, n))
        lat.append(time.perf_counter() - t0)
    return lat


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _wal(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def _pad(store: Store, megabytes: int) -> None:
    """Grow the database to about ``megabytes`` so a backup takes a while."""
    blob = "x" * 4000
    for chunk in range(megabytes * 256 // 500 + 1):
        with store.transaction() as tx:
            tx.executemany(
                "INSERT INTO items (sku, description) VALUES (?, ?)",
                ((f"PAD-{chunk}-{i}", blob) for i in range(500)),
            )
    store.checkpoint()


def _backups(workdir: Path, config: Path, stop: threading.Event, done: list[float]) -> None:
    """``pickedge db backup`` processes, back to back, until ``stop``."""
    n = 0
    while not stop.is_set():
        n += 1
        dest = workdir / f"backup-{n}.db"
        t0 = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "edge", "db", "backup", str(dest), "--config", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            print(f"backup failed: {result.stderr.strip()}", file=sys.stderr)
            return
        done.append(time.perf_counter() - t0)
        dest.unlink()


async def _stall_case(
    store: Store, maintenance: Maintenance, seconds: float, start: int
) -> tuple[list[float], list[float]]:
    """Scan-like commits every 5 ms and maintenance ticks every 0.2 s for
    ``seconds``; returns the commit and the tick latencies."""
    commits: list[float] = []
    ticks: list[float] = []
    deadline = time.perf_counter() + seconds

    async def writer() -> None:
        n = start
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await store.write(_one_change(2, n))
            commits.append(time.perf_counter() - t0)
            n += 1
            await asyncio.sleep(0.005)

    async def ticking() -> None:
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            await maintenance.tick()
            ticks.append(time.perf_counter() - t0)

    await asyncio.gather(writer(), ticking())
    return commits, ticks


def run_stall(seconds: float, pad_mb: int) -> None:
    print(
        f"\nwrite stalls: scan-like commits every 5 ms for {seconds:.0f} s per case, "
        f"maintenance ticking every 0.2 s, database padded to {pad_mb} MB"
    )
    print(
        f"{'case':<34}{'commits':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>10}"
        f"{'tick max ms':>13}{'WAL MB':>8}"
    )
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        work = Path(tmp)
        db = work / "stall.db"
        config = work / "bench.toml"
        config.write_text(f'[box]\nid = "bench"\n\n[store]\npath = "{db.name}"\n')
        with Store.open(db, box_id="bench") as store:
            _pad(store, pad_mb)
            maintenance = Maintenance(store, interval_s=0.2, warn_backlog=10**9)

            def row(label: str, commits: list[float], ticks: list[float], extra: str = "") -> None:
                print(
                    f"{label:<34}{len(commits):>8}{pct(commits, 0.5):>9.2f}"
                    f"{pct(commits, 0.99):>9.2f}{max(commits) * 1000:>10.1f}"
                    f"{max(ticks, default=0) * 1000:>13.1f}{_wal(db) / 2**20:>8.1f}{extra}"
                )

            async def cases() -> None:
                await store.write(maintenance.advance_uptime)
                commits, ticks = await _stall_case(store, maintenance, seconds, 0)
                row("checkpoints only", commits, ticks)

                stop = threading.Event()
                took: list[float] = []
                thread = threading.Thread(target=_backups, args=(work, config, stop, took))
                thread.start()
                try:
                    commits, ticks = await _stall_case(store, maintenance, seconds, 10**6)
                finally:
                    stop.set()
                    await asyncio.to_thread(thread.join)
                each = f"{statistics.median(took):.2f} s each" if took else "none finished"
                row("`pickedge db backup` running", commits, ticks, f"  ({len(took)}, {each})")

                reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
                try:
                    reader.execute("BEGIN")
                    reader.execute("SELECT count(*) FROM outbox").fetchone()
                    commits, ticks = await _stall_case(store, maintenance, seconds, 2 * 10**6)
                    row("a snapshot held all along", commits, ticks)
                finally:
                    reader.close()
                t0 = time.perf_counter()
                for _ in range(3):
                    await maintenance.tick()
                print(
                    f"{'reader gone, 3 idle ticks':<34}{'':>49}{_wal(db) / 2**20:>8.1f}"
                    f"  ({(time.perf_counter() - t0) * 1000:.0f} ms)"
                )

            asyncio.run(cases())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="commits per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="300 commits, 1 round; 2 s stalls")
    parser.add_argument("--only", choices=("commits", "stall"), help="one of the two parts")
    parser.add_argument("--seconds", type=float, default=5.0, help="per write-stall case")
    parser.add_argument("--pad-mb", type=int, default=64, help="database size for the backups")
    args = parser.parse_args()
    if args.quick:
        args.count, args.rounds, args.seconds, args.pad_mb = 300, 1, 2.0, 16
    if args.only != "stall":
        run_commits(args.count, args.rounds)
    if args.only != "commits":
        run_stall(args.seconds, args.pad_mb)


def run_commits(count: int, rounds: int) -> None:
    print(
        f"durable outbox commits (WAL, synchronous=FULL), {count} commits x "
        f"{rounds} rounds, median of rounds"
    )
    print(f"{'case':<28}{'commits/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for mode in ("sync", "async writer"):
            for events in (1, 2):
                rates, p50s, p99s = [], [], []
                for r in range(rounds):
                    with Store.open(Path(tmp) / f"b-{mode[0]}{events}{r}.db", box_id="bench") as s:
                        t0 = time.perf_counter()
                        if mode == "sync":
                            lat = run_sync(s, events, count)
                        else:
                            lat = asyncio.run(run_async(s, events, count))
                        rates.append(count / (time.perf_counter() - t0))
                        p50s.append(pct(lat, 0.50))
                        p99s.append(pct(lat, 0.99))
                label = f"{mode}, {events} event{'s' if events > 1 else ''}/tx"
                print(
                    f"{label:<28}{statistics.median(rates):>12,.0f}"
                    f"{statistics.median(p50s):>10.2f}{statistics.median(p99s):>10.2f}"
                )


if __name__ == "__main__":
    main()
