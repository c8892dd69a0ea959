"""Downstream changes of sync-v1 applied to the box's tables.

:func:`apply_changes` runs inside the caller's store transaction (the
downloader stores the new cursor in the same one) and promises:

- **Idempotent**: applying the same page twice leaves the same state (upserts;
  a task whose update equals what is stored is left alone; a cancel of a
  cancelled task changes nothing).
- ``item``: upsert of ``items``; its GTINs *replace* the item's rows in
  ``item_gtins`` (a GTIN moved from another SKU follows it).
- ``location``: upsert of ``locations``.
- ``stock``: the acked-baseline rule — on-hand = ``qty`` + this box's own
  deltas after seq ``acked`` of ``epoch`` (every later epoch in full; all of
  them when ``epoch`` is null), via :func:`edge.store.outbox.deltas_after`.
  It sets the row of lot ``''``; ``reserved`` is kept. A figure that claims
  more of the box's *current* epoch than the box has written (``acked`` ≥
  its next seq: a box restored from a backup, or a cloned card, still
  writing in the epoch the cloud saw further) is refused with
  :class:`StockAheadError`: the box's own deltas after what it has written
  would be lost under that figure. The page waits (the downloader alerts
  ``sync_stock_ahead`` and retries); once the box moved to a new epoch the
  same figure applies, its new deltas counted in full.
- ``task``: inserted when new; replaced (header and lines) while ``open``;
  once started, done or cancelled a *different* update is ignored and a
  ``warn`` alert (``task_update_ignored``) goes upstream. Of ``ship_to`` only
  ``postcode`` and ``region`` are stored; nothing else of the customer. Any
  key a task, its ``ship_to`` or its lines do not have in sync-v1 (a name, a
  street, a phone number …) is dropped on ingest, never stored: counted in
  :data:`DROPPED_FIELDS` by where it was (``task``, ``ship_to``, ``line``) and
  logged once per field *name*, never with its value.
- ``task_cancel``: the task is cancelled and, **in the same transaction**, its
  open stops leave every active tour (reservations released, the tour
  re-routed or finished: :func:`edge.picking.apply.withdraw_task`), so a crash
  can never leave it being picked. When it was on active tours a
  :class:`Notice` is returned so the daemon tells the pickers after the commit
  (``task_cancelled`` and the re-routed tour). A
  cancel of a task the box has not received leaves a tombstone (kept
  :data:`CANCEL_TOMBSTONE_DAYS` of box uptime): the task arriving later is
  ignored with a ``warn`` alert, never made pickable.
- ``picker``: upsert of ``pickers``; ``active`` false deactivates (and a
  :class:`Notice` says so, for logging the picker out). A badge that moves to
  another picker is taken from its old holder, which is deactivated.
- ``erase``: a data-subject erasure (sync-v1). For ``order``: its tasks'
  ship-to postcode and region are blanked and the ship-to texts of its labels
  in stored print jobs redacted (:func:`edge.shipping.labels.redact_order`);
  quantities, codes, SSCCs and states stay. For ``picker``: the picker keeps
  its id (history refers to it) but its name and badge are replaced, it is
  deactivated and its sessions end. Each subject is answered by an
  ``erased`` event (``order`` or ``picker``, ``rows``: rows changed) in the
  same transaction, and a :class:`Notice` ``erased`` asks the daemon to
  truncate the WAL after the commit, so the old values leave the files.
- **Unknown change types** are skipped (forward compatible: a newer cloud may
  send more than this box knows), counted in :data:`UNKNOWN_CHANGES` and
  logged once per type per process.
- A known change with missing or mistyped fields, or one the box's tables
  cannot hold (a task with two lines of one id), raises :class:`ChangeError`
  naming the change (its position in the page, type and key) and why; the
  caller's transaction rolls back, so a page is applied whole or not at all,
  and the downloader stops the feed visibly rather than skip the change.
  What can be checked is checked before any SQL; a constraint the tables
  still refuse (``sqlite3.IntegrityError``) becomes a :class:`ChangeError`
  of that change too, never a store failure.

Validation and decisions are here; every statement is a function of
:mod:`edge.masterdata.tables`.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cloud_sync.events import CancelStage, Erased, TaskCancelled
from cloud_sync.ports import ChangeRefused
from common.errors import PickEdgeError
from edge.masterdata import tables
from edge.picking import stats
from edge.picking.apply import cancel_stage, record_put_backs, withdraw_task
from edge.picking.tours import Planner
from edge.shipping.labels import redact_order
from edge.store.db import Transaction, now_ms
from edge.store.outbox import deltas_after, raise_alert

log = logging.getLogger(__name__)

#: change type -> how many were skipped as unknown (this process)
UNKNOWN_CHANGES: Counter[str] = Counter()
#: where in a task (``task``, ``ship_to``, ``line``) -> fields dropped on ingest
#: because sync-v1 does not have them there (this process)
DROPPED_FIELDS: Counter[str] = Counter()
#: subject (``order``, ``picker``) -> erasures carried out (this process)
ERASURES: Counter[str] = Counter()
#: the keys a task, its ship_to and its lines have in sync-v1: anything else is dropped
TASK_KEYS = frozenset({"task", "kind", "order", "priority", "lines", "ship_to", "carrier"})
SHIP_TO_KEYS = frozenset({"postcode", "region"})
LINE_KEYS = frozenset({"line", "sku", "qty", "location"})
#: field names already logged as dropped (bounded: a feed full of odd keys logs
#: at most this many lines)
_LOGGED_DROPS: set[str] = set()
_MAX_LOGGED_DROPS = 100

_GTIN = re.compile(r"\d{14}")
#: what SQLite's INTEGER holds
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: a location's y in metres: finite (NaN and infinity fail ``<``), far beyond any aisle
_MAX_Y = 1e9
#: distinct unknown change types counted by name; more are counted as "(other)"
_MAX_UNKNOWN_TYPES = 100

#: how long a task cancelled before it arrived is remembered, in days of box
#: uptime: as long as a purged one (edge.maintenance.TOMBSTONE_DAYS)
CANCEL_TOMBSTONE_DAYS = 365.0


class ChangeError(PickEdgeError, ChangeRefused):
    """A downstream change that cannot be applied as sync-v1 defines it: the
    page is refused whole (:class:`cloud_sync.ports.ChangeRefused`)."""

    code = "change_invalid"


class StockAheadError(ChangeError):
    """A ``stock`` figure that includes more of this box's current epoch than
    the box has written: applying it would drop the box's own newer deltas."""

    code = "stock_ahead"
    alert_kind = "sync_stock_ahead"


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a person on the floor must hear about now.

    ``kind`` is ``task_cancelled`` (a task on active tours was cancelled and its
    stops taken out of them: ``pickers`` are on it, ``tours`` are those tours,
    to push as they now are), ``picker_deactivated`` or ``erased`` (an
    erasure was committed: the WAL is to be truncated; ``pickers`` or
    ``detail["order"]`` name the subject).
    """

    kind: str
    task: str | None = None
    pickers: tuple[str, ...] = ()
    tours: tuple[int, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Page:
    """What the handlers of one page share."""

    planner: Planner | None
    notices: list[Notice] = field(default_factory=list)


def apply_changes(
    tx: Transaction, changes: Iterable[Mapping[str, Any]], *, planner: Planner | None = None
) -> list[Notice]:
    """Apply downstream changes in order, in ``tx``; returns the notices.

    ``planner`` re-routes the tours a cancel takes stops out of (the daemon's
    picking planner; without one the open stops keep their order)."""
    page = _Page(planner)
    for index, change in enumerate(changes):
        if not isinstance(change, Mapping):
            raise ChangeError(f"change {index} is not a map")
        type_ = change.get("type")
        data = change.get("data")
        handler = _HANDLERS.get(type_) if isinstance(type_, str) else None
        if handler is None:
            # bounded: a feed of ever new type names must not grow the counter or the log
            name = _safe(str(type_)[:64])
            if name not in UNKNOWN_CHANGES and len(UNKNOWN_CHANGES) >= _MAX_UNKNOWN_TYPES:
                name = "(other)"
            if UNKNOWN_CHANGES[name] == 0:
                log.warning("skipping downstream change of unknown type %r (logged once)", name)
            UNKNOWN_CHANGES[name] += 1
            continue
        if not isinstance(data, Mapping):
            raise ChangeError(f"change {index} ({type_}): data is not a map")
        where = f"change {index} ({_describe(str(type_), data)})"
        try:
            handler(tx, data, page)
        except ChangeError as exc:
            exc.args = (_safe(f"{where}: {exc}"),)
            raise
        except sqlite3.IntegrityError as exc:
            # A constraint the checks above did not foresee: still this change's fault.
            raise ChangeError(_safe(f"{where}: the box's tables refuse it ({exc})")) from exc
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ChangeError(_safe(f"{where}: {type(exc).__name__}: {exc}")) from exc
    return page.notices


# --------------------------------------------------------------------------- fields


def _describe(type_: str, data: Mapping[str, Any]) -> str:
    """``type`` and the key of a change, for messages and alerts."""
    if type_ == "stock":
        return f"stock {data.get('sku')!s:.60} at {data.get('location')!s:.60}"
    for key in ("task", "sku", "code", "id", "order", "picker"):
        if data.get(key) is not None:
            return f"{type_} {data[key]!s:.60}"
    return type_


def _str(
    data: Mapping[str, Any], key: str, *, optional: bool = False, private: bool = False
) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        # a person's data (a badge) is never echoed into the error, which is logged
        shown = type(value).__name__ if private else repr(value)
        raise ChangeError(f"{key} must be a non-empty string, not {shown}")
    return value


def _int(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ChangeError(f"{key} must be an integer, not {value!r:.40}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ChangeError(f"{key} is beyond what the box stores (64-bit integers)")
    return value


def _safe(message: str) -> str:
    """``message`` writable anywhere: a lone surrogate from a change's JSON
    (``"\\ud800"``) would fail the UTF-8 of SQLite (the alert that reports the
    refusal) and of log files; it is written as an escape instead."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _drop_unknown(where: str, data: Mapping[str, Any], known: frozenset[str]) -> None:
    """Count (and log once per name) the keys of ``data`` sync-v1 does not
    have at ``where``: they are never stored. Only the key's name is logged."""
    for key in data:
        if key in known:
            continue
        DROPPED_FIELDS[where] += 1
        name = f"{where}.{str(key)[:40]}"
        if name not in _LOGGED_DROPS and len(_LOGGED_DROPS) < _MAX_LOGGED_DROPS:
            _LOGGED_DROPS.add(name)
            log.warning(
                "dropping field %r of downstream tasks: the box keeps no customer data "
                "beyond postcode and region (logged once per field)",
                name,
            )


# --------------------------------------------------------------------------- handlers


def _item(tx: Transaction, d: Mapping[str, Any], page: _Page) -> None:
    sku = _str(d, "sku")
    gtins = d.get("gtins") or []
    if not isinstance(gtins, list) or not all(
        isinstance(g, str) and _GTIN.fullmatch(g) for g in gtins
    ):
        raise ChangeError(f"item {sku}: gtins must be a list of 14-digit strings")
    tables.upsert_item(
        tx,
        sku,
        description=str(d.get("description") or ""),
        uom=str(d.get("uom") or "EA"),
        serialized=bool(d.get("serialized")),
    )
    tables.replace_gtins(tx, sku, gtins)


def _location(tx: Transaction, d: Mapping[str, Any], page: _Page) -> None:
    code = _str(d, "code")
    aisle = _int(d, "aisle")
    y = d.get("y")
    if not isinstance(y, int | float) or isinstance(y, bool) or not 0 <= y < _MAX_Y or aisle < 0:
        raise ChangeError(f"location {code}: aisle and y must be numbers ≥ 0")
    tables.upsert_location(tx, code, aisle, float(y), str(d.get("zone") or ""))


def _stock(tx: Transaction, d: Mapping[str, Any], page: _Page) -> None:
    sku, location = _str(d, "sku"), _str(d, "location")
    qty = _int(d, "qty")
    epoch = _str(d, "epoch", optional=True)
    acked = _int(d, "acked", 0)
    if acked < 0:
        raise ChangeError(f"acked must be ≥ 0, not {acked}")
    if epoch is not None:
        written = tables.written_in_current_epoch(tx, epoch)
        if written is not None and acked > written:
            # The cloud saw this epoch further than this box wrote it: the box
            # was restored from a backup or its card cloned. Its deltas after
            # `written` are not the cloud's `written + 1 .. acked`: refuse, or
            # they are lost under the cloud's figure.
            raise StockAheadError(
                f"the cloud's figure includes this box's events up to seq {acked} of "
                f"epoch {epoch}, but the box has written only {written} in it (restored "
                "from a backup, or a cloned card?): applying it would drop the box's own "
                "newer stock movements; the page waits until the box is in a new epoch"
            )
    on_hand = qty + deltas_after(tx, sku, location, epoch, acked if epoch is not None else 0)
    tables.set_on_hand(tx, sku, location, on_hand)


def _task_lines(d: Mapping[str, Any], task: str, kind: str) -> list[tables.TaskLine]:
    lines = d.get("lines")
    if not isinstance(lines, list) or not lines:
        raise ChangeError(f"task {task}: lines must be a non-empty list")
    out = []
    seen: set[str] = set()
    for line in lines:
        if not isinstance(line, Mapping) or not isinstance(line.get("line"), str | int):
            raise ChangeError(f"task {task}: every line needs a line id (a string or an integer)")
        if isinstance(line["line"], bool) or line["line"] == "":
            raise ChangeError(f"task {task}: line id {line['line']!r} is not an id")
        line_id = str(line["line"])
        if line_id in seen:
            # The box keys lines by (task, line): two of one id cannot both be picked.
            raise ChangeError(f"task {task}: line {line_id} appears twice")
        seen.add(line_id)
        _drop_unknown("line", line, LINE_KEYS)
        qty = _int(line, "qty")
        if qty < 0:
            raise ChangeError(f"task {task}: line {line_id}: qty must be ≥ 0")
        location = _str(line, "location", optional=kind != "count")
        out.append((line_id, _str(line, "sku"), qty, location))
    return out


def _task(tx: Transaction, d: Mapping[str, Any], page: _Page) -> None:
    task = _str(d, "task")
    kind = d.get("kind") or "pick"
    if kind not in ("pick", "count"):
        raise ChangeError(f"task {task}: kind must be pick or count, not {kind!r}")
    ship_to = d.get("ship_to") or {}
    if not isinstance(ship_to, Mapping):
        raise ChangeError(f"task {task}: ship_to must be a map")
    # Customer data stays minimal (DESIGN decision 6): postcode and region only.
    _drop_unknown("task", d, TASK_KEYS)
    _drop_unknown("ship_to", ship_to, SHIP_TO_KEYS)
    header = tables.TaskHeader(
        kind=kind,
        order_ref=_text(d.get("order")),
        priority=_int(d, "priority", 0),
        ship_postcode=_text(ship_to.get("postcode")),
        ship_region=_text(ship_to.get("region")),
        carrier=_text(d.get("carrier")),
    )
    lines = _task_lines(d, task, kind)
    stored = tables.stored_task(tx, task)
    if stored is None:
        if tables.is_tombstoned(tx, task):
            # Cancelled before it came, or finished and purged here: sending it
            # (again) must not make it pickable.
            log.warning("ignoring task %s: it was cancelled or finished on this box", task)
            raise_alert(
                tx,
                "task_update_ignored",
                "warn",
                f"task {task} came after it was cancelled, or finished and purged, on this "
                "box; it was ignored",
                {"task": task, "state": "tombstoned"},
                once=False,
            )
            return
        tables.insert_task(tx, task, header, now_ms())
        tables.replace_task_lines(tx, task, lines)
        return
    if stored.header == header and tables.task_lines(tx, task) == lines:
        return  # the same task again: nothing to do (idempotent)
    if stored.state != "open":
        log.warning("ignoring an update of task %s, which is %s", task, stored.state)
        raise_alert(
            tx,
            "task_update_ignored",
            "warn",
            f"task {task} changed in the cloud after picking began; the change was ignored",
            {"task": task, "state": stored.state},
            once=False,
        )
        return
    tables.update_task(tx, task, header)
    tables.replace_task_lines(tx, task, lines)


def _task_cancel(tx: Transaction, d: Mapping[str, Any], page: _Page) -> None:
    task = _str(d, "task")
    state = tables.task_state(tx, task)
    if state is None:
        # Not received (yet): remember the cancel, so the task arriving later
        # (a reordered feed, a cloud that cancels before it sends) is never picked.
        log.info("cancel of task %s, which this box has not received: remembered", task)
        tables.tombstone_task(tx, task, keep_ms=int(CANCEL_TOMBSTONE_DAYS * 86_400_000))
        return
    if state == "cancelled":
        return
    if state == "done":
        _refuse_late_cancel(tx, task)
        return
    now = now_ms()
    on_it = tables.active_tours_on(tx, task)
    stage = CancelStage.OPEN if state == "open" else cancel_stage(tx, task)
    tables.cancel_task(tx, task, now)
    stats.note(tx, task, "cancel", now)
    # In this transaction, not after it: a crash between recording the cancel
    # and taking the stops out would leave a cancelled task being picked.
    withdraw_task(tx, task, page.planner, now)
    # what the picker already holds of it goes back to a location (put-back)
    put_back = record_put_backs(tx, task, now) if stage is not CancelStage.OPEN else ()
    tx.append(
        TaskCancelled(
            task=task, order=tables.task_order(tx, task), at_stage=stage, put_back=put_back
        )
    )
    if on_it:
        page.notices.append(
            Notice(
                kind="task_cancelled",
                task=task,
                pickers=tuple(dict.fromkeys(picker for _, picker in on_it)),
                tours=tuple(tour for tour, _ in on_it),
            )
        )


def _refuse_late_cancel(tx: Transaction, task: str) -> None:
    """A cancel of a task already picked (``task_picked`` went up) is not
    applied: its units are in a tote or a carton on their way out, which only
    the OMS can stop. A ``warn`` alert says so, once per task."""
    order = tables.task_order(tx, task)
    shipment = tables.shipment_of(tx, order) if order is not None else None
    subject = f"task {task} was cancelled after it was picked: intercept its shipment"
    if tx.execute(
        "SELECT 1 FROM alerts WHERE kind = 'cancel_refused' AND subject = ? AND cleared_ms IS NULL",
        (subject,),
    ).fetchone():
        return  # the same cancel again (a page read twice)
    log.warning("cancel of task %s refused: it is already picked", task)
    raise_alert(
        tx,
        "cancel_refused",
        "warn",
        subject,
        {"task": task, "order": order, "shipment": shipment},
        once=False,
    )


def _picker(tx: Transaction, d: Mapping[str, Any], page: _Page) -> None:
    picker = _str(d, "id")
    badge = _str(d, "badge", private=True)
    role = d.get("role") or "picker"
    if role not in ("picker", "supervisor", "admin"):
        raise ChangeError(f"picker {picker}: role must be picker, supervisor or admin")
    active = d.get("active", True)
    if not isinstance(active, bool):
        raise ChangeError(f"picker {picker}: active must be true or false")
    holder = tables.badge_holder(tx, badge)
    if holder is not None and holder != picker:
        # The badge was reissued: its old holder can no longer log in with it.
        tables.take_badge(tx, holder)
        page.notices.append(Notice(kind="picker_deactivated", pickers=(holder,)))
    was_active = tables.picker_active(tx, picker)
    tables.upsert_picker(
        tx, picker, str(d.get("name") or picker), badge, role, active=active, source="cloud"
    )
    if not active and was_active:
        page.notices.append(Notice(kind="picker_deactivated", pickers=(picker,)))


def _erase(tx: Transaction, d: Mapping[str, Any], page: _Page) -> None:
    order = _str(d, "order", optional=True)
    picker = _str(d, "picker", optional=True)
    if order is None and picker is None:
        raise ChangeError("erase names neither an order nor a picker")
    if order is not None:
        rows = tables.erase_order(tx, order) + redact_order(tx, order)
        tx.append(Erased(order=order, rows=rows))
        ERASURES["order"] += 1
        log.info("erased the customer data of order %s (%d rows)", order, rows)
    if picker is not None:
        was_active = tables.picker_active(tx, picker)
        rows = tables.erase_picker(tx, picker)
        tx.append(Erased(picker=picker, rows=rows))
        ERASURES["picker"] += 1
        log.info("erased the name and badge of picker %s (%d rows)", picker, rows)
        if was_active:
            page.notices.append(Notice(kind="picker_deactivated", pickers=(picker,)))
    page.notices.append(
        Notice(
            kind="erased",
            pickers=(picker,) if picker is not None else (),
            detail={"order": order} if order is not None else {},
        )
    )


_HANDLERS = {
    "item": _item,
    "location": _location,
    "stock": _stock,
    "task": _task,
    "task_cancel": _task_cancel,
    "picker": _picker,
    "erase": _erase,
}

__all__ = [
    "DROPPED_FIELDS",
    "ERASURES",
    "UNKNOWN_CHANGES",
    "ChangeError",
    "Notice",
    "StockAheadError",
    "apply_changes",
]
