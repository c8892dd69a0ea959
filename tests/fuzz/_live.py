"""A real PDA API on loopback in a thread of its own, for harnesses that call
it synchronously (schemathesis sends with ``requests``): a seeded zone store,
the daemon's app and runner (``ApiRunner``: malformed HTTP answered as JSON),
an enrolled PDA, a picker's and a supervisor's session."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from edge.api import auth
from edge.api.app import ApiRunner, create_app
from edge.config import load_config
from edge.picking import PickingService
from edge.store.db import Store
from tests.support.api_fixtures import add_task, seed_zone, write_config


@dataclass
class LiveBox:
    base: str
    store: Store
    device_key: str
    picker_token: str
    supervisor_token: str
    admin_token: str = ""

    def login(self, badge: str) -> str:
        request = urllib.request.Request(
            self.base + "/api/v1/sessions",
            data=json.dumps({"badge": badge}).encode(),
            headers={"X-Device-Key": self.device_key, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(json.load(answer)["token"])


@contextmanager
def live_box(tmp_path: Path) -> Iterator[LiveBox]:
    cfg = load_config(write_config(tmp_path), env={})
    store = Store.open(cfg.store_path(), box_id=cfg.box.id)
    seed_zone(store)
    add_task(store, "T-1", [("SKU-A", 2), ("SKU-C", 1)])
    _, key = auth.enroll_pda(store, "fuzz-pda")
    auth.add_picker(store, "A1", "Admin One", "BADGE-A", "admin")
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}

    async def serve() -> None:
        never = auth.LoginLimiter(per_device=10**9, per_badge=10**9, per_address=10**9)
        app = create_app(
            store, cfg, picking=PickingService(store, cfg.layout_dict()), limiter=never
        )
        runner = ApiRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve())
        loop.run_forever()

    thread = threading.Thread(target=run, name="live-api", daemon=True)
    thread.start()
    assert started.wait(15), "the API did not start"
    base = f"http://127.0.0.1:{state['port']}"
    box = LiveBox(base, store, key, "", "")
    box.picker_token = box.login("BADGE-1")
    box.supervisor_token = box.login("BADGE-S")
    box.admin_token = box.login("BADGE-A")
    try:
        yield box
    finally:
        runner = state["runner"]
        assert isinstance(runner, ApiRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
        loop.close()
        store.close()
