from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sync_helpers import BOX, SECRET

from cloud_sync.client import SyncClient
from edge.store import Store
from simulators.cloud import CloudSimulator


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "box.db", box_id=BOX) as s:
        yield s


@pytest.fixture
async def sim() -> AsyncIterator[CloudSimulator]:
    async with CloudSimulator(SECRET) as s:
        yield s


@pytest.fixture
async def client(sim: CloudSimulator) -> AsyncIterator[SyncClient]:
    async with SyncClient(sim.url, BOX, SECRET, timeout_s=2.0) as c:
        yield c
