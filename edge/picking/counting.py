"""Blind cycle counts: a count tour, and the zero checks that create them.

A ``task`` of kind ``count`` (from the cloud, or a *zero check* the box makes
itself) names locations and the SKU to count at each. ``START`` takes it when
it is the most urgent open task (counts and picks interleave by priority);
scanning its id starts it too. It becomes a **count tour**: one stop per
line, routed like a pick tour. The PDA never sees the quantity the box
expects.

At each stop (read → decide → write, like picking; :func:`decide_count` is
pure):

- pending, its location → ``location_ok``: counting of the location begins,
  the box's on-hand of the SKU there is noted (``expected``);
- pending, another location / an item → ``wrong_location`` /
  ``location_required``, nothing changes;
- counting, the SKU (a count with AI 30/37 adds that many) → ``counted``;
- counting, the same serialised unit again → ``over_pick``; another item /
  another location → ``wrong_item`` / ``wrong_location``; nothing changes;
- counting, the location again (or ``POST /api/v1/tour/count`` with a
  quantity) → the count is finished, see below.

Finishing compares the count with the box's on-hand **now**: the on-hand
when counting began, corrected by every movement the box confirmed there
since (picks, short write-offs, returns). So a pick confirmed at the location
while it is being counted is accounted for as taken before the count; a
counter who counted it anyway is caught by the recount. A count that matches
is ``count_done`` (success). One that differs asks for **one recount**
(``recount``, warning; the count starts again at 0). The second count is
final: ``count_done`` (warning when it differs). Then, in one transaction:
``count_result`` (``expected``: the on-hand when counting began, as sync-v1
says) and, when the count differs from the on-hand, the stock rows are set to
it and a ``stock_delta`` reason ``count`` goes upstream per lot row changed
(``counted - on-hand`` in all). The last stop ends the tour; its tasks are
done.

**Zero checks** (``[floor] zero_checks``): a short pick with reason ``empty``,
and a pick that leaves a location's stock row at zero, create a count task
of that one location and SKU (id ``ZC-<location>-<sku>-<ms>``, priority
:data:`ZERO_CHECK_PRIORITY`), unless one is open already.

Every finished count is kept in ``count_results`` for the inventory accuracy
(:mod:`edge.picking.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from cloud_sync.events import CountResult, StockDelta, StockReason
from edge.picking import queries as q
from edge.picking.codes import ScannedCode
from edge.picking.decide import (
    CountAdd,
    CountBegin,
    CountClose,
    Decision,
    FinishTour,
    Recount,
)
from edge.picking.model import Feedback, Picker, ScanResult, Stop, StopState
from edge.picking.queries import Reads, scalar
from edge.picking.routes import Spot, plan_walk
from edge.store.db import Transaction

SUCCESS, WARNING, ERROR = Feedback.SUCCESS, Feedback.WARNING, Feedback.ERROR

#: zero checks go before ordinary work (the cloud's priorities are small integers)
ZERO_CHECK_PRIORITY = 1000


# ---------------------------------------------------------------------- what a count scan needs


@dataclass(frozen=True, slots=True)
class Counting:
    """One count stop's count so far (``expected`` None: not begun)."""

    expected: int | None
    counted: int
    attempt: int


@dataclass(frozen=True, slots=True)
class CountScan:
    """What a scan in a count tour needs, read inside its transaction."""

    tour: int
    current: Stop | None = None
    count: Counting | None = None
    location: str | None = None
    sku: str | None = None
    counted_before: bool = False
    #: the box's on-hand of the stop's SKU at its location now (read to finish)
    on_hand: int = 0


# ---------------------------------------------------------------------- decide (pure)


def decide_count(scan: CountScan, code: ScannedCode) -> Decision:
    """The answer to ``code`` in a count tour (the table in the module docstring)."""
    stop = scan.current
    if stop is None:
        return Decision(ScanResult.TOUR_DONE, SUCCESS, "count tour complete", FinishTour(scan.tour))
    if not code.valid:
        return Decision(ScanResult.UNKNOWN_CODE, ERROR, f"cannot read this code: {code.problem}")
    if code.is_start:
        return Decision(ScanResult.TOUR_ACTIVE, WARNING, "finish the count tour first")
    begun = stop.state == StopState.LOCATION_OK and scan.count is not None
    if scan.location is not None:
        if scan.location != stop.location:
            return Decision(
                ScanResult.WRONG_LOCATION,
                ERROR,
                f"{scan.location} is the wrong location: go to {stop.location}",
            )
        if not begun:
            return Decision(
                ScanResult.LOCATION_OK,
                SUCCESS,
                f"{stop.location}: count every {stop.sku}, then scan the location again",
                CountBegin(stop, scan.on_hand),
            )
        return finish(scan, stop, scan.count.counted if scan.count else 0)
    if scan.sku is None or code.count < 1:
        return Decision(ScanResult.UNKNOWN_CODE, ERROR, f"{code.data}: unknown code")
    if scan.sku != stop.sku:
        return Decision(
            ScanResult.WRONG_ITEM, ERROR, f"{scan.sku} is not counted here: count {stop.sku}"
        )
    if not begun or scan.count is None:
        return Decision(
            ScanResult.LOCATION_REQUIRED, WARNING, f"scan the location {stop.location} first"
        )
    if code.serialised and scan.counted_before:
        return Decision(ScanResult.OVER_PICK, ERROR, "this very unit was counted already")
    total = scan.count.counted + code.count
    return Decision(ScanResult.COUNTED, SUCCESS, f"{total} counted", CountAdd(stop, code.count))


def finish(scan: CountScan, stop: Stop, counted: int) -> Decision:
    """Finish the count of ``stop`` at ``counted`` units (one recount when it differs)."""
    count = scan.count or Counting(scan.on_hand, 0, 1)
    expected = scan.on_hand if count.expected is None else count.expected
    if counted != scan.on_hand and count.attempt == 1:
        return Decision(
            ScanResult.RECOUNT,
            WARNING,
            f"please count {stop.location} once more: scan every {stop.sku} again",
            Recount(stop),
        )
    close = CountClose(stop, counted, expected, scan.on_hand, count.attempt)
    if counted == scan.on_hand:
        return Decision(ScanResult.COUNT_DONE, SUCCESS, f"{counted} counted: recorded", close)
    return Decision(
        ScanResult.COUNT_DONE, WARNING, f"{counted} counted: recorded, stock corrected", close
    )


# ---------------------------------------------------------------------- load (in the transaction)


def load_count(tx: Transaction, tour: int, code: ScannedCode) -> CountScan:
    """The :class:`CountScan` of a scan of ``code`` in count tour ``tour``."""
    stops = q.open_stops(tx, tour, 1)
    if not stops:
        return CountScan(tour)
    stop = stops[0]
    scan = CountScan(tour, stop, _counting(tx, tour, stop.stop))
    if not code.valid or code.is_start:
        return scan
    location = q.location_of(tx, code)
    if location is not None:
        return replace(scan, location=location, on_hand=on_hand(tx, stop.sku, stop.location))
    sku = q.item_sku(tx, code)
    counted = code.serialised and sku == stop.sku and _counted_before(tx, stop, code.raw)
    return replace(scan, sku=sku, counted_before=counted)


def load_entry(tx: Transaction, picker: str, number: int) -> tuple[CountScan, Stop]:
    """A quantity entered for stop ``number`` of the picker's count tour."""
    from edge.picking.errors import NoTourError, StopClosedError, UnknownStopError

    tour = q.active_tour(tx, picker)
    if tour is None or tour_kind(tx, tour) != "count":
        raise NoTourError("no active count tour")
    stop = q.stop(tx, tour, number)
    if stop is None:
        raise UnknownStopError(f"the tour has no stop {number}")
    if stop.state != StopState.LOCATION_OK:
        raise StopClosedError(f"stop {number} is {stop.state}: scan its location to count it")
    scan = CountScan(tour, stop, _counting(tx, tour, stop.stop))
    return replace(scan, on_hand=on_hand(tx, stop.sku, stop.location)), stop


# ---------------------------------------------------------------------- apply (in the transaction)


def start_count_tour(
    tx: Transaction, picker: Picker, tasks: Sequence[str], layout: dict[str, Any], now: int
) -> tuple[Decision, int | None]:
    """Open a count tour over the count tasks' lines, routed; (answer, tour)."""
    lines = count_lines(tx, tasks)
    if not lines:
        tx.execute(
            f"UPDATE tasks SET state = 'done', finished_ms = ? WHERE task IN "  # noqa: S608
            f"({','.join('?' * len(tasks))})",
            (now, *tasks),
        )
        return Decision(ScanResult.NO_WORK, WARNING, "nothing to count here"), None
    tour = q.new_tour(tx, picker.id, now)
    tx.execute("UPDATE tours SET kind = 'count' WHERE tour = ?", (tour,))
    tx.executemany(
        "INSERT INTO tour_stops (tour, stop, task, line, sku, location, qty) "
        "VALUES (?, ?, ?, ?, ?, ?, 0)",
        [(tour, n, t, line, sku, loc) for n, (t, line, sku, loc, _, _) in enumerate(lines, 1)],
    )
    tx.executemany(
        "INSERT INTO count_stops (tour, stop) VALUES (?, ?)",
        [(tour, n) for n in range(1, len(lines) + 1)],
    )
    tx.execute(
        f"UPDATE tasks SET state = 'started' WHERE task IN ({','.join('?' * len(tasks))})",  # noqa: S608
        tuple(tasks),
    )
    spots = [Spot(str(n), aisle, y) for n, (*_, aisle, y) in enumerate(lines, 1)]
    order, shown = plan_walk(layout, spots)
    q.set_walk(tx, tour, [int(s) for s in order], 1)
    q.set_route(tx, tour, shown)
    message = f"count tour: {len(lines)} location{'s' if len(lines) > 1 else ''}"
    return Decision(ScanResult.TOUR_STARTED, SUCCESS, message), tour


def apply_count(tx: Transaction, picker: Picker, decision: Decision, now: int) -> None:
    """Write a count decision (nothing for a decision without intent)."""
    intent = decision.intent
    if isinstance(intent, CountBegin):
        stop = intent.stop
        q.set_stop_state(tx, stop.tour, stop.stop, StopState.LOCATION_OK)
        tx.execute(
            "UPDATE count_stops SET expected = ?, counted = 0, "
            "since_scan = (SELECT COALESCE(MAX(rowid), 0) FROM scans) WHERE tour = ? AND stop = ?",
            (intent.on_hand, stop.tour, stop.stop),
        )
    elif isinstance(intent, CountAdd):
        stop = intent.stop
        tx.execute(
            "UPDATE count_stops SET counted = counted + ? WHERE tour = ? AND stop = ?",
            (intent.units, stop.tour, stop.stop),
        )
        _show_counted(tx, stop)
    elif isinstance(intent, Recount):
        stop = intent.stop
        tx.execute(
            "UPDATE count_stops SET counted = 0, attempt = attempt + 1, "
            "since_scan = (SELECT COALESCE(MAX(rowid), 0) FROM scans) WHERE tour = ? AND stop = ?",
            (stop.tour, stop.stop),
        )
        _show_counted(tx, stop)
    elif isinstance(intent, CountClose):
        close(tx, picker, intent, now)
    elif isinstance(intent, FinishTour):
        finish_count_tour(tx, intent.tour, now)


def close(tx: Transaction, picker: Picker, c: CountClose, now: int) -> None:
    """The final count of a stop: result upstream, stock corrected when it differs."""
    stop = c.stop
    tx.execute(
        "UPDATE tour_stops SET state = 'done', picked = ? WHERE tour = ? AND stop = ?",
        (c.counted, stop.tour, stop.stop),
    )
    tx.execute(
        "UPDATE count_stops SET counted = ? WHERE tour = ? AND stop = ?",
        (c.counted, stop.tour, stop.stop),
    )
    tx.execute(
        "INSERT INTO count_results (task, location, sku, counted, expected, on_hand, attempts, "
        "matched, picker, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            stop.task,
            stop.location,
            stop.sku,
            c.counted,
            c.expected,
            c.on_hand,
            c.attempts,
            int(c.counted == c.on_hand),
            picker.id,
            now,
        ),
    )
    tx.append(
        CountResult(
            task=stop.task,
            location=stop.location,
            sku=stop.sku,
            counted=c.counted,
            expected=c.expected,
            picker=picker.id,
        )
    )
    if c.counted != c.on_hand:
        for lot, delta in set_stock(tx, stop.sku, stop.location, c.counted):
            tx.append(
                StockDelta(
                    sku=stop.sku,
                    location=stop.location,
                    qty=delta,
                    reason=StockReason.COUNT,
                    ref=stop.task,
                    lot=lot or None,
                )
            )
    if not q.open_stops(tx, stop.tour, 1):
        finish_count_tour(tx, stop.tour, now)


def finish_count_tour(tx: Transaction, tour: int, now: int) -> None:
    q.end_tour(tx, tour, "done", now)
    tx.execute(
        "UPDATE tasks SET state = 'done', finished_ms = ? WHERE state = 'started' "
        "AND task IN (SELECT task FROM tour_stops WHERE tour = ?)",
        (now, tour),
    )


def zero_check(tx: Transaction, sku: str, location: str, now: int) -> str | None:
    """Create a zero check of ``sku`` at ``location`` unless an open count task
    of it exists; returns its task id (None: one was open)."""
    if scalar(
        tx,
        "SELECT 1 FROM tasks t JOIN task_lines l ON l.task = t.task WHERE t.kind = 'count' "
        "AND t.state IN ('open', 'started') AND l.sku = ? AND l.location = ? LIMIT 1",
        (sku, location),
    ):
        return None
    task = f"ZC-{location}-{sku}-{now}"
    tx.execute(
        "INSERT INTO tasks (task, kind, priority, received_ms) VALUES (?, 'count', ?, ?)",
        (task, ZERO_CHECK_PRIORITY, now),
    )
    tx.execute(
        "INSERT INTO task_lines (task, line, sku, qty, location) VALUES (?, '1', ?, 0, ?)",
        (task, sku, location),
    )
    return task


# ---------------------------------------------------------------------- reads and writes (SQL)


def tour_kind(db: Reads, tour: int) -> str:
    return str(scalar(db, "SELECT kind FROM tours WHERE tour = ?", (tour,)) or "pick")


def count_lines(db: Reads, tasks: Sequence[str]) -> list[tuple[str, str, str, str, int, float]]:
    """(task, line, sku, location, aisle, y) of the count tasks' lines whose
    location the zone knows, in the tasks' order."""
    out = []
    for task in tasks:
        out += [
            (str(task), str(line), str(sku), str(loc), int(aisle), float(y))
            for line, sku, loc, aisle, y in db.execute(
                "SELECT l.line, l.sku, l.location, c.aisle, c.y FROM task_lines l "
                "JOIN locations c ON c.code = l.location WHERE l.task = ? ORDER BY l.rowid",
                (task,),
            )
        ]
    return out


def on_hand(db: Reads, sku: str, location: str) -> int:
    """The box's on-hand of ``sku`` at ``location``, all lots."""
    sql = "SELECT COALESCE(SUM(qty), 0) FROM stock WHERE sku = ? AND location = ?"
    return int(scalar(db, sql, (sku, location)))


def set_stock(tx: Transaction, sku: str, location: str, counted: int) -> list[tuple[str, int]]:
    """Make the on-hand of ``sku`` at ``location`` ``counted``: units found
    missing leave the rows first to expire (FEFO), units found extra join the
    row last to expire (or a new row without lot). Returns (lot, change) per
    row changed."""
    rows = tx.execute(
        "SELECT lot, qty FROM stock WHERE sku = ? AND location = ? "
        "ORDER BY expiry IS NULL, expiry, lot",
        (sku, location),
    ).fetchall()
    delta = counted - sum(int(qty) for _, qty in rows)
    changes: list[tuple[str, int]] = []
    if delta > 0:
        lot = str(rows[-1][0]) if rows else ""
        if rows:
            tx.execute(
                "UPDATE stock SET qty = qty + ? WHERE sku = ? AND location = ? AND lot = ?",
                (delta, sku, location, lot),
            )
        else:
            tx.execute(
                "INSERT INTO stock (sku, location, lot, qty) VALUES (?, ?, '', ?)",
                (sku, location, delta),
            )
        return [(lot, delta)]
    missing = -delta
    for lot, qty in rows:
        take = min(missing, max(int(qty), 0))
        if take:
            tx.execute(
                "UPDATE stock SET qty = qty - ? WHERE sku = ? AND location = ? AND lot = ?",
                (take, sku, location, lot),
            )
            changes.append((str(lot), -take))
            missing -= take
    if missing and rows:  # rows already below zero: the last one takes the rest
        lot = str(rows[-1][0])
        tx.execute(
            "UPDATE stock SET qty = qty - ? WHERE sku = ? AND location = ? AND lot = ?",
            (missing, sku, location, lot),
        )
        changes.append((lot, -missing))
    return changes


def _counting(db: Reads, tour: int, stop: int) -> Counting:
    row = db.execute(
        "SELECT expected, counted, attempt FROM count_stops WHERE tour = ? AND stop = ?",
        (tour, stop),
    ).fetchone()
    return Counting(None, 0, 1) if row is None else Counting(row[0], int(row[1]), int(row[2]))


def _counted_before(db: Reads, stop: Stop, raw: str) -> bool:
    """Whether this very serialised unit was counted in the stop's current attempt."""
    sql = (
        "SELECT 1 FROM scans s, count_stops c WHERE c.tour = ? AND c.stop = ? "
        "AND s.tour = c.tour AND s.code = ? AND s.result = 'counted' "
        "AND s.rowid > c.since_scan LIMIT 1"
    )
    return scalar(db, sql, (stop.tour, stop.stop, raw)) is not None


def _show_counted(tx: Transaction, stop: Stop) -> None:
    """The stop's ``picked`` shows the picker's own count (never the box's)."""
    tx.execute(
        "UPDATE tour_stops SET picked = (SELECT counted FROM count_stops c "
        "WHERE c.tour = tour_stops.tour AND c.stop = tour_stops.stop) WHERE tour = ? AND stop = ?",
        (stop.tour, stop.stop),
    )
