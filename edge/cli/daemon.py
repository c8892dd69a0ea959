"""``pickedge run --config FILE``: the daemon."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from common.errors import PickEdgeError
from edge import __version__
from edge.cli.common import config_or_exit, fail
from edge.logs import setup_logging

log = logging.getLogger("edge.daemon")


@click.command("run")
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    envvar="PICKEDGE_CONFIG",
    help="Configuration file (TOML). Also from $PICKEDGE_CONFIG.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="One line per event as text or JSON (default: [logging] format).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=None,
    help="Default: [logging] level.",
)
def run_command(config_path: Path, log_format: str | None, log_level: str | None) -> None:
    """Run the daemon until SIGTERM or Ctrl-C.

    Starts every configured component (PDA API, devices, sync, maintenance)
    under one supervisor that restarts a crashed component with back-off while
    the others keep running. On SIGTERM/SIGINT it stops taking new work,
    finishes in-flight requests, checkpoints the WAL and exits within 10 s.

    \b
    Examples:
      pickedge run --config /etc/pickedge/pickedge.toml
      PICKEDGE__API__PORT=8080 pickedge run -c site.toml --log-format json
    """
    cfg = config_or_exit(config_path)
    setup_logging(log_level or cfg.logging.level, log_format or cfg.logging.format)
    from edge.api.server import raise_fd_limit
    from edge.wiring import build_daemon

    # The PDA API's connection caps are sized from this limit (issue 14).
    before, after = raise_fd_limit()
    if after != before:
        log.info("open-file limit raised from %d to %d", before, after)

    try:
        daemon = build_daemon(cfg)
    except PickEdgeError as exc:
        raise fail(f"error: {exc}", exc.exit_code) from None
    log.info(
        "pickedge %s starting: box %s, store %s, %d components",
        __version__,
        cfg.box.id,
        daemon.store.path,
        len(daemon.supervisor.components),
    )

    async def main() -> None:
        try:
            await daemon.run()
        finally:
            # asyncio.run then waits for leftover tasks and executor threads; a
            # component stuck in a blocking call must not hold the process.
            _exit_if_stuck(3.0)

    asyncio.run(main())


def _exit_if_stuck(budget_s: float) -> None:
    import os
    import threading

    def force() -> None:
        log.error("shutdown exceeded %.0f s; exiting hard", budget_s)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(budget_s, force)
    timer.daemon = True
    timer.start()
