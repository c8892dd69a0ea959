"""Put-back: units picked for an order the cloud cancelled go back into a location.

A cancel turns the units already picked for the task into ``put_backs`` rows
for the picker who holds them (:func:`edge.picking.apply.record_put_backs`).
Once that picker's tour is over (on a cart, the tour goes on without the
cancelled order first), the scans of a picker with open put-back lines follow
this table instead of starting work:

- the item of a line with units left → ``put_back_item``: the units are
  *in hand*; more of the same line may follow;
- then a location that stocks the SKU (its origin, or any location with a
  stock row of it) → ``put_back_done``: the stock row's ``qty += n``, a
  ``stock_delta`` reason ``return`` (ref: the task), the line's
  ``put_back += n`` (closed once whole);
- another location with units in hand → ``wrong_location``, nothing changes;
- a location with nothing in hand, ``START``, a cart label, an order or a
  task, or an item of another line while units are in hand →
  ``put_back_required`` (warning), nothing changes: put back first;
- an item of no open line → ``wrong_item``; more units than are left →
  ``over_pick``; nothing changes.

:func:`decide_put_back` is pure, like :func:`edge.picking.decide.decide`; the
writes are :func:`apply_put_back`'s, in the scan's transaction.
"""

from __future__ import annotations

from dataclasses import replace

from cloud_sync.events import StockDelta, StockReason
from edge.picking import queries as q
from edge.picking import reservations as res
from edge.picking.codes import ScannedCode
from edge.picking.decide import Decision, HoldUnits, ReturnUnits, ScanState
from edge.picking.model import Feedback, PutBackLine, ScanResult
from edge.store.db import Transaction
from edge.store.outbox import clear_subject_alert, raise_subject_alert

#: the alert of a put-back line left open too long
OVERDUE = "put_back_overdue"

SUCCESS, WARNING, ERROR = Feedback.SUCCESS, Feedback.WARNING, Feedback.ERROR


def _where(line: PutBackLine) -> str:
    return f"{line.origin} (where it came from) or another location of {line.sku}"


def _todo(lines: tuple[PutBackLine, ...]) -> str:
    """What is left to put back, as the picker reads it (units in hand included)."""
    shown = ", ".join(f"{n.qty - n.put_back} × {n.sku} (from {n.origin})" for n in lines[:3])
    more = f" and {len(lines) - 3} more" if len(lines) > 3 else ""
    return f"put back first: {shown}{more}"


def decide_put_back(state: ScanState, code: ScannedCode) -> Decision:
    """The answer to ``code`` of a picker without a tour who has put-back lines."""
    lines = state.put_backs
    held = next((line for line in lines if line.in_hand), None)
    if code.is_start or state.cart is not None or state.tasks:
        return Decision(ScanResult.PUT_BACK_REQUIRED, WARNING, _todo(lines))
    if state.location is not None:
        if held is None:
            return Decision(
                ScanResult.PUT_BACK_REQUIRED,
                WARNING,
                f"scan the unit to put back first; {_todo(lines)}",
            )
        if not state.put_back_here:
            return Decision(
                ScanResult.WRONG_LOCATION,
                ERROR,
                f"{state.location} does not stock {held.sku}: put it into {_where(held)}",
            )
        message = f"{held.in_hand} × {held.sku} back at {state.location}"
        after = replace(held, put_back=held.put_back + held.in_hand, in_hand=0)
        rest = tuple(after if n is held else n for n in lines if n is not held or after.left)
        message += f"; {_todo(rest)}" if rest else "; everything is put back"
        return Decision(
            ScanResult.PUT_BACK_DONE, SUCCESS, message, ReturnUnits(held, state.location)
        )
    if state.sku is None or code.count < 1:
        return Decision(ScanResult.UNKNOWN_CODE, ERROR, f"{code.data}: unknown code")
    # units in hand: more of the same line, or place those first
    line = held if held is not None and held.sku == state.sku else None
    if line is None:
        line = next((n for n in lines if n.sku == state.sku and n.left), None)
        if held is not None and line is not None:
            return Decision(
                ScanResult.PUT_BACK_REQUIRED,
                WARNING,
                f"first put the {held.in_hand} × {held.sku} in hand into {_where(held)}",
            )
    if line is None:
        if any(n.sku == state.sku for n in lines):
            return Decision(ScanResult.OVER_PICK, ERROR, f"no more {state.sku} to put back")
        return Decision(
            ScanResult.WRONG_ITEM, ERROR, f"{state.sku} is not to be put back; {_todo(lines)}"
        )
    if code.count > line.left:
        return Decision(
            ScanResult.OVER_PICK,
            ERROR,
            f"{code.count} is more than the {line.left} {line.sku} left to put back",
        )
    in_hand = line.in_hand + code.count
    return Decision(
        ScanResult.PUT_BACK_ITEM,
        SUCCESS,
        f"{in_hand} × {line.sku} in hand: scan the location, {_where(line)}",
        HoldUnits(line, code.count),
    )


def apply_put_back(tx: Transaction, intent: HoldUnits | ReturnUnits, now: int) -> None:
    """Write a put-back decision in the scan's transaction."""
    line = intent.line
    if isinstance(intent, HoldUnits):
        q.hold_put_back(tx, line.id, intent.units)
        return
    units = line.in_hand
    res.put_away(tx, line.sku, intent.location, line.lot, units)
    q.settle_put_back(tx, line.id, units, now)
    tx.append(
        StockDelta(
            sku=line.sku,
            location=intent.location,
            qty=units,
            reason=StockReason.RETURN,
            ref=line.task,
            lot=line.lot or None,
        )
    )


def put_back_view(lines: list[PutBackLine] | tuple[PutBackLine, ...]) -> list[dict[str, object]]:
    """The open put-back lines as the PDA shows them."""
    return [
        {
            "task": line.task,
            "sku": line.sku,
            "origin": line.origin,
            "lot": line.lot or None,
            "qty": line.qty - line.put_back,
            "in_hand": line.in_hand,
        }
        for line in lines
    ]


def age_alerts(tx: Transaction, up: int, after_ms: int) -> int:
    """A ``warn`` alert ``put_back_overdue`` for each put-back line open for
    more than ``after_ms`` of box uptime (``up`` now), once per line; the
    alerts of lines since closed are cleared, upstream too. Returns how many
    were raised. Runs in the maintenance tick's transaction."""
    raised = 0
    for line, task, picker, sku, left in q.put_back_ages(tx, up - after_ms):
        detail = {"task": task, "picker": picker, "sku": sku, "units": left}
        raised += raise_subject_alert(tx, OVERDUE, "warn", f"put-back {line}", detail)
    for line in q.closed_put_backs_alerted(tx, OVERDUE):
        clear_subject_alert(tx, OVERDUE, f"put-back {line}", "put back")
    return raised
