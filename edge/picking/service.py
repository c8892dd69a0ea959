"""Picking on the floor: tours, the scan state machine, short picks.

Promises:

- **One transaction per confirmed fact.** Every state change — a tour started
  with its reservations, a location confirmed, a unit counted, a short pick —
  runs in one ``await store.write(fn)`` together with its outbox events
  (``pick_confirmed``, ``stock_delta``, ``pick_exception``, ``alert``) and the
  stored answer of the scan. When a method returns, that transaction is on disk.
- **Decisions inside the transaction.** ``fn(tx)`` re-reads the picker's tour
  and stop rows itself; nothing read before the transaction decides anything,
  so two pickers (or two retries of one scan) can never both take the same
  units.
- **Idempotent scans.** ``scan_id`` is the key of the ``scans`` table: a repeat
  returns the stored answer byte for byte and changes nothing.
- **No overselling.** A tour reserves the units it sends a picker for
  (``stock.reserved``); a later tour only sees ``qty - reserved``.
- **Errors change nothing** but the stored answer: ``wrong_location``,
  ``wrong_item``, ``unknown_code``, ``over_pick`` leave tour, stock and outbox as
  they were.

Codes are read with :func:`edge.picking.codes.interpret` (``devices.codes``);
this module never slices a code. Routes come from :mod:`edge.routing`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cloud_sync.events import UnknownEvent, decode_event
from edge.picking.allocation import Candidate, LinePlan, choose, plan_line
from edge.picking.codes import ScannedCode, interpret
from edge.picking.errors import (
    InvalidShortError,
    NoTourError,
    ScanIdConflictError,
    StopClosedError,
    UnknownStopError,
)
from edge.picking.routes import Spot, plan_walk
from edge.store.db import Store, Transaction, now_ms
from edge.store.outbox import raise_alert

log = logging.getLogger(__name__)

#: listener(picker_id, message) — called after the commit, on the event loop
Listener = Callable[[str, dict[str, Any]], None]

SHORT_REASONS = ("empty", "damaged", "other")

# Feedback a PDA turns into a beep, a buzz and a colour.
SUCCESS, WARNING, ERROR = "success", "warning", "error"

_OPEN_STATES = ("pending", "location_ok")


@dataclass(frozen=True, slots=True)
class Picker:
    id: str
    name: str
    role: str


@dataclass(slots=True)
class Outcome:
    """What a picking call answered; ``body`` is the JSON the PDA receives."""

    body: bytes
    replayed: bool = False
    pushes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: int = 0

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass(slots=True)
class _Ctx:
    tx: Transaction
    picker: Picker
    now: int
    pushes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.tx.conn


@dataclass(frozen=True, slots=True)
class _Stop:
    tour: int
    stop: int
    task: str
    line: str
    sku: str
    location: str
    lot: str
    expiry: str | None
    qty: int
    picked: int
    state: str
    ord: int


#: most scans committed together in one group commit
MAX_BATCH = 32

_Pending = tuple[Callable[[Transaction], "Outcome"], "asyncio.Future[Outcome]"]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A tour planned on a read snapshot, checked again inside the transaction."""

    tasks: tuple[str, ...]
    wanted: list[tuple[str, str, str, int]]
    plans: list[LinePlan]
    walk: tuple[list[str], dict[str, Any]]


def _spots(allocations: list[tuple[str, str, str, Candidate, int]]) -> list[Spot]:
    """Routing spots of the allocations, numbered as their stops (1, 2, …)."""
    return [Spot(str(n), c.aisle, c.y) for n, (_, _, _, c, _) in enumerate(allocations, start=1)]


_STOP_COLS = "tour, stop, task, line, sku, location, lot, expiry, qty, picked, state, ord"


class PickingService:
    """The picking workflow of one zone, over one :class:`Store`.

    ``layout`` is the routing-v1 layout of the zone (``cfg.layout_dict()``);
    ``zone``, when set, limits stock matching to locations of that zone;
    ``on_commit`` is called after every commit that appended outbox events (the
    uploader's ``notify``); ``start_tasks`` is how many tasks a ``START`` scan
    takes at once.
    """

    def __init__(
        self,
        store: Store,
        layout: dict[str, Any],
        *,
        zone: str | None = None,
        on_commit: Callable[[], None] | None = None,
        start_tasks: int = 1,
    ) -> None:
        self.store = store
        self.layout = layout
        self.zone = zone
        self.on_commit = on_commit
        self.start_tasks = start_tasks
        self._pitch = float(layout.get("aisle_pitch_m", 1.0)) if layout else 1.0
        self._listeners: list[Listener] = []
        self._planner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tour-planner")
        self._pending: list[_Pending] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None
        self._warm_up()

    def _warm_up(self) -> None:
        """Route one tour now: the engine memoises its transitions per layout on
        first use (tens of ms), which must not land on a picker's first scan."""
        if self.layout.get("kind") != "blocks":
            return
        aisles, blocks = int(self.layout["aisles"]), int(self.layout["blocks"])
        length = float(self.layout["block_length_m"])
        spots = [
            Spot(f"w{a}.{b}", a, b * length + length / 2)
            for a in range(0, aisles, max(1, aisles // 4))
            for b in range(blocks)
        ]
        plan_walk(self.layout, spots)

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

    # ------------------------------------------------------------------ public API

    async def scan(self, picker: Picker, code: str, scan_id: str) -> Outcome:
        """Apply one scan of ``picker`` (contract table of pda-api-v1)."""
        scanned = interpret(code)
        prepared: _Prepared | None = None
        if scanned.valid and self._may_start(picker, scanned):
            loop = asyncio.get_running_loop()
            prepared = await loop.run_in_executor(self._planner, self._prepare, picker, scanned)

        def fn(tx: Transaction) -> Outcome:
            return self._scan_tx(_Ctx(tx, picker, now_ms()), scanned, scan_id, prepared)

        return self._after_commit(await self._write(fn))

    async def _write(self, fn: Callable[[Transaction], Outcome]) -> Outcome:
        """Group commit: scans that arrive while the writer is busy share the
        next transaction (one fsync), each in its own savepoint.

        Every scan's answer is released only after the commit that holds it,
        so the durability promise is the same as one transaction per scan; a
        scan that raises rolls back to its savepoint and leaves the others.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append((fn, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]

                def run(tx: Transaction, batch: list[_Pending] = batch) -> list[tuple[bool, Any]]:
                    results: list[tuple[bool, Any]] = []
                    for fn, _ in batch:
                        # One savepoint per scan: a scan that fails leaves the
                        # others (and no seq gap); a database error fails all.
                        try:
                            with tx.savepoint() as sub:
                                result = fn(sub)
                        except sqlite3.Error:
                            raise
                        except Exception as exc:
                            results.append((False, exc))
                        else:
                            results.append((True, result))
                    return results

                try:
                    results = await self.store.write(run)
                except Exception as exc:  # nothing of the batch was committed
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), (ok, value) in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._flushing = False

    def _may_start(self, picker: Picker, code: ScannedCode) -> bool:
        """Cheap read: could this scan start a tour? (Decided again in the tx.)"""
        return self._active_tour(self.store.reader().conn, picker.id) is None

    async def current_tour(self, picker_id: str) -> dict[str, Any]:
        """The picker's active tour; :class:`NoTourError` when there is none.

        Read from one WAL snapshot of a read connection: every scan already
        answered is committed, so it is in the snapshot, and the writer is not
        held up by a PDA that reloads its page.
        """
        conn = self.store.reader().conn
        conn.execute("BEGIN")
        try:
            tour = self._active_tour(conn, picker_id)
            if tour is None:
                raise NoTourError("no active tour: scan an order, a task, a tote or START")
            return self._tour_view(conn, tour)
        finally:
            conn.execute("COMMIT")

    async def short(self, picker: Picker, stop: int, found: int, reason: str) -> Outcome:
        """Record a short pick at ``stop`` and re-route the rest of the tour."""
        if reason not in SHORT_REASONS:
            raise InvalidShortError(f"reason must be one of {', '.join(SHORT_REASONS)}")

        def fn(tx: Transaction) -> Outcome:
            return self._short_tx(_Ctx(tx, picker, now_ms()), stop, found, reason)

        return self._after_commit(await self.store.write(fn))

    async def skip(self, picker: Picker, stop: int) -> Outcome:
        """Put ``stop`` at the end of the walk (the picker comes back to it)."""

        def fn(tx: Transaction) -> Outcome:
            return self._skip_tx(_Ctx(tx, picker, now_ms()), stop)

        return self._after_commit(await self.store.write(fn))

    async def cancel_task(self, task: str) -> list[int]:
        """Take a cancelled task's open stops out of every active tour.

        Releases their reservations and re-routes the rest of each tour from
        the picker's last stop (a tour left with nothing open is finished).
        Pushes ``tour_rerouted``; returns the tours changed. Call it after
        master data marked the task cancelled (``Notice`` of task_cancel).
        """

        def fn(tx: Transaction) -> Outcome:
            ctx = _Ctx(tx, Picker("", "", "picker"), now_ms())
            conn = tx.conn
            tours = [
                (int(r[0]), str(r[1]))
                for r in conn.execute(
                    "SELECT DISTINCT t.tour, t.picker FROM tour_stops s JOIN tours t "
                    "ON t.tour = s.tour WHERE s.task = ? AND t.state = 'active' "
                    "AND s.state IN ('pending', 'location_ok')",
                    (task,),
                )
            ]
            for tour, picker in tours:
                for row in conn.execute(
                    f"SELECT {_STOP_COLS} FROM tour_stops WHERE tour = ? AND task = ? "  # noqa: S608
                    "AND state IN ('pending', 'location_ok')",
                    (tour, task),
                ).fetchall():
                    stop = _Stop(*row)
                    self._take_stock(conn, stop, 0, release=stop.qty - stop.picked)
                    conn.execute(
                        "UPDATE tour_stops SET state = 'cancelled' WHERE tour = ? AND stop = ?",
                        (tour, stop.stop),
                    )
                self._reroute(ctx, tour, self._position(conn, tour))
                if self._next_stop(conn, tour) is None:
                    self._finish_tour(ctx, tour)
                ctx.pushes.append(
                    (picker, {"type": "tour_rerouted", "tour": self._tour_view(conn, tour)})
                )
            return Outcome(b"", pushes=ctx.pushes, events=len(tx.events))

        outcome = self._after_commit(await self.store.write(fn))
        return [int(m["tour"]["tour"]) for _, m in outcome.pushes]

    # ------------------------------------------------------------------ scan

    def _scan_tx(
        self, ctx: _Ctx, code: ScannedCode, scan_id: str, prepared: _Prepared | None = None
    ) -> Outcome:
        conn = ctx.conn
        row = conn.execute(
            "SELECT picker, answer FROM scans WHERE scan_id = ?", (scan_id,)
        ).fetchone()
        if row is not None:
            if row[0] != ctx.picker.id:
                raise ScanIdConflictError(f"scan_id {scan_id!r} was used by another picker")
            return Outcome(zlib.decompress(row[1]), replayed=True)
        before = len(ctx.tx.events)
        tour = self._active_tour(conn, ctx.picker.id)
        if tour is None:
            answer = self._scan_without_tour(ctx, code, prepared)
        else:
            answer = self._scan_in_tour(ctx, tour, code)
        body = json.dumps(answer, separators=(",", ":")).encode()
        tour_id = answer["tour"]["tour"] if answer.get("tour") else None
        conn.execute(
            "INSERT INTO scans (scan_id, picker, tour, code, result, answer, at_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            # zlib (level 1, ~30 µs): a tour answer shrinks from ~6 kB to ~1 kB,
            # which keeps the WAL and its checkpoints small on the scan path.
            (
                scan_id,
                ctx.picker.id,
                tour_id,
                code.raw,
                answer["result"],
                zlib.compress(body, 1),
                ctx.now,
            ),
        )
        return Outcome(body, pushes=ctx.pushes, events=len(ctx.tx.events) - before)

    def _scan_without_tour(
        self, ctx: _Ctx, code: ScannedCode, prepared: _Prepared | None
    ) -> dict[str, Any]:
        conn = ctx.conn
        if not code.valid:
            return _answer("unknown_code", ERROR, f"cannot read this code: {code.problem}")
        if code.is_start:
            tasks = self._tasks_for(conn, code)
            if not tasks:
                return _answer("no_work", WARNING, "no open tasks in this zone")
            return self._start_tour(ctx, tasks, prepared)
        matches = conn.execute(
            "SELECT task, state FROM tasks WHERE kind = 'pick' "
            "AND (task = ?1 OR order_ref = ?1 OR tote = ?1) ORDER BY priority DESC, task",
            (code.data,),
        ).fetchall()
        if matches:
            open_tasks = [t for t, state in matches if state == "open"]
            if not open_tasks:
                return _answer(
                    "task_unavailable",
                    ERROR,
                    f"{code.data} is already {matches[0][1]}; it cannot be picked again",
                )
            return self._start_tour(ctx, open_tasks, prepared)
        # The last item of a finished tour scanned once more is an over-pick,
        # not an unknown code: the picker must hear that it is one too many.
        last = conn.execute(
            "SELECT tour FROM tours WHERE picker = ? ORDER BY tour DESC LIMIT 1",
            (ctx.picker.id,),
        ).fetchone()
        if last is not None:
            sku = self._item_sku(conn, code)
            if sku is not None and self._done_stop_with(conn, last[0], sku) is not None:
                return _answer("over_pick", ERROR, f"{sku}: the tour is already complete")
        return _answer("unknown_code", ERROR, f"{code.data}: no order, task or tote with this code")

    def _scan_in_tour(self, ctx: _Ctx, tour: int, code: ScannedCode) -> dict[str, Any]:
        conn = ctx.conn
        current = self._next_stop(conn, tour)
        if current is None:  # cannot happen: a tour without open stops is done
            self._finish_tour(ctx, tour)
            return _answer("tour_done", SUCCESS, "tour complete", self._tour_view(conn, tour))
        if not code.valid:
            return self._answer_in(
                conn, tour, "unknown_code", ERROR, f"cannot read this code: {code.problem}"
            )
        if code.is_start:
            return self._answer_in(
                conn, tour, "tour_active", WARNING, "finish the current tour first"
            )
        location = self._location_of(conn, code)
        if location is not None:
            if location == current.location:
                if current.state == "pending":
                    conn.execute(
                        "UPDATE tour_stops SET state = 'location_ok' WHERE tour = ? AND stop = ?",
                        (tour, current.stop),
                    )
                return self._answer_in(
                    conn, tour, "location_ok", SUCCESS, f"{location}: take {current.sku}"
                )
            return self._answer_in(
                conn,
                tour,
                "wrong_location",
                ERROR,
                f"{location} is the wrong location: go to {current.location}",
            )
        sku = self._item_sku(conn, code)
        if sku is None:
            return self._answer_in(conn, tour, "unknown_code", ERROR, f"{code.data}: unknown code")
        if code.count < 1:
            return self._answer_in(conn, tour, "unknown_code", ERROR, "count must be at least 1")
        if sku == current.sku and current.state == "location_ok":
            problem = _lot_problem(current, code)
            if problem is not None:
                return self._answer_in(conn, tour, "wrong_item", ERROR, problem)
            if code.serialised and self._counted_before(conn, current.tour, code.raw):
                return self._answer_in(
                    conn, tour, "over_pick", ERROR, "this very unit was counted already"
                )
            if current.picked + code.count > current.qty:
                return self._answer_in(
                    conn,
                    tour,
                    "over_pick",
                    ERROR,
                    f"{code.count} is more than the {current.qty - current.picked} still to pick",
                )
            return self._count(ctx, current, code)
        if sku != current.sku and self._done_stop_with(conn, tour, sku) is not None:
            return self._answer_in(
                conn, tour, "over_pick", ERROR, f"{sku} is complete: put the extra unit back"
            )
        if current.state == "pending":
            if sku == current.sku:
                return self._answer_in(
                    conn,
                    tour,
                    "location_required",
                    WARNING,
                    f"scan the location {current.location} first",
                )
            return self._answer_in(
                conn,
                tour,
                "wrong_item",
                ERROR,
                f"{sku} is not picked here: go to {current.location}",
            )
        return self._answer_in(
            conn, tour, "wrong_item", ERROR, f"{sku} is the wrong item: take {current.sku}"
        )

    def _count(self, ctx: _Ctx, stop: _Stop, code: ScannedCode) -> dict[str, Any]:
        """Confirm ``code.count`` units of ``stop``: tour, stock, two events, one tx."""
        conn, n = ctx.conn, code.count
        picked = stop.picked + n
        done = picked >= stop.qty
        conn.execute(
            "UPDATE tour_stops SET picked = ?, state = ? WHERE tour = ? AND stop = ?",
            (picked, "done" if done else "location_ok", stop.tour, stop.stop),
        )
        self._take_stock(conn, stop, n, release=n)
        conn.execute(
            "UPDATE task_lines SET picked = picked + ? WHERE task = ? AND line = ?",
            (n, stop.task, stop.line),
        )
        order = conn.execute("SELECT order_ref FROM tasks WHERE task = ?", (stop.task,)).fetchone()
        _append(
            ctx.tx,
            "pick_confirmed",
            {
                "task": stop.task,
                "order": order[0] if order else None,
                "line": stop.line,
                "sku": stop.sku,
                "location": stop.location,
                "qty": n,
                "picker": ctx.picker.id,
                "codes": [code.raw],
            },
        )
        _append(
            ctx.tx,
            "stock_delta",
            {
                "sku": stop.sku,
                "location": stop.location,
                "qty": -n,
                "reason": "pick",
                "ref": stop.task,
                "lot": stop.lot or None,
            },
        )
        if not done:
            return self._answer_in(
                conn, stop.tour, "item_ok", SUCCESS, f"{picked} of {stop.qty} {stop.sku}"
            )
        nxt = self._next_stop(conn, stop.tour)
        if nxt is None:
            self._finish_tour(ctx, stop.tour)
            return self._answer_in(conn, stop.tour, "tour_done", SUCCESS, "tour complete")
        if nxt.location == stop.location and nxt.state == "pending":
            # The picker is standing at the next stop already: no second label scan.
            conn.execute(
                "UPDATE tour_stops SET state = 'location_ok' WHERE tour = ? AND stop = ?",
                (nxt.tour, nxt.stop),
            )
            message = f"stop done; here too: take {nxt.qty} {nxt.sku}"
        else:
            message = f"stop done; go to {nxt.location}"
        return self._answer_in(conn, stop.tour, "stop_done", SUCCESS, message)

    # ------------------------------------------------------------------ tours

    def _start_tour(
        self, ctx: _Ctx, tasks: list[str], prepared: _Prepared | None = None
    ) -> dict[str, Any]:
        """Match the tasks' lines to stock, reserve, route, and open a tour.

        ``prepared`` is the same work done before the transaction on a read
        snapshot (:meth:`_prepare`); it is used only when the tasks, their
        lines and every unit it counted on are still exactly as it saw them,
        otherwise everything is planned again here, inside the transaction.
        """
        conn = ctx.conn
        wanted = self._wanted(conn, tasks)
        cur = conn.execute(
            "INSERT INTO tours (picker, state, started_ms) VALUES (?, 'active', ?)",
            (ctx.picker.id, ctx.now),
        )
        tour = int(cur.lastrowid or 0)
        walk: tuple[list[str], dict[str, Any]] | None = None
        if (
            prepared is not None
            and prepared.tasks == tuple(tasks)
            and prepared.wanted == wanted
            and self._still_available(conn, wanted, prepared.plans)
        ):
            plans, walk = prepared.plans, prepared.walk
        else:
            plans = [self._plan(conn, sku, need) for _, _, sku, need in wanted]
            choose(plans, self.layout)
        allocations: list[tuple[str, str, str, Candidate, int]] = []
        exceptions: list[dict[str, Any]] = []
        for (task, line, sku, _), plan in zip(wanted, plans, strict=True):
            chosen = self._reserve(conn, sku, plan)
            for cand, units in chosen:
                allocations.append((task, line, sku, cand, units))
            if plan.missing:
                exceptions.append(self._unfillable(ctx, task, line, sku, plan.missing))
            conn.execute(
                "UPDATE task_lines SET state = ? WHERE task = ? AND line = ?",
                ("assigned" if chosen else "short", task, line),
            )
        placeholders = ",".join("?" * len(tasks))
        if not allocations:
            conn.execute(
                "UPDATE tours SET state = 'cancelled', ended_ms = ? WHERE tour = ?",
                (ctx.now, tour),
            )
            conn.execute(
                f"UPDATE tasks SET state = 'done', finished_ms = ? WHERE task IN ({placeholders})",  # noqa: S608 - placeholders only
                (ctx.now, *tasks),
            )
            answer = _answer(
                "no_stock", ERROR, "nothing of this can be picked in this zone; reported upstream"
            )
            answer["exceptions"] = exceptions
            return answer
        conn.execute(
            f"UPDATE tasks SET state = 'started' WHERE task IN ({placeholders})",  # noqa: S608 - placeholders only
            tasks,
        )
        conn.executemany(
            "INSERT INTO tour_stops (tour, stop, task, line, sku, location, lot, expiry, qty) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (tour, n, task, line, sku, c.location, c.lot, c.expiry, units)
                for n, (task, line, sku, c, units) in enumerate(allocations, start=1)
            ],
        )
        if walk is None:
            walk = plan_walk(self.layout, _spots(allocations))
        self._store_route(conn, tour, *walk, start=None, first_ord=1)
        view = self._tour_view(conn, tour)
        ctx.pushes.append((ctx.picker.id, {"type": "tour_assigned", "tour": view}))
        if exceptions:
            answer = _answer(
                "tour_started",
                WARNING,
                f"{len(exceptions)} line(s) cannot be filled here and were reported",
                view,
            )
            answer["exceptions"] = exceptions
            return answer
        return _answer("tour_started", SUCCESS, f"{len(allocations)} stops", view)

    @staticmethod
    def _wanted(conn: sqlite3.Connection, tasks: list[str]) -> list[tuple[str, str, str, int]]:
        """(task, line, sku, units still to pick) of the tasks' open lines."""
        wanted: list[tuple[str, str, str, int]] = []
        for task in tasks:
            for line, sku, qty, picked in conn.execute(
                "SELECT line, sku, qty, picked FROM task_lines WHERE task = ? "
                "AND state IN ('open', 'assigned') ORDER BY line",
                (task,),
            ):
                if qty - picked > 0:
                    wanted.append((task, line, sku, qty - picked))
        return wanted

    @staticmethod
    def _still_available(
        conn: sqlite3.Connection, wanted: list[tuple[str, str, str, int]], plans: list[LinePlan]
    ) -> bool:
        """True when every unit the plans reserve is still unreserved now, and
        no line that the plans found short has gained stock since."""
        need: dict[tuple[str, str, str], int] = {}
        for (_, _, sku, _), plan in zip(wanted, plans, strict=True):
            for cand, units in plan.allocations():
                key = (sku, cand.location, cand.lot)
                need[key] = need.get(key, 0) + units
        for (sku, location, lot), units in need.items():
            row = conn.execute(
                "SELECT qty - reserved FROM stock WHERE sku = ? AND location = ? AND lot = ?",
                (sku, location, lot),
            ).fetchone()
            if row is None or int(row[0]) < units:
                return False
        taken: dict[str, int] = {}
        for (sku, _, _), units in need.items():
            taken[sku] = taken.get(sku, 0) + units
        for (_, _, sku, _), plan in zip(wanted, plans, strict=True):
            if plan.missing:
                # Stock that arrived since the plan could fill what it found short.
                row = conn.execute(
                    "SELECT COALESCE(SUM(qty - reserved), 0) FROM stock "
                    "WHERE sku = ? AND qty - reserved > 0",
                    (sku,),
                ).fetchone()
                if int(row[0]) > taken.get(sku, 0):
                    return False
        return True

    def _prepare(self, picker: Picker, code: ScannedCode) -> _Prepared | None:
        """Plan a tour on a read snapshot, off the writer (see :meth:`_start_tour`).

        Runs on the planner thread: location choice and routing cost a few ms
        of CPU that must not hold the single writer while other PDAs wait.
        None when this scan does not start a tour.
        """
        conn = self.store.reader().conn
        if self._active_tour(conn, picker.id) is not None:
            return None
        tasks = self._tasks_for(conn, code)
        if not tasks:
            return None
        wanted = self._wanted(conn, tasks)
        plans = [self._plan(conn, sku, need) for _, _, sku, need in wanted]
        choose(plans, self.layout)
        allocations = [
            (task, line, sku, cand, units)
            for (task, line, sku, _), plan in zip(wanted, plans, strict=True)
            for cand, units in plan.allocations()
        ]
        walk = plan_walk(self.layout, _spots(allocations)) if allocations else None
        if walk is None:
            return None
        return _Prepared(tuple(tasks), wanted, plans, walk)

    def _tasks_for(self, conn: sqlite3.Connection, code: ScannedCode) -> list[str]:
        """Open pick tasks a code names (START: the next by priority)."""
        if code.is_start:
            return [
                r[0]
                for r in conn.execute(
                    "SELECT task FROM tasks WHERE state = 'open' AND kind = 'pick' "
                    "ORDER BY priority DESC, received_ms, task LIMIT ?",
                    (self.start_tasks,),
                )
            ]
        return [
            r[0]
            for r in conn.execute(
                "SELECT task FROM tasks WHERE kind = 'pick' AND state = 'open' "
                "AND (task = ?1 OR order_ref = ?1 OR tote = ?1) ORDER BY priority DESC, task",
                (code.data,),
            )
        ]

    def _plan(
        self, conn: sqlite3.Connection, sku: str, need: int, *, exclude: str | None = None
    ) -> LinePlan:
        """FEFO plan of ``need`` units of ``sku`` over unreserved stock of the zone."""
        sql = (
            "SELECT s.location, s.lot, s.expiry, s.qty - s.reserved, l.aisle, l.y "
            "FROM stock s JOIN locations l ON l.code = s.location "
            "WHERE s.sku = ? AND s.qty - s.reserved > 0"
        )
        params: list[Any] = [sku]
        if self.zone is not None:
            sql += " AND l.zone = ?"
            params.append(self.zone)
        if exclude is not None:
            sql += " AND s.location <> ?"
            params.append(exclude)
        candidates = [
            Candidate(loc, lot, expiry, int(avail), int(aisle), float(y))
            for loc, lot, expiry, avail, aisle, y in conn.execute(sql, params)
        ]
        return plan_line(candidates, need)

    @staticmethod
    def _reserve(conn: sqlite3.Connection, sku: str, plan: LinePlan) -> list[tuple[Candidate, int]]:
        chosen = plan.allocations()
        for cand, units in chosen:
            conn.execute(
                "UPDATE stock SET reserved = reserved + ? "
                "WHERE sku = ? AND location = ? AND lot = ?",
                (units, sku, cand.location, cand.lot),
            )
        return chosen

    def _unfillable(
        self, ctx: _Ctx, task: str, line: str, sku: str, missing: int
    ) -> dict[str, Any]:
        """A line (or its rest) the zone cannot fill: pick_exception + alert, now."""
        data = {
            "task": task,
            "line": line,
            "sku": sku,
            "location": None,
            "expected": missing,
            "picked": 0,
            "reason": "no_stock",
        }
        _append(ctx.tx, "pick_exception", data)
        self._alert(ctx, "line_unfillable", "warn", f"task {task} line {line}", data)
        return {"task": task, "line": line, "sku": sku, "missing": missing}

    def _alert(
        self, ctx: _Ctx, kind: str, severity: str, subject: str, detail: dict[str, Any]
    ) -> None:
        # Every unfillable line is its own alert: no once-per-episode folding.
        raise_alert(ctx.tx, kind, severity, subject, detail, once=False)

    def _route(
        self,
        conn: sqlite3.Connection,
        tour: int,
        spots: list[Spot],
        *,
        start: tuple[int, float] | None,
        first_ord: int,
    ) -> None:
        """Order ``spots`` (stop numbers as ids) by the engine and store the route."""
        order, shown = plan_walk(self.layout, spots, start)
        self._store_route(conn, tour, order, shown, start=start, first_ord=first_ord)

    def _store_route(
        self,
        conn: sqlite3.Connection,
        tour: int,
        order: list[str],
        shown: dict[str, Any],
        *,
        start: tuple[int, float] | None,
        first_ord: int,
    ) -> None:
        shown = dict(shown)
        conn.executemany(
            "UPDATE tour_stops SET ord = ? WHERE tour = ? AND stop = ?",
            [(first_ord + i, tour, int(stop)) for i, stop in enumerate(order)],
        )
        if start is not None:
            shown["from"] = [start[0] * self._pitch, start[1]]
        conn.execute(
            "UPDATE tours SET route = ?, length_m = ? WHERE tour = ?",
            (json.dumps(shown).encode(), shown["length_m"], tour),
        )

    def _finish_tour(self, ctx: _Ctx, tour: int) -> None:
        conn = ctx.conn
        conn.execute(
            "UPDATE tours SET state = 'done', ended_ms = ? WHERE tour = ?", (ctx.now, tour)
        )
        tasks = [
            r[0]
            for r in conn.execute("SELECT DISTINCT task FROM tour_stops WHERE tour = ?", (tour,))
        ]
        for task in tasks:
            conn.execute(
                "UPDATE task_lines SET state = CASE WHEN picked >= qty THEN 'picked' ELSE 'short' "
                "END WHERE task = ?",
                (task,),
            )
            conn.execute(
                "UPDATE tasks SET state = 'done', finished_ms = ? WHERE task = ? "
                "AND state = 'started'",
                (ctx.now, task),
            )

    # ------------------------------------------------------------------ short / skip

    def _short_tx(self, ctx: _Ctx, stop_no: int, found: int, reason: str) -> Outcome:
        conn = ctx.conn
        tour = self._active_tour(conn, ctx.picker.id)
        if tour is None:
            raise NoTourError("no active tour")
        stop = self._stop(conn, tour, stop_no)
        if stop.state not in _OPEN_STATES:
            raise StopClosedError(f"stop {stop_no} is already {stop.state}")
        if not stop.picked <= found < stop.qty:
            raise InvalidShortError(
                f"found must be between {stop.picked} (already scanned) and {stop.qty - 1}"
            )
        before = len(ctx.tx.events)
        extra = found - stop.picked
        # Units found but not scanned one by one are confirmed here, like scans.
        self._take_stock(conn, stop, extra, release=stop.qty - stop.picked)
        conn.execute(
            "UPDATE tour_stops SET picked = ?, state = 'short' WHERE tour = ? AND stop = ?",
            (found, tour, stop.stop),
        )
        if extra:
            conn.execute(
                "UPDATE task_lines SET picked = picked + ? WHERE task = ? AND line = ?",
                (extra, stop.task, stop.line),
            )
            order = conn.execute(
                "SELECT order_ref FROM tasks WHERE task = ?", (stop.task,)
            ).fetchone()
            _append(
                ctx.tx,
                "pick_confirmed",
                {
                    "task": stop.task,
                    "order": order[0] if order else None,
                    "line": stop.line,
                    "sku": stop.sku,
                    "location": stop.location,
                    "qty": extra,
                    "picker": ctx.picker.id,
                    "codes": [],
                },
            )
            _append(
                ctx.tx,
                "stock_delta",
                {
                    "sku": stop.sku,
                    "location": stop.location,
                    "qty": -extra,
                    "reason": "pick",
                    "ref": stop.task,
                    "lot": stop.lot or None,
                },
            )
        missing = stop.qty - found
        # Correct the location: "empty" means nothing of this lot is left there;
        # otherwise the units the picker could not take are written off.
        row = conn.execute(
            "SELECT qty FROM stock WHERE sku = ? AND location = ? AND lot = ?",
            (stop.sku, stop.location, stop.lot),
        ).fetchone()
        on_hand = int(row[0]) if row else 0
        correction = on_hand if reason == "empty" else min(missing, max(on_hand, 0))
        if correction:
            conn.execute(
                "UPDATE stock SET qty = qty - ? WHERE sku = ? AND location = ? AND lot = ?",
                (correction, stop.sku, stop.location, stop.lot),
            )
            _append(
                ctx.tx,
                "stock_delta",
                {
                    "sku": stop.sku,
                    "location": stop.location,
                    "qty": -correction,
                    "reason": "short",
                    "ref": stop.task,
                    "lot": stop.lot or None,
                },
            )
        _append(
            ctx.tx,
            "pick_exception",
            {
                "task": stop.task,
                "line": stop.line,
                "sku": stop.sku,
                "location": stop.location,
                "expected": stop.qty,
                "picked": found,
                "reason": reason,
            },
        )
        # Send the picker to another location for what is missing, when the zone has one.
        position = self._spot_of(conn, stop.location)
        plan = self._plan(conn, stop.sku, missing, exclude=stop.location)
        choose([plan], self.layout, position)
        chosen, still_missing = self._reserve(conn, stop.sku, plan), plan.missing
        next_no = conn.execute(
            "SELECT COALESCE(MAX(stop), 0) FROM tour_stops WHERE tour = ?", (tour,)
        ).fetchone()[0]
        for i, (cand, units) in enumerate(chosen, start=1):
            conn.execute(
                "INSERT INTO tour_stops (tour, stop, task, line, sku, location, lot, expiry, qty) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    tour,
                    next_no + i,
                    stop.task,
                    stop.line,
                    stop.sku,
                    cand.location,
                    cand.lot,
                    cand.expiry,
                    units,
                ),
            )
        if still_missing:
            self._alert(
                ctx,
                "line_short",
                "warn",
                f"task {stop.task} line {stop.line}",
                {"sku": stop.sku, "missing": still_missing, "location": stop.location},
            )
        self._reroute(ctx, tour, position)
        view = self._tour_view(conn, tour)
        if view["next_stop"] is None:
            self._finish_tour(ctx, tour)
            view = self._tour_view(conn, tour)
            result, message = "tour_done", "tour complete (with a short pick)"
        elif chosen:
            result = "rerouted"
            message = f"{missing} {stop.sku} from another location: {chosen[0][0].location}"
        else:
            result, message = "short_recorded", f"{missing} {stop.sku} missing; reported"
        ctx.pushes.append((ctx.picker.id, {"type": "tour_rerouted", "tour": view}))
        answer = _answer(result, WARNING, message, view)
        body = json.dumps(answer, separators=(",", ":")).encode()
        return Outcome(body, pushes=ctx.pushes, events=len(ctx.tx.events) - before)

    def _skip_tx(self, ctx: _Ctx, stop_no: int) -> Outcome:
        conn = ctx.conn
        tour = self._active_tour(conn, ctx.picker.id)
        if tour is None:
            raise NoTourError("no active tour")
        stop = self._stop(conn, tour, stop_no)
        if stop.state not in _OPEN_STATES:
            raise StopClosedError(f"stop {stop_no} is already {stop.state}")
        conn.execute(
            "UPDATE tour_stops SET state = 'pending' WHERE tour = ? AND stop = ?",
            (tour, stop.stop),
        )
        # The rest of the walk from where the picker stands, ending at the
        # skipped stop, then back to the depot.
        position = self._position(conn, tour)
        skipped = self._spot_of(conn, stop.location)
        others = [s for s in self._open_spots(conn, tour) if s.id != str(stop.stop)]
        closed = self._closed_ord(conn, tour)
        if skipped is None:
            order, shown = plan_walk(self.layout, others, position)
        else:
            order, shown = plan_walk(self.layout, others, position, skipped)
            _, home = plan_walk(self.layout, [], skipped)
            if shown["length_m"] is not None and home["length_m"] is not None:
                shown["length_m"] = round(shown["length_m"] + home["length_m"], 3)
                shown["waypoints"] = shown["waypoints"] + home["waypoints"][1:]
            else:
                shown = {"length_m": None, "waypoints": [], "algorithm": shown["algorithm"]}
        self._store_route(
            conn, tour, [*order, str(stop.stop)], shown, start=position, first_ord=closed + 1
        )
        view = self._tour_view(conn, tour)
        ctx.pushes.append((ctx.picker.id, {"type": "tour_rerouted", "tour": view}))
        answer = _answer("skipped", WARNING, f"stop {stop_no} moved to the end", view)
        return Outcome(json.dumps(answer, separators=(",", ":")).encode(), pushes=ctx.pushes)

    def _reroute(self, ctx: _Ctx, tour: int, start: tuple[int, float] | None) -> None:
        """Route the tour's open stops from ``start`` (the picker's position)."""
        conn = ctx.conn
        spots = self._open_spots(conn, tour)
        self._route(conn, tour, spots, start=start, first_ord=self._closed_ord(conn, tour) + 1)

    @staticmethod
    def _open_spots(conn: sqlite3.Connection, tour: int) -> list[Spot]:
        rows = conn.execute(
            "SELECT s.stop, l.aisle, l.y FROM tour_stops s JOIN locations l "
            "ON l.code = s.location WHERE s.tour = ? AND s.state IN ('pending', 'location_ok')",
            (tour,),
        ).fetchall()
        return [Spot(str(stop), int(aisle), float(y)) for stop, aisle, y in rows]

    @staticmethod
    def _closed_ord(conn: sqlite3.Connection, tour: int) -> int:
        """The walk position of the last stop that is finished (0: none)."""
        row = conn.execute(
            "SELECT COALESCE(MAX(ord), 0) FROM tour_stops WHERE tour = ? "
            "AND state NOT IN ('pending', 'location_ok')",
            (tour,),
        ).fetchone()
        return int(row[0])

    @staticmethod
    def _spot_of(conn: sqlite3.Connection, location: str) -> tuple[int, float] | None:
        row = conn.execute("SELECT aisle, y FROM locations WHERE code = ?", (location,)).fetchone()
        return (int(row[0]), float(row[1])) if row else None

    def _position(self, conn: sqlite3.Connection, tour: int) -> tuple[int, float] | None:
        """Where the picker stands: the last finished stop (None: the depot)."""
        row = conn.execute(
            "SELECT location FROM tour_stops WHERE tour = ? AND state IN ('done', 'short') "
            "ORDER BY ord DESC LIMIT 1",
            (tour,),
        ).fetchone()
        return self._spot_of(conn, str(row[0])) if row else None

    # ------------------------------------------------------------------ reads in the tx

    @staticmethod
    def _active_tour(conn: sqlite3.Connection, picker_id: str) -> int | None:
        row = conn.execute(
            "SELECT tour FROM tours WHERE picker = ? AND state = 'active' "
            "ORDER BY tour DESC LIMIT 1",
            (picker_id,),
        ).fetchone()
        return int(row[0]) if row else None

    @staticmethod
    def _next_stop(conn: sqlite3.Connection, tour: int) -> _Stop | None:
        row = conn.execute(
            f"SELECT {_STOP_COLS} FROM tour_stops WHERE tour = ? "  # noqa: S608 - constant columns
            "AND state IN ('pending', 'location_ok') ORDER BY ord, stop LIMIT 1",
            (tour,),
        ).fetchone()
        return _Stop(*row) if row else None

    @staticmethod
    def _stop(conn: sqlite3.Connection, tour: int, stop: int) -> _Stop:
        row = conn.execute(
            f"SELECT {_STOP_COLS} FROM tour_stops WHERE tour = ? AND stop = ?",  # noqa: S608
            (tour, stop),
        ).fetchone()
        if row is None:
            raise UnknownStopError(f"the tour has no stop {stop}")
        return _Stop(*row)

    @staticmethod
    def _done_stop_with(conn: sqlite3.Connection, tour: int, sku: str) -> int | None:
        row = conn.execute(
            "SELECT stop FROM tour_stops WHERE tour = ? AND sku = ? AND state = 'done' LIMIT 1",
            (tour, sku),
        ).fetchone()
        return int(row[0]) if row else None

    @staticmethod
    def _counted_before(conn: sqlite3.Connection, tour: int, raw: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM scans WHERE tour = ? AND code = ? "
            "AND result IN ('item_ok', 'stop_done', 'tour_done') LIMIT 1",
            (tour, raw),
        ).fetchone()
        return row is not None

    @staticmethod
    def _location_of(conn: sqlite3.Connection, code: ScannedCode) -> str | None:
        if code.kind == "location" and code.location is not None:
            row = conn.execute(
                "SELECT code FROM locations WHERE code = ?", (code.location,)
            ).fetchone()
            return str(row[0]) if row else None
        if code.kind in ("sku", "unknown"):
            # A site whose labels do not follow the default pattern still scans them.
            row = conn.execute("SELECT code FROM locations WHERE code = ?", (code.data,)).fetchone()
            return str(row[0]) if row else None
        return None

    @staticmethod
    def _item_sku(conn: sqlite3.Connection, code: ScannedCode) -> str | None:
        if code.gtin14 is not None:
            row = conn.execute(
                "SELECT sku FROM item_gtins WHERE gtin = ?", (code.gtin14,)
            ).fetchone()
            return str(row[0]) if row else None
        if code.kind in ("sku", "unknown", "location"):
            row = conn.execute("SELECT sku FROM items WHERE sku = ?", (code.data,)).fetchone()
            return str(row[0]) if row else None
        return None

    @staticmethod
    def _take_stock(conn: sqlite3.Connection, stop: _Stop, units: int, *, release: int) -> None:
        """Take ``units`` off the stop's stock row and release ``release`` reserved units."""
        cur = conn.execute(
            "UPDATE stock SET qty = qty - ?, reserved = MAX(reserved - ?, 0) "
            "WHERE sku = ? AND location = ? AND lot = ?",
            (units, release, stop.sku, stop.location, stop.lot),
        )
        if cur.rowcount == 0 and units:
            # The row went away (a master-data reload): the pick still happened.
            conn.execute(
                "INSERT INTO stock (sku, location, lot, expiry, qty) VALUES (?, ?, ?, ?, ?)",
                (stop.sku, stop.location, stop.lot, stop.expiry, -units),
            )

    def _answer_in(
        self, conn: sqlite3.Connection, tour: int, result: str, feedback: str, message: str
    ) -> dict[str, Any]:
        return _answer(result, feedback, message, self._tour_view(conn, tour))

    def _tour_view(self, conn: sqlite3.Connection, tour: int) -> dict[str, Any]:
        """The contract's ``<tour>``, plus each stop's lot, expiry and map position."""
        head = conn.execute("SELECT state, route FROM tours WHERE tour = ?", (tour,)).fetchone()
        stops = []
        next_stop: int | None = None
        for (
            stop,
            location,
            sku,
            description,
            qty,
            picked,
            state,
            lot,
            expiry,
            task,
            aisle,
            y,
        ) in conn.execute(
            "SELECT s.stop, s.location, s.sku, COALESCE(i.description, ''), s.qty, s.picked, "
            "s.state, s.lot, s.expiry, s.task, l.aisle, l.y FROM tour_stops s "
            "LEFT JOIN items i ON i.sku = s.sku LEFT JOIN locations l ON l.code = s.location "
            "WHERE s.tour = ? ORDER BY s.ord, s.stop",
            (tour,),
        ):
            if next_stop is None and state in _OPEN_STATES:
                next_stop = stop
            stops.append(
                {
                    "stop": stop,
                    "location": location,
                    "sku": sku,
                    "description": description,
                    "qty": qty,
                    "picked": picked,
                    "state": state,
                    "lot": lot or None,
                    "expiry": expiry,
                    "task": task,
                    "x": None if aisle is None else aisle * self._pitch,
                    "y": y,
                }
            )
        route = json.loads(head[1]) if head[1] else {"length_m": None, "waypoints": []}
        return {
            "tour": tour,
            "state": head[0],
            "stops": stops,
            "next_stop": next_stop if head[0] == "active" else None,
            "route": route,
        }


def _append(tx: Transaction, type_: str, data: dict[str, Any]) -> None:
    """Interim bridge while picking moves to typed events."""
    event = decode_event(type_, data)
    assert not isinstance(event, UnknownEvent)
    tx.append(event)


def _answer(
    result: str, feedback: str, message: str, tour: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"result": result, "feedback": feedback, "message": message, "tour": tour}


def _lot_problem(stop: _Stop, code: ScannedCode) -> str | None:
    """A GS1 code whose lot or expiry is not the stop's: the wrong physical unit."""
    if code.lot is not None and stop.lot and code.lot != stop.lot:
        return f"lot {code.lot} is the wrong lot: take lot {stop.lot}"
    if code.expiry is not None and stop.expiry and code.expiry != stop.expiry:
        return f"expiry {code.expiry} is the wrong date: take the unit expiring {stop.expiry}"
    return None
