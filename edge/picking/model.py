"""The picking workflow's vocabulary: pickers, stops, scan results, feedback.

Plain values, no database and no clock. The enum values are the strings of
the PDA API (pda-api-v1) and of the ``tour_stops.state`` column, so a value
goes to JSON or SQLite as it is and comes back equal.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Feedback(enum.StrEnum):
    """What a PDA turns into a beep, a buzz and a colour."""

    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


class ScanResult(enum.StrEnum):
    """The ``result`` of an answer: the scan table of pda-api-v1, and beyond it."""

    # the contract's scan table
    TOUR_STARTED = "tour_started"
    LOCATION_OK = "location_ok"
    WRONG_LOCATION = "wrong_location"
    ITEM_OK = "item_ok"
    STOP_DONE = "stop_done"
    WRONG_ITEM = "wrong_item"
    UNKNOWN_CODE = "unknown_code"
    OVER_PICK = "over_pick"
    TOUR_DONE = "tour_done"
    # the edge's own answers to a scan
    LOCATION_REQUIRED = "location_required"
    TOUR_ACTIVE = "tour_active"
    NO_WORK = "no_work"
    NO_STOCK = "no_stock"
    TASK_UNAVAILABLE = "task_unavailable"
    #: the order is being picked by someone else (two PDAs, one order: one tour)
    TAKEN = "taken"
    # cart picking (several orders on one cart, one tote each; docs/pda.md)
    TOTE_BOUND = "tote_bound"
    TOTE_EXPECTED = "tote_expected"
    WRONG_TOTE = "wrong_tote"
    TOTE_IN_USE = "tote_in_use"
    # put-back: units of a cancelled order back into a location (docs/pda.md)
    PUT_BACK_REQUIRED = "put_back_required"
    PUT_BACK_ITEM = "put_back_item"
    PUT_BACK_DONE = "put_back_done"
    # blind counts (edge.picking.counting)
    COUNTED = "counted"
    RECOUNT = "recount"
    COUNT_DONE = "count_done"
    # answers to a short pick and a skip
    REROUTED = "rerouted"
    SHORT_RECORDED = "short_recorded"
    SKIPPED = "skipped"


#: results of a scan that counted units (a serialised code is counted once per tour)
COUNTED = (ScanResult.ITEM_OK, ScanResult.STOP_DONE, ScanResult.TOUR_DONE)


class StopState(enum.StrEnum):
    PENDING = "pending"
    LOCATION_OK = "location_ok"
    #: every unit taken from the location, not yet put into its tote (carts)
    TO_PUT = "to_put"
    DONE = "done"
    SHORT = "short"
    CANCELLED = "cancelled"


#: a stop the picker still has to walk to
WALK_STATES = (StopState.PENDING, StopState.LOCATION_OK)
#: a stop not finished yet: still to walk to, or its units still to put
OPEN_STATES = (*WALK_STATES, StopState.TO_PUT)

SHORT_REASONS = ("empty", "damaged", "other")


@dataclass(frozen=True, slots=True)
class Picker:
    id: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Stop:
    """One row of ``tour_stops``: a line's units at one location and lot."""

    tour: int
    stop: int
    task: str
    line: str
    sku: str
    location: str
    lot: str  # '' when the stock has no lot
    expiry: str | None
    qty: int
    picked: int
    state: StopState
    ord: int  # position in the walk

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True, slots=True)
class CartTote:
    """One order's place on a cart: its slot, and the tote bound to it."""

    task: str
    slot: int
    #: the tote label scanned for it (None: not bound yet)
    tote: str | None
    order: str | None
    #: the tote the cloud assigned to the task (None: any free tote)
    assigned: str | None


@dataclass(frozen=True, slots=True)
class CartSettings:
    """How a zone picks on carts (``[carts]``): ``totes`` orders a cart, at
    most ``units`` units; each stop's put confirmed by a tote scan when
    ``confirm_put``; what a tote and a cart label look like."""

    totes: int = 1
    units: int = 1_000_000
    confirm_put: bool = True
    tote_pattern: str = r"^TOTE-[A-Z0-9-]{1,32}$"
    cart_pattern: str = r"^CART-[A-Z0-9-]{1,32}$"

    @property
    def enabled(self) -> bool:
        return self.totes > 1

    def tote_label(self, data: str) -> str | None:
        """``data`` when it reads as a tote label."""
        return data if _compiled(self.tote_pattern).match(data) else None

    def cart_label(self, data: str) -> str | None:
        """``data`` when it reads as a cart label (only where carts are on)."""
        return data if self.enabled and _compiled(self.cart_pattern).match(data) else None


_patterns: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    found = _patterns.get(pattern)
    if found is None:
        found = _patterns[pattern] = re.compile(pattern)
    return found


@dataclass(frozen=True, slots=True)
class PutBackLine:
    """Units picked for a task the cloud then cancelled, still to go back into
    a location: one row of ``put_backs`` (per sku, origin location and lot)."""

    id: int
    task: str
    sku: str
    origin: str
    lot: str
    qty: int
    #: units already back in a location
    put_back: int
    #: units scanned to put back, their location not scanned yet
    in_hand: int

    @property
    def left(self) -> int:
        """Units not back yet and not in hand."""
        return self.qty - self.put_back - self.in_hand
