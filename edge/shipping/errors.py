"""Errors of pack and ship, each with a stable ``code`` and HTTP status.

Refusals of a request as a whole (no such station); they change nothing. A
scan a station cannot take (a unit of another order, an empty carton) is not an
error but an answer with ``feedback: error`` (:class:`edge.shipping.packing.PackResult`).
"""

from __future__ import annotations

from common.errors import PickEdgeError


class ShippingError(PickEdgeError):
    """A pack-and-ship request that cannot be applied; nothing was changed."""

    code = "shipping_error"
    status = 409


class UnknownStationError(ShippingError, LookupError):
    code = "unknown_station"
    status = 404
