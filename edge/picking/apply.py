"""Applying picking decisions: the one place that writes picking's rows and
appends its outbox events.

Every function takes the open :class:`Transaction` and runs on the store's
writer thread inside it (for a scan: inside its savepoint of a group commit),
so the rows and the events of a decision commit together or not at all
(DESIGN.md decision 1). Units become picked in one function only,
:func:`confirm_units` — the stop, the stock, the task line, ``PickConfirmed``
and ``StockDelta`` — used by scans and short picks alike.

What to write was decided before (:mod:`edge.picking.decide`); where a tour
sends a picker is the planner's (:mod:`edge.picking.tours`). The tour shown in
the answer is built afterwards (:mod:`edge.picking.view`).

A task the cloud cancels leaves the floor in the transaction that records the
cancel: master data calls :func:`withdraw_task` inside it (its stops out of
every active tour, their reservations released, the tours re-routed or
finished), so no crash can leave a cancelled task's stops in a tour. Any left
by an older box are taken out at start-up (:func:`withdraw_unpickable`), and a
scan that meets one anyway confirms nothing and takes it out then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from cloud_sync.events import (
    CancelStage,
    PickConfirmed,
    PickedLine,
    PickException,
    PutBack,
    StockDelta,
    StockReason,
    TaskPicked,
)
from edge.picking import counting, stats
from edge.picking import queries as q
from edge.picking import reservations as res
from edge.picking.decide import (
    BindTote,
    Cancel,
    ConfirmLocation,
    Count,
    Decision,
    FinishTour,
    HoldUnits,
    Put,
    ReturnUnits,
    ScanState,
    Short,
    Skip,
    StartTour,
    WithdrawTask,
    decide_cancel,
    short_answer,
    skip_answer,
    started,
)
from edge.picking.load import load_cancel
from edge.picking.model import Picker, Stop, StopState
from edge.picking.putback import apply_put_back
from edge.picking.queries import Allocation
from edge.picking.routes import Spot, single_order_s_shape
from edge.picking.tours import Planner, Prepared
from edge.store.db import Transaction, now_ms
from edge.store.outbox import raise_alert

#: pushed to the picker with the tour
TOUR_ASSIGNED, TOUR_REROUTED = "tour_assigned", "tour_rerouted"


@dataclass(frozen=True, slots=True)
class Applied:
    """A decision once written: the answer, and the tour it shows."""

    decision: Decision
    tour: int | None
    #: lines that cannot be filled (None: the answer has no ``exceptions``)
    exceptions: list[dict[str, Any]] | None = None
    #: the push that goes to the picker with the tour (tour_assigned, tour_rerouted)
    push: str | None = None


# ---------------------------------------------------------------------- scans


def apply_scan(
    tx: Transaction,
    picker: Picker,
    state: ScanState,
    decision: Decision,
    *,
    planner: Planner,
    prepared: Prepared | None,
    now: int,
) -> Applied:
    """Write what ``decision`` intends; a decision without intent writes nothing."""
    intent = decision.intent
    if isinstance(intent, StartTour):
        return start_tour(tx, picker, intent, planner=planner, prepared=prepared, now=now)
    if isinstance(intent, ConfirmLocation):
        q.set_stop_state(tx, intent.stop.tour, intent.stop.stop, StopState.LOCATION_OK)
    elif isinstance(intent, Count):
        _count(tx, picker, intent, now, zero_checks=planner.zero_checks)
    elif isinstance(intent, FinishTour):
        finish_tour(tx, intent.tour, now)
    elif isinstance(intent, BindTote):
        q.bind_tote(tx, intent.tour, intent.task, intent.tote, now)
    elif isinstance(intent, Put):
        _put(tx, intent, now)
    elif isinstance(intent, HoldUnits | ReturnUnits):
        apply_put_back(tx, intent, now)
    elif isinstance(intent, WithdrawTask):
        withdraw_task(tx, intent.task, planner, now)
        return Applied(decision, state.tour, push=TOUR_REROUTED)
    return Applied(decision, state.tour)


def _count(tx: Transaction, picker: Picker, count: Count, now: int, *, zero_checks: bool) -> None:
    stop = count.stop
    if count.to_put:
        state = StopState.TO_PUT
    else:
        state = StopState.DONE if count.done else StopState.LOCATION_OK
    units = count.units
    confirm_units(
        tx,
        stop,
        units,
        picker=picker.id,
        codes=(count.code,),
        state=state,
        release=units,
        zero_checks=zero_checks,
    )
    if count.here_next is not None:
        q.set_stop_state(tx, stop.tour, count.here_next.stop, StopState.LOCATION_OK)
    if count.finish:
        finish_tour(tx, stop.tour, now)


def _put(tx: Transaction, put: Put, now: int) -> None:
    """The stop's units are in their tote: the stop is done (nothing moves
    upstream: they were confirmed when taken from the location)."""
    q.set_stop_state(tx, put.stop.tour, put.stop.stop, StopState.DONE)
    if put.here_next is not None:
        q.set_stop_state(tx, put.stop.tour, put.here_next.stop, StopState.LOCATION_OK)
    if put.finish:
        finish_tour(tx, put.stop.tour, now)


def confirm_units(
    tx: Transaction,
    stop: Stop,
    units: int,
    *,
    picker: str,
    codes: tuple[str, ...],
    state: StopState,
    release: int,
    zero_checks: bool = False,
) -> None:
    """Confirm ``units`` picked at ``stop`` (0: none) and leave it in ``state``.

    The stop's count, the stock row (``units`` taken, ``release`` reserved
    units released), the task line, and upstream a ``pick_confirmed`` and a
    ``stock_delta``: the one place a unit becomes picked. With
    ``zero_checks``, a stock row the units leave at zero gets a zero check.
    """
    q.set_stop_picked(tx, stop, stop.picked + units, state)
    res.take_stock(tx, stop, units, release=release)
    if not units:
        return
    if zero_checks and res.on_hand(tx, stop) <= 0:
        counting.zero_check(tx, stop.sku, stop.location, now_ms())
    res.add_line_picked(tx, stop.task, stop.line, units)
    order, tote = q.order_and_tote(tx, stop.tour, stop.task)
    confirmed = PickConfirmed(
        task=stop.task,
        order=order,
        line=stop.line,
        sku=stop.sku,
        location=stop.location,
        qty=units,
        picker=picker,
        codes=codes,
        tote=tote,
    )
    tx.append(confirmed)
    tx.append(_delta(stop, -units, StockReason.PICK))


def _delta(stop: Stop, qty: int, reason: StockReason) -> StockDelta:
    return StockDelta(
        sku=stop.sku,
        location=stop.location,
        qty=qty,
        reason=reason,
        ref=stop.task,
        lot=stop.lot or None,
    )


def finish_tour(tx: Transaction, tour: int, now: int) -> None:
    """The tour is done; its tasks' lines are picked or short, the tasks done,
    each with its ``task_picked``."""
    q.end_tour(tx, tour, "done", now)
    for task in q.tour_tasks(tx, tour):
        if res.settle_task(tx, task, now):
            task_picked(tx, task, tour)


def task_picked(tx: Transaction, task: str, tour: int) -> None:
    """``task_picked`` for a task whose every line is now picked or short (the
    pack station works from it; sync-v1): its lines and the tote it is in."""
    picker = q.tour_picker(tx, tour)
    order_ref, tote = q.order_and_tote(tx, tour, task)
    lines = tuple(
        PickedLine(
            line=str(line), sku=str(sku), picked=min(picked, qty), short=max(qty - picked, 0)
        )
        for line, sku, qty, picked in tx.execute(
            "SELECT line, sku, qty, picked FROM task_lines WHERE task = ? ORDER BY line", (task,)
        )
    )
    tx.append(
        TaskPicked(
            task=task,
            order=order_ref,
            tour=tour,
            picker=str(picker),
            lines=lines,
            totes=(str(tote),) if tote else (),
        )
    )


# ---------------------------------------------------------------------- tours


def start_tour(
    tx: Transaction,
    picker: Picker,
    start: StartTour,
    *,
    planner: Planner,
    prepared: Prepared | None,
    now: int,
) -> Applied:
    """Match the tasks' lines to stock, reserve, route, and open a tour; on a
    zone with carts, give each task with stops a slot (and a tote to bind).

    Lines the zone cannot fill are reported at once (``pick_exception`` and an
    alert each); when nothing can be filled, no tour is opened and the tasks
    are done.
    """
    tasks = start.tasks
    if res.kinds(tx, tasks) == {"count"}:
        decision, counted = counting.start_count_tour(tx, picker, tasks, planner.layout, now)
        return Applied(decision, counted, push=TOUR_ASSIGNED if counted is not None else None)
    wanted = res.wanted(tx, tasks)
    tour = q.new_tour(tx, picker.id, now)
    plans, walk = planner.plan(tx, tasks, wanted, prepared)
    allocations: list[Allocation] = []
    exceptions: list[dict[str, Any]] = []
    for (task, line, sku, _), plan in zip(wanted, plans, strict=True):
        chosen = planner.reserve(tx, sku, plan)
        allocations.extend((task, line, sku, cand, units) for cand, units in chosen)
        if plan.missing:
            exceptions.append(_unfillable(tx, task, line, sku, plan.missing))
        res.set_line_state(tx, task, line, "assigned" if chosen else "short")
    decision = started(len(allocations), len(exceptions))
    if not allocations:
        q.end_tour(tx, tour, "cancelled", now)
        res.set_tasks_done(tx, tasks, now)
        for task in tasks:  # every line short: the OMS hears the task is over
            task_picked(tx, task, tour)
        return Applied(decision, None, exceptions)
    res.set_tasks_started(tx, tasks)
    q.insert_stops(tx, tour, 1, allocations)
    if walk is None:
        walk = planner.walk(allocations)
    planner.store_route(tx, tour, walk, start=None, first_ord=1)
    _walk_figures(tx, tour, allocations, walk[1].get("length_m"), planner.layout)
    if planner.carts.enabled:
        decision = _load_cart(
            tx, tour, start=start, allocations=allocations, decision=decision, now=now
        )
    return Applied(decision, tour, exceptions or None, push=TOUR_ASSIGNED)


def _walk_figures(
    tx: Transaction,
    tour: int,
    allocations: Sequence[Allocation],
    planned_m: float | None,
    layout: dict[str, Any],
) -> None:
    """What the tour is planned to walk, and what its orders would walk picked
    one order per tour on S-shape routes (walking per unit, edge.picking.stats)."""
    by_task: dict[str, list[Spot]] = {}
    for n, (task, _, _, cand, _) in enumerate(allocations):
        if cand.aisle is not None and cand.y is not None:
            by_task.setdefault(task, []).append(Spot(str(n), cand.aisle, cand.y))
    single = single_order_s_shape(layout, list(by_task.values()))
    units = sum(units for *_, units in allocations)
    q.set_walk_figures(tx, tour, planned_m, single, units)


def _load_cart(
    tx: Transaction,
    tour: int,
    *,
    start: StartTour,
    allocations: Sequence[Allocation],
    decision: Decision,
    now: int,
) -> Decision:
    """Slots for the tasks that have stops, in the order they came; a tote
    the cloud assigned and the picker scanned to start is bound at once."""
    with_stops = list(dict.fromkeys(task for task, *_ in allocations))
    assigned = res.assigned_totes(tx, with_stops)
    bound = {task: tote for task, tote in assigned.items() if tote == start.code}
    q.insert_totes(tx, tour, with_stops, bound, now)
    if start.cart is not None:
        q.set_cart(tx, tour, start.cart)
    totes = q.cart_totes(tx, tour)
    first = next((t for t in totes if t.tote is None), None)
    orders = f"{len(with_stops)} order{'s' if len(with_stops) > 1 else ''}"
    if first is None:
        return replace(decision, message=f"cart of {orders}: {decision.message}")
    want = f"tote {first.assigned}" if first.assigned else "a tote"
    order = first.order or first.task
    message = f"cart of {orders}: scan {want} for slot {first.slot} ({order})"
    return replace(decision, message=message)


def _unfillable(tx: Transaction, task: str, line: str, sku: str, missing: int) -> dict[str, Any]:
    """A line (or its rest) the zone cannot fill: pick_exception + alert, now."""
    exception = PickException(
        task=task,
        line=line,
        sku=sku,
        location=None,
        expected=missing,
        picked=0,
        reason="no_stock",
    )
    tx.append(exception)
    # Every unfillable line is its own alert: no once-per-episode folding.
    subject = f"task {task} line {line}"
    raise_alert(tx, "line_unfillable", "warn", subject, exception.to_data(), once=False)
    return {"task": task, "line": line, "sku": sku, "missing": missing}


# ---------------------------------------------------------------------- short, skip, cancel


def apply_short(
    tx: Transaction, picker: Picker, short: Short, planner: Planner, now: int
) -> Applied:
    """Close the stop short, correct its location, report upstream, and send
    the picker elsewhere for what is missing when the zone has it."""
    stop = short.stop
    confirm_units(
        tx,
        stop,
        short.extra,
        picker=picker.id,
        codes=(),
        state=StopState.SHORT,
        release=stop.qty - stop.picked,
        zero_checks=planner.zero_checks,
    )
    if planner.zero_checks and short.reason == "empty":
        counting.zero_check(tx, stop.sku, stop.location, now)
    if short.correction:
        res.write_off(tx, stop, short.correction)
        tx.append(_delta(stop, -short.correction, StockReason.SHORT))
    exception = PickException(
        task=stop.task,
        line=stop.line,
        sku=stop.sku,
        location=stop.location,
        expected=stop.qty,
        picked=short.found,
        reason=short.reason,
    )
    tx.append(exception)
    stats.note(tx, stop.task, "short", now)
    position = q.position_of(tx, stop.location)
    chosen, still_missing = planner.alternative(tx, stop, short.missing, position)
    if chosen:
        q.insert_stops(tx, stop.tour, q.last_stop_number(tx, stop.tour) + 1, chosen)
    if still_missing:
        detail = {"sku": stop.sku, "missing": still_missing, "location": stop.location}
        subject = f"task {stop.task} line {stop.line}"
        raise_alert(tx, "line_short", "warn", subject, detail, once=False)
    planner.reroute(tx, stop.tour, position)
    finished = not q.open_stops(tx, stop.tour, 1)
    if finished:
        finish_tour(tx, stop.tour, now)
    alternative = chosen[0][3].location if chosen else None
    return Applied(short_answer(short, alternative, finished), stop.tour, push=TOUR_REROUTED)


def apply_skip(tx: Transaction, skip: Skip, planner: Planner) -> Applied:
    """The stop goes back to pending, at the end of a walk re-routed from the picker."""
    stop = skip.stop
    q.set_stop_state(tx, stop.tour, stop.stop, StopState.PENDING)
    stats.note(tx, stop.task, "skip", now_ms())
    planner.reroute_ending_at(tx, stop.tour, stop)
    return Applied(skip_answer(skip), stop.tour, push=TOUR_REROUTED)


def apply_cancel(tx: Transaction, cancel: Cancel, planner: Planner | None, now: int) -> None:
    """Release and cancel the stops, re-route the rest from the picker's last
    stop; a tour left with nothing open is finished. (The picker is pushed
    ``tour_rerouted``.) Without a ``planner`` the open stops keep their walking
    order and the drawn route stays as it was."""
    for stop, release in cancel.releases:
        res.take_stock(tx, stop, 0, release=release)
        q.set_stop_state(tx, cancel.tour, stop.stop, StopState.CANCELLED)
    if planner is not None:
        planner.reroute(tx, cancel.tour, planner.position(tx, cancel.tour))
    if not q.open_stops(tx, cancel.tour, 1):
        finish_tour(tx, cancel.tour, now)


def withdraw_task(
    tx: Transaction, task: str, planner: Planner | None, now: int
) -> list[tuple[int, str]]:
    """Take ``task``'s open stops out of every active tour, in ``tx``: the
    stops are cancelled, what they reserve is released, each tour is re-routed
    from the picker's position or finished when nothing is left open. Returns
    the (tour, picker) changed; nothing when there was nothing to take out, so
    it may run again. Call it in the transaction that records the cancel."""
    changed: list[tuple[int, str]] = []
    for tour, picker, stops in load_cancel(tx, task):
        apply_cancel(tx, decide_cancel(tour, picker, stops), planner, now)
        changed.append((tour, picker))
    return changed


def cancel_stage(tx: Transaction, task: str) -> CancelStage:
    """Where a started task stands when the cloud cancels it: ``picking`` while
    a stop of it is still open in an active tour, else ``picked`` (every stop
    of it done or short, its tour still going)."""
    return CancelStage.PICKING if q.task_has_open_stops(tx, task) else CancelStage.PICKED


def record_put_backs(tx: Transaction, task: str, now: int) -> tuple[PutBack, ...]:
    """The units already picked for ``task`` become put-back work (a row each
    per sku, origin location and lot, for the picker who holds them), in
    ``tx``; returns them for ``task_cancelled``. Call it in the transaction
    that records the cancel."""
    held = q.picked_for_task(tx, task)
    up = tx.store.uptime_ms()
    tx.executemany(
        "INSERT INTO put_backs (task, picker, sku, origin, lot, qty, created_ms, created_up) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(task, picker, sku, loc, lot, units, now, up) for picker, sku, loc, lot, units in held],
    )
    totals: dict[tuple[str, str], int] = {}
    for _, sku, loc, _, units in held:
        totals[sku, loc] = totals.get((sku, loc), 0) + units
    return tuple(PutBack(sku=sku, location=loc, qty=n) for (sku, loc), n in totals.items())


def withdraw_unpickable(
    tx: Transaction, planner: Planner | None, now: int
) -> list[tuple[str, int, str]]:
    """:func:`withdraw_task` for every task with open stops in an active tour
    that is no longer open or started (a cancel a crash, or an older box, left
    half done); returns (task, tour, picker) of what was taken out."""
    return [
        (task, tour, picker)
        for task in q.unpickable_tasks_in_tours(tx)
        for tour, picker in withdraw_task(tx, task, planner, now)
    ]
