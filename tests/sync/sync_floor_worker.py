"""A box process for the kill loop: a floor writer and the uploader.

``work`` mode: commits random stock moves (each transaction appends a
``stock_delta`` and a ``pick_confirmed``), and after each commit appends the
committed ``seq sku location qty`` to the fsynced *told* log — what a PDA would
have been told — while the uploader sends to the cloud. It prints ``ready``
once running; the test SIGKILLs it at a random moment.

``drain`` mode: only the uploader, until every event is acked; exit 0.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from sync_helpers import BOX, SECRET, move

from cloud_sync.client import SyncClient
from cloud_sync.uploader import Uploader
from edge.store import Store
from edge.store.outbox import send_state
from edge.store.sync_state import StoreOutbox


async def main(db: str, told_path: str, url: str, mode: str, seed: int) -> int:
    rng = random.Random(seed)
    store = Store.open(db, box_id=BOX)
    async with SyncClient(url, BOX, SECRET, timeout_s=0.3) as client:
        up = Uploader(
            StoreOutbox(store),
            client,
            batch_max_events=rng.choice([3, 10, 40, 200]),
            backoff_min_s=0.005,
            backoff_max_s=0.05,
            poll_interval_s=0.02,
            rng=rng,
        )
        if mode == "drain":
            await up.send_all()
            _, acked, next_seq, _ = send_state(store)
            store.close()
            return 0 if acked == next_seq - 1 else 3
        task = asyncio.create_task(up.run())
        fd = os.open(told_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        print("ready", flush=True)
        n = 0
        while not task.done():
            ref = seed * 1_000_000 + n
            seq, sku, loc, qty = await store.write(lambda tx, ref=ref: move(tx, rng, ref))
            os.write(fd, f"{seq} {sku} {loc} {qty}\n".encode())
            os.fsync(fd)
            up.notify()
            n += 1
            await asyncio.sleep(0)
        task.result()  # the uploader never ends on its own: surface its crash
    return 2


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:5], int(sys.argv[5]))))
