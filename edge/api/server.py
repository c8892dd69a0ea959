"""``ApiServer``: the PDA API as a daemon component (``edge.daemon.Component``).

``run()`` serves the application on ``cfg.api.host``/``port`` until cancelled.
``drain()`` stops listening, answers new requests on kept-alive connections
with 503 ``draining``, waits for the requests in flight (every confirmed scan
finishes and is answered) and closes the PDA sockets.

Every connection passes a :class:`ConnectionGuard` first (issue 14: a hostile
floor network must not lock the PDAs out). aiohttp bounds header *sizes*
(``max_line_size``/``max_field_size``) and closes a kept-alive connection
idle for ``keepalive_timeout`` (recent 3.x also arm that timer at connect,
aiohttp PR #13681; earlier ones left a connection that never sends a request
open forever); it has no header-read timeout (its old ``slow_request_timeout``
is long gone), no body timeout and no connection cap. The guard wraps each
accepted transport's protocol and gives every connection one deadline for its
current phase:

- *head*: from its first byte (a new connection: from connecting) its request
  line and headers must arrive within ``api.header_timeout_s`` — bytes dripping
  in do not extend it;
- *busy*: from the headers, the body must arrive within ``api.body_timeout_s``;
  how long the handler then takes is the application's business (a WebSocket
  is busy for its whole life and keeps its own heartbeat);
- *idle*: after an answer, the next request must start within
  ``api.idle_timeout_s``.

It caps open connections in total (``api.max_connections``, and never more
than the open-file limit less :data:`FD_HEADROOM`, so ``accept`` never meets
EMFILE) and per client address (IPv6: per /64). A connection beyond a cap
takes the place of the one in that scope that has waited longest in *head*
(a slow sender), else the longest *idle* one; when every one is serving a
request, the newcomer is closed at once. A slow-header attacker therefore only
ever pushes out its own kind, and an honest PDA, which sends its headers at
once, gets in. WebSockets that have not authenticated yet are capped as well
(``api.max_pending_websockets`` in total and per address): beyond it the
upgrade is answered 503 ``too_many_connections``.

The phase changes come from the bytes the transport delivers (idle -> head)
and from an outermost middleware the server inserts into the application
(head -> busy when aiohttp hands the parsed request over, busy -> idle when
the handler returns), so nothing here depends on aiohttp's private state.

With ``api.tls_cert_file``/``tls_key_file`` the server speaks HTTPS only (TLS
1.2 or newer; no HSTS, plain HTTP is the default on an isolated floor network,
docs/security.md). The guard admits the plain TCP connection first and then
upgrades it with ``loop.start_tls``, so a connection still in its handshake is
counted, capped and timed like one sending its headers (the handshake is part
of the *head* deadline): a TLS handshake that never ends cannot hold a file
open past ``header_timeout_s``. A failed handshake (plain HTTP sent to the TLS
port, an untrusted client) is closed and counted as ``tls_handshake``, logged
at DEBUG only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import os
import resource
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge

from common.tls import server_context
from edge.api.app import HUB, PICKER, STATE, ApiRunner, Handler, error_response
from edge.config import ApiConfig, Config, secret_path

log = logging.getLogger(__name__)

ACCEPT_BURST = 64
"""Connections asyncio accepts per loop pass (its ``backlog``): each costs an
open file until the guard has closed it, one pass later."""

FD_HEADROOM = 128 + 2 * ACCEPT_BURST
"""Open files kept for everything but PDA connections: the store (database,
WAL, shared memory per connection), devices (serial ports, MQTT), the cloud
client, backups, and two passes of connections accepted only to be closed."""

CONNECTIONS_CLOSED = Counter(
    "pickedge_api_connections_closed",
    "PDA API connections the server closed or refused, by reason",
    ["reason"],
)
CONNECTIONS_OPEN = Gauge("pickedge_api_connections_open", "Open PDA API connections")


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft open-file limit to its hard limit.

    Returns ``(before, after)``. systemd starts services with a soft limit of
    1024 so that programs using ``select()`` keep working; asyncio uses epoll,
    and the connection caps keep the fds the API takes bounded. A hard limit of
    "unlimited" is taken as 65536 (Linux refuses an unlimited soft limit).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, target
    return soft, soft


def fd_limit() -> int | None:
    """The soft open-file limit, ``None`` when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0
    idle_timeout_s: float = 15.0
    max_connections: int = 768
    max_connections_per_address: int = 64
    max_pending_websockets: int = 128
    max_pending_websockets_per_address: int = 8

    @classmethod
    def of(cls, api: ApiConfig, *, open_files: int | None) -> ConnectionLimits:
        """The configured limits, ``max_connections`` capped by the open-file limit."""
        cap = api.max_connections
        if open_files is not None:
            cap = min(cap, max(16, open_files - FD_HEADROOM))
        return cls(
            header_timeout_s=api.header_timeout_s,
            body_timeout_s=api.body_timeout_s,
            idle_timeout_s=api.idle_timeout_s,
            max_connections=cap,
            max_connections_per_address=min(api.max_connections_per_address, cap),
            max_pending_websockets=api.max_pending_websockets,
            max_pending_websockets_per_address=api.max_pending_websockets_per_address,
        )


def address_key(peername: Any) -> str:
    """The client address a per-address cap counts: the IP, an IPv6 one as its /64
    (one host gets a whole /64), an IPv4-mapped IPv6 as the IPv4 address."""
    if not isinstance(peername, tuple) or not peername:
        return "?"
    try:
        ip = ipaddress.ip_address(str(peername[0]).split("%", 1)[0])
    except ValueError:
        return str(peername[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Phase(enum.Enum):
    HEAD = "head"  # waiting for a request's line and headers
    BUSY = "busy"  # a request is being handled (a WebSocket: for its whole life)
    IDLE = "idle"  # kept alive between requests


class Connection:
    """One accepted connection as the guard sees it."""

    __slots__ = ("address", "handshaking", "phase", "request", "timer", "transport")

    def __init__(self, transport: asyncio.Transport, address: str) -> None:
        #: the plain transport while the TLS handshake runs, then the TLS one
        self.transport = transport
        self.address = address
        self.phase = Phase.HEAD
        self.handshaking = False
        self.timer: asyncio.TimerHandle | None = None
        #: the WebSocket upgrade request while it has not authenticated
        self.request: web.Request | None = None


class Pool:
    """The connections of one scope (all, or one address), each phase in the
    order it began, so the longest-waiting one is found in O(1)."""

    __slots__ = ("_phases",)

    def __init__(self) -> None:
        self._phases: dict[Phase, dict[Connection, None]] = {phase: {} for phase in Phase}

    def __len__(self) -> int:
        return sum(len(members) for members in self._phases.values())

    def enter(self, conn: Connection, phase: Phase) -> None:
        self._phases[conn.phase].pop(conn, None)
        self._phases[phase][conn] = None

    def remove(self, conn: Connection) -> None:
        self._phases[conn.phase].pop(conn, None)

    def victim(self) -> Connection | None:
        """The connection to close for a newcomer: the longest in *head*, else the
        longest *idle*; never one serving a request."""
        for phase in (Phase.HEAD, Phase.IDLE):
            for conn in self._phases[phase]:
                return conn
        return None


class ConnectionGuard:
    """Deadlines and caps for every connection of one listener (see the module doc)."""

    def __init__(self, limits: ConnectionLimits, *, tls: ssl.SSLContext | None = None) -> None:
        self.limits = limits
        #: HTTPS when set: every admitted connection is upgraded before aiohttp sees it
        self.tls = tls
        self._all = Pool()
        self._by_address: dict[str, Pool] = {}
        self._by_transport: dict[asyncio.BaseTransport, Connection] = {}
        self._pending_ws: dict[Connection, None] = {}

    def __len__(self) -> int:
        return len(self._by_transport)

    # ------------------------------------------------------------ the protocol side

    def protocol_factory(
        self, inner: Callable[[], asyncio.Protocol]
    ) -> Callable[[], GuardedProtocol]:
        """The factory to pass ``loop.create_server``: ``inner`` (aiohttp's) behind the guard."""
        return lambda: GuardedProtocol(self, inner)

    def admit(self, transport: asyncio.Transport) -> Connection | None:
        """A connection just accepted: make room or close it; ``None`` when closed."""
        conn = Connection(transport, address_key(transport.get_extra_info("peername")))
        pool = self._by_address.get(conn.address)
        if pool is not None and len(pool) >= self.limits.max_connections_per_address:
            victim = pool.victim()
            if victim is None:
                self._refuse(transport, "address_cap")
                return None
            self.close(victim, "evicted")
        if len(self._all) >= self.limits.max_connections:
            victim = self._all.victim()
            if victim is None:
                self._refuse(transport, "connection_cap")
                return None
            self.close(victim, "evicted")
        # (an eviction may have emptied and dropped this address's pool)
        self._by_address.setdefault(conn.address, Pool())
        self._by_transport[transport] = conn
        self._enter(conn, Phase.HEAD, self.limits.header_timeout_s, "header_timeout")
        CONNECTIONS_OPEN.set(len(self._by_transport))
        return conn

    def data_received(self, conn: Connection) -> None:
        # Only the first byte of a request starts its header clock: later bytes
        # (a slow sender's drip, a body, pipelined requests) never extend it.
        if conn.phase is Phase.IDLE:
            self._enter(conn, Phase.HEAD, self.limits.header_timeout_s, "header_timeout")

    def lost(self, conn: Connection) -> None:
        self._forget(conn)

    def upgraded(self, conn: Connection, transport: asyncio.Transport) -> bool:
        """The TLS handshake of ``conn`` succeeded: it goes on as ``transport``.
        False when the guard closed it meanwhile."""
        if self._by_transport.pop(conn.transport, None) is None:
            return False
        conn.transport = transport
        conn.handshaking = False
        self._by_transport[transport] = conn
        return True

    def handshake_failed(self, conn: Connection, exc: BaseException) -> None:
        """Not TLS, an untrusted or broken client, or a reset: closed, counted,
        never an error in the log (the floor network's noise is not the box's fault)."""
        if conn.transport not in self._by_transport:
            return  # the guard closed it (a deadline or a cap), counted there
        self._forget(conn)
        CONNECTIONS_CLOSED.labels(reason="tls_handshake").inc()
        log.debug(
            "TLS handshake failed",
            extra={"remote": conn.address, "error": f"{type(exc).__name__}: {exc}"[:200]},
        )
        conn.transport.abort()

    # ------------------------------------------------------------ the request side

    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Outermost middleware: the parsed request marks its connection busy."""
        transport = request.transport
        conn = self._by_transport.get(transport) if transport is not None else None
        if conn is None:  # served without the guard (a test server), or already closed
            return await handler(request)
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if websocket and not self._websocket_allowed(conn):
            CONNECTIONS_CLOSED.labels(reason="websocket_cap").inc()
            return error_response(
                503,
                "too_many_connections",
                "too many WebSockets waiting to authenticate; retry shortly",
                **{"Retry-After": "2", "Connection": "close"},
            )
        self._enter(conn, Phase.BUSY, None, "")
        loop = asyncio.get_running_loop()
        body_deadline: float | None = None
        if websocket:
            conn.request = request
            self._pending_ws[conn] = None
        elif request.body_exists:
            body_deadline = loop.time() + self.limits.body_timeout_s
            conn.timer = loop.call_at(body_deadline, self._body_deadline, conn, request)
        try:
            return await handler(request)
        finally:
            self._pending_ws.pop(conn, None)
            conn.request = None
            if conn.transport in self._by_transport:
                self._enter(conn, Phase.IDLE, self.limits.idle_timeout_s, "idle_timeout")
                if body_deadline is not None and not request.content.is_eof():
                    # Answered without reading it all (401, 413 …): aiohttp reads
                    # the rest before the next request; the body deadline still holds.
                    self._rearm(
                        conn, loop.call_at(body_deadline, self._body_deadline, conn, request)
                    )

    def _websocket_allowed(self, conn: Connection) -> bool:
        # Authenticated sockets (the app set the picker) no longer count.
        for other in list(self._pending_ws):
            if other.request is None or other.request.get(PICKER) is not None:
                self._pending_ws.pop(other, None)
        if len(self._pending_ws) >= self.limits.max_pending_websockets:
            return False
        same = sum(1 for other in self._pending_ws if other.address == conn.address)
        return same < self.limits.max_pending_websockets_per_address

    def _body_deadline(self, conn: Connection, request: web.Request) -> None:
        conn.timer = None
        if not request.content.is_eof():
            self.close(conn, "body_timeout")
        elif conn.phase is Phase.IDLE:  # the rest came after the answer: idle from now
            self._enter(conn, Phase.IDLE, self.limits.idle_timeout_s, "idle_timeout")

    def _rearm(self, conn: Connection, timer: asyncio.TimerHandle) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer = timer

    # ------------------------------------------------------------ bookkeeping

    def _enter(self, conn: Connection, phase: Phase, timeout: float | None, reason: str) -> None:
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self._all.enter(conn, phase)
        self._by_address[conn.address].enter(conn, phase)
        conn.phase = phase
        if timeout is not None:
            conn.timer = asyncio.get_running_loop().call_later(timeout, self.close, conn, reason)

    def close(self, conn: Connection, reason: str) -> None:
        """Close ``conn`` now; an idle one politely (FIN), any other with a reset."""
        if conn.transport not in self._by_transport:
            return
        polite = conn.phase is Phase.IDLE and conn.transport.get_write_buffer_size() == 0
        self._forget(conn)
        CONNECTIONS_CLOSED.labels(reason=reason).inc()
        log.debug("closing PDA connection", extra={"reason": reason, "remote": conn.address})
        if polite:
            conn.transport.close()
        else:
            conn.transport.abort()

    def close_all(self) -> None:
        for conn in list(self._by_transport.values()):
            self._forget(conn)
            if conn.handshaking:  # aiohttp does not know it: end its handshake here
                conn.transport.abort()

    def _refuse(self, transport: asyncio.Transport, reason: str) -> None:
        CONNECTIONS_CLOSED.labels(reason=reason).inc()
        transport.abort()

    def _forget(self, conn: Connection) -> None:
        if self._by_transport.pop(conn.transport, None) is None:
            return
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self._pending_ws.pop(conn, None)
        self._all.remove(conn)
        pool = self._by_address[conn.address]
        pool.remove(conn)
        if not len(pool):
            del self._by_address[conn.address]
        CONNECTIONS_OPEN.set(len(self._by_transport))


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, created only once the guard admits
    it (and, with TLS, once its handshake succeeded)."""

    def __init__(self, guard: ConnectionGuard, inner: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make_inner = inner
        self._inner: asyncio.Protocol | None = None
        self._conn: Connection | None = None
        # TLS: the handshake, and what arrives between its end and aiohttp's start
        self._handshake: asyncio.Task[None] | None = None
        self._early: list[bytes] | None = None
        self._early_eof = False
        self._lost: tuple[Exception | None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._conn = self._guard.admit(transport)
        if self._conn is None:
            return
        if self._guard.tls is None:
            self._begin(transport)
            return
        # The ClientHello waits in the socket until start_tls reads it.
        transport.pause_reading()
        self._conn.handshaking = True
        self._early = []
        self._handshake = asyncio.get_running_loop().create_task(
            self._start_tls(self._conn, transport, self._guard.tls)
        )

    async def _start_tls(
        self, conn: Connection, raw: asyncio.Transport, context: ssl.SSLContext
    ) -> None:
        try:
            tls = await asyncio.get_running_loop().start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._guard.limits.header_timeout_s,
            )
        except (OSError, ValueError, RuntimeError, TimeoutError) as exc:
            self._guard.handshake_failed(conn, exc)
            return
        finally:
            self._handshake = None
        if tls is None or not self._guard.upgraded(conn, tls):
            if tls is not None:
                tls.abort()
            return
        self._begin(tls)

    def _begin(self, transport: asyncio.Transport) -> None:
        self._inner = inner = self._make_inner()
        inner.connection_made(transport)
        early, self._early = self._early, None
        for data in early or ():
            inner.data_received(data)
        if self._early_eof:
            inner.eof_received()
        if self._lost is not None:
            self._inner = None
            inner.connection_lost(self._lost[0])

    def data_received(self, data: bytes) -> None:
        if self._conn is None:
            return
        if self._inner is not None:
            self._guard.data_received(self._conn)
            self._inner.data_received(data)
        elif self._early is not None:  # decrypted before _begin ran
            self._early.append(data)

    def eof_received(self) -> bool | None:
        if self._inner is None and self._early is not None:
            self._early_eof = True
            return None
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._guard.lost(self._conn)
        if self._inner is not None:
            self._inner.connection_lost(exc)
            self._inner = None
        elif self._early is not None:  # during or just after a TLS handshake
            self._lost = (exc,)


class ApiServer:
    name = "api"

    def __init__(self, app: web.Application, cfg: Config, *, drain_timeout_s: float = 5.0) -> None:
        self.app = app
        self.host = cfg.api.host
        self.port = cfg.api.port
        self.api_config = cfg.api
        tls = cfg.api.tls_cert_file, cfg.api.tls_key_file
        #: (certificate, key) paths when the API serves HTTPS
        self.tls_files: tuple[str, str] | None = (
            (
                str(secret_path(tls[0], cfg.path, os.environ)),
                str(secret_path(tls[1], cfg.path, os.environ)),
            )
            if all(tls)
            else None
        )
        self.drain_timeout_s = drain_timeout_s
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.guard: ConnectionGuard | None = None
        self.started = asyncio.Event()
        #: the port actually bound (useful with port 0)
        self.bound_port: int | None = None
        # Outermost, so that it sees every routed request, refused ones included.
        app.middlewares.insert(0, self._middleware)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        guard = self.guard
        if guard is None:
            return await handler(request)
        return await guard.middleware(request, handler)

    async def run(self) -> None:
        self.app[STATE].draining = False
        limits = ConnectionLimits.of(self.api_config, open_files=fd_limit())
        # read at each start: a renewed certificate takes effect on restart
        context = server_context(*self.tls_files) if self.tls_files is not None else None
        guard = self.guard = ConnectionGuard(limits, tls=context)
        # ApiRunner: malformed HTTP gets the contract's JSON error (edge/api/app.py)
        runner = ApiRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=2.0,
            # aiohttp's own idle timer backs the guard up
            keepalive_timeout=limits.idle_timeout_s,
        )
        await runner.setup()
        self._runner = runner
        try:
            assert runner.server is not None
            self._listener = await asyncio.get_running_loop().create_server(
                guard.protocol_factory(runner.server),
                self.host,
                self.port,
                reuse_address=True,
                backlog=ACCEPT_BURST,
            )
            sockets = list(self._listener.sockets)
            self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
            log.info(
                "PDA API listening",
                extra={
                    "host": self.host,
                    "port": self.bound_port,
                    "max_connections": limits.max_connections,
                    "open_files": fd_limit(),
                    "tls": context is not None,
                },
            )
            self.started.set()
            await asyncio.Event().wait()
        finally:
            self.started.clear()
            if self._listener is not None:
                self._listener.close()
            await runner.cleanup()
            guard.close_all()
            self._runner = None
            self._listener = None

    async def drain(self) -> None:
        state = self.app[STATE]
        state.draining = True
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._listener.close()
        try:
            await asyncio.wait_for(state.event().wait(), self.drain_timeout_s)
        except TimeoutError:
            log.warning("%d PDA requests still in flight after drain", state.inflight)
        await self.app[HUB].close_all()
