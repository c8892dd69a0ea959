"""HTTPS for the PDA API (issue 14): ``[api] tls_cert_file``/``tls_key_file``
with a certificate from a CA made by the test.

A client trusting that CA logs in, scans and opens the WebSocket over HTTPS; a
client that does not trust it fails its handshake; plain HTTP to the TLS port
is closed cleanly (no answer, no 500, nothing above DEBUG in the log) and the
server keeps serving. A handshake that never starts is closed at the header
deadline like a slow sender. The key file is held to the secret-file rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from edge.api import ApiServer, auth, create_app
from edge.api.server import CONNECTIONS_CLOSED
from edge.config import Config, load_config
from edge.errors import ConfigError
from edge.picking import PickingService
from edge.store.db import Store
from tests.support.api_fixtures import GTIN_A, Pda, add_task, seed_zone, write_config
from tests.support.tls import Issued, ThrowawayCa


@dataclasses.dataclass
class TlsBox:
    cfg: Config
    store: Store
    server: ApiServer
    ca: ThrowawayCa
    leaf: Issued

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.server.bound_port}"


def _tls_config(tmp_path: Path, leaf: Issued, **api: object) -> Path:
    return write_config(tmp_path, tls_cert_file=str(leaf.cert), tls_key_file=str(leaf.key), **api)


@pytest.fixture
async def tls_box(tmp_path: Path) -> AsyncIterator[TlsBox]:
    ca = ThrowawayCa(tmp_path / "ca")
    leaf = ca.issue("pda-api")
    cfg = load_config(_tls_config(tmp_path, leaf, header_timeout_s=1.0))
    store = Store.open(cfg.store_path(), box_id=cfg.box.id)
    seed_zone(store)
    app = create_app(store, cfg, picking=PickingService(store, cfg.layout_dict()))
    server = ApiServer(app, cfg)
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.started.wait(), 10)
        yield TlsBox(cfg, store, server, ca, leaf)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()


def _trusting(ca: ThrowawayCa) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca.cert))


async def test_a_client_trusting_the_ca_logs_in_and_scans_over_https(tls_box: TlsBox) -> None:
    _, key = auth.enroll_pda(tls_box.store, "h1")
    add_task(tls_box.store, "T-1", [("SKU-A", 1)])
    connector = aiohttp.TCPConnector(ssl=_trusting(tls_box.ca))
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{tls_box.base}/healthz") as r:
            assert r.status == 200
            assert "Strict-Transport-Security" not in r.headers
        pda = Pda(http, tls_box.base, key)
        await pda.login("BADGE-1")
        await pda.scan("T-1")
        await pda.scan("A-01-05")
        assert (await pda.scan(GTIN_A))["result"] == "tour_done"
        ws = await http.ws_connect(f"{tls_box.base.replace('https', 'wss')}/api/v1/ws")
        await ws.send_json({"type": "auth", "token": pda.token})
        assert (await ws.receive_json(timeout=5))["type"] == "message"
        await ws.close()


async def test_tls_1_2_at_least(tls_box: TlsBox) -> None:
    _, writer = await asyncio.open_connection(
        "127.0.0.1", tls_box.server.bound_port, ssl=_trusting(tls_box.ca)
    )
    assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    writer.close()
    assert tls_box.server.guard is not None and tls_box.server.guard.tls is not None
    assert tls_box.server.guard.tls.minimum_version is ssl.TLSVersion.TLSv1_2


async def test_a_client_not_trusting_the_ca_fails(
    tls_box: TlsBox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    other = ThrowawayCa(tls_box.ca.dir.parent / "other-ca", name="Not the box's CA")
    for ctx in (ssl.create_default_context(), _trusting(other)):
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http,
                http.get(f"{tls_box.base}/healthz"),
            ):
                pass
    _no_errors_logged(caplog)


async def test_plain_http_to_the_tls_port_is_closed_cleanly(
    tls_box: TlsBox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = CONNECTIONS_CLOSED.labels(reason="tls_handshake")._value.get()
    port = tls_box.server.bound_port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: box\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)  # closed without an HTTP answer
    assert b"HTTP/1.1" not in answer and b"500" not in answer
    writer.close()
    # aiohttp as a client: a clean connection error, not an HTTP status
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                raise AssertionError(f"plain HTTP got an answer: {r.status}")
    assert CONNECTIONS_CLOSED.labels(reason="tls_handshake")._value.get() >= before + 2
    _no_errors_logged(caplog)
    # and the server still serves HTTPS
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_trusting(tls_box.ca))) as h,
        h.get(f"{tls_box.base}/healthz") as r,
    ):
        assert r.status == 200


async def test_a_handshake_never_started_is_closed_at_the_header_deadline(
    tls_box: TlsBox,
) -> None:
    port = tls_box.server.bound_port
    assert port is not None and tls_box.server.guard is not None
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        for sock in held:
            sock.setblocking(False)
        await asyncio.sleep(0.2)
        assert len(tls_box.server.guard) >= 20  # counted while in the handshake
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        for sock in held:  # header_timeout_s = 1: each is reset or closed by then
            async with asyncio.timeout(5):
                with contextlib.suppress(ConnectionResetError):
                    assert await loop.sock_recv(sock, 1) == b""
        assert time.monotonic() - started < 4
        assert len(tls_box.server.guard) == 0
    finally:
        for sock in held:
            sock.close()


def test_the_key_file_is_a_secret_and_the_pair_must_load(tmp_path: Path) -> None:
    ca = ThrowawayCa(tmp_path / "ca")
    leaf = ca.issue("pda-api")
    other = ca.issue("other")
    load_config(_tls_config(tmp_path, leaf))  # fine as issued (0600)
    leaf.key.chmod(0o640)
    with pytest.raises(ConfigError, match=r"api\.tls_key_file.*readable by others"):
        load_config(_tls_config(tmp_path, leaf))
    leaf.key.chmod(0o600)
    with pytest.raises(ConfigError, match="go together"):
        load_config(write_config(tmp_path, tls_cert_file=str(leaf.cert)))
    mixed = Issued(cert=leaf.cert, key=other.key)
    with pytest.raises(ConfigError, match="cannot be used together"):
        load_config(_tls_config(tmp_path, mixed))
    # the key's content never appears in the problem
    try:
        load_config(_tls_config(tmp_path, mixed))
    except ConfigError as exc:
        assert "PRIVATE KEY" not in str(exc)


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not loud, [(r.name, r.getMessage()) for r in loud]
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"
