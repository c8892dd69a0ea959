"""The receiver as an aiohttp service: what ``pickedge cloud-receiver`` runs.

Two applications:

- **sync** (:meth:`ReceiverService.sync_app`): ``POST /sync/v1/batches`` and
  ``GET /sync/v1/changes``, per sync-v1 as amended. A request is verified
  against the box's accepted secrets (current, and the previous one during its
  rotation overlap) and the answer is signed with the secret that verified it —
  every answer a box's secret can sign: 2xx, 400, 401 (wrong signature), 409,
  413, 503. Only a 401 for an unknown or missing box id is unsigned (no secret
  to sign with). Database work runs in a bounded thread pool; a database that
  fails answers 503 (signed), and the box resends — dedup makes that safe.
- **ops** (:meth:`ReceiverService.ops_app`): ``/livez``, ``/readyz`` (the
  database answers within a second) and ``/metrics`` (Prometheus), served on
  its own listener — by default on loopback, so the sync port a fleet reaches
  carries nothing else.

Metrics have no per-box label, except the top-N silent boxes (N = 5): a fleet
of any size is a few dozen series. Logs are one JSON object per line
(:class:`JsonFormatter`); a bad signature is logged once per box per minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cloud_sync.codec import MAX_BATCH_BYTES, answer_echo, encode_answer
from cloud_sync.receiver.core import MAX_PAGE, Answer, Receiver
from cloud_sync.receiver.secrets import SecretSource, valid_box_id
from cloud_sync.receiver.storage import StorageError
from cloud_sync.signing import BOX_HEADER, HEADER, Signer

log = logging.getLogger(__name__)

#: boxes named by the silence top-N metric
TOP_SILENT = 5
_SILENCE_BUCKETS = (10.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, float("inf"))


class ReceiverMetrics:
    """The receiver's Prometheus metrics, in a registry of their own."""

    def __init__(self, receiver: Receiver, *, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.batches = Counter(
            "pickedge_receiver_batches",
            "Batches answered, by outcome (applied, duplicate, gap, conflict, malformed,"
            " too_large, unauthorized, unavailable, error)",
            ["outcome"],
            registry=r,
        )
        self.events = Counter(
            "pickedge_receiver_events",
            "Events received, by result: applied, or duplicate (held already, discarded)",
            ["result"],
            registry=r,
        )
        self.pages = Counter(
            "pickedge_receiver_pages", "Change-feed pages answered, by outcome", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "pickedge_receiver_batch_seconds",
            "Time to answer a batch, from its arrival to its answer (database included)",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
            registry=r,
        )
        self.delay = Histogram(
            "pickedge_receiver_event_delay_seconds",
            "Age of a batch's newest event when applied, on the box's clock (informational:"
            " box clocks are not trusted)",
            buckets=(0.1, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0, 86400.0),
            registry=r,
        )
        r.register(_FleetCollector(receiver, clock))

    def answered(self, answer: Answer, seconds: float) -> None:
        self.batches.labels(answer.outcome or str(answer.status)).inc()
        if answer.applied:
            self.events.labels("applied").inc(answer.applied)
        if answer.duplicates:
            self.events.labels("duplicate").inc(answer.duplicates)
        self.latency.observe(seconds)


class _FleetCollector:
    """Per-box silence (time since last contact) as a histogram over the fleet
    and the top-N most silent boxes; read from the database at scrape time,
    at most every 15 s."""

    def __init__(self, receiver: Receiver, clock: Callable[[], float]) -> None:
        self.receiver = receiver
        self.clock = clock
        self._cached: tuple[float, list[Metric]] | None = None

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        if self._cached is None or now - self._cached[0] >= 15.0:
            try:
                self._cached = (now, self._measure(now))
            except StorageError:
                self._cached = (now, [])
        yield from self._cached[1]

    def _measure(self, now: float) -> list[Metric]:
        contacts = self.receiver.contacts()
        silences = sorted(
            ((now - c / 1000.0, box) for box, c, _ in contacts if c is not None), reverse=True
        )
        boxes = GaugeMetricFamily("pickedge_receiver_boxes", "Boxes known to the receiver")
        boxes.add_metric([], len(contacts))
        hist = HistogramMetricFamily(
            "pickedge_receiver_box_silence_seconds",
            "Boxes by time since their last batch (one observation per box, each scrape)",
        )
        buckets, total = [], 0.0
        for bound in _SILENCE_BUCKETS:
            buckets.append(
                ("+Inf" if bound == float("inf") else str(bound),
                 float(sum(1 for s, _ in silences if s <= bound)))
            )  # fmt: skip
        total = sum(s for s, _ in silences)
        hist.add_metric([], buckets, total)
        top = GaugeMetricFamily(
            "pickedge_receiver_silent_box_seconds",
            f"The {TOP_SILENT} boxes longest without a batch, by rank",
            labels=["rank", "box"],
        )
        for rank, (silence, box) in enumerate(silences[:TOP_SILENT], start=1):
            top.add_metric([str(rank), box], silence)
        return [boxes, hist, top]


@dataclass
class _Throttle:
    """Log a key at most once per ``every_s`` (bounded memory)."""

    every_s: float = 60.0
    size: int = 1024

    def __post_init__(self) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()

    def ready(self, key: str) -> bool:
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last < self.every_s:
            return False
        self._seen[key] = now
        self._seen.move_to_end(key)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


class ReceiverService:
    """The receiver behind HTTP: authentication, signing, limits, metrics."""

    def __init__(
        self,
        receiver: Receiver,
        secrets: SecretSource,
        *,
        threads: int = 8,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.receiver = receiver
        self.secrets = secrets
        self.max_batch_bytes = max_batch_bytes
        self.metrics = ReceiverMetrics(receiver)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="receiver")
        self._throttle = _Throttle()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ------------------------------------------------------------------ apps

    def sync_app(self) -> web.Application:
        # a body up to twice the limit is read and answered a signed 413; a
        # bigger one is refused by aiohttp before it is read (unsigned 413)
        app = web.Application(client_max_size=2 * self.max_batch_bytes)
        app.router.add_post("/sync/v1/batches", self._batches)
        app.router.add_get("/sync/v1/changes", self._changes)
        return app

    def ops_app(self) -> web.Application:
        app = web.Application(client_max_size=1024)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    # ------------------------------------------------------------------ sync

    @staticmethod
    def _signed(
        request: web.Request, status: int, doc: dict[str, Any], signer: Signer | None
    ) -> web.Response:
        body, ctype = encode_answer(doc, request.headers.get("Accept"))
        headers = {}
        if signer is not None:
            headers[HEADER] = signer.answer(status, request.raw_path, body)
        return web.Response(status=status, body=body, content_type=ctype, headers=headers)

    async def _authenticate(
        self, request: web.Request, body: bytes
    ) -> tuple[str, Signer | None, web.Response | None]:
        """(box, the signer that verified, None) or (box, signer, refusal)."""
        box = request.headers.get(BOX_HEADER, "")
        if not valid_box_id(box):
            refusal = self._signed(request, 401, {"error": {"code": "unknown_box"}}, None)
            return box, None, refusal
        try:
            signers: list[Signer] = await self._run(self.secrets.signers, box)
        except StorageError:
            return box, None, self._signed(request, 503, _unavailable(), None)
        if not signers:
            if self._throttle.ready("unknown:" + box):
                log.warning("request from unknown box %s refused", box, extra={"box": box})
            return box, None, self._signed(request, 401, {"error": {"code": "unknown_box"}}, None)
        header = request.headers.get(HEADER)
        for signer in signers:
            if signer.verify_request(header, request.method, request.raw_path, body):
                return box, signer, None
        if self._throttle.ready("sig:" + box):
            log.warning("bad signature from box %s", box, extra={"box": box})
        doc = {"error": {"code": "bad_signature"}}
        return box, signers[0], self._signed(request, 401, doc, signers[0])

    async def _batches(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.metrics.batches.labels("too_large").inc()
            raise
        box, signer, refusal = await self._authenticate(request, body)
        if refusal is not None:
            self.metrics.batches.labels(
                "unavailable" if refusal.status == 503 else "unauthorized"
            ).inc()
            return refusal
        try:
            answer: Answer = await self._run(self.receiver.receive, box, body)
        except StorageError as exc:
            self.metrics.batches.labels("unavailable").inc()
            if self._throttle.ready("storage"):
                log.error("database unavailable: %s", exc, extra={"box": box})
            return self._signed(request, 503, {**_unavailable(), **_echo(body)}, signer)
        except Exception:
            self.metrics.batches.labels("error").inc()
            log.exception("batch of box %s failed", box, extra={"box": box})
            return self._signed(request, 500, {"error": {"code": "internal"}}, signer)
        self.metrics.answered(answer, time.perf_counter() - started)
        if answer.newest_at_ms:  # 0: the box did not say when
            self.metrics.delay.observe(max(0.0, time.time() - answer.newest_at_ms / 1000.0))
        if answer.outcome == "conflict":
            log.warning(
                "epoch_conflict from box %s at seq %s",
                box,
                answer.doc.get("conflict_at"),
                extra={"box": box, "epoch": answer.doc.get("epoch")},
            )
        return self._signed(request, answer.status, answer.doc, signer)

    async def _changes(self, request: web.Request) -> web.StreamResponse:
        box, signer, refusal = await self._authenticate(request, b"")
        if refusal is not None:
            self.metrics.pages.labels("unauthorized").inc()
            return refusal
        raw_limit = request.query.get("limit", "500")
        if not (raw_limit.isdigit() and len(raw_limit) < 10 and int(raw_limit) >= 1):
            self.metrics.pages.labels("bad_limit").inc()
            doc = {"error": {"code": "bad_limit", "message": "limit is an integer ≥ 1"}}
            return self._signed(request, 400, doc, signer)
        limit = min(int(raw_limit), MAX_PAGE)
        try:
            answer: Answer = await self._run(
                self.receiver.page, box, request.query.get("cursor"), limit
            )
        except StorageError:
            self.metrics.pages.labels("unavailable").inc()
            return self._signed(request, 503, _unavailable(), signer)
        except Exception:
            self.metrics.pages.labels("error").inc()
            log.exception("changes of box %s failed", box, extra={"box": box})
            return self._signed(request, 500, {"error": {"code": "internal"}}, signer)
        self.metrics.pages.labels(answer.outcome).inc()
        return self._signed(request, answer.status, answer.doc, signer)

    # ------------------------------------------------------------------ ops

    async def _livez(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, request: web.Request) -> web.Response:
        try:
            ok = await asyncio.wait_for(self._run(self.receiver.db.ping, 1.0), timeout=2.0)
        except (TimeoutError, StorageError):
            ok = False
        if ok:
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "unready", "reason": "database"}, status=503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await self._run(generate_latest, self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _unavailable() -> dict[str, Any]:
    return {"error": {"code": "storage_unavailable", "message": "try again"}}


def _echo(body: bytes) -> dict[str, Any]:
    """The epoch/first/last of a batch body, for answers that carry them."""
    import msgpack

    try:
        echo = answer_echo(msgpack.unpackb(body, raw=False))
    except Exception:
        return {}
    return {} if echo is None else {"epoch": echo.epoch, "first": echo.first, "last": echo.last}


# --------------------------------------------------------------------------- logs


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the ``box``
    and ``epoch`` a record carries."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("box", "epoch"):
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


JsonFormatter.converter = time.gmtime


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"listen address is HOST:PORT, not {text!r}")
        return cls(host.strip("[]") or "0.0.0.0", int(port))  # noqa: S104 - the operator's choice


async def serve(
    service: ReceiverService,
    sync: Listen,
    ops: Listen | None,
    *,
    reuse_port: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    ready: Callable[[list[str]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``); ``ready`` gets the bound URLs.
    ``reuse_port`` lets several receiver processes share one port, the kernel
    spreading connections among them."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    runners: list[web.AppRunner] = []
    urls: list[str] = []
    try:
        apps = [(service.sync_app(), sync, ssl_context, reuse_port)]
        if ops is not None:
            apps.append((service.ops_app(), ops, None, False))
        for app, where, ctx, reuse in apps:
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(
                runner, where.host, where.port, ssl_context=ctx, reuse_port=reuse or None
            )
            await site.start()
            host, port = runner.addresses[0][:2]
            urls.append(f"{'https' if ctx else 'http'}://{host}:{port}")
        if ready is not None:
            ready(urls)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


__all__ = ["JsonFormatter", "Listen", "ReceiverMetrics", "ReceiverService", "serve"]
