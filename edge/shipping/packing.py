"""Pack stations: what a scan at a station means, and the rows it writes.

A station packs one order at a time (an order: the picked tasks that share an
``order_ref``, or one task without one). The packer, or the station's fixed
scanner, scans:

- a **tote**, task or order code: the station takes that order when every task
  of it is picked (or cancelled) and it is not shipped; the answer lists what
  is in it (picked, packed, left per SKU) and its cartons;
- an **item** (GTIN, GS1 element string, SGTIN): one unit into the open carton
  (a carton opens with the first unit); a unit the order does not need is
  refused, naming the other picked order that needs it when there is one;
- ``CLOSE``: the open carton closes with the next SSCC of the box's range
  (:mod:`edge.shipping.sscc`). When nothing is left to pack, the order is
  packed: its labels print in one job (``n of m`` known only now) and the
  shipment is confirmed once they printed (or at once when the site does not
  require printed labels);
- ``REPRINT``: the order's label job again, after a printer fault;
- ``RELEASE``: the station lets go of an order nothing of which is packed yet.

Shape: :func:`load` reads the station in the write transaction, :func:`decide`
is pure, :func:`apply` writes the decision and its outbox events
(``shipment_confirmed``) in the same transaction. A refused scan changes
nothing. Nothing here talks to a printer: a decision that needs labels names
the job, and :mod:`edge.shipping.service` sends it after the commit.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cloud_sync.events import Carton, CartonLine, ShipmentConfirmed
from edge.picking.codes import ScannedCode
from edge.picking.model import Feedback
from edge.picking.queries import Reads
from edge.store.db import Transaction

CLOSE, REPRINT, RELEASE = "CLOSE", "REPRINT", "RELEASE"
COMMANDS = (CLOSE, REPRINT, RELEASE)


class PackResult(enum.StrEnum):
    """The ``result`` of a pack station answer (docs/pda.md)."""

    ORDER_OPENED = "order_opened"
    UNIT_PACKED = "unit_packed"
    CARTON_CLOSED = "carton_closed"
    ORDER_PACKED = "order_packed"  # every unit in a closed carton; labels printing
    SHIPPED = "shipped"  # shipment_confirmed committed
    # refusals: nothing changed
    UNKNOWN_CODE = "unknown_code"
    ORDER_NOT_PICKED = "order_not_picked"
    ORDER_SHIPPED = "order_shipped"
    ORDER_ELSEWHERE = "order_elsewhere"
    STATION_BUSY = "station_busy"
    NO_ORDER = "no_order"
    WRONG_ORDER = "wrong_order"
    NOT_IN_ORDER = "not_in_order"
    ALL_PACKED = "all_packed"
    CARTON_EMPTY = "carton_empty"
    UNITS_LEFT = "units_left"
    NOTHING_TO_PRINT = "nothing_to_print"
    NO_PRINTER = "no_printer"
    SSCC_EXHAUSTED = "sscc_exhausted"  # the box's range is used up
    SSCC_UNAVAILABLE = "sscc_unavailable"  # no range configured, or the mark unwritable
    LABEL_INVALID = "label_invalid"  # the order's data makes no printable label


REFUSALS = frozenset(
    {
        PackResult.UNKNOWN_CODE,
        PackResult.ORDER_NOT_PICKED,
        PackResult.ORDER_SHIPPED,
        PackResult.ORDER_ELSEWHERE,
        PackResult.STATION_BUSY,
        PackResult.NO_ORDER,
        PackResult.WRONG_ORDER,
        PackResult.NOT_IN_ORDER,
        PackResult.ALL_PACKED,
        PackResult.CARTON_EMPTY,
        PackResult.UNITS_LEFT,
        PackResult.NOTHING_TO_PRINT,
        PackResult.NO_PRINTER,
        PackResult.SSCC_EXHAUSTED,
        PackResult.SSCC_UNAVAILABLE,
        PackResult.LABEL_INVALID,
    }
)


# ---------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class CartonState:
    carton: int
    n: int  # its number within the order, from 1
    state: str  # open, closed, shipped
    sscc: str | None
    printed: bool
    lines: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class OrderState:
    """An order as a pack station sees it."""

    order: str
    #: every task of it picked or cancelled, and something picked
    ready: bool
    shipped: bool
    #: the station it is at, if any
    station: str | None
    picked: Mapping[str, int]
    packed: Mapping[str, int]
    cartons: tuple[CartonState, ...]
    ship_postcode: str | None = None
    ship_region: str | None = None
    carrier: str | None = None

    def left(self, sku: str) -> int:
        return self.picked.get(sku, 0) - self.packed.get(sku, 0)

    @property
    def units_left(self) -> int:
        return sum(max(self.left(sku), 0) for sku in self.picked)

    @property
    def open_carton(self) -> CartonState | None:
        return next((c for c in self.cartons if c.state == "open"), None)

    @property
    def fully_packed(self) -> bool:
        """Every unit in a closed carton (its labels may still be to print)."""
        return bool(self.cartons) and self.units_left == 0 and self.open_carton is None


@dataclass(frozen=True, slots=True)
class StationScan:
    """What :func:`decide` needs for one scan at ``station``."""

    station: str
    #: the order the station holds
    current: OrderState | None
    #: the order the code names (tote, task or order), when it names one
    named: OrderState | None
    #: the SKU of an item code (None: not an item, or unknown)
    sku: str | None
    #: another picked, unshipped order that still needs ``sku``
    needed_by: str | None
    has_printer: bool
    label_required: bool
    #: the other orders of the current order's cart (the tour it was picked
    #: on) with units to ship: not yet fully packed / packed, labels to print
    cart_open: tuple[str, ...] = ()
    cart_packed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PackDecision:
    result: PackResult
    message: str
    order: str | None = None
    sku: str | None = None
    #: close the open carton (allocating its SSCC)
    close: bool = False
    #: the order is then packed: print its labels (with those of ``cart``, the
    #: cart's other packed orders, in one job) / ship it now
    print_labels: bool = False
    cart: tuple[str, ...] = ()
    ship: bool = False
    release: bool = False

    @property
    def feedback(self) -> Feedback:
        if self.result in REFUSALS:
            return Feedback.ERROR
        return Feedback.SUCCESS


# ---------------------------------------------------------------------- load


def order_key_of(tx: Reads, data: str) -> str | None:
    """The order a tote, task or order code names (pick tasks only)."""
    row = tx.execute(
        "SELECT COALESCE(order_ref, task) FROM tasks WHERE kind = 'pick' "
        "AND (tote = ?1 OR task = ?1 OR order_ref = ?1) ORDER BY received_ms LIMIT 1",
        (data,),
    ).fetchone()
    return None if row is None else str(row[0])


def load_order(tx: Reads, order: str) -> OrderState:
    tasks = tx.execute(
        "SELECT task, state, ship_postcode, ship_region, carrier FROM tasks "
        "WHERE kind = 'pick' AND COALESCE(order_ref, task) = ?",
        (order,),
    ).fetchall()
    picked: dict[str, int] = {}
    for sku, units in tx.execute(
        "SELECT l.sku, SUM(l.picked) FROM task_lines l JOIN tasks t ON t.task = l.task "
        "WHERE t.kind = 'pick' AND t.state = 'done' AND COALESCE(t.order_ref, t.task) = ? "
        "GROUP BY l.sku",
        (order,),
    ):
        if units:
            picked[str(sku)] = int(units)
    cartons: list[CartonState] = []
    packed: dict[str, int] = {}
    for n, (carton, state, sscc, printed) in enumerate(
        tx.execute(
            "SELECT carton, state, sscc, printed_ms FROM cartons WHERE order_ref = ? "
            "ORDER BY carton",
            (order,),
        ).fetchall(),
        start=1,
    ):
        lines = {
            str(sku): int(qty)
            for sku, qty in tx.execute(
                "SELECT sku, qty FROM carton_lines WHERE carton = ? ORDER BY sku", (carton,)
            )
        }
        for sku, qty in lines.items():
            packed[sku] = packed.get(sku, 0) + qty
        cartons.append(CartonState(int(carton), n, str(state), sscc, printed is not None, lines))
    shipped = (
        tx.execute("SELECT 1 FROM shipments WHERE order_ref = ?", (order,)).fetchone() is not None
    )
    at = tx.execute("SELECT station FROM pack_stations WHERE order_ref = ?", (order,)).fetchone()
    states = {str(t[1]) for t in tasks}
    first = tasks[0] if tasks else (None, None, None, None, None)
    return OrderState(
        order=order,
        ready=bool(tasks) and states <= {"done", "cancelled"} and bool(picked),
        shipped=shipped,
        station=None if at is None else str(at[0]),
        picked=picked,
        packed=packed,
        cartons=tuple(cartons),
        ship_postcode=first[2],
        ship_region=first[3],
        carrier=first[4],
    )


def sku_of_gtin(tx: Reads, gtin14: str | None) -> str | None:
    if gtin14 is None:
        return None
    row = tx.execute("SELECT sku FROM item_gtins WHERE gtin = ?", (gtin14,)).fetchone()
    return None if row is None else str(row[0])


def order_needing(tx: Reads, sku: str, besides: str | None) -> str | None:
    """A picked order not yet shipped, other than ``besides``, with units of
    ``sku`` not yet packed (the unit in the packer's hand is probably its)."""
    rows = tx.execute(
        "SELECT COALESCE(t.order_ref, t.task) AS o, SUM(l.picked) FROM task_lines l "
        "JOIN tasks t ON t.task = l.task WHERE t.kind = 'pick' AND t.state = 'done' "
        "AND l.sku = ? AND l.picked > 0 GROUP BY o ORDER BY MIN(t.finished_ms)",
        (sku,),
    ).fetchall()
    for order, units in rows:
        if order == besides:
            continue
        if tx.execute("SELECT 1 FROM shipments WHERE order_ref = ?", (order,)).fetchone():
            continue
        (packed,) = tx.execute(
            "SELECT COALESCE(SUM(cl.qty), 0) FROM carton_lines cl JOIN cartons c "
            "ON c.carton = cl.carton WHERE c.order_ref = ? AND cl.sku = ?",
            (order, sku),
        ).fetchone()
        if int(units) > int(packed):
            return str(order)
    return None


def cart_of(tx: Reads, order: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The other orders picked on the same tours as ``order`` (its cart) that
    have units to ship and are not shipped: (not yet fully packed, packed)."""
    rows = tx.execute(
        "SELECT DISTINCT COALESCE(o.order_ref, o.task) FROM tasks t "
        "JOIN tour_stops s ON s.task = t.task JOIN tour_stops c ON c.tour = s.tour "
        "JOIN tasks o ON o.task = c.task "
        "WHERE t.kind = 'pick' AND COALESCE(t.order_ref, t.task) = ?1 "
        "AND COALESCE(o.order_ref, o.task) <> ?1 ORDER BY 1",
        (order,),
    ).fetchall()
    waiting: list[str] = []
    packed: list[str] = []
    for (other,) in rows:
        state = load_order(tx, str(other))
        if state.shipped or not state.picked:
            continue
        (packed if state.fully_packed else waiting).append(state.order)
    return tuple(waiting), tuple(packed)


def load(
    tx: Transaction,
    station: str,
    code: ScannedCode,
    *,
    has_printer: bool,
    label_required: bool,
    cart_labels: bool = False,
) -> StationScan:
    row = tx.execute("SELECT order_ref FROM pack_stations WHERE station = ?", (station,)).fetchone()
    current = load_order(tx, str(row[0])) if row is not None and row[0] is not None else None
    named: OrderState | None = None
    sku: str | None = None
    needed_by: str | None = None
    if code.valid and code.data.upper() not in COMMANDS:
        sku = sku_of_gtin(tx, code.gtin14)
        if sku is None:
            key = order_key_of(tx, code.data)
            named = load_order(tx, key) if key is not None else None
        elif current is None or current.left(sku) <= 0:
            needed_by = order_needing(tx, sku, current.order if current else None)
    cart: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    if cart_labels and current is not None and code.data.upper() in (CLOSE, REPRINT):
        cart = cart_of(tx, current.order)
    return StationScan(station, current, named, sku, needed_by, has_printer, label_required, *cart)


# ---------------------------------------------------------------------- decide


def decide(scan: StationScan, code: ScannedCode) -> PackDecision:
    """The answer to one scan at a station, and what it changes. Pure."""
    R = PackResult
    cur = scan.current
    command = code.data.strip().upper() if code.valid else ""
    if command == RELEASE:
        if cur is None:
            return PackDecision(R.NO_ORDER, "the station holds no order")
        if cur.packed and not cur.fully_packed:
            return PackDecision(
                R.STATION_BUSY, f"order {cur.order} has packed units: pack it to the end"
            )
        return PackDecision(R.ORDER_OPENED, f"order {cur.order} released", release=True)
    if command == CLOSE:
        return _close(scan)
    if command == REPRINT:
        if cur is None or cur.units_left or cur.open_carton or not cur.cartons:
            return PackDecision(R.NOTHING_TO_PRINT, "no packed order waits for its labels here")
        if not scan.has_printer:
            return PackDecision(R.NO_PRINTER, "this station has no label printer")
        return PackDecision(
            R.ORDER_PACKED,
            f"printing the labels of order {cur.order}" + _with(scan.cart_packed),
            order=cur.order,
            print_labels=True,
            cart=scan.cart_packed,
        )
    if scan.sku is not None:
        return _unit(scan, scan.sku)
    named = scan.named
    if named is None:
        return PackDecision(R.UNKNOWN_CODE, f"{code.data}: no tote, order or item with this code")
    if named.shipped:
        return PackDecision(R.ORDER_SHIPPED, f"order {named.order} is already shipped")
    if not named.ready:
        return PackDecision(R.ORDER_NOT_PICKED, f"order {named.order} is not picked yet")
    if named.station is not None and named.station != scan.station:
        return PackDecision(R.ORDER_ELSEWHERE, f"order {named.order} is at station {named.station}")
    if cur is not None and cur.order != named.order and cur.packed and not cur.fully_packed:
        return PackDecision(
            R.STATION_BUSY, f"finish order {cur.order} first (or pack it to the end)"
        )
    return PackDecision(
        R.ORDER_OPENED,
        f"order {named.order}: {named.units_left} units to pack",
        order=named.order,
    )


def _unit(scan: StationScan, sku: str) -> PackDecision:
    R = PackResult
    cur = scan.current
    if cur is None:
        return PackDecision(R.NO_ORDER, "scan a tote or an order first")
    if cur.left(sku) > 0:
        left = cur.units_left - 1
        return PackDecision(
            R.UNIT_PACKED, f"{sku} packed ({left} left to pack)", order=cur.order, sku=sku
        )
    if scan.needed_by is not None:
        return PackDecision(
            R.WRONG_ORDER, f"this {sku} belongs to order {scan.needed_by}, not {cur.order}"
        )
    if sku in cur.picked:
        return PackDecision(R.ALL_PACKED, f"every {sku} of order {cur.order} is packed")
    return PackDecision(R.NOT_IN_ORDER, f"order {cur.order} has no {sku}")


def _close(scan: StationScan) -> PackDecision:
    R = PackResult
    cur = scan.current
    if cur is None:
        return PackDecision(R.NO_ORDER, "the station holds no order")
    carton = cur.open_carton
    if carton is None or not carton.lines:
        if cur.units_left == 0 and cur.cartons:
            return PackDecision(
                R.CARTON_EMPTY, "no open carton: the order is packed (REPRINT for its labels)"
            )
        return PackDecision(R.CARTON_EMPTY, "the carton is empty: pack a unit first")
    done = cur.units_left == 0
    if done and scan.label_required and not scan.has_printer:
        return PackDecision(R.NO_PRINTER, "this station has no label printer: cannot close")
    if not done:
        return PackDecision(
            R.CARTON_CLOSED,
            f"carton {carton.n} closed; {cur.units_left} units left to pack",
            order=cur.order,
            close=True,
        )
    if scan.label_required and scan.cart_open:
        # the cart's labels come out together, once its last order is packed
        return PackDecision(
            R.ORDER_PACKED,
            f"order {cur.order} packed in {len(cur.cartons)} cartons; its labels print with "
            f"its cart's (still to pack: {', '.join(scan.cart_open)}; REPRINT prints now)",
            order=cur.order,
            close=True,
        )
    if scan.label_required:
        return PackDecision(
            R.ORDER_PACKED,
            f"order {cur.order} packed in {len(cur.cartons)} cartons; printing labels"
            + _with(scan.cart_packed),
            order=cur.order,
            close=True,
            print_labels=True,
            cart=scan.cart_packed,
        )
    return PackDecision(
        R.SHIPPED,
        f"order {cur.order} packed in {len(cur.cartons)} cartons and confirmed",
        order=cur.order,
        close=True,
        print_labels=scan.has_printer,
        ship=True,
    )


def _with(cart: tuple[str, ...]) -> str:
    return f" (with its cart's orders {', '.join(cart)}, one job)" if cart else ""


# ---------------------------------------------------------------------- apply


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
