"""cloud_sync runs with no box code loaded: what a cloud OMS team would run.

A fresh interpreter imports every module of ``cloud_sync``, applies batches with
the reference receiver, serves it over HTTP (signed both ways) and drains an
in-memory outbox into it with the real uploader — then no module of ``edge``
or ``devices`` may be loaded. (The static side of the same rule is
``tests/foundation/test_layers.py``; this catches what it cannot see, such as
an import a dependency makes on our behalf.)
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODULES = (
    "codec",
    "events",
    "signing",
    "client",
    "ports",
    "uploader",
    "downloader",
    "receiver",
    "receiver.storage",
    "receiver.schema",
    "receiver.oms",
    "receiver.core",
    "receiver.listfeed",
    "receiver.secrets",
    "receiver.service",
    "metrics",
)

SCRIPT = textwrap.dedent(
    """
    import asyncio, importlib, sys

    for name in MODULES:
        importlib.import_module("cloud_sync." + name)

    import msgpack
    from aiohttp import web
    from cloud_sync.client import SyncClient
    from cloud_sync.codec import encode_answer, encode_batch
    from cloud_sync.events import StockDelta, StockReason
    from cloud_sync.ports import SendState
    from cloud_sync.receiver import Receiver
    from cloud_sync.signing import BOX_HEADER, HEADER, Signer
    from cloud_sync.uploader import Uploader

    def delta(qty):
        pick = StockReason.PICK
        return StockDelta(sku="S", location="L", qty=qty, reason=pick, ref=None, lot=None)

    # the receiver as plain logic
    receiver = Receiver()
    answer = receiver.receive("box-0", encode_batch("box-0", "e0", [delta(-1)] * 3))
    echo = {"epoch": "e0", "first": 1, "last": 3}
    assert (answer.status, answer.doc) == (200, {"acked": 3, **echo}), answer

    # the receiver behind HTTP, and the uploader draining an outbox into it
    class MemoryOutbox:
        box_id = "box-1"

        def __init__(self, events):
            packed = [msgpack.packb(e.to_data(), use_bin_type=True) for e in events]
            self.rows = [(seq, e.TYPE, 0, p) for seq, (e, p) in enumerate(zip(events, packed), 1)]
            self.acked = 0

        def send_state(self):
            return SendState("e1", self.acked, len(self.rows) + 1)

        def read_raw(self, epoch, *, after_seq, limit):
            return self.rows[after_seq : after_seq + limit]

        def open_alerts(self, kinds):
            return set()

        def will_send(self, epoch, last):
            return None  # an in-memory outbox keeps no sync mark

        async def check_copy(self):
            return None

        async def settle_ack(self, epoch, upto, *, clear):
            self.acked = max(self.acked, upto)
            return self.acked

        async def record_error(self, message, *, backoff_s, alert):
            raise AssertionError(message)

        async def raise_alert(self, alert):
            raise AssertionError(alert)

        async def start_new_epoch(self, alert):
            raise AssertionError("epoch conflict")

        async def prune_acked(self, *, max_age_ms):
            return 0

    async def serve_and_drain():
        signer = Signer("secret")

        async def batches(request):
            body = await request.read()
            path = request.raw_path
            if not signer.verify_request(request.headers.get(HEADER), "POST", path, body):
                return web.Response(status=401)
            answer = receiver.receive(request.headers[BOX_HEADER], body)
            payload, ctype = encode_answer(answer.doc, request.headers.get("Accept"))
            sig = signer.answer(answer.status, path, payload)
            return web.Response(
                status=answer.status, body=payload, content_type=ctype, headers={HEADER: sig}
            )

        app = web.Application()
        app.router.add_post("/sync/v1/batches", batches)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = "http://127.0.0.1:%d" % runner.addresses[0][1]
        outbox = MemoryOutbox([delta(q) for q in range(-10, 10)])
        try:
            async with SyncClient(url, "box-1", "secret") as client:
                acked = await Uploader(outbox, client, batch_max_events=7).send_all()
        finally:
            await runner.cleanup()
        assert acked == 20 and receiver.acked("box-1", "e1") == 20, acked
        assert receiver.net_stock("box-1") == {("S", "L"): -10}

    asyncio.run(serve_and_drain())
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("edge", "devices"))
    ours = sorted(m for m in sys.modules if m.startswith("cloud_sync."))
    print(loaded, len(ours))
    """
)


def test_cloud_sync_runs_its_receiver_and_uploader_without_box_code() -> None:
    code = f"MODULES = {MODULES!r}\n{SCRIPT}"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    loaded, count = out.stdout.strip().rsplit(" ", 1)
    assert loaded == "[]", f"box code loaded by cloud_sync: {loaded}"
    assert int(count) >= len(MODULES)  # the check saw cloud_sync itself loaded


def test_every_cloud_sync_module_is_imported_by_the_check() -> None:
    base = ROOT / "cloud_sync"
    found = {
        ".".join(p.relative_to(base).with_suffix("").parts).removesuffix(".__init__")
        for p in base.rglob("*.py")
        if p.relative_to(base).as_posix() != "__init__.py"
    }
    assert found == set(MODULES), "add the new module to MODULES"
