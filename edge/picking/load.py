"""Reading what a picking decision needs, inside its write transaction.

Each function runs on the store's writer thread inside the transaction (for a
scan: its savepoint of a group commit) whose writes the decision will make, so
nothing read before the transaction decides anything and two pickers — or
two retries of one scan — can never both take the same units. A function
reads only what its decision can need: one scan costs the queries its answer
needs, no more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from edge.picking import queries as q
from edge.picking import reservations as res
from edge.picking.codes import ScannedCode
from edge.picking.decide import PICKABLE, AtStop, ScanState
from edge.picking.model import CartSettings, PutBackLine, Stop, StopState
from edge.store.db import Transaction

#: a zone without carts
NO_CARTS = CartSettings()


def load_scan(
    tx: Transaction,
    picker: str,
    code: ScannedCode,
    *,
    start_tasks: int,
    carts: CartSettings = NO_CARTS,
    proposal: Sequence[str] | None = None,
) -> ScanState:
    """The :class:`ScanState` of a scan of ``code`` by ``picker``; ``proposal``
    is the cart the planner proposed for a START on its snapshot (checked here)."""
    tour = q.active_tour(tx, picker)
    if tour is None:
        return _without_tour(
            tx, picker, code, start_tasks=start_tasks, carts=carts, proposal=proposal
        )
    # The stop after the current one comes with it: a completed stop sends the picker there.
    stops = q.open_stops(tx, tour, 2)
    current = stops[0] if stops else None
    following = stops[1] if len(stops) > 1 else None
    if current is None:
        return ScanState(tour)
    # Read in the transaction like the rest: a cancel committed just before
    # this scan is seen, and the stop confirms nothing.
    task_state = res.task_state(tx, current.task)
    state = ScanState(tour, current, following, task_state=task_state)
    if task_state not in PICKABLE or not code.valid or code.is_start:
        return state
    totes = tuple(q.cart_totes(tx, tour))
    if totes:
        state = replace(state, totes=totes, confirm_put=carts.confirm_put)
        tote = carts.tote_label(code.data)
        if tote is not None:
            holder = q.tote_holder(tx, tote)
            return replace(state, tote=tote, tote_holder=holder if holder != tour else None)
    if carts.cart_label(code.data) is not None:
        return replace(state, cart=code.data)
    location = q.location_of(tx, code)
    if location is not None:
        return replace(state, location=location)
    sku = q.item_sku(tx, code)
    if sku is None or code.count < 1:
        return replace(state, sku=sku)
    if sku != current.sku:
        return replace(state, sku=sku, sku_done=q.has_done_stop(tx, tour, sku))
    counted = (
        code.serialised
        and current.state == StopState.LOCATION_OK
        and q.counted_before(tx, tour, code.raw)
    )
    return replace(state, sku=sku, counted_before=counted)


def _without_tour(
    tx: Transaction,
    picker: str,
    code: ScannedCode,
    *,
    start_tasks: int,
    carts: CartSettings,
    proposal: Sequence[str] | None,
) -> ScanState:
    if not code.valid:
        return ScanState()
    put_backs = tuple(q.open_put_backs(tx, picker))
    if put_backs:
        return _put_back(tx, code, carts, put_backs)
    cart = carts.cart_label(code.data)
    if code.is_start or cart is not None:
        return ScanState(tasks=_start_tasks(tx, start_tasks, carts, proposal), cart=cart)
    named = res.tasks_named(tx, code.data)
    if named:
        return ScanState(tasks=tuple(named))
    last = q.last_tour(tx, picker)
    if last is None:
        return ScanState()
    sku = q.item_sku(tx, code)
    return ScanState(sku=sku, sku_done=sku is not None and q.has_done_stop(tx, last, sku))


def _put_back(
    tx: Transaction, code: ScannedCode, carts: CartSettings, lines: tuple[PutBackLine, ...]
) -> ScanState:
    """What a scan of a picker with open put-back lines needs
    (:func:`edge.picking.putback.decide_put_back`)."""
    state = ScanState(put_backs=lines, cart=carts.cart_label(code.data))
    if code.is_start or state.cart is not None:
        return state
    location = q.location_of(tx, code)
    if location is not None:
        held = next((line for line in lines if line.in_hand), None)
        here = held is not None and (location == held.origin or q.holds_sku(tx, location, held.sku))
        return replace(state, location=location, put_back_here=here)
    sku = q.item_sku(tx, code)
    if sku is not None:
        return replace(state, sku=sku)
    return replace(state, tasks=tuple(res.tasks_named(tx, code.data)))


def _start_tasks(
    tx: Transaction, start_tasks: int, carts: CartSettings, proposal: Sequence[str] | None
) -> tuple[tuple[str, str], ...]:
    """The tasks a START takes: the most urgent open task when it is a count
    (a count tour); else on carts, the proposed cart's tasks still open now
    (another picker may have started some since), topped up with the next by
    priority that fit; without carts, the next ``start_tasks``."""
    urgent = res.most_urgent_kind(tx)
    if urgent is not None and urgent[1] == "count":
        # counts and picks interleave by priority: a count tour of that task
        return ((urgent[0], "open"),)
    if not carts.enabled:
        tasks = res.next_open_tasks(tx, start_tasks)
    else:
        tasks = res.still_open(tx, proposal) if proposal else []
        if len(tasks) < carts.totes:
            # another picker took some of it (or there was no proposal): the
            # room left goes to the next tasks by priority that fit
            tasks = res.next_cart_tasks(tx, carts.totes, carts.units, taken=tasks)
    return tuple((task, "open") for task in tasks)


def load_stop(tx: Transaction, picker: str, number: int, *, stock: bool = False) -> AtStop:
    """Stop ``number`` of the picker's active tour; with ``stock``, its stock row's units."""
    tour = q.active_tour(tx, picker)
    if tour is None:
        return AtStop(number, None, None)
    stop = q.stop(tx, tour, number)
    if stop is None or not stop.open:
        return AtStop(number, tour, stop)
    task_state = res.task_state(tx, stop.task)
    if not stock or task_state not in PICKABLE:
        return AtStop(number, tour, stop, task_state=task_state)
    return AtStop(number, tour, stop, res.on_hand(tx, stop), task_state=task_state)


def load_cancel(tx: Transaction, task: str) -> list[tuple[int, str, list[Stop]]]:
    """(tour, picker, open stops of ``task``) of each active tour a cancel reaches."""
    return [
        (tour, picker, q.open_stops_of(tx, tour, task))
        for tour, picker in q.tours_with_open_stops_of(tx, task)
    ]
