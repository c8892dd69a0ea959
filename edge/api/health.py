"""Health for load balancers and systemd: ``GET /livez`` and ``GET /readyz``.

Both are unauthenticated and say nothing beyond the status (no ids, paths
or figures an attacker on the floor network could use):

- ``/livez``: the process and its event loop answer → 200 ``ok``. A box
  whose ``/livez`` does not answer is to be restarted.
- ``/readyz``: the box can take scans → 200 ``ok``, else 503 ``not ready``.
  ``?verbose`` lists each check as Kubernetes does (``[+]name ok``,
  ``[-]name failed: why``, ``[!]name warning: why``). Checks that fail it:
  the store takes a write transaction (the writer thread is alive and the
  database writable) within :data:`WRITE_TIMEOUT_S`; the disk holding the
  database has :data:`MIN_FREE_BYTES` free. Warnings, never "not ready" (the
  floor works on without them): the cloud's last sync attempt failed with
  events waiting. The API itself serving is what answering proves.

``/healthz`` stays as an alias of ``/livez`` (JSON ``{"status": "ok"}``).
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass

from aiohttp import web

from edge.store import Store
from edge.store.db import Transaction
from edge.store.outbox import status

#: a write transaction slower than this is "not ready" (the writer is stuck)
WRITE_TIMEOUT_S = 2.0
#: below this much free disk the box cannot promise durable scans
MIN_FREE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    why: str = ""
    warning: bool = False

    def line(self) -> str:
        if self.warning:
            return f"[!]{self.name} warning: {self.why}"
        return f"[+]{self.name} ok" if self.ok else f"[-]{self.name} failed: {self.why}"


async def livez(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request, store: Store) -> web.Response:
    checks = [
        await _writable(store),
        await asyncio.to_thread(_disk, store),
        *await _warnings(store),
    ]
    ready = all(c.ok for c in checks)
    text = "ok" if ready else "not ready"
    if "verbose" in request.query:
        text = "\n".join([*(c.line() for c in checks), text])
    return web.Response(text=text + "\n", status=200 if ready else 503)


def _probe(tx: Transaction) -> None:
    tx.execute("SELECT 1")


async def _writable(store: Store) -> Check:
    try:
        await asyncio.wait_for(store.write(_probe), WRITE_TIMEOUT_S)
    except TimeoutError:
        return Check("store", False, f"no write transaction within {WRITE_TIMEOUT_S:g} s")
    except Exception as exc:  # any refusal means the box cannot take a scan now
        return Check("store", False, type(exc).__name__)
    return Check("store", True)


def _disk(store: Store) -> Check:
    try:
        free = shutil.disk_usage(store.path.parent).free
    except OSError as exc:
        return Check("disk", False, type(exc).__name__)
    if free < MIN_FREE_BYTES:
        return Check("disk", False, f"under {MIN_FREE_BYTES // 2**20} MiB free")
    return Check("disk", True)


async def _warnings(store: Store) -> list[Check]:
    try:
        outbox = await asyncio.to_thread(status, store)
    except Exception as exc:
        return [Check("sync", True, type(exc).__name__, warning=True)]
    if outbox.last_error and outbox.backlog:
        return [Check("sync", True, "the cloud is not taking events; they wait", warning=True)]
    return [Check("sync", True)]
