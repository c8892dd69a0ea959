"""Generic JSON scanner dialect (docs/devices-mqtt.md): examples and fault modes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.dialects import scanner_json
from devices.errors import FrameError
from devices.events import ScanEvent


def parse(payload: bytes) -> scanner_json.ParseResult:
    return scanner_json.parse(payload, device_id="s1", received_at=9.0)


def test_documented_example_with_gs_separator() -> None:
    payload = b'{"code": "0109501101020917\\u001d10ABC", "symbology": "]C1", "ts": 1767600000.25}'
    result = parse(payload)
    assert result.events == (ScanEvent("s1", "0109501101020917\x1d10ABC", "]C1", 9.0),)
    assert result.reader_time == 1767600000.25


def test_minimal_and_array_and_iso_ts_and_extra_members() -> None:
    result = parse(
        b'[{"code":"4006381333931"},'
        b'{"code":"ABC-1","symbology":"]A0","ts":"2026-01-05T08:00:00+01:00","battery":80}]'
    )
    assert result.events == (
        ScanEvent("s1", "4006381333931", None, 9.0),
        ScanEvent("s1", "ABC-1", "]A0", 9.0),
    )
    assert result.reader_time == 1767600000.0 - 3600


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"code":""}', "non-empty"),
        (b'{"code":12}', "non-empty"),
        (b'{"symbology":"]C1"}', "non-empty"),
        (b'{"code":"x","symbology":"C1"}', "AIM"),
        (b'{"code":"x","ts":true}', "ts"),
        (b'{"code":"x","ts":"noon"}', "ISO 8601"),
        (b'{"code":"' + b"9" * 5000 + b'"}', "exceeds"),
        (b'{"code":"abc"', "invalid JSON"),
    ],
)
def test_malformed(payload: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse(payload)


@given(st.binary(max_size=200))
def test_arbitrary_bytes(raw: bytes) -> None:
    with contextlib.suppress(FrameError):
        parse(raw)
