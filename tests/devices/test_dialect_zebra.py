"""Zebra IoT Connector dialect: vendor-shaped vectors and fault modes.

Vectors follow the tag data event and management event examples of Zebra's
"IoT Connector" documentation for FX7500/FX9600/ATR7000
(https://zebradevs.github.io/rfid-ziotc-docs/ → "Data Event Format"; sample
topics ``zebra/<reader>/data`` and ``zebra/<reader>/events``): lowercase
``idHex``, ``antenna``, ``peakRssi`` in dBm, ``reads``, ``type`` echoing the
operating mode and a colon-less UTC offset.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.dialects import zebra
from devices.errors import FrameError
from devices.events import DeviceState, DeviceStateEvent, TagReadEvent

DOC_DATA_EVENT = (
    b'{"data":{"CRC":"3a0b","PC":"3000","antenna":1,"channel":915.25,"eventNum":1,'
    b'"format":"epc","idHex":"e20000123456789012345678","peakRssi":-54,"phase":0,'
    b'"reads":3},"timestamp":"2020-06-23T11:18:15.826-0700","type":"CUSTOM"}'
)
DOC_HEARTBEAT = (
    b'{"data":{"radioConnection":"connected","temperature":42,"uptime":"0d 01:02:03"},'
    b'"timestamp":"2020-06-23T11:18:15.826+0000","type":"heartbeat"}'
)


def data(payload: bytes) -> zebra.ParseResult:
    return zebra.parse_data(payload, device_id="z1", received_at=5.0)


def test_documented_data_event() -> None:
    result = data(DOC_DATA_EVENT)
    assert result.events == (
        TagReadEvent(
            device_id="z1",
            epc_hex="E20000123456789012345678",
            antenna=1,
            rssi_dbm=-54.0,
            reader_time=pytest.approx(1592936295.826),  # type: ignore[arg-type]
            received_at=5.0,
            reads=3,
        ),
    )


def test_offsets_without_colon() -> None:
    base = json.loads(DOC_DATA_EVENT)
    utc = dict(base, timestamp="2020-06-23T18:18:15.826+0000")
    (a,) = data(DOC_DATA_EVENT).events
    (b,) = data(json.dumps(utc).encode()).events
    assert isinstance(a, TagReadEvent) and isinstance(b, TagReadEvent)
    assert a.reader_time == pytest.approx(b.reader_time)
    central = dict(base, timestamp="2020-06-23T12:18:15.826-0600")
    (c,) = data(json.dumps(central).encode()).events
    assert isinstance(c, TagReadEvent) and c.reader_time == pytest.approx(b.reader_time)


def test_json_array_of_records() -> None:
    base = json.loads(DOC_DATA_EVENT)
    batch = [dict(base, data=dict(base["data"], idHex=f"{i:024x}", eventNum=i)) for i in range(50)]
    result = data(json.dumps(batch).encode())
    assert [e.epc_hex for e in result.events if isinstance(e, TagReadEvent)] == [
        f"{i:024X}" for i in range(50)
    ]


def test_simple_mode_minimal_record_defaults_to_one_read() -> None:
    payload = (
        b'{"data":{"eventNum":7,"format":"epc","idHex":"abcd"},'
        b'"timestamp":"2020-06-23T11:18:15+0000","type":"SIMPLE"}'
    )
    (event,) = data(payload).events
    assert isinstance(event, TagReadEvent)
    assert (event.antenna, event.rssi_dbm, event.reads) == (None, None, 1)


def test_unknown_mode_reported() -> None:
    payload = json.dumps(dict(json.loads(DOC_DATA_EVENT), type="TELEPORT")).encode()
    result = data(payload)
    assert result.events == () and result.unknown == ("TELEPORT",)


def test_management_event() -> None:
    result = zebra.parse_event(DOC_HEARTBEAT, device_id="z1", received_at=5.0)
    (event,) = result.events
    assert isinstance(event, DeviceStateEvent)
    assert event.state is DeviceState.STATUS
    assert event.detail.startswith("heartbeat ")
    assert '"temperature":42' in event.detail


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (DOC_DATA_EVENT[:50], "invalid JSON"),
        (b'"text"', "object or an array"),
        (b'{"data":{"idHex":"ab"},"type":"SIMPLE"}', "timestamp"),
        (b'{"data":{"idHex":"ab"},"timestamp":"2020-06-23T11:18:15.826+0000"}', "type"),
        (b'{"data":[],"timestamp":"2020-06-23T11:18:15+0000","type":"SIMPLE"}', "data must"),
        (
            b'{"data":{"idHex":"xyz1"},"timestamp":"2020-06-23T11:18:15+0000","type":"SIMPLE"}',
            "hex",
        ),
        (b'{"data":{},"timestamp":"2020-06-23T11:18:15+0000","type":"SIMPLE"}', "idHex"),
        (
            b'{"data":{"idHex":"ab","antenna":"1"},"timestamp":"2020-06-23T11:18:15+0000","type":"SIMPLE"}',
            "antenna",
        ),
        (
            b'{"data":{"idHex":"ab","reads":-1},"timestamp":"2020-06-23T11:18:15+0000","type":"SIMPLE"}',
            "reads",
        ),
        (
            b'{"data":{"idHex":"ab"},"timestamp":"2020-13-23T11:18:15+0000","type":"SIMPLE"}',
            "range",
        ),
    ],
)
def test_malformed_payloads_raise_frame_error(payload: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        data(payload)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_errors(raw: bytes) -> None:
    for parser in (zebra.parse_data, zebra.parse_event):
        with contextlib.suppress(FrameError):
            parser(raw, device_id="z1", received_at=0.0)
