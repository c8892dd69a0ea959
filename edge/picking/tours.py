"""Tour planning: which stocked units serve a tour's lines, and the walk through them.

- **Matching.** The open pick tasks a code names (an order, task or tote id;
  ``START``: the next by priority) and their lines' units still to pick.
- **FEFO plan.** Each line's units over the zone's unreserved stock
  (:mod:`edge.picking.allocation`), the flexible choices priced by the routing
  engine so the walk is short.
- **Prepared on a read snapshot.** :meth:`Planner.prepare` does that work on
  the planner thread before the write transaction; :meth:`Planner.plan` uses it
  inside the transaction only when the tasks, their lines and every unit it
  counted on are still exactly as it saw them, otherwise it plans again there.
- **Reserve and route.** The chosen units are reserved (``stock.reserved``) and
  the walk's order and drawing are stored on the tour, also when a short pick,
  a skip or a cancel re-routes what is left from where the picker stands.

The planner decides where to send a picker; the scan table's decisions and
the tour's events are not its business (:mod:`edge.picking.decide`,
:mod:`edge.picking.apply`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge.picking import queries as q
from edge.picking import reservations as res
from edge.picking.allocation import Candidate, LinePlan, choose, plan_line
from edge.picking.codes import ScannedCode
from edge.picking.model import CartSettings, Stop
from edge.picking.queries import Allocation, Position, Reads, Wanted
from edge.picking.routes import Spot, plan_walk
from edge.store.db import Transaction

#: (stop ids in walking order, the route the PDA draws)
Walk = tuple[list[str], dict[str, Any]]
#: the tasks of the cart to propose, read on a snapshot (the online batcher)
Proposer = Callable[[Reads], Sequence[str]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A tour planned on a read snapshot, checked again inside the transaction."""

    tasks: tuple[str, ...]
    wanted: list[Wanted]
    plans: list[LinePlan]
    walk: Walk


def spots(allocations: Sequence[Allocation]) -> list[Spot]:
    """Routing spots of the allocations, numbered as their stops (1, 2, …)."""
    return [Spot(str(n), c.aisle, c.y) for n, (_, _, _, c, _) in enumerate(allocations, start=1)]


class Planner:
    """Tour planning for one zone: ``layout`` is its routing-v1 layout, ``zone``
    limits stock matching to its locations, ``start_tasks`` is how many tasks a
    ``START`` scan takes at once without carts; with carts (``carts``), a
    START or a cart label takes the cart ``proposer`` proposes (first come,
    first served when there is none)."""

    def __init__(
        self,
        layout: dict[str, Any],
        *,
        zone: str | None = None,
        start_tasks: int = 1,
        carts: CartSettings | None = None,
        proposer: Proposer | None = None,
        zero_checks: bool = False,
    ) -> None:
        self.layout = layout
        #: a short pick ``empty`` or a location picked to zero creates a zero check
        self.zero_checks = zero_checks
        self.zone = zone
        self.start_tasks = start_tasks
        self.carts = carts if carts is not None else CartSettings()
        self.proposer = proposer
        self.pitch = float(layout.get("aisle_pitch_m", 1.0)) if layout else 1.0

    def warm_up(self) -> None:
        """Route one tour now: the engine memoises its transitions per layout on
        first use (tens of ms), which must not land on a picker's first scan."""
        if self.layout.get("kind") != "blocks":
            return
        aisles, blocks = int(self.layout["aisles"]), int(self.layout["blocks"])
        length = float(self.layout["block_length_m"])
        warm = [
            Spot(f"w{a}.{b}", a, b * length + length / 2)
            for a in range(0, aisles, max(1, aisles // 4))
            for b in range(blocks)
        ]
        plan_walk(self.layout, warm, timed=False)

    # ------------------------------------------------------------------ matching

    def tasks_for(self, db: Reads, code: ScannedCode) -> list[str]:
        """Open pick tasks a code names (START: the next by priority; on carts,
        START or a cart label: the proposed cart)."""
        if code.is_start or self.carts.cart_label(code.data) is not None:
            if not self.carts.enabled:
                return res.next_open_tasks(db, self.start_tasks)
            if self.proposer is not None:
                return list(self.proposer(db))
            return res.next_cart_tasks(db, self.carts.totes, self.carts.units)
        named = [task for task, _ in res.tasks_named(db, code.data, open_only=True)]
        # a count tour is planned in its transaction (edge.picking.counting)
        return named if res.kinds(db, named) == {"pick"} else []

    def prepare(self, db: Reads, picker: str, code: ScannedCode) -> Prepared | None:
        """Plan the tour ``code`` would start, on a read snapshot ``db``.

        Runs on the planner thread: location choice and routing cost a few ms
        of CPU that must not hold the single writer while other PDAs wait.
        None when this scan does not start a tour.
        """
        if q.active_tour(db, picker) is not None:
            return None
        tasks = self.tasks_for(db, code)
        if not tasks:
            return None
        wanted = res.wanted(db, tasks)
        plans = [self.line(db, sku, need) for _, _, sku, need in wanted]
        choose(plans, self.layout)
        allocations = [
            (task, line, sku, cand, units)
            for (task, line, sku, _), plan in zip(wanted, plans, strict=True)
            for cand, units in plan.allocations()
        ]
        if not allocations:
            return None
        return Prepared(tuple(tasks), wanted, plans, self.walk(allocations))

    # ------------------------------------------------------------------ in the transaction

    def plan(
        self,
        tx: Transaction,
        tasks: Sequence[str],
        wanted: list[Wanted],
        prepared: Prepared | None,
    ) -> tuple[list[LinePlan], Walk | None]:
        """Line plans for ``wanted``, and the walk when ``prepared`` still holds.

        Runs inside the write transaction: what it reads decides.
        """
        if (
            prepared is not None
            and prepared.tasks == tuple(tasks)
            and prepared.wanted == wanted
            and self.still_available(tx, wanted, prepared.plans)
        ):
            return prepared.plans, prepared.walk
        plans = [self.line(tx, sku, need) for _, _, sku, need in wanted]
        choose(plans, self.layout)
        return plans, None

    def line(self, db: Reads, sku: str, need: int, *, exclude: str | None = None) -> LinePlan:
        """FEFO plan of ``need`` units of ``sku`` over unreserved stock of the zone."""
        return plan_line(res.candidates(db, sku, zone=self.zone, exclude=exclude), need)

    @staticmethod
    def still_available(db: Reads, wanted: list[Wanted], plans: list[LinePlan]) -> bool:
        """True when every unit the plans reserve is still unreserved now, and
        no line that the plans found short has gained stock since."""
        need: dict[tuple[str, str, str], int] = {}
        for (_, _, sku, _), plan in zip(wanted, plans, strict=True):
            for cand, units in plan.allocations():
                key = (sku, cand.location, cand.lot)
                need[key] = need.get(key, 0) + units
        for (sku, location, lot), units in need.items():
            free = res.unreserved(db, sku, location, lot)
            if free is None or free < units:
                return False
        taken: dict[str, int] = {}
        for (sku, _, _), units in need.items():
            taken[sku] = taken.get(sku, 0) + units
        for (_, _, sku, _), plan in zip(wanted, plans, strict=True):
            # Stock that arrived since the plan could fill what it found short.
            if plan.missing and res.unreserved_total(db, sku) > taken.get(sku, 0):
                return False
        return True

    @staticmethod
    def reserve(tx: Transaction, sku: str, plan: LinePlan) -> list[tuple[Candidate, int]]:
        """Reserve the plan's units; returns them."""
        chosen = plan.allocations()
        for cand, units in chosen:
            res.reserve(tx, sku, cand.location, cand.lot, units)
        return chosen

    def alternative(
        self, tx: Transaction, stop: Stop, missing: int, position: Position | None
    ) -> tuple[list[Allocation], int]:
        """Reserved stock elsewhere for what a short pick at ``stop`` left
        missing, chosen from where the picker stands; and what still misses."""
        plan = self.line(tx, stop.sku, missing, exclude=stop.location)
        choose([plan], self.layout, position)
        chosen = self.reserve(tx, stop.sku, plan)
        return [(stop.task, stop.line, stop.sku, c, units) for c, units in chosen], plan.missing

    # ------------------------------------------------------------------ walks

    def walk(self, allocations: Sequence[Allocation]) -> Walk:
        """The walk from the depot through new stops numbered 1, 2, …"""
        return plan_walk(self.layout, spots(allocations))

    def position(self, db: Reads, tour: int) -> Position | None:
        """Where the picker stands: the last finished stop (None: the depot)."""
        location = q.last_finished_location(db, tour)
        return q.position_of(db, location) if location is not None else None

    def _open_spots(self, db: Reads, tour: int) -> list[Spot]:
        return [Spot(str(n), aisle, y) for n, aisle, y in q.open_spots(db, tour)]

    def reroute(self, tx: Transaction, tour: int, start: Position | None) -> None:
        """Route the tour's open stops from ``start`` (the picker's position)."""
        open_spots = self._open_spots(tx, tour)
        first_ord = q.closed_ord(tx, tour) + 1
        order, shown = plan_walk(self.layout, open_spots, start)
        self.store_route(tx, tour, (order, shown), start=start, first_ord=first_ord)

    def reroute_ending_at(self, tx: Transaction, tour: int, last: Stop) -> None:
        """The rest of the walk from where the picker stands, ending at
        ``last`` (a skipped stop), then back to the depot."""
        position = self.position(tx, tour)
        skipped = q.position_of(tx, last.location)
        others = [s for s in self._open_spots(tx, tour) if s.id != str(last.stop)]
        closed = q.closed_ord(tx, tour)
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
        walk = ([*order, str(last.stop)], shown)
        self.store_route(tx, tour, walk, start=position, first_ord=closed + 1)

    def store_route(
        self, tx: Transaction, tour: int, walk: Walk, *, start: Position | None, first_ord: int
    ) -> None:
        """Store the walk's order from ``first_ord`` on and the route the PDA draws."""
        order, shown = walk
        shown = dict(shown)
        q.set_walk(tx, tour, [int(stop) for stop in order], first_ord)
        if start is not None:
            shown["from"] = [start[0] * self.pitch, start[1]]
        q.set_route(tx, tour, shown)
