"""How a simulator command runs: until its work ends, SIGTERM or SIGINT, then a clean exit.

:func:`run_until_stopped` runs a simulator's main coroutine and installs its own
handlers for SIGTERM and SIGINT on the event loop. Either signal cancels the
main coroutine, whose ``async with`` blocks then close their ptys, links and
broker connections, and the command exits 0.

The handlers are installed explicitly, for both signals, because a disposition
inherited from the parent must not decide whether a simulator can be stopped:
a process started from a shell job or a service manager that ignores SIGINT
inherits ``SIG_IGN``, and Python keeps it (no ``KeyboardInterrupt`` ever comes),
while SIGTERM's default would kill the process without its clean-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Coroutine
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` until it returns or SIGTERM/SIGINT arrives (both a clean stop).

    Off the main thread (a click command run by a test in a worker thread)
    no handler can be installed, and none is: the coroutine simply runs.
    """
    asyncio.run(_until_stopped(main))


async def _until_stopped(main: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(main)
    if threading.current_thread() is not threading.main_thread():
        await task
        return
    loop = asyncio.get_running_loop()
    stopping = False

    def stop() -> None:
        # A second signal cancels again: it interrupts a clean-up that hangs.
        nonlocal stopping
        stopping = True
        task.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)
    try:
        await task
    except asyncio.CancelledError:
        if not stopping:
            raise
    finally:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
