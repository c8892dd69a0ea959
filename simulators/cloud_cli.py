"""``pickedge sim cloud`` / ``python -m simulators.cloud``: the sync-v1 cloud on a port."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import click

from simulators.cloud import CloudSimulator, Faults, task_feed


def _parse_faults(values: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for v in values:
        name, sep, p = v.partition("=")
        try:
            out[name] = float(p) if sep else 0.1
        except ValueError:
            raise click.BadParameter(f"{v!r}: expected NAME=PROBABILITY") from None
    return out


@click.command("cloud")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8480, show_default=True, type=int, help="0: any free port.")
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The shared secret of the boxes (one line).",
)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="Keep state here.")
@click.option("--tasks", default=10, show_default=True, help="Tasks in the generated feed.")
@click.option("--seed", default=1, show_default=True)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="NAME=P",
    help="Inject a fault with probability P per batch request (repeatable), "
    "e.g. --fault fail_after=0.1.",
)
@click.option(
    "--changes-fault",
    "changes_faults",
    multiple=True,
    metavar="NAME=P",
    help="The same for GET /sync/v1/changes (e.g. --changes-fault bad_sig=0.2).",
)
@click.option("--slow-s", default=0.5, show_default=True, help="Delay of the 'slow' fault.")
@click.option("--max-batch-bytes", default=1_048_576, show_default=True)
def cloud_command(
    *,
    host: str,
    port: int,
    secret_file: Path,
    db: Path | None,
    tasks: int,
    seed: int,
    faults: tuple[str, ...],
    changes_faults: tuple[str, ...],
    slow_s: float,
    max_batch_bytes: int,
) -> None:
    """Run the sync-v1 cloud simulator until interrupted.

    It serves a generated feed of items, locations, stock, pickers and tasks,
    receives batches with dedup by digest, and injects the faults asked for.

    \b
    Examples:
      pickedge sim cloud --port 8480 --secret-file configs/secrets/demo-box.secret
      pickedge sim cloud --secret-file box.secret --db cloud.db --fault fail_after=0.2
    """
    secret = secret_file.read_text(encoding="utf-8").strip()
    try:
        plan = Faults(_parse_faults(faults), seed=seed)
        changes_plan = Faults(_parse_faults(changes_faults), seed=seed + 1)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    sim = CloudSimulator(
        secret,
        db_path=db,
        feed=task_feed(seed=seed, tasks=tasks),
        batch_faults=plan,
        changes_faults=changes_plan,
        max_batch_bytes=max_batch_bytes,
        slow_s=slow_s,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        url = await sim.start(host, port)
        click.echo(f"cloud simulator listening on {url}", err=False)
        try:
            await stop.wait()
        finally:
            await sim.stop()
            sim.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
