"""Hostile input at every boundary of the PDA API (issue 14), against a real
aiohttp server on loopback served by :class:`edge.api.app.ApiRunner`.

Each finding is reproduced: JSON nested 3,000 deep, lone surrogates in every
string field and in headers, integers beyond int64, malformed HTTP over a raw
socket, clients that drop mid-body, the walk-arounds of the login limiter
(4 wrong + 1 right repeated; a flood of other addresses; a NAT with one bad
device) and sessions piling up. Every refusal is a 4xx with the contract's
JSON error; nothing logs an ERROR or a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from edge.api import auth
from edge.api.app import ApiRunner, create_app
from edge.api.auth import FailureTable, LoginLimiter
from edge.config import Config, ShippingConfig
from edge.picking import PickingService
from edge.shipping import sscc
from edge.shipping.service import PackingService, Station
from edge.store.db import Store
from edge.store.syncmark import SyncMark
from tests.support.api_fixtures import Pda, add_task

ERROR_STATUSES = {400, 401, 404, 409, 413, 429}
SURROGATE = "\ud800"


def _count(code: str) -> float:
    value = REGISTRY.get_sample_value("pickedge_api_bad_requests_total", {"code": code})
    return value or 0.0


def assert_quiet(records: list[logging.LogRecord]) -> None:
    """No ERROR records, and no traceback above DEBUG."""
    loud = [r for r in records if r.levelno >= logging.ERROR]
    assert not loud, [r.getMessage() for r in loud]
    traced = [r for r in records if r.levelno > logging.DEBUG and r.exc_info]
    assert not traced, [r.getMessage() for r in traced]


def assert_error_body(body: Any) -> str:
    """The contract's error body exactly; returns its code."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message"}, body
    assert isinstance(error["code"], str) and error["code"], body
    assert isinstance(error["message"], str), body
    return str(error["code"])


class _Printers:
    async def send(self, printer: str, job: bytes) -> None:
        return None


class JsonErrorTestServer(TestServer):
    """aiohttp's TestServer with the daemon's runner (malformed HTTP → JSON)."""

    def __init__(self, app: web.Application, *, cancel_handlers: bool = True) -> None:
        super().__init__(app, host="127.0.0.1", port=0)
        self.cancel_handlers = cancel_handlers

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        kwargs["handler_cancellation"] = self.cancel_handlers
        return ApiRunner(self.app, **kwargs)


@dataclass
class Box:
    store: Store
    cfg: Config
    server: TestServer
    http: aiohttp.ClientSession
    limiter: LoginLimiter
    worker: Pda | None = None

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    def pda(self) -> Pda:
        _, key = auth.enroll_pda(self.store, f"pda-{uuid.uuid4().hex[:8]}")
        return Pda(self.http, self.base, key)

    async def picker(self, badge: str = "BADGE-1") -> Pda:
        pda = self.pda()
        await pda.login(badge)
        return pda

    async def post_raw(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        async with self.http.post(
            self.base + path,
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as r:
            return r.status, await r.json(content_type=None)

    async def raw(self, data: bytes, *more: bytes) -> bytes:
        """Send ``data`` (then each of ``more``, a moment apart) on a new
        connection; everything the server answers until it closes."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            for chunk in (data, *more):
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0.1 if more else 0)
            async with asyncio.timeout(5):
                return await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def _serve(
    store: Store, cfg: Config, limiter: LoginLimiter, *, cancel_handlers: bool = True
) -> AsyncIterator[Box]:
    SyncMark(store).reconcile()
    store.run(lambda tx: sscc.configure(tx, ShippingConfig(gs1_prefix="7612345", sscc_last=50)))
    packing = PackingService(
        store,
        allocate=sscc.allocate,
        printers=_Printers(),
        stations={"P1": Station("P1")},
        box_id=cfg.box.id,
        printer_state=lambda printer: "ready",
    )
    app = create_app(
        store,
        cfg,
        picking=PickingService(store, cfg.layout_dict()),
        packing=packing,
        limiter=limiter,
        metrics_exposition=lambda: b"",
        metrics_token="scrape-token",
    )
    server = JsonErrorTestServer(app, cancel_handlers=cancel_handlers)
    await server.start_server()
    http = aiohttp.ClientSession()
    try:
        yield Box(store, cfg, server, http, limiter)
    finally:
        await http.close()
        await server.close()


@pytest.fixture
async def box(zone_store: tuple[Store, Config]) -> AsyncIterator[Box]:
    store, cfg = zone_store
    async with _serve(store, cfg, LoginLimiter()) as b:
        yield b


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Fails the test when the call logged an ERROR or a traceback."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    assert_quiet(caplog.get_records("call"))


ROUTES_WITH_BODIES = [
    "/api/v1/sessions",
    "/api/v1/scan",
    "/api/v1/tour/short",
    "/api/v1/tour/skip",
    "/api/v1/pack/scan",
]


# --------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("path", ROUTES_WITH_BODIES)
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000 + b"]" * 3000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b'{"code": ' + b"[" * 5_000,  # unbalanced: never reaches the parser
    ],
    ids=["arrays", "objects", "unbalanced"],
)
async def test_json_nested_deep_is_bad_json(
    box: Box, quiet: pytest.LogCaptureFixture, path: str, body: bytes
) -> None:
    pda = await box.picker()
    headers = {"Authorization": f"Bearer {pda.token}", "X-Device-Key": pda.device_key}
    status, answer = await box.post_raw(path, body, headers)
    assert (status, assert_error_body(answer)) == (400, "bad_json")


async def test_json_depth_counts_brackets_outside_strings_only(box: Box) -> None:
    pda = await box.picker()
    # brackets inside a string are not nesting: this is a plain (unknown) code
    status, answer = await pda.call("POST", "/api/v1/scan", {"code": "[" * 500, "scan_id": "s1"})
    assert status == 200 and answer["result"] == "unknown_code"
    nested: Any = "x"
    for _ in range(30):
        nested = [nested]
    status, answer = await pda.call("POST", "/api/v1/scan", {"code": nested, "scan_id": "s2"})
    assert (status, answer["error"]["code"]) == (400, "invalid_request")  # parsed, then refused


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/scan", "code"),
        ("/api/v1/scan", "scan_id"),
        ("/api/v1/pack/scan", "station"),
        ("/api/v1/pack/scan", "code"),
        ("/api/v1/pack/scan", "scan_id"),
        ("/api/v1/sessions", "badge"),
    ],
)
async def test_lone_surrogates_are_invalid_request(
    box: Box, quiet: pytest.LogCaptureFixture, path: str, field: str
) -> None:
    pda = await box.picker()
    body = {"code": "T-1", "scan_id": str(uuid.uuid4()), "station": "P1", "badge": "BADGE-1"}
    body[field] = f"A{SURROGATE}B"
    headers = {"Authorization": f"Bearer {pda.token}", "X-Device-Key": pda.device_key}
    before = _count("invalid_request")
    status, answer = await box.post_raw(path, json.dumps(body).encode(), headers)
    assert (status, assert_error_body(answer)) == (400, "invalid_request")
    assert _count("invalid_request") == before + 1
    assert box.store.query("SELECT COUNT(*) AS n FROM scans") == [{"n": 0}]


async def test_a_surrogate_badge_is_a_counted_failed_login(
    box: Box, quiet: pytest.LogCaptureFixture
) -> None:
    pda = box.pda()
    headers = {"X-Device-Key": pda.device_key}
    for i in range(5):
        body = json.dumps({"badge": f"GUESS-{i}{SURROGATE}"}).encode()
        status, answer = await box.post_raw("/api/v1/sessions", body, headers)
        assert (status, answer["error"]["code"]) == (400, "invalid_request")
    body = json.dumps({"badge": "BADGE-1"}).encode()
    status, answer = await box.post_raw("/api/v1/sessions", body, headers)
    assert (status, answer["error"]["code"]) == (429, "too_many_attempts")


async def test_not_utf8_bodies_are_bad_json(box: Box, quiet: pytest.LogCaptureFixture) -> None:
    pda = await box.picker()
    headers = {"Authorization": f"Bearer {pda.token}"}
    for raw in (b'{"code": "\xed\xa0\x80", "scan_id": "x"}', '{"code": "é"}'.encode("utf-16")):
        status, answer = await box.post_raw("/api/v1/scan", raw, headers)
        assert (status, assert_error_body(answer)) == (400, "bad_json")


# --------------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/tour/skip", {"stop": 2**63}),
        ("/api/v1/tour/skip", {"stop": 2**64 + 1}),
        ("/api/v1/tour/skip", {"stop": -(2**63) - 1}),
        ("/api/v1/tour/short", {"stop": 2**63, "found": 0, "reason": "empty"}),
        ("/api/v1/tour/short", {"stop": 1, "found": 10**18, "reason": "empty"}),
        ("/api/v1/tour/short", {"stop": 1, "found": -1, "reason": "empty"}),
        ("/api/v1/tour/short", {"stop": 1, "found": 0, "reason": ["empty"]}),
        ("/api/v1/tour/short", {"stop": 1, "found": 0, "reason": {"a": 1}}),
    ],
)
async def test_integers_out_of_range_are_invalid_request(
    box: Box, quiet: pytest.LogCaptureFixture, path: str, body: dict[str, Any]
) -> None:
    add_task(box.store, "T-1", [("SKU-A", 2)])
    pda = await box.picker()
    await pda.scan("T-1")
    status, answer = await pda.call("POST", path, body)
    assert (status, assert_error_body(answer)) == (400, "invalid_request")


# --------------------------------------------------------------------------- raw HTTP


def _responses(answer: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The answers on one connection, in order (each with a Content-Length)."""
    out = []
    while answer:
        head, _, rest = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", len(rest)))
        out.append((int(lines[0].split()[1]), headers, rest[:length]))
        answer = rest[length:]
    return out


def _status_and_body(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """The last answer on the connection."""
    return _responses(answer)[-1]


MALFORMED: dict[str, bytes | tuple[bytes, bytes]] = {
    "header without colon": b"GET /ECHO-1 HTTP/1.1\r\nHost: x\r\nBad Header ECHO-2\r\n\r\n",
    "invalid method": b"GE(T /ECHO-1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "second request has invalid method": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"BR<EW /ECHO-1 HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
    "bad content-length": (
        b"POST /api/v1/scan HTTP/1.1\r\nHost: x\r\nContent-Length: ECHO-1\r\n\r\n"
    ),
    "bad version": b"GET /ECHO-1 HTTP/9.ECHO\r\nHost: x\r\n\r\n",
    "header too long": b"GET / HTTP/1.1\r\nHost: x\r\nX-ECHO-1: " + b"A" * 20_000 + b"\r\n\r\n",
    "control character in header": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: ECHO-1\x01\r\n\r\n",
    "bad chunk": (
        b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nECHO-1\r\n"
    ),
    "binary junk": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfcECHO-1\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_http_gets_the_json_error_without_echo(
    box: Box, quiet: pytest.LogCaptureFixture, request_bytes: bytes | tuple[bytes, bytes]
) -> None:
    before = _count("bad_http")
    chunks = request_bytes if isinstance(request_bytes, tuple) else (request_bytes,)
    answer = await box.raw(*chunks)
    status, headers, body = _status_and_body(answer)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert assert_error_body(json.loads(body)) == "bad_http"
    assert b"ECHO" not in answer and b"Bad Header" not in answer
    assert _count("bad_http") == before + 1


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nX-Device-Key: \xff\xfe\xed\xa0\x80\r\n"
        b'Content-Type: application/json\r\nContent-Length: 20\r\n\r\n{"badge": "BADGE-1"}',
        b"GET /api/v1/tour HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xed\xa0\x80\xff\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xed\xa0\x80\xff\r\n\r\n",
        b"GET /api/v1/pack/stations/%ED%A0%80 HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer TOKEN\r\n\r\n",
        b"GET /api/v1/pack/stations/\xed\xa0\x80 HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer TOKEN\r\n\r\n",
    ],
    ids=["device key", "bearer token", "scrape token", "quoted path", "raw path"],
)
async def test_headers_and_paths_that_are_not_utf8(
    box: Box, quiet: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    """aiohttp decodes headers and paths with surrogateescape: they must reach
    neither SQLite nor an encoder that raises."""
    pda = await box.picker()
    request_bytes = request_bytes.replace(b"TOKEN", str(pda.token).encode())
    answer = await box.raw(
        request_bytes.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    )
    status, _, body = _status_and_body(answer)
    assert status in (400, 401, 404), answer
    assert_error_body(json.loads(body))


async def test_websocket_auth_with_a_surrogate_token_is_refused(
    box: Box, quiet: pytest.LogCaptureFixture
) -> None:
    async with box.http.ws_connect(f"{box.base}/api/v1/ws") as ws:
        await ws.send_str(json.dumps({"type": "auth", "token": SURROGATE}))
        err = await ws.receive_json(timeout=5)
        assert err["error"]["code"] == "unauthorized"
        await ws.receive(timeout=5)
        assert ws.close_code == 4401


# --------------------------------------------------------------------------- clients gone


@pytest.mark.parametrize("cancel_handlers", [True, False], ids=["cancelled", "not-cancelled"])
@pytest.mark.parametrize("path", ["/api/v1/scan", "/api/v1/sessions", "/api/v1/pack/scan"])
async def test_a_client_gone_mid_body_is_debug_and_counted(
    zone_store: tuple[Store, Config],
    caplog: pytest.LogCaptureFixture,
    cancel_handlers: bool,
    path: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    store, cfg = zone_store
    async with _serve(store, cfg, LoginLimiter(), cancel_handlers=cancel_handlers) as box:
        pda = await box.picker()
        before = _count("client_gone")
        _, writer = await asyncio.open_connection("127.0.0.1", box.port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {pda.token}\r\n"
            f"X-Device-Key: {pda.device_key}\r\nContent-Type: application/json\r\n"
            "Content-Length: 400\r\n\r\n".encode()
            + b'{"code": "T-1", "scan'
        )
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler is waiting for the rest of the body
        writer.transport.abort()  # an RST, like a PDA leaving the Wi-Fi
        for _ in range(100):
            if _count("client_gone") > before:
                break
            await asyncio.sleep(0.05)
        assert _count("client_gone") == before + 1
        # the box still serves, and the failed body was no failed login
        assert (await pda.tour())[0] == 404
        assert box.limiter.retry_after("127.0.0.1", device_key=pda.device_key) is None
    assert_quiet(caplog.records)
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]


# --------------------------------------------------------------------------- login limiter


async def _login(
    box: Box, key: str, badge: str, *, http: aiohttp.ClientSession | None = None
) -> int:
    async with (http or box.http).post(
        f"{box.base}/api/v1/sessions", json={"badge": badge}, headers={"X-Device-Key": key}
    ) as r:
        body = await r.json()
        if r.status != 201:
            assert_error_body(body)
        return r.status


async def test_four_wrong_and_one_right_repeated_is_still_limited(box: Box) -> None:
    pda = box.pda()
    statuses = []
    for round_ in range(10):
        for i in range(4):
            statuses.append(await _login(box, pda.device_key, f"GUESS-{round_}-{i}"))
        statuses.append(await _login(box, pda.device_key, "BADGE-1"))
    # five wrong badges reach the limit whatever successes come between them
    assert statuses.count(401) == 5
    assert statuses[:6] == [401, 401, 401, 401, 201, 401]
    assert set(statuses[6:]) == {429}


async def test_a_flood_of_other_addresses_does_not_unblock_one(
    zone_store: tuple[Store, Config],
) -> None:
    """Over HTTP from loopback aliases (127.0.0.0/8): a small table, far more
    addresses than it holds; the blocked one stays blocked."""
    store, cfg = zone_store
    limiter = LoginLimiter(per_address=3, per_device=1000, per_badge=1000, capacity=8)
    async with _serve(store, cfg, limiter) as box:

        def client(n: int) -> aiohttp.ClientSession:
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(f"127.0.1.{n}", 0))
            )

        async with client(1) as attacker:
            assert [await _login(box, "forged", "B", http=attacker) for _ in range(4)] == [
                401,
                401,
                401,
                429,
            ]
        for n in range(2, 2 + 40):  # five times the table's capacity
            async with client(n) as other:
                assert await _login(box, "forged", "B", http=other) == 401
        async with client(1) as attacker:
            assert await _login(box, "forged", "B", http=attacker) == 429
        assert limiter.tracked()["address"] <= 8


def test_the_failure_table_at_its_real_capacity() -> None:
    """10,001 failures from other addresses after one is blocked (the issue's
    walk-around at the default capacity), then a table full of blocked keys."""
    now = [0.0]
    limiter = LoginLimiter(clock=lambda: now[0])
    for _ in range(50):
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") is not None
    for n in range(10_001):
        now[0] += 0.001
        limiter.failed(str(ipaddress.IPv4Address(0x0B000000 + n)))
    assert limiter.retry_after("10.0.0.1") is not None
    assert limiter.tracked()["address"] <= 10_000

    table = FailureTable(limit=2, window_s=60.0, capacity=3)
    for key in ("a", "b", "c"):
        table.failed(key, 0.0)
        table.failed(key, 1.0)
    assert table.retry_after("new", 2.0) == pytest.approx(58.0)  # full of blocked: refused
    table.failed("new", 2.0)
    assert len(table) == 3 and table.retry_after("a", 2.0) is not None
    assert table.retry_after("b", 59.0) == pytest.approx(1.0)
    assert table.retry_after("new", 60.5) is None  # "a" unblocked at 60: room again
    table.failed("new", 60.5)
    assert len(table) == 3 and table.retry_after("a", 60.5) is None


def test_ipv6_addresses_are_limited_per_64() -> None:
    limiter = LoginLimiter(per_address=3)
    for n in range(3):
        limiter.failed(f"2001:db8:1:2::{n + 1:x}")
    assert limiter.retry_after("2001:db8:1:2:ffff::1") is not None
    assert limiter.retry_after("2001:db8:1:3::1") is None
    assert auth.address_key("::ffff:10.1.2.3") == "10.1.2.3"


async def test_one_bad_device_behind_a_nat_does_not_lock_out_the_others(box: Box) -> None:
    """Every PDA here shares 127.0.0.1, as PDAs behind a NAT share its address."""
    bad = box.pda()
    guesses = [await _login(box, bad.device_key, f"GUESS-{i}") for i in range(30)]
    assert guesses[:5] == [401] * 5 and set(guesses[5:]) == {429}
    forged = [await _login(box, f"forged-{i}", "BADGE-2") for i in range(10)]
    assert set(forged) == {401}  # unenrolled keys: counted per key and address
    honest = [box.pda() for _ in range(10)]
    assert [await _login(box, p.device_key, "BADGE-1") for p in honest] == [201] * 10
    # a picker's own badge is not locked by failures that were not the badge's
    assert await _login(box, box.pda().device_key, "BADGE-2") == 201
    # the bad device is still blocked
    assert await _login(box, bad.device_key, "BADGE-1") == 429


async def test_an_address_is_blocked_after_many_failures(
    zone_store: tuple[Store, Config],
) -> None:
    store, cfg = zone_store
    async with _serve(store, cfg, LoginLimiter(per_address=8)) as box:
        statuses = [await _login(box, f"forged-{i}", "B") for i in range(10)]
        assert statuses == [401] * 8 + [429] * 2


# --------------------------------------------------------------------------- sessions


async def test_sessions_are_capped_per_picker(box: Box) -> None:
    pdas = [box.pda() for _ in range(auth.MAX_SESSIONS_PER_PICKER + 2)]
    for pda in pdas:
        await pda.login("BADGE-1")
    statuses = [(await pda.tour())[0] for pda in pdas]
    assert statuses == [401, 401] + [404] * auth.MAX_SESSIONS_PER_PICKER
    rows = box.store.query("SELECT COUNT(*) AS n FROM sessions WHERE picker = 'P1'")
    assert rows == [{"n": auth.MAX_SESSIONS_PER_PICKER}]


async def test_sessions_are_capped_per_device(box: Box) -> None:
    badges = []
    for n in range(auth.MAX_SESSIONS_PER_DEVICE + 2):
        auth.add_picker(box.store, f"X{n}", f"Extra {n}", f"BADGE-X{n}")
        badges.append(f"BADGE-X{n}")
    _, key = auth.enroll_pda(box.store, "shared")
    tokens = []
    for badge in badges:
        pda = Pda(box.http, box.base, key)
        await pda.login(badge)
        tokens.append(pda)
    statuses = [(await pda.tour())[0] for pda in tokens]
    assert statuses == [401, 401] + [404] * auth.MAX_SESSIONS_PER_DEVICE


# --------------------------------------------------------------------------- property

_SURROGATED = st.builds(
    lambda a, lone, b: a + lone + b,
    st.text(max_size=4),
    st.sampled_from(["\ud800", "\udfff", "\udbff"]),
    st.text(max_size=4),
)
_TEXTS = st.one_of(
    st.text(max_size=20),
    _SURROGATED,
    st.sampled_from(["", "T-1", "START", "A-01-05", "P1", "BADGE-2", "empty", "\x00", "\x1d"]),
    st.text(max_size=20).map(lambda t: t * 400),  # beyond the field limits
)
_INTS = st.one_of(
    st.integers(min_value=-3, max_value=5),
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**18, 10**100]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _INTS, st.floats(allow_nan=False), _TEXTS)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def _body(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Bodies near the route's own: each field right, wrong, odd or missing."""
    near = st.fixed_dictionaries(
        {}, optional={k: st.one_of(v, v, _VALUES) for k, v in fields.items()}
    )
    return st.one_of(near, near, _VALUES)


_ROUTE_BODIES = st.one_of(
    st.tuples(st.just("/api/v1/sessions"), _body(badge=_TEXTS)),
    st.tuples(st.just("/api/v1/scan"), _body(code=_TEXTS, scan_id=_TEXTS)),
    st.tuples(
        st.just("/api/v1/tour/short"),
        _body(stop=_INTS, found=_INTS, reason=st.sampled_from(["empty", "damaged", "x"])),
    ),
    st.tuples(st.just("/api/v1/tour/skip"), _body(stop=_INTS)),
    st.tuples(st.just("/api/v1/pack/scan"), _body(station=_TEXTS, code=_TEXTS, scan_id=_TEXTS)),
)


@pytest.fixture
async def lenient_box(zone_store: tuple[Store, Config]) -> AsyncIterator[Box]:
    """A box whose limiter never blocks, so every login example is judged."""
    store, cfg = zone_store
    never = LoginLimiter(per_device=10**9, per_badge=10**9, per_address=10**9)
    async with _serve(store, cfg, never) as b:
        add_task(store, "T-1", [("SKU-A", 2), ("SKU-C", 1)])
        b.worker = await b.picker("BADGE-1")  # the picker of every authenticated example
        yield b


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(route_body=_ROUTE_BODIES)
async def test_any_json_body_gets_a_contract_answer(
    lenient_box: Box, caplog: pytest.LogCaptureFixture, route_body: tuple[str, Any]
) -> None:
    box, (path, body) = lenient_box, route_body
    assert box.worker is not None and box.worker.token is not None
    caplog.clear()
    if path == "/api/v1/sessions":
        headers = {"X-Device-Key": box.pda().device_key}  # P1's sessions are left alone
    else:
        headers = {"Authorization": f"Bearer {box.worker.token}"}
    status, answer = await box.post_raw(path, json.dumps(body).encode(), headers)
    assert status in {200, 201} | ERROR_STATUSES, (status, answer)
    if status >= 400:
        assert_error_body(answer)
    assert_quiet(caplog.records)


# --------------------------------------------------------------------------- the daemon


async def test_the_daemon_server_answers_malformed_http_with_json(
    zone_store: tuple[Store, Config], caplog: pytest.LogCaptureFixture
) -> None:
    from edge.api import ApiServer

    store, cfg = zone_store
    app = create_app(store, cfg, picking=PickingService(store, cfg.layout_dict()))
    server = ApiServer(app, cfg)
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.started.wait(), 10)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header ECHO\r\n\r\n")
        async with asyncio.timeout(5):
            answer = await reader.read()
        writer.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    status, _, body = _status_and_body(answer)
    assert (status, assert_error_body(json.loads(body))) == (400, "bad_http")
    assert b"ECHO" not in answer
    assert_quiet(caplog.records)
