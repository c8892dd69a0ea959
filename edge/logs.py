"""Logging set-up: one line per event, as text or JSON, with context.

Context travels in ``extra={...}`` and is printed as ``key=value`` pairs (text)
or as fields (JSON). Nothing here formats secrets: callers never pass them.

Log volume is bounded (issue 14): :class:`ThrottlingHandler` lets the first
few records of each kind through per minute, drops the rest and, once the
minute is over, logs one summary with how many it dropped. A flood (asyncio's
"socket.accept() out of system resource", once per refused connection and
more, or any error repeated per request) can then not fill the disk.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname:<7} {record.name}: "
        # asyncio's messages span lines: keep one event on one line
        line += record.getMessage().replace("\n", " | ")
        extra = _context(record)
        if extra:
            line += " " + " ".join(f"{k}={v}" for k, v in sorted(extra.items()))
        if record.exc_info:
            # Keep one event on one line: the traceback is folded with " | ".
            line += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_context(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


class RepeatBudget:
    """Per key, the first ``burst`` events of each window pass; the rest are counted.

    Pure bookkeeping (the caller passes the time). A key's window starts at its
    first event; :meth:`due` hands back, once, every window that has ended with
    events suppressed. At most ``max_keys`` keys are tracked at a time; beyond,
    events share the key ``None``, so memory stays bounded whatever varies in
    the messages.
    """

    def __init__(self, *, burst: int = 10, window_s: float = 60.0, max_keys: int = 1000) -> None:
        self.burst = burst
        self.window_s = window_s
        self.max_keys = max_keys
        self._windows: dict[Hashable, _Window] = {}
        self._ended: list[tuple[Hashable, int, float]] = []
        self._swept = float("-inf")

    def admit(self, key: Hashable, now: float, burst: int | None = None) -> bool:
        """Whether this event of ``key`` at ``now`` is to be logged."""
        window = self._windows.get(key)
        if window is not None and now - window.start >= self.window_s:
            self._end(key, window, now)
            window = None
        if window is None:
            if len(self._windows) >= self.max_keys and key is not None:
                return self.admit(None, now, burst)
            self._windows[key] = _Window(now)
            return True
        if window.passed < (self.burst if burst is None else burst):
            window.passed += 1
            return True
        window.suppressed += 1
        return False

    def due(self, now: float) -> list[tuple[Hashable, int, float]]:
        """``(key, suppressed, seconds)`` of every window that ended with events
        suppressed, each once; ended windows are forgotten. Looks at the
        windows at most once a second, so a flood costs no more per record."""
        if now - self._swept >= 1.0:
            self._swept = now
            self._sweep(now)
        ended, self._ended = self._ended, []
        return ended

    def _sweep(self, now: float) -> None:
        for key, window in list(self._windows.items()):
            if now - window.start >= self.window_s:
                self._end(key, window, now)

    def _end(self, key: Hashable, window: _Window, now: float) -> None:
        del self._windows[key]
        if window.suppressed:
            self._ended.append((key, window.suppressed, now - window.start))


class _Window:
    __slots__ = ("passed", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.start = start
        self.passed = 1
        self.suppressed = 0


_DIGITS = re.compile(r"\d+")

#: (logger, start of message) -> burst per window, tighter than the default
ACCEPT_ERROR = ("asyncio", "socket.accept() out of system resource")


def record_key(record: logging.LogRecord) -> tuple[str, int, str]:
    """What makes two records "the same": logger, level and the first line of the
    message template with its numbers blanked (fds, addresses, counts vary)."""
    first = str(record.msg).split("\n", 1)[0]
    return record.name, record.levelno, _DIGITS.sub("#", first)[:200]


def default_burst(record: logging.LogRecord) -> int | None:
    """Errors from ``accept`` pass once per window; everything else the default."""
    if record.name == ACCEPT_ERROR[0] and str(record.msg).startswith(ACCEPT_ERROR[1]):
        return 1
    return None


class ThrottlingHandler(logging.Handler):
    """Wraps ``target``: repeats of a record beyond ``burst`` per ``window_s`` are
    dropped and summed up in one record when the window ends (logged with the
    next record of any kind, or when the handler is flushed or closed)."""

    def __init__(
        self,
        target: logging.Handler,
        *,
        burst: int = 10,
        window_s: float = 60.0,
        burst_of: Callable[[logging.LogRecord], int | None] = default_burst,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.target = target
        self.budget = RepeatBudget(burst=burst, window_s=window_s)
        self._burst_of = burst_of
        self._clock = clock

    def emit(self, record: logging.LogRecord) -> None:
        now = self._clock()
        self._summaries(now)
        if self.budget.admit(record_key(record), now, self._burst_of(record)):
            self.target.handle(record)

    def _summaries(self, now: float) -> None:
        for key, suppressed, seconds in self.budget.due(now):
            name, level, first = key if isinstance(key, tuple) else ("edge.logs", 30, "(various)")
            summary = logging.makeLogRecord(
                {
                    "name": name,
                    "levelno": level,
                    "levelname": logging.getLevelName(level),
                    "msg": "%d more like this in %.0f s were not logged: %s",
                    "args": (suppressed, seconds, first),
                    "suppressed": suppressed,
                }
            )
            self.target.handle(summary)

    def flush(self) -> None:
        """Log the summaries of every window now, ended or not (at shutdown)."""
        self._summaries(self._clock() + self.budget.window_s)
        self.target.flush()

    def close(self) -> None:
        self.flush()
        self.target.close()
        super().close()


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler = ThrottlingHandler(stream)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log is one line per request: keep it at WARNING so a
    # busy floor does not drown the events that matter.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
