"""Every input the fuzz harnesses found that broke a promise, as a plain test.

Each case names the harness that found it and what the code did before its fix.
"""

from __future__ import annotations

import json
import time

import pytest

from devices.dialects import impinj, scanner_json, zebra
from devices.errors import FrameError
from devices.framing.lines import LineFramer

# --------------------------------------------------------------------------- line framing


@pytest.mark.parametrize(
    ("suffix", "burst"),
    [("cr", b"\r"), ("lf", b"\r"), ("crlf", b"\n"), ("stx-etx", b"\x02")],
)
def test_a_burst_of_empty_lines_or_false_stx_is_framed_in_linear_time(
    suffix: str, burst: bytes
) -> None:
    """test_fuzz_lines: every line end searched for CR and LF (STX and ETX)
    separately, from the same start, rescanning the rest of the chunk each time:
    quadratic in one read of empty lines or false STX bytes."""
    framer = LineFramer(suffix=suffix)  # type: ignore[arg-type]
    start = time.perf_counter()
    assert framer.feed(burst * 262_144) == []
    # 256 Ki bytes: linear is a few tens of ms here; quadratic took seconds
    assert time.perf_counter() - start < 1.0
    assert framer.pending == 0


def test_lines_still_split_on_either_end_and_stx_still_cuts_a_frame() -> None:
    framer = LineFramer(suffix="crlf", aim=False)
    assert [f.payload for f in framer.feed(b"A\rB\nC\r\nD")] == [b"A", b"B", b"C"]
    stx = LineFramer(suffix="stx-etx", aim=False)
    assert [f.payload for f in stx.feed(b"\x02cut\x02whole\x03")] == [b"whole"]
    assert stx.stats.bad_frames == 1


# --------------------------------------------------------------------------- MQTT dialects

_TS = "2026-01-05T08:00:00Z"


def _impinj(**body: object) -> bytes:
    doc = {
        "timestamp": _TS,
        "eventType": "tagInventory",
        "tagInventoryEvent": {"epcHex": "AABB", **body},
    }
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a": ' + b"9" * 5000 + b"}",  # ValueError: int() digit limit, past json's own errors
        _impinj(peakRssiCdbm=10**400),  # OverflowError: int too large to convert to float
        _impinj(peakRssiCdbm=float("inf")),  # 1e999 reads as infinity: accepted as an RSSI
        _impinj(peakRssiCdbm=float("nan")),
    ],
    ids=["5000-digit-int", "int-beyond-double", "infinity", "nan"],
)
def test_impinj_numbers_out_of_range_are_frame_errors(payload: bytes) -> None:
    """test_fuzz_dialects: these raised ValueError/OverflowError (or passed an
    infinite RSSI on) instead of FrameError."""
    with pytest.raises(FrameError):
        impinj.parse(payload, device_id="r1", received_at=1.0)


def test_zebra_rssi_beyond_a_double_is_a_frame_error() -> None:
    record = {"timestamp": _TS, "type": "SIMPLE", "data": {"idHex": "aabb", "peakRssi": -(10**400)}}
    with pytest.raises(FrameError):
        zebra.parse_data(json.dumps(record).encode(), device_id="z1", received_at=1.0)


@pytest.mark.parametrize("ts", ["10" * 200, "1e999", "NaN"])
def test_scanner_ts_out_of_range_is_a_frame_error(ts: str) -> None:
    payload = ('{"code": "A-01-05", "ts": ' + ts + "}").encode()
    with pytest.raises(FrameError):
        scanner_json.parse(payload, device_id="s1", received_at=1.0)
