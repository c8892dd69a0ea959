"""The PDA API (pda-api-v1) as an aiohttp application.

Promises:

- Every route but ``POST /api/v1/sessions`` (device key), ``GET /``, ``GET
  /pack``, ``GET /dashboard``, the pages' static files and the health checks (``GET /healthz``,
  ``/livez``, ``/readyz``: :mod:`edge.api.health`) needs ``Authorization: Bearer``; the
  WebSocket also accepts the token in its first message, never in the URL.
- Every route that needs a session has its roles in :data:`ROLES`, enforced
  in one place (:func:`auth_middleware`, before the handler reads the body);
  :func:`create_app` refuses to build an application with a route that is
  neither public nor listed.
- Every failure answers ``{"error": {"code", "message"}}`` with a stable code:
  ``bad_json``, ``invalid_request``, ``bad_http`` (malformed HTTP, answered by
  :class:`ApiRunner`'s connections, never echoing the input), ``client_gone``
  (counted, logged at DEBUG: nobody reads the answer), ``body_too_large`` (413), ``not_found``,
  ``method_not_allowed``, ``unauthorized``, ``unknown_device``,
  ``unknown_badge``, ``too_many_attempts`` (429), ``forbidden`` (403: the
  caller's role is not in the route's :data:`ROLES` entry), the admin codes
  (``pda_exists`` 409, ``unknown_pda`` 404), the picking codes (``no_tour``,
  ``unknown_stop``, …) and the supervisor codes (``unknown_tour``,
  ``tour_not_active``, ``unknown_picker``, ``picker_busy``,
  ``unknown_location``, ``unknown_sku``, ``below_reserved``), the store's codes (503) and
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
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from prometheus_client import Counter, Histogram

from common.errors import PickEdgeError
from common.faults import crash_point
from devices.codes import gs1
from edge.api import auth, health, validate
from edge.api.hub import PdaHub
from edge.api.openapi import openapi_document
from edge.config import Config
from edge.ops import overview
from edge.ops.hours import ScanHours
from edge.picking import SHORT_REASONS, Picker, PickingError, PickingService
from edge.picking.service import Outcome
from edge.picking.supervise import MAX_REASON, Supervision
from edge.shipping.errors import ShippingError
from edge.shipping.service import PackingService
from edge.store.db import Store, now_ms
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
MAX_BADGE = 256
MAX_STATION = 64
MAX_DEVICE_KEY = 256
MAX_NAME = 64  # a picker id, SKU, location or lot in a supervisor's request
MAX_REF = 128
MAX_EXCEPTIONS = 500


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
    #: the GS1 tables were imported (or are being) after a first login
    codes_warmed: bool = False

    def event(self) -> asyncio.Event:
        if self.idle is None:
            self.idle = asyncio.Event()
            self.idle.set()
        return self.idle


STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", Config)
PICKING = web.AppKey("picking", PickingService)
PACKING = web.AppKey("packing", PackingService)
SUPERVISION = web.AppKey("supervision", Supervision)
HUB = web.AppKey("hub", PdaHub)
LIMITER = web.AppKey("limiter", auth.LoginLimiter)
STATE = web.AppKey("state", ServerState)
#: renders the Prometheus exposition; set by the daemon (no /metrics without it)
METRICS: web.AppKey[Callable[[], bytes]] = web.AppKey("metrics")
METRICS_TOKEN = web.AppKey("metrics_token", str)
#: answer times of scans per hour, for the dashboard (flushed by maintenance)
SCAN_HOURS = web.AppKey("scan_hours", ScanHours)
#: the running device supervisor's snapshot; set by the wiring when devices exist
DEVICE_STATES: web.AppKey[Callable[[], dict[str, dict[str, Any]]]] = web.AppKey("device_states")

PICKER = web.RequestKey("picker", Picker)  # the authenticated picker
TOKEN = web.RequestKey("session_token", str)

#: who may call a route (:data:`ROLES`, beside the route registration)
EVERYONE: frozenset[str] = frozenset(auth.ROLES)
#: roles that see and act for the whole zone (supervisor actions, everyone's put-backs)
SUPERVISORS: frozenset[str] = frozenset({"supervisor", "admin"})
ADMINS: frozenset[str] = frozenset({"admin"})

_PUBLIC: set[tuple[str, str]] = {
    ("GET", "/"),
    ("GET", "/pack"),
    ("GET", "/dashboard"),
    ("GET", "/healthz"),
    ("GET", "/livez"),
    ("GET", "/readyz"),
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


def _client_gone(request: web.Request, exc: BaseException | None) -> None:
    BAD_REQUESTS.labels(code="client_gone").inc()
    log.debug(
        "client gone mid-request: %s",
        type(exc).__name__ if exc else "cancelled",
        extra=_context(request),
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
    except (PickingError, ShippingError, validate.BadInputError) as exc:
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
    except ConnectionError as exc:
        # The PDA went away mid-request (flaky Wi-Fi: every day). The answer
        # below goes nowhere; aiohttp notices the closed transport.
        _client_gone(request, exc)
        return error_response(400, "client_gone", "the client closed the connection")
    except asyncio.CancelledError:
        if request.transport is None or request.transport.is_closing():
            _client_gone(request, None)  # aiohttp cancels the handler of a lost connection
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
        given = token.strip().encode("utf-8", "surrogateescape")  # headers may carry any bytes
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected):
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
    _role_allowed(request, session.picker)
    return await handler(request)


def _route_key(request: web.Request) -> tuple[str, str]:
    """(method, path pattern) of the matched route, as :data:`ROLES` keys it."""
    route = request.match_info.route
    method = "GET" if route.method == "HEAD" else route.method  # add_get's HEAD twin
    return method, route.resource.canonical if route.resource is not None else request.path


def _role_allowed(request: web.Request, picker: Picker) -> None:
    """403 ``forbidden`` unless the route's :data:`ROLES` entry has the picker's
    role; a route without an entry allows no one (create_app refuses those)."""
    allowed = ROLES.get(_route_key(request), frozenset())
    if picker.role not in allowed:
        who = "an admin" if allowed == ADMINS else "a supervisor"
        raise ApiError(403, "forbidden", f"only {who} may do this")


async def _json_object(request: web.Request) -> dict[str, Any]:
    if (
        request.content_length is not None
        and request.content_length > request.app[CONFIG].api.max_body_bytes
    ):
        raise web.HTTPRequestEntityTooLarge(
            max_size=request.app[CONFIG].api.max_body_bytes,
            actual_size=request.content_length,
        )
    return validate.json_object(await request.read())


def _outcome_response(outcome: Outcome) -> web.Response:
    return web.Response(body=outcome.body, content_type=JSON)


# --------------------------------------------------------------------------- handlers


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def pack_page(request: web.Request) -> web.StreamResponse:
    """The pack station page: static HTML, no data (it calls the pack API)."""
    return web.FileResponse(WEB_DIR / "pack.html", headers={"Cache-Control": "no-cache"})


async def dashboard_page(request: web.Request) -> web.StreamResponse:
    """The supervisors' dashboard: static HTML, no data (it reads /api/v1/dashboard)."""
    return web.FileResponse(WEB_DIR / "dashboard.html", headers={"Cache-Control": "no-cache"})


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


async def readyz(request: web.Request) -> web.Response:
    return await health.readyz(request, request.app[STORE])


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(metrics=METRICS in request.app))


def _not_limited(wait: float | None) -> None:
    if wait is not None:
        raise ApiError(
            429, "too_many_attempts", "too many failed logins; wait a minute", retry_after=wait
        )


async def login(request: web.Request) -> web.Response:
    """Every refusal but 429 counts against the address and the device key;
    an unknown badge also against the badge (see :class:`auth.LoginLimiter`)."""
    limiter = request.app[LIMITER]
    who = request.remote
    key = request.headers.get("X-Device-Key", "") or None
    _not_limited(limiter.retry_after(who, device_key=key))
    store = request.app[STORE]
    try:
        if key is None:
            raise auth.UnknownDeviceError("X-Device-Key is missing: this PDA must be enrolled")
        if len(key) > MAX_DEVICE_KEY or not validate.clean(key):
            raise auth.UnknownDeviceError("this PDA is not enrolled")
        body = await _json_object(request)
        badge = validate.text(body, "badge", MAX_BADGE).strip("\r\n")
    except (auth.AuthError, ApiError, validate.BadInputError):
        limiter.failed(who, device_key=key)
        raise
    _not_limited(limiter.retry_after(who, badge=badge))
    try:
        pda = auth.device_of(store, key)
        picker = auth.picker_by_badge(store, badge)
    except auth.UnknownBadgeError:
        limiter.failed(who, device_key=key, badge=badge)
        raise
    except auth.AuthError:
        limiter.failed(who, device_key=key)
        raise
    token = await auth.open_session(store, picker, pda, request.app[CONFIG].api.token_ttl_s)
    log.info("picker logged in", extra={"picker": picker.id, "pda": pda})
    _warm_codes(request.app)
    return web.json_response(
        {"token": token, "picker": {"id": picker.id, "name": picker.name, "role": picker.role}},
        status=201,
    )


def _warm_codes(app: web.Application) -> None:
    """Scans follow a login: import the GS1 tables now, in a thread, once
    (they are left out of an idle daemon's memory; devices.codes.gs1)."""
    state = app[STATE]
    if state.codes_warmed:
        return
    state.codes_warmed = True
    future = asyncio.get_running_loop().run_in_executor(None, gs1.warm_up)
    future.add_done_callback(_log_warm_failure)


def _log_warm_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("importing the GS1 tables failed: %s", future.exception())


async def logout(request: web.Request) -> web.Response:
    await auth.close_session(request.app[STORE], request[TOKEN])
    return web.Response(status=204)


async def scan(request: web.Request) -> web.Response:
    started = time.perf_counter()
    body = await _json_object(request)
    code = validate.text(body, "code", MAX_CODE)
    scan_id = validate.text(body, "scan_id", MAX_SCAN_ID)
    outcome = await request.app[PICKING].scan(request[PICKER], code, scan_id)
    crash_point("after_commit_before_answer")  # tests only: inert unless armed
    elapsed = time.perf_counter() - started
    SCAN_SECONDS.observe(elapsed)
    request.app[SCAN_HOURS].record(elapsed)
    return _outcome_response(outcome)


async def get_tour(request: web.Request) -> web.Response:
    tour = await request.app[PICKING].current_tour(request[PICKER].id)
    return web.json_response(tour)


async def get_put_backs(request: web.Request) -> web.Response:
    """The caller's open put-back lines; ``?all=1`` (supervisors): everyone's,
    with who holds them."""
    picker = request[PICKER]
    everyone = request.query.get("all") in ("1", "true")
    if everyone and picker.role not in SUPERVISORS:
        raise ApiError(403, "forbidden", "only a supervisor sees everyone's put-backs")
    lines = await request.app[PICKING].put_backs(None if everyone else picker.id)
    return web.json_response({"put_backs": lines})


async def short_pick(request: web.Request) -> web.Response:
    body = await _json_object(request)
    stop = validate.integer(body, "stop")
    found = validate.integer(body, "found")
    reason = body.get("reason", "other")
    if not isinstance(reason, str) or reason not in SHORT_REASONS:
        raise ApiError(400, "invalid_request", f"reason must be one of {', '.join(SHORT_REASONS)}")
    outcome = await request.app[PICKING].short(request[PICKER], stop, found, reason)
    return _outcome_response(outcome)


async def skip_stop(request: web.Request) -> web.Response:
    body = await _json_object(request)
    outcome = await request.app[PICKING].skip(request[PICKER], validate.integer(body, "stop"))
    return _outcome_response(outcome)


async def count_stop(request: web.Request) -> web.Response:
    """A quantity entered for a count stop whose location was scanned."""
    body = await _json_object(request)
    stop, qty = validate.integer(body, "stop"), validate.integer(body, "qty")
    outcome = await request.app[PICKING].count(request[PICKER], stop, qty)
    return _outcome_response(outcome)


# --------------------------------------------------------------------------- supervisors


def _tour_param(request: web.Request) -> int:
    raw = request.match_info["tour"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_request", "tour must be a tour number")
    return int(raw)


def _optional_text(body: dict[str, Any], key: str, limit: int) -> str | None:
    return None if body.get(key) is None else validate.text(body, key, limit)


async def supervisor_release(request: web.Request) -> web.Response:
    """End an abandoned tour (docs/pda.md, Supervisor actions)."""
    by = request[PICKER]
    tour = _tour_param(request)
    body = await _json_object(request)
    reason = validate.text(body, "reason", MAX_REASON)
    done = await request.app[SUPERVISION].release(by, tour, reason)
    return web.json_response(done.body)


async def supervisor_reassign(request: web.Request) -> web.Response:
    """Hand an active tour to another picker without one."""
    by = request[PICKER]
    tour = _tour_param(request)
    body = await _json_object(request)
    to = validate.text(body, "picker", MAX_NAME)
    done = await request.app[SUPERVISION].reassign(by, tour, to)
    return web.json_response(done.body)


async def supervisor_adjust(request: web.Request) -> web.Response:
    """Change one stock row by ``qty`` (signed) or to ``set``, with a reason."""
    by = request[PICKER]
    body = await _json_object(request)
    sku = validate.text(body, "sku", MAX_NAME)
    location = validate.text(body, "location", MAX_NAME)
    lot = "" if body.get("lot") in (None, "") else validate.text(body, "lot", MAX_NAME)
    has_qty, has_set = body.get("qty") is not None, body.get("set") is not None
    if has_qty == has_set:
        raise ApiError(400, "invalid_request", "give either qty (a signed change) or set")
    qty = set_to = None
    if has_qty:
        qty = validate.integer(body, "qty", lo=-validate.MAX_COUNT)
        if qty == 0:
            raise ApiError(400, "invalid_request", "qty must not be 0")
    else:
        set_to = validate.integer(body, "set")
    reason = validate.text(body, "reason", MAX_REASON)
    ref = _optional_text(body, "ref", MAX_REF)
    done = await request.app[SUPERVISION].adjust(
        by, sku=sku, location=location, lot=lot, qty=qty, set_to=set_to, reason=reason, ref=ref
    )
    return web.json_response(done.body)


async def supervisor_tours(request: web.Request) -> web.Response:
    return web.json_response({"tours": await request.app[SUPERVISION].tours()})


async def supervisor_exceptions(request: web.Request) -> web.Response:
    raw = request.query.get("limit", "50")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_EXCEPTIONS:
        raise ApiError(400, "invalid_request", f"limit must be from 1 to {MAX_EXCEPTIONS}")
    items = await request.app[SUPERVISION].exceptions(int(raw))
    return web.json_response({"exceptions": items})


async def supervisor_counts(request: web.Request) -> web.Response:
    """Open count tasks, recent finished counts (``limit``), inventory accuracy."""
    raw = request.query.get("limit", "50")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_EXCEPTIONS:
        raise ApiError(400, "invalid_request", f"limit must be from 1 to {MAX_EXCEPTIONS}")
    return web.json_response(await request.app[SUPERVISION].counts(int(raw)))


async def dashboard(request: web.Request) -> web.Response:
    """The overview of :mod:`edge.ops.overview` (docs/dashboard.md)."""
    app = request.app
    cfg, store = app[CONFIG], app[STORE]
    live = app[DEVICE_STATES]() if DEVICE_STATES in app else None
    pending = app[SCAN_HOURS].pending()
    configured = [overview.ConfiguredDevice(d.id, d.driver, d.role.value) for d in cfg.devices]

    def read() -> dict[str, Any]:
        return overview.snapshot(
            store.reader().conn,
            now=now_ms(),
            pitch_m=cfg.layout.aisle_pitch_m,
            live_devices=live,
            configured=configured,
            pending=pending,
        )

    return web.json_response(await asyncio.to_thread(read))


async def supervisor_alerts(request: web.Request) -> web.Response:
    """The open alerts, the most severe first, with who acknowledged them."""
    return web.json_response({"alerts": overview.open_alerts(request.app[STORE].reader().conn)})


async def supervisor_alert_ack(request: web.Request) -> web.Response:
    """Acknowledge an open alert (local: who and when; it stays open)."""
    by = request[PICKER]
    raw = request.match_info["alert"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ApiError(400, "invalid_request", "alert must be an alert number")
    alert = int(raw)
    done = await request.app[STORE].write(
        lambda tx: overview.acknowledge(tx, alert, by.id, now_ms())
    )
    log.info("alert %d acknowledged", alert, extra={"picker": by.id})
    return web.json_response({"alert": done})


# --------------------------------------------------------------------------- admins


def _pda_param(request: web.Request) -> str:
    return validate.path_text(request.match_info["pda"], "pda", auth.MAX_PDA_NAME)


async def admin_pdas(request: web.Request) -> web.Response:
    """Every enrolled PDA (never a key): id, name, enrolled, revoked, live sessions."""
    rows = await asyncio.to_thread(auth.list_pdas, request.app[STORE])
    return web.json_response(
        {
            "pdas": [
                {
                    "id": r.id,
                    "name": r.name,
                    "enrolled_ms": r.created_ms,
                    "revoked_ms": r.revoked_ms,
                    "sessions": r.sessions,
                }
                for r in rows
            ]
        }
    )


async def admin_enroll(request: web.Request) -> web.Response:
    """Enrol a PDA ``{"name"}``: 201 with its device key, shown this once."""
    by = request[PICKER]
    body = await _json_object(request)
    raw = validate.text(body, "name", auth.MAX_PDA_NAME + 16)  # stripped below
    try:
        name = auth.pda_name(raw)
        pda_id, key = await auth.enroll_pda_async(request.app[STORE], name)
    except auth.PdaNameTakenError as exc:
        raise ApiError(409, exc.code, "a PDA of that name exists; choose another") from None
    except auth.EnrolmentError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    log.info("PDA enrolled", extra={"picker": by.id, "pda": pda_id})
    return web.json_response({"pda": name, "id": pda_id, "key": key}, status=201)


async def admin_revoke(request: web.Request) -> web.Response:
    """Revoke a PDA by name or id; its sessions end in the same transaction."""
    by = request[PICKER]
    which = _pda_param(request)
    try:
        pda_id, ended = await auth.revoke_pda_async(request.app[STORE], which)
    except auth.UnknownPdaError as exc:
        raise ApiError(404, exc.code, "no PDA of that name or id") from None
    log.info("PDA revoked", extra={"picker": by.id, "pda": pda_id, "ended": ended})
    return web.json_response({"pda": pda_id, "revoked": True, "sessions_ended": ended})


def _packing(request: web.Request) -> PackingService:
    packing = request.app.get(PACKING)
    if packing is None:
        raise ApiError(404, "not_found", "this box has no pack stations")
    return packing


async def pack_scan(request: web.Request) -> web.Response:
    """A scan at a pack station (docs/pda.md): the station's order, cartons, labels."""
    body = await _json_object(request)
    station = validate.text(body, "station", MAX_STATION)
    code = validate.text(body, "code", MAX_CODE)
    scan_id = validate.text(body, "scan_id", MAX_SCAN_ID)
    outcome = await _packing(request).scan(
        station, code, packer=request[PICKER].id, scan_id=scan_id
    )
    return web.Response(body=outcome.body, content_type=JSON)


async def pack_station(request: web.Request) -> web.Response:
    station = validate.path_text(request.match_info["station"], "station", MAX_STATION)
    return web.json_response(_packing(request).view(station))


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
                if isinstance(token, str) and token and validate.clean(token):
                    session = auth.session_of(request.app[STORE], token)
    if session is None:
        BAD_REQUESTS.labels(code="unauthorized").inc()
        log.warning("websocket refused: no valid auth message", extra=_context(request))
        await ws.send_json(
            {"type": "error", "error": {"code": "unauthorized", "message": "log in first"}}
        )
        await ws.close(code=4401, message=b"unauthorized")
        return None
    if session.picker.role not in ROLES.get(_route_key(request), frozenset()):
        BAD_REQUESTS.labels(code="forbidden").inc()
        log.warning("websocket refused: role not allowed", extra=_context(request))
        await ws.send_json(
            {"type": "error", "error": {"code": "forbidden", "message": "not for this role"}}
        )
        await ws.close(code=4403, message=b"forbidden")
        return None
    request[PICKER] = session.picker
    return session.picker


# --------------------------------------------------------------------------- HTTP errors

#: malformed HTTP is logged at most once a minute (with a count): a port scanner
#: or a flood must not fill the disk; every one is counted in the metrics
MALFORMED_LOG_INTERVAL_S = 60.0


@dataclass(slots=True)
class _Throttle:
    interval_s: float
    last: float = float("-inf")
    suppressed: int = 0

    def due(self) -> int | None:
        """How many were suppressed since the last log, or None when not due."""
        now = time.monotonic()
        if now - self.last < self.interval_s:
            self.suppressed += 1
            return None
        self.last, suppressed, self.suppressed = now, self.suppressed, 0
        return suppressed


_MALFORMED = _Throttle(MALFORMED_LOG_INTERVAL_S)


class _JsonErrorProtocol(RequestHandler):
    """aiohttp's connection handler, answering what no middleware sees — a
    request its HTTP parser refuses (bad request line, header, method, length)
    — with the contract's JSON error instead of a text that echoes the input,
    and without a traceback in the log."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was sent already; the connection is dropped")
        if status < 500:
            BAD_REQUESTS.labels(code="bad_http").inc()
            suppressed = _MALFORMED.due()
            if suppressed is not None:
                log.warning(
                    "malformed HTTP request refused (%d more in the last minute): %s",
                    suppressed,
                    type(exc).__name__,
                    extra={"remote": request.remote},
                )
            resp = error_response(400, "bad_http", "the request is not valid HTTP/1.1")
        else:  # a failure outside every middleware: a bug
            BAD_REQUESTS.labels(code="internal_error").inc()
            log.error("internal error outside the handlers", exc_info=exc)
            resp = error_response(500, "internal_error", "internal error; it has been logged")
        resp.force_close()
        return resp


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorProtocol(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """:class:`aiohttp.web.AppRunner` whose connections refuse malformed HTTP
    with the contract's JSON error (aiohttp has no hook for it: aio-libs/aiohttp#3287)."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # the same server; only its protocol differs
        return server


# --------------------------------------------------------------------------- factory


async def metrics(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(request.app[METRICS])
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


#: who may call each route that needs a session: (method, path pattern) → roles.
#: The one place roles are decided (:func:`auth_middleware` enforces it);
#: create_app refuses a route that is neither here nor public, so a new route
#: cannot slip in unprotected. Finer checks stay in handlers (``?all=1`` on
#: put-backs is for supervisors).
ROLES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/openapi.json"): EVERYONE,
    ("DELETE", "/api/v1/sessions"): EVERYONE,
    ("POST", "/api/v1/scan"): EVERYONE,
    ("GET", "/api/v1/tour"): EVERYONE,
    ("GET", "/api/v1/put-backs"): EVERYONE,
    ("POST", "/api/v1/tour/short"): EVERYONE,
    ("POST", "/api/v1/tour/skip"): EVERYONE,
    ("POST", "/api/v1/tour/count"): EVERYONE,
    ("GET", "/api/v1/layout"): EVERYONE,
    ("POST", "/api/v1/pack/scan"): EVERYONE,
    ("GET", "/api/v1/pack/stations/{station}"): EVERYONE,
    ("GET", "/api/v1/ws"): EVERYONE,
    ("POST", "/api/v1/supervisor/tours/{tour}/release"): SUPERVISORS,
    ("POST", "/api/v1/supervisor/tours/{tour}/reassign"): SUPERVISORS,
    ("POST", "/api/v1/supervisor/stock/adjust"): SUPERVISORS,
    ("GET", "/api/v1/supervisor/tours"): SUPERVISORS,
    ("GET", "/api/v1/supervisor/exceptions"): SUPERVISORS,
    ("GET", "/api/v1/supervisor/counts"): SUPERVISORS,
    ("GET", "/api/v1/supervisor/alerts"): SUPERVISORS,
    ("POST", "/api/v1/supervisor/alerts/{alert}/ack"): SUPERVISORS,
    ("GET", "/api/v1/dashboard"): SUPERVISORS,
    ("GET", "/api/v1/admin/pdas"): ADMINS,
    ("POST", "/api/v1/admin/pdas"): ADMINS,
    ("POST", "/api/v1/admin/pdas/{pda}/revoke"): ADMINS,
}
#: routes with their own credential, not a picker's session
_NOT_SESSIONS = {("GET", "/metrics"), ("GET", "/static/{name}")}


def route_table(app: web.Application) -> set[tuple[str, str]]:
    """(method, path pattern) of every route of ``app`` (HEAD twins left out)."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def _check_roles(app: web.Application) -> None:
    served = route_table(app)
    unlisted = served - _PUBLIC - _NOT_SESSIONS - ROLES.keys()
    if unlisted:
        raise RuntimeError(f"routes without roles in edge.api.app.ROLES: {sorted(unlisted)}")
    stale = ROLES.keys() - served
    if stale:
        raise RuntimeError(f"ROLES lists routes that are not served: {sorted(stale)}")


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
    scan_hours: ScanHours | None = None,
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
    app[SCAN_HOURS] = scan_hours if scan_hours is not None else ScanHours()
    picking.subscribe(app[HUB].push)
    if packing is not None:
        app[PACKING] = packing
        packing.subscribe(app[HUB].push)
    app[HUB].on_task_cancelled(picking.cancel_task)
    app[SUPERVISION] = Supervision(
        store, pitch=picking.planner.pitch, on_commit=picking.on_commit, push=app[HUB].push
    )

    r = app.router
    r.add_get("/", index)
    r.add_get("/pack", pack_page)
    r.add_get("/dashboard", dashboard_page)
    r.add_get("/healthz", healthz)
    r.add_get("/livez", health.livez)
    r.add_get("/readyz", readyz)
    r.add_get("/api/v1/openapi.json", openapi)
    r.add_post("/api/v1/sessions", login)
    r.add_delete("/api/v1/sessions", logout)
    r.add_post("/api/v1/scan", scan)
    r.add_get("/api/v1/tour", get_tour)
    r.add_get("/api/v1/put-backs", get_put_backs)
    r.add_post("/api/v1/tour/short", short_pick)
    r.add_post("/api/v1/tour/skip", skip_stop)
    r.add_post("/api/v1/tour/count", count_stop)
    r.add_get("/api/v1/layout", layout)
    r.add_post("/api/v1/supervisor/tours/{tour}/release", supervisor_release)
    r.add_post("/api/v1/supervisor/tours/{tour}/reassign", supervisor_reassign)
    r.add_post("/api/v1/supervisor/stock/adjust", supervisor_adjust)
    r.add_get("/api/v1/supervisor/tours", supervisor_tours)
    r.add_get("/api/v1/supervisor/exceptions", supervisor_exceptions)
    r.add_get("/api/v1/supervisor/counts", supervisor_counts)
    r.add_get("/api/v1/supervisor/alerts", supervisor_alerts)
    r.add_post("/api/v1/supervisor/alerts/{alert}/ack", supervisor_alert_ack)
    r.add_get("/api/v1/dashboard", dashboard)
    r.add_get("/api/v1/admin/pdas", admin_pdas)
    r.add_post("/api/v1/admin/pdas", admin_enroll)
    r.add_post("/api/v1/admin/pdas/{pda}/revoke", admin_revoke)
    r.add_post("/api/v1/pack/scan", pack_scan)
    r.add_get("/api/v1/pack/stations/{station}", pack_station)
    r.add_get("/api/v1/ws", websocket)
    r.add_get("/static/{name}", static_file)
    if metrics_exposition is not None and metrics_token:
        app[METRICS] = metrics_exposition
        app[METRICS_TOKEN] = metrics_token
        r.add_get("/metrics", metrics)
    _check_roles(app)  # every route has its roles (or is public) before it serves

    async def close_sockets(app: web.Application) -> None:
        await app[HUB].close_all()

    app.on_shutdown.append(close_sockets)
    return app
