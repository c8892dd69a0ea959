"""Helpers shared by the MQTT payload dialects: a size-capped JSON load and a
strict ISO 8601 timestamp parser.

Everything here is pure: bytes or strings in, values out, and
:class:`~devices.errors.FrameError` for anything malformed. Nothing here logs.
"""

from __future__ import annotations

import calendar
import json
import math
import re
from typing import Any

from devices.errors import FrameError

MAX_PAYLOAD_BYTES = 256 * 1024
"""Default cap on one MQTT payload. A reader batch of a few hundred tag reports
is ~100 KiB; anything far larger is a fault, and parsing it would stall the loop."""

MAX_EPC_HEX = 124  # EPC bank can hold up to 496 bits; longer is not an EPC

_TS = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})"
    r"(?:[.,](\d{1,9}))?"
    r"(Z|z|[+-]\d{2}:?\d{2})?"
)
_HEX = re.compile(r"[0-9A-Fa-f]+")


def load_json(payload: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Any:
    """Decode one JSON payload, refusing oversized, non-UTF-8 or invalid input."""
    if len(payload) > max_bytes:
        raise FrameError(f"payload of {len(payload)} bytes exceeds the {max_bytes}-byte cap")
    if not payload.strip():
        raise FrameError("empty payload")
    try:
        # Decode explicitly: json.loads(bytes) would also guess UTF-16/32.
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError(f"payload is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FrameError(f"invalid JSON at byte {exc.pos}: {exc.msg}") from exc
    except ValueError as exc:  # an integer of more digits than int() converts
        raise FrameError(f"invalid JSON: {exc}") from exc
    except RecursionError as exc:  # absurdly nested input
        raise FrameError("JSON nested too deeply") from exc


def parse_timestamp(value: object, *, field: str = "timestamp") -> float:
    """Unix seconds of an ISO 8601 timestamp as readers write them.

    Accepts up to nine fractional digits (Impinj), ``Z``, ``+hh:mm`` and the
    colon-less ``+hhmm`` / ``-0600`` offsets (Zebra). A timestamp without an
    offset is taken as UTC: reader times are informational and ordering, never
    wall-clock truth.
    """
    if not isinstance(value, str):
        raise FrameError(f"{field} must be a string, got {type(value).__name__}")
    m = _TS.fullmatch(value)
    if m is None:
        raise FrameError(f"{field} {value[:40]!r} is not an ISO 8601 timestamp")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        raise FrameError(f"{field} {value[:40]!r} is out of range")
    seconds = float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    frac = m.group(7)
    if frac:
        seconds += int(frac) / 10 ** len(frac)
    offset = m.group(8)
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds


def epc_from_hex(value: object, *, field: str) -> str:
    """Upper-case EPC hex from a reader's hex string (either case)."""
    if not isinstance(value, str) or not value:
        raise FrameError(f"{field} must be a non-empty hex string")
    if len(value) > MAX_EPC_HEX or len(value) % 2 or _HEX.fullmatch(value) is None:
        raise FrameError(f"{field} {value[:40]!r} is not an even-length hex EPC")
    return value.upper()


def opt_number(obj: dict[str, Any], key: str) -> float | None:
    """A finite numeric member or None; booleans, strings, integers beyond a
    double and ``1e999`` (which JSON reads as infinity) are malformed."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FrameError(f"{key} must be a number, got {type(value).__name__}")
    return finite(value, field=key)


def finite(value: int | float, *, field: str) -> float:
    """``value`` as a finite float; ``FrameError`` for infinities, NaN and
    integers too large for a double."""
    try:
        number = float(value)
    except OverflowError:
        raise FrameError(f"{field} is out of range") from None
    if not math.isfinite(number):
        raise FrameError(f"{field} must be a finite number")
    return number


def opt_int(obj: dict[str, Any], key: str, *, minimum: int | None = None) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameError(f"{key} must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise FrameError(f"{key} must be ≥ {minimum}, got {value}")
    return value


def as_object(value: object, *, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FrameError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def as_records(doc: object, *, what: str, max_records: int = 10_000) -> list[dict[str, Any]]:
    """One object or an array of objects, as a list."""
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list):
        if not doc:
            raise FrameError(f"empty {what} array")
        if len(doc) > max_records:
            raise FrameError(f"{what} array of {len(doc)} records exceeds {max_records}")
        return [as_object(item, what=f"{what} #{i}") for i, item in enumerate(doc)]
    raise FrameError(f"{what} must be an object or an array, got {type(doc).__name__}")
