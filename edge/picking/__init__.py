"""Picking on the floor: tours from orders, the scan state machine, short picks.

The HTTP layer (:mod:`edge.api`) stays thin: it authenticates, parses JSON and
calls :class:`PickingService`; every decision and every write is made here,
in one store transaction per confirmed fact, as read → decide → write:

- :mod:`~edge.picking.load` reads what a decision needs, inside the transaction;
- :mod:`~edge.picking.decide` decides purely (the pda-api-v1 scan table);
- :mod:`~edge.picking.apply` writes rows and outbox events, in one place;
- :mod:`~edge.picking.view` builds the tour the PDA sees;
- :mod:`~edge.picking.tours` plans tours (matching, FEFO, reservation, routes);
- :mod:`~edge.picking.queries` holds all of picking's SQL.
"""

from edge.picking.errors import (
    InvalidShortError,
    NoTourError,
    PickingError,
    ScanIdConflictError,
    StopClosedError,
    UnknownStopError,
)
from edge.picking.model import SHORT_REASONS, Feedback, Picker, ScanResult
from edge.picking.service import Outcome, PickingService

__all__ = [
    "SHORT_REASONS",
    "Feedback",
    "InvalidShortError",
    "NoTourError",
    "Outcome",
    "Picker",
    "PickingError",
    "PickingService",
    "ScanIdConflictError",
    "ScanResult",
    "StopClosedError",
    "UnknownStopError",
]
