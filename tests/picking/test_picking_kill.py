"""kill -9 of the daemon between scans and while scans are in flight: after a
restart, retrying the same scan_ids loses no confirmed unit and counts none twice.

The daemon is the real application in its own process (``python -m edge.api``);
the test checks the tour's picked counts, the stock and the outbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgpack

from edge.api import auth
from edge.config import load_config
from edge.store.db import Store
from tests.support.api_fixtures import (
    ITEM_CODE,
    Pda,
    add_task,
    seed_zone,
    walk,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def daemon(config: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge.api",
        "--config",
        str(config),
        "--port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line.startswith("listening "), line
        yield proc, f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def kill9(proc: asyncio.subprocess.Process) -> None:
    os.kill(proc.pid, signal.SIGKILL)


async def _send(http: aiohttp.ClientSession, base: str, token: str, code: str, sid: str) -> Any:
    async with http.post(
        f"{base}/api/v1/scan",
        json={"code": code, "scan_id": sid},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 200
        return await r.json()


async def _raw_send(base: str, token: str, code: str, sid: str) -> asyncio.StreamWriter:
    port = int(base.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"code": code, "scan_id": sid}).encode()
    writer.write(
        b"POST /api/v1/scan HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    return writer


async def test_kill_9_between_and_during_scans(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    cfg = load_config(config)
    with Store.open(cfg.store_path(), box_id=cfg.box.id) as store:
        seed_zone(store)
        add_task(store, "T-1", [("SKU-A", 6), ("SKU-D", 3)], order="O-1")
        _, key = auth.enroll_pda(store, "handheld-1")

    http = aiohttp.ClientSession()
    try:
        async with daemon(config) as (proc, base):
            pda = Pda(http, base, key)
            await pda.login("BADGE-1")
            tour = (await pda.scan("O-1", scan_id="start"))["tour"]
            kill9(proc)
        # The plan: every scan of the tour with a fixed scan_id, known up front.
        plan: list[tuple[str, str]] = []
        for stop in walk(tour):
            plan.append((f"loc-{stop['stop']}", stop["location"]))
            plan += [
                (f"item-{stop['stop']}-{n}", ITEM_CODE[stop["sku"]]) for n in range(stop["qty"])
            ]
        kill_after = {1, 4, 8}  # answer received, then kill -9
        kill_during = {2, 6, 10}  # request on the wire, then kill -9
        answers: dict[str, Any] = {}
        i = 0
        while i < len(plan):
            async with daemon(config) as (proc, base):
                assert pda.token is not None
                while i < len(plan):
                    sid, code = plan[i]
                    if i in kill_during:
                        kill_during.discard(i)
                        # The whole request is in the kernel's buffers when drain()
                        # returns: the daemon dies before, during or after the commit.
                        writer = await _raw_send(base, pda.token, code, sid)
                        kill9(proc)
                        writer.close()
                        break  # restart and retry the same scan_id
                    answer = await _send(http, base, pda.token, code, sid)
                    if sid in answers:
                        assert answer == answers[sid], "a retry must get the stored answer"
                    answers[sid] = answer
                    # a retry right away must change nothing either
                    assert await _send(http, base, pda.token, code, sid) == answer
                    i += 1
                    if i - 1 in kill_after:
                        kill_after.discard(i - 1)
                        kill9(proc)
                        break
        assert answers[plan[-1][0]]["result"] == "tour_done"
        # Retry every scan_id once more on a fresh daemon: nothing changes.
        async with daemon(config) as (proc, base):
            assert pda.token is not None
            for sid, code in plan:
                again = await _send(http, base, pda.token, code, sid)
                assert again == answers[sid]
            kill9(proc)
    finally:
        await http.close()

    with Store.open(cfg.store_path(), box_id=cfg.box.id) as store:
        stops = store.query("SELECT sku, qty, picked, state FROM tour_stops")
        assert all(s["picked"] == s["qty"] and s["state"] == "done" for s in stops)
        rows = store.query("SELECT type, payload FROM outbox ORDER BY seq")
        evs = [(r["type"], msgpack.unpackb(r["payload"])) for r in rows]
        picked = {"SKU-A": 0, "SKU-D": 0}
        deltas = {"SKU-A": 0, "SKU-D": 0}
        for type_, data in evs:
            if type_ == "pick_confirmed":
                picked[data["sku"]] += data["qty"]
            if type_ == "stock_delta":
                deltas[data["sku"]] += data["qty"]
        assert picked == {"SKU-A": 6, "SKU-D": 3}
        assert deltas == {"SKU-A": -6, "SKU-D": -3}
        qty = {
            r["sku"]: (r["qty"], r["reserved"])
            for r in store.query(
                "SELECT sku, qty, reserved FROM stock WHERE sku IN ('SKU-A', 'SKU-D')"
            )
        }
        assert qty == {"SKU-A": (4, 0), "SKU-D": (1, 0)}
        seqs = [r["seq"] for r in store.query("SELECT seq FROM outbox ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
