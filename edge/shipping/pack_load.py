"""Pack stations, read: what :func:`edge.shipping.packing.decide` needs for one
scan, read inside the scan's write transaction (or, for the station's page, on
a read snapshot). No writes here."""

from __future__ import annotations

from edge.picking.codes import ScannedCode
from edge.picking.queries import Reads
from edge.shipping.packing import (
    CLOSE,
    COMMANDS,
    REPRINT,
    CartonState,
    OrderState,
    StationScan,
)
from edge.store.db import Transaction


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
