"""The link to one label printer: send jobs, ask ``~HS``, over raw TCP or serial.

Promises: :class:`PrinterLink` reaches a printer at ``tcp://host:port`` (the
raw port, 9100 when none is given) or at any pyserial URL (``/dev/ttyUSB0``,
``socket://host:port``, ``rfc2217://…``). It opens a connection per operation
and closes it afterwards, so the printer stays free for other hosts and no
stale connection outlives a power cycle; operations on one link never overlap
(a status poll waits for a job being sent). Every step has a deadline.
Failures come out of the device error tree: an unreachable printer or a
dropped connection is :class:`~devices.errors.PrinterUnavailableError`, one
that connects but does not answer or take data in time is
:class:`~devices.errors.PrinterTimeoutError` (both are
``DeviceDisconnectedError``), a printer that reports a fault is
:class:`~devices.errors.PrinterFaultError`.

What "printed" means here, and no more: raw port 9100 has no acknowledgement.
:meth:`PrinterLink.print_job` asks ``~HS`` first (a fault → nothing is sent),
sends the job and ``~HS`` on the same connection, and returns the status the
printer gave once it had the job's bytes. No fault there means the printer
accepted the job and was able to print when it answered; paper that runs out
or a head opened later shows only in a later status. Never builds a label.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol
from urllib.parse import urlsplit

from devices.errors import (
    DeviceConfigError,
    FrameError,
    PrinterFaultError,
    PrinterTimeoutError,
    PrinterUnavailableError,
)
from devices.printer.status import HS_REQUEST, MAX_ANSWER, PrinterStatus, answer_length, parse_hs
from devices.transport.serial import SerialTransport

log = logging.getLogger(__name__)

DEFAULT_PORT = 9100


class _Pipe(Protocol):
    """One open connection; ``read`` gives at least one byte, ``b""`` at end of
    stream. Deadlines are the caller's (``asyncio.timeout`` around each call)."""

    async def write(self, data: bytes) -> None: ...

    async def read(self) -> bytes: ...

    async def close(self) -> None: ...


class _TcpPipe:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _TcpPipe:
        return cls(*await asyncio.open_connection(host, port))

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read(self) -> bytes:
        return await self.reader.read(4096)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()


class _SerialPipe:
    def __init__(self, transport: SerialTransport) -> None:
        self.transport = transport

    @classmethod
    async def open(cls, url: str, baudrate: int) -> _SerialPipe:
        transport = SerialTransport(url, baudrate=baudrate)
        await transport.open()
        return cls(transport)

    async def write(self, data: bytes) -> None:
        await self.transport.write(data)

    async def read(self) -> bytes:
        return await self.transport.read(None)

    async def close(self) -> None:
        await self.transport.close()


class PrinterLink:
    """Jobs and status for one printer URL (see the module docstring)."""

    def __init__(self, url: str, *, timeout: float = 5.0, baudrate: int = 9600) -> None:
        if timeout <= 0:
            raise DeviceConfigError(f"printer timeout must be > 0, got {timeout!r}")
        self.url = url
        self.timeout = timeout
        self.baudrate = baudrate
        self._tcp = _tcp_address(url)
        self._lock = asyncio.Lock()

    async def status(self) -> PrinterStatus:
        """Ask ``~HS`` and read the three strings, within ``timeout``."""
        async with self._lock, self._open() as pipe:
            return await self._ask(pipe)

    async def send(self, job: bytes) -> None:
        """Hand ``job`` to the printer; returns once it took every byte."""
        async with self._lock, self._open() as pipe:
            await self._write(pipe, job)
        log.debug("printer %s: sent %d bytes", self.url, len(job))

    async def print_job(self, job: bytes) -> PrinterStatus:
        """Check, send, check again — on one connection.

        Raises ``PrinterFaultError`` with ``sent=False`` when the printer
        reports a fault before (nothing sent) and ``sent=True`` when it
        reports one right after taking the job (it holds the job: a Zebra
        prints held formats once the fault is cleared, so a blind re-send
        would print twice). Returns the status after the job.
        """
        async with self._lock, self._open() as pipe:
            before = await self._ask(pipe)
            if before.problem is not None:
                raise PrinterFaultError(before.problem, sent=False)
            await self._write(pipe, job + HS_REQUEST)
            after = await self._read_answer(pipe)
        log.debug("printer %s: printed %d bytes, %s", self.url, len(job), after.problem or "ready")
        if after.problem is not None:
            raise PrinterFaultError(after.problem, sent=True)
        return after

    # -- one connection --------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[_Pipe]:
        pipe: _Pipe
        try:
            async with asyncio.timeout(self.timeout):
                if self._tcp is not None:
                    pipe = await _TcpPipe.open(*self._tcp)
                else:
                    pipe = await _SerialPipe.open(self.url, self.baudrate)
        except TimeoutError:
            raise PrinterTimeoutError(f"{self.url}: no connection in {self.timeout:g} s") from None
        except OSError as exc:  # refused, unreachable; DeviceDisconnectedError from serial
            raise PrinterUnavailableError(f"{self.url}: {exc}") from exc
        try:
            yield pipe
        except TimeoutError as exc:
            if isinstance(exc, PrinterTimeoutError):
                raise
            raise PrinterTimeoutError(f"{self.url}: no progress in {self.timeout:g} s") from exc
        except PrinterUnavailableError:
            raise
        except OSError as exc:  # reset, broken pipe; DeviceDisconnectedError from serial
            raise PrinterUnavailableError(f"{self.url}: {exc}") from exc
        finally:
            await pipe.close()

    async def _write(self, pipe: _Pipe, data: bytes) -> None:
        async with asyncio.timeout(self.timeout):  # a full buffer stops taking data
            await pipe.write(data)

    async def _ask(self, pipe: _Pipe) -> PrinterStatus:
        await self._write(pipe, HS_REQUEST)
        return await self._read_answer(pipe)

    async def _read_answer(self, pipe: _Pipe) -> PrinterStatus:
        buf = b""
        try:
            async with asyncio.timeout(self.timeout):
                while (end := answer_length(buf)) is None:
                    if len(buf) > MAX_ANSWER:
                        raise FrameError(f"{self.url}: {len(buf)} bytes and no ~HS answer")
                    data = await pipe.read()
                    if not data:
                        raise PrinterUnavailableError(f"{self.url}: closed before answering ~HS")
                    buf += data
        except TimeoutError:
            raise PrinterTimeoutError(f"{self.url}: no ~HS answer in {self.timeout:g} s") from None
        return parse_hs(buf[:end])


def _tcp_address(url: str) -> tuple[str, int] | None:
    """``(host, port)`` for a ``tcp://`` URL, ``None`` for anything else (serial)."""
    if not url.startswith("tcp://"):
        if not url:
            raise DeviceConfigError("a printer needs a url")
        return None
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise DeviceConfigError(f"printer URL {url!r}: bad port") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise DeviceConfigError(f"printer URL {url!r}: expected tcp://host[:port]")
    return parts.hostname, port
