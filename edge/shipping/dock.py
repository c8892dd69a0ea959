"""Dock door RFID portals: cartons seen leaving, and what did not fit.

Input: one tag seen at a door's portal (a smoothed ``seen``: once per entry into
the field), already decoded by the caller — scheme, GS1 key, filter value;
nothing here knows bytes. Output: a :class:`DockOutcome`, and in the caller's
transaction the writes that go with it: a carton's departure with its
``carton_departed`` event, or a ``warn`` alert, or nothing.

:func:`decide` is pure (read state in, decision out); :func:`on_tag` loads, decides
and writes; :func:`check_windows`, run on a timer, raises the alerts of shipments
not complete within the window. The clock is the caller's ``now_ms``: pass the
read's own time (the reader's timestamp), so a message redelivered hours later
still carries the time it was read.

Rules:

- An SSCC-96 of a carton expected at this door (its shipment is confirmed:
  state ``shipped`` and a door) that has not departed: ``departed`` — the
  carton's ``departed_ms``/``departed_by`` set, ``carton_departed`` appended,
  the shipment's ``first_seen_ms`` set on its first carton and ``departed_ms``
  when its last one leaves. Open alerts that this resolves are cleared (below).
- The same carton again within ``window_ms`` of its departure: ``duplicate``,
  silently. MQTT redelivery after a crash, a portal's re-reads across its
  antennas and a neighbouring door's cross-read land here. This is sound because
  the departure is a transition keyed by the SSCC, a UNIQUE natural key: the
  event is appended only in the transaction that moves ``departed_ms`` from NULL
  to a time, and a redelivered read finds it set, so no delivery, however late,
  ever produces a second ``carton_departed`` (later than the window it is an
  alert, never an event).
- The same carton later than that: ``already_departed`` (it came back in and
  left again, or a tag was copied). Nothing changes.
- An unknown SSCC, a carton not shipped yet (packed, shipment not confirmed), or
  without a door: ``unexpected``. A carton of another door: ``wrong_door``. Nothing
  changes. Design decision: a carton at the wrong door is *not* counted as
  departed — the portal cannot tell a carton on the wrong truck from one carried
  past the wrong door, and counting it would tell the OMS it left as planned;
  the alert lets a person (or the OMS) decide. If it then leaves at its own door,
  it departs there.
- SGTIN (items): ``item_counted``, for the caller's metrics; nothing confirmed.
  Other schemes and opaque EPCs (location markers, returnable assets, TIDs):
  ``ignored``.

The filter value is not part of an EPC's identity (TDS: the pure identity URI
leaves it out), so it decides nothing: a carton tagged "all others" is still
that carton. It is reported in the alerts' detail, where a pallet's (unit load)
tag from elsewhere is worth noticing.

Alerts (``warn``; one open alert per (kind, subject), each sent upstream with
``state`` ``raised`` and, when resolved, ``cleared``):

===============================  =====================  ==============================
kind                             subject                cleared when
===============================  =====================  ==============================
``dock_unexpected_carton``       ``<sscc>@<door>``      the carton departs properly
``dock_wrong_door``              ``<sscc>@<door>``      the carton departs properly
``dock_carton_already_departed`` ``<sscc>@<door>``      never here: a person looks
``dock_shipment_incomplete``     ``<shipment>``         its last carton departs
===============================  =====================  ==============================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import msgpack

from cloud_sync.events import Alert, AlertState, CartonDeparted, Severity
from edge.store.db import Transaction

UNEXPECTED = "dock_unexpected_carton"
WRONG_DOOR = "dock_wrong_door"
ALREADY_DEPARTED = "dock_carton_already_departed"
INCOMPLETE = "dock_shipment_incomplete"

#: schemes whose tags are cartons, and those whose tags are items
CARTON_SCHEMES = frozenset({"sscc-96"})
ITEM_SCHEMES = frozenset({"sgtin-96", "sgtin-198"})


class DockOutcome(enum.StrEnum):
    DEPARTED = "departed"
    DUPLICATE = "duplicate"
    ALREADY_DEPARTED = "already_departed"
    UNEXPECTED = "unexpected"
    WRONG_DOOR = "wrong_door"
    ITEM_COUNTED = "item_counted"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class CartonAtDock:
    """What the decision needs of the carton with a given SSCC."""

    carton: int
    state: str
    shipment: str | None
    #: the door its shipment is expected at (None: shipment not confirmed)
    door: str | None
    departed_ms: int | None


@dataclass(frozen=True, slots=True)
class DockDecision:
    outcome: DockOutcome
    #: (kind, why) of the alert to raise, if any
    alert: tuple[str, str] | None = None


def decide(
    *,
    scheme: str | None,
    key: str | None,
    carton: CartonAtDock | None,
    door: str,
    now_ms: int,
    window_ms: int,
) -> DockDecision:
    """The portal's decision for one tag (see the module docstring); pure."""
    if scheme in ITEM_SCHEMES:
        return DockDecision(DockOutcome.ITEM_COUNTED)
    if scheme not in CARTON_SCHEMES or not key:
        return DockDecision(DockOutcome.IGNORED)
    if carton is None:
        return DockDecision(DockOutcome.UNEXPECTED, (UNEXPECTED, "unknown"))
    if carton.departed_ms is not None:
        # A read older than the departure (a reader's replayed backlog) is a duplicate too.
        if now_ms - carton.departed_ms <= window_ms:
            return DockDecision(DockOutcome.DUPLICATE)
        return DockDecision(DockOutcome.ALREADY_DEPARTED, (ALREADY_DEPARTED, "departed"))
    if carton.state != "shipped":
        return DockDecision(DockOutcome.UNEXPECTED, (UNEXPECTED, f"carton_{carton.state}"))
    if carton.shipment is None or carton.door is None:
        return DockDecision(DockOutcome.UNEXPECTED, (UNEXPECTED, "not_confirmed"))
    if carton.door != door:
        return DockDecision(DockOutcome.WRONG_DOOR, (WRONG_DOOR, "other_door"))
    return DockDecision(DockOutcome.DEPARTED)


# ---------------------------------------------------------------------- the writes


def on_tag(
    tx: Transaction,
    *,
    door: str,
    reader: str,
    scheme: str | None,
    key: str | None,
    filter_value: int | None,
    now_ms: int,
    window_ms: int,
) -> DockOutcome:
    """Judge one tag seen at ``door``'s portal by ``reader`` and write what it causes
    in ``tx`` (the caller commits, then acks the device message)."""
    carton = _load(tx, key) if scheme in CARTON_SCHEMES and key else None
    decision = decide(
        scheme=scheme, key=key, carton=carton, door=door, now_ms=now_ms, window_ms=window_ms
    )
    if decision.outcome is DockOutcome.DEPARTED:
        assert carton is not None and carton.shipment is not None and key is not None
        _depart(tx, carton, sscc=key, door=door, reader=reader, now_ms=now_ms)
    elif decision.alert is not None:
        kind, why = decision.alert
        assert key is not None
        detail: dict[str, Any] = {"sscc": key, "door": door, "reader": reader, "why": why}
        detail["filter"] = filter_value
        if carton is not None:
            detail.update(shipment=carton.shipment, expected_door=carton.door)
            if carton.departed_ms is not None:
                detail["departed_ms"] = carton.departed_ms
        _raise(tx, kind, f"{key}@{door}", detail, now_ms)
    return decision.outcome


def check_windows(tx: Transaction, *, now_ms: int, window_ms: int) -> list[str]:
    """Raise ``dock_shipment_incomplete`` for each shipment whose first carton was
    seen more than ``window_ms`` ago and which still misses cartons (once per
    shipment while open; the detail lists the missing SSCCs). Returns the
    shipments alerted now. Run it on a timer; the alert clears when the last
    carton departs (:func:`on_tag`)."""
    rows = tx.execute(
        "SELECT shipment, door, first_seen_ms FROM shipments "
        "WHERE first_seen_ms IS NOT NULL AND departed_ms IS NULL AND first_seen_ms < ? "
        "ORDER BY first_seen_ms, shipment",
        (now_ms - window_ms,),
    ).fetchall()
    raised: list[str] = []
    for shipment, door, first_seen in rows:
        missing = [
            str(r[0])
            for r in tx.execute(
                "SELECT sscc FROM cartons WHERE shipment = ? AND departed_ms IS NULL ORDER BY sscc",
                (shipment,),
            )
        ]
        detail = {
            "shipment": shipment,
            "door": door,
            "missing": missing,
            "first_seen_ms": first_seen,
            "window_ms": window_ms,
        }
        if missing and _raise(tx, INCOMPLETE, str(shipment), detail, now_ms):
            raised.append(str(shipment))
    return raised


def _load(tx: Transaction, sscc: str) -> CartonAtDock | None:
    # A carton whose shipment is not confirmed (no shipments row) is expected nowhere.
    row = tx.execute(
        "SELECT c.carton, c.state, c.shipment, "
        "CASE WHEN s.shipment IS NULL THEN NULL ELSE COALESCE(c.door, s.door) END, "
        "c.departed_ms FROM cartons c LEFT JOIN shipments s ON s.shipment = c.shipment "
        "WHERE c.sscc = ?",
        (sscc,),
    ).fetchone()
    return None if row is None else CartonAtDock(*row)


def _depart(
    tx: Transaction, carton: CartonAtDock, *, sscc: str, door: str, reader: str, now_ms: int
) -> None:
    shipment = carton.shipment
    assert shipment is not None
    moved = tx.execute(
        "UPDATE cartons SET departed_ms = ?, departed_by = ? "
        "WHERE carton = ? AND departed_ms IS NULL",
        (now_ms, reader, carton.carton),
    ).rowcount
    if moved != 1:  # the event goes only with the NULL -> time transition
        return
    tx.append(CartonDeparted(sscc=sscc, shipment=shipment, door=door, reader=reader))
    tx.execute(
        "UPDATE shipments SET first_seen_ms = COALESCE(first_seen_ms, ?) WHERE shipment = ?",
        (now_ms, shipment),
    )
    for kind in (UNEXPECTED, WRONG_DOOR):
        prefix = (len(sscc) + 1, f"{sscc}@")
        _clear(tx, kind, "substr(subject, 1, ?) = ?", prefix, now_ms=now_ms, why="departed")
    left = tx.execute(
        "SELECT COUNT(*) FROM cartons WHERE shipment = ? AND departed_ms IS NULL", (shipment,)
    ).fetchone()[0]
    if left == 0:
        tx.execute("UPDATE shipments SET departed_ms = ? WHERE shipment = ?", (now_ms, shipment))
        _clear(tx, INCOMPLETE, "subject = ?", (shipment,), now_ms=now_ms, why="complete")


def _raise(tx: Transaction, kind: str, subject: str, detail: dict[str, Any], now_ms: int) -> bool:
    """One open alert per (kind, subject): raised and sent upstream unless open."""
    if tx.execute(
        "SELECT 1 FROM alerts WHERE kind = ? AND subject = ? AND cleared_ms IS NULL LIMIT 1",
        (kind, subject),
    ).fetchone():
        return False
    tx.execute(
        "INSERT INTO alerts (kind, severity, subject, detail, raised_ms) VALUES (?, ?, ?, ?, ?)",
        (kind, str(Severity.WARN), subject, msgpack.packb(detail, use_bin_type=True), now_ms),
    )
    # Bookkeeping: never refused by the backlog limit (as edge.store.outbox.raise_alert).
    tx.append_bookkeeping(Alert(kind=kind, severity=Severity.WARN, subject=subject, detail=detail))
    return True


def _clear(
    tx: Transaction, kind: str, where: str, params: tuple[Any, ...], *, now_ms: int, why: str
) -> None:
    """Clear the open alerts of ``kind`` matching ``where``; each goes upstream as
    ``cleared`` with its detail and why."""
    rows = tx.execute(
        f"SELECT id, severity, subject, detail FROM alerts "  # noqa: S608 - fixed fragments only
        f"WHERE kind = ? AND cleared_ms IS NULL AND {where} ORDER BY id",
        (kind, *params),
    ).fetchall()
    for alert_id, severity, subject, blob in rows:
        tx.execute("UPDATE alerts SET cleared_ms = ? WHERE id = ?", (now_ms, alert_id))
        detail = dict(msgpack.unpackb(blob, raw=False))
        detail["cleared"] = why
        tx.append_bookkeeping(
            Alert(
                kind=kind,
                severity=Severity(severity),
                subject=subject,
                detail=detail,
                state=AlertState.CLEARED,
            )
        )
