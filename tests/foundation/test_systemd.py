"""systemd notifications (edge/systemd.py) over a real unix datagram socket,
from the notifier alone and from the real ``pickedge run`` as systemd runs it
(``NOTIFY_SOCKET``, ``WATCHDOG_USEC``): READY=1 once the API serves,
WATCHDOG=1 at half the period, no ping while the store's writer is stuck,
STOPPING=1 on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from edge.store import Store
from edge.store.db import Transaction
from edge.systemd import Notifier, ServiceNotifier
from tests.support.processes import ProcessReaper

ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """The systemd side: a bound unix datagram socket and what arrived on it."""

    def __init__(self, address: str) -> None:
        self.env_value = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        bind = b"\0" + address[1:].encode() if address.startswith("@") else address
        self.sock.bind(bind)
        self.sock.setblocking(False)
        self.messages: list[list[str]] = []

    async def next(self, within: float = 10.0) -> list[str]:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), within)
        lines = data.decode().split("\n")
        self.messages.append(lines)
        return lines

    async def until(self, line: str, within: float = 10.0) -> list[str]:
        async with asyncio.timeout(within):
            while True:
                got = await self.next(within)
                if line in got:
                    return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    got = Listener(str(tmp_path / "notify.sock"))
    yield got
    got.close()


async def test_the_notifier_speaks_the_protocol_to_a_path_socket(listener: Listener) -> None:
    notifier = Notifier(listener.env_value)
    assert notifier.ready("serving PDAs on 127.0.0.1:8470")
    assert await listener.next() == ["READY=1", "STATUS=serving PDAs on 127.0.0.1:8470"]
    assert notifier.watchdog()
    assert await listener.next() == ["WATCHDOG=1"]
    assert notifier.status("two\nlines")  # a newline would start a bogus field
    assert await listener.next() == ["STATUS=two lines"]
    assert notifier.stopping()
    assert await listener.next() == ["STOPPING=1", "STATUS=stopping"]


async def test_the_notifier_reaches_an_abstract_socket() -> None:
    listener = Listener(f"@pickedge-test-{uuid.uuid4().hex}")
    try:
        assert Notifier(listener.env_value).ready("up")
        assert await listener.next() == ["READY=1", "STATUS=up"]
    finally:
        listener.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not Notifier.from_environment({}).enabled
    assert Notifier.from_environment({}).send("READY=1") is False
    gone = Notifier(str(tmp_path / "no-such.sock"))
    assert gone.enabled and gone.watchdog() is False and gone.watchdog() is False
    assert len([r for r in caplog.records if "cannot notify systemd" in r.message]) == 1


def test_the_watchdog_period_comes_from_the_environment() -> None:
    me = str(os.getpid())
    on = Notifier.from_environment({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"})
    assert on.watchdog_interval_s == 15.0
    mine = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}
    assert Notifier.from_environment(mine).watchdog_interval_s == 15.0
    other = {**mine, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_environment(other).watchdog_interval_s is None
    assert Notifier.from_environment({"NOTIFY_SOCKET": "/x"}).watchdog_interval_s is None


class _Api:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.host = "127.0.0.1"
        self.bound_port: int | None = 8470


async def test_no_ping_while_the_writer_is_stuck(tmp_path: Path, listener: Listener) -> None:
    store = Store.open(tmp_path / "box.db", box_id="sd-box")
    notifier = Notifier(listener.env_value, watchdog_usec=200_000)  # ping every 0.1 s
    api = _Api()
    component = ServiceNotifier(notifier, store=store, api=api, writer_timeout_s=0.2)
    task = asyncio.create_task(component.run())
    try:
        await asyncio.sleep(0.2)
        assert listener.messages == []  # not ready before the API serves
        api.started.set()
        assert (await listener.next())[0] == "READY=1"
        assert await listener.next() == ["WATCHDOG=1"]
        release = threading.Event()

        def stuck(tx: Transaction) -> None:
            release.wait(10)

        held = asyncio.ensure_future(store.write(stuck))
        await listener.until("STATUS=the store's writer took no transaction within 0.2 s")
        seen_before = len(listener.messages)
        await asyncio.sleep(0.6)
        while True:  # drain what arrived meanwhile: status lines, no ping
            with contextlib.suppress(TimeoutError):
                await listener.next(within=0.05)
                continue
            break
        assert all("WATCHDOG=1" not in m for m in listener.messages[seen_before - 1 :])
        assert component.missed >= 3
        release.set()
        await held
        await listener.until("WATCHDOG=1")
        assert component.missed == 0
        await component.drain()
        assert await listener.until("STOPPING=1") == ["STOPPING=1", "STATUS=stopping"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()


async def test_the_real_daemon_notifies_systemd(
    tmp_path: Path, listener: Listener, processes: ProcessReaper
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "pickedge.toml"
    config.write_text(
        f'[box]\nid = "sd-box"\n[store]\npath = "box.db"\n'
        f'[api]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PICKEDGE", "WATCHDOG"))}
    env.update(NOTIFY_SOCKET=listener.env_value, WATCHDOG_USEC="400000")  # ping every 0.2 s
    proc = await processes.exec(
        sys.executable,
        *("-m", "edge", "run", "--config", str(config), "--log-level", "warning"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    ready = await listener.until("READY=1", within=60)
    assert ready == ["READY=1", f"STATUS=serving PDAs on 127.0.0.1:{port}"]
    async with (  # READY means the API already serves
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/readyz") as r,
    ):
        assert r.status == 200
    started = time.monotonic()
    pings = 0
    while pings < 5:
        pings += (await listener.next()) == ["WATCHDOG=1"]
    assert time.monotonic() - started < 5  # every 0.2 s, not one per WATCHDOG_USEC
    proc.send_signal(signal.SIGTERM)
    assert await listener.until("STOPPING=1") == ["STOPPING=1", "STATUS=stopping"]
    out, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, out.decode()
