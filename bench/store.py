"""Durable outbox commits on this box.

Each transaction writes one change and its outbox event(s) with WAL and
synchronous=FULL: when commit returns, the fact is on disk. Prints commits/s and
the p50/p99 commit latency for 1 and 2 events per transaction, sync and through
the async writer thread the daemon uses. Field gateways publish no such figure.

    .venv/bin/python bench/store.py            # 3 rounds of 2,000 commits per case
    .venv/bin/python bench/store.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cloud_sync.events import PickConfirmed, StockDelta, StockReason
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="commits per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="300 commits, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.count, args.rounds = 300, 1
    print(
        f"durable outbox commits (WAL, synchronous=FULL), {args.count} commits x "
        f"{args.rounds} rounds, median of rounds"
    )
    print(f"{'case':<28}{'commits/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for mode in ("sync", "async writer"):
            for events in (1, 2):
                rates, p50s, p99s = [], [], []
                for r in range(args.rounds):
                    with Store.open(Path(tmp) / f"b-{mode[0]}{events}{r}.db", box_id="bench") as s:
                        t0 = time.perf_counter()
                        if mode == "sync":
                            lat = run_sync(s, events, args.count)
                        else:
                            lat = asyncio.run(run_async(s, events, args.count))
                        rates.append(args.count / (time.perf_counter() - t0))
                        p50s.append(pct(lat, 0.50))
                        p99s.append(pct(lat, 0.99))
                label = f"{mode}, {events} event{'s' if events > 1 else ''}/tx"
                print(
                    f"{label:<28}{statistics.median(rates):>12,.0f}"
                    f"{statistics.median(p50s):>10.2f}{statistics.median(p99s):>10.2f}"
                )


if __name__ == "__main__":
    main()
