"""Assembles the daemon from a configuration: store, components, supervisor.

This is the only place that knows which components exist and how they are
connected:

- ``api``: the PDA API and page (:mod:`edge.api`) over the picking workflow;
- ``devices``: the device supervisor (:mod:`edge.device_supervisor`), when any
  device is configured; its events go to :class:`edge.shipping.inbox.FloorInbox`
  (pack station scans, dock portal reads; the rest kept for the dashboard);
- ``dock``: the dock doors' departure windows, when a dock door has a reader;
- ``uploader`` / ``downloader``: sync-v1 (:mod:`cloud_sync`), when
  ``[cloud] url`` is set, over the store's side of its ports
  (:mod:`edge.store.sync_state`); picking wakes the uploader after each
  commit; a cloud's cancel takes the task's stops out of the tours in the
  page's transaction, and the downloader's notices (a task cancelled on
  active tours) then go to the PDAs' sockets; at start-up, stops of tasks
  no longer pickable are taken out of the tours before the API serves;
- ``alerts``: the alert rules (:mod:`edge.alerting`), every ``[alerts] interval_s``;
- ``systemd``: readiness, watchdog and stopping notifications
  (:mod:`edge.systemd`), when ``NOTIFY_SOCKET`` is set;
- ``maintenance``: WAL checkpoints and backlog alerts;
- ``peak`` (:mod:`edge.peak`): counts PDA scans and device reads; the
  maintenance tick's purge and compaction and the batcher's background
  improvement ask it whether to wait.

Nothing runs until :meth:`Daemon.run`; the store is closed (and its WAL
checkpointed) when the supervisor has stopped every component.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry

from cloud_sync.client import SyncClient
from cloud_sync.downloader import Downloader
from cloud_sync.metrics import SyncMetrics
from cloud_sync.uploader import Uploader
from devices.drivers.zpl_printer import ZplPrinterDriver
from devices.errors import DeviceError, PrinterFaultError
from devices.events import DeviceRole, ScanEvent, TagPresenceEvent, TagReadEvent
from devices.printer.status import PrinterStatus
from edge.alerting import AlertEngine
from edge.alerting.engine import printer_ids
from edge.api import HUB, ApiServer, create_app
from edge.api.app import DEVICE_STATES, SCAN_HOURS
from edge.config import Config
from edge.daemon import Component, Supervisor
from edge.device_supervisor import DeviceSupervisor
from edge.disk import DiskWatch
from edge.maintenance import Maintenance, RetentionCollector
from edge.masterdata import Notice, apply_changes
from edge.metrics import DaemonCollector, exposition, set_sync_backlog
from edge.peak import PeakGuard
from edge.picking import PickingService
from edge.picking.model import CartSettings
from edge.picking.proposer import CartProposer
from edge.picking.tours import Planner
from edge.shipping import sscc
from edge.shipping.inbox import PRINTER_DRIVER, FloorInbox
from edge.shipping.labels import PrinterPort, PrintError
from edge.shipping.service import PackingService, Station
from edge.store import Store
from edge.store.sync_state import StoreChangeSink, StoreOutbox
from edge.store.syncmark import SyncMark
from edge.systemd import Notifier, ServiceNotifier

log = logging.getLogger(__name__)

#: device events that count as inflow for peak protection (scans and tag reads)
INFLOW = (ScanEvent, TagReadEvent, TagPresenceEvent)


class DevicePrinters:
    """The label printers among the devices, as :class:`edge.shipping.labels.PrinterPort`."""

    def __init__(self, devices: DeviceSupervisor) -> None:
        self.devices = devices

    async def send(self, printer: str, job: bytes) -> None:
        driver = self.devices.drivers.get(printer)
        if not isinstance(driver, ZplPrinterDriver):
            raise PrintError(f"{printer} is not a label printer")
        try:
            await driver.print_job(job)
        except PrinterFaultError as exc:
            held = " (it holds the job: it prints once the fault is cleared)" if exc.sent else ""
            raise PrintError(f"printer {printer}: {exc}{held}") from exc
        except DeviceError as exc:
            raise PrintError(f"printer {printer}: {exc}") from exc

    def states(self) -> dict[str, tuple[bool, PrinterStatus | None]]:
        """(connected, last ``~HS`` status) of each label printer, for /metrics."""
        return {
            device: (driver.stats.connected, driver.last_status)
            for device, driver in self.devices.drivers.items()
            if isinstance(driver, ZplPrinterDriver)
        }


class DockTicker:
    """Checks every few seconds for shipments whose cartons did not all leave
    within the window (:meth:`FloorInbox.check_departures`)."""

    name = "dock"

    def __init__(self, inbox: FloorInbox, interval_s: float = 5.0) -> None:
        self.inbox = inbox
        self.interval_s = interval_s

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.inbox.check_departures()


class _LatePrinters:
    """The printers port handed to packing before the device supervisor exists."""

    devices: DevicePrinters | None = None

    async def send(self, printer: str, job: bytes) -> None:
        if self.devices is None:
            raise PrintError("no devices are configured on this box")
        await self.devices.send(printer, job)


def packing_service(
    cfg: Config, store: Store, *, printers: PrinterPort | None, on_commit: Callable[[], None] | None
) -> PackingService | None:
    """The pack stations the devices name (``role = "pack_station"``, ``bound_to``
    the station), each with its printer (driver ``zpl-printer``); None when none."""
    stations: dict[str, Station] = {}
    for spec in cfg.devices:
        if spec.role is DeviceRole.PACK_STATION and spec.bound_to:
            station = stations.setdefault(spec.bound_to, Station(spec.bound_to))
            if spec.driver == PRINTER_DRIVER:
                stations[spec.bound_to] = Station(spec.bound_to, printer=spec.id)
            else:
                stations[spec.bound_to] = station
    if not stations:
        return None
    ship = cfg.shipping
    return PackingService(
        store,
        allocate=sscc.Allocator(ship),
        printers=printers,
        stations=stations,
        box_id=cfg.box.id,
        label_required=ship.label_required,
        cart_labels=ship.cart_labels,
        door_of=dict(ship.carrier_doors),
        default_door=ship.door or None,
        on_commit=on_commit,
    )


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


def sync_client(cfg: Config) -> SyncClient | None:
    """The sync-v1 client of ``[cloud]`` and ``[box]``; None when sync is off
    (no ``cloud.url`` or no ``box.secret_file``)."""
    secret = cfg.box_secret()
    if not cfg.cloud.url or secret is None:
        return None
    if cfg.cloud.url.startswith("http://") and not _loopback(cfg.cloud.url):
        # signed, so not forgeable, but readable by anyone on the path (docs/security.md)
        log.warning("the cloud link %s is plain HTTP, not TLS: use https://", cfg.cloud.url)
    return SyncClient(
        cfg.cloud.url,
        cfg.box.id,
        secret,
        timeout_s=cfg.cloud.timeout_s,
        ca_file=cfg.file_path("cloud.ca_file"),
    )


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uploader(cfg: Config, store: Store, client: SyncClient, **kwargs: Any) -> Uploader:
    """The uploader of ``store``'s outbox, as ``[cloud]`` configures it."""
    c = cfg.cloud
    return Uploader(
        StoreOutbox(store),
        client,
        batch_max_events=c.batch_max_events,
        batch_max_bytes=c.batch_max_bytes,
        backoff_max_s=c.backoff_max_s,
        retention_days=c.retention_days,
        **kwargs,
    )


def downloader(
    cfg: Config,
    store: Store,
    client: SyncClient,
    *,
    planner: Planner | None = None,
    **kwargs: Any,
) -> Downloader[list[Notice]]:
    """The downloader of master data and tasks into ``store``, as ``[cloud]``
    configures it; what it applies returns the notices for the PDAs. A cancel
    takes the task's stops out of the tours in the page's transaction and
    re-routes them with ``planner`` (the picking service's; by default one of
    the configured layout)."""
    planner = planner if planner is not None else Planner(cfg.layout_dict())
    return Downloader(
        StoreChangeSink(store, functools.partial(apply_changes, planner=planner)),
        client,
        pull_interval_s=cfg.cloud.pull_interval_s,
        backoff_max_s=cfg.cloud.backoff_max_s,
        **kwargs,
    )


def check_copy(store: Store) -> None:
    """Start-up hook, before anything is written or sent: a database restored
    from a backup or copied (its sync mark does not match it) seals its epoch
    and new events go to a new one (:mod:`edge.store.syncmark`). A mark that
    cannot be written is logged here; the uploader then refuses to send and
    alerts."""
    try:
        SyncMark(store).reconcile()
    except OSError as exc:
        log.error("cannot read or write the sync mark beside %s: %s", store.path, exc)


def cart_settings(cfg: Config) -> CartSettings:
    """The zone's ``[carts]`` as picking sees them."""
    c = cfg.carts
    return CartSettings(
        totes=c.totes,
        units=c.units,
        confirm_put=c.confirm_put,
        tote_pattern=c.tote_pattern,
        cart_pattern=c.cart_pattern,
    )


def build_daemon(cfg: Config, store: Store | None = None) -> Daemon:
    """Build every component the configuration asks for (nothing runs yet)."""
    store = store if store is not None else open_store(cfg)
    check_copy(store)
    parts: dict[str, Any] = {}
    components: list[Component] = []

    up: Uploader | None = None
    client = sync_client(cfg)
    registry = CollectorRegistry()
    sync_metrics: SyncMetrics | None = None
    if client is not None:
        sync_metrics = SyncMetrics(registry)
        up = uploader(cfg, store, client, metrics=sync_metrics)
        parts["uploader"] = up

    # peak protection: scans and device reads are counted; non-core work asks it
    p = cfg.peak
    peak = PeakGuard(
        rate_per_s=p.rate_per_s, window_s=p.window_s, leave_ratio=p.leave_ratio, enabled=p.enabled
    )
    registry.register(peak)
    parts["peak"] = peak
    # carts: the online batcher proposes which orders a START takes, and
    # improves its proposals in a worker process between starts
    proposer = (
        CartProposer(store, cfg.layout_dict(), cfg.carts, defer=peak.defer)
        if cfg.carts.enabled
        else None
    )
    picking = PickingService(
        store,
        cfg.layout_dict(),
        on_commit=up.notify if up is not None else None,
        carts=cart_settings(cfg),
        proposer=proposer.propose if proposer is not None else None,
        zero_checks=cfg.floor.zero_checks,
    )
    picking.on_scan = peak.note
    if proposer is not None:
        parts["proposer"] = proposer
        components.append(proposer)
    # Before anything serves: stops of tasks cancelled while a crash (or an
    # older version) kept them in a tour leave it now.
    picking.withdraw_cancelled()

    def render_metrics() -> bytes:
        if sync_metrics is not None:
            set_sync_backlog(sync_metrics, store)  # backlog gauges are read at scrape time
        return exposition(registry)

    notify = up.notify if up is not None else None
    printers = _LatePrinters()
    packing = packing_service(cfg, store, printers=printers, on_commit=notify)
    if packing is not None:
        # the configured SSCC range, checked against what the box handed out
        # (a range that would reuse a serial stops the start with a clear error)
        store.run(lambda tx: sscc.configure(tx, cfg.shipping))
    token = cfg.secrets.get("api.metrics_token_file")
    app = create_app(
        store,
        cfg,
        picking=picking,
        packing=packing,
        metrics_exposition=render_metrics,
        metrics_token=token.reveal() if token is not None else None,
    )
    api = ApiServer(app, cfg)
    parts.update(picking=picking, app=app, api=api)
    components.append(api)
    # under systemd (Type=notify): READY=1 once the API serves, the watchdog's
    # pings while the store's writer answers, STOPPING=1 (edge.systemd)
    notifier = Notifier.from_environment()
    if notifier.enabled:
        parts["systemd"] = ServiceNotifier(notifier, store=store, api=api)
        components.append(parts["systemd"])

    if client is not None and up is not None:
        hub = app[HUB]

        async def wipe() -> None:
            # an erasure is committed: its old values leave the WAL file too
            await asyncio.to_thread(parts["maintenance"].wipe_wal)

        def deliver(notices: list[Notice]) -> Coroutine[Any, Any, None] | None:
            # after the commit: the cancel itself is already in the tables
            if notices:
                hub.deliver(notices)
            return wipe() if any(n.kind == "erased" for n in notices) else None

        down = downloader(
            cfg, store, client, planner=picking.planner, on_applied=deliver, metrics=sync_metrics
        )
        parts["downloader"] = down
        components += [up, down]
    else:
        log.info("no [cloud] url: confirmed facts stay in the outbox until one is set")

    devices: DeviceSupervisor | None = None
    inbox = FloorInbox(
        store,
        cfg.devices,
        packing=None,
        departure_window_s=cfg.shipping.departure_window_s,
        on_commit=notify,
    )
    inbox.packing = packing
    if packing is not None:
        packing.printer_state = inbox.states.get
    inbox.listeners.append(lambda event: peak.note() if isinstance(event, INFLOW) else None)
    parts["device_events"] = inbox
    parts["packing"] = packing
    if cfg.devices:
        devices = DeviceSupervisor(
            cfg.devices, mqtt=cfg.mqtt_settings(), on_event=inbox, store=store
        )
        parts["devices"] = devices
        components.append(devices)
    if devices is not None:
        printers.devices = DevicePrinters(devices)
        app[DEVICE_STATES] = devices.snapshot  # the dashboard, until the devices table has rows
    if any(s.role is DeviceRole.DOCK_DOOR for s in cfg.devices):
        components.append(DockTicker(inbox))

    maintenance = Maintenance(
        store,
        interval_s=cfg.store.checkpoint_interval_s,
        warn_backlog=cfg.store.warn_backlog,
        retention_days=cfg.store.retention_days,
        shipments_days=cfg.retention.shipments_days,
        pickers_days=cfg.retention.pickers_days,
        alerts_days=cfg.retention.alerts_days,
        purge_every_s=cfg.retention.purge_interval_s,
        put_back_alert_s=cfg.floor.put_back_alert_s,
        defer=peak.defer,
        scan_hours=app[SCAN_HOURS],
    )
    parts["maintenance"] = maintenance
    components.append(maintenance)
    registry.register(RetentionCollector(maintenance))

    # the alert rules (edge.alerting): device events feed the printers' and
    # readers' figures; peak mode holds the low-priority rules back
    alerting = AlertEngine(
        store,
        cfg.alerts,
        devices=devices.snapshot if devices is not None else None,
        printers=printer_ids(cfg.devices),
        on_commit=notify,
        defer=peak.defer,
    )
    inbox.listeners.append(alerting.observe)
    parts["alerts"] = alerting
    components.append(alerting)

    async def close() -> None:
        if client is not None:
            await client.close()
        started = time.monotonic()
        store.close()
        log.info("store closed in %.0f ms", (time.monotonic() - started) * 1e3)

    # free space of the store's filesystem, sampled for its rate (metrics, alerts)
    disk = DiskWatch(store.path.parent)
    parts["disk"] = disk
    components.append(disk)
    supervisor = Supervisor(components, on_stopped=[close])
    registry.register(
        DaemonCollector(
            store=store,
            supervisor=supervisor,
            devices=parts["devices"].snapshot if "devices" in parts else None,
            floor=inbox.snapshot,
            printers=printers.devices.states if printers.devices is not None else None,
            disk=disk,
        )
    )
    parts["metrics_registry"] = registry
    return Daemon(cfg, store, supervisor, parts)
