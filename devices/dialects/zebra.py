"""Zebra IoT Connector (FX7500 / FX9600 / ATR7000) payload parser.

Input: one MQTT payload holding one ``{"data": {…}, "timestamp", "type"}``
record or a JSON array of them. On the *data* topic every record is a tag
report: ``idHex`` (lowercase hex EPC), and by operating mode ``antenna``,
``peakRssi`` (dBm), ``reads`` (count since the last report) → one
:class:`~devices.events.TagReadEvent`. ``type`` echoes the operating mode; a
record of a mode PickEdge does not know is reported in ``ParseResult.unknown``.
On the *events* (management) topic every record becomes a
:class:`~devices.events.DeviceStateEvent` with state ``status``. Timestamps carry
colon-less offsets (``+0000``, ``-0600``).
"""

from __future__ import annotations

import json
from typing import Any

from devices.dialects import ParseResult
from devices.dialects._common import (
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

OPERATING_MODES = frozenset(
    {"SIMPLE", "INVENTORY", "PORTAL", "CONVEYOR", "DIRECTIONALITY", "CUSTOM"}
)


def _envelope(record: dict[str, Any]) -> tuple[str, float, dict[str, Any]]:
    kind = record.get("type")
    if not isinstance(kind, str) or not kind:
        raise FrameError("record without type")
    reader_time = parse_timestamp(record.get("timestamp"))
    return kind, reader_time, as_object(record.get("data"), what="data")


def parse_data(
    payload: bytes, *, device_id: str, received_at: float, max_bytes: int = MAX_PAYLOAD_BYTES
) -> ParseResult:
    """Parse one payload of the reader's data topic (tag reports)."""
    records = as_records(load_json(payload, max_bytes=max_bytes), what="tag data")
    events: list[DeviceEvent] = []
    unknown: list[str] = []
    latest: float | None = None
    for record in records:
        kind, reader_time, data = _envelope(record)
        latest = reader_time if latest is None else max(latest, reader_time)
        if kind.upper() not in OPERATING_MODES:
            unknown.append(kind[:64])
            continue
        reads = opt_int(data, "reads", minimum=0)
        events.append(
            TagReadEvent(
                device_id=device_id,
                epc_hex=epc_from_hex(data.get("idHex"), field="idHex"),
                antenna=opt_int(data, "antenna", minimum=1),
                rssi_dbm=opt_number(data, "peakRssi"),
                reader_time=reader_time,
                received_at=received_at,
                reads=reads if reads else 1,
            )
        )
    return ParseResult(events=tuple(events), unknown=tuple(unknown), reader_time=latest)


def parse_event(
    payload: bytes, *, device_id: str, received_at: float, max_bytes: int = MAX_PAYLOAD_BYTES
) -> ParseResult:
    """Parse one payload of the reader's management-events topic."""
    records = as_records(load_json(payload, max_bytes=max_bytes), what="management event")
    events: list[DeviceEvent] = []
    latest: float | None = None
    for record in records:
        kind, reader_time, data = _envelope(record)
        latest = reader_time if latest is None else max(latest, reader_time)
        detail = json.dumps(data, separators=(",", ":"), sort_keys=True)
        events.append(
            DeviceStateEvent(
                device_id=device_id,
                state=DeviceState.STATUS,
                detail=f"{kind[:64]} {detail[:200]}",
                received_at=received_at,
            )
        )
    return ParseResult(events=tuple(events), reader_time=latest)
