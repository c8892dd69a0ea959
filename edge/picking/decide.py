"""The decisions of picking, as pure functions of a loaded state.

:func:`decide` is the scan table of pda-api-v1: given what the transaction
read (:class:`ScanState`, see :mod:`edge.picking.load`) and the scanned code, it
returns the answer and what is to be written (an *intent*), nothing else. A
short pick, a skip and a task cancel have their own ``decide_*``. No function
here touches the database, the clock or the network; the writes are
:mod:`edge.picking.apply`'s, the tour the answer shows is
:mod:`edge.picking.view`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.picking.codes import ScannedCode
from edge.picking.errors import InvalidShortError, NoTourError, StopClosedError, UnknownStopError
from edge.picking.model import CartTote, Feedback, PutBackLine, ScanResult, Stop, StopState

SUCCESS, WARNING, ERROR = Feedback.SUCCESS, Feedback.WARNING, Feedback.ERROR

#: the states of a task whose units may be confirmed (``open`` until its tour starts)
PICKABLE = ("open", "started")


@dataclass(frozen=True, slots=True)
class ScanState:
    """What a scan's decision needs, read inside its transaction.

    Only what the decision can need is read: a code that reads as a location
    is not looked up as an item, ``counted_before`` is read for a serialised
    code of the current stop's SKU, ``sku_done`` for another SKU.
    """

    #: the picker's active tour (None: no tour)
    tour: int | None = None
    #: the tour's next open stop in walking order, and the open stop after it
    current: Stop | None = None
    following: Stop | None = None
    #: the zone's location the code names
    location: str | None = None
    #: the SKU the code names as an item
    sku: str | None = None
    #: this very serialised unit was counted in the tour already
    counted_before: bool = False
    #: a stop of ``sku`` is done in the tour (without a tour: the picker's last)
    sku_done: bool = False
    #: without a tour: (task, state) of the tasks the code names; START: the next open ones
    tasks: tuple[tuple[str, str], ...] = ()
    #: the state of the current stop's task (``missing``: no such task). The load
    #: always reads it; a stop of a task that is not open or started (cancelled
    #: by the cloud) confirms nothing
    task_state: str = "started"
    #: a cart tour's totes by slot (empty: not a cart)
    totes: tuple[CartTote, ...] = ()
    #: each stop's units are put into its tote by scanning the tote (carts)
    confirm_put: bool = False
    #: the scanned code is a tote label: this one
    tote: str | None = None
    #: the active tour that tote is bound to (None: free)
    tote_holder: int | None = None
    #: without a tour: the code is a cart label (the cart starts like START)
    cart: str | None = None
    #: without a tour: the picker's open put-back lines (edge.picking.putback)
    put_backs: tuple[PutBackLine, ...] = ()
    #: the scanned location may take the put-back units in hand
    put_back_here: bool = False

    def tote_of(self, task: str) -> CartTote | None:
        return next((t for t in self.totes if t.task == task), None)


# ---------------------------------------------------------------------- intents


@dataclass(frozen=True, slots=True)
class StartTour:
    """Plan, reserve and open a tour over ``tasks`` (its answer is the planner's)."""

    tasks: tuple[str, ...]
    #: the scanned code (a tote the cloud assigned to one of the tasks is bound by it)
    code: str = ""
    #: the cart label that started it
    cart: str | None = None


@dataclass(frozen=True, slots=True)
class BindTote:
    """Bind ``tote`` to ``task``'s slot on the cart of ``tour``."""

    tour: int
    task: str
    tote: str


@dataclass(frozen=True, slots=True)
class Put:
    """The units of ``stop`` went into their tote: the stop is done."""

    stop: Stop
    here_next: Stop | None = None
    finish: bool = False


@dataclass(frozen=True, slots=True)
class ConfirmLocation:
    stop: Stop


@dataclass(frozen=True, slots=True)
class Count:
    """Confirm ``units`` of ``stop`` scanned as ``code``."""

    stop: Stop
    units: int
    code: str
    #: the next stop is at the same location: its label needs no second scan
    here_next: Stop | None = None
    #: that was the tour's last open unit
    finish: bool = False
    #: the stop is complete and its units wait to be put into their tote
    to_put: bool = False

    @property
    def done(self) -> bool:
        return self.stop.picked + self.units >= self.stop.qty


@dataclass(frozen=True, slots=True)
class FinishTour:
    tour: int


@dataclass(frozen=True, slots=True)
class WithdrawTask:
    """The current stop's task is no longer pickable (cancelled by the cloud):
    take its open stops out of the tour, as the cancel should have."""

    task: str


@dataclass(frozen=True, slots=True)
class HoldUnits:
    """``units`` of a put-back line are in the picker's hand (its location next)."""

    line: PutBackLine
    units: int


@dataclass(frozen=True, slots=True)
class ReturnUnits:
    """The units in hand of a put-back line go into ``location``."""

    line: PutBackLine
    location: str


@dataclass(frozen=True, slots=True)
class CountBegin:
    """Counting of ``stop``'s location begins; the box holds ``on_hand`` there."""

    stop: Stop
    on_hand: int


@dataclass(frozen=True, slots=True)
class CountAdd:
    stop: Stop
    units: int


@dataclass(frozen=True, slots=True)
class Recount:
    stop: Stop


@dataclass(frozen=True, slots=True)
class CountClose:
    """The final count of ``stop``: ``counted`` against the box's ``on_hand``
    now; ``expected`` is its on-hand when counting began."""

    stop: Stop
    counted: int
    expected: int
    on_hand: int
    attempts: int


Intent = (
    StartTour
    | ConfirmLocation
    | Count
    | FinishTour
    | WithdrawTask
    | BindTote
    | Put
    | HoldUnits
    | ReturnUnits
    | CountBegin
    | CountAdd
    | Recount
    | CountClose
)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to a scan and what it writes (``intent`` None: nothing)."""

    result: ScanResult
    feedback: Feedback
    message: str
    intent: Intent | None = None


# ---------------------------------------------------------------------- the scan table


def decide(state: ScanState, code: ScannedCode) -> Decision:
    """The answer of pda-api-v1's scan table to ``code`` in ``state``."""
    if state.tour is None:
        return _without_tour(state, code)
    if state.current is None:  # cannot happen: a tour without open stops is done
        return Decision(ScanResult.TOUR_DONE, SUCCESS, "tour complete", FinishTour(state.tour))
    if state.task_state not in PICKABLE:
        # Cannot happen either: a cancel takes its stops out in its own
        # transaction, and start-up repairs any left. Never confirm such units.
        return _withdraw(state.current, state.task_state)
    if not code.valid:
        return _unreadable(code)
    if code.is_start or state.cart is not None:
        return Decision(ScanResult.TOUR_ACTIVE, WARNING, "finish the current tour first")
    unbound = [t for t in state.totes if t.tote is None]
    if unbound:
        return _bind(state, state.tour, unbound)
    if state.current.state == StopState.TO_PUT:
        return _put(state, state.current)
    if state.tote is not None:
        return Decision(
            ScanResult.WRONG_TOTE,
            ERROR,
            f"no put is due: take {state.current.sku} at {state.current.location} first",
        )
    if state.location is not None:
        return _location(state.current, state.location)
    return _item(state, state.current, code)


def _withdraw(current: Stop, task_state: str) -> Decision:
    # Not the picker's mistake, and not bad input: a warning, and the write a
    # cancel owes (the task's stops leave the tour), whatever was scanned.
    task = current.task
    return Decision(
        ScanResult.TASK_UNAVAILABLE,
        WARNING,
        f"task {task} is {task_state}: do not pick it, put back what you took of it; "
        "the tour goes on without it",
        WithdrawTask(task),
    )


def _unreadable(code: ScannedCode) -> Decision:
    return Decision(ScanResult.UNKNOWN_CODE, ERROR, f"cannot read this code: {code.problem}")


def _without_tour(state: ScanState, code: ScannedCode) -> Decision:
    if not code.valid:
        return _unreadable(code)
    if code.is_start or state.cart is not None:
        if not state.tasks:
            return Decision(ScanResult.NO_WORK, WARNING, "no open tasks in this zone")
        return _start(tuple(task for task, _ in state.tasks), code, state.cart)
    if state.tasks:
        open_tasks = tuple(task for task, task_state in state.tasks if task_state == "open")
        if not open_tasks:
            if any(task_state == "started" for _, task_state in state.tasks):
                # started = on another picker's active tour; named by nobody
                return Decision(
                    ScanResult.TAKEN,
                    ERROR,
                    f"{code.data} is taken: another picker is picking it; "
                    "scan another order or START",
                )
            return Decision(
                ScanResult.TASK_UNAVAILABLE,
                ERROR,
                f"{code.data} is already {state.tasks[0][1]}; it cannot be picked again",
            )
        return _start(open_tasks, code)
    # The last item of a finished tour scanned once more is an over-pick,
    # not an unknown code: the picker must hear that it is one too many.
    if state.sku is not None and state.sku_done:
        return Decision(ScanResult.OVER_PICK, ERROR, f"{state.sku}: the tour is already complete")
    return Decision(
        ScanResult.UNKNOWN_CODE, ERROR, f"{code.data}: no order, task or tote with this code"
    )


def _start(tasks: tuple[str, ...], code: ScannedCode, cart: str | None = None) -> Decision:
    start = StartTour(tasks, code.data, cart)
    return Decision(ScanResult.TOUR_STARTED, SUCCESS, "tour started", start)


# ---------------------------------------------------------------------- carts: totes


def _slot(tote: CartTote) -> str:
    return f"slot {tote.slot} (order {tote.order or tote.task})"


def _bind(state: ScanState, tour: int, unbound: list[CartTote]) -> Decision:
    """Cart start: each order's tote is scanned before the walk begins."""
    scanned = state.tote
    first = unbound[0]
    if scanned is None:
        want = f"tote {first.assigned}" if first.assigned else "a tote"
        return Decision(ScanResult.TOTE_EXPECTED, WARNING, f"scan {want} for {_slot(first)} first")
    on_cart = next((t for t in state.totes if t.tote == scanned), None)
    if on_cart is not None:
        return Decision(
            ScanResult.WRONG_TOTE, ERROR, f"{scanned} is on this cart already, {_slot(on_cart)}"
        )
    if state.tote_holder is not None:
        return Decision(
            ScanResult.TOTE_IN_USE, ERROR, f"{scanned} is on another picker's cart: take another"
        )
    target = next((t for t in unbound if t.assigned == scanned), None)
    if target is None:
        target = next((t for t in unbound if t.assigned is None), None)
    if target is None:
        return Decision(
            ScanResult.WRONG_TOTE,
            ERROR,
            f"{scanned} is not this order's tote: scan tote {first.assigned} for {_slot(first)}",
        )
    left = [t for t in unbound if t is not target]
    nxt = state.current
    if left:
        then = f"now a tote for {_slot(left[0])}"
    elif nxt is not None:
        then = f"cart ready: go to {nxt.location}"
    else:
        then = "cart ready"
    return Decision(
        ScanResult.TOTE_BOUND,
        SUCCESS,
        f"{scanned} is {_slot(target)}; {then}",
        BindTote(tour, target.task, scanned),
    )


def _put(state: ScanState, stop: Stop) -> Decision:
    """The stop's units are in hand: the scan of their tote confirms the put."""
    tote = state.tote_of(stop.task)
    label = tote.tote if tote is not None and tote.tote else "its tote"
    where = f"{label} ({_slot(tote)})" if tote is not None else label
    if state.tote is None:
        return Decision(
            ScanResult.TOTE_EXPECTED,
            WARNING,
            f"put {stop.qty} {stop.sku} into {where}, then scan the tote",
        )
    if tote is None or state.tote != tote.tote:
        other = next((t for t in state.totes if t.tote == state.tote), None)
        which = f"{state.tote} is {_slot(other)}" if other else f"{state.tote} is not on this cart"
        return Decision(ScanResult.WRONG_TOTE, ERROR, f"{which}: put them into {where}")
    nxt = state.following
    if nxt is None:
        return Decision(ScanResult.TOUR_DONE, SUCCESS, "tour complete", Put(stop, finish=True))
    if nxt.location == stop.location and nxt.state == StopState.PENDING:
        return Decision(
            ScanResult.STOP_DONE,
            SUCCESS,
            f"stop done; here too: take {nxt.qty} {nxt.sku}",
            Put(stop, here_next=nxt),
        )
    return Decision(ScanResult.STOP_DONE, SUCCESS, f"stop done; go to {nxt.location}", Put(stop))


def _location(current: Stop, location: str) -> Decision:
    if location != current.location:
        return Decision(
            ScanResult.WRONG_LOCATION,
            ERROR,
            f"{location} is the wrong location: go to {current.location}",
        )
    confirm = ConfirmLocation(current) if current.state == StopState.PENDING else None
    return Decision(ScanResult.LOCATION_OK, SUCCESS, f"{location}: take {current.sku}", confirm)


def _item(state: ScanState, current: Stop, code: ScannedCode) -> Decision:
    sku = state.sku
    if sku is None:
        return Decision(ScanResult.UNKNOWN_CODE, ERROR, f"{code.data}: unknown code")
    if code.count < 1:
        return Decision(ScanResult.UNKNOWN_CODE, ERROR, "count must be at least 1")
    if sku == current.sku and current.state == StopState.LOCATION_OK:
        return _count(state, current, code)
    if sku != current.sku and state.sku_done:
        return Decision(ScanResult.OVER_PICK, ERROR, f"{sku} is complete: put the extra unit back")
    if current.state == StopState.PENDING:
        if sku == current.sku:
            return Decision(
                ScanResult.LOCATION_REQUIRED,
                WARNING,
                f"scan the location {current.location} first",
            )
        return Decision(
            ScanResult.WRONG_ITEM, ERROR, f"{sku} is not picked here: go to {current.location}"
        )
    return Decision(ScanResult.WRONG_ITEM, ERROR, f"{sku} is the wrong item: take {current.sku}")


def _count(state: ScanState, stop: Stop, code: ScannedCode) -> Decision:
    problem = lot_problem(stop, code)
    if problem is not None:
        return Decision(ScanResult.WRONG_ITEM, ERROR, problem)
    if code.serialised and state.counted_before:
        return Decision(ScanResult.OVER_PICK, ERROR, "this very unit was counted already")
    if stop.picked + code.count > stop.qty:
        left = stop.qty - stop.picked
        return Decision(
            ScanResult.OVER_PICK, ERROR, f"{code.count} is more than the {left} still to pick"
        )
    picked = stop.picked + code.count
    if picked < stop.qty:
        count = Count(stop, code.count, code.raw)
        return Decision(ScanResult.ITEM_OK, SUCCESS, f"{picked} of {stop.qty} {stop.sku}", count)
    tote = state.tote_of(stop.task) if state.confirm_put else None
    if tote is not None:
        count = Count(stop, code.count, code.raw, to_put=True)
        message = f"{picked} of {stop.qty} {stop.sku}: put them into {tote.tote} ({_slot(tote)})"
        return Decision(ScanResult.ITEM_OK, SUCCESS, message, count)
    nxt = state.following
    if nxt is None:
        count = Count(stop, code.count, code.raw, finish=True)
        return Decision(ScanResult.TOUR_DONE, SUCCESS, "tour complete", count)
    if nxt.location == stop.location and nxt.state == StopState.PENDING:
        # The picker is standing at the next stop already: no second label scan.
        count = Count(stop, code.count, code.raw, here_next=nxt)
        message = f"stop done; here too: take {nxt.qty} {nxt.sku}"
    else:
        count = Count(stop, code.count, code.raw)
        message = f"stop done; go to {nxt.location}"
    return Decision(ScanResult.STOP_DONE, SUCCESS, message, count)


def lot_problem(stop: Stop, code: ScannedCode) -> str | None:
    """A GS1 code whose lot or expiry is not the stop's: the wrong physical unit."""
    if code.lot is not None and stop.lot and code.lot != stop.lot:
        return f"lot {code.lot} is the wrong lot: take lot {stop.lot}"
    if code.expiry is not None and stop.expiry and code.expiry != stop.expiry:
        return f"expiry {code.expiry} is the wrong date: take the unit expiring {stop.expiry}"
    return None


def started(stops: int, exceptions: int) -> Decision:
    """The answer to a tour the planner opened with ``stops`` stops, while
    ``exceptions`` lines could not be filled (0 stops: no tour at all)."""
    if not stops:
        return Decision(
            ScanResult.NO_STOCK,
            ERROR,
            "nothing of this can be picked in this zone; reported upstream",
        )
    if exceptions:
        message = f"{exceptions} line(s) cannot be filled here and were reported"
        return Decision(ScanResult.TOUR_STARTED, WARNING, message)
    return Decision(ScanResult.TOUR_STARTED, SUCCESS, f"{stops} stops")


# ---------------------------------------------------------------------- short, skip, cancel


@dataclass(frozen=True, slots=True)
class AtStop:
    """What a short pick or a skip of stop ``number`` needs, read in its transaction."""

    number: int
    #: the picker's active tour, and its stop ``number`` (None: none)
    tour: int | None
    stop: Stop | None
    #: units of the stop's stock row now (read for short picks only)
    on_hand: int = 0
    #: the state of the stop's task (read for open stops)
    task_state: str = "started"


@dataclass(frozen=True, slots=True)
class Short:
    """Close ``stop`` short with ``found`` units and write ``correction`` off its location."""

    stop: Stop
    found: int
    reason: str
    correction: int

    @property
    def extra(self) -> int:
        """Units found but not scanned one by one: confirmed now, like scans."""
        return self.found - self.stop.picked

    @property
    def missing(self) -> int:
        return self.stop.qty - self.found


@dataclass(frozen=True, slots=True)
class Skip:
    """Move ``stop`` to the end of the walk."""

    stop: Stop


@dataclass(frozen=True, slots=True)
class Cancel:
    """Take a cancelled task's open stops out of ``tour``, releasing their reservations."""

    tour: int
    picker: str
    #: (stop, reserved units to release)
    releases: tuple[tuple[Stop, int], ...]


def _open_stop(at: AtStop) -> Stop:
    if at.tour is None:
        raise NoTourError("no active tour")
    if at.stop is None:
        raise UnknownStopError(f"the tour has no stop {at.number}")
    if not at.stop.open:
        raise StopClosedError(f"stop {at.number} is already {at.stop.state}")
    if at.stop.state == StopState.TO_PUT:
        raise StopClosedError(f"stop {at.number} is picked: put its units into their tote")
    if at.task_state not in PICKABLE:
        raise StopClosedError(
            f"stop {at.number} is of task {at.stop.task}, which is {at.task_state}: "
            "it leaves the tour"
        )
    return at.stop


def decide_short(at: AtStop, found: int, reason: str) -> Short:
    """A short pick of ``found`` units at the stop; refused with a :class:`PickingError`
    when there is no tour, no such stop, the stop is closed or its task is no
    longer pickable, or ``found`` is out of range."""
    stop = _open_stop(at)
    if not stop.picked <= found < stop.qty:
        raise InvalidShortError(
            f"found must be between {stop.picked} (already scanned) and {stop.qty - 1}"
        )
    # Correct the location: "empty" means nothing of this lot is left there;
    # otherwise the units the picker could not take are written off.
    left = at.on_hand - (found - stop.picked)  # once the found units are taken
    correction = left if reason == "empty" else min(stop.qty - found, max(left, 0))
    return Short(stop, found, reason, correction)


def short_answer(short: Short, alternative: str | None, finished: bool) -> Decision:
    """The answer to a short pick, once the rest of the tour is re-planned:
    ``alternative`` is the first other location sent to, ``finished`` says
    nothing open was left."""
    if finished:
        return Decision(ScanResult.TOUR_DONE, WARNING, "tour complete (with a short pick)")
    sku, missing = short.stop.sku, short.missing
    if alternative is not None:
        message = f"{missing} {sku} from another location: {alternative}"
        return Decision(ScanResult.REROUTED, WARNING, message)
    return Decision(ScanResult.SHORT_RECORDED, WARNING, f"{missing} {sku} missing; reported")


def decide_skip(at: AtStop) -> Skip:
    """Skip the stop; refused like a short pick."""
    return Skip(_open_stop(at))


def skip_answer(skip: Skip) -> Decision:
    return Decision(ScanResult.SKIPPED, WARNING, f"stop {skip.stop.stop} moved to the end")


def decide_cancel(tour: int, picker: str, stops: list[Stop]) -> Cancel:
    """Every open stop of a cancelled task leaves the tour with what it still reserves."""
    # a count stop reserves nothing (its qty is 0, its "picked" the units counted)
    return Cancel(tour, picker, tuple((stop, max(stop.qty - stop.picked, 0)) for stop in stops))
