"""Every input the fuzz harnesses found that broke a promise, as a plain test.

Each case names the harness that found it and what the code did before its fix.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices.dialects import impinj, scanner_json, zebra
from devices.errors import FrameError
from devices.framing.lines import LineFramer
from edge.masterdata import apply_changes
from edge.masterdata.apply import ChangeError
from edge.store import Store

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


# --------------------------------------------------------------------------- cloud answers


def test_a_cloud_answer_nested_too_deep_is_a_value_error() -> None:
    """test_fuzz_sync_codec: RecursionError left decode_answer, past the
    client's ``except ValueError``, on a JSON answer nested ~100,000 deep."""
    from cloud_sync.codec import decode_answer

    with pytest.raises(ValueError, match="nested"):
        decode_answer(b"[" * 100_000 + b"]" * 100_000, "application/json")


# --------------------------------------------------------------------------- downstream changes


@pytest.fixture
def md_store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "md.db", box_id="md-box") as s:
        yield s


def _dump(store: Store) -> list[str]:
    conn = sqlite3.connect(store.path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.mark.parametrize(
    "change",
    [
        {"type": "stock", "data": {"sku": "A", "location": "L", "qty": 2**64}},
        {"type": "location", "data": {"code": "L", "aisle": 2**63, "y": 1}},
        {"type": "location", "data": {"code": "L", "aisle": 1, "y": 10**400}},
        {"type": "location", "data": {"code": "L", "aisle": 1, "y": float("inf")}},
        {
            "type": "task",
            "data": {
                "task": "T",
                "priority": -(2**70),
                "lines": [{"line": 1, "sku": "A", "qty": 1, "location": "L"}],
            },
        },
    ],
    ids=["qty-2^64", "aisle-2^63", "y-beyond-double", "y-infinite", "priority-2^70"],
)
def test_numbers_beyond_the_store_are_change_errors_and_change_nothing(
    md_store: Store, change: dict[str, object]
) -> None:
    """test_fuzz_changes: OverflowError (SQLite's int64, float()) left
    apply_changes instead of ChangeError; an infinite y was stored."""
    page = [{"type": "item", "data": {"sku": "A"}}, change]
    before = _dump(md_store)
    with pytest.raises(ChangeError):
        md_store.run(lambda tx: apply_changes(tx, page))
    assert _dump(md_store) == before


def test_a_refusal_message_with_a_lone_surrogate_can_be_stored_and_logged(
    md_store: Store,
) -> None:
    """test_fuzz_changes: the ChangeError of a change keyed "\\ud800" carried
    the surrogate into its message, which the downloader writes into an alert
    (SQLite refuses it) and the log."""
    with pytest.raises(ChangeError) as refused:
        md_store.run(lambda tx: apply_changes(tx, [{"type": "picker", "data": {"id": "\ud800"}}]))
    message = str(refused.value)
    message.encode("utf-8")
    assert "\\ud800" in message


def test_unknown_change_types_are_counted_under_a_bounded_name(md_store: Store) -> None:
    """test_fuzz_changes: every distinct unknown type, at any length, became a
    key of UNKNOWN_CHANGES and a log line: memory and log grow with the feed."""
    from edge.masterdata.apply import UNKNOWN_CHANGES

    page = [{"type": f"x{'A' * 70_000}{n}", "data": {}} for n in range(300)]
    md_store.run(lambda tx: apply_changes(tx, page))
    assert len(UNKNOWN_CHANGES) <= 101
    assert max(map(len, UNKNOWN_CHANGES)) <= 64


# --------------------------------------------------------------------------- PDA bodies


def test_json_depth_is_linear_on_a_body_of_escaped_quotes() -> None:
    """test_fuzz_api_bodies: the depth scan retried an unterminated string from
    every later quote, quadratic: 16,000 escaped quotes took 4 s; and its
    Python loop over the brackets of a 1 MiB body took over 100 ms."""
    from edge.api.validate import BadInputError, json_depth, json_object

    for body in ("{" * 40 + '"' + '\\"' * 300_000, '"["' * 300_000 + "[" * 40):
        start = time.perf_counter()
        with pytest.raises(BadInputError):
            json_object(body.encode())
        assert time.perf_counter() - start < 1.0
    assert json_depth('["[[", {"a\\"]": [1]}]') == 3
    assert json_depth('"abc\\') == json_depth("]]]") == 0
    assert json_depth('[["x') == 2


# --------------------------------------------------------------------------- configuration


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text('[box]\nid = "b"\n[store]\npath = "x.db"\n' + text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text",
    [
        "[cloud]\ntimeout_s = " + "9" * 400,  # OverflowError: int too large to convert to float
        "[cloud]\ntimeout_s = nan",  # accepted: nan < min and nan > max are both false
        "[cloud]\ntimeout_s = inf",
        "[layout]\naisle_pitch_m = 1e308",  # OverflowError in the routing check: inf mm
        "[layout]\nblock_length_m = " + "1" * 400,
        '[box]\nsecret_file = "~nosuchuser-pickedge/s"',  # RuntimeError from expanduser
        '[box]\nsecret_file = "a\\u0000b"',  # ValueError: embedded null byte
        '[cloud]\nurl = "https://x"\nca_file = "a\\u0000b"',
        '[cloud]\nurl = "https://x"\nca_file = "' + "n" * 70_000 + '"',  # OSError: name too long
    ],
    ids=[
        "int-beyond-double",
        "nan",
        "inf",
        "pitch-1e308",
        "length-400-digits",
        "unknown-home",
        "nul-in-secret-path",
        "nul-in-ca-path",
        "ca-name-too-long",
    ],
)
def test_config_values_beyond_any_range_are_config_errors(tmp_path: Path, text: str) -> None:
    """test_fuzz_config: each of these raised OverflowError, RuntimeError,
    ValueError or OSError out of load_config (or was accepted) instead of a
    ConfigError naming the key."""
    from edge.config import load_config
    from edge.errors import ConfigError

    text = text.replace("[box]\n", "").replace("[cloud]\n", "[cloud]\n", 1)
    head = '[box]\nid = "b"\n' + (text if "secret_file" in text else "")
    body = "" if "secret_file" in text else text
    path = tmp_path / "c.toml"
    path.write_text(head + '[store]\npath = "x.db"\n' + body, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(path, env={})


def test_a_config_file_still_loads(tmp_path: Path) -> None:
    from edge.config import load_config

    cfg = load_config(_config(tmp_path, "[cloud]\ntimeout_s = 3\n"), env={})
    assert cfg.cloud.timeout_s == 3.0


def test_routing_lengths_beyond_the_warehouse_are_refused() -> None:
    from edge.routing import route
    from edge.routing.model import RoutingProblemError

    layout = {"kind": "blocks", "aisles": 2, "aisle_pitch_m": 3.0, "blocks": 1}
    for bad in (1e308, 10**400, float("nan")):
        with pytest.raises(RoutingProblemError):
            route({"layout": {**layout, "block_length_m": bad}, "picks": []})
