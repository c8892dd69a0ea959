"""Picking on the floor: tours from orders, the scan state machine, short picks.

The HTTP layer (:mod:`edge.api`) stays thin: it authenticates, parses JSON and
calls :class:`PickingService`; every decision and every write is made here,
in one store transaction per confirmed fact.
"""

from edge.picking.errors import (
    InvalidShortError,
    NoTourError,
    PickingError,
    ScanIdConflictError,
    StopClosedError,
    UnknownStopError,
)
from edge.picking.service import SHORT_REASONS, Outcome, Picker, PickingService

__all__ = [
    "SHORT_REASONS",
    "InvalidShortError",
    "NoTourError",
    "Outcome",
    "Picker",
    "PickingError",
    "PickingService",
    "ScanIdConflictError",
    "StopClosedError",
    "UnknownStopError",
]
