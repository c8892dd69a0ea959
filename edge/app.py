"""Assembles the daemon from a configuration: store, components, supervisor.

This is the only place that knows which components exist. Each component is
built from its part of the configuration and handed the shared store; the
supervisor in :mod:`edge.daemon` runs them and stops them cleanly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from edge.config import Config
from edge.daemon import Component, Supervisor
from edge.maintenance import Maintenance
from edge.store import Store

log = logging.getLogger(__name__)


@dataclass
class Daemon:
    cfg: Config
    store: Store
    supervisor: Supervisor
    parts: dict[str, Any] = field(default_factory=dict)

    async def run(self, *, install_signals: bool = True) -> None:
        await self.supervisor.run(install_signals=install_signals)

    def stop(self) -> None:
        self.supervisor.stop()


def open_store(cfg: Config) -> Store:
    return Store.open(
        cfg.store_path(),
        box_id=cfg.box.id,
        busy_timeout_ms=cfg.store.busy_timeout_ms,
        max_backlog=cfg.store.max_backlog,
        wal_limit_bytes=cfg.store.wal_limit_mb * 1024 * 1024,
    )


def build_daemon(cfg: Config, store: Store | None = None) -> Daemon:
    """Build every component the configuration asks for (nothing runs yet)."""
    store = store if store is not None else open_store(cfg)
    parts: dict[str, Any] = {}
    components: list[Component] = []

    maintenance = Maintenance(
        store, interval_s=cfg.store.checkpoint_interval_s, warn_backlog=cfg.store.warn_backlog
    )
    parts["maintenance"] = maintenance
    components.append(maintenance)

    def close_store() -> None:
        store.close()
        log.info("store closed and WAL checkpointed")

    supervisor = Supervisor(components, on_stopped=[close_store])
    return Daemon(cfg, store, supervisor, parts)
