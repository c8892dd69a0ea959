"""``ApiServer``: the PDA API as a daemon component (``edge.daemon.Component``).

``run()`` serves the application on ``cfg.api.host``/``port`` until cancelled.
``drain()`` stops listening, answers new requests on kept-alive connections
with 503 ``draining``, waits for the requests in flight (every confirmed scan
finishes and is answered) and closes the PDA sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from edge.api.app import HUB, STATE
from edge.config import Config

log = logging.getLogger(__name__)


class ApiServer:
    name = "api"

    def __init__(self, app: web.Application, cfg: Config, *, drain_timeout_s: float = 5.0) -> None:
        self.app = app
        self.host = cfg.api.host
        self.port = cfg.api.port
        self.drain_timeout_s = drain_timeout_s
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.started = asyncio.Event()
        #: the port actually bound (useful with port 0)
        self.bound_port: int | None = None

    async def run(self) -> None:
        self.app[STATE].draining = False
        runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=2.0
        )
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
            self._site = site
            server = site._server  # the asyncio server, for the bound port
            sockets = getattr(server, "sockets", None) or []
            self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
            log.info("PDA API listening", extra={"host": self.host, "port": self.bound_port})
            self.started.set()
            await asyncio.Event().wait()
        finally:
            self.started.clear()
            await runner.cleanup()
            self._runner = None
            self._site = None

    async def drain(self) -> None:
        state = self.app[STATE]
        state.draining = True
        if self._site is not None:
            with contextlib.suppress(Exception):
                await self._site.stop()
        try:
            await asyncio.wait_for(state.event().wait(), self.drain_timeout_s)
        except TimeoutError:
            log.warning("%d PDA requests still in flight after drain", state.inflight)
        await self.app[HUB].close_all()
