"""Fixed devices' events into the workflows that own their places.

A device with a role and a ``bound_to`` (``[[devices]]``) serves one place:

- a scanner at a ``pack_station`` → :class:`~edge.shipping.service.PackingService`
  scans of that station (``bound_to`` names it);
- an RFID reader at a ``dock_door`` → :func:`edge.shipping.dock.on_tag` for
  that door, on each ``seen`` of a tag (the reader's reads smoothed by the
  driver); item tags (SGTIN) are counted, never confirmed;
- a ``zpl-printer`` at a station → its state (``~HS``), which the station
  shows.

:meth:`FloorInbox.__call__` is the device supervisor's ``on_event``: the driver
awaits it before it acknowledges an MQTT message, and every fact an event
confirms is committed before it returns — so a message is acknowledged only
after its commit. A message redelivered after a crash between the two confirms
nothing twice: a pack scan carries its message key (``ScanEvent.key``,
recorded in ``device_inbox`` in the scan's transaction); a departure is keyed
by the carton's SSCC, which departs once (:mod:`edge.shipping.dock`).

Events of a device with no place (no ``bound_to``) or a role without a
workflow here (``pick_zone``) are counted and kept for the dashboard only.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from common.faults import crash_point
from devices.codes.epc import decode_epc_info
from devices.driver import DeviceSpec
from devices.errors import CodeError
from devices.events import (
    DeviceEvent,
    DeviceRole,
    DeviceStateEvent,
    PresenceKind,
    ScanEvent,
    TagPresenceEvent,
)
from edge.shipping import dock
from edge.shipping.service import PackingService
from edge.store.db import Store, Transaction, now_ms

log = logging.getLogger(__name__)

PRINTER_DRIVER = "zpl-printer"


#: a reader's clock further than this from the box's is not believed
READER_CLOCK_SLACK_MS = 24 * 3_600_000


def read_time_ms(reader_at: float | None, box_now_ms: int) -> int:
    """When a tag was read: the reader's own time of its first read, so that a
    read redelivered after an outage is judged at the time it happened (a
    duplicate within the window, not a carton seen again much later); the
    box's clock when the reader gives no time or one too far from the box's."""
    if reader_at is None:
        return box_now_ms
    at = int(reader_at * 1000)
    return at if abs(at - box_now_ms) <= READER_CLOCK_SLACK_MS else box_now_ms


class FloorInbox:
    """Route device events by the device's role and place; see the module doc."""

    def __init__(
        self,
        store: Store,
        specs: Sequence[DeviceSpec],
        *,
        packing: PackingService | None,
        departure_window_s: float,
        on_commit: Callable[[], None] | None = None,
        keep: int = 50,
    ) -> None:
        self.store = store
        self.specs: Mapping[str, DeviceSpec] = {s.id: s for s in specs}
        self.packing = packing
        self.window_ms = int(departure_window_s * 1000)
        self.on_commit = on_commit
        #: the recent events of each device (the dashboard, the demo)
        self.recent: dict[str, collections.deque[DeviceEvent]] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        #: what each dock read led to, and items counted at portals
        self.outcomes: collections.Counter[str] = collections.Counter()
        #: the last state each device reported (printers: ready, paper out, …)
        self.states: dict[str, str] = {}
        self.listeners: list[Callable[[DeviceEvent], None]] = []
        self._keep = keep

    async def __call__(self, event: DeviceEvent) -> None:
        self.recent.setdefault(event.device_id, collections.deque(maxlen=self._keep)).append(event)
        self.counts[type(event).__name__] += 1
        spec = self.specs.get(event.device_id)
        if spec is not None and spec.bound_to:
            if isinstance(event, ScanEvent) and spec.role is DeviceRole.PACK_STATION:
                await self._pack_scan(spec, event)
            elif (
                isinstance(event, TagPresenceEvent)
                and spec.role is DeviceRole.DOCK_DOOR
                and event.kind is PresenceKind.SEEN
            ):
                await self._dock_read(spec, event)
        if isinstance(event, DeviceStateEvent):
            self.states[event.device_id] = event.detail or event.state.value
        for listener in self.listeners:
            listener(event)

    async def _pack_scan(self, spec: DeviceSpec, event: ScanEvent) -> None:
        station = spec.bound_to
        if self.packing is None or station is None or station not in self.packing.stations:
            self.counts["unrouted_scan"] += 1
            return
        packer = self._packer_at(station) or f"device:{spec.id}"
        message = (spec.id, event.key) if event.key is not None else None
        outcome = await self.packing.scan(station, event.code, packer=packer, message=message)
        crash_point("after_pack_commit_before_ack")  # tests only: inert unless armed
        if outcome.replayed:
            self.counts["redelivered_scan"] += 1
            log.info("pack scan of %s already confirmed (a redelivered message)", spec.id)

    def _packer_at(self, station: str | None) -> str | None:
        row = (
            self.store.reader()
            .execute("SELECT packer FROM pack_stations WHERE station = ?", (station,))
            .fetchone()
        )
        return None if row is None or row[0] is None else str(row[0])

    async def _dock_read(self, spec: DeviceSpec, event: TagPresenceEvent) -> None:
        door = spec.bound_to
        assert door is not None
        try:
            info = decode_epc_info(event.epc_hex)
        except (CodeError, ValueError):
            self.outcomes["undecodable_tag"] += 1
            return

        def fn(tx: Transaction) -> tuple[dock.DockOutcome, int]:
            outcome = dock.on_tag(
                tx,
                door=door,
                reader=spec.id,
                scheme=info.scheme,
                key=info.gs1_key,
                filter_value=info.filter,
                now_ms=read_time_ms(event.at, now_ms()),
                window_ms=self.window_ms,
            )
            return outcome, len(tx.events)

        outcome, events = await self.store.write(fn)
        self.outcomes[outcome.value] += 1
        if events and self.on_commit is not None:
            self.on_commit()

    async def check_departures(self) -> list[str]:
        """Shipments whose cartons were not all seen in the window after the
        first (alerts raised now); the daemon calls this every few seconds."""

        def fn(tx: Transaction) -> tuple[list[str], int]:
            late = dock.check_windows(tx, now_ms=now_ms(), window_ms=self.window_ms)
            return late, len(tx.events)

        late, events = await self.store.write(fn)
        if events and self.on_commit is not None:
            self.on_commit()
        return late

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "dock": dict(self.outcomes),
            "states": dict(self.states),
        }
