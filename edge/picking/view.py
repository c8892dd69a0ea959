"""What the PDA sees: the contract's ``<tour>`` and the answer around it.

:func:`tour_view` reads a tour as it is (inside the write transaction, after
its writes, or on a reader's snapshot) and shapes pda-api-v1's ``<tour>``,
plus each stop's lot, expiry, task and map position. :func:`encode` gives the
exact bytes that are answered and stored for a retry of the same ``scan_id``.
Nothing here writes or decides.
"""

from __future__ import annotations

import json
from typing import Any

from edge.picking import queries as q
from edge.picking.decide import Decision
from edge.picking.model import OPEN_STATES
from edge.picking.queries import Reads

_NO_ROUTE: dict[str, Any] = {"length_m": None, "waypoints": []}


def tour_view(db: Reads, tour: int, pitch: float) -> dict[str, Any]:
    """The contract's ``<tour>``; ``pitch`` (m between aisles) places stops on the map."""
    state, route, kind = q.tour_head(db, tour)
    stops = []
    next_stop: int | None = None
    for (
        stop,
        location,
        sku,
        description,
        qty,
        picked,
        stop_state,
        lot,
        expiry,
        task,
        aisle,
        y,
        slot,
        tote,
    ) in q.tour_view_rows(db, tour):
        if next_stop is None and stop_state in OPEN_STATES:
            next_stop = stop
        stops.append(
            {
                "stop": stop,
                "location": location,
                "sku": sku,
                "description": description,
                # a count is blind: the PDA never sees what the box expects
                "qty": None if kind == "count" else qty,
                "picked": picked,
                "state": stop_state,
                "lot": lot or None,
                "expiry": expiry,
                "task": task,
                "x": None if aisle is None else aisle * pitch,
                "y": y,
                **({} if slot is None else {"slot": slot, "tote": tote}),
            }
        )
    view = {
        "tour": tour,
        "kind": kind,
        "state": state,
        "stops": stops,
        "next_stop": next_stop if state == "active" else None,
        "route": json.loads(route) if route else dict(_NO_ROUTE),
    }
    if kind == "count":
        # which attempt each location's count is on (2: counting again after a difference)
        attempts = q.count_attempts(db, tour)
        for stop_view in stops:
            stop_view["attempt"] = attempts.get(stop_view["stop"], 1)
    cart = cart_view(db, tour)
    if cart is not None:
        view["cart"] = cart
    return view


def cart_view(db: Reads, tour: int) -> dict[str, Any] | None:
    """A cart tour's totes with their progress (None: not a cart).

    ``totes``: by slot, each with its order, bound tote (null until scanned),
    the tote the cloud assigned (null: any free tote), units to pick and
    picked, and its state: ``unbound`` (scan its tote),
    ``open``, ``done`` or ``cancelled``; ``next_slot`` is the slot whose tote
    is to be scanned next at cart start (null once all are bound)."""
    rows = q.cart_progress(db, tour)
    if not rows:
        return None
    totes = []
    next_slot: int | None = None
    for slot, task, order, tote, assigned, units, picked, open_stops, task_state in rows:
        if task_state == "cancelled":
            state = "cancelled"
        elif tote is None:
            state = "unbound"
            next_slot = slot if next_slot is None else next_slot
        else:
            state = "open" if open_stops else "done"
        totes.append(
            {
                "slot": slot,
                "task": task,
                "order": order,
                "tote": tote,
                "assigned": assigned,
                "units": units,
                "picked": picked,
                "state": state,
            }
        )
    return {"totes": totes, "next_slot": next_slot}


def answer(
    decision: Decision,
    tour: dict[str, Any] | None,
    exceptions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON answer: ``result``, ``feedback``, ``message``, ``tour`` (and the
    lines that cannot be filled, when a tour start reports some)."""
    body: dict[str, Any] = {
        "result": decision.result.value,
        "feedback": decision.feedback.value,
        "message": decision.message,
        "tour": tour,
    }
    if exceptions is not None:
        body["exceptions"] = exceptions
    return body


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
