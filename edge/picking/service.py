"""Picking on the floor: tours, scans, short picks, skips and cancels.

Every call has the same shape — read → decide → write — in one store
transaction on the writer thread:

1. :mod:`edge.picking.load` reads what the decision needs, inside the transaction;
2. :mod:`edge.picking.decide` decides, purely (the pda-api-v1 scan table);
3. :mod:`edge.picking.apply` writes the rows and appends the outbox events;
4. :mod:`edge.picking.view` builds the tour the PDA is answered with.

Promises:

- **One transaction per confirmed fact.** A state change and its outbox events
  (``pick_confirmed``, ``stock_delta``, ``pick_exception``, ``alert``) and the
  stored answer of the scan commit together. When a method returns, that
  transaction is on disk. Scans that arrive together share one group commit
  (:class:`edge.store.group_commit.GroupCommitter`), each in its own savepoint.
- **Decisions inside the transaction.** Nothing read before it decides
  anything, so two pickers (or two retries of one scan) can never both take the
  same units. A tour planned beforehand on a read snapshot
  (:class:`edge.picking.tours.Planner`) is used only if it still holds.
- **Idempotent scans.** ``scan_id`` is the key of the ``scans`` table: a repeat
  returns the stored answer byte for byte and changes nothing.
- **No overselling.** A tour reserves the units it sends a picker for
  (``stock.reserved``); a later tour only sees ``qty - reserved``.
- **Errors change nothing** but the stored answer: ``wrong_location``,
  ``wrong_item``, ``unknown_code``, ``over_pick`` leave tour, stock and outbox as
  they were.

Codes are read with :func:`edge.picking.codes.interpret` (``devices.codes``);
this package never slices a code. Routes come from :mod:`edge.routing`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from edge.picking import counters, counting
from edge.picking import queries as q
from edge.picking.apply import (
    TOUR_REROUTED,
    Applied,
    apply_scan,
    apply_short,
    apply_skip,
    withdraw_task,
    withdraw_unpickable,
)
from edge.picking.codes import ScannedCode, interpret
from edge.picking.decide import decide, decide_short, decide_skip
from edge.picking.errors import InvalidShortError, NoTourError, ScanIdConflictError
from edge.picking.load import load_scan, load_stop
from edge.picking.model import SHORT_REASONS, CartSettings, Picker, ScanResult
from edge.picking.putback import decide_put_back, put_back_view
from edge.picking.tours import Planner, Prepared, Proposer
from edge.picking.view import answer, encode, tour_view
from edge.store.db import Store, Transaction, now_ms
from edge.store.group_commit import GroupCommitter

__all__ = ["SHORT_REASONS", "Listener", "Outcome", "Picker", "PickingService"]

log = logging.getLogger(__name__)

#: answers about put-back lines (they carry the lines left, even when none is)
PUT_BACK_RESULTS = (
    ScanResult.PUT_BACK_ITEM,
    ScanResult.PUT_BACK_DONE,
    ScanResult.PUT_BACK_REQUIRED,
)

#: listener(picker_id, message) — called after the commit, on the event loop
Listener = Callable[[str, dict[str, Any]], None]


@dataclass(slots=True)
class Outcome:
    """What a picking call answered; ``body`` is the JSON the PDA receives."""

    body: bytes
    replayed: bool = False
    pushes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: int = 0
    #: the answer's result and the units it confirmed picked (for the metrics)
    result: str = ""
    units: int = 0

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class PickingService:
    """The picking workflow of one zone, over one :class:`Store`.

    ``layout`` is the routing-v1 layout of the zone (``cfg.layout_dict()``);
    ``zone``, when set, limits stock matching to locations of that zone;
    ``on_commit`` is called after every commit that appended outbox events (the
    uploader's ``notify``); ``start_tasks`` is how many tasks a ``START`` scan
    takes at once without carts; ``carts`` how the zone picks on carts and
    ``proposer`` which cart a START gets (:class:`edge.picking.tours.Planner`).
    """

    def __init__(
        self,
        store: Store,
        layout: dict[str, Any],
        *,
        zone: str | None = None,
        on_commit: Callable[[], None] | None = None,
        start_tasks: int = 1,
        carts: CartSettings | None = None,
        proposer: Proposer | None = None,
        zero_checks: bool = False,
    ) -> None:
        self.store = store
        self.layout = layout
        self.zone = zone
        self.on_commit = on_commit
        self.start_tasks = start_tasks
        self.carts = carts if carts is not None else CartSettings()
        self.planner = Planner(
            layout,
            zone=zone,
            start_tasks=start_tasks,
            carts=self.carts,
            proposer=proposer,
            zero_checks=zero_checks,
        )
        self._listeners: list[Listener] = []
        #: called once per scan as it arrives (peak protection counts the inflow)
        self.on_scan: Callable[[], None] | None = None
        self._plan_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tour-planner")
        self._scans = GroupCommitter(store)
        self.planner.warm_up()

    # ------------------------------------------------------------------ plumbing

    def subscribe(self, listener: Listener) -> None:
        """Receive ``(picker_id, message)`` pushes (tour_assigned, tour_rerouted, …)."""
        self._listeners.append(listener)

    def _after_commit(self, outcome: Outcome) -> Outcome:
        if outcome.events and self.on_commit is not None:
            try:
                self.on_commit()
            except Exception:  # the uploader's trouble must never fail a confirmed scan
                log.exception("on_commit hook failed")
        for picker, message in outcome.pushes:
            for listener in self._listeners:
                try:
                    listener(picker, message)
                except Exception:
                    log.exception("push listener failed")
        return outcome

    def _outcome(self, tx: Transaction, picker: str, applied: Applied) -> Outcome:
        """The answer to an applied decision, built after its writes; without
        an active tour (none, or the one that just ended), with the picker's
        open put-back lines when there are any (or the decision was about them)."""
        view = tour_view(tx, applied.tour, self.planner.pitch) if applied.tour is not None else None
        doc = answer(applied.decision, view, applied.exceptions)
        if view is None or view["state"] != "active":
            lines = q.open_put_backs(tx, picker)
            if lines or applied.decision.result in PUT_BACK_RESULTS:
                doc["put_backs"] = put_back_view(lines)
        body = encode(doc)
        pushes = [(picker, {"type": applied.push, "tour": view})] if applied.push else []
        decision = applied.decision
        return Outcome(
            body,
            pushes=pushes,
            events=len(tx.events),
            result=decision.result.value,
            units=counters.units_of(decision),
        )

    # ------------------------------------------------------------------ scans

    async def scan(self, picker: Picker, code: str, scan_id: str) -> Outcome:
        """Apply one scan of ``picker`` (the scan table of pda-api-v1)."""
        if self.on_scan is not None:
            self.on_scan()
        scanned = interpret(code)
        prepared: Prepared | None = None
        if scanned.valid and self._may_start(picker):
            loop = asyncio.get_running_loop()
            prepared = await loop.run_in_executor(self._plan_thread, self._prepare, picker, scanned)

        def fn(tx: Transaction) -> Outcome:
            return self._scan_tx(tx, picker, scanned, scan_id, prepared)

        outcome = self._after_commit(await self._scans.submit(fn))
        counters.answered(outcome.result, units=outcome.units, scan=True, replayed=outcome.replayed)
        return outcome

    def _may_start(self, picker: Picker) -> bool:
        """Cheap read: could this scan start a tour? (Decided again in the tx.)"""
        return q.active_tour(self.store.reader().conn, picker.id) is None

    def _prepare(self, picker: Picker, code: ScannedCode) -> Prepared | None:
        """Plan the tour this scan may start, on the planner thread's read snapshot."""
        return self.planner.prepare(self.store.reader().conn, picker.id, code)

    def _scan_tx(
        self,
        tx: Transaction,
        picker: Picker,
        code: ScannedCode,
        scan_id: str,
        prepared: Prepared | None,
    ) -> Outcome:
        """One scan, on the writer thread, inside its savepoint of a group commit."""
        stored = q.stored_scan(tx, scan_id)
        if stored is not None:
            owner, compressed = stored
            if owner != picker.id:
                raise ScanIdConflictError(f"scan_id {scan_id!r} was used by another picker")
            return Outcome(zlib.decompress(compressed), replayed=True)
        now = now_ms()
        tour = q.active_tour(tx, picker.id)
        if tour is not None and counting.tour_kind(tx, tour) == "count":
            applied = self._count_scan(tx, picker, tour, code, now)
        else:
            applied = self._pick_scan(tx, picker, code, prepared, now)
        outcome = self._outcome(tx, picker.id, applied)
        q.record_scan(
            tx,
            scan_id,
            picker=picker.id,
            tour=applied.tour,
            code=code.raw,
            result=applied.decision.result.value,
            # zlib (level 1, ~30 µs): a tour answer shrinks from ~6 kB to ~1 kB,
            # which keeps the WAL and its checkpoints small on the scan path.
            answer=zlib.compress(outcome.body, 1),
            now=now,
        )
        return outcome

    def _count_scan(
        self, tx: Transaction, picker: Picker, tour: int, code: ScannedCode, now: int
    ) -> Applied:
        """A scan in a count tour (:mod:`edge.picking.counting`)."""
        decision = counting.decide_count(counting.load_count(tx, tour, code), code)
        counting.apply_count(tx, picker, decision, now)
        return Applied(decision, tour)

    def _pick_scan(
        self,
        tx: Transaction,
        picker: Picker,
        code: ScannedCode,
        prepared: Prepared | None,
        now: int,
    ) -> Applied:
        """A scan outside a count tour: picking, put-back, or a tour start."""
        state = load_scan(
            tx,
            picker.id,
            code,
            start_tasks=self.start_tasks,
            carts=self.carts,
            proposal=prepared.tasks if prepared is not None else None,
        )
        if state.tour is None and state.put_backs:
            decision = decide_put_back(state, code)
        else:
            decision = decide(state, code)
        return apply_scan(
            tx, picker, state, decision, planner=self.planner, prepared=prepared, now=now
        )

    # ------------------------------------------------------------------ reads

    async def put_backs(self, picker_id: str | None) -> list[dict[str, Any]]:
        """Open put-back lines of ``picker_id`` (None: everyone's, with who holds them)."""
        with q.snapshot(self.store.reader().conn) as conn:
            if picker_id is not None:
                return put_back_view(q.open_put_backs(conn, picker_id))
            return [
                {**put_back_view([line])[0], "picker": holder}
                for line, holder in q.open_put_backs_by_picker(conn)
            ]

    async def current_tour(self, picker_id: str) -> dict[str, Any]:
        """The picker's active tour; :class:`NoTourError` when there is none.

        Read from one WAL snapshot of a read connection: every scan already
        answered is committed, so it is in the snapshot, and the writer is not
        held up by a PDA that reloads its page.
        """
        with q.snapshot(self.store.reader().conn) as conn:
            tour = q.active_tour(conn, picker_id)
            if tour is None:
                raise NoTourError("no active tour: scan an order, a task, a tote or START")
            return tour_view(conn, tour, self.planner.pitch)

    # ------------------------------------------------------------------ short, skip, cancel

    async def short(self, picker: Picker, stop: int, found: int, reason: str) -> Outcome:
        """Record a short pick at ``stop`` and re-route the rest of the tour."""
        if reason not in SHORT_REASONS:
            raise InvalidShortError(f"reason must be one of {', '.join(SHORT_REASONS)}")

        def fn(tx: Transaction) -> Outcome:
            now = now_ms()
            short = decide_short(load_stop(tx, picker.id, stop, stock=True), found, reason)
            applied = apply_short(tx, picker, short, self.planner, now)
            outcome = self._outcome(tx, picker.id, applied)
            outcome.units = short.extra
            return outcome

        outcome = self._after_commit(await self.store.write(fn))
        counters.answered(outcome.result, units=outcome.units, kind="short")
        return outcome

    async def count(self, picker: Picker, stop: int, qty: int) -> Outcome:
        """A quantity entered for a count stop whose location was scanned:
        the count of it is finished with ``qty`` units (one recount when it
        differs from the box's on-hand, as by scanning the location again)."""

        def fn(tx: Transaction) -> Outcome:
            scan, at = counting.load_entry(tx, picker.id, stop)
            decision = counting.finish(scan, at, qty)
            counting.apply_count(tx, picker, decision, now_ms())
            return self._outcome(tx, picker.id, Applied(decision, scan.tour))

        outcome = self._after_commit(await self.store.write(fn))
        counters.answered(outcome.result)  # a count tour may end here
        return outcome

    async def skip(self, picker: Picker, stop: int) -> Outcome:
        """Put ``stop`` at the end of the walk (the picker comes back to it)."""

        def fn(tx: Transaction) -> Outcome:
            skip = decide_skip(load_stop(tx, picker.id, stop))
            return self._outcome(tx, picker.id, apply_skip(tx, skip, self.planner))

        outcome = self._after_commit(await self.store.write(fn))
        counters.answered(outcome.result, kind="skip")
        return outcome

    async def cancel_task(self, task: str, tours: Sequence[int] = ()) -> list[int]:
        """Tell the pickers of ``tours`` how a cancel of ``task`` left their tours.

        Master data took the task's stops out in the transaction that recorded
        the cancel (:func:`edge.picking.apply.withdraw_task`); ``tours`` are the
        active tours it reached (the ``Notice``). Any open stop of the task
        still in a tour is taken out here too (nothing, normally). Pushes
        ``tour_rerouted`` with each tour as it now is; returns the tours pushed.
        """

        def fn(tx: Transaction) -> Outcome:
            changed = withdraw_task(tx, task, self.planner, now_ms())
            pickers = dict(q.tour_pickers(tx, tours))
            pickers.update(changed)
            pushes = [
                (picker, {"type": TOUR_REROUTED, "tour": tour_view(tx, tour, self.planner.pitch)})
                for tour, picker in sorted(pickers.items())
            ]
            return Outcome(b"", pushes=pushes, events=len(tx.events))

        outcome = self._after_commit(await self.store.write(fn))
        return [int(m["tour"]["tour"]) for _, m in outcome.pushes]

    def withdraw_cancelled(self) -> list[tuple[str, int, str]]:
        """Start-up repair: take out of active tours the open stops of tasks that
        are no longer open or started (a cancel that a crash or an older box
        left half done), releasing their reservations and re-routing or
        finishing the tours. Synchronous, before the API serves; returns
        (task, tour, picker) of what was taken out, each logged."""
        repaired = self.store.run(lambda tx: withdraw_unpickable(tx, self.planner, now_ms()))
        for task, tour, picker in repaired:
            log.warning(
                "start-up: took the open stops of task %s out of tour %d (%s): "
                "the task is no longer pickable",
                task,
                tour,
                picker,
            )
        return repaired
