"""Typed events that device drivers emit.

Every event is a frozen, slotted dataclass: drivers build them, the edge consumes
them, nobody mutates them. Times come in two flavours and are never used for
correctness: ``reader_time`` is the device's own clock (unix seconds, float) where
the device reports one, ``received_at`` is the box's wall clock on arrival.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DeviceRole(enum.StrEnum):
    """Where a device stands on the floor; the edge decides what its events mean."""

    PACK_STATION = "pack_station"
    DOCK_DOOR = "dock_door"
    PICK_ZONE = "pick_zone"


@dataclass(frozen=True, slots=True)
class ScanEvent:
    """One barcode read by a fixed scanner.

    ``code`` is the data with the AIM symbology identifier removed and GS (0x1D)
    separators kept; ``symbology`` is the AIM identifier (``"]C1"``) when the
    scanner sent one.
    """

    device_id: str
    code: str
    symbology: str | None
    received_at: float
    #: the identity of the message it came from, for the consumer's dedup of a
    #: redelivered message (MQTT QoS 1 after a crash between the consumer's
    #: commit and the acknowledgement); None where the source never redelivers
    #: (serial). See devices/drivers/mqtt_common.py for what it is made of.
    key: str | None = None


@dataclass(frozen=True, slots=True)
class TagReadEvent:
    """One raw RFID tag read, as the reader reported it (before smoothing)."""

    device_id: str
    epc_hex: str  # upper-case hex of the EPC bank's EPC bytes
    antenna: int | None  # 1-based, as printed on the reader
    rssi_dbm: float | None
    reader_time: float | None
    received_at: float
    reads: int = 1  # a Zebra report may stand for several reads


class PresenceKind(enum.StrEnum):
    SEEN = "seen"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class TagPresenceEvent:
    """A smoothed tag event: ``seen`` once when a tag enters a reader's field,
    ``gone`` once after it has been quiet for the configured window."""

    device_id: str
    epc_hex: str
    kind: PresenceKind
    antenna: int | None  # set when smoothing is keyed per antenna
    at: float  # reader time of the first (seen) or last (gone) read


class DeviceState(enum.StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    OVERFLOW = "overflow"  # the device dropped events on its side
    ANTENNA_CONNECTED = "antenna_connected"
    ANTENNA_DISCONNECTED = "antenna_disconnected"
    STATUS = "status"


@dataclass(frozen=True, slots=True)
class DeviceStateEvent:
    """Something about the device rather than what it read."""

    device_id: str
    state: DeviceState
    detail: str
    received_at: float


DeviceEvent = ScanEvent | TagReadEvent | TagPresenceEvent | DeviceStateEvent
