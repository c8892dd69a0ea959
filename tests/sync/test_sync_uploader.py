"""The uploader against the real simulator on loopback, row by row of the
sync-v1 answers table."""

from __future__ import annotations

from sync_helpers import assert_converged, uploader, write_moves

from cloud_sync.client import SyncClient
from cloud_sync.uploader import Step
from edge.store import Store
from simulators.cloud import CloudSimulator


async def test_200_acks_everything_in_batches(
    store: Store, sim: CloudSimulator, client: SyncClient
) -> None:
    write_moves(store, 120)  # 240 events
    up = uploader(store, client, batch_max_events=50)
    assert await up.send_all() == 240
    assert_converged(sim, store)
    assert sim.stats["batches", "200"] == 5
    assert await up.step() is Step.IDLE
