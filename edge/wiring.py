"""Assembles the daemon from a configuration: store, components, supervisor.

This is the only place that knows which components exist and how they are
connected:

- ``api``: the PDA API and page (:mod:`edge.api`) over the picking workflow;
- ``devices``: the device supervisor (:mod:`edge.device_supervisor`), when any
  device is configured; its events go to :class:`DeviceEventSink`;
- ``uploader`` / ``downloader``: sync-v1 (:mod:`cloud_sync`), when
  ``[cloud] url`` is set; picking wakes the uploader after each commit, and the
  downloader's notices (a started task cancelled) go to the PDAs' sockets;
- ``maintenance``: WAL checkpoints and backlog alerts.

Nothing runs until :meth:`Daemon.run`; the store is closed (and its WAL
checkpointed) when the supervisor has stopped every component.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from cloud_sync.client import SyncClient
from cloud_sync.downloader import Downloader
from cloud_sync.metrics import SyncMetrics
from cloud_sync.uploader import Uploader
from devices.events import DeviceEvent
from edge.api import HUB, ApiServer, create_app
from edge.config import Config
from edge.daemon import Component, Supervisor
from edge.device_supervisor import DeviceSupervisor
from edge.maintenance import Maintenance
from edge.masterdata import Notice, apply_changes
from edge.metrics import DaemonCollector, exposition
from edge.picking import PickingService
from edge.store import Store

log = logging.getLogger(__name__)


class DeviceEventSink:
    """Where the fixed devices' events land in the daemon.

    Pack-station and dock-door workflows (labels, shipments, portals) are their
    own capability; until they land, the edge keeps the recent events of each
    device for the dashboard and the demo, and hands each to ``listeners``.
    """

    def __init__(self, keep: int = 50) -> None:
        self.recent: dict[str, collections.deque[DeviceEvent]] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.listeners: list[Callable[[DeviceEvent], None]] = []
        self._keep = keep

    async def __call__(self, event: DeviceEvent) -> None:
        self.recent.setdefault(event.device_id, collections.deque(maxlen=self._keep)).append(event)
        self.counts[type(event).__name__] += 1
        for listener in self.listeners:
            listener(event)


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

    uploader: Uploader | None = None
    downloader: Downloader[list[Notice]] | None = None
    client: SyncClient | None = None
    secret = cfg.box_secret()
    if cfg.cloud.url and secret is not None:
        client = SyncClient(cfg.cloud.url, cfg.box.id, secret, timeout_s=cfg.cloud.timeout_s)
        uploader = Uploader.from_config(store, cfg, client)
        parts["uploader"] = uploader

    picking = PickingService(
        store, cfg.layout_dict(), on_commit=uploader.notify if uploader is not None else None
    )
    registry = CollectorRegistry()
    sync_metrics: SyncMetrics | None = None
    if uploader is not None:
        sync_metrics = uploader.metrics = SyncMetrics(registry)

    def render_metrics() -> bytes:
        if sync_metrics is not None:
            sync_metrics.refresh(store)  # backlog gauges are read at scrape time
        return exposition(registry)

    token = cfg.secrets.get("api.metrics_token_file")
    app = create_app(
        store,
        cfg,
        picking=picking,
        metrics_exposition=render_metrics,
        metrics_token=token.reveal() if token is not None else None,
    )
    api = ApiServer(app, cfg)
    parts.update(picking=picking, app=app, api=api)
    components.append(api)

    if client is not None and uploader is not None:
        hub = app[HUB]

        def deliver(notices: list[Notice]) -> None:
            if notices:
                hub.deliver(notices)

        downloader = Downloader.from_config(store, cfg, client, apply_changes, on_applied=deliver)
        parts["downloader"] = downloader
        components += [uploader, downloader]
    else:
        log.info("no [cloud] url: confirmed facts stay in the outbox until one is set")

    sink = DeviceEventSink()
    parts["device_events"] = sink
    if cfg.devices:
        devices = DeviceSupervisor(cfg.devices, mqtt=cfg.mqtt_settings(), on_event=sink)
        parts["devices"] = devices
        components.append(devices)

    maintenance = Maintenance(
        store,
        interval_s=cfg.store.checkpoint_interval_s,
        warn_backlog=cfg.store.warn_backlog,
        retention_days=cfg.store.retention_days,
    )
    parts["maintenance"] = maintenance
    components.append(maintenance)

    async def close() -> None:
        if client is not None:
            await client.close()
        started = time.monotonic()
        store.close()
        log.info("store closed, WAL checkpointed in %.0f ms", (time.monotonic() - started) * 1e3)

    supervisor = Supervisor(components, on_stopped=[close])
    registry.register(
        DaemonCollector(
            store=store,
            supervisor=supervisor,
            devices=parts["devices"].snapshot if "devices" in parts else None,
        )
    )
    parts["metrics_registry"] = registry
    return Daemon(cfg, store, supervisor, parts)
