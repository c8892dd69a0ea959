"""Dock door portals (edge/shipping/dock.py) on a real store, and the SSCC-96
encoder the portal's tags are written with (devices/codes/epc.py).

Tags go in as the portal would hand them over: an SSCC encoded to its EPC,
decoded again by ``decode_epc_info``; what comes out is read back from the
tables and from the outbox rows the cloud would receive.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from devices.codes.epc import (
    SSCC_FILTER_ALL_OTHERS,
    SSCC_FILTER_FULL_CASE,
    SSCC_FILTER_UNIT_LOAD,
    decode_epc_info,
    encode_sscc96,
)
from devices.errors import CodeError
from edge.shipping import dock
from edge.shipping.dock import CartonAtDock, DockOutcome, check_windows, decide, on_tag
from edge.store import Store

PREFIX = "0614141"  # the TDS's example company prefix
WINDOW = 120_000
T0 = 1_767_600_000_000


def sscc(serial: int, extension: int = 1) -> str:
    """An SSCC of PREFIX with a valid check digit."""
    body = f"{extension}{PREFIX}{serial:09d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str(-total % 10)


A, B, C, X = sscc(1), sscc(2), sscc(3), sscc(99)
SGTIN_EPC = "3074257BF7194E4000001A85"  # TDS SGTIN-96 example


def ship(store: Store, shipment: str, door: str | None, *ssccs: str) -> None:
    """A confirmed shipment of ``ssccs`` expected at ``door`` (as packing leaves it)."""

    def write(tx: Any) -> None:
        tx.execute(
            "INSERT INTO shipments (shipment, order_ref, door, confirmed_ms) VALUES (?, ?, ?, ?)",
            (shipment, f"O-{shipment}", door, T0 - 60_000),
        )
        for code in ssccs:
            tx.execute(
                "INSERT INTO cartons (order_ref, station, state, sscc, shipment, door, "
                "opened_ms, closed_ms) VALUES (?, 'P1', 'shipped', ?, ?, ?, ?, ?)",
                (f"O-{shipment}", code, shipment, door, T0 - 90_000, T0 - 80_000),
            )

    store.run(write)


def packed(store: Store, code: str, state: str = "closed", shipment: str | None = None) -> None:
    """A carton packed but whose shipment is not confirmed."""
    store.run(
        lambda tx: tx.execute(
            "INSERT INTO cartons (order_ref, station, state, sscc, shipment, opened_ms) "
            "VALUES ('O-9', 'P1', ?, ?, ?, ?)",
            (state, code, shipment, T0 - 90_000),
        )
    )


def tag(
    store: Store,
    code: str,
    *,
    door: str = "D1",
    at: int = T0,
    filter_value: int = SSCC_FILTER_FULL_CASE,
    reader: str = "portal-d1",
) -> DockOutcome:
    """``code``'s SSCC-96 tag seen at ``door``: encoded, decoded, judged, committed."""
    info = decode_epc_info(
        encode_sscc96(code, company_prefix_digits=len(PREFIX), filter_value=filter_value)
    )
    return store.run(
        lambda tx: on_tag(
            tx,
            door=door,
            reader=reader,
            scheme=info.scheme,
            key=info.gs1_key,
            filter_value=info.filter,
            now_ms=at,
            window_ms=WINDOW,
        )
    )


def outbox(store: Store) -> list[tuple[str, dict[str, Any]]]:
    rows = store.query("SELECT type, payload FROM outbox ORDER BY epoch, seq")
    return [(r["type"], msgpack.unpackb(r["payload"], raw=False)) for r in rows]


def alerts(store: Store) -> list[dict[str, Any]]:
    return store.query("SELECT kind, severity, subject, cleared_ms FROM alerts ORDER BY id")


def tables(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return (
        store.query("SELECT * FROM cartons ORDER BY carton"),
        store.query("SELECT * FROM shipments ORDER BY shipment"),
    )


# ---------------------------------------------------------------------- departures


def test_each_carton_departs_once_and_completes_its_shipment(store: Store) -> None:
    ship(store, "S1", "D1", A, B)
    assert tag(store, A, at=T0) is DockOutcome.DEPARTED
    carton = store.query("SELECT departed_ms, departed_by FROM cartons WHERE sscc = ?", (A,))
    assert carton == [{"departed_ms": T0, "departed_by": "portal-d1"}]
    shipment = store.query("SELECT first_seen_ms, departed_ms FROM shipments")
    assert shipment == [{"first_seen_ms": T0, "departed_ms": None}]

    assert tag(store, B, at=T0 + 5_000) is DockOutcome.DEPARTED
    shipment = store.query("SELECT first_seen_ms, departed_ms FROM shipments")
    assert shipment == [{"first_seen_ms": T0, "departed_ms": T0 + 5_000}]
    assert outbox(store) == [
        ("carton_departed", {"sscc": A, "shipment": "S1", "door": "D1", "reader": "portal-d1"}),
        ("carton_departed", {"sscc": B, "shipment": "S1", "door": "D1", "reader": "portal-d1"}),
    ]
    assert alerts(store) == []


def test_rereads_within_the_window_are_silent_duplicates(store: Store) -> None:
    ship(store, "S1", "D1", A, B)
    assert tag(store, A, at=T0) is DockOutcome.DEPARTED
    before = tables(store)
    # the same read redelivered (MQTT after a crash), a re-read, the
    # neighbouring door's cross-read, a replayed read stamped before it
    assert tag(store, A, at=T0) is DockOutcome.DUPLICATE
    assert tag(store, A, at=T0 + 3_000) is DockOutcome.DUPLICATE
    assert tag(store, A, door="D2", at=T0 + 4_000, reader="portal-d2") is DockOutcome.DUPLICATE
    assert tag(store, A, at=T0 - 2_000) is DockOutcome.DUPLICATE
    assert tag(store, A, at=T0 + WINDOW) is DockOutcome.DUPLICATE
    assert tables(store) == before
    assert [t for t, _ in outbox(store)] == ["carton_departed"]
    assert alerts(store) == []


def test_a_departed_carton_seen_after_the_window_is_alerted_once(store: Store) -> None:
    ship(store, "S1", "D1", A, B)
    tag(store, A, at=T0)
    before = tables(store)
    assert tag(store, A, at=T0 + WINDOW + 1) is DockOutcome.ALREADY_DEPARTED
    assert tag(store, A, at=T0 + WINDOW + 60_000) is DockOutcome.ALREADY_DEPARTED
    assert tables(store) == before
    assert alerts(store) == [
        {
            "kind": dock.ALREADY_DEPARTED,
            "severity": "warn",
            "subject": f"{A}@D1",
            "cleared_ms": None,
        }
    ]
    (_, (kind, data)) = outbox(store)
    assert kind == "alert" and data["kind"] == dock.ALREADY_DEPARTED
    assert data["detail"]["departed_ms"] == T0 and data["state"] == "raised"


# ---------------------------------------------------------------------- what does not fit


@pytest.mark.parametrize(
    ("setup", "seen", "outcome", "kind", "why"),
    [
        ("unknown", X, DockOutcome.UNEXPECTED, dock.UNEXPECTED, "unknown"),
        ("closed", X, DockOutcome.UNEXPECTED, dock.UNEXPECTED, "carton_closed"),
        ("open", X, DockOutcome.UNEXPECTED, dock.UNEXPECTED, "carton_open"),
        ("unconfirmed", X, DockOutcome.UNEXPECTED, dock.UNEXPECTED, "not_confirmed"),
        ("no_door", X, DockOutcome.UNEXPECTED, dock.UNEXPECTED, "not_confirmed"),
        ("other_door", X, DockOutcome.WRONG_DOOR, dock.WRONG_DOOR, "other_door"),
    ],
)
def test_cartons_not_expected_here_are_alerted_and_change_nothing(
    store: Store, setup: str, seen: str, outcome: DockOutcome, kind: str, why: str
) -> None:
    ship(store, "S1", "D1", A, B)  # another shipment, untouched throughout
    if setup in ("closed", "open"):
        packed(store, X, state=setup)
    elif setup == "unconfirmed":  # shipped state, but its shipment row not written
        packed(store, X, state="shipped", shipment="S9")
    elif setup == "no_door":
        ship(store, "S9", None, X)
    elif setup == "other_door":
        ship(store, "S9", "D2", X)
    before = tables(store)

    assert tag(store, seen, door="D1", filter_value=SSCC_FILTER_UNIT_LOAD) is outcome
    assert tag(store, seen, door="D1", at=T0 + 1_000) is outcome  # alerted once
    assert tables(store) == before
    assert alerts(store) == [
        {"kind": kind, "severity": "warn", "subject": f"{seen}@D1", "cleared_ms": None}
    ]
    ((type_, data),) = outbox(store)
    assert type_ == "alert" and data["kind"] == kind and data["subject"] == f"{seen}@D1"
    assert data["severity"] == "warn" and data["state"] == "raised"
    detail = data["detail"]
    assert detail["sscc"] == seen and detail["door"] == "D1" and detail["why"] == why
    assert detail["filter"] == SSCC_FILTER_UNIT_LOAD
    if setup == "other_door":
        assert detail["expected_door"] == "D2" and detail["shipment"] == "S9"


def test_a_wrong_door_alert_clears_when_the_carton_leaves_at_its_door(store: Store) -> None:
    ship(store, "S1", "D2", A)
    assert tag(store, A, door="D1") is DockOutcome.WRONG_DOOR
    assert tag(store, A, door="D2", at=T0 + 30_000, reader="portal-d2") is DockOutcome.DEPARTED
    assert [(a["kind"], a["cleared_ms"]) for a in alerts(store)] == [(dock.WRONG_DOOR, T0 + 30_000)]
    events = outbox(store)
    assert [(t, d.get("kind"), d.get("state")) for t, d in events] == [
        ("alert", dock.WRONG_DOOR, "raised"),
        ("carton_departed", None, None),
        ("alert", dock.WRONG_DOOR, "cleared"),
    ]
    cleared = events[2][1]
    assert cleared["subject"] == f"{A}@D1" and cleared["detail"]["cleared"] == "departed"


def test_an_unexpected_carton_departs_once_its_shipment_is_confirmed(store: Store) -> None:
    packed(store, X)
    assert tag(store, X, door="D1") is DockOutcome.UNEXPECTED
    # packing confirms the shipment (someone else's code: here, the rows it writes)
    store.run(
        lambda tx: (
            tx.execute(
                "INSERT INTO shipments (shipment, order_ref, door, confirmed_ms) "
                "VALUES ('S9', 'O-9', 'D1', ?)",
                (T0,),
            ),
            tx.execute("UPDATE cartons SET state = 'shipped', shipment = 'S9', door = 'D1'"),
        )
    )
    assert tag(store, X, door="D1", at=T0 + 10_000) is DockOutcome.DEPARTED
    assert [a["cleared_ms"] for a in alerts(store)] == [T0 + 10_000]
    assert [(t, d.get("state")) for t, d in outbox(store)] == [
        ("alert", "raised"),
        ("carton_departed", None),
        ("alert", "cleared"),
    ]


# ---------------------------------------------------------------------- the window


def test_an_incomplete_shipment_is_alerted_after_the_window_and_cleared_upstream(
    store: Store,
) -> None:
    ship(store, "S1", "D1", A, B, C)
    ship(store, "S2", "D1", X)  # never seen: no window runs for it
    tag(store, A, at=T0)
    assert store.run(lambda tx: check_windows(tx, now_ms=T0 + WINDOW, window_ms=WINDOW)) == []
    late = T0 + WINDOW + 1
    assert store.run(lambda tx: check_windows(tx, now_ms=late, window_ms=WINDOW)) == ["S1"]
    assert store.run(lambda tx: check_windows(tx, now_ms=late + 9, window_ms=WINDOW)) == []
    raised = outbox(store)[-1][1]
    assert raised["kind"] == dock.INCOMPLETE and raised["subject"] == "S1"
    assert raised["detail"]["missing"] == sorted([B, C]) and raised["detail"]["door"] == "D1"

    assert tag(store, B, at=late + 1_000) is DockOutcome.DEPARTED
    assert alerts(store)[0]["cleared_ms"] is None  # C still missing
    assert tag(store, C, at=late + 2_000) is DockOutcome.DEPARTED
    assert alerts(store) == [
        {"kind": dock.INCOMPLETE, "severity": "warn", "subject": "S1", "cleared_ms": late + 2_000}
    ]
    assert [(t, d.get("kind"), d.get("state")) for t, d in outbox(store)] == [
        ("carton_departed", None, None),
        ("alert", dock.INCOMPLETE, "raised"),
        ("carton_departed", None, None),
        ("carton_departed", None, None),
        ("alert", dock.INCOMPLETE, "cleared"),
    ]
    cleared = outbox(store)[-1][1]
    assert cleared["subject"] == "S1" and cleared["detail"]["cleared"] == "complete"
    later = late + 10 * WINDOW
    assert store.run(lambda tx: check_windows(tx, now_ms=later, window_ms=WINDOW)) == []


def test_dock_alerts_are_never_refused_by_the_backlog_limit(store: Store) -> None:
    store.max_backlog = 0  # every event already "waits": new work would be refused
    assert tag(store, X) is DockOutcome.UNEXPECTED
    assert [t for t, _ in outbox(store)] == ["alert"]


# ---------------------------------------------------------------------- items and the rest


def test_item_tags_are_counted_not_confirmed_and_others_ignored(store: Store) -> None:
    ship(store, "S1", "D1", A)
    before = tables(store)
    cases = [
        (SGTIN_EPC, DockOutcome.ITEM_COUNTED),
        ("3234257BF460720000000190", DockOutcome.IGNORED),  # SGLN-96: a location marker
        ("E28011606000020528F904FA", DockOutcome.IGNORED),  # not a GS1 EPC
    ]
    for epc, outcome in cases:
        info = decode_epc_info(epc)
        got = store.run(
            lambda tx, info=info: on_tag(  # type: ignore[misc]
                tx,
                door="D1",
                reader="portal-d1",
                scheme=info.scheme,
                key=info.gs1_key,
                filter_value=info.filter,
                now_ms=T0,
                window_ms=WINDOW,
            )
        )
        assert got is outcome, epc
    assert tables(store) == before and outbox(store) == [] and alerts(store) == []


def carton(
    state: str = "shipped", door: str | None = "D1", departed: int | None = None
) -> CartonAtDock:
    return CartonAtDock(7, state, "S1", door, departed)


@pytest.mark.parametrize(
    ("scheme", "key", "row", "now", "outcome"),
    [
        ("sgtin-96", "80614141123458", None, T0, DockOutcome.ITEM_COUNTED),
        ("sgtin-198", "80614141123458", None, T0, DockOutcome.ITEM_COUNTED),
        ("giai-96", "061414112345400", None, T0, DockOutcome.IGNORED),
        (None, None, None, T0, DockOutcome.IGNORED),
        ("sscc-96", None, None, T0, DockOutcome.IGNORED),
        ("sscc-96", A, None, T0, DockOutcome.UNEXPECTED),
        ("sscc-96", A, carton("closed", None), T0, DockOutcome.UNEXPECTED),
        ("sscc-96", A, carton(door=None), T0, DockOutcome.UNEXPECTED),
        ("sscc-96", A, carton(door="D2"), T0, DockOutcome.WRONG_DOOR),
        ("sscc-96", A, carton(), T0, DockOutcome.DEPARTED),
        ("sscc-96", A, carton(departed=T0), T0 + WINDOW, DockOutcome.DUPLICATE),
        ("sscc-96", A, carton(door="D2", departed=T0), T0 + 1, DockOutcome.DUPLICATE),
        ("sscc-96", A, carton(departed=T0), T0 - 5, DockOutcome.DUPLICATE),
        ("sscc-96", A, carton(departed=T0), T0 + WINDOW + 1, DockOutcome.ALREADY_DEPARTED),
    ],
)
def test_decision_table(
    scheme: str | None, key: str | None, row: CartonAtDock | None, now: int, outcome: DockOutcome
) -> None:
    got = decide(scheme=scheme, key=key, carton=row, door="D1", now_ms=now, window_ms=WINDOW)
    assert got.outcome is outcome
    assert (got.alert is not None) == (
        outcome in (DockOutcome.UNEXPECTED, DockOutcome.WRONG_DOOR, DockOutcome.ALREADY_DEPARTED)
    )


# ---------------------------------------------------------------------- SSCC-96 encoding


def test_encode_sscc96_matches_the_tds_example() -> None:
    # TDS: (00)106141412345678908, company prefix 0614141, filter 2
    assert encode_sscc96("106141412345678908", company_prefix_digits=7) == (
        "3154257BF4499602D2000000"
    )


@pytest.mark.parametrize("digits", range(6, 13))
@pytest.mark.parametrize(
    "filter_value", [SSCC_FILTER_ALL_OTHERS, SSCC_FILTER_FULL_CASE, SSCC_FILTER_UNIT_LOAD, 7]
)
def test_encode_sscc96_round_trips(digits: int, filter_value: int) -> None:
    for code in (sscc(1), sscc(987654321, extension=9), "000000000000000000"):
        hex_ = encode_sscc96(code, company_prefix_digits=digits, filter_value=filter_value)
        assert len(hex_) == 24 and hex_ == hex_.upper() and hex_.startswith("31")
        info = decode_epc_info(hex_)
        assert info.scheme == "sscc-96" and info.gs1_key == code
        assert info.filter == filter_value
        assert (
            info.uri is not None and info.uri.split(":")[-1].split(".")[0] == code[1 : 1 + digits]
        )


@pytest.mark.parametrize(
    ("code", "digits", "filter_value"),
    [
        ("106141412345678907", 7, 2),  # check digit
        ("10614141234567890", 7, 2),  # 17 digits
        ("10614141234567890X", 7, 2),
        ("106141412345678908", 5, 2),
        ("106141412345678908", 13, 2),
        ("106141412345678908", 7, 8),
        ("106141412345678908", 7, -1),
    ],
)
def test_encode_sscc96_refuses_what_it_cannot_encode(
    code: str, digits: int, filter_value: int
) -> None:
    with pytest.raises(CodeError):
        encode_sscc96(code, company_prefix_digits=digits, filter_value=filter_value)
