"""Fuzz the MQTT payload dialects: Impinj ``ReaderEvent`` JSON
(devices/dialects/impinj.py), Zebra IoT Connector data and management events
(devices/dialects/zebra.py) and PickEdge's scanner JSON
(devices/dialects/scanner_json.py).

Each parser raises nothing but :class:`~devices.errors.FrameError`, on any
bytes, any JSON document and any mutation of a valid payload (wrong types,
numbers beyond a double, lone surrogates, deep nesting), within the budget."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from devices.dialects import ParseResult, impinj, scanner_json, zebra
from devices.dialects._common import MAX_PAYLOAD_BYTES
from devices.errors import FrameError
from tests.fuzz._harness import FUZZ, json_mutated, json_values, mutated, nested, within_budget

Parser = Callable[[bytes], ParseResult]
PARSERS: dict[str, Parser] = {
    "impinj": lambda p: impinj.parse(p, device_id="r1", received_at=1.0),
    "impinj-hex": lambda p: impinj.parse(p, device_id="r1", received_at=1.0, epc_format="hex"),
    "impinj-b64": lambda p: impinj.parse(p, device_id="r1", received_at=1.0, epc_format="base64"),
    "zebra-data": lambda p: zebra.parse_data(p, device_id="z1", received_at=1.0),
    "zebra-event": lambda p: zebra.parse_event(p, device_id="z1", received_at=1.0),
    "scanner": lambda p: scanner_json.parse(p, device_id="s1", received_at=1.0),
}

_TS = st.sampled_from(
    ["2026-01-05T08:00:00Z", "2026-01-05T08:00:00.123456789-0600", "2026-01-05 08:00:00+01:00"]
)
_EPC_BYTES = st.binary(min_size=2, max_size=62).map(lambda b: b[: len(b) // 2 * 2])

_IMPINJ = st.fixed_dictionaries(
    {
        "timestamp": _TS,
        "hostname": st.just("impinj-14-2f-2a"),
        "eventType": st.just("tagInventory"),
        "tagInventoryEvent": st.fixed_dictionaries(
            {"antennaPort": st.integers(1, 4), "peakRssiCdbm": st.integers(-9000, 0)},
            optional={
                "epc": _EPC_BYTES.map(lambda b: base64.b64encode(b).decode()),
                "epcHex": _EPC_BYTES.map(lambda b: b.hex().upper()),
            },
        ),
    }
) | st.builds(
    lambda ts, kind, body: {"timestamp": ts, "eventType": kind, f"{kind}Event": body},
    _TS,
    st.sampled_from(
        ["inventoryStatus", "antennaConnected", "antennaDisconnected", "overflow", "gpiTransition"]
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.just("running"),
            "antennaPort": st.integers(1, 4),
            "count": st.integers(0, 9),
        },
    ),
)
_ZEBRA = st.fixed_dictionaries(
    {
        "timestamp": _TS,
        "type": st.sampled_from(["SIMPLE", "PORTAL", "heartbeat", "CUSTOM"]),
        "data": st.fixed_dictionaries(
            {"idHex": _EPC_BYTES.map(lambda b: b.hex())},
            optional={
                "antenna": st.integers(1, 8),
                "peakRssi": st.integers(-90, 0),
                "reads": st.integers(0, 9),
            },
        ),
    }
)
_SCAN = st.fixed_dictionaries(
    {"code": st.sampled_from(["0109501101020917\x1d10ABC", "A-01-05", "T-1"])},
    optional={
        "symbology": st.sampled_from(["]C1", "]E0"]),
        "ts": st.one_of(_TS, st.floats(0, 2e9)),
    },
)
VALID = {
    "impinj": _IMPINJ,
    "impinj-hex": _IMPINJ,
    "impinj-b64": _IMPINJ,
    "zebra-data": _ZEBRA,
    "zebra-event": _ZEBRA,
    "scanner": _SCAN,
}


def _doc(record: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return record | st.lists(record, min_size=1, max_size=4)


def _encode(doc: Any) -> bytes:
    # ensure_ascii: a lone surrogate becomes the escape "\ud800", as a reader's
    # JSON library would write it, not an unencodable character
    return json.dumps(doc, allow_nan=True).encode()


def _parse(name: str, payload: bytes) -> None:
    result = within_budget(lambda: PARSERS[name](payload), declared=(FrameError,))
    if isinstance(result, ParseResult):
        for event in result.events:
            assert event.device_id in ("r1", "z1", "s1")


@FUZZ
@given(name=st.sampled_from(sorted(PARSERS)), payload=st.binary(max_size=512))
def test_any_bytes(name: str, payload: bytes) -> None:
    _parse(name, payload)


@FUZZ
@given(name=st.sampled_from(sorted(PARSERS)), doc=json_values())
def test_any_json_document(name: str, doc: Any) -> None:
    _parse(name, _encode(doc))


@FUZZ
@given(name=st.sampled_from(sorted(PARSERS)), data=st.data())
def test_mutated_valid_payloads(name: str, data: st.DataObject) -> None:
    doc = data.draw(json_mutated(_doc(VALID[name])))
    _parse(name, _encode(doc))


@FUZZ
@given(name=st.sampled_from(sorted(PARSERS)), data=st.data())
def test_mutated_valid_payload_bytes(name: str, data: st.DataObject) -> None:
    _parse(name, data.draw(mutated(_doc(VALID[name]).map(_encode))))


@FUZZ
@given(
    name=st.sampled_from(sorted(PARSERS)),
    depth=st.sampled_from([100, 1000, 5000, 100_000]),
    shape=st.sampled_from(["balanced", "open"]),
)
def test_deep_nesting(name: str, depth: int, shape: str) -> None:
    text = nested(depth) if shape == "balanced" else "[" * depth
    _parse(name, text.encode())


@FUZZ
@given(
    name=st.sampled_from(sorted(PARSERS)),
    blob=st.sampled_from(
        [
            '{"code": "' + "A" * (MAX_PAYLOAD_BYTES - 20) + '"}',
            "[" + ",".join(['{"a":1}'] * 20_000) + "]",
            '{"a": ' + "9" * 5000 + "}",
            '{"a": 1e999999}',
            '{"a": "' + "\\ud800" * 20_000 + '"}',
            " " * MAX_PAYLOAD_BYTES + "{}",
        ]
    ),
)
def test_large_payloads_within_the_cap(name: str, blob: str) -> None:
    _parse(name, blob.encode())
