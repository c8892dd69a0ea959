"""PickEdge's generic JSON dialect for barcode scanners publishing over MQTT.

One message is one scan object or a JSON array of them::

    {"code": "0109501101020917\\u001d10ABC", "symbology": "]C1", "ts": 1767600000.25}

``code`` (required, 1–4096 characters) is the data *without* the AIM symbology
identifier, GS separators kept (``\\u001d`` in JSON); ``symbology`` (optional)
is the AIM identifier such as ``]C1``; ``ts`` (optional) is the scanner's clock,
unix seconds or ISO 8601 — informational only. Other members are ignored so a
scanner may add its own. Output: :class:`~devices.events.ScanEvent`.
"""

from __future__ import annotations

import re

from devices.dialects import ParseResult
from devices.dialects._common import (
    MAX_PAYLOAD_BYTES,
    as_records,
    finite,
    load_json,
    parse_timestamp,
)
from devices.errors import FrameError
from devices.events import DeviceEvent, ScanEvent

MAX_CODE_CHARS = 4096
_AIM = re.compile(r"\][A-Za-z][0-9A-Za-z]")


def parse(
    payload: bytes, *, device_id: str, received_at: float, max_bytes: int = MAX_PAYLOAD_BYTES
) -> ParseResult:
    """Parse one generic-JSON scanner payload."""
    records = as_records(load_json(payload, max_bytes=max_bytes), what="scan", max_records=1000)
    events: list[DeviceEvent] = []
    latest: float | None = None
    for record in records:
        code = record.get("code")
        if not isinstance(code, str) or not code:
            raise FrameError("scan without a non-empty string code")
        if len(code) > MAX_CODE_CHARS:
            raise FrameError(f"code of {len(code)} characters exceeds {MAX_CODE_CHARS}")
        symbology = record.get("symbology")
        if symbology is not None and (
            not isinstance(symbology, str) or _AIM.fullmatch(symbology) is None
        ):
            raise FrameError(f"symbology {str(symbology)[:20]!r} is not an AIM identifier")
        ts = record.get("ts")
        if ts is not None:
            if isinstance(ts, bool):
                raise FrameError("ts must be unix seconds or an ISO 8601 string")
            stamp = (
                finite(ts, field="ts")
                if isinstance(ts, int | float)
                else parse_timestamp(ts, field="ts")
            )
            latest = stamp if latest is None else max(latest, stamp)
        events.append(
            ScanEvent(device_id=device_id, code=code, symbology=symbology, received_at=received_at)
        )
    return ParseResult(events=tuple(events), reader_time=latest)
