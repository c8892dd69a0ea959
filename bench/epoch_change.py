"""How long an epoch change holds the box's writer, against the unsent backlog.

``start_new_epoch`` (edge/store/outbox.py) moves every event from ``conflict_at``
on, with its ledger row, to a new epoch in one write transaction, and every scan
commit waits for it (a known limit, docs/sync.md). This prints, per backlog, the
time of that transaction and the longest scan-like durable commit (one every
5 ms on another thread) beside it; the goal of issue 17 is no stall over 100 ms.

    .venv/bin/python bench/epoch_change.py [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from cloud_sync.events import StockDelta, StockReason
from edge.store import Store, Transaction
from edge.store.outbox import start_new_epoch


def fill(store: Store, n: int) -> None:
    for start in range(0, n, 5000):

        def chunk(tx: Transaction, k: int = min(5000, n - start)) -> None:
            for i in range(k):
                tx.append(
                    StockDelta(
                        sku=f"SKU-{i % 60:04d}",
                        location="A01-01",
                        qty=-1,
                        reason=StockReason.PICK,
                        ref=None,
                        lot=None,
                    )
                )

        store.run(chunk)


def measure(n: int) -> tuple[float, float]:
    with (
        tempfile.TemporaryDirectory() as d,
        Store.open(Path(d) / "box.db", box_id="bench", max_backlog=10_000_000) as store,
    ):
        fill(store, n)
        waits: list[float] = []
        stop = threading.Event()

        def scans() -> None:
            while not stop.is_set():
                t = time.perf_counter()
                store.run(lambda tx: tx.execute("UPDATE box SET uptime_ms = uptime_ms"))
                waits.append((time.perf_counter() - t) * 1000)
                time.sleep(0.005)

        writer = threading.Thread(target=scans)
        writer.start()
        try:
            time.sleep(0.1)
            t = time.perf_counter()
            store.run(lambda tx: start_new_epoch(tx, conflict_at=1))
            took = (time.perf_counter() - t) * 1000
            time.sleep(0.1)
        finally:
            stop.set()
            writer.join()
        return took, max(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small backlogs only")
    args = parser.parse_args()
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 50_000, 200_000)
    print(f"{'unsent events':>14} {'epoch change ms':>16} {'longest commit ms':>18}  goal ≤ 100")
    for n in sizes:
        took, longest = measure(n)
        print(f"{n:>14,} {took:>16.0f} {longest:>18.0f}  {'ok' if longest <= 100 else 'OVER'}")


if __name__ == "__main__":
    main()
