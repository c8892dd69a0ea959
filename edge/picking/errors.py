"""Errors of the picking workflow, each with a stable ``code`` and HTTP status.

These are refusals of a request (the picker has no tour, a short pick names a
stop that does not exist); they change nothing. Scan outcomes such as
``wrong_item`` are not errors here: they are answers with ``feedback: error``.
"""

from __future__ import annotations

from common.errors import PickEdgeError


class PickingError(PickEdgeError):
    """A picking request that cannot be applied; nothing was changed."""

    code = "picking_error"
    status = 409


class NoTourError(PickingError):
    code = "no_tour"
    status = 404


class UnknownStopError(PickingError):
    code = "unknown_stop"
    status = 404


class StopClosedError(PickingError):
    """The stop is already done or short: it cannot be shorted or skipped again."""

    code = "stop_closed"
    status = 409


class InvalidShortError(PickingError, ValueError):
    code = "invalid_short"
    status = 400


class ScanIdConflictError(PickingError):
    """A scan_id already used by another picker: ids must be unique per scan."""

    code = "scan_id_conflict"
    status = 409
