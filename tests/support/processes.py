"""Subprocesses a test starts, stopped and reaped when the test ends, pass or fail.

The ``processes`` fixture (registered in ``tests/conftest.py``) hands a test a
:class:`ProcessReaper`. Start every child through it — ``processes.popen(...)``
in place of :class:`subprocess.Popen`, ``await processes.exec(...)`` in place of
:func:`asyncio.create_subprocess_exec` — and whatever is still running at the
end of the test (a failed assertion, a timeout) gets SIGTERM, then SIGKILL
after a grace period, and is waited for. A test that stops its children itself
(and checks how they exit) still does so; the reaper then has nothing to do.

:func:`ignoring_sigint` is a ``preexec_fn`` that starts a child with SIGINT
ignored, as from a shell job or a service manager that ignores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

__all__ = ["GRACE_S", "ProcessReaper", "ignoring_sigint"]

GRACE_S = 5.0
"""How long a leftover child has between SIGTERM and SIGKILL."""


def ignoring_sigint() -> None:
    """``preexec_fn``: the child starts with SIGINT ignored (and inherits it across exec)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessReaper:
    """Starts subprocesses and, at :meth:`reap`, terminates, kills and waits for every one."""

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        self._popens: list[subprocess.Popen[Any]] = []
        self._procs: list[asyncio.subprocess.Process] = []

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """:class:`subprocess.Popen`, reaped at the end of the test."""
        proc: subprocess.Popen[Any] = subprocess.Popen(args, **kwargs)
        self._popens.append(proc)
        return proc

    async def exec(self, program: str, *args: str, **kwargs: Any) -> asyncio.subprocess.Process:
        """:func:`asyncio.create_subprocess_exec`, reaped at the end of the test."""
        proc = await asyncio.create_subprocess_exec(program, *args, **kwargs)
        self._procs.append(proc)
        return proc

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._popens] + [p.pid for p in self._procs]

    async def reap(self) -> None:
        """Stop every child still running (SIGTERM, grace, SIGKILL) and wait for all."""
        popens, self._popens = self._popens, []
        procs, self._procs = self._procs, []
        await asyncio.gather(
            *(asyncio.to_thread(self._reap_popen, p) for p in popens),
            *(self._reap_proc(p) for p in procs),
        )

    def _reap_popen(self, proc: subprocess.Popen[Any]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(self.grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    async def _reap_proc(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                async with asyncio.timeout(self.grace_s):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
