"""``python -m edge.api --config FILE``: serve the PDA API alone.

Used by the kill -9 tests and the floor benchmark to run the real application
in its own process (with ``[carts]``, the online batcher too). Prints
``listening <port>`` on stdout once it accepts connections; SIGTERM drains
and stops cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from edge.api.app import create_app
from edge.api.server import ApiServer
from edge.config import load_config
from edge.picking import PickingService
from edge.picking.proposer import CartProposer
from edge.store.db import Store
from edge.wiring import cart_settings


async def _serve(config: Path, port: int | None) -> None:
    cfg = load_config(config)
    store = Store.open(
        cfg.store_path(), box_id=cfg.box.id, busy_timeout_ms=cfg.store.busy_timeout_ms
    )
    proposer = CartProposer(store, cfg.layout_dict(), cfg.carts) if cfg.carts.enabled else None
    picking = PickingService(
        store,
        cfg.layout_dict(),
        carts=cart_settings(cfg),
        proposer=proposer.propose if proposer is not None else None,
        zero_checks=cfg.floor.zero_checks,
    )
    server = ApiServer(create_app(store, cfg, picking=picking), cfg)
    if port is not None:
        server.port = port
    task = asyncio.create_task(server.run())
    batcher = asyncio.create_task(proposer.run()) if proposer is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = asyncio.create_task(server.started.wait())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    print(f"listening {server.bound_port}", flush=True)
    await stop.wait()
    await server.drain()
    task.cancel()
    if batcher is not None:
        batcher.cancel()
    await asyncio.gather(task, *([batcher] if batcher else []), return_exceptions=True)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m edge.api")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, default=None, help="override api.port (0: any)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve(args.config, args.port))


if __name__ == "__main__":
    main()
