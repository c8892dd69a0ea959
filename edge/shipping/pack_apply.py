"""Pack stations, write: the one place that writes what a pack station's scan
decided (:func:`edge.shipping.packing.decide`) — stations, cartons and their
lines, SSCCs, shipments — and appends ``shipment_confirmed``, in the scan's
transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cloud_sync.events import Carton, CartonLine, ShipmentConfirmed
from edge.shipping.packing import REFUSALS, PackDecision, PackResult, StationScan
from edge.store.db import Transaction


class Allocate(Protocol):
    """Hands out the next SSCC in the caller's transaction (:mod:`edge.shipping.sscc`)."""

    def __call__(self, tx: Transaction, *, now: int) -> str: ...


@dataclass(slots=True)
class Applied:
    decision: PackDecision
    #: cartons closed by this scan: (carton, sscc)
    closed: list[tuple[int, str]] = field(default_factory=list)
    shipment: str | None = None


def apply(
    tx: Transaction,
    scan: StationScan,
    decision: PackDecision,
    *,
    allocate: Allocate,
    packer: str,
    door_of: Mapping[str, str],
    default_door: str | None,
    now: int,
) -> Applied:
    """Write ``decision`` in ``tx``. ``allocate(tx, now=...)`` hands out the
    next SSCC (:func:`edge.shipping.sscc.allocate`); it may refuse (range
    exhausted), which rolls the whole scan back."""
    applied = Applied(decision)
    station = scan.station
    if decision.result in REFUSALS:
        return applied
    if decision.release:
        tx.execute(
            "UPDATE pack_stations SET order_ref = NULL, carton = NULL WHERE station = ?",
            (station,),
        )
        return applied
    if decision.result is PackResult.ORDER_OPENED:
        tx.execute(
            "INSERT INTO pack_stations (station, order_ref, carton, packer, since_ms) "
            "VALUES (?, ?, NULL, ?, ?) ON CONFLICT (station) DO UPDATE SET "
            "order_ref = excluded.order_ref, carton = NULL, packer = excluded.packer, "
            "since_ms = excluded.since_ms",
            (station, decision.order, packer, now),
        )
        return applied
    order = scan.current
    assert order is not None  # every other decision acts on the station's order
    if decision.sku is not None:
        carton = order.open_carton.carton if order.open_carton else None
        if carton is None:
            carton = int(
                tx.execute(
                    "INSERT INTO cartons (order_ref, station, opened_ms) VALUES (?, ?, ?) "
                    "RETURNING carton",
                    (order.order, station, now),
                ).fetchone()[0]
            )
            tx.execute("UPDATE pack_stations SET carton = ? WHERE station = ?", (carton, station))
        tx.execute(
            "INSERT INTO carton_lines (carton, sku, qty) VALUES (?, ?, 1) "
            "ON CONFLICT (carton, sku) DO UPDATE SET qty = qty + 1",
            (carton, decision.sku),
        )
        return applied
    if decision.close:
        open_carton = order.open_carton
        assert open_carton is not None
        sscc = allocate(tx, now=now)
        tx.execute(
            "UPDATE cartons SET state = 'closed', sscc = ?, closed_ms = ? WHERE carton = ?",
            (sscc, now, open_carton.carton),
        )
        tx.execute("UPDATE pack_stations SET carton = NULL WHERE station = ?", (station,))
        applied.closed.append((open_carton.carton, sscc))
    if decision.ship:
        applied.shipment = ship(
            tx,
            order.order,
            by=packer,
            door=door_of.get(order.carrier or "", default_door),
            now=now,
        )
    return applied


def ship(tx: Transaction, order: str, *, by: str, door: str | None, now: int) -> str:
    """Confirm the shipment of a packed order: ``shipment_confirmed`` with every
    carton's SSCC and lines, the cartons shipped and expected at ``door``, the
    station free. Returns the shipment id: ``SHP-`` and the first carton's SSCC
    (unique: an SSCC is never reused)."""
    cartons = tx.execute(
        "SELECT carton, sscc FROM cartons WHERE order_ref = ? AND state = 'closed' ORDER BY carton",
        (order,),
    ).fetchall()
    shipment = f"SHP-{cartons[0][1]}"
    content = tuple(
        Carton(
            sscc=str(sscc),
            lines=tuple(
                CartonLine(sku=str(sku), qty=int(qty))
                for sku, qty in tx.execute(
                    "SELECT sku, qty FROM carton_lines WHERE carton = ? ORDER BY sku", (carton,)
                )
            ),
        )
        for carton, sscc in cartons
    )
    tx.execute(
        "INSERT INTO shipments (shipment, order_ref, door, confirmed_ms) VALUES (?, ?, ?, ?)",
        (shipment, order, door, now),
    )
    tx.execute(
        "UPDATE cartons SET state = 'shipped', shipment = ?, door = ? "
        "WHERE order_ref = ? AND state = 'closed'",
        (shipment, door, order),
    )
    tx.execute(
        "UPDATE pack_stations SET order_ref = NULL, carton = NULL WHERE order_ref = ?", (order,)
    )
    tx.append(ShipmentConfirmed(shipment=shipment, orders=(order,), cartons=content, by=by))
    return shipment
