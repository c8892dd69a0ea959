"""The picking workflow's vocabulary: pickers, stops, scan results, feedback.

Plain values, no database and no clock. The enum values are the strings of
the PDA API (pda-api-v1) and of the ``tour_stops.state`` column, so a value
goes to JSON or SQLite as it is and comes back equal.
"""

from __future__ import annotations

import enum
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
    # answers to a short pick and a skip
    REROUTED = "rerouted"
    SHORT_RECORDED = "short_recorded"
    SKIPPED = "skipped"


#: results of a scan that counted units (a serialised code is counted once per tour)
COUNTED = (ScanResult.ITEM_OK, ScanResult.STOP_DONE, ScanResult.TOUR_DONE)


class StopState(enum.StrEnum):
    PENDING = "pending"
    LOCATION_OK = "location_ok"
    DONE = "done"
    SHORT = "short"
    CANCELLED = "cancelled"


#: a stop the picker still has to visit
OPEN_STATES = (StopState.PENDING, StopState.LOCATION_OK)

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
