"""``pickedge sim impinj | zebra | mqtt-scanner``: MQTT device simulators on a broker.

``commands`` lists the click commands; the ``sim`` group of the CLI registers
them. Each connects to a broker (password from ``--password-file``, never from
the command line), publishes in the device's real format until ``--seconds``
have passed or Ctrl-C or SIGTERM (either a clean stop, exit 0), and prints what
it sent on stderr.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from devices.driver import MqttSettings
from simulators.lifecycle import run_until_stopped
from simulators.rfid_mqtt import (
    FAULT_KINDS,
    ImpinjReaderSim,
    MqttScannerSim,
    ReaderSim,
    ZebraReaderSim,
)

F = TypeVar("F", bound=Callable[..., Any])


def _broker_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--host", default="127.0.0.1", show_default=True, help="MQTT broker."),
            click.option("--port", default=1883, show_default=True, type=int),
            click.option("--username", default="pickedge", show_default=True),
            click.option(
                "--password-file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="File holding the broker password (first line).",
            ),
            click.option("--seconds", type=float, help="Stop after this long (default: never)."),
            click.option("--seed", default=1, show_default=True),
        ]
    ):
        func = option(func)
    return func


def _reader_options(func: F) -> F:
    for option in reversed(
        [
            click.option("--reader-id", default="reader-1", show_default=True),
            click.option("--topic", help="Topic to publish tag reads on."),
            click.option("--tags", default=50, show_default=True, help="Tag population size."),
            click.option("--antennas", default=4, show_default=True, type=click.IntRange(1, 32)),
            click.option("--rate", default=200.0, show_default=True, help="Tag reads per second."),
            click.option("--batch", type=click.IntRange(1, 1000), help="Reads per message."),
            click.option("--churn", default=0.0, help="Tags leaving/entering per second."),
            click.option(
                "--fault",
                "faults",
                multiple=True,
                metavar="KIND=P",
                help=f"Fault per message with probability P; KIND: {', '.join(FAULT_KINDS)}.",
            ),
            click.option(
                "--offline-after", type=float, help="Lose the broker after this many seconds..."
            ),
            click.option(
                "--offline-for", default=10.0, show_default=True, help="...for this long, queueing."
            ),
            click.option(
                "--backlog",
                default=0,
                show_default=True,
                help="Extra messages to queue while offline (e.g. 66000), replayed on reconnect.",
            ),
        ]
    ):
        func = option(func)
    return func


def _settings(
    host: str, port: int, username: str, password_file: Path | None, prefix: str
) -> MqttSettings:
    password = None
    if password_file is not None:
        lines = password_file.read_text().splitlines()
        password = lines[0] if lines else ""
    return MqttSettings(
        host=host, port=port, username=username, password=password, client_id_prefix=prefix
    )


def _faults(values: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in values:
        kind, sep, p = value.partition("=")
        if kind not in FAULT_KINDS:
            raise click.BadParameter(f"{value!r}: KIND must be one of {', '.join(FAULT_KINDS)}")
        try:
            out[kind] = float(p) if sep else 0.01
        except ValueError:
            raise click.BadParameter(f"{value!r}: expected KIND=PROBABILITY") from None
    return out


async def _run_reader(
    sim: ReaderSim,
    *,
    seconds: float | None,
    offline_after: float | None,
    offline_for: float,
    backlog: int,
    heartbeat: Callable[[], Any] | None = None,
) -> None:
    async with sim:
        started = time.monotonic()
        click.echo(
            f"{sim.reader_id}: publishing {sim.rate:g} reads/s of {len(sim.population)} tags "
            f"on {sim.topic} ({sim.settings.host}:{sim.settings.port})",
            err=True,
        )
        offline_at = started + offline_after if offline_after is not None else None
        last_report = started
        while seconds is None or time.monotonic() - started < seconds:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            if offline_at is not None and now >= offline_at and sim.connected:
                sim.disconnect()
                sim.fill_backlog(backlog)
                click.echo(f"{sim.reader_id}: broker lost, queueing ({offline_for:g} s)", err=True)
            elif offline_at is not None and not sim.connected and now >= offline_at + offline_for:
                t0 = time.monotonic()
                replayed = await sim.reconnect()
                click.echo(
                    f"{sim.reader_id}: reconnected, replayed {replayed} messages in "
                    f"{time.monotonic() - t0:.2f} s (dropped {sim.dropped})",
                    err=True,
                )
                offline_at = None
            if now - last_report >= 5:
                last_report = now
                if heartbeat is not None:
                    await heartbeat()
                click.echo(
                    f"{sim.reader_id}: {sim.published} messages, {sim.reads_published} reads, "
                    f"{len(sim.backlog)} queued, {sim.faults_published} faults",
                    err=True,
                )


@click.command("impinj", context_settings={"help_option_names": ["-h", "--help"]})
@_broker_options
@_reader_options
@click.option("--epc-hex", is_flag=True, help="Add epcHex (as when enabled on the reader).")
def impinj_command(
    *,
    host: str,
    port: int,
    username: str,
    password_file: Path | None,
    seconds: float | None,
    seed: int,
    reader_id: str,
    topic: str | None,
    tags: int,
    antennas: int,
    rate: float,
    batch: int | None,
    churn: float,
    faults: tuple[str, ...],
    offline_after: float | None,
    offline_for: float,
    backlog: int,
    epc_hex: bool,
) -> None:
    """An Impinj R700 publishing IoT Device Interface ReaderEvents.

    \b
    Example:
      pickedge sim impinj --password-file secrets/mqtt --reader-id dock-1 \\
          --topic impinj/dock-1/events --tags 200 --rate 500 --fault malformed=0.01
    """
    settings = _settings(host, port, username, password_file, "sim")
    sim = ImpinjReaderSim(
        settings,
        reader_id=reader_id,
        topic=topic or f"impinj/{reader_id}/events",
        tags=tags,
        antennas=antennas,
        rate=rate,
        batch=batch,
        seed=seed,
        churn=churn,
        faults=_faults(faults),
        epc_hex=epc_hex,
    )
    run_until_stopped(
        _run_reader(
            sim,
            seconds=seconds,
            offline_after=offline_after,
            offline_for=offline_for,
            backlog=backlog,
        )
    )


@click.command("zebra", context_settings={"help_option_names": ["-h", "--help"]})
@_broker_options
@_reader_options
@click.option("--events-topic", help="Management events topic (heartbeats every 5 s).")
@click.option("--mode", default="SIMPLE", show_default=True, help="Operating mode echoed in type.")
@click.option("--utc-offset", default=0, show_default=True, help="Timestamp offset, minutes.")
def zebra_command(
    *,
    host: str,
    port: int,
    username: str,
    password_file: Path | None,
    seconds: float | None,
    seed: int,
    reader_id: str,
    topic: str | None,
    tags: int,
    antennas: int,
    rate: float,
    batch: int | None,
    churn: float,
    faults: tuple[str, ...],
    offline_after: float | None,
    offline_for: float,
    backlog: int,
    events_topic: str | None,
    mode: str,
    utc_offset: int,
) -> None:
    """A Zebra FX9600 publishing IoT Connector tag data (JSON arrays).

    \b
    Example:
      pickedge sim zebra --password-file secrets/mqtt --reader-id fx9600-1 \\
          --topic zebra/fx9600-1/data --events-topic zebra/fx9600-1/events \\
          --offline-after 10 --offline-for 5 --backlog 66000
    """
    settings = _settings(host, port, username, password_file, "sim")
    sim = ZebraReaderSim(
        settings,
        reader_id=reader_id,
        topic=topic or f"zebra/{reader_id}/data",
        events_topic=events_topic,
        mode=mode,
        utc_offset_minutes=utc_offset,
        tags=tags,
        antennas=antennas,
        rate=rate,
        batch=batch,
        seed=seed,
        churn=churn,
        faults=_faults(faults),
    )

    async def heartbeat() -> None:
        if events_topic and sim.connected:
            await sim.send(sim.heartbeat_payload(), topic=events_topic)

    run_until_stopped(
        _run_reader(
            sim,
            seconds=seconds,
            offline_after=offline_after,
            offline_for=offline_for,
            backlog=backlog,
            heartbeat=heartbeat,
        )
    )


@click.command("mqtt-scanner", context_settings={"help_option_names": ["-h", "--help"]})
@_broker_options
@click.option("--scanner-id", default="scanner-1", show_default=True)
@click.option("--topic", help="Topic (default scanners/<scanner-id>).")
@click.option("--code", "codes", multiple=True, help="Code to scan (repeatable; cycles).")
@click.option("--symbology", default="]C0", show_default=True, help="AIM id sent with each scan.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between scans.")
@click.option("--count", type=int, help="Stop after this many scans.")
def mqtt_scanner_command(
    *,
    host: str,
    port: int,
    username: str,
    password_file: Path | None,
    seconds: float | None,
    seed: int,
    scanner_id: str,
    topic: str | None,
    codes: tuple[str, ...],
    symbology: str,
    interval: float,
    count: int | None,
) -> None:
    """A fixed scanner publishing PickEdge's generic JSON scan messages.

    \b
    Example:
      pickedge sim mqtt-scanner --password-file secrets/mqtt --scanner-id pack-1 \\
          --code '0109501101020917<GS>10ABC' --symbology ']C1' --count 5
    """
    settings = _settings(host, port, username, password_file, "sim")
    cycle = [c.replace("<GS>", "\x1d") for c in codes] or [f"PICK-{seed:04d}"]

    async def main() -> None:
        async with MqttScannerSim(
            settings, scanner_id=scanner_id, topic=topic or f"scanners/{scanner_id}"
        ) as sim:
            started = time.monotonic()
            n = 0
            while (count is None or n < count) and (
                seconds is None or time.monotonic() - started < seconds
            ):
                code = cycle[n % len(cycle)]
                await sim.scan(code, symbology or None)
                n += 1
                click.echo(f"{scanner_id}: scanned {code!r}", err=True)
                if count is None or n < count:
                    await asyncio.sleep(interval)

    run_until_stopped(main())


commands: list[click.Command] = [impinj_command, zebra_command, mqtt_scanner_command]
