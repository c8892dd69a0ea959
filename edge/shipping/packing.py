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

Shape, as for picking: :func:`edge.shipping.pack_load.load` reads the station
in the write transaction; :func:`decide` (here, with the vocabulary) is pure;
:func:`edge.shipping.pack_apply.apply` writes the decision and its outbox
events (``shipment_confirmed``) in the same transaction. A refused scan
changes nothing. Nothing here talks to a printer: a decision that needs labels
names the job, and :mod:`edge.shipping.service` sends it after the commit.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from edge.picking.codes import ScannedCode
from edge.picking.model import Feedback

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
