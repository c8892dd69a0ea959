"""systemd's service notifications (``sd_notify(3)``), the protocol written directly.

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a unix datagram
socket: a path, or ``@name`` for the abstract namespace) and, with
``WatchdogSec=``, ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``). A notification is
one datagram of ``KEY=VALUE`` lines. :class:`Notifier` sends them and never
raises: a daemon run by hand, by a test or in a container without systemd
has no ``NOTIFY_SOCKET`` and sends nothing.

:class:`ServiceNotifier` is the daemon's component (:mod:`edge.wiring` adds
it when ``NOTIFY_SOCKET`` is set):

- ``READY=1`` once the PDA API serves (the store is open before any component
  runs), with a ``STATUS=`` line saying where;
- ``WATCHDOG=1`` every half ``WatchdogSec`` from the event loop, and only while
  the store's writer thread takes a transaction within
  :data:`WRITER_TIMEOUT_S`: a blocked loop sends nothing at all, a stuck writer
  gets a ``STATUS=`` line instead of the ping, and systemd restarts the
  service when ``WatchdogSec`` passes without one;
- ``STOPPING=1`` when the supervisor starts to stop (its ``drain``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from typing import Protocol

from edge.store import Store
from edge.store.db import Transaction

log = logging.getLogger(__name__)

#: a watchdog ping waits at most this long for the store's writer thread
WRITER_TIMEOUT_S = 5.0


class Notifier:
    """Sends notifications to ``NOTIFY_SOCKET``; a no-op without one."""

    def __init__(self, socket_path: str | None, *, watchdog_usec: int | None = None) -> None:
        self.socket_path = socket_path or None
        self.watchdog_usec = watchdog_usec
        self._failed = False

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd's environment describes. The watchdog is ours
        when ``WATCHDOG_PID`` is unset or names this process."""
        env = os.environ if env is None else env
        usec: int | None = None
        pid = env.get("WATCHDOG_PID", "")
        if not pid or pid == str(os.getpid()):
            try:
                usec = int(env.get("WATCHDOG_USEC", "")) or None
            except ValueError:
                usec = None
        return cls(env.get("NOTIFY_SOCKET"), watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half the watchdog period, as sd_watchdog_enabled(3) advises."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2e6

    def address(self) -> str | bytes:
        assert self.socket_path is not None
        if self.socket_path.startswith("@"):  # abstract namespace: a leading NUL
            return b"\0" + self.socket_path[1:].encode()
        return self.socket_path

    def send(self, *lines: str) -> bool:
        """Send one notification of ``lines``; whether it was sent. A failure
        is logged once (and again after the next success), never raised."""
        if self.socket_path is None:
            return False
        message = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address())
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify systemd at %s: %s", self.socket_path, exc)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")


class Serving(Protocol):
    """What :class:`ServiceNotifier` waits for: the API server (its ``started``)."""

    started: asyncio.Event
    host: str
    bound_port: int | None


def _probe(tx: Transaction) -> None:
    tx.execute("SELECT 1")


class ServiceNotifier:
    """The daemon's component that tells systemd it is ready, alive, stopping."""

    name = "systemd"

    def __init__(
        self,
        notifier: Notifier,
        *,
        store: Store,
        api: Serving,
        writer_timeout_s: float = WRITER_TIMEOUT_S,
    ) -> None:
        self.notifier = notifier
        self.store = store
        self.api = api
        self.writer_timeout_s = writer_timeout_s
        self.ready_sent = False
        self.pings = 0
        self.missed = 0

    async def run(self) -> None:
        await self.api.started.wait()
        if not self.ready_sent:
            where = f"{self.api.host}:{self.api.bound_port}"
            self.ready_sent = self.notifier.ready(f"serving PDAs on {where}")
        interval = self.notifier.watchdog_interval_s
        if interval is None:
            await asyncio.Event().wait()  # no watchdog: nothing more to say until stopping
            return
        while True:
            problem = await self.healthy()
            if problem is None:
                self.pings += self.notifier.watchdog()
                if self.missed:
                    log.info("the store's writer answers again; watchdog pings resumed")
                    self.notifier.status("serving")
                    self.missed = 0
            else:
                if not self.missed:
                    log.error("%s: no watchdog ping (systemd restarts the daemon)", problem)
                self.missed += 1
                self.notifier.status(problem)
            await asyncio.sleep(interval)

    async def healthy(self) -> str | None:
        """None when the writer thread takes a transaction in time, else why not.
        (That this runs at all says the event loop is alive.)"""
        try:
            await asyncio.wait_for(self.store.write(_probe), self.writer_timeout_s)
        except TimeoutError:
            return f"the store's writer took no transaction within {self.writer_timeout_s:g} s"
        except Exception as exc:
            return f"the store's writer failed: {type(exc).__name__}"
        return None

    async def drain(self) -> None:
        self.notifier.stopping()
