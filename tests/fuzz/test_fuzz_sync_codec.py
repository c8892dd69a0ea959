"""Fuzz the sync-v1 wire formats (cloud_sync/codec.py, cloud_sync/signing.py):
msgpack batches as the cloud's receiver decodes them, and the cloud's answers
as the box's client decodes and checks them.

``decode_batch`` raises nothing but :class:`~cloud_sync.codec.BatchError`;
``decode_answer`` nothing but ``ValueError`` (what the client catches);
``answer_echo``, ``conflict_at``, ``url_safe``, ``wants_msgpack`` and
signature verification never raise; all within the budget."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync.codec import (
    Batch,
    BatchError,
    OutboxEvent,
    answer_echo,
    batch_answer,
    conflict_at,
    decode_answer,
    decode_batch,
    encode_answer,
    encode_batch,
    epoch_conflict_answer,
    url_safe,
    wants_msgpack,
)
from cloud_sync.events import (
    Alert,
    AlertState,
    Carton,
    CartonLine,
    PickConfirmed,
    Severity,
    ShipmentConfirmed,
    StockDelta,
    StockReason,
    UnknownEvent,
)
from cloud_sync.signing import Signer
from tests.fuzz._harness import (
    FUZZ,
    Refused,
    json_mutated,
    json_values,
    mutated,
    nested,
    within_budget,
)

BOX = "box-1"
_TEXT = st.text(max_size=12)
_EVENTS = st.one_of(
    st.builds(
        StockDelta,
        sku=_TEXT,
        location=_TEXT,
        qty=st.integers(-(2**40), 2**40),
        reason=st.sampled_from(StockReason),
        ref=st.none() | _TEXT,
        lot=st.none() | _TEXT,
    ),
    st.builds(
        PickConfirmed,
        task=_TEXT,
        order=st.none() | _TEXT,
        line=_TEXT,
        sku=_TEXT,
        location=_TEXT,
        qty=st.integers(0, 99),
        picker=_TEXT,
        codes=st.lists(_TEXT, max_size=3).map(tuple),
    ),
    st.builds(
        ShipmentConfirmed,
        shipment=_TEXT,
        orders=st.lists(_TEXT, max_size=2).map(tuple),
        cartons=st.lists(
            st.builds(
                Carton,
                sscc=_TEXT,
                lines=st.lists(
                    st.builds(CartonLine, sku=_TEXT, qty=st.integers(0, 9)), max_size=2
                ).map(tuple),
            ),
            max_size=2,
        ).map(tuple),
        by=_TEXT,
    ),
    st.builds(
        Alert,
        kind=_TEXT,
        severity=st.sampled_from(Severity),
        subject=_TEXT,
        detail=st.dictionaries(_TEXT, _TEXT, max_size=2),
        state=st.sampled_from(AlertState),
    ),
    st.builds(
        UnknownEvent,
        type=_TEXT.map(lambda t: "x_" + t),
        data=st.dictionaries(_TEXT, _TEXT, max_size=2),
    ),
)
_BATCHES = st.builds(
    lambda events, first, epoch: encode_batch(BOX, epoch, events, first=first, at_ms=1),
    st.lists(_EVENTS, min_size=1, max_size=5),
    st.integers(1, 2**40),
    st.text(min_size=1, max_size=8),
)


def _decode(body: bytes) -> None:
    result = within_budget(lambda: decode_batch(body, box=BOX), declared=(BatchError,))
    if isinstance(result, Batch):
        assert len(result.events) == result.last - result.first + 1
        for event in result.events:
            if not isinstance(event, UnknownEvent):
                event.to_data()


@FUZZ
@given(body=st.binary(max_size=1024))
def test_batch_any_bytes(body: bytes) -> None:
    _decode(body)


@FUZZ
@given(data=st.data())
def test_batch_mutated_bytes(data: st.DataObject) -> None:
    _decode(data.draw(mutated(_BATCHES)))


def _unpacked(body: bytes) -> Any:
    return msgpack.unpackb(body, raw=False)


@FUZZ
@given(data=st.data())
def test_batch_mutated_documents(data: st.DataObject) -> None:
    """Valid batches decoded, a few members given wrong types, huge or
    negative numbers, surrogates, deep nesting, and packed again."""
    doc = data.draw(json_mutated(_BATCHES.map(_unpacked)))
    try:
        body = msgpack.packb(doc, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        body = msgpack.packb(str(doc)[:100], use_bin_type=True)
    _decode(body)


@FUZZ
@given(doc=json_values(), bin_keys=st.booleans())
def test_batch_any_document(doc: Any, bin_keys: bool) -> None:
    try:
        body = msgpack.packb(doc, use_bin_type=bin_keys)
    except (OverflowError, ValueError, TypeError):
        return
    _decode(body)


@FUZZ
@given(
    shape=st.sampled_from(["array", "map"]),
    depth=st.sampled_from([100, 1000, 5000]),
)
def test_batch_deep_nesting(shape: str, depth: int) -> None:
    unit = b"\x91" if shape == "array" else b"\x81\xa1a"
    _decode(unit * depth + b"\xc0")


_ANSWERS = st.one_of(
    st.builds(batch_answer, st.integers(0, 2**40), _TEXT, st.integers(1, 99), st.integers(1, 99)),
    st.builds(
        lambda acked, epoch, at: epoch_conflict_answer(
            acked, epoch, 1, 9, conflict_at=at, message="m"
        ),
        st.integers(0, 99),
        _TEXT,
        st.integers(1, 9),
    ),
    st.fixed_dictionaries(
        {"cursor": _TEXT, "more": st.booleans(), "changes": st.lists(json_values(), max_size=3)}
    ),
    st.fixed_dictionaries({"error": st.fixed_dictionaries({"code": _TEXT, "message": _TEXT})}),
)
_CTYPES = st.sampled_from(
    [None, "application/json", "application/msgpack", "APPLICATION/MSGPACK; q=1", "text/html", ""]
)


def _answer(body: bytes, ctype: str | None) -> None:
    doc = within_budget(lambda: decode_answer(body, ctype), declared=(ValueError,))
    if isinstance(doc, Refused):
        return
    for check in (answer_echo, conflict_at):
        within_budget(lambda: check(doc))  # noqa: B023


@FUZZ
@given(body=st.binary(max_size=1024), ctype=_CTYPES)
def test_answer_any_bytes(body: bytes, ctype: str | None) -> None:
    _answer(body, ctype)


@FUZZ
@given(data=st.data(), accept=st.sampled_from([None, "application/msgpack"]), ctype=_CTYPES)
def test_answer_mutated(data: st.DataObject, accept: str | None, ctype: str | None) -> None:
    doc = data.draw(json_mutated(_ANSWERS))
    try:
        body, _ = encode_answer(doc, accept)
    except (OverflowError, ValueError, TypeError):
        return
    _answer(data.draw(mutated(st.just(body))), ctype)


@FUZZ
@given(
    depth=st.sampled_from([100, 1000, 5000, 100_000]),
    ctype=_CTYPES,
)
def test_answer_deep_nesting(depth: int, ctype: str | None) -> None:
    _answer(nested(depth).encode(), ctype)
    _answer(b"\x91" * depth + b"\xc0", ctype)


@FUZZ
@given(
    header=st.one_of(
        st.none(),
        st.text(max_size=80),
        st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64).map(
            lambda h: "sha256=" + h
        ),
    ),
    status=st.integers(-(2**70), 2**70),
    path=st.text(max_size=60),
    body=st.binary(max_size=256),
)
def test_signature_checks_never_raise(
    header: str | None, status: int, path: str, body: bytes
) -> None:
    signer = Signer("s3cret")

    def check() -> None:
        try:
            assert signer.verify_answer(header, status, path, body) in (True, False)
            assert signer.verify_request(header, "POST", path, body) in (True, False)
        except UnicodeEncodeError:
            # a path with a lone surrogate cannot have been sent or signed:
            # the client builds it from a URL-safe cursor (url_safe)
            assert not path.isascii()

    within_budget(check)
    assert not signer.verify_answer(header, 200, "/p", body) or header == signer.answer(
        200, "/p", body
    )


@FUZZ
@given(
    accept=st.one_of(
        st.none(),
        st.text(max_size=80),
        st.lists(
            st.sampled_from(
                [
                    "application/json",
                    "application/msgpack",
                    ";q=",
                    "0.5",
                    "nan",
                    "inf",
                    "1e999",
                    ",",
                    ";",
                    " ",
                ]
            ),
            max_size=12,
        ).map("".join),
    )
)
def test_accept_and_cursor_checks_never_raise(accept: str | None) -> None:
    within_budget(lambda: wants_msgpack(accept))
    within_budget(lambda: url_safe(accept or ""))


def test_a_valid_batch_still_decodes() -> None:
    row = OutboxEvent(
        "e",
        1,
        "stock_delta",
        1,
        {"sku": "S", "location": "L", "qty": 1, "reason": "pick", "ref": None, "lot": None},
    )
    assert decode_batch(encode_batch(BOX, "e", [row]), box=BOX).first == 1
