"""Supervisor actions: release an abandoned tour, hand a tour to another
picker, adjust a location's stock; and what a supervisor watches (the active
tours, the recent exceptions, the open and finished counts with the
inventory accuracy).

Read → decide → write, all in this one module and **with its own SQL**: the
actions touch picking's tables (``tours``, ``tour_stops``, ``tasks``,
``task_lines``, ``stock``, ``put_backs``) and their own ``supervisor_actions``,
outside the scan machinery (:mod:`edge.picking.service`), so they keep their
statements here rather than in :mod:`edge.picking.queries`:

- ``_load_*`` read what a decision needs, inside the action's transaction;
- ``decide_*`` are pure: they refuse with a :class:`SupervisorError` (a
  stable ``code`` and HTTP status; nothing changed) or return what to write;
- ``_apply_*`` write the rows, one ``supervisor_actions`` row and the outbox
  events (``supervisor_action``; ``stock_delta`` reason ``adjust``).

:class:`Supervision` runs each action in **one store transaction** with its
events, then wakes the uploader and hands the PDA pushes to its listener.

Release semantics (docs/pda.md, *Supervisor actions*): the tour ends
``cancelled``; its open stops are cancelled and what they reserve is
released; every unit the tour picked for a task still ``started`` becomes
put-back work held by the **releasing supervisor** (who collects the
abandoned cart) and is taken off the task line, so the task goes back to
``open`` whole and the next picker picks all of it again; put-back lines the
picker held for tasks of the tour (cancelled on it) move to the supervisor
too. Stock does not move at release: the units are on the cart until put
back (``stock_delta`` reason ``return`` then). To keep what was picked, a
supervisor reassigns the tour instead.

Nothing here names a picker to another picker: pushes say "a supervisor"
and "another picker".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from cloud_sync.events import StockDelta, StockReason, SupervisorAction
from edge.picking import queries as q
from edge.picking import stats
from edge.picking.errors import PickingError
from edge.picking.model import Picker
from edge.picking.putback import put_back_view
from edge.picking.queries import Reads, scalar
from edge.picking.view import tour_view
from edge.store.db import Store, Transaction, now_ms

log = logging.getLogger(__name__)

#: the push that tells a picker a tour is no longer theirs (extension of pda-api-v1)
TOUR_WITHDRAWN = "tour_withdrawn"
TOUR_ASSIGNED = "tour_assigned"
#: longest reason a supervisor may give
MAX_REASON = 200

_OPEN = "('pending', 'location_ok', 'to_put')"

#: push(picker_id, message), after the commit
Push = Callable[[str, dict[str, Any]], None]


# ---------------------------------------------------------------------- errors


class SupervisorError(PickingError):
    """A supervisor action refused; nothing was changed."""

    code = "supervisor_error"
    status = 409


class UnknownTourError(SupervisorError):
    code = "unknown_tour"
    status = 404


class TourNotActiveError(SupervisorError):
    code = "tour_not_active"
    status = 409


class UnknownPickerError(SupervisorError):
    code = "unknown_picker"
    status = 404


class PickerBusyError(SupervisorError):
    """The target picker cannot take a tour now (inactive, on a tour, put-backs)."""

    code = "picker_busy"
    status = 409


class UnknownLocationError(SupervisorError):
    code = "unknown_location"
    status = 404


class UnknownSkuError(SupervisorError):
    code = "unknown_sku"
    status = 404


class BelowReservedError(SupervisorError):
    """An adjustment would leave fewer units than open tours reserve."""

    code = "below_reserved"
    status = 409


# ---------------------------------------------------------------------- what is read


@dataclass(frozen=True, slots=True)
class TourRow:
    tour: int
    picker: str
    state: str


@dataclass(frozen=True, slots=True)
class OpenStop:
    stop: int
    sku: str
    location: str
    lot: str
    #: reserved units the stop still holds
    reserved: int


@dataclass(frozen=True, slots=True)
class Held:
    """Units the tour picked of one task line at one location and lot."""

    task: str
    line: str
    sku: str
    location: str
    lot: str
    units: int


@dataclass(frozen=True, slots=True)
class TourState:
    tour: TourRow | None
    open_stops: tuple[OpenStop, ...] = ()
    held: tuple[Held, ...] = ()
    #: (task, state) of the tour's tasks
    tasks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class PickerRow:
    id: str
    active: bool
    #: the picker's active tour (None: none)
    tour: int | None
    #: the picker's open put-back lines
    put_backs: int


@dataclass(frozen=True, slots=True)
class StockRow:
    location_known: bool
    sku_known: bool
    #: (qty, reserved) of the row (None: no such row)
    row: tuple[int, int] | None


# ---------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Release:
    tour: int
    picker: str
    reason: str
    #: (stop, sku, location, lot, reserved units to release)
    releases: tuple[OpenStop, ...]
    #: tasks that go back to open
    reopen: tuple[str, ...]
    #: units the tour picked of the reopened tasks: put-back work
    put_back: tuple[Held, ...]
    #: tasks of the tour whose put-back lines move from the picker to the supervisor
    cancelled: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reassign:
    tour: int
    old: str
    new: str
    #: the tour's tasks (their open put-back lines go with the tour)
    tasks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Adjust:
    sku: str
    location: str
    lot: str
    before: int
    after: int
    reserved: int
    reason: str
    ref: str | None
    exists: bool

    @property
    def delta(self) -> int:
        return self.after - self.before


def _active(state: TourState, number: int) -> TourRow:
    if state.tour is None:
        raise UnknownTourError(f"no tour {number}")
    if state.tour.state != "active":
        raise TourNotActiveError(f"tour {number} is already {state.tour.state}")
    return state.tour


def decide_release(state: TourState, number: int, reason: str) -> Release:
    """Release tour ``number``: refused when it does not exist or is not active."""
    tour = _active(state, number)
    reopen = tuple(task for task, task_state in state.tasks if task_state == "started")
    cancelled = tuple(task for task, task_state in state.tasks if task_state == "cancelled")
    put_back = tuple(h for h in state.held if h.task in reopen and h.units > 0)
    return Release(tour.tour, tour.picker, reason, state.open_stops, reopen, put_back, cancelled)


def decide_reassign(state: TourState, number: int, target: PickerRow | None, to: str) -> Reassign:
    """Hand tour ``number`` to picker ``to``: an active picker without a tour
    of their own and without units to put back."""
    tour = _active(state, number)
    if target is None:
        raise UnknownPickerError(f"no picker {to}")
    if target.id == tour.picker:
        raise PickerBusyError(f"tour {number} is already {to}'s")
    if not target.active:
        raise PickerBusyError(f"picker {to} is not active")
    if target.tour is not None:
        raise PickerBusyError(f"picker {to} is on tour {target.tour}: release or finish it first")
    if target.put_backs:
        raise PickerBusyError(f"picker {to} has units to put back first")
    return Reassign(tour.tour, tour.picker, target.id, tuple(task for task, _ in state.tasks))


def decide_adjust(
    row: StockRow,
    *,
    sku: str,
    location: str,
    lot: str,
    qty: int | None,
    set_to: int | None,
    reason: str,
    ref: str | None,
) -> Adjust:
    """A signed change ``qty`` or an absolute ``set_to`` of one stock row;
    never below what open tours reserve there."""
    if not row.location_known:
        raise UnknownLocationError(f"no location {location}")
    if not row.sku_known:
        raise UnknownSkuError(f"no item {sku}")
    before, reserved = row.row if row.row is not None else (0, 0)
    after = before + qty if qty is not None else (set_to if set_to is not None else before)
    if after < reserved:
        raise BelowReservedError(
            f"{sku} at {location} would hold {after}, fewer than the {reserved} "
            "open tours reserve there"
        )
    return Adjust(sku, location, lot, before, after, reserved, reason, ref, row.row is not None)


# ---------------------------------------------------------------------- reads (own SQL)


def _load_tour(db: Reads, number: int) -> TourState:
    row = db.execute("SELECT tour, picker, state FROM tours WHERE tour = ?", (number,)).fetchone()
    if row is None:
        return TourState(None)
    tour = TourRow(int(row[0]), str(row[1]), str(row[2]))
    stops = tuple(
        OpenStop(int(n), str(sku), str(loc), str(lot), max(int(qty) - int(picked), 0))
        for n, sku, loc, lot, qty, picked in db.execute(
            "SELECT stop, sku, location, lot, qty, picked FROM tour_stops "  # noqa: S608 - constant
            f"WHERE tour = ? AND state IN {_OPEN} ORDER BY stop",
            (number,),
        )
    )
    held = tuple(
        Held(str(task), str(line), str(sku), str(loc), str(lot), int(units))
        for task, line, sku, loc, lot, units in db.execute(
            # a count tour's "picked" is units counted, not taken: nothing to put back
            "SELECT task, line, sku, location, lot, SUM(picked) FROM tour_stops "
            "WHERE tour = ?1 AND picked > 0 "
            "AND (SELECT kind FROM tours WHERE tour = ?1) = 'pick' "
            "GROUP BY task, line, sku, location, lot ORDER BY MIN(stop)",
            (number,),
        )
    )
    tasks = tuple(
        (str(task), str(state))
        for task, state in db.execute(
            "SELECT s.task, COALESCE(t.state, 'missing') FROM tour_stops s "
            "LEFT JOIN tasks t ON t.task = s.task WHERE s.tour = ? "
            "GROUP BY s.task ORDER BY MIN(s.stop)",
            (number,),
        )
    )
    return TourState(tour, stops, held, tasks)


def _load_picker(db: Reads, picker: str) -> PickerRow | None:
    row = db.execute("SELECT id, active FROM pickers WHERE id = ?", (picker,)).fetchone()
    if row is None:
        return None
    return PickerRow(
        str(row[0]),
        bool(row[1]),
        q.active_tour(db, picker),
        int(
            scalar(
                db,
                "SELECT COUNT(*) FROM put_backs WHERE picker = ? AND closed_ms IS NULL",
                (picker,),
            )
        ),
    )


def _load_stock(db: Reads, sku: str, location: str, lot: str) -> StockRow:
    known = scalar(db, "SELECT 1 FROM locations WHERE code = ?", (location,)) is not None
    item = scalar(db, "SELECT 1 FROM items WHERE sku = ?", (sku,)) is not None
    row = db.execute(
        "SELECT qty, reserved FROM stock WHERE sku = ? AND location = ? AND lot = ?",
        (sku, location, lot),
    ).fetchone()
    return StockRow(known, item, None if row is None else (int(row[0]), int(row[1])))


# ---------------------------------------------------------------------- writes (own SQL)


def _record(
    tx: Transaction, action: str, by: str, subject: str, detail: dict[str, Any], *, now: int
) -> None:
    """The ``supervisor_actions`` row and its ``supervisor_action`` event."""
    tx.execute(
        "INSERT INTO supervisor_actions (action, by_picker, subject, detail, at_ms, at_up) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (action, by, subject, json.dumps(detail, sort_keys=True), now, tx.store.uptime_ms()),
    )
    tx.append(SupervisorAction(action=action, by=by, subject=subject, detail=detail))


def _move_put_backs(tx: Transaction, tasks: Sequence[str], old: str, new: str) -> int:
    """Open put-back lines ``old`` holds for ``tasks`` go to ``new`` (the
    units are on the cart that changes hands); how many moved."""
    if not tasks:
        return 0
    cur = tx.execute(
        "UPDATE put_backs SET picker = ?, in_hand = 0 WHERE picker = ? AND closed_ms IS NULL "
        "AND task IN (SELECT value FROM json_each(?))",
        (new, old, json.dumps(list(tasks))),
    )
    return int(cur.rowcount)


def _apply_release(tx: Transaction, by: str, release: Release, now: int) -> dict[str, Any]:
    tour = release.tour
    for stop in release.releases:
        tx.execute(
            "UPDATE stock SET reserved = MAX(reserved - ?, 0) "
            "WHERE sku = ? AND location = ? AND lot = ?",
            (stop.reserved, stop.sku, stop.location, stop.lot),
        )
    tx.execute(
        f"UPDATE tour_stops SET state = 'cancelled' WHERE tour = ? AND state IN {_OPEN}",  # noqa: S608
        (tour,),
    )
    tx.execute("UPDATE tours SET state = 'cancelled', ended_ms = ? WHERE tour = ?", (now, tour))
    up = tx.store.uptime_ms()
    tx.executemany(
        "INSERT INTO put_backs (task, picker, sku, origin, lot, qty, created_ms, created_up) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(h.task, by, h.sku, h.location, h.lot, h.units, now, up) for h in release.put_back],
    )
    # The units go back to stock, so the lines must be picked again in full.
    tx.executemany(
        "UPDATE task_lines SET picked = MAX(picked - ?, 0) WHERE task = ? AND line = ?",
        [(h.units, h.task, h.line) for h in release.put_back],
    )
    tx.executemany(
        "UPDATE task_lines SET state = 'open' WHERE task = ? AND state = 'assigned'",
        [(task,) for task in release.reopen],
    )
    tx.executemany(
        "UPDATE tasks SET state = 'open' WHERE task = ? AND state = 'started'",
        [(task,) for task in release.reopen],
    )
    moved = _move_put_backs(tx, release.cancelled, release.picker, by)
    detail: dict[str, Any] = {
        "tour": tour,
        "picker": release.picker,
        "reason": release.reason,
        "reopened": list(release.reopen),
        "put_back": [
            {"task": h.task, "line": h.line, "sku": h.sku, "location": h.location, "qty": h.units}
            for h in release.put_back
        ],
        "put_backs_moved": moved,
    }
    _record(tx, "release", by, f"tour {tour}", detail, now=now)
    for task in release.reopen:
        stats.note(tx, task, "supervisor", now)
    return detail


def _apply_reassign(tx: Transaction, by: str, move: Reassign, now: int) -> dict[str, Any]:
    tx.execute("UPDATE tours SET picker = ? WHERE tour = ?", (move.new, move.tour))
    moved = _move_put_backs(tx, move.tasks, move.old, move.new)
    detail: dict[str, Any] = {
        "tour": move.tour,
        "from": move.old,
        "to": move.new,
        "put_backs_moved": moved,
    }
    _record(tx, "reassign", by, f"tour {move.tour}", detail, now=now)
    for task in move.tasks:
        stats.note(tx, task, "supervisor", now)
    return detail


def _apply_adjust(tx: Transaction, by: str, adjust: Adjust, now: int) -> dict[str, Any]:
    if adjust.exists:
        tx.execute(
            "UPDATE stock SET qty = ? WHERE sku = ? AND location = ? AND lot = ?",
            (adjust.after, adjust.sku, adjust.location, adjust.lot),
        )
    elif adjust.after:
        expiry = scalar(
            tx,
            "SELECT MIN(expiry) FROM stock WHERE sku = ? AND lot = ? AND lot != ''",
            (adjust.sku, adjust.lot),
        )
        tx.execute(
            "INSERT INTO stock (sku, location, lot, expiry, qty) VALUES (?, ?, ?, ?, ?)",
            (adjust.sku, adjust.location, adjust.lot, expiry, adjust.after),
        )
    if adjust.delta:
        tx.append(
            StockDelta(
                sku=adjust.sku,
                location=adjust.location,
                qty=adjust.delta,
                reason=StockReason.ADJUST,
                ref=adjust.ref,
                lot=adjust.lot or None,
            )
        )
    detail: dict[str, Any] = {
        "sku": adjust.sku,
        "location": adjust.location,
        "lot": adjust.lot or None,
        "before": adjust.before,
        "after": adjust.after,
        "delta": adjust.delta,
        "reserved": adjust.reserved,
        "reason": adjust.reason,
        "ref": adjust.ref,
    }
    _record(tx, "adjust", by, f"{adjust.sku} at {adjust.location}", detail, now=now)
    return detail


# ---------------------------------------------------------------------- lists (reads)


def active_tours(db: Reads, now: int) -> list[dict[str, Any]]:
    """Every active tour with its picker, progress and last scan: a tour
    whose picker went home shows a long ``idle_s``."""
    rows = db.execute(
        "SELECT t.tour, t.picker, COALESCE(p.name, ''), t.started_ms, t.cart, "  # noqa: S608 - constant
        "COUNT(s.stop), COALESCE(SUM(s.state IN ('done', 'short')), 0), "
        "COALESCE(SUM(s.state = 'short'), 0), "
        f"COALESCE(SUM(s.state IN {_OPEN}), 0), "
        "COALESCE(SUM(CASE WHEN s.state != 'cancelled' THEN s.qty END), 0), "
        "COALESCE(SUM(s.picked), 0), "
        "(SELECT MAX(c.at_ms) FROM scans c WHERE c.tour = t.tour) "
        "FROM tours t LEFT JOIN pickers p ON p.id = t.picker "
        "LEFT JOIN tour_stops s ON s.tour = t.tour "
        "WHERE t.state = 'active' GROUP BY t.tour ORDER BY t.tour"
    ).fetchall()
    out = []
    for tour, picker, name, started, cart, stops, closed, short, open_, units, picked, last in rows:
        since = max(int(started), int(last or 0))
        out.append(
            {
                "tour": tour,
                "picker": {"id": picker, "name": name},
                "started_ms": started,
                "cart": cart,
                "stops": stops,
                "stops_closed": closed,
                "stops_short": short,
                "stops_open": open_,
                "units": units,
                "picked": picked,
                "last_scan_ms": last,
                "idle_s": max(0, (now - since) // 1000),
            }
        )
    return out


#: outbox types a supervisor reads as exceptions, and what each is called
_EXCEPTION_EVENTS = {
    "pick_exception": "short",
    "task_cancelled": "cancel",
    "supervisor_action": "supervisor_action",
}


def recent_exceptions(db: Reads, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` latest exceptions, newest first: shorts and unfillable
    lines (``pick_exception``), cancels (``task_cancelled``) and supervisor
    actions, read back from the current epoch's outbox (kept until acked and
    ``[cloud] retention_days`` old); open put-back lines; open ``warn`` and
    ``crit`` alerts. Skips are not listed: a skip changes only the walk, and
    the box keeps no record of it."""
    out: list[dict[str, Any]] = []
    marks = ",".join("?" * len(_EXCEPTION_EVENTS))
    rows = db.execute(
        "SELECT o.seq, o.type, o.at_ms, o.payload FROM outbox o "  # noqa: S608 - placeholders
        "WHERE o.epoch = (SELECT epoch FROM box WHERE id = 1) "
        f"AND o.type IN ({marks}) ORDER BY o.seq DESC LIMIT ?",
        (*_EXCEPTION_EVENTS, limit),
    ).fetchall()
    for _, type_, at, payload in rows:
        data: dict[str, Any] = msgpack.unpackb(payload, raw=False)
        kind = _EXCEPTION_EVENTS[type_]
        if kind == "short":
            if data.get("location") is None:
                kind = "unfillable"
            else:
                data["picker"] = scalar(
                    db,
                    "SELECT t.picker FROM tour_stops s JOIN tours t ON t.tour = s.tour "
                    "WHERE s.task = ? AND s.line = ? AND s.location = ? AND s.state = 'short' "
                    "ORDER BY s.tour DESC LIMIT 1",
                    (data.get("task"), data.get("line"), data.get("location")),
                )
        out.append({"kind": kind, "at_ms": at, **data})
    for pid, task, picker, sku, origin, left, created in db.execute(
        "SELECT id, task, picker, sku, origin, qty - put_back, created_ms FROM put_backs "
        "WHERE closed_ms IS NULL ORDER BY id DESC LIMIT ?",
        (limit,),
    ):
        out.append(
            {
                "kind": "put_back",
                "at_ms": created,
                "id": pid,
                "task": task,
                "picker": picker,
                "sku": sku,
                "origin": origin,
                "qty": left,
            }
        )
    for alert, kind, severity, subject, detail, raised in db.execute(
        "SELECT id, kind, severity, subject, detail, raised_ms FROM alerts "
        "WHERE cleared_ms IS NULL AND severity IN ('warn', 'crit') ORDER BY id DESC LIMIT ?",
        (limit,),
    ):
        out.append(
            {
                "kind": "alert",
                "at_ms": raised,
                "id": alert,
                "alert": kind,
                "severity": severity,
                "subject": subject,
                "detail": _alert_detail(detail),
            }
        )
    out.sort(key=lambda e: int(e["at_ms"] or 0), reverse=True)
    return out[:limit]


def _alert_detail(stored: bytes) -> Any:
    """An alert's stored detail (msgpack, as :func:`edge.store.outbox.raise_alert` writes it)."""
    try:
        return msgpack.unpackb(stored, raw=False)
    except (ValueError, msgpack.UnpackException):
        return None


#: the windows of the inventory accuracy a supervisor sees (as in the metrics)
ACCURACY_WINDOWS = (("1d", 1), ("30d", 30))


def open_counts(db: Reads) -> list[dict[str, Any]]:
    """Count tasks not finished, the most urgent first (as START offers them):
    ``open`` ones and ``started`` ones with who is counting on which tour.
    Each line is a location and SKU to count; on a tour it carries its stop's
    state (``pending``, ``location_ok``: being counted, ``done``). Never the
    quantity the box expects: that is noted only once counting begins, and a
    supervisor reads it in the finished counts."""
    out: list[dict[str, Any]] = []
    tasks = db.execute(
        "SELECT t.task, t.priority, t.state, t.received_ms, "
        "(SELECT MAX(r.tour) FROM tour_stops s JOIN tours r ON r.tour = s.tour "
        "WHERE s.task = t.task AND r.state = 'active') "
        "FROM tasks t WHERE t.kind = 'count' AND t.state IN ('open', 'started') "
        "ORDER BY t.priority DESC, t.received_ms, t.task"
    ).fetchall()
    for task, priority, state, received, tour in tasks:
        picker = None
        if tour is not None:
            who = db.execute(
                "SELECT r.picker, COALESCE(p.name, '') FROM tours r "
                "LEFT JOIN pickers p ON p.id = r.picker WHERE r.tour = ?",
                (tour,),
            ).fetchone()
            picker = {"id": who[0], "name": who[1]}
        lines = [
            {"sku": sku, "location": location, "state": stop_state}
            for sku, location, stop_state in db.execute(
                "SELECT l.sku, l.location, s.state FROM task_lines l "
                "LEFT JOIN tour_stops s ON s.tour = ? AND s.task = l.task AND s.line = l.line "
                "WHERE l.task = ? ORDER BY COALESCE(s.ord, 0), l.rowid",
                (tour, task),
            )
        ]
        out.append(
            {
                "task": task,
                "priority": priority,
                "state": state,
                "received_ms": received,
                "tour": tour,
                "picker": picker,
                "lines": lines,
            }
        )
    return out


def recent_counts(db: Reads, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` latest finished counts (``count_results``, kept 40 days),
    newest first: the final count against the on-hand it was compared with
    (``expected``: the on-hand when counting began, as ``count_result`` says)."""
    return [
        {
            "task": task,
            "location": location,
            "sku": sku,
            "counted": counted,
            "expected": expected,
            "on_hand": on_hand,
            "matched": bool(matched),
            "attempts": attempts,
            "picker": picker,
            "at_ms": at,
        }
        for task, location, sku, counted, expected, on_hand, matched, attempts, picker, at in (
            db.execute(
                "SELECT task, location, sku, counted, expected, on_hand, matched, attempts, "
                "picker, at_ms FROM count_results ORDER BY at_ms DESC, id DESC LIMIT ?",
                (limit,),
            )
        )
    ]


def accuracy(db: Reads, now: int) -> dict[str, dict[str, Any]]:
    """Inventory accuracy per window: locations counted, matched, and their
    ratio (None when nothing was counted)."""
    out: dict[str, dict[str, Any]] = {}
    for window, days in ACCURACY_WINDOWS:
        counted, matched = stats.accuracy(db, now - days * stats.DAY_MS)
        out[window] = {
            "counted": counted,
            "matched": matched,
            "ratio": matched / counted if counted else None,
        }
    return out


# ---------------------------------------------------------------------- the service


@dataclass(slots=True)
class Done:
    """What an action answered, and the pushes to send after its commit."""

    body: dict[str, Any]
    pushes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: int = 0


def _withdrawn(tour: int, action: str, message: str) -> dict[str, Any]:
    return {"type": TOUR_WITHDRAWN, "tour": tour, "action": action, "message": message}


class Supervision:
    """Supervisor actions over one :class:`Store`. ``pitch`` places stops on
    the map (as :class:`edge.picking.PickingService`); ``on_commit`` wakes the
    uploader after a commit with events; ``push`` sends a PDA message."""

    def __init__(
        self,
        store: Store,
        *,
        pitch: float,
        on_commit: Callable[[], None] | None = None,
        push: Push | None = None,
    ) -> None:
        self.store = store
        self.pitch = pitch
        self.on_commit = on_commit
        self.push = push

    def _after(self, done: Done) -> Done:
        if done.events and self.on_commit is not None:
            try:
                self.on_commit()
            except Exception:  # the uploader's trouble must never fail a committed action
                log.exception("on_commit hook failed")
        if self.push is not None:
            for picker, message in done.pushes:
                try:
                    self.push(picker, message)
                except Exception:
                    log.exception("push listener failed")
        return done

    async def release(self, by: Picker, tour: int, reason: str) -> Done:
        """End an abandoned tour (module docstring: what happens to its units)."""

        def fn(tx: Transaction) -> Done:
            now = now_ms()
            release = decide_release(_load_tour(tx, tour), tour, reason)
            detail = _apply_release(tx, by.id, release, now)
            message = f"a supervisor ended tour {tour}: scan START for new work"
            return Done(
                {
                    "action": "release",
                    **detail,
                    # what the supervisor now has to put back, as the PDA shows it
                    "put_backs": put_back_view(q.open_put_backs(tx, by.id)),
                },
                pushes=[(release.picker, _withdrawn(tour, "released", message))],
                events=len(tx.events),
            )

        done = self._after(await self.store.write(fn))
        log.info("tour %d released by %s", tour, by.id)
        return done

    async def reassign(self, by: Picker, tour: int, to: str) -> Done:
        """Hand an active tour, as it stands, to picker ``to``."""

        def fn(tx: Transaction) -> Done:
            now = now_ms()
            state = _load_tour(tx, tour)
            move = decide_reassign(state, tour, _load_picker(tx, to), to)
            detail = _apply_reassign(tx, by.id, move, now)
            view = tour_view(tx, tour, self.pitch)
            message = f"a supervisor handed tour {tour} to another picker"
            return Done(
                {"action": "reassign", **detail, "tour_view": view},
                pushes=[
                    (move.old, _withdrawn(tour, "reassigned", message)),
                    (move.new, {"type": TOUR_ASSIGNED, "tour": view}),
                ],
                events=len(tx.events),
            )

        done = self._after(await self.store.write(fn))
        log.info("tour %d reassigned by %s", tour, by.id)
        return done

    async def adjust(
        self,
        by: Picker,
        *,
        sku: str,
        location: str,
        lot: str,
        qty: int | None,
        set_to: int | None,
        reason: str,
        ref: str | None,
    ) -> Done:
        """Change one stock row by ``qty`` or to ``set_to``, with a reason."""

        def fn(tx: Transaction) -> Done:
            now = now_ms()
            adjust = decide_adjust(
                _load_stock(tx, sku, location, lot),
                sku=sku,
                location=location,
                lot=lot,
                qty=qty,
                set_to=set_to,
                reason=reason,
                ref=ref,
            )
            detail = _apply_adjust(tx, by.id, adjust, now)
            return Done({"action": "adjust", **detail}, events=len(tx.events))

        done = self._after(await self.store.write(fn))
        log.info("stock of %s at %s adjusted by %s", sku, location, by.id)
        return done

    async def tours(self) -> list[dict[str, Any]]:
        with q.snapshot(self.store.reader().conn) as conn:
            return active_tours(conn, now_ms())

    async def exceptions(self, limit: int) -> list[dict[str, Any]]:
        with q.snapshot(self.store.reader().conn) as conn:
            return recent_exceptions(conn, limit)

    async def counts(self, limit: int) -> dict[str, Any]:
        """Open count tasks, the ``limit`` latest finished counts and the
        inventory accuracy, from one snapshot."""
        with q.snapshot(self.store.reader().conn) as conn:
            return {
                "open": open_counts(conn),
                "recent": recent_counts(conn, limit),
                "accuracy": accuracy(conn, now_ms()),
            }
