"""Signatures by the contract's formula, and the batch codec's validation."""

from __future__ import annotations

import hashlib
import hmac
import logging

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.codec import (
    BatchError,
    OutboxEvent,
    decode_answer,
    decode_batch,
    encode_answer,
    encode_batch,
    encode_batch_raw,
    wants_msgpack,
)
from cloud_sync.events import (
    Alert,
    PickConfirmed,
    Severity,
    StockDelta,
    StockReason,
    UnknownEvent,
)
from cloud_sync.signing import Signer


def test_request_signature_is_the_contracts_formula() -> None:
    s = Signer("edge-secret")
    # computed outside Python:
    # printf 'POST\n/sync/v1/batches\n{"v":1}' | openssl dgst -sha256 -hmac edge-secret
    assert s.request("POST", "/sync/v1/batches", b'{"v":1}') == (
        "sha256=661807faf8d99a150bcd9bc001dba7be91716529384b0422f0632f913839c4c5"
    )
    body = b"\x81\xa1v\x01\xff\x00"
    by_hand = hmac.new(b"edge-secret", b"GET\n/x?a=1\n" + body, hashlib.sha256).hexdigest()
    assert s.request("get", "/x?a=1", body) == "sha256=" + by_hand


def test_answer_signature_is_status_path_body() -> None:
    s = Signer(b"edge-secret")
    sig = s.answer(200, "/sync/v1/changes?cursor=p3&limit=10", b'{"acked":5}')
    assert sig == "sha256=98139755e532565cfe7437adbaa58b670978bfd418e27630226d9443cc3f6ba5"
    assert s.verify_answer(sig, 200, "/sync/v1/changes?cursor=p3&limit=10", b'{"acked":5}')
    assert s.verify_answer(
        sig.upper().replace("SHA256=", "sha256="),
        200,
        "/sync/v1/changes?cursor=p3&limit=10",
        b'{"acked":5}',
    )
    # any change of status, path, body or key fails
    assert not s.verify_answer(sig, 201, "/sync/v1/changes?cursor=p3&limit=10", b'{"acked":5}')
    assert not s.verify_answer(sig, 200, "/sync/v1/changes?cursor=p3&limit=11", b'{"acked":5}')
    assert not s.verify_answer(sig, 200, "/sync/v1/changes?cursor=p3&limit=10", b'{"acked":6}')
    assert not Signer("other").verify_answer(
        sig, 200, "/sync/v1/changes?cursor=p3&limit=10", b'{"acked":5}'
    )
    for bad in (None, "", "sha1=" + sig[7:], sig[7:], "sha256=zz"):
        assert not s.verify_answer(bad, 200, "/sync/v1/changes?cursor=p3&limit=10", b'{"acked":5}')


def test_the_secret_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    s = Signer("hunter2-very-secret")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("t").info("signer %s %r", s, s)
    assert "hunter2" not in repr(s) + str(s) + caplog.text
    with pytest.raises(ValueError, match="empty") as exc:
        Signer("")
    assert "hunter2" not in str(exc.value)


DELTA = StockDelta(sku="S", location="L", qty=-1, reason=StockReason.PICK, ref=None, lot=None)


def ev(seq: int, event: StockDelta | Alert = DELTA) -> OutboxEvent:
    return OutboxEvent.of("e1", seq, event, at_ms=1_700_000_000_000 + seq)


def test_raw_batch_is_an_ordinary_msgpack_map_round_trip() -> None:
    alert = Alert(kind="k", severity=Severity.INFO, subject="ü", detail={"b": b"\x00"})
    events = [ev(s) for s in range(5, 25)] + [ev(25, alert)]
    raw_rows = [(e.seq, e.type, e.at_ms, msgpack.packb(e.data, use_bin_type=True)) for e in events]
    body = encode_batch_raw("box-1", "e1", raw_rows)
    assert body == encode_batch("box-1", "e1", events)
    doc = msgpack.unpackb(body, raw=False)
    assert doc == {
        "v": 1,
        "box": "box-1",
        "epoch": "e1",
        "first": 5,
        "last": 25,
        "events": [{"seq": e.seq, "type": e.type, "at": e.at_ms, "data": e.data} for e in events],
    }
    batch = decode_batch(body, box="box-1")
    assert (batch.first, batch.last, len(batch.events)) == (5, 25, 21)
    # decoded into the typed events, and kept as they arrived
    assert batch.events == [DELTA] * 20 + [alert]
    assert batch.raw == [
        {"seq": e.seq, "type": e.type, "at": e.at_ms, "data": e.data} for e in events
    ]


def test_typed_events_encode_like_their_rows() -> None:
    pick = PickConfirmed(
        task="T1",
        order=None,
        line="1",
        sku="S",
        location="L",
        qty=1,
        picker="p1",
        codes=("c",),
    )
    rows = [OutboxEvent.of("e1", 7, DELTA, at_ms=3), OutboxEvent.of("e1", 8, pick, at_ms=3)]
    assert encode_batch("b", "e1", [DELTA, pick], first=7, at_ms=3) == encode_batch("b", "e1", rows)
    assert [r.event() for r in rows] == [DELTA, pick]
    unknown = UnknownEvent("future_type", {"x": 1})
    assert decode_batch(encode_batch("b", "e1", [unknown]), box="b").events == [unknown]


@settings(max_examples=60, deadline=None)
@given(
    first=st.integers(1, 2**40),
    n=st.integers(1, 70_000),
    data=st.dictionaries(
        st.text(max_size=5),
        st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(), st.binary(), st.none()),
        max_size=4,
    ),
)
def test_raw_round_trip_any_size_and_data(first: int, n: int, data: dict[str, object]) -> None:
    payload = msgpack.packb(data, use_bin_type=True)
    count = n if n < 20 or n in (15, 16, 65535, 65536) else 17
    rows = [(first + i, "pick_exception", i, payload) for i in range(count)]
    doc = msgpack.unpackb(encode_batch_raw("b", "e", rows), raw=False)
    assert doc["first"] == first and doc["last"] == first + count - 1
    assert [e["data"] for e in doc["events"]] == [data] * count


def test_array_header_sizes_round_trip() -> None:
    payload = msgpack.packb({}, use_bin_type=True)
    for count in (15, 16, 65535, 65536):
        rows = [(1 + i, "alert", 0, payload) for i in range(count)]
        doc = msgpack.unpackb(encode_batch_raw("b", "e", rows), raw=False)
        assert len(doc["events"]) == count


def test_raw_encoder_refuses_non_contiguous_rows() -> None:
    p = msgpack.packb({})
    with pytest.raises(ValueError, match="contiguous"):
        encode_batch_raw("b", "e", [(1, "alert", 0, p), (3, "alert", 0, p)])
    with pytest.raises(ValueError):
        encode_batch_raw("b", "e", [])


def _body(**over: object) -> bytes:
    doc: dict[str, object] = {
        "v": 1,
        "box": "b",
        "epoch": "e",
        "first": 1,
        "last": 2,
        "events": [
            {"seq": 1, "type": "stock_delta", "at": 0, "data": DELTA.to_data()},
            {"seq": 2, "type": "future_type", "at": 0, "data": {}},
        ],
    }
    doc.update(over)
    return msgpack.packb(doc, use_bin_type=True)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xc1junk", "malformed"),
        (msgpack.packb([1, 2]), "malformed"),
        (_body(v=2), "unsupported_version"),
        (_body(box="other"), "box_mismatch"),
        (_body(epoch=""), "malformed"),
        (_body(first=0, last=1), "malformed"),
        (_body(first=True), "malformed"),
        (_body(last=3), "not_contiguous"),
        (
            _body(
                events=[
                    {"seq": 1, "type": "alert", "at": 0, "data": {}},
                    {"seq": 3, "type": "alert", "at": 0, "data": {}},
                ]
            ),
            "not_contiguous",
        ),
        (
            _body(
                events=[
                    {"seq": 2, "type": "alert", "at": 0, "data": {}},
                    {"seq": 1, "type": "alert", "at": 0, "data": {}},
                ]
            ),
            "not_contiguous",
        ),
        (
            _body(
                events=[
                    {"seq": 1, "type": "alert", "at": "x", "data": {}},
                    {"seq": 2, "type": "alert", "at": 0, "data": {}},
                ]
            ),
            "malformed",
        ),
        (
            _body(
                events=[
                    {"seq": 1, "type": "stock_delta", "at": 0, "data": {"sku": "S"}},
                    {"seq": 2, "type": "alert", "at": 0, "data": {}},
                ]
            ),
            "malformed",
        ),
        (_body(events=[1, 2]), "malformed"),
    ],
)
def test_decode_refuses_bad_batches(body: bytes, code: str) -> None:
    with pytest.raises(BatchError) as exc:
        decode_batch(body, box="b")
    assert exc.value.code == code


def _with_first(type_: str, data: dict[str, object]) -> bytes:
    return _body(
        events=[
            {"seq": 1, "type": type_, "at": 0, "data": data},
            {"seq": 2, "type": "future_type", "at": 0, "data": {}},
        ]
    )


@pytest.mark.parametrize(
    ("type_", "data", "field"),
    [
        ("stock_delta", {**DELTA.to_data(), "qty": "1"}, "stock_delta.qty"),
        ("stock_delta", {**DELTA.to_data(), "reason": "stolen"}, "stock_delta.reason"),
        (
            "stock_delta",
            {k: v for k, v in DELTA.to_data().items() if k != "lot"},
            "stock_delta.lot",
        ),
        (
            "alert",
            {"kind": "k", "severity": "loud", "subject": "s", "detail": {}},
            "alert.severity",
        ),
        ("alert", {"kind": "k", "severity": "info", "subject": "s", "detail": []}, "alert.detail"),
        (
            "shipment_confirmed",
            {
                "shipment": "S1",
                "orders": [],
                "cartons": [{"sscc": "1", "lines": [{"sku": "A"}]}],
                "by": "p",
            },
            "shipment_confirmed.cartons[0].lines[0].qty",
        ),
    ],
)
def test_decode_checks_known_types_field_by_field(
    type_: str, data: dict[str, object], field: str
) -> None:
    with pytest.raises(BatchError) as exc:
        decode_batch(_with_first(type_, data), box="b")
    assert exc.value.code == "malformed"
    assert "seq 1" in str(exc.value) and field in str(exc.value)


def test_decode_accepts_unknown_event_types_and_checks_size() -> None:
    batch = decode_batch(_body(), box="b")
    assert batch.events == [DELTA, UnknownEvent("future_type", {})]
    with pytest.raises(BatchError) as exc:
        decode_batch(_body(), box="b", max_bytes=10)
    assert exc.value.code == "batch_too_large"


def test_answers_follow_accept() -> None:
    assert wants_msgpack("application/msgpack")
    assert not wants_msgpack(None) and not wants_msgpack("*/*")
    assert not wants_msgpack("application/msgpack;q=0.5, application/json")
    assert wants_msgpack("application/json;q=0.1, application/msgpack")
    body, ctype = encode_answer({"acked": 3}, "application/json")
    assert (body, ctype) == (b'{"acked":3}', "application/json")
    body, ctype = encode_answer({"acked": 3}, "application/msgpack")
    assert ctype == "application/msgpack" and decode_answer(body, ctype) == {"acked": 3}
    assert decode_answer(b'{"acked":3}', "application/json; charset=utf-8") == {"acked": 3}
