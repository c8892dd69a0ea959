"""Impinj IoT Device Interface (R700/R720, firmware ≥ 7.1) ``ReaderEvent`` parser.

Input: one MQTT payload holding one ``ReaderEvent`` object or a JSON array of
them. Output: :class:`~devices.events.TagReadEvent` for ``tagInventory`` and
:class:`~devices.events.DeviceStateEvent` for ``inventoryStatus``,
``antennaConnected``, ``antennaDisconnected`` and ``overflow`` (the reader purged
events: an alert-worthy :attr:`~devices.events.DeviceState.OVERFLOW`). Other
well-formed event types are reported in ``ParseResult.unknown``.

The EPC arrives base64-encoded in ``epc`` (the reader's default) and as
``epcHex`` only when that option is enabled on the reader; ``epc_format``
chooses which to trust. ``antennaPort`` is 1-based, ``peakRssiCdbm`` is in
centi-dBm, timestamps carry up to nine fractional digits.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from devices.dialects import ParseResult
from devices.dialects._common import (
    MAX_EPC_HEX,
    MAX_PAYLOAD_BYTES,
    as_object,
    as_records,
    epc_from_hex,
    load_json,
    opt_int,
    opt_number,
    parse_timestamp,
)
from devices.errors import FrameError
from devices.events import DeviceEvent, DeviceState, DeviceStateEvent, TagReadEvent

EpcFormat = Literal["auto", "base64", "hex"]
EPC_FORMATS: tuple[str, ...] = ("auto", "base64", "hex")

_STATE_TYPES = {
    "inventoryStatus": DeviceState.STATUS,
    "antennaConnected": DeviceState.ANTENNA_CONNECTED,
    "antennaDisconnected": DeviceState.ANTENNA_DISCONNECTED,
    "overflow": DeviceState.OVERFLOW,
}


def _epc_from_base64(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise FrameError("epc must be a non-empty base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError(f"epc {value[:40]!r} is not base64") from exc
    if not raw or len(raw) * 2 > MAX_EPC_HEX:
        raise FrameError(f"epc decodes to {len(raw)} bytes")
    return raw.hex().upper()


def _epc(body: dict[str, Any], epc_format: EpcFormat) -> str:
    if epc_format == "hex" or (epc_format == "auto" and "epcHex" in body):
        if "epcHex" not in body:
            raise FrameError("epcHex missing (is epcHex enabled on the reader?)")
        return epc_from_hex(body["epcHex"], field="epcHex")
    if "epc" not in body:
        raise FrameError("tagInventoryEvent without epc")
    return _epc_from_base64(body["epc"])


def _state_detail(event_type: str, body: dict[str, Any]) -> str:
    if event_type == "inventoryStatus":
        status = body.get("status")
        if not isinstance(status, str):
            raise FrameError("inventoryStatusEvent.status must be a string")
        return f"inventory {status}"
    if event_type in ("antennaConnected", "antennaDisconnected"):
        port = opt_int(body, "antennaPort", minimum=1)
        if port is None:
            raise FrameError(f"{event_type}Event without antennaPort")
        return f"antenna {port}"
    # overflow: the reader's event buffer filled and it purged events.
    count = opt_int(body, "count", minimum=0)
    purged = f"{count} events" if count is not None else "events"
    return f"reader purged {purged} (buffer overflow)"


def parse(
    payload: bytes,
    *,
    device_id: str,
    received_at: float,
    epc_format: EpcFormat = "auto",
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> ParseResult:
    """Parse one Impinj IoT Device Interface payload (object or array)."""
    records = as_records(load_json(payload, max_bytes=max_bytes), what="ReaderEvent")
    events: list[DeviceEvent] = []
    unknown: list[str] = []
    latest: float | None = None
    for record in records:
        event_type = record.get("eventType")
        if not isinstance(event_type, str) or not event_type:
            raise FrameError("ReaderEvent without eventType")
        reader_time = parse_timestamp(record.get("timestamp"))
        latest = reader_time if latest is None else max(latest, reader_time)
        body_key = f"{event_type}Event"
        if event_type == "tagInventory":
            body = as_object(record.get(body_key), what=body_key)
            cdbm = opt_number(body, "peakRssiCdbm")
            events.append(
                TagReadEvent(
                    device_id=device_id,
                    epc_hex=_epc(body, epc_format),
                    antenna=opt_int(body, "antennaPort", minimum=1),
                    rssi_dbm=cdbm / 100 if cdbm is not None else None,
                    reader_time=reader_time,
                    received_at=received_at,
                )
            )
        elif event_type in _STATE_TYPES:
            body = as_object(record.get(body_key, {}), what=body_key)
            events.append(
                DeviceStateEvent(
                    device_id=device_id,
                    state=_STATE_TYPES[event_type],
                    detail=_state_detail(event_type, body),
                    received_at=received_at,
                )
            )
        else:
            unknown.append(event_type[:64])
    return ParseResult(events=tuple(events), unknown=tuple(unknown), reader_time=latest)
