"""A cloud OMS that speaks sync-v1, with fault injection, for tests, benches and demos.

The receiving logic is :mod:`cloud_sync.receiver` (dedup by digests per
``(box, epoch, seq)``, gaps, ``epoch_conflict``, net stock); this module adds
HTTP (aiohttp), request signatures (401 when wrong), signed answers, a changes
feed and faults. Faults are drawn per request, first from a *script* (a list
consumed in order, for tests that need an exact sequence) and then by
probability:

============== ===========================================================
fault          effect on ``POST /sync/v1/batches`` (and on ``GET /changes``)
============== ===========================================================
fail_before    500, nothing applied
fail_after     the batch is applied (committed), then 500: forces a resend
drop_before    the connection is closed without an answer, nothing applied
drop_after     applied, then the connection is closed without an answer
slow           the answer waits ``slow_s`` seconds (to trip client timeouts)
400 401 413    that status with an error body, nothing applied
429 500 503    that status, nothing applied
409            409 ``{"acked": N}`` with the true N, nothing applied
bad_sig        applied, answered with a wrong signature
unsigned       applied, answered without a signature
lying_ack      applied, answered 200 with an ``acked`` beyond what was sent
============== ===========================================================

Every answer is signed (sync-v1), the faults' too, except ``bad_sig`` and
``unsigned`` and a 401 to a request without ``X-Box-Id`` (the cloud cannot
know whose secret to sign with). Every answer to a batch whose envelope can be
read echoes its ``epoch``, ``first`` and ``last`` (required in 200 and 409,
added to the faults' other answers too).

On ``GET /changes`` the "after" faults behave like their "before" twins
except ``bad_sig``/``unsigned``, which serve a page with a bad signature.

Run in-process (:class:`CloudSimulator`, ``async with``) or as
``python -m simulators.cloud --port P --secret-file F`` (``pickedge sim cloud``).
State is in memory, or in a SQLite file (``--db``) that survives a restart.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections import Counter, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from cloud_sync.codec import MAX_BATCH_BYTES, MSGPACK, Echo, answer_echo, encode_answer
from cloud_sync.receiver import Answer, ChangeFeed, Receiver
from cloud_sync.signing import BOX_HEADER, HEADER, Signer

log = logging.getLogger(__name__)

BATCH_FAULTS = frozenset(
    {
        "fail_before",
        "fail_after",
        "drop_before",
        "drop_after",
        "slow",
        "400",
        "401",
        "409",
        "413",
        "429",
        "500",
        "503",
        "bad_sig",
        "unsigned",
        "lying_ack",
    }
)


class Faults:
    """Which fault (or None) the next request gets: script first, then chance."""

    def __init__(
        self,
        probabilities: dict[str, float] | None = None,
        script: Iterable[str | None] = (),
        *,
        seed: int | None = None,
    ) -> None:
        self.probabilities = dict(probabilities or {})
        for name in (*self.probabilities, *(s for s in script if s)):
            if name not in BATCH_FAULTS:
                raise ValueError(
                    f"unknown fault {name!r}; known: {', '.join(sorted(BATCH_FAULTS))}"
                )
        self.script: deque[str | None] = deque(script)
        #: set once the script has been used up
        self.script_done = asyncio.Event()
        if not self.script:
            self.script_done.set()
        self.rng = random.Random(seed)
        self.drawn: Counter[str] = Counter()

    def draw(self) -> str | None:
        if self.script:
            fault = self.script.popleft()
            if not self.script:
                self.script_done.set()
        else:
            fault = None
            r = self.rng.random()
            for name, p in self.probabilities.items():
                if r < p:
                    fault = name
                    break
                r -= p
        if fault:
            self.drawn[fault] += 1
        return fault

    def clear(self) -> None:
        self.probabilities.clear()
        self.script.clear()


class CloudSimulator:
    """The cloud side of sync-v1 on loopback."""

    def __init__(
        self,
        secret: str | bytes,
        *,
        db_path: Path | str | None = None,
        feed: list[dict[str, Any]] | None = None,
        batch_faults: Faults | None = None,
        changes_faults: Faults | None = None,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        slow_s: float = 0.5,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.signer = Signer(secret)
        #: served over HTTPS with this context (a certificate of a test's CA)
        self.ssl_context = ssl_context
        self.receiver = Receiver(db_path, max_batch_bytes=max_batch_bytes)
        self.feed = ChangeFeed(self.receiver, feed)
        self.batch_faults = batch_faults or Faults()
        self.changes_faults = changes_faults or Faults()
        self.slow_s = slow_s
        #: (endpoint, outcome) -> count, e.g. ("batches", "200"), ("batches", "fail_after")
        self.stats: Counter[tuple[str, str]] = Counter()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * MAX_BATCH_BYTES)
        app.router.add_post("/sync/v1/batches", self._batches)
        app.router.add_get("/sync/v1/changes", self._changes)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self.ssl_context)
        await site.start()
        bound = self._runner.addresses[-1][1]
        scheme = "https" if self.ssl_context is not None else "http"
        self.url = f"{scheme}://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def close(self) -> None:
        self.receiver.close()

    def erase(self, *, order: str | None = None, picker: str | None = None) -> None:
        """Append an ``erase`` change (sync-v1: a data-subject erasure) to the
        feed; the box answers it with ``erased`` events."""
        self.feed.add(erase_change(order=order, picker=picker))

    async def __aenter__(self) -> CloudSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self.close()

    # ------------------------------------------------------------------ handlers

    def _answer(self, request: web.Request, answer: Answer, *, sign: str = "ok") -> web.Response:
        body, ctype = encode_answer(answer.doc, request.headers.get("Accept"))
        headers = {}
        if sign == "ok":
            headers[HEADER] = self.signer.answer(answer.status, request.raw_path, body)
        elif sign == "bad":
            headers[HEADER] = self.signer.answer(answer.status, request.raw_path, body + b"!")
        return web.Response(status=answer.status, body=body, content_type=ctype, headers=headers)

    def _authenticate(self, request: web.Request, body: bytes) -> str | None:
        box = request.headers.get(BOX_HEADER)
        if not box:
            return None
        ok = self.signer.verify_request(
            request.headers.get(HEADER), request.method, request.raw_path, body
        )
        return box if ok else None

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        # Close the socket under the request: the client sees a reset/disconnect.
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError

    def _refuse(self, request: web.Request, endpoint: str) -> web.Response:
        """401 to a request whose signature does not verify: signed when the
        request names a box (the cloud knows its secret), unsigned otherwise."""
        self.stats[endpoint, "401"] += 1
        known = bool(request.headers.get(BOX_HEADER))
        answer = Answer(401, {"error": {"code": "bad_signature"}})
        return self._answer(request, answer, sign="ok" if known else "none")

    async def _batches(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        box = self._authenticate(request, body)
        if box is None:
            return self._refuse(request, "batches")
        fault = self.batch_faults.draw()
        if fault:
            self.stats["batches", fault] += 1
        envelope = _peek_envelope(body)
        echo: dict[str, Any] = (
            {"epoch": envelope.epoch, "first": envelope.first, "last": envelope.last}
            if envelope
            else {}
        )
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        elif fault == "fail_before":
            return self._answer(request, Answer(500, {"error": {"code": "injected"}, **echo}))
        elif fault == "drop_before":
            return self._drop(request)
        elif fault in ("400", "401", "413", "429", "500", "503"):
            status = int(fault)
            doc = {"error": {"code": f"injected_{fault}"}, **echo}
            return self._answer(request, Answer(status, doc))
        elif fault == "409":
            # a gap answer carrying the true mark: the edge resends from there
            acked = self.receiver.acked(box, envelope.epoch) if envelope else 0
            return self._answer(request, Answer(409, {"acked": acked, **echo}))
        answer = self.receiver.receive(box, body)
        self.stats["batches", str(answer.status)] += 1
        if fault == "fail_after":
            return self._answer(request, Answer(500, {"error": {"code": "injected"}, **echo}))
        if fault == "drop_after":
            return self._drop(request)
        if fault == "bad_sig":
            return self._answer(request, answer, sign="bad")
        if fault == "unsigned":
            return self._answer(request, answer, sign="none")
        if fault == "lying_ack" and answer.status == 200:
            answer = Answer(200, {**answer.doc, "acked": int(answer.doc["acked"]) + 1000})
        return self._answer(request, answer)

    async def _changes(self, request: web.Request) -> web.StreamResponse:
        box = self._authenticate(request, b"")
        if box is None:
            return self._refuse(request, "changes")
        fault = self.changes_faults.draw()
        if fault:
            self.stats["changes", fault] += 1
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        elif fault in ("fail_before", "fail_after"):
            return self._answer(request, Answer(500, {"error": {"code": "injected"}}))
        elif fault in ("drop_before", "drop_after"):
            return self._drop(request)
        elif fault in ("400", "401", "409", "413", "429", "500", "503"):
            status = int(fault)
            return self._answer(request, Answer(status, {"error": {"code": f"injected_{fault}"}}))
        try:
            limit = int(request.query.get("limit", "500"))
        except ValueError:
            limit = 0
        answer = self.feed.page(box, request.query.get("cursor"), min(limit, 5000))
        self.stats["changes", str(answer.status)] += 1
        if fault == "bad_sig":
            return self._answer(request, answer, sign="bad")
        if fault == "unsigned":
            return self._answer(request, answer, sign="none")
        return self._answer(request, answer)


def _peek_envelope(body: bytes) -> Echo | None:
    """A batch body's ``epoch``, ``first`` and ``last``; None when unreadable."""
    import msgpack

    try:
        doc = msgpack.unpackb(body, raw=False)
    except Exception:
        return None
    return answer_echo(doc)  # the batch map has the same three keys as the echo


# --------------------------------------------------------------------------- feed


def gtin14(n: int) -> str:
    """A valid GTIN-14 (GS1 mod-10 check digit) numbered ``n``."""
    if not 0 <= n < 10**8:
        raise ValueError(f"gtin14 numbers 0..99999999, not {n}")
    body = f"{4000000000000 + n:013d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def erase_change(*, order: str | None = None, picker: str | None = None) -> dict[str, Any]:
    """An ``erase`` change of ``order`` and/or ``picker`` (sync-v1)."""
    if order is None and picker is None:
        raise ValueError("an erase names an order, a picker or both")
    data: dict[str, Any] = {}
    if order is not None:
        data["order"] = order
    if picker is not None:
        data["picker"] = picker
    return {"type": "erase", "data": data}


def task_feed(
    *,
    seed: int = 1,
    items: int = 20,
    locations: int = 20,
    pickers: int = 3,
    tasks: int = 10,
    stock_qty: int = 100,
) -> list[dict[str, Any]]:
    """A plausible initial load: items, locations, stock, pickers, then tasks."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    skus = [f"SKU-{i:04d}" for i in range(1, items + 1)]
    for i, sku in enumerate(skus, start=1):
        out.append(
            {
                "type": "item",
                "data": {
                    "sku": sku,
                    "gtins": [gtin14(i)],
                    "description": f"Item {i}",
                    "uom": "EA",
                    "serialized": False,
                },
            }
        )
    codes = []
    for i in range(locations):
        aisle, slot = divmod(i, 10)
        code = f"A{aisle + 1:02d}-{slot + 1:02d}"
        codes.append(code)
        out.append(
            {
                "type": "location",
                "data": {"code": code, "aisle": aisle, "y": 1.0 + 2.0 * slot, "zone": "A"},
            }
        )
    home = {sku: codes[i % len(codes)] for i, sku in enumerate(skus)}
    for sku in skus:
        out.append(
            {"type": "stock", "data": {"sku": sku, "location": home[sku], "base": stock_qty}}
        )
    for i in range(1, pickers + 1):
        out.append(
            {
                "type": "picker",
                "data": {
                    "id": f"p{i}",
                    "name": f"Picker {i}",
                    "badge": f"BADGE{i:04d}",
                    "role": "picker",
                    "active": True,
                },
            }
        )
    for t in range(1, tasks + 1):
        lines = []
        for n, sku in enumerate(rng.sample(skus, k=min(len(skus), rng.randint(1, 4))), start=1):
            lines.append({"line": n, "sku": sku, "qty": rng.randint(1, 5)})
        out.append(
            {
                "type": "task",
                "data": {
                    "task": f"T{t:05d}",
                    "kind": "pick",
                    "order": f"O{t:05d}",
                    "priority": rng.randint(0, 3),
                    "lines": lines,
                    "ship_to": {"postcode": f"{rng.randint(10000, 99999)}", "region": "north"},
                    "carrier": "dhl",
                },
            }
        )
    return out


if __name__ == "__main__":  # pragma: no cover - python -m simulators.cloud
    import importlib

    importlib.import_module("simulators.cloud_cli").cloud_command()

__all__ = ["MSGPACK", "CloudSimulator", "Faults", "erase_change", "gtin14", "task_feed"]
