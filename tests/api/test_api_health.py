"""``/livez`` and ``/readyz`` (issue 13): unauthenticated, content-free, and
honest about what makes a box unable to take scans."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cloud_sync.events import Alert, Severity
from edge.api import health
from edge.api.app import create_app
from edge.config import Config
from edge.picking import PickingService
from edge.store.db import Store


@pytest.fixture
async def served(zone_store: tuple[Store, Config]) -> AsyncIterator[tuple[str, Store]]:
    store, cfg = zone_store
    app = create_app(store, cfg, picking=PickingService(store, cfg.layout_dict()))
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), store
    finally:
        await server.close()


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.text()


async def test_livez_and_readyz_answer_without_a_token(served: tuple[str, Store]) -> None:
    base, _ = served
    assert await get(f"{base}/livez") == (200, "ok\n")
    assert await get(f"{base}/readyz") == (200, "ok\n")
    status, text = await get(f"{base}/readyz?verbose")
    assert status == 200
    assert text.splitlines() == ["[+]store ok", "[+]disk ok", "[+]sync ok", "ok"]


async def test_a_cloud_that_fails_is_a_warning_not_unready(served: tuple[str, Store]) -> None:
    base, store = served
    store.run(lambda tx: tx.execute("UPDATE sync_state SET last_error = 'unreachable'"))
    store.run(lambda tx: tx.append_bookkeeping(_alert()))  # one event waits
    status, text = await get(f"{base}/readyz?verbose")
    assert status == 200
    assert "[!]sync warning: the cloud is not taking events; they wait" in text
    assert "unreachable" not in text  # nothing beyond the status


async def test_a_full_disk_is_not_ready(
    served: tuple[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = served
    monkeypatch.setattr(health, "MIN_FREE_BYTES", 2**62)
    status, text = await get(f"{base}/readyz?verbose")
    assert status == 503
    assert "[-]disk failed: under" in text
    assert text.endswith("not ready\n")
    assert await get(f"{base}/livez") == (200, "ok\n")  # alive all the same


async def test_a_store_that_takes_no_write_is_not_ready(served: tuple[str, Store]) -> None:
    base, store = served
    store.close()
    status, text = await get(f"{base}/readyz?verbose")
    assert status == 503
    assert "[-]store failed:" in text


def _alert() -> Alert:
    return Alert(kind="test", severity=Severity.INFO, subject="s", detail={})
