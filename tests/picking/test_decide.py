"""The scan table of pda-api-v1 as a table: :func:`decide` without a database.

Each row gives the loaded state, the scanned string, and what the decision must
be — result, feedback and intent (what it writes; None: nothing). The rows
through the real API are in test_picking_scan_table.py.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from edge.picking import decide as decide_module
from edge.picking.codes import ScannedCode, interpret
from edge.picking.decide import (
    AtStop,
    Cancel,
    ConfirmLocation,
    Count,
    Decision,
    FinishTour,
    Intent,
    ScanState,
    Short,
    Skip,
    StartTour,
    WithdrawTask,
    decide,
    decide_cancel,
    decide_short,
    decide_skip,
    short_answer,
    skip_answer,
    started,
)
from edge.picking.errors import InvalidShortError, NoTourError, StopClosedError, UnknownStopError
from edge.picking.model import Feedback, ScanResult, Stop, StopState

OK, WARN, ERR = Feedback.SUCCESS, Feedback.WARNING, Feedback.ERROR
R = ScanResult
GTIN_A = "09521234000013"
GTIN_B = "09521234000020"
GTIN_D = "80614141123458"
EPC_D = "3074257BF7194E4000001A85"  # an SGTIN of GTIN_D: one serialised unit


def stop(
    number: int = 1,
    *,
    sku: str = "SKU-A",
    location: str = "A-01-05",
    qty: int = 2,
    picked: int = 0,
    state: StopState = StopState.PENDING,
    lot: str = "",
    expiry: str | None = None,
) -> Stop:
    return Stop(7, number, "T-1", "1", sku, location, lot, expiry, qty, picked, state, number)


AT_A = stop(state=StopState.PENDING)
HERE_A = stop(state=StopState.LOCATION_OK)
LAST_UNIT_A = stop(state=StopState.LOCATION_OK, picked=1)
NEXT_C = stop(2, sku="SKU-C", location="A-06-15", qty=3)
NEXT_HERE = stop(2, sku="SKU-B", location="A-01-05", qty=4)
LOT_B = stop(sku="SKU-B", location="A-04-10", lot="L1", expiry="2026-12-31", qty=5)
HERE_LOT_B = replace(LOT_B, state=StopState.LOCATION_OK)
SERIAL_D = stop(sku="SKU-D", location="A-03-12", qty=3, state=StopState.LOCATION_OK)


def in_tour(
    current: Stop | None,
    following: Stop | None = None,
    *,
    location: str | None = None,
    sku: str | None = None,
    counted_before: bool = False,
    sku_done: bool = False,
) -> ScanState:
    """The state of a scan in tour 7 at ``current``, the code resolved as given."""
    return ScanState(7, current, following, location, sku, counted_before, sku_done)


@dataclass(frozen=True)
class Row:
    id: str
    state: ScanState
    code: str | ScannedCode
    result: ScanResult
    feedback: Feedback
    intent: Intent | None = None


UNREADABLE = ScannedCode("\x01?", "\x01?", "invalid", problem="bad check digit")

ROWS = [
    # --- the contract's table -----------------------------------------------------------
    # no tour: an order, task or tote barcode; or START → tour_started
    Row(
        "no tour: order",
        ScanState(tasks=(("T-1", "open"), ("T-2", "open"))),
        "O-1",
        R.TOUR_STARTED,
        OK,
        StartTour(("T-1", "T-2"), "O-1"),
    ),
    Row(
        "no tour: a named task already started is left out",
        ScanState(tasks=(("T-1", "started"), ("T-2", "open"))),
        "O-1",
        R.TOUR_STARTED,
        OK,
        StartTour(("T-2",), "O-1"),
    ),
    Row(
        "no tour: tote",
        ScanState(tasks=(("T-4", "open"),)),
        "TOTE-9",
        R.TOUR_STARTED,
        OK,
        StartTour(("T-4",), "TOTE-9"),
    ),
    Row(
        "no tour: START",
        ScanState(tasks=(("T-9", "open"),)),
        "START",
        R.TOUR_STARTED,
        OK,
        StartTour(("T-9",), "START"),
    ),
    Row(
        "no tour: start, any case",
        ScanState(tasks=(("T-9", "open"),)),
        " start ",
        R.TOUR_STARTED,
        OK,
        StartTour(("T-9",), " start "),
    ),
    # at a stop: the stop's location → location_ok; another location → wrong_location
    Row(
        "at a stop: its location",
        in_tour(AT_A, location="A-01-05"),
        "A-01-05",
        R.LOCATION_OK,
        OK,
        ConfirmLocation(AT_A),
    ),
    Row(
        "at a stop: its location again",
        in_tour(HERE_A, location="A-01-05"),
        "A-01-05",
        R.LOCATION_OK,
        OK,
    ),
    Row(
        "at a stop: its label without the default pattern",
        in_tour(replace(AT_A, location="BAY7"), location="BAY7"),
        "BAY7",
        R.LOCATION_OK,
        OK,
        ConfirmLocation(replace(AT_A, location="BAY7")),
    ),
    Row(
        "at a stop: another location",
        in_tour(AT_A, location="A-09-18"),
        "A-09-18",
        R.WRONG_LOCATION,
        ERR,
    ),
    Row(
        "location confirmed: another location",
        in_tour(HERE_A, location="A-09-18"),
        "A-09-18",
        R.WRONG_LOCATION,
        ERR,
    ),
    # location confirmed: the item → item_ok, or stop_done when the quantity is complete
    Row(
        "location confirmed: the item (GTIN)",
        in_tour(HERE_A, NEXT_C, sku="SKU-A"),
        GTIN_A,
        R.ITEM_OK,
        OK,
        Count(HERE_A, 1, GTIN_A),
    ),
    Row(
        "location confirmed: the item (SKU label)",
        in_tour(HERE_A, NEXT_C, sku="SKU-A"),
        "SKU-A",
        R.ITEM_OK,
        OK,
        Count(HERE_A, 1, "SKU-A"),
    ),
    Row(
        "location confirmed: the item completes the stop",
        in_tour(LAST_UNIT_A, NEXT_C, sku="SKU-A"),
        GTIN_A,
        R.STOP_DONE,
        OK,
        Count(LAST_UNIT_A, 1, GTIN_A),
    ),
    Row(
        "location confirmed: a GS1 count completes the stop",
        in_tour(HERE_A, NEXT_C, sku="SKU-A"),
        f"02{GTIN_A}372",
        R.STOP_DONE,
        OK,
        Count(HERE_A, 2, f"02{GTIN_A}372"),
    ),
    Row(
        "location confirmed: the next stop is here, its label needs no scan",
        in_tour(LAST_UNIT_A, NEXT_HERE, sku="SKU-A"),
        GTIN_A,
        R.STOP_DONE,
        OK,
        Count(LAST_UNIT_A, 1, GTIN_A, here_next=NEXT_HERE),
    ),
    Row(
        "location confirmed: the right lot and expiry",
        in_tour(HERE_LOT_B, sku="SKU-B"),
        f"01{GTIN_B}17261231" + "10L1",
        R.ITEM_OK,
        OK,
        Count(HERE_LOT_B, 1, f"01{GTIN_B}17261231" + "10L1"),
    ),
    Row(
        "location confirmed: a serialised unit not counted yet",
        in_tour(SERIAL_D, sku="SKU-D"),
        EPC_D,
        R.ITEM_OK,
        OK,
        Count(SERIAL_D, 1, EPC_D),
    ),
    # location confirmed: another item → wrong_item
    Row(
        "location confirmed: another item",
        in_tour(HERE_A, sku="SKU-C"),
        "SKU-C",
        R.WRONG_ITEM,
        ERR,
    ),
    Row(
        "location confirmed: the item of the wrong lot",
        in_tour(HERE_LOT_B, sku="SKU-B"),
        f"01{GTIN_B}17270630" + "10L2",
        R.WRONG_ITEM,
        ERR,
    ),
    Row(
        "location confirmed: the item with the wrong expiry",
        in_tour(HERE_LOT_B, sku="SKU-B"),
        f"01{GTIN_B}17270101" + "10L1",
        R.WRONG_ITEM,
        ERR,
    ),
    Row(
        "at a stop: another item before the location",
        in_tour(AT_A, sku="SKU-C"),
        "SKU-C",
        R.WRONG_ITEM,
        ERR,
    ),
    # any state: a code the edge cannot resolve → unknown_code
    Row("no tour: unreadable", ScanState(), UNREADABLE, R.UNKNOWN_CODE, ERR),
    Row("no tour: nothing named", ScanState(), "NOT-AN-ORDER", R.UNKNOWN_CODE, ERR),
    Row("at a stop: unreadable", in_tour(AT_A), UNREADABLE, R.UNKNOWN_CODE, ERR),
    Row("at a stop: nothing known", in_tour(AT_A), "no such thing", R.UNKNOWN_CODE, ERR),
    Row("location confirmed: nothing known", in_tour(HERE_A), "A-07-07", R.UNKNOWN_CODE, ERR),
    Row(
        "location confirmed: a count of zero",
        in_tour(HERE_A, sku="SKU-A"),
        f"02{GTIN_A}370",
        R.UNKNOWN_CODE,
        ERR,
    ),
    # stop already complete: the item again → over_pick
    Row(
        "stop complete: its item again",
        in_tour(NEXT_C, sku="SKU-A", sku_done=True),
        GTIN_A,
        R.OVER_PICK,
        ERR,
    ),
    Row(
        "tour complete: its last item again",
        ScanState(sku="SKU-A", sku_done=True),
        GTIN_A,
        R.OVER_PICK,
        ERR,
    ),
    Row(
        "location confirmed: more than the quantity",
        in_tour(HERE_A, sku="SKU-A"),
        f"02{GTIN_A}373",
        R.OVER_PICK,
        ERR,
    ),
    Row(
        "location confirmed: a serialised unit counted before",
        in_tour(SERIAL_D, sku="SKU-D", counted_before=True),
        f"01{GTIN_D}21SN-1",
        R.OVER_PICK,
        ERR,
    ),
    # last stop done → tour_done
    Row(
        "the last unit of the tour",
        in_tour(LAST_UNIT_A, None, sku="SKU-A"),
        GTIN_A,
        R.TOUR_DONE,
        OK,
        Count(LAST_UNIT_A, 1, GTIN_A, finish=True),
    ),
    Row(
        "a tour left without open stops",
        in_tour(None),
        GTIN_A,
        R.TOUR_DONE,
        OK,
        FinishTour(7),
    ),
    # --- the edge's own answers beyond the table -----------------------------------------
    Row("no tour: START without work", ScanState(), "START", R.NO_WORK, WARN),
    Row(
        "no tour: a task another picker started is taken",
        ScanState(tasks=(("T-1", "started"),)),
        "T-1",
        R.TAKEN,
        ERR,
    ),
    Row(
        "no tour: a task already done",
        ScanState(tasks=(("T-1", "done"),)),
        "T-1",
        R.TASK_UNAVAILABLE,
        ERR,
    ),
    Row(
        "no tour: the item of a tour not complete is unknown",
        ScanState(sku="SKU-A", sku_done=False),
        GTIN_A,
        R.UNKNOWN_CODE,
        ERR,
    ),
    Row("in a tour: START", in_tour(AT_A), "START", R.TOUR_ACTIVE, WARN),
    # a stop of a task the cloud cancelled (a cancel left half done): whatever
    # is scanned, nothing is confirmed and the task's stops leave the tour
    *(
        Row(
            f"at a stop of a {task_state} task: {code}",
            replace(in_tour(HERE_A, NEXT_C, sku="SKU-A"), task_state=task_state),
            code,
            R.TASK_UNAVAILABLE,
            WARN,
            WithdrawTask("T-1"),
        )
        for task_state in ("cancelled", "done", "missing")
        for code in (GTIN_A, "A-01-05", "START")
    ),
    Row(
        "at a stop: its item before the location",
        in_tour(AT_A, sku="SKU-A"),
        GTIN_A,
        R.LOCATION_REQUIRED,
        WARN,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_scan_table(row: Row) -> None:
    code = row.code if isinstance(row.code, ScannedCode) else interpret(row.code)
    decision = decide(row.state, code)
    assert (decision.result, decision.feedback) == (row.result, row.feedback)
    assert decision.intent == row.intent
    assert decision.message
    # an error answer never writes (DESIGN.md decision 4)
    if decision.feedback is ERR:
        assert decision.intent is None


def test_every_result_of_the_contract_table_has_rows() -> None:
    contract = {
        R.TOUR_STARTED,
        R.LOCATION_OK,
        R.WRONG_LOCATION,
        R.ITEM_OK,
        R.STOP_DONE,
        R.WRONG_ITEM,
        R.UNKNOWN_CODE,
        R.OVER_PICK,
        R.TOUR_DONE,
    }
    assert contract <= {row.result for row in ROWS}
    assert {str(r) for r in contract} == {
        "tour_started",
        "location_ok",
        "wrong_location",
        "item_ok",
        "stop_done",
        "wrong_item",
        "unknown_code",
        "over_pick",
        "tour_done",
    }


@pytest.mark.parametrize(
    ("state", "code", "message"),
    [
        (
            in_tour(AT_A, location="A-09-18"),
            "A-09-18",
            "A-09-18 is the wrong location: go to A-01-05",
        ),
        (in_tour(LAST_UNIT_A, NEXT_C, sku="SKU-A"), GTIN_A, "stop done; go to A-06-15"),
        (
            in_tour(LAST_UNIT_A, NEXT_HERE, sku="SKU-A"),
            GTIN_A,
            "stop done; here too: take 4 SKU-B",
        ),
        (in_tour(HERE_A, NEXT_C, sku="SKU-A"), GTIN_A, "1 of 2 SKU-A"),
        (in_tour(HERE_A, sku="SKU-A"), f"02{GTIN_A}373", "3 is more than the 2 still to pick"),
        (
            in_tour(HERE_LOT_B, sku="SKU-B"),
            f"01{GTIN_B}10L2",
            "lot L2 is the wrong lot: take lot L1",
        ),
        (
            ScanState(tasks=(("T-1", "done"),)),
            "T-1",
            "T-1 is already done; it cannot be picked again",
        ),
    ],
)
def test_messages_name_what_to_do(state: ScanState, code: str, message: str) -> None:
    assert decide(state, interpret(code)).message == message


def test_a_stop_done_by_a_scan_is_done() -> None:
    count = Count(LAST_UNIT_A, 1, GTIN_A)
    assert count.done and not Count(HERE_A, 1, GTIN_A).done


# ---------------------------------------------------------------------- tour start


@pytest.mark.parametrize(
    ("stops", "exceptions", "expected"),
    [
        (3, 0, Decision(R.TOUR_STARTED, OK, "3 stops")),
        (2, 1, Decision(R.TOUR_STARTED, WARN, "1 line(s) cannot be filled here and were reported")),
        (
            0,
            2,
            Decision(
                R.NO_STOCK, ERR, "nothing of this can be picked in this zone; reported upstream"
            ),
        ),
    ],
)
def test_a_started_tour_is_answered_by_what_the_planner_found(
    stops: int, exceptions: int, expected: Decision
) -> None:
    assert started(stops, exceptions) == expected


# ---------------------------------------------------------------------- short, skip, cancel

SHORT_AT = stop(3, sku="SKU-C", location="A-06-15", qty=4, picked=1, state=StopState.LOCATION_OK)


@pytest.mark.parametrize(
    ("found", "reason", "on_hand", "correction"),
    [
        (1, "empty", 5, 5),  # nothing of the lot is left there: all of it written off
        (3, "empty", 5, 3),  # the 2 found now are taken first
        (2, "damaged", 5, 2),  # the 2 missing units are written off
        (2, "other", 1, 0),  # the row held just the one found: nothing left to write off
        (1, "damaged", 0, 0),
        (2, "empty", 0, -1),  # a row that went away: the found unit put it at -1, back to 0
    ],
)
def test_short_corrects_the_location(
    found: int, reason: str, on_hand: int, correction: int
) -> None:
    at = AtStop(3, 7, SHORT_AT, on_hand)
    short = decide_short(at, found, reason)
    assert short == Short(SHORT_AT, found, reason, correction)
    assert (short.extra, short.missing) == (found - 1, 4 - found)


@pytest.mark.parametrize(
    ("at", "found", "error"),
    [
        (AtStop(3, None, None), 1, NoTourError),
        (AtStop(9, 7, None), 1, UnknownStopError),
        (AtStop(3, 7, replace(SHORT_AT, state=StopState.DONE)), 1, StopClosedError),
        (AtStop(3, 7, replace(SHORT_AT, state=StopState.SHORT)), 1, StopClosedError),
        (AtStop(3, 7, SHORT_AT), 0, InvalidShortError),  # less than already scanned
        (AtStop(3, 7, SHORT_AT), 4, InvalidShortError),  # all of it: not a short pick
    ],
)
def test_short_refusals(at: AtStop, found: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        decide_short(at, found, "empty")


@pytest.mark.parametrize(
    ("alternative", "finished", "expected"),
    [
        (None, True, Decision(R.TOUR_DONE, WARN, "tour complete (with a short pick)")),
        ("A-08-04", False, Decision(R.REROUTED, WARN, "2 SKU-C from another location: A-08-04")),
        (None, False, Decision(R.SHORT_RECORDED, WARN, "2 SKU-C missing; reported")),
    ],
)
def test_short_answers(alternative: str | None, finished: bool, expected: Decision) -> None:
    short = Short(SHORT_AT, 2, "empty", 0)
    assert short_answer(short, alternative, finished) == expected


@pytest.mark.parametrize("task_state", ["cancelled", "done", "missing"])
def test_no_short_or_skip_at_a_stop_of_a_task_no_longer_pickable(task_state: str) -> None:
    at = AtStop(3, 7, SHORT_AT, 5, task_state=task_state)
    with pytest.raises(StopClosedError, match=f"T-1, which is {task_state}"):
        decide_short(at, 2, "damaged")
    with pytest.raises(StopClosedError):
        decide_skip(at)
    assert decide_short(replace(at, task_state="started"), 2, "damaged").found == 2


def test_skip() -> None:
    skip = decide_skip(AtStop(3, 7, SHORT_AT))
    assert skip == Skip(SHORT_AT)
    assert skip_answer(skip) == Decision(R.SKIPPED, WARN, "stop 3 moved to the end")
    with pytest.raises(StopClosedError):
        decide_skip(AtStop(3, 7, replace(SHORT_AT, state=StopState.CANCELLED)))
    with pytest.raises(NoTourError):
        decide_skip(AtStop(3, None, None))


def test_cancel_releases_what_each_open_stop_still_reserves() -> None:
    stops = [SHORT_AT, stop(5, qty=2)]
    assert decide_cancel(7, "P1", stops) == Cancel(7, "P1", ((SHORT_AT, 3), (stops[1], 2)))


def test_decide_reads_and_writes_nothing() -> None:
    """decide.py imports only pure modules: no store, no SQL, no clock."""
    tree = ast.parse(Path(decide_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    pure = {"__future__", "dataclasses", "edge.picking.codes", "edge.picking.errors"}
    assert imported <= pure | {"edge.picking.model"}
