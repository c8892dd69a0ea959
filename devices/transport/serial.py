"""Serial transport by URL through pyserial, for asyncio.

Promises: :class:`SerialTransport` opens anything ``serial.serial_for_url``
accepts — ``/dev/ttyUSB0``, a pty path, ``socket://host:port``, ``loop://`` —
and gives an asyncio ``read``/``write`` pair. Ports with a file descriptor
(real ports, ptys, sockets) are read with ``loop.add_reader`` on the
non-blocking fd, so a byte reaches the caller without a thread hop; URL handlers
without one (``loop://``) are read in a worker thread with a short poll. The
receive buffer is bounded: when the caller falls behind, reading pauses (the
kernel and the device's flow control hold the rest) instead of growing memory or
dropping bytes. End of file, ``EIO`` (a pty whose master closed, an unplugged
USB adapter) and pyserial errors raise
:class:`~devices.errors.DeviceDisconnectedError` from the original error.

Never reconnects (the supervisor in ``edge`` does), never looks at the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from types import TracebackType
from typing import Any, NoReturn, Protocol, cast

from devices.errors import DeviceConfigError, DeviceDisconnectedError

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 256 * 1024
_READ_CHUNK = 65536
_THREAD_POLL = 0.05  # seconds a worker-thread read blocks before re-checking close


class _PySerial(Protocol):
    """The part of ``serial.Serial`` this module uses (pyserial ships no types)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def fileno(self) -> int: ...


def open_serial(url: str, *, baudrate: int, timeout: float | None) -> _PySerial:
    """``serial.serial_for_url`` with errors mapped to the device error tree."""
    import serial

    try:
        port: Any = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
    except ValueError as exc:
        raise DeviceConfigError(f"serial URL {url!r}: {exc}") from exc
    except (OSError, serial.SerialException) as exc:
        raise DeviceDisconnectedError(f"cannot open {url}: {exc}") from exc
    return cast(_PySerial, port)


class SerialTransport:
    """One open serial port; an async context manager.

    ``read(idle)`` returns the bytes received so far (at least one), ``b""``
    when ``idle`` seconds passed in silence — drivers use that as their idle
    tick — and raises ``DeviceDisconnectedError`` once the port is gone.
    """

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 9600,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.max_pending = max_pending
        self.bytes_in = 0
        self.bytes_out = 0
        self.pauses = 0  # times reading paused because the caller fell behind
        self._port: _PySerial | None = None
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buf = bytearray()
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self._reading = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Thread-read ports block at most _THREAD_POLL; fd ports never block.
        port = await self._loop.run_in_executor(
            None, lambda: open_serial(self.url, baudrate=self.baudrate, timeout=_THREAD_POLL)
        )
        self._port = port
        fd: int | None
        try:
            fd = port.fileno()
        except Exception:  # URL handlers without one raise AttributeError or SerialException
            fd = None
        if fd is not None and fd >= 0:
            os.set_blocking(fd, False)
            self._fd = fd
            self._start_reader()
        log.debug("opened %s (fd=%s)", self.url, fd)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_reader()
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()
        self._ready.set()

    async def __aenter__(self) -> SerialTransport:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def uses_fd(self) -> bool:
        """True when reads come from ``add_reader`` on a file descriptor."""
        return self._fd is not None

    # -- reading -------------------------------------------------------------------

    async def read(self, idle: float | None = None) -> bytes:
        if self._port is None and not self._buf:
            self._raise_closed()
        if self._fd is None:
            return await self._read_thread(idle)
        while not self._buf:
            if self._error is not None:
                self._raise_closed()
            if self._closed:
                self._raise_closed()
            self._ready.clear()
            if idle is None:
                await self._ready.wait()
            else:
                try:
                    async with asyncio.timeout(idle):
                        await self._ready.wait()
                except TimeoutError:
                    return b""
        data = bytes(self._buf)
        self._buf.clear()
        if not self._reading and self._error is None and not self._closed:
            self._start_reader()  # resume after back-pressure
        return data

    def _start_reader(self) -> None:
        if self._loop is not None and self._fd is not None and not self._reading:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _stop_reader(self) -> None:
        if self._reading and self._loop is not None and self._fd is not None:
            self._loop.remove_reader(self._fd)
        self._reading = False

    def _on_readable(self) -> None:
        assert self._fd is not None
        try:
            chunk = os.read(self._fd, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO: pty master closed or USB adapter unplugged.
            self._fail(exc)
            return
        if not chunk:
            self._fail(EOFError("end of file"))
            return
        self.bytes_in += len(chunk)
        self._buf += chunk
        if len(self._buf) >= self.max_pending:
            self.pauses += 1
            self._stop_reader()  # back-pressure until the caller drains the buffer
        self._ready.set()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._stop_reader()
        self._ready.set()

    async def _read_thread(self, idle: float | None) -> bytes:
        assert self._loop is not None
        port = self._port
        if port is None or self._error is not None:
            self._raise_closed()
        loop = self._loop
        deadline = None if idle is None else loop.time() + idle
        while True:
            try:
                chunk = await loop.run_in_executor(None, _blocking_read, port)
            except Exception as exc:
                self._fail(exc)
                self._raise_closed()
            if self._closed:
                self._raise_closed()
            if chunk:
                self.bytes_in += len(chunk)
                return chunk
            if deadline is not None and loop.time() >= deadline:
                return b""

    def _raise_closed(self) -> NoReturn:
        cause = self._error
        if cause is None:
            raise DeviceDisconnectedError(f"{self.url} is closed")
        raise DeviceDisconnectedError(f"{self.url} disconnected: {cause}") from cause

    # -- writing -------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        port = self._port
        if port is None or self._error is not None:
            self._raise_closed()
        if self._fd is None:
            assert self._loop is not None
            try:
                await self._loop.run_in_executor(None, port.write, data)
            except Exception as exc:
                self._fail(exc)
                self._raise_closed()
            self.bytes_out += len(data)
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                await self._writable()
                continue
            except OSError as exc:
                self._fail(exc)
                self._raise_closed()
            view = view[n:]
            self.bytes_out += n

    async def _writable(self) -> None:
        assert self._loop is not None and self._fd is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        fd = self._fd

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        self._loop.add_writer(fd, wake)
        try:
            async with asyncio.timeout(5.0):
                await fut
        except TimeoutError as exc:
            raise DeviceDisconnectedError(f"{self.url}: write blocked for 5 s") from exc
        finally:
            self._loop.remove_writer(fd)


def _blocking_read(port: _PySerial) -> bytes:
    """One worker-thread read: what is waiting, or wait up to the port timeout for 1 byte."""
    waiting = port.in_waiting
    return port.read(waiting if waiting > 0 else 1)
