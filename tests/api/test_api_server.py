"""ApiServer as a daemon component: serves until cancelled; drain() stops
accepting, finishes what is in flight; on_commit is called after commits."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from edge.api import ApiServer, auth, create_app
from edge.api.app import PICKING
from edge.config import Config
from edge.picking import PickingService
from edge.store.db import Store
from tests.support.api_fixtures import GTIN_A, Pda, add_task


async def test_run_drain_and_in_flight_requests(zone_store: tuple[Store, Config]) -> None:
    store, cfg = zone_store
    commits: list[int] = []
    picking = PickingService(store, cfg.layout_dict(), on_commit=lambda: commits.append(1))
    app = create_app(store, cfg, picking=picking)
    server = ApiServer(app, cfg)
    assert server.name == "api"
    task = asyncio.create_task(server.run())
    await asyncio.wait_for(server.started.wait(), 10)
    base = f"http://127.0.0.1:{server.bound_port}"
    _, key = auth.enroll_pda(store, "h1")
    add_task(store, "T-1", [("SKU-A", 2)])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as r:
            assert await r.json() == {"status": "ok"}
        pda = Pda(http, base, key)
        await pda.login("BADGE-1")
        await pda.scan("T-1")
        await pda.scan("A-01-05")
        assert commits == []  # a tour start and a location append no event
        await pda.scan(GTIN_A)
        assert commits == [1]  # a confirmed unit: the uploader is told

        # hold one scan inside the service, then drain
        release = asyncio.Event()
        entered = asyncio.Event()
        real_scan = app[PICKING].scan

        async def slow_scan(*args: Any) -> Any:
            entered.set()
            await release.wait()
            return await real_scan(*args)

        app[PICKING].scan = slow_scan  # type: ignore[method-assign]
        ws = await http.ws_connect(f"{base}/api/v1/ws")  # open sockets do not delay drain
        await ws.send_json({"type": "auth", "token": pda.token})
        assert (await ws.receive_json(timeout=5))["type"] == "message"
        inflight = asyncio.create_task(pda.scan(GTIN_A, scan_id="last"))
        await entered.wait()
        drain = asyncio.create_task(server.drain())
        # new connections are refused once the listener is closed
        for _ in range(100):
            try:
                async with aiohttp.ClientSession() as fresh, fresh.get(f"{base}/healthz") as r:
                    status = r.status
            except aiohttp.ClientConnectionError:
                break
            assert status in (200, 503)
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the server still accepts connections while draining")
        assert not drain.done()
        release.set()
        answer = await inflight
        assert answer["result"] == "tour_done"
        await asyncio.wait_for(drain, 1.5)  # well inside the 5 s drain timeout
        assert (await ws.receive(timeout=5)).type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
        )
        await ws.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.done()
    rows = store.query("SELECT picked FROM tour_stops")
    assert rows == [{"picked": 2}]
