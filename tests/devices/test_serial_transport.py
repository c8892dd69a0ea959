"""SerialTransport on real ptys, loop:// and socket:// (pyserial, no mocks)."""

from __future__ import annotations

import asyncio
import os
import tty

import pytest

from devices.errors import DeviceConfigError, DeviceDisconnectedError
from devices.transport.serial import SerialTransport
from simulators.serial_scanner import Pty


async def test_pty_read_write_uses_the_fd() -> None:
    pty = Pty()
    try:
        async with SerialTransport(pty.path, baudrate=115200) as t:
            assert t.uses_fd
            await pty.write(b"]C1hello\r\n")
            assert await t.read(5.0) == b"]C1hello\r\n"
            assert await t.read(0.02) == b""  # silence is an empty read, not an error
            await t.write(b"\xa0\x04\x01\x89\x01\xd1")
            loop = asyncio.get_running_loop()
            got = b""
            while len(got) < 6:
                ready = asyncio.Event()
                loop.add_reader(pty.master, ready.set)
                try:
                    await asyncio.wait_for(ready.wait(), 5.0)
                finally:
                    loop.remove_reader(pty.master)
                got += os.read(pty.master, 100)
            assert got == b"\xa0\x04\x01\x89\x01\xd1"
    finally:
        pty.close()


async def test_master_closing_raises_disconnected() -> None:
    pty = Pty()
    try:
        async with SerialTransport(pty.path) as t:
            await pty.write(b"last words\n")
            assert await t.read(5.0) == b"last words\n"
            pty.reopen()  # the old pty is gone
            with pytest.raises(DeviceDisconnectedError) as info:
                await t.read(5.0)
            assert info.value.__cause__ is not None
            with pytest.raises(DeviceDisconnectedError):
                await t.write(b"x")
    finally:
        pty.close()


async def test_raw_pty_without_pyserial_client_hangup() -> None:
    # A bare pty (no Pty helper): closing the master is EOF/EIO on the slave.
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        async with SerialTransport(path) as t:
            os.close(master)
            with pytest.raises(DeviceDisconnectedError):
                await t.read(5.0)
    finally:
        os.close(slave)


async def test_loop_url_reads_in_a_thread() -> None:
    async with SerialTransport("loop://", baudrate=115200) as t:
        assert not t.uses_fd
        await t.write(b"ping\r\n")
        got = b""
        while len(got) < 6:
            got += await t.read(5.0)
        assert got == b"ping\r\n"
        assert await t.read(0.1) == b""


async def test_socket_url_and_peer_close() -> None:
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with SerialTransport(f"socket://127.0.0.1:{port}") as t:
            await asyncio.wait_for(connected.wait(), 5.0)
            writers[0].write(b"]E09521234543213\r")
            await writers[0].drain()
            got = b""
            while len(got) < 17:
                got += await t.read(5.0)
            assert got == b"]E09521234543213\r"
            writers[0].close()
            with pytest.raises(DeviceDisconnectedError):
                while True:
                    await t.read(5.0)
    finally:
        server.close()
        await server.wait_closed()


async def test_bad_urls() -> None:
    with pytest.raises(DeviceConfigError):
        await SerialTransport("nosuchscheme://x").open()
    with pytest.raises(DeviceDisconnectedError):
        await SerialTransport("/dev/pickedge-no-such-port").open()


async def test_bounded_buffer_applies_back_pressure_without_loss() -> None:
    pty = Pty()
    try:
        async with SerialTransport(pty.path, max_pending=1024) as t:
            payload = bytes(range(256)) * 64  # 16 KiB, more than the cap
            writer = asyncio.create_task(pty.write(payload))
            got = bytearray()
            while len(got) < len(payload):
                chunk = await t.read(5.0)
                assert chunk, "stalled"
                # One read can exceed the cap by at most one OS read.
                assert len(chunk) <= 1024 + 65536
                got += chunk
            await writer
            assert bytes(got) == payload
            assert t.pauses > 0  # the cap was reached and reading paused
    finally:
        pty.close()
