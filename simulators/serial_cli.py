"""``pickedge sim scanner | rfid-a0 | rfid-m100``: serial device simulators on ptys.

Each command creates a pty, prints the path a driver (or ``pickedge listen``)
should open, and runs until Ctrl-C or SIGTERM (either a clean stop, exit 0).
The lead registers ``commands`` under the ``sim`` group. Never touches
configuration or the database.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, cast

import click

from devices.codes.aim import split_aim
from devices.framing.lines import SUFFIXES, Suffix
from simulators.lifecycle import run_until_stopped
from simulators.serial_rfid import A0ReaderSimulator, M100ReaderSimulator, Tag, sgtin_population
from simulators.serial_scanner import DEMO_CODES, FAULT_NAMES, Faults, ScannerSimulator

_fault_option = click.option(
    "--fault",
    "faults",
    multiple=True,
    type=click.Choice(FAULT_NAMES),
    help="Fault to inject; repeat for several. disconnect reopens the pty every 200 frames.",
)
_fault_rate_option = click.option(
    "--fault-rate",
    type=float,
    default=0.05,
    show_default=True,
    help="Per-frame rate of junk/bitflip/truncate.",
)
_link_option = click.option(
    "--link",
    type=click.Path(dir_okay=False),
    default=None,
    help="Stable symlink to the pty (survives disconnects), e.g. /tmp/scanner0.",
)


def _tag_options(f: Any) -> Any:
    f = click.option(
        "--epc",
        "epcs",
        multiple=True,
        help="EPC hex of a tag in the field (replaces --tags). Repeatable.",
    )(f)
    return click.option(
        "--tags",
        "n_tags",
        type=int,
        default=5,
        show_default=True,
        help="SGTIN-96 tags in the field.",
    )(f)


_seed_option = click.option("--seed", type=int, default=None, help="Random seed of the faults.")


def _announce(kind: str, path: str, slave: str) -> None:
    click.echo(f"{kind} simulator on {path}" + (f" (-> {slave})" if slave != path else ""))
    click.echo("Ctrl-C to stop.")


@click.command("scanner")
@click.option("--suffix", type=click.Choice(SUFFIXES), default="crlf", show_default=True)
@click.option("--prefix", default="", help="Prefix the scanner sends before each code.")
@click.option("--rate", type=float, default=2.0, show_default=True, help="Scans per second.")
@click.option(
    "--count", type=int, default=0, help="Stop after this many scans (0: run until Ctrl-C)."
)
@click.option(
    "--code",
    "codes",
    multiple=True,
    help="Code to send, optionally starting with an AIM id (]C1...); <GS> for 0x1D. Repeatable.",
)
@_fault_option
@_fault_rate_option
@_link_option
@_seed_option
def scanner_command(
    *,
    suffix: str,
    prefix: str,
    rate: float,
    count: int,
    codes: tuple[str, ...],
    faults: tuple[str, ...],
    fault_rate: float,
    link: str | None,
    seed: int | None,
) -> None:
    """A serial barcode scanner on a pty.

    \b
    Examples:
      pickedge sim scanner
      pickedge sim scanner --suffix stx-etx --rate 50 --fault junk --fault split
      pickedge sim scanner --link /tmp/scanner0 --code ']C10109521234543213'
    """
    scans = [split_aim(c.replace("<GS>", "\x1d")) for c in codes] or [(a, c) for c, a in DEMO_CODES]
    chosen = Faults.from_names(faults, rate=fault_rate, seed=seed)

    async def main() -> None:
        async with ScannerSimulator(
            suffix=cast(Suffix, suffix), prefix=prefix.encode(), faults=chosen, link=link
        ) as sim:
            _announce("scanner", sim.path, sim.pty.slave_path)
            period = 1.0 / rate if rate > 0 else 0.0
            loop = asyncio.get_running_loop()
            next_at = loop.time()
            for n, (aim, code) in enumerate(itertools.cycle(scans), start=1):
                await sim.send(code, aim)
                click.echo(f"{n:6d} {aim or '   '} {code.replace(chr(0x1D), '<GS>')}")
                if count and n >= count:
                    return
                if chosen.disconnect_every and n % chosen.disconnect_every == 0:
                    await sim.disconnect()
                    click.echo(f"disconnected; new pty {sim.pty.slave_path} behind {sim.path}")
                next_at += period
                await asyncio.sleep(max(0.0, next_at - loop.time()))

    run_until_stopped(main())


def _tags(n: int, epcs: tuple[str, ...]) -> list[Tag]:
    return [Tag.from_hex(e, antenna=i % 4) for i, e in enumerate(epcs)] or sgtin_population(n)


async def _serve_reader(
    sim: A0ReaderSimulator | M100ReaderSimulator, kind: str, faults: Faults
) -> None:
    _announce(kind, sim.path, sim.pty.slave_path)
    click.echo(
        f"{len(sim.tags)} tags in the field: "
        + ", ".join(t.epc.hex().upper() for t in sim.tags[:5])
    )
    seen = 0
    while True:
        await sim.wait_commands(seen + 1)
        seen = sim.commands
        if seen == 1 or seen % 100 == 0:
            click.echo(f"{seen} commands answered, {sim.frames_sent} frames sent")
        if faults.disconnect_every and seen % faults.disconnect_every == 0:
            await sim.disconnect()
            click.echo(f"disconnected; new pty {sim.pty.slave_path} behind {sim.path}")


@click.command("rfid-a0")
@_tag_options
@click.option("--address", type=int, default=1, show_default=True)
@click.option(
    "--error-code",
    type=int,
    default=None,
    help="Answer every inventory with this error (34 = antenna missing).",
)
@_fault_option
@_fault_rate_option
@_link_option
@_seed_option
def rfid_a0_command(
    *,
    n_tags: int,
    epcs: tuple[str, ...],
    address: int,
    error_code: int | None,
    faults: tuple[str, ...],
    fault_rate: float,
    link: str | None,
    seed: int | None,
) -> None:
    """An R2000-style "A0" UHF RFID reader on a pty, answering real-time inventory (0x89).

    \b
    Examples:
      pickedge sim rfid-a0 --tags 20
      pickedge sim rfid-a0 --epc E2801160600002054CC2096F --fault bitflip
    """
    chosen = Faults.from_names(faults, rate=fault_rate, seed=seed)

    async def main() -> None:
        async with A0ReaderSimulator(
            tags=_tags(n_tags, epcs),
            faults=chosen,
            link=link,
            address=address,
            error_code=error_code,
        ) as sim:
            await _serve_reader(sim, "rfid-a0", chosen)

    run_until_stopped(main())


@click.command("rfid-m100")
@_tag_options
@click.option(
    "--round-ms",
    type=float,
    default=20.0,
    show_default=True,
    help="Time between multi-poll rounds.",
)
@_fault_option
@_fault_rate_option
@_link_option
@_seed_option
def rfid_m100_command(
    *,
    n_tags: int,
    epcs: tuple[str, ...],
    round_ms: float,
    faults: tuple[str, ...],
    fault_rate: float,
    link: str | None,
    seed: int | None,
) -> None:
    """A MagicRF M100 UHF RFID module on a pty (BB…7E protocol, multi-poll and single inventory).

    \b
    Examples:
      pickedge sim rfid-m100 --tags 3
      pickedge sim rfid-m100 --tags 0          empty field: "no tag" 0x15 errors
    """
    chosen = Faults.from_names(faults, rate=fault_rate, seed=seed)

    async def main() -> None:
        async with M100ReaderSimulator(
            tags=_tags(n_tags, epcs), faults=chosen, link=link, round_interval=round_ms / 1000.0
        ) as sim:
            await _serve_reader(sim, "rfid-m100", chosen)

    run_until_stopped(main())


commands: list[click.Command] = [scanner_command, rfid_a0_command, rfid_m100_command]
