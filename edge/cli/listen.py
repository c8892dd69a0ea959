"""``pickedge listen``: print the decoded events of the configured devices, live.

Promises: reads the configuration, runs every enabled device (or the ones named
with ``--device``) under the :class:`~edge.device_supervisor.DeviceSupervisor` —
reconnects included — and prints one line per event on stdout: readable text,
or one JSON object per line with ``--json``. Logs (device lost / back, bad
input) go to stderr. Never touches the database; events are not committed, so
over MQTT they are acknowledged as soon as they are printed. Stops on Ctrl-C,
after ``--count`` events or after ``--seconds``; exits 0, or 2 for a bad
configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from devices.events import DeviceEvent, DeviceStateEvent, ScanEvent, TagPresenceEvent, TagReadEvent
from edge.cli.common import config_option, config_or_exit, fail
from edge.device_supervisor import DeviceSupervisor


def event_dict(event: DeviceEvent) -> dict[str, Any]:
    """An event as a JSON-ready dict with its ``type`` (class name)."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        out[f.name] = value.value if isinstance(value, enum.Enum) else value
    return out


def _clock(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-3]


def event_line(event: DeviceEvent) -> str:
    """One human-readable line per event."""
    if isinstance(event, ScanEvent):
        code = event.code.replace("\x1d", "<GS>")
        return f"{_clock(event.received_at)} {event.device_id} scan {event.symbology or ''} {code}"
    if isinstance(event, TagPresenceEvent):
        antenna = f" antenna {event.antenna}" if event.antenna is not None else ""
        return (
            f"{_clock(event.at)} {event.device_id} {event.kind.value:<4} {event.epc_hex}{antenna}"
        )
    if isinstance(event, TagReadEvent):
        rssi = f" {event.rssi_dbm:.1f} dBm" if event.rssi_dbm is not None else ""
        return (
            f"{_clock(event.reader_time)} {event.device_id} read {event.epc_hex}"
            f" antenna {event.antenna}{rssi} x{event.reads}"
        )
    assert isinstance(event, DeviceStateEvent)
    return f"{_clock(event.received_at)} {event.device_id} {event.state.value} {event.detail}"


async def listen(
    supervisor_args: dict[str, Any],
    *,
    as_json: bool,
    count: int | None,
    seconds: float | None,
) -> int:
    printed = 0
    done = asyncio.Event()

    async def on_event(event: DeviceEvent) -> None:
        nonlocal printed
        if done.is_set():
            # Past --count: hold the event until we are cancelled, so that over
            # MQTT its message stays unacknowledged for the next consumer.
            await asyncio.Event().wait()
        line = json.dumps(event_dict(event), ensure_ascii=False) if as_json else event_line(event)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        printed += 1
        if count is not None and printed >= count:
            done.set()

    supervisor = DeviceSupervisor(on_event=on_event, **supervisor_args)
    runner = asyncio.create_task(supervisor.run())
    stopper = asyncio.create_task(done.wait())
    try:
        await asyncio.wait({runner, stopper}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (runner, stopper):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    return printed


@click.command(
    "listen",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  pickedge listen --config /etc/pickedge/pickedge.toml
  pickedge listen -c pickedge.toml --json --device dock-1 | jq .
  pickedge listen -c pickedge.toml --count 10""",
)
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--device", "devices", multiple=True, help="Only this device id (repeatable).")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option(
    "--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop after this long."
)
@click.option("--verbose", "-v", is_flag=True, help="Log at DEBUG on stderr.")
def listen_command(
    *,
    config_path: Path,
    as_json: bool,
    devices: tuple[str, ...],
    count: int | None,
    seconds: float | None,
    verbose: bool,
) -> None:
    """Print decoded events of the configured devices live, one per line."""
    cfg = config_or_exit(config_path)
    specs = cfg.devices
    if devices:
        unknown = sorted(set(devices) - {s.id for s in specs})
        if unknown:
            raise fail(f"error: no enabled device named {', '.join(unknown)} in {config_path}")
        specs = tuple(s for s in specs if s.id in devices)
    if not specs:
        raise fail(f"error: no enabled devices in {config_path}")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    started = time.monotonic()
    args = {"specs": specs, "mqtt": cfg.mqtt_settings()}
    try:
        printed = asyncio.run(listen(args, as_json=as_json, count=count, seconds=seconds))
    except KeyboardInterrupt:
        return
    click.echo(
        f"{printed} events in {time.monotonic() - started:.1f} s from {len(specs)} devices",
        err=True,
    )
