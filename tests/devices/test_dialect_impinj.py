"""Impinj IoT Device Interface dialect: vendor-shaped vectors and fault modes.

Vectors follow the ReaderEvent examples of Impinj's "IoT Device Interface"
reference (R700 firmware 7.x, Event types: tagInventory, inventoryStatus,
antennaConnected/antennaDisconnected, overflow; https://support.impinj.com →
"Impinj IoT Device Interface Reference", section "Streaming events") and the
example in shared/reference/device-formats.md. The first vector carries both
``epc`` (base64) and ``epcHex`` for the same tag as the documentation's sample
does when ``epcHex`` is enabled.
"""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.dialects import impinj
from devices.errors import FrameError
from devices.events import DeviceState, DeviceStateEvent, TagReadEvent

DOC_TAG_INVENTORY = (
    b'{"timestamp":"2021-01-27T22:45:03.413025123Z","hostname":"impinj-13-d8-9b",'
    b'"eventType":"tagInventory","tagInventoryEvent":{"epc":"MAAAAAAAAAAAAAAB",'
    b'"epcHex":"300000000000000000000001","antennaPort":1,"antennaName":"",'
    b'"peakRssiCdbm":-4500,"frequency":926750,"transmitPowerCdbm":3000,'
    b'"lastSeenTime":"2021-01-27T22:45:03.412993Z","phaseAngle":38.67}}'
)
SHARED_REF_EXAMPLE = json.dumps(
    {
        "timestamp": "2026-01-05T08:00:00.123456789Z",
        "hostname": "impinj-aa-bb-cc",
        "eventType": "tagInventory",
        "tagInventoryEvent": {
            "epc": base64.b64encode(bytes.fromhex("3034257BF7194E4000001A85")).decode(),
            "antennaPort": 2,
            "peakRssiCdbm": -6150,
            "frequency": 920250,
            "transmitPowerCdbm": 3000,
        },
    }
).encode()


def parse(payload: bytes, **kw: object) -> impinj.ParseResult:
    return impinj.parse(payload, device_id="r1", received_at=100.0, **kw)  # type: ignore[arg-type]


def test_documented_tag_inventory_event() -> None:
    result = parse(DOC_TAG_INVENTORY)
    (event,) = result.events
    assert event == TagReadEvent(
        device_id="r1",
        epc_hex="300000000000000000000001",
        antenna=1,
        rssi_dbm=-45.0,
        reader_time=pytest.approx(1611787503.413025123),  # type: ignore[arg-type]
        received_at=100.0,
    )
    assert result.unknown == ()
    assert result.reader_time == pytest.approx(1611787503.413025)


def test_shared_reference_example_base64_epc_and_nine_digit_fraction() -> None:
    (event,) = parse(SHARED_REF_EXAMPLE).events
    assert isinstance(event, TagReadEvent)
    assert event.epc_hex == "3034257BF7194E4000001A85"
    assert event.antenna == 2
    assert event.rssi_dbm == -61.5
    # 2026-01-05T08:00:00Z = 1767600000
    assert event.reader_time == pytest.approx(1767600000.123456789, abs=1e-6)


def test_array_of_reader_events_is_accepted() -> None:
    one = json.loads(SHARED_REF_EXAMPLE)
    two = dict(one, timestamp="2026-01-05T08:00:01Z")
    result = parse(json.dumps([one, two]).encode())
    assert len(result.events) == 2
    assert result.reader_time == 1767600001.0


@pytest.mark.parametrize(
    ("event_type", "body", "state", "detail"),
    [
        ("inventoryStatus", {"status": "running"}, DeviceState.STATUS, "inventory running"),
        ("antennaConnected", {"antennaPort": 3}, DeviceState.ANTENNA_CONNECTED, "antenna 3"),
        ("antennaDisconnected", {"antennaPort": 4}, DeviceState.ANTENNA_DISCONNECTED, "antenna 4"),
        ("overflow", {"count": 1500}, DeviceState.OVERFLOW, "reader purged 1500 events"),
        ("overflow", {}, DeviceState.OVERFLOW, "reader purged events"),
    ],
)
def test_state_events(
    event_type: str, body: dict[str, object], state: DeviceState, detail: str
) -> None:
    payload = {
        "timestamp": "2026-01-05T08:00:00Z",
        "eventType": event_type,
        f"{event_type}Event": body,
    }
    (event,) = parse(json.dumps(payload).encode()).events
    assert isinstance(event, DeviceStateEvent)
    assert event.state is state
    assert event.detail.startswith(detail)


def test_overflow_is_alert_worthy_state() -> None:
    payload = b'{"timestamp":"2026-01-05T08:00:00Z","eventType":"overflow","overflowEvent":{}}'
    (event,) = parse(payload).events
    assert isinstance(event, DeviceStateEvent) and event.state is DeviceState.OVERFLOW


def test_epc_hex_when_enabled_and_format_option() -> None:
    body = {"epcHex": "E2801160600002052", "antennaPort": 1}
    payload = {
        "timestamp": "2026-01-05T08:00:00Z",
        "eventType": "tagInventory",
        "tagInventoryEvent": body,
    }
    with pytest.raises(FrameError, match="even-length"):
        parse(json.dumps(payload).encode())
    body["epcHex"] = "e28011606000020528f904fa"
    (event,) = parse(json.dumps(payload).encode(), epc_format="hex").events
    assert isinstance(event, TagReadEvent) and event.epc_hex == "E28011606000020528F904FA"
    with pytest.raises(FrameError, match="without epc"):
        parse(json.dumps(payload).encode(), epc_format="base64")
    del body["epcHex"]
    body["epc"] = base64.b64encode(b"\xe2\x80").decode()
    with pytest.raises(FrameError, match="epcHex missing"):
        parse(json.dumps(payload).encode(), epc_format="hex")


def test_unknown_event_type_is_reported_not_failed() -> None:
    payload = [
        {
            "timestamp": "2026-01-05T08:00:00Z",
            "eventType": "gpiTransition",
            "gpiTransitionEvent": {},
        },
        json.loads(SHARED_REF_EXAMPLE),
    ]
    result = parse(json.dumps(payload).encode())
    assert result.unknown == ("gpiTransition",)
    assert len(result.events) == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"{not json", "invalid JSON"),
        (SHARED_REF_EXAMPLE[:-7], "invalid JSON"),  # truncated in flight
        (b"\xff\xfe{}", "UTF-8"),
        (b"42", "object or an array"),
        (b"[]", "empty"),
        (b'{"timestamp":"2026-01-05T08:00:00Z"}', "eventType"),
        (b'{"eventType":"tagInventory","tagInventoryEvent":{"epc":"MA=="}}', "timestamp"),
        (b'{"timestamp":"yesterday","eventType":"overflow"}', "ISO 8601"),
        (b'{"timestamp":"2026-01-05T08:00:00Z","eventType":"tagInventory"}', "JSON object"),
        (
            b'{"timestamp":"2026-01-05T08:00:00Z","eventType":"tagInventory",'
            b'"tagInventoryEvent":{"epc":"!!notb64"}}',
            "base64",
        ),
        (
            b'{"timestamp":"2026-01-05T08:00:00Z","eventType":"tagInventory",'
            b'"tagInventoryEvent":{"epc":"MA==","antennaPort":0}}',
            "antennaPort",
        ),
        (
            b'{"timestamp":"2026-01-05T08:00:00Z","eventType":"tagInventory",'
            b'"tagInventoryEvent":{"epc":"MA==","peakRssiCdbm":"loud"}}',
            "peakRssiCdbm",
        ),
        (b'{"timestamp":"2026-01-05T08:00:00Z","eventType":"inventoryStatus"}', "status"),
    ],
)
def test_malformed_payloads_raise_frame_error(payload: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse(payload)


def test_one_bad_record_rejects_the_whole_batch() -> None:
    good = json.loads(SHARED_REF_EXAMPLE)
    bad = dict(good, tagInventoryEvent={"antennaPort": 1})
    with pytest.raises(FrameError):
        parse(json.dumps([good, bad]).encode())


def test_payload_cap() -> None:
    with pytest.raises(FrameError, match="cap"):
        parse(b"[" + b" " * 300_000 + b"]")
    with pytest.raises(FrameError, match="cap"):
        parse(SHARED_REF_EXAMPLE, max_bytes=10)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        parse(data)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_escapes_as_other_errors(doc: object) -> None:
    with contextlib.suppress(FrameError):
        parse(json.dumps(doc).encode())
