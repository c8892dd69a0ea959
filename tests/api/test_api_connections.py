"""Connection limits (issue 14): slow and idle sockets are closed, connections
are capped in total and per address (a newcomer pushes out the slowest), and
log volume is bounded.

The soak test starts the real daemon with an open-file limit of 1,024 and
keeps 2,000 slow-header connections going against it from 20 addresses while
a PDA logs in and scans; each answer must come within 1 s and the daemon's
log must stay small.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import resource
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from edge.api import ApiServer, auth, create_app
from edge.api.server import Connection, ConnectionLimits, Phase, Pool, address_key
from edge.config import Config, load_config
from edge.logs import RepeatBudget, TextFormatter, ThrottlingHandler
from edge.picking import PickingService
from edge.store.db import Store
from tests.support.api_fixtures import GTIN_A, Pda, add_task, seed_zone, write_config
from tests.support.processes import ProcessReaper

ROOT = Path(__file__).resolve().parents[2]

PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: box\r\n"
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: box\r\n\r\n"


# --------------------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def serving(store: Store, cfg: Config, **api: Any) -> AsyncIterator[ApiServer]:
    """The real ApiServer (guard included) with ``[api]`` values replaced."""
    cfg = dataclasses.replace(cfg, api=dataclasses.replace(cfg.api, port=0, **api))
    server = ApiServer(
        create_app(store, cfg, picking=PickingService(store, cfg.layout_dict())), cfg
    )
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.started.wait(), 10)
        yield server
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def connect(
    server: ApiServer, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.bound_port, local_addr=(source, 0))


async def closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server closes the connection (reads and drops answers)."""
    started = time.monotonic()
    async with asyncio.timeout(limit):
        while True:
            try:
                if not await reader.read(65536):
                    break
            except ConnectionError:
                break
    return time.monotonic() - started


async def answer(reader: asyncio.StreamReader) -> bytes:
    """One whole answer to a GET /healthz (a small JSON body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    return head + await asyncio.wait_for(reader.readexactly(length), 5)


# --------------------------------------------------------------------------- timeouts


async def test_half_a_header_is_closed_after_header_timeout(
    zone_store: tuple[Store, Config],
) -> None:
    async with serving(*zone_store, header_timeout_s=0.5, idle_timeout_s=30) as server:
        # a byte every 0.1 s does not extend the deadline
        reader, writer = await connect(server)
        writer.write(PARTIAL)
        drip = asyncio.create_task(_drip(writer, 0.1))
        took = await closed_after(reader, 5)
        drip.cancel()
        assert 0.4 <= took <= 1.5, took
        # nor does a connection that sends nothing last longer
        reader, writer = await connect(server)
        assert 0.4 <= await closed_after(reader, 5) <= 1.5
        writer.close()
        assert server.guard is not None and len(server.guard) == 0


async def _drip(writer: asyncio.StreamWriter, every_s: float) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            await asyncio.sleep(every_s)
            writer.write(b"X")
            await writer.drain()


async def test_idle_keep_alive_is_closed_and_a_busy_one_is_not(
    zone_store: tuple[Store, Config],
) -> None:
    async with serving(*zone_store, idle_timeout_s=0.6, header_timeout_s=0.5) as server:
        reader, writer = await connect(server)
        for _ in range(3):  # requests inside the idle timeout keep it open
            writer.write(REQUEST)
            assert b'{"status": "ok"}' in await answer(reader)
            await asyncio.sleep(0.3)
        started = time.monotonic()
        took = await closed_after(reader, 5)
        assert took >= 0.1 and time.monotonic() - started <= 1.5, took
        writer.close()


async def test_a_slow_body_is_closed_after_body_timeout(zone_store: tuple[Store, Config]) -> None:
    _, key = auth.enroll_pda(zone_store[0], "h1")
    async with serving(*zone_store, body_timeout_s=0.5, header_timeout_s=5) as server:
        reader, writer = await connect(server)
        writer.write(
            b"POST /api/v1/sessions HTTP/1.1\r\nHost: box\r\nContent-Length: 100\r\n"
            + f"X-Device-Key: {key}\r\n\r\n".encode()
            + b'{"badge"'
        )
        took = await closed_after(reader, 5)
        assert 0.4 <= took <= 1.5, took
        writer.close()


# --------------------------------------------------------------------------- caps


async def test_a_newcomer_pushes_out_the_slowest_then_is_refused_when_all_are_busy(
    zone_store: tuple[Store, Config],
) -> None:
    _, key = auth.enroll_pda(zone_store[0], "h1")
    async with serving(
        *zone_store, max_connections_per_address=3, header_timeout_s=30, body_timeout_s=30
    ) as server:
        assert server.guard is not None
        slow = [await connect(server) for _ in range(3)]
        for _, writer in slow:
            writer.write(PARTIAL)
        await asyncio.sleep(0.1)
        # a real request from the same address gets in: the oldest slow one goes
        reader, writer = await connect(server)
        writer.write(REQUEST)
        assert b'{"status": "ok"}' in await answer(reader)
        assert await closed_after(slow[0][0], 2) < 2
        writer.close()
        for _, w in slow:
            w.close()
        await asyncio.sleep(0.1)
        # three connections each in the middle of a request body: nothing to push out
        busy = [await connect(server) for _ in range(3)]
        for _, w in busy:
            w.write(
                b"POST /api/v1/sessions HTTP/1.1\r\nHost: box\r\nContent-Length: 50\r\n"
                + f"X-Device-Key: {key}\r\n\r\n{{".encode()
            )
        await asyncio.sleep(0.2)
        reader, writer = await connect(server)
        writer.write(REQUEST)
        assert await closed_after(reader, 2) < 0.5  # closed at once, no answer
        # another address is not affected
        other, other_writer = await connect(server, "127.0.0.2")
        other_writer.write(REQUEST)
        assert b'{"status": "ok"}' in await answer(other)
        for _, w in [*busy, (other, other_writer), (reader, writer)]:
            w.close()


async def test_total_cap_comes_from_the_open_file_limit(zone_store: tuple[Store, Config]) -> None:
    _, cfg = zone_store
    api = dataclasses.replace(cfg.api, max_connections=5000, max_connections_per_address=9000)
    assert ConnectionLimits.of(api, open_files=1024).max_connections == 768
    assert ConnectionLimits.of(api, open_files=1024).max_connections_per_address == 768
    assert ConnectionLimits.of(api, open_files=65536).max_connections == 5000
    assert ConnectionLimits.of(api, open_files=None).max_connections == 5000
    assert ConnectionLimits.of(api, open_files=100).max_connections == 16
    async with serving(*zone_store, max_connections=16) as server:
        slow = [await connect(server, f"127.0.0.{2 + n % 4}") for n in range(16)]
        for _, w in slow:
            w.write(PARTIAL)
        await asyncio.sleep(0.1)
        assert server.guard is not None and len(server.guard) == 16
        reader, writer = await connect(server)
        writer.write(REQUEST)
        assert b'{"status": "ok"}' in await answer(reader)
        assert len(server.guard) == 16
        assert await closed_after(slow[0][0], 2) < 2  # the oldest slow one, whatever its address
        for _, w in [*slow, (reader, writer)]:
            w.close()


def test_pool_gives_up_the_longest_in_head_then_the_longest_idle() -> None:
    pool = Pool()
    a, b, c = (Connection(cast(asyncio.Transport, object()), "x") for _ in range(3))

    def enter(conn: Connection, phase: Phase) -> None:
        pool.enter(conn, phase)
        conn.phase = phase

    for conn in (a, b, c):
        enter(conn, Phase.HEAD)
    assert pool.victim() is a
    enter(a, Phase.BUSY)
    assert pool.victim() is b
    enter(b, Phase.IDLE)
    enter(c, Phase.IDLE)
    assert pool.victim() is b  # no one in head: the longest idle
    enter(b, Phase.HEAD)
    assert pool.victim() is b
    enter(b, Phase.BUSY)
    enter(c, Phase.BUSY)
    assert pool.victim() is None and len(pool) == 3  # every one serving a request
    pool.remove(a)
    assert len(pool) == 2


def test_address_key() -> None:
    assert address_key(("10.1.2.3", 5000)) == "10.1.2.3"
    assert address_key(("::ffff:10.1.2.3", 5000, 0, 0)) == "10.1.2.3"
    assert address_key(("2001:db8:1:2:aaaa::1", 5000, 0, 0)) == "2001:db8:1:2::/64"
    assert address_key(("2001:db8:1:2:bbbb::9", 5000, 0, 0)) == "2001:db8:1:2::/64"
    assert address_key(("fe80::1%eth0", 5000, 0, 2)) == "fe80::/64"
    assert address_key(None) == "?"
    assert Pool().victim() is None


async def test_websockets_waiting_to_authenticate_are_capped(
    zone_store: tuple[Store, Config],
) -> None:
    store, _ = zone_store
    _, key = auth.enroll_pda(store, "h1")
    async with serving(*zone_store, max_pending_websockets_per_address=2) as server:
        base = f"http://127.0.0.1:{server.bound_port}"
        async with aiohttp.ClientSession() as http:
            pda = Pda(http, base, key)
            await pda.login("BADGE-1")
            waiting = [await http.ws_connect(f"{base}/api/v1/ws") for _ in range(2)]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{base}/api/v1/ws")
            assert refused.value.status == 503
            async with http.get(f"{base}/api/v1/ws", headers=_upgrade()) as r:
                assert r.status == 503
                assert (await r.json())["error"]["code"] == "too_many_connections"
            # a socket that authenticated no longer counts
            await waiting[0].send_json({"type": "auth", "token": pda.token})
            assert (await waiting[0].receive_json(timeout=5))["type"] == "message"
            third = await http.ws_connect(f"{base}/api/v1/ws")
            # another address has its own budget
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
            ) as other:
                await (await other.ws_connect(f"{base}/api/v1/ws")).close()
            for ws in [*waiting, third]:
                await ws.close()


def _upgrade() -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }


# --------------------------------------------------------------------------- log volume


def test_repeat_budget_table() -> None:
    budget = RepeatBudget(burst=2, window_s=60, max_keys=2)
    assert [budget.admit("a", t) for t in (0, 1, 2, 3)] == [True, True, False, False]
    assert budget.admit("b", 5) is True
    assert budget.due(30) == []
    # the window of "a" ended with 2 suppressed: reported once, then a fresh window
    assert budget.admit("a", 61) is True
    assert budget.due(62) == [("a", 2, 61)]
    assert budget.due(70) == []
    # more keys than tracked share one window
    assert budget.admit("b", 71) is True  # "a" and "b" tracked
    assert budget.admit("c", 72) is True  # shares None
    assert budget.admit("d", 72) is True
    assert budget.admit("e", 72) is False
    assert [budget.admit("a", 73), budget.admit("a", 73)] == [True, False]
    assert budget.admit("b", 73, burst=1) is False  # a tighter burst for this record
    assert sorted(map(str, budget.due(200))) == [
        "('a', 1, 139)",
        "('b', 1, 129)",
        "(None, 1, 128)",
    ]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _record(name: str, msg: str, *args: Any, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": name, "msg": msg, "args": args, "levelno": level, "levelname": "ERROR"}
    )


def test_throttling_handler_passes_a_burst_then_sums_up() -> None:
    now = [0.0]
    sink = Collect()
    handler = ThrottlingHandler(sink, burst=3, window_s=60, clock=lambda: now[0])
    accept = "socket.accept() out of system resource\nsocket: <fd=%d>"
    for n in range(10_000):
        now[0] = n * 0.003  # 10,000 events in 30 s
        handler.handle(_record("asyncio", accept, n))
        handler.handle(_record("edge.api.app", "internal error for %s", f"/path/{n}"))
        handler.handle(_record("edge.api.app", "store failure #%d", n))  # numbers blanked
    # accept errors: once a window; the app's: three of each kind
    assert [r.name for r in sink.records] == ["asyncio"] + ["edge.api.app"] * 6
    now[0] = 61.0
    handler.handle(_record("edge.daemon", "something else"))
    summaries = [r.getMessage() for r in sink.records[7:] if r.name != "edge.daemon"]
    assert sorted(summaries) == [
        "9997 more like this in 61 s were not logged: internal error for %s",
        "9997 more like this in 61 s were not logged: store failure #%d",
        "9999 more like this in 61 s were not logged: socket.accept() out of system resource",
    ]
    line = TextFormatter().format(sink.records[0])
    assert "\n" not in line and "socket.accept() out of system resource | socket: <fd=0>" in line
    handler.handle(_record("edge.daemon", "something else"))
    handler.handle(_record("edge.daemon", "something else"))
    handler.handle(_record("edge.daemon", "something else"))
    before = len(sink.records)
    handler.close()  # shutdown: the open window's summary is not lost
    assert [r.getMessage() for r in sink.records[before:]] == [
        "1 more like this in 60 s were not logged: something else"
    ]


# --------------------------------------------------------------------------- the soak


ATTACKERS = 2000
ADDRESSES = 20  # 127.0.1.1 … 127.0.1.20, 100 connections each; the PDA is 127.0.0.1
DAEMON_FD_LIMIT = 1024


def _limit_fds() -> None:  # preexec_fn of the daemon: what systemd gives without LimitNOFILE
    resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_FD_LIMIT, DAEMON_FD_LIMIT))


@dataclasses.dataclass
class Attack:
    """Connections that send a partial request and a header line every few seconds;
    each one the server closes comes back after a pause."""

    port: int
    attackers: int = ATTACKERS
    drip_s: float = 2.0
    again_s: float = 1.0
    connects: int = 0
    closed: int = 0
    open: int = 0
    #: set once ``attackers`` connections have been made
    all_connected: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def one(self, source: str) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(source, 0)
                )
            except OSError:
                await asyncio.sleep(self.again_s)
                continue
            self.connects += 1
            self.open += 1
            if self.connects >= self.attackers:
                self.all_connected.set()
            try:
                writer.write(PARTIAL)
                while True:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.drip_s):
                            if not await reader.read(1024):
                                break
                    writer.write(b"X-Slow: 1\r\n")
            except ConnectionError:
                pass  # the guard closed it, as it should: come back after a pause
            finally:
                self.open -= 1
                self.closed += 1
                writer.transport.abort()
            await asyncio.sleep(self.again_s)


async def test_pda_logs_in_and_scans_through_2000_slow_connections(
    tmp_path: Path, processes: ProcessReaper
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # As many slow connections as this process may open (2,000 where it can),
    # and always more than the daemon has files: the attack is never skipped.
    attackers = ATTACKERS
    if hard != resource.RLIM_INFINITY:
        attackers = min(ATTACKERS, hard - 500)
    assert attackers > DAEMON_FD_LIMIT + 100, (
        f"this machine's hard open-file limit ({hard}) leaves the test too few connections "
        f"to outnumber the daemon's {DAEMON_FD_LIMIT} files; raise it (ulimit -Hn)"
    )
    need = attackers + 500
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    cfg = load_config(write_config(tmp_path))
    store = Store.open(cfg.store_path(), box_id=cfg.box.id)
    seed_zone(store)
    _, key = auth.enroll_pda(store, "h1")
    for n in range(5):
        add_task(store, f"T-{n}", [("SKU-A", 1)])
    store.close()

    log_path = tmp_path / "daemon.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}
    with log_path.open("wb") as out:
        daemon = await processes.exec(
            sys.executable,
            *("-m", "edge", "run", "--config", str(tmp_path / "pickedge.toml")),
            *("--log-format", "json"),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            preexec_fn=_limit_fds,
        )
    listening = await _wait_for_log(log_path, "PDA API listening", 30)
    assert listening["open_files"] == DAEMON_FD_LIMIT
    assert listening["max_connections"] == DAEMON_FD_LIMIT - 256
    port = int(listening["port"])
    base = f"http://127.0.0.1:{port}"

    attack = Attack(port, attackers=attackers)
    peak_fds = [0]

    async def sample_fds() -> None:
        while True:
            with contextlib.suppress(OSError):
                peak_fds.append(len(os.listdir(f"/proc/{daemon.pid}/fd")))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample_fds())
    sources = [f"127.0.1.{1 + n % ADDRESSES}" for n in range(attackers)]
    tasks: list[asyncio.Task[None]] = []
    latencies: list[float] = []
    try:
        for n, source in enumerate(sources):
            tasks.append(asyncio.create_task(attack.one(source)))
            if n % 100 == 99:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(attack.all_connected.wait(), 20)
        await asyncio.sleep(6)  # header timeouts (5 s) have struck; the attack goes on
        opened_before = attack.connects
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            for n in range(5):
                pda = Pda(http, base, key)
                started = time.monotonic()
                await pda.login("BADGE-1")
                latencies.append(time.monotonic() - started)
                for code in (f"T-{n}", "A-01-05", GTIN_A):
                    started = time.monotonic()
                    result = await pda.scan(code)
                    latencies.append(time.monotonic() - started)
                assert result["result"] == "tour_done", result
                async with http.delete(
                    f"{base}/api/v1/sessions", headers={"Authorization": f"Bearer {pda.token}"}
                ) as r:
                    assert r.status == 204
                await asyncio.sleep(0.5)
        churned = attack.connects - opened_before
        fds = max(peak_fds)
        still_open = attack.open
    finally:
        sampler.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    daemon.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(daemon.wait(), 15) == 0
    size = log_path.stat().st_size
    print(
        f"\nPDA answers under {attackers} slow connections: max {max(latencies) * 1000:.0f} ms, "
        f"median {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms over {len(latencies)}; "
        f"attacker reconnects during the PDA phase {churned}, open at its end {still_open}; "
        f"daemon log {size} bytes; its open files at most {fds} of {DAEMON_FD_LIMIT}"
    )
    assert max(latencies) < 1.0, latencies
    assert size < 4096, log_path.read_text()[:4096]
    assert b'"level":"error"' not in log_path.read_bytes()


async def _wait_for_log(path: Path, msg: str, limit: float) -> dict[str, Any]:
    async with asyncio.timeout(limit):
        while True:
            for line in (await asyncio.to_thread(path.read_text)).splitlines():
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if doc.get("msg") == msg:
                        return dict(doc)
            await asyncio.sleep(0.1)
