"""The typed upstream events: every sync-v1 type round-trips through its ``data``
map (and msgpack), and a map that does not fit is refused naming the field."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from cloud_sync.events import (
    EVENT_CLASSES,
    Alert,
    AlertState,
    CancelStage,
    Carton,
    CartonDeparted,
    CartonLine,
    CountResult,
    Erased,
    EventError,
    PickConfirmed,
    PickedLine,
    PickException,
    PutBack,
    Severity,
    ShipmentConfirmed,
    StockDelta,
    StockReason,
    SupervisorAction,
    TaskCancelled,
    TaskPicked,
    UnknownEvent,
    UpstreamEvent,
    decode_event,
)

SAMPLES: list[UpstreamEvent] = [
    StockDelta(sku="S", location="L", qty=-2, reason=StockReason.SHORT, ref="T1", lot=None),
    PickConfirmed(
        task="T1",
        order=None,
        line="1",
        sku="S",
        location="L",
        qty=2,
        picker="p1",
        codes=("c1", "c2"),
    ),
    PickException(
        task="T1", line="2", sku="S", location=None, expected=3, picked=1, reason="no_stock"
    ),
    ShipmentConfirmed(
        shipment="SH1",
        orders=("O1", "O2"),
        cartons=(Carton(sscc="00123", lines=(CartonLine(sku="S", qty=2),)),),
        by="p1",
    ),
    Alert(
        kind="k",
        severity=Severity.WARN,
        subject="s",
        detail={"n": 1, "b": b"\x00"},
        state=AlertState.CLEARED,
    ),
    TaskPicked(
        task="T1",
        order="O1",
        tour=7,
        picker="p1",
        lines=(PickedLine(line="1", sku="S", picked=1, short=1),),
        totes=(),
    ),
    TaskCancelled(
        task="T1",
        order=None,
        at_stage=CancelStage.PICKING,
        put_back=(PutBack(sku="S", location="L", qty=1),),
    ),
    CountResult(task="C1", location="L", sku="S", counted=4, expected=5, picker="p1"),
    CartonDeparted(sscc="00123", shipment=None, door="D1", reader="r1"),
    Erased(picker="p9", rows=3),
    SupervisorAction(
        action="release", by="s1", subject="tour 7", detail={"tour": 7, "reason": "went home"}
    ),
]


def test_the_samples_cover_every_type() -> None:
    assert {type(e) for e in SAMPLES} == set(EVENT_CLASSES.values())


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).TYPE)
def test_every_event_round_trips_through_its_data_and_msgpack(event: UpstreamEvent) -> None:
    data = event.to_data()
    assert decode_event(event.TYPE, data) == event
    wire = msgpack.unpackb(msgpack.packb(data, use_bin_type=True), raw=False)
    assert decode_event(event.TYPE, wire) == event


def test_defaults_fill_absent_keys_and_unknown_keys_are_ignored() -> None:
    alert = {"kind": "k", "severity": "crit", "subject": "s", "detail": {}, "new_key": 1}
    assert decode_event("alert", alert) == Alert(
        kind="k", severity=Severity.CRIT, subject="s", detail={}
    )
    assert decode_event("alert", alert).state is AlertState.RAISED  # absent means raised
    assert decode_event("erased", {"order": "O1", "rows": 2}) == Erased(order="O1", rows=2)


def test_unknown_types_are_kept_as_received() -> None:
    assert decode_event("future_type", {"x": [1]}) == UnknownEvent("future_type", {"x": [1]})


def test_values_of_a_subclass_are_checked_not_waved_through() -> None:
    # str and int values of exactly that class skip the check; others are checked
    event = decode_event(
        "stock_delta",
        {
            "sku": StockReason.PICK,
            "location": "L",
            "qty": 1,
            "reason": "pick",
            "ref": None,
            "lot": None,
        },
    )
    assert isinstance(event, StockDelta) and event.sku == "pick"
    with pytest.raises(EventError, match=r"stock_delta\.qty must be an integer"):
        decode_event("stock_delta", {**SAMPLES[0].to_data(), "qty": True})


DELTA: dict[str, Any] = SAMPLES[0].to_data()
SHIPMENT: dict[str, Any] = SAMPLES[3].to_data()


@pytest.mark.parametrize(
    ("type_", "data", "message"),
    [
        ("stock_delta", {**DELTA, "qty": 1.5}, "stock_delta.qty must be an integer"),
        ("stock_delta", {**DELTA, "sku": 5}, "stock_delta.sku must be a string"),
        ("stock_delta", {**DELTA, "ref": 5}, "stock_delta.ref must be a string"),
        (
            "stock_delta",
            {**DELTA, "reason": "stolen"},
            "stock_delta.reason must be one of pick, short, count, adjust, receive, return",
        ),
        ("stock_delta", {**DELTA, "reason": ["pick"]}, "stock_delta.reason must be one of"),
        (
            "stock_delta",
            {k: v for k, v in DELTA.items() if k != "lot"},
            "stock_delta.lot is missing",
        ),
        (
            "pick_confirmed",
            {**SAMPLES[1].to_data(), "codes": "c"},
            "pick_confirmed.codes must be a list",
        ),
        (
            "pick_confirmed",
            {**SAMPLES[1].to_data(), "codes": ["c", 3]},
            "pick_confirmed.codes[1] must be a string",
        ),
        ("alert", {**SAMPLES[4].to_data(), "detail": []}, "alert.detail must be a map"),
        (
            "shipment_confirmed",
            {**SHIPMENT, "cartons": [{"sscc": "1", "lines": [{"sku": "A"}]}]},
            "shipment_confirmed.cartons[0].lines[0].qty is missing",
        ),
        (
            "shipment_confirmed",
            {**SHIPMENT, "cartons": ["x"]},
            "shipment_confirmed.cartons[0] must be a map",
        ),
    ],
)
def test_a_misfit_names_the_field(type_: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(EventError) as exc:
        decode_event(type_, data)
    assert str(exc.value).startswith(message)
