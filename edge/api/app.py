"""The PDA API (pda-api-v1) as an aiohttp application.

Promises:

- Every route but ``POST /api/v1/sessions`` (device key), ``GET /``, ``GET
  /pack``, the pages' static files and ``GET /healthz`` needs ``Authorization: Bearer``; the
  WebSocket also accepts the token in its first message, never in the URL.
- Every failure answers ``{"error": {"code", "message"}}`` with a stable code:
  ``bad_json``, ``invalid_request``, ``body_too_large`` (413), ``not_found``,
  ``method_not_allowed``, ``unauthorized``, ``unknown_device``,
  ``unknown_badge``, ``too_many_attempts`` (429), the picking codes
  (``no_tour``, ``unknown_stop``, …), the store's codes (503) and
  ``internal_error`` (500, no traceback in the answer). Each is counted in
  ``pickedge_api_bad_requests_total{code}`` and logged once with context.
- Handlers are thin: parse, authenticate, call :class:`PickingService`, answer.
  Stored scan answers are sent byte for byte, so a retried ``scan_id`` gets
  exactly what the first attempt got.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import Counter, Histogram

from common.errors import PickEdgeError
from common.faults import crash_point
from edge.api import auth
from edge.api.hub import PdaHub
from edge.api.openapi import openapi_document
from edge.config import Config
from edge.picking import SHORT_REASONS, Picker, PickingError, PickingService
from edge.picking.service import Outcome
from edge.shipping.errors import ShippingError
from edge.shipping.service import PackingService
from edge.store.db import Store
from edge.store.errors import BacklogFullError, StoreError

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

BAD_REQUESTS = Counter(
    "pickedge_api_bad_requests", "PDA API requests answered with an error", ["code"]
)
SCAN_SECONDS = Histogram(
    "pickedge_api_scan_seconds",
    "Time to answer POST /api/v1/scan, durable commit included",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0),
)

JSON = "application/json"
WS_AUTH_TIMEOUT_S = 10.0
MAX_SCAN_ID = 128
MAX_CODE = 4096


class ApiError(PickEdgeError):
    """A refused request: ``status`` and ``code`` go to the client as they are."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


@dataclass(slots=True)
class ServerState:
    """In-flight requests and the draining flag (for :class:`ApiServer.drain`)."""

    inflight: int = 0
    draining: bool = False
    idle: asyncio.Event | None = None

    def event(self) -> asyncio.Event:
        if self.idle is None:
            self.idle = asyncio.Event()
            self.idle.set()
        return self.idle


STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", Config)
PICKING = web.AppKey("picking", PickingService)
PACKING = web.AppKey("packing", PackingService)
HUB = web.AppKey("hub", PdaHub)
LIMITER = web.AppKey("limiter", auth.LoginLimiter)
STATE = web.AppKey("state", ServerState)
#: renders the Prometheus exposition; set by the daemon (no /metrics without it)
METRICS: web.AppKey[Callable[[], bytes]] = web.AppKey("metrics")
METRICS_TOKEN = web.AppKey("metrics_token", str)

PICKER = web.RequestKey("picker", Picker)  # the authenticated picker
TOKEN = web.RequestKey("session_token", str)

_PUBLIC: set[tuple[str, str]] = {
    ("GET", "/"),
    ("GET", "/pack"),
    ("GET", "/healthz"),
    ("POST", "/api/v1/sessions"),
}
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    429: "too_many_attempts",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str, **headers: str) -> web.Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, text=body, content_type=JSON, headers=headers or None)


def _context(request: web.Request) -> dict[str, Any]:
    picker = request.get(PICKER)
    return {
        "method": request.method,
        "path": request.path,
        "remote": request.remote,
        "picker": picker.id if isinstance(picker, Picker) else None,
    }


def _refused(request: web.Request, status: int, code: str, message: str) -> None:
    BAD_REQUESTS.labels(code=code).inc()
    log.warning(
        "request refused: %s",
        code,
        extra={**_context(request), "status": status, "detail": message},
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the contract's error body; count and log it once."""
    state = request.app[STATE]
    if state.draining:
        _refused(request, 503, "draining", "the box is restarting")
        return error_response(
            503, "draining", "the box is restarting; retry shortly", **{"Retry-After": "2"}
        )
    # A WebSocket lives for the whole shift: it is not "in flight" for drain(),
    # which closes the sockets itself once the requests are done.
    counted = request.path != "/api/v1/ws"
    if counted:
        state.inflight += 1
        state.event().clear()
    try:
        return await handler(request)
    except ApiError as exc:
        _refused(request, exc.status, exc.code, str(exc))
        headers = (
            {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after is not None else {}
        )
        return error_response(exc.status, exc.code, str(exc), **headers)
    except (PickingError, ShippingError) as exc:
        _refused(request, exc.status, exc.code, str(exc))
        return error_response(exc.status, exc.code, str(exc))
    except auth.AuthError as exc:
        _refused(request, exc.status, exc.code, str(exc))
        return error_response(exc.status, exc.code, str(exc))
    except BacklogFullError as exc:
        _refused(request, 503, exc.code, str(exc))
        return error_response(503, exc.code, str(exc))
    except StoreError as exc:
        BAD_REQUESTS.labels(code=exc.code).inc()
        log.error("store failure: %s", exc, extra=_context(request))
        return error_response(503, exc.code, "the box cannot store this now; nothing was changed")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, f"http_{exc.status}")
        message = {
            "not_found": "no such route",
            "method_not_allowed": f"{request.method} is not allowed here",
            "body_too_large": "the request body is too large",
        }.get(code, exc.reason)
        _refused(request, exc.status, code, message)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return error_response(exc.status, code, message, **headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        BAD_REQUESTS.labels(code="internal_error").inc()
        log.exception("internal error", extra=_context(request))
        return error_response(500, "internal_error", "internal error; it has been logged")
    finally:
        if counted:
            state.inflight -= 1
            if state.inflight == 0:
                state.event().set()


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer sessions on everything that is not public; unknown routes 404 first."""
    match = request.match_info
    if match.http_exception is not None:
        raise match.http_exception
    if (request.method, request.path) in _PUBLIC or request.path.startswith("/static/"):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if request.path == "/metrics":
        # A scraper is no picker: it presents the scrape token, not a session.
        scheme, _, token = header.partition(" ")
        expected = request.app[METRICS_TOKEN].encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
            raise ApiError(401, "unauthorized", "send the scrape token (Authorization: Bearer)")
        return await handler(request)
    if not header and request.path == "/api/v1/ws":
        return await handler(request)  # the socket authenticates with its first message
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "log in first (Authorization: Bearer <token>)")
    session = auth.session_of(request.app[STORE], token.strip())
    if session is None:
        raise ApiError(401, "unauthorized", "the session expired or was ended; log in again")
    request[PICKER] = session.picker
    request[TOKEN] = token.strip()
    return await handler(request)


async def _json_object(request: web.Request) -> dict[str, Any]:
    if (
        request.content_length is not None
        and request.content_length > request.app[CONFIG].api.max_body_bytes
    ):
        raise web.HTTPRequestEntityTooLarge(
            max_size=request.app[CONFIG].api.max_body_bytes,
            actual_size=request.content_length,
        )
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


def _string(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ApiError(
            400, "invalid_request", f"{key!r} must be a non-empty string of at most {limit}"
        )
    return value


def _integer(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, "invalid_request", f"{key!r} must be an integer")
    return value


def _outcome_response(outcome: Outcome) -> web.Response:
    return web.Response(body=outcome.body, content_type=JSON)


# --------------------------------------------------------------------------- handlers


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def pack_page(request: web.Request) -> web.StreamResponse:
    """The pack station page: static HTML, no data (it calls the pack API)."""
    return web.FileResponse(WEB_DIR / "pack.html", headers={"Cache-Control": "no-cache"})


_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


async def static_file(request: web.Request) -> web.StreamResponse:
    """The PDA page's own files only: a fixed set of names, no paths."""
    name = request.match_info["name"]
    path = WEB_DIR / "static" / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    content_type = _STATIC_TYPES.get(path.suffix, "application/octet-stream")
    return web.FileResponse(
        path, headers={"Cache-Control": "no-cache", "Content-Type": content_type}
    )


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(metrics=METRICS in request.app))


async def login(request: web.Request) -> web.Response:
    limiter = request.app[LIMITER]
    who = request.remote or "?"
    wait = limiter.retry_after(who)
    if wait is not None:
        raise ApiError(
            429, "too_many_attempts", "too many failed logins; wait a minute", retry_after=wait
        )
    store = request.app[STORE]
    try:
        key = request.headers.get("X-Device-Key", "")
        if not key:
            raise auth.UnknownDeviceError("X-Device-Key is missing: this PDA must be enrolled")
        body = await _json_object(request)
        badge = _string(body, "badge", 256).strip("\r\n")
        pda = auth.device_of(store, key)
        picker = auth.picker_by_badge(store, badge)
    except (auth.AuthError, ApiError):
        limiter.failed(who)
        raise
    limiter.succeeded(who)
    token = await auth.open_session(store, picker, pda, request.app[CONFIG].api.token_ttl_s)
    log.info("picker logged in", extra={"picker": picker.id, "pda": pda})
    return web.json_response(
        {"token": token, "picker": {"id": picker.id, "name": picker.name, "role": picker.role}},
        status=201,
    )


async def logout(request: web.Request) -> web.Response:
    await auth.close_session(request.app[STORE], request[TOKEN])
    return web.Response(status=204)


async def scan(request: web.Request) -> web.Response:
    started = time.perf_counter()
    body = await _json_object(request)
    code = _string(body, "code", MAX_CODE)
    scan_id = _string(body, "scan_id", MAX_SCAN_ID)
    outcome = await request.app[PICKING].scan(request[PICKER], code, scan_id)
    crash_point("after_commit_before_answer")  # tests only: inert unless armed
    SCAN_SECONDS.observe(time.perf_counter() - started)
    return _outcome_response(outcome)


async def get_tour(request: web.Request) -> web.Response:
    tour = await request.app[PICKING].current_tour(request[PICKER].id)
    return web.json_response(tour)


async def short_pick(request: web.Request) -> web.Response:
    body = await _json_object(request)
    stop = _integer(body, "stop")
    found = _integer(body, "found")
    reason = body.get("reason", "other")
    if reason not in SHORT_REASONS:
        raise ApiError(400, "invalid_request", f"reason must be one of {', '.join(SHORT_REASONS)}")
    outcome = await request.app[PICKING].short(request[PICKER], stop, found, reason)
    return _outcome_response(outcome)


async def skip_stop(request: web.Request) -> web.Response:
    body = await _json_object(request)
    outcome = await request.app[PICKING].skip(request[PICKER], _integer(body, "stop"))
    return _outcome_response(outcome)


def _packing(request: web.Request) -> PackingService:
    packing = request.app.get(PACKING)
    if packing is None:
        raise ApiError(404, "not_found", "this box has no pack stations")
    return packing


async def pack_scan(request: web.Request) -> web.Response:
    """A scan at a pack station (docs/pda.md): the station's order, cartons, labels."""
    body = await _json_object(request)
    station = _string(body, "station", 64)
    code = _string(body, "code", MAX_CODE)
    scan_id = _string(body, "scan_id", MAX_SCAN_ID)
    outcome = await _packing(request).scan(
        station, code, packer=request[PICKER].id, scan_id=scan_id
    )
    return web.Response(body=outcome.body, content_type=JSON)


async def pack_station(request: web.Request) -> web.Response:
    return web.json_response(_packing(request).view(request.match_info["station"]))


async def layout(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONFIG].layout_dict())


async def websocket(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
    await ws.prepare(request)
    picker = request.get(PICKER)
    if not isinstance(picker, Picker):
        picker = await _ws_first_message_auth(request, ws)
        if picker is None:
            return ws
    hub = request.app[HUB]
    hub.add(picker.id, ws)
    try:
        await ws.send_json({"type": "message", "text": "connected", "picker": picker.id})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str("pong")
    finally:
        hub.remove(picker.id, ws)
    return ws


async def _ws_first_message_auth(request: web.Request, ws: web.WebSocketResponse) -> Picker | None:
    """Read ``{"type": "auth", "token": …}``; close with 4401 when it is not valid."""
    try:
        msg = await ws.receive(timeout=WS_AUTH_TIMEOUT_S)
    except TimeoutError:
        msg = None
    session = None
    if msg is not None and msg.type == WSMsgType.TEXT:
        with contextlib.suppress(ValueError):
            first = json.loads(msg.data)
            if isinstance(first, dict) and first.get("type") == "auth":
                token = first.get("token")
                if isinstance(token, str) and token:
                    session = auth.session_of(request.app[STORE], token)
    if session is None:
        BAD_REQUESTS.labels(code="unauthorized").inc()
        log.warning("websocket refused: no valid auth message", extra=_context(request))
        await ws.send_json(
            {"type": "error", "error": {"code": "unauthorized", "message": "log in first"}}
        )
        await ws.close(code=4401, message=b"unauthorized")
        return None
    request[PICKER] = session.picker
    return session.picker


# --------------------------------------------------------------------------- factory


async def metrics(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(request.app[METRICS])
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def create_app(
    store: Store,
    cfg: Config,
    *,
    picking: PickingService,
    packing: PackingService | None = None,
    hub: PdaHub | None = None,
    limiter: auth.LoginLimiter | None = None,
    metrics_exposition: Callable[[], bytes] | None = None,
    metrics_token: str | None = None,
) -> web.Application:
    """The PDA API application. ``picking`` owns the workflow; pushes it makes
    (tour_assigned, tour_rerouted) go to the PDAs' sockets through ``hub``.
    ``GET /metrics`` exists when both ``metrics_exposition`` and the scraper's
    ``metrics_token`` are given."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware],
        client_max_size=cfg.api.max_body_bytes,
    )
    app[STORE] = store
    app[CONFIG] = cfg
    app[PICKING] = picking
    app[HUB] = hub if hub is not None else PdaHub()
    app[LIMITER] = limiter if limiter is not None else auth.LoginLimiter()
    app[STATE] = ServerState()
    picking.subscribe(app[HUB].push)
    if packing is not None:
        app[PACKING] = packing
        packing.subscribe(app[HUB].push)
    app[HUB].on_task_cancelled(picking.cancel_task)

    r = app.router
    r.add_get("/", index)
    r.add_get("/pack", pack_page)
    r.add_get("/healthz", healthz)
    r.add_get("/api/v1/openapi.json", openapi)
    r.add_post("/api/v1/sessions", login)
    r.add_delete("/api/v1/sessions", logout)
    r.add_post("/api/v1/scan", scan)
    r.add_get("/api/v1/tour", get_tour)
    r.add_post("/api/v1/tour/short", short_pick)
    r.add_post("/api/v1/tour/skip", skip_stop)
    r.add_get("/api/v1/layout", layout)
    r.add_post("/api/v1/pack/scan", pack_scan)
    r.add_get("/api/v1/pack/stations/{station}", pack_station)
    r.add_get("/api/v1/ws", websocket)
    r.add_get("/static/{name}", static_file)
    if metrics_exposition is not None and metrics_token:
        app[METRICS] = metrics_exposition
        app[METRICS_TOKEN] = metrics_token
        r.add_get("/metrics", metrics)

    async def close_sockets(app: web.Application) -> None:
        await app[HUB].close_all()

    app.on_shutdown.append(close_sockets)
    return app
