"""A ZPL label printer on a TCP port, the way a Zebra behaves on raw port 9100.

Promises: :class:`PrinterSimulator` listens on a loopback (or given) address,
reads each connection as one ZPL stream (:func:`devices.printer.zpl.split_stream`),
parses every ``^XA…^XZ`` format with :func:`~devices.printer.zpl.parse_format`
and answers ``~HS`` with :func:`~devices.printer.status.encode_hs` of its state,
in stream order. It honours ``~PP`` (pause), ``~PS`` (resume), ``~JA`` (cancel
everything held) and ``^PQ`` (copies).

Faults, each a method for tests and a line on the optional control port for
people (``printf 'paper-out on\\n' | nc 127.0.0.1 9101``):

- ``paper-out`` / ``head-open`` / ``paused`` / ``ribbon-out`` (``on``/``off``),
  and ``media N``: the roll runs out after N more labels (mid-batch);
  ``load-paper [N]`` clears paper-out with a new roll (N labels, default endless);
- ``mute``: connections are accepted and jobs taken, ``~HS`` is never answered;
- ``refuse SECONDS`` (``refuse()``/``accept()``): the port is closed, connections
  are refused.

While a fault stops printing, received formats are **held, not lost**, and
print in order when it clears — what a Zebra does with formats in its buffer
(``~HS`` shows them as formats in the buffer). ``~JA`` drops them. Formats that
do not parse are counted in ``errors`` and never printed. Printed labels are
kept in ``printed`` (one entry per physical label) and, with ``out``, written
as ``label-NNNNNN.zpl`` and ``.json`` files. Closing stops every connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import click

from devices.errors import FrameError
from devices.printer.status import PrinterStatus, encode_hs
from devices.printer.zpl import (
    Format,
    HostCommand,
    ParsedLabel,
    StreamItem,
    parse_format,
    split_stream,
)
from simulators.lifecycle import run_until_stopped

log = logging.getLogger(__name__)

CONDITIONS = ("paper-out", "head-open", "paused", "ribbon-out", "mute")
LABEL_LENGTH_DOTS = 1218  # 6 in at 203 dpi, as the labels of devices.printer.zpl
MAX_BUFFER = 1024 * 1024

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(slots=True)
class Conditions:
    """What is wrong with the printer right now."""

    paper_out: bool = False
    head_open: bool = False
    paused: bool = False
    ribbon_out: bool = False
    mute: bool = False


class PrinterSimulator:
    """One printer; an async context manager (see the module docstring)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int | None = None,
        out: Path | None = None,
        media: int | None = None,
        thermal_transfer: bool = False,
        on_printed: Callable[[int, ParsedLabel], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.control_port = control_port
        self.out = out
        self.media = media  # labels left on the roll; None: endless
        self.thermal_transfer = thermal_transfer
        self.on_printed = on_printed
        self.conditions = Conditions()
        self.pending: list[ParsedLabel] = []
        self.printed: list[ParsedLabel] = []
        self.errors: list[str] = []
        self.connections = 0  # accepted so far
        self.max_concurrent = 0  # most connections open at once
        self.hs_answered = 0
        self._server: asyncio.Server | None = None
        self._control: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._timers: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.accept()
        if self.control_port is not None:
            self._control = await asyncio.start_server(
                self._track(self._serve_control), self.host, self.control_port
            )
            self.control_port = self._control.sockets[0].getsockname()[1]
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.refuse()
        if self._control is not None:
            self._control.close()
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        # Closing a connection ends its handler (end of stream); cancelling a
        # stream handler's task would make asyncio log the cancellation.
        for writer in self._connections.values():
            writer.close()
        if self._connections:
            await asyncio.wait(self._connections, timeout=2.0)
        for task in self._connections:
            task.cancel()

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    async def accept(self) -> None:
        """Listen (again, on the same port once it is known)."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._track(self._serve), self.host, self.port
            )
            self.port = self._server.sockets[0].getsockname()[1]
            self._notify()

    async def refuse(self) -> None:
        """Close the port: new connections are refused, open ones carry on."""
        if self._server is not None:
            self._server.close()
            self._server = None
            self._notify()
            await asyncio.sleep(0)

    # -- state ---------------------------------------------------------------------------

    def set_condition(self, name: str, on: bool = True) -> None:
        """Switch one of :data:`CONDITIONS`; held labels print once all clear."""
        if name not in CONDITIONS:
            raise ValueError(f"unknown condition {name!r} (known: {', '.join(CONDITIONS)})")
        setattr(self.conditions, name.replace("-", "_"), on)
        self._print_held()
        self._notify()

    def load_paper(self, labels: int | None = None) -> None:
        """A new roll of ``labels`` labels (``None``: endless); paper out clears."""
        self.media = labels
        self.set_condition("paper-out", False)

    def status(self) -> PrinterStatus:
        c = self.conditions
        return PrinterStatus(
            paper_out=c.paper_out,
            paused=c.paused,
            head_open=c.head_open,
            ribbon_out=c.ribbon_out,
            thermal_transfer=self.thermal_transfer,
            formats_in_buffer=len(self.pending),
            labels_remaining=len(self.pending),
            label_length_dots=LABEL_LENGTH_DOTS,
        )

    async def wait_for(self, predicate: Callable[[Self], bool], within: float = 10.0) -> None:
        """Wait until ``predicate(self)`` holds (checked after every change)."""
        async with asyncio.timeout(within):
            while not predicate(self):
                await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- printing --------------------------------------------------------------------------

    def _hold(self, label: ParsedLabel) -> None:
        self.pending.extend([label] * label.quantity)
        self._print_held()

    def _print_held(self) -> None:
        while self.pending and self.status().ready:
            if self.media is not None:
                if self.media <= 0:
                    self.conditions.paper_out = True
                    log.info("printer simulator: paper out, %d labels held", len(self.pending))
                    break
                self.media -= 1
            label = self.pending.pop(0)
            self.printed.append(label)
            number = len(self.printed)
            if self.out is not None:
                self._write_out(number, label)
            if self.on_printed is not None:
                self.on_printed(number, label)

    def _write_out(self, number: int, label: ParsedLabel) -> None:
        assert self.out is not None
        stem = self.out / f"label-{number:06d}"
        stem.with_suffix(".zpl").write_bytes(label.raw)
        fields = [asdict(f) for f in label.fields]
        stem.with_suffix(".json").write_text(json.dumps({"fields": fields}, indent=1) + "\n")

    # -- connections --------------------------------------------------------------------------

    def _track(self, handler: Handler) -> Handler:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._connections[task] = writer
            self.max_concurrent = max(self.max_concurrent, len(self._connections))
            try:
                await handler(reader, writer)
            except ConnectionError:
                pass  # the client went away; what it sent so far was handled
            finally:
                del self._connections[task]
                writer.close()

        return run

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        buf = b""
        while True:
            data = await reader.read(65536)
            buf += data
            items, used = split_stream(buf, final=not data)
            buf = buf[used:]
            for item in items:
                await self._handle(item, writer)
            self._notify()
            if not data:
                return
            if len(buf) > MAX_BUFFER:
                self.errors.append(f"{len(buf)} bytes without a complete format, dropped")
                buf = b""

    async def _handle(self, item: StreamItem, writer: asyncio.StreamWriter) -> None:
        if isinstance(item, Format):
            try:
                label = parse_format(item.data)
            except FrameError as exc:
                self.errors.append(f"format not printed: {exc}")
                return
            self._hold(label)
        elif isinstance(item, HostCommand):
            if item.name == "HS":
                if not self.conditions.mute:
                    writer.write(encode_hs(self.status()))
                    await writer.drain()
                    self.hs_answered += 1
            elif item.name in ("PP", "PS"):
                self.set_condition("paused", item.name == "PP")
            elif item.name == "JA":
                self.pending.clear()
            else:
                self.errors.append(f"~{item.name} is not simulated")
        else:
            self.errors.append(f"junk outside any format: {item.data[:40]!r}")

    async def _serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while line := await reader.readline():
            answer = await self.control(line.decode("utf-8", "replace"))
            writer.write(answer.encode() + b"\n")
            await writer.drain()

    async def control(self, line: str) -> str:
        """One control line (see the module docstring); the answer is the state after it."""
        words = line.split()
        try:
            match words:
                case [name, ("on" | "off") as value] if name in CONDITIONS:
                    self.set_condition(name, value == "on")
                case ["media", count]:
                    self.media = int(count)
                case ["load-paper"]:
                    self.load_paper()
                case ["load-paper", count]:
                    self.load_paper(int(count))
                case ["refuse", seconds]:
                    await self.refuse()
                    timer = asyncio.create_task(self._accept_after(float(seconds)))
                    self._timers.add(timer)
                    timer.add_done_callback(self._timers.discard)
                case ["status"] | []:
                    pass  # nothing to change: the answer below is the state
                case _:
                    return f"error: unknown command {line.strip()!r}"
        except ValueError as exc:
            return f"error: {exc}"
        self._notify()
        return self.describe()

    async def _accept_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.accept()

    def describe(self) -> str:
        c = self.conditions
        on = [n for n in CONDITIONS if getattr(c, n.replace("-", "_"))]
        return (
            f"{', '.join(on) or 'ready'}; printed {len(self.printed)}, held {len(self.pending)}, "
            f"media {'endless' if self.media is None else self.media}, "
            f"{'refusing' if self._server is None else 'listening'}"
        )


# -- pickedge sim printer ---------------------------------------------------------------------


@click.command("printer")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9100, show_default=True, type=int, help="0: any free port.")
@click.option(
    "--control-port",
    type=int,
    default=None,
    help="Line-based control port: 'paper-out on', 'load-paper 50', 'mute on', 'refuse 10'…",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write every printed label here (label-NNNNNN.zpl and .json).",
)
@click.option("--media", type=int, default=None, help="Labels on the roll (default: endless).")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    type=click.Choice(CONDITIONS),
    help="Start in this condition; repeat for several.",
)
def printer_command(
    *,
    host: str,
    port: int,
    control_port: int | None,
    out: Path | None,
    media: int | None,
    faults: tuple[str, ...],
) -> None:
    """A ZPL label printer on raw TCP (like a Zebra on port 9100).

    It prints (parses and keeps) every ^XA…^XZ format, answers ~HS, and holds
    formats while out of paper, head open or paused, printing them when the
    fault clears.

    \b
    Examples:
      pickedge sim printer --port 9100 --out /tmp/labels
      pickedge sim printer --port 9100 --control-port 9101 --media 3
      printf 'paper-out on\\n' | nc 127.0.0.1 9101
    """

    def printed(number: int, label: ParsedLabel) -> None:
        shown = (*label.texts, *(f"[{b.data}]" for b in label.barcodes))
        click.echo(f"printed {number}: " + " | ".join(shown))

    async def main() -> None:
        async with PrinterSimulator(
            host=host,
            port=port,
            control_port=control_port,
            out=out,
            media=media,
            on_printed=printed,
        ) as sim:
            for fault in faults:
                sim.set_condition(fault, True)
            click.echo(f"printer simulator on {sim.url}" + f" ({sim.describe()})")
            if sim.control_port is not None:
                click.echo(f"control on tcp://{host}:{sim.control_port}")
            click.echo("Ctrl-C to stop.")
            await asyncio.Event().wait()

    run_until_stopped(main())
