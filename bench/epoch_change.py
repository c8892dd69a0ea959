"""How long an epoch change holds the box's writer, against the unsent backlog.

An epoch change (``StoreOutbox.start_new_epoch``, the uploader's path on the
cloud's ``epoch_conflict``) is one switch transaction, independent of the
backlog, and then a move of the unsent tail (outbox and ledger rows) in chunks
of ``MOVE_CHUNK`` rows, one transaction each (edge/store/outbox.py). Scan-like
durable commits (one every 5 ms, through the same writer queue as the daemon's
scans) run beside it. This prints, per backlog and per kind of conflict
(``conflict_at`` 1: everything moves; at the middle: half is acked in the
switch, half moves), the switch, the whole move, and the longest scan commit
while it ran (median of the runs); the goal of issue 17 is no stall over 100 ms.

    .venv/bin/python bench/epoch_change.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from cloud_sync.events import Alert, Severity, StockDelta, StockReason
from edge.store import Store, Transaction, outbox
from edge.store.sync_state import StoreOutbox


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


def _alert(change: object) -> Alert:
    return Alert(kind="sync_epoch_conflict", severity=Severity.CRIT, subject="bench", detail={})


async def _measure(store: Store, conflict_at: int) -> tuple[float, float, float]:
    waits: list[float] = []
    stop = asyncio.Event()

    async def scans() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await store.write(lambda tx: tx.execute("UPDATE box SET uptime_ms = uptime_ms"))
            waits.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.005)

    switch: list[float] = []
    original = store.write

    async def timed_write(fn):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        result = await original(fn)
        if not switch:
            switch.append((time.perf_counter() - t) * 1000)
        return result

    writer = asyncio.create_task(scans())
    await asyncio.sleep(0.1)
    port = StoreOutbox(store)
    store.write = timed_write  # type: ignore[method-assign]
    t = time.perf_counter()
    await port.start_new_epoch(_alert, conflict_at=conflict_at)
    whole = (time.perf_counter() - t) * 1000
    store.write = original  # type: ignore[method-assign]
    await asyncio.sleep(0.1)
    stop.set()
    await writer
    return switch[0], whole, max(waits)


def measure(n: int, *, middle: bool, runs: int) -> tuple[float, float, float]:
    results = []
    for _ in range(runs):
        with (
            tempfile.TemporaryDirectory() as d,
            Store.open(Path(d) / "box.db", box_id="bench", max_backlog=10_000_000) as store,
        ):
            fill(store, n)
            results.append(asyncio.run(_measure(store, n // 2 if middle else 1)))
    return tuple(statistics.median(r[k] for r in results) for k in range(3))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small backlogs, one run each")
    args = parser.parse_args()
    sizes = (1_000, 10_000) if args.quick else (1_000, 10_000, 50_000, 200_000)
    runs = 1 if args.quick else 3
    print(f"chunk {outbox.MOVE_CHUNK} rows; median of {runs} run(s)")
    print(
        f"{'unsent events':>14} {'conflict at':>12} {'switch ms':>10} {'whole move ms':>14} "
        f"{'longest scan commit ms':>23}  goal ≤ 100"
    )
    for n in sizes:
        for middle in (False, True):
            switch, whole, longest = measure(n, middle=middle, runs=runs)
            print(
                f"{n:>14,} {('middle' if middle else 'first'):>12} {switch:>10.0f} "
                f"{whole:>14.0f} {longest:>23.0f}  {'ok' if longest <= 100 else 'OVER'}"
            )


if __name__ == "__main__":
    main()
