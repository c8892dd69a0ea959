"""The PDA WebSocket hub: pushes to every open socket of a picker.

Promises: :meth:`PdaHub.push` never blocks the caller (sends are scheduled on
the event loop); a socket that fails is dropped; :meth:`close_all` ends every
socket with "going away" when the server drains. Messages are the contract's
``{"type": "tour_assigned|tour_rerouted|task_cancelled|message", …}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from aiohttp import WSCloseCode, web

log = logging.getLogger(__name__)


class PdaHub:
    def __init__(self) -> None:
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cancel: Callable[[str, tuple[int, ...]], Awaitable[Any]] | None = None

    def on_task_cancelled(self, cancel: Callable[[str, tuple[int, ...]], Awaitable[Any]]) -> None:
        """What to run for a cancelled task, with the tours it was on, before its
        pickers are told (``PickingService.cancel_task``: pushes those tours as
        the cancel left them; the cancel itself took the stops out)."""
        self._cancel = cancel

    def add(self, picker: str, ws: web.WebSocketResponse) -> None:
        self._sockets.setdefault(picker, set()).add(ws)

    def remove(self, picker: str, ws: web.WebSocketResponse) -> None:
        sockets = self._sockets.get(picker)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self._sockets[picker]

    def connected(self, picker: str) -> int:
        return len(self._sockets.get(picker, ()))

    def push(self, picker: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every socket of ``picker`` (fire and forget)."""
        for ws in list(self._sockets.get(picker, ())):
            self._spawn(self._send(picker, ws, message))

    def task_cancelled(self, picker: str, task: str, message: str | None = None) -> None:
        """Tell a picker that a task of the tour was cancelled by the cloud."""
        self.push(
            picker,
            {
                "type": "task_cancelled",
                "task": task,
                "message": message or f"task {task} was cancelled: stop picking it",
            },
        )

    def deliver(self, notices: Iterable[Any]) -> None:
        """Act on master-data notices (``edge.masterdata.Notice``: ``kind``,
        ``task``, ``pickers``, ``tours``), after the commit that applied them: the
        tours a cancelled task left are pushed as ``tour_rerouted`` and its
        pickers get ``task_cancelled``; a deactivated picker is told. Never
        blocks: the work is scheduled."""
        for notice in notices:
            kind = getattr(notice, "kind", "task_cancelled")
            task = getattr(notice, "task", None)
            pickers = tuple(str(p) for p in getattr(notice, "pickers", ()) or ())
            single = getattr(notice, "picker", None)
            if single:
                pickers += (str(single),)
            tours = tuple(int(t) for t in getattr(notice, "tours", ()) or ())
            if kind == "task_cancelled" and task:
                message = getattr(notice, "message", None)
                self._spawn(self._cancelled(str(task), tours, pickers, message))
            elif kind == "picker_deactivated":
                for picker in pickers:
                    self.push(picker, {"type": "message", "text": "you were signed off"})

    async def _cancelled(
        self, task: str, tours: tuple[int, ...], pickers: tuple[str, ...], message: str | None
    ) -> None:
        if self._cancel is not None:
            try:
                await self._cancel(task, tours)
            except Exception:  # the pickers must still hear about the cancel
                log.exception("pushing the tours cancelled task %s left failed", task)
        for picker in pickers:
            self.task_cancelled(picker, task, message)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, picker: str, ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        try:
            await ws.send_json(message)
        except (ConnectionError, RuntimeError):
            log.info("dropping a closed PDA socket", extra={"picker": picker})
            self.remove(picker, ws)

    async def close_all(self) -> None:
        for picker, sockets in list(self._sockets.items()):
            for ws in list(sockets):
                with contextlib.suppress(Exception):
                    await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
                self.remove(picker, ws)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
