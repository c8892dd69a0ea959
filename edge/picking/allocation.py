"""Which stocked locations serve a line: FEFO first, then the shortest walk.

Input: the stock rows of one SKU that still have unreserved units
(:class:`Candidate`) and the units a line needs. Rules, in order:

1. **FEFO.** Rows are taken in expiry order (earliest first, rows without an
   expiry last). A later-expiring lot is only used when every earlier one is
   exhausted.
2. **Fewest stops.** Within the earliest usable expiry tier, when one location
   alone can fill what is left, the line becomes one stop at one of those
   locations; which one is left to the routing engine
   (:func:`edge.routing.choose_locations`), so that the tour is shortest. When no
   single location can, the tier's largest rows are taken first.
3. **What cannot be filled** is reported as missing, never invented.

Pure: no database, no clock. The caller reserves what this module chooses.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from edge.routing import choose_locations

log = logging.getLogger(__name__)

#: flexible choices are handed to the engine only while the combinations stay
#: few enough to fit the order-scan latency budget (each combination the
#: engine prices is an exact route: ~3 ms for 30 picks in 2 blocks); beyond
#: it, each line goes next to a pick the tour makes anyway. Measured on the
#: floor benchmark, that rule walks ~1 % less than the engine's budgeted search
#: (which starts from the slots nearest the depot) at a third of the latency.
MAX_COMBINATIONS = 2
MAX_OPTIONS = 4
#: wall-time guard for the engine's search on a loaded box
BUDGET_MS = 6.0


@dataclass(frozen=True, slots=True)
class Candidate:
    location: str
    lot: str
    expiry: str | None
    avail: int
    aisle: int
    y: float


@dataclass(slots=True)
class LinePlan:
    """Allocations of one line: ``fixed`` by FEFO, plus one of ``options`` for ``units``."""

    fixed: list[tuple[Candidate, int]] = field(default_factory=list)
    options: list[Candidate] = field(default_factory=list)
    units: int = 0
    missing: int = 0
    choice: int = 0

    def allocations(self) -> list[tuple[Candidate, int]]:
        out = list(self.fixed)
        if self.options:
            out.append((self.options[self.choice], self.units))
        return out


def _fefo_key(c: Candidate) -> tuple[bool, str, int, str, str]:
    return (c.expiry is None, c.expiry or "", -c.avail, c.location, c.lot)


def plan_line(candidates: list[Candidate], need: int) -> LinePlan:
    """Split ``need`` units over ``candidates`` by the rules of the module docstring."""
    plan = LinePlan()
    rows = sorted((c for c in candidates if c.avail > 0), key=_fefo_key)
    remaining = need
    i = 0
    while remaining > 0 and i < len(rows):
        j = i
        while j < len(rows) and rows[j].expiry == rows[i].expiry:
            j += 1
        tier = rows[i:j]
        covering = [c for c in tier if c.avail >= remaining]
        if covering:
            plan.options = covering[:MAX_OPTIONS]
            plan.units = remaining
            return plan
        for c in tier:  # largest first (FEFO key sorts by -avail within a date)
            take = min(c.avail, remaining)
            plan.fixed.append((c, take))
            remaining -= take
            if remaining == 0:
                break
        i = j
    plan.missing = remaining
    return plan


def choose(
    plans: list[LinePlan], layout: dict[str, Any], start: tuple[int, float] | None = None
) -> None:
    """Set each plan's ``choice`` so the walk over all stops is short."""
    flexible = [p for p in plans if len(p.options) > 1]
    if not flexible:
        return
    combos = math.prod(len(p.options) for p in flexible)
    if combos <= MAX_COMBINATIONS and layout.get("kind") == "blocks":
        groups: list[dict[str, Any]] = []
        for n, plan in enumerate(plans):
            for m, (c, _) in enumerate(plan.fixed):
                groups.append({"id": f"f{n}.{m}", "candidates": [{"aisle": c.aisle, "y": c.y}]})
            if plan.options:
                groups.append(
                    {
                        "id": f"o{n}",
                        "candidates": [{"aisle": c.aisle, "y": c.y} for c in plan.options],
                    }
                )
        try:
            result = choose_locations(
                layout,
                groups,
                start={"aisle": start[0], "y": start[1]} if start is not None else None,
                budget_ms=BUDGET_MS,
            )
        except ValueError as exc:
            log.warning("location choice failed, taking the nearest: %s", exc)
        else:
            index = {g["id"]: c for g, c in zip(groups, result["choice"], strict=True)}
            for n, plan in enumerate(plans):
                if plan.options:
                    plan.choice = int(index[f"o{n}"])
            return
    # Too many combinations for the latency budget: put each flexible line
    # next to a pick the tour makes anyway (same aisle, nearest depth), else
    # take the slot nearest the front of the zone.
    anchors = [(c.aisle, c.y) for p in plans for c, _ in p.fixed] + [
        (p.options[0].aisle, p.options[0].y) for p in plans if len(p.options) == 1
    ]
    by_aisle: dict[int, list[float]] = {}
    for aisle, y in anchors:
        by_aisle.setdefault(aisle, []).append(y)
    pitch = float(layout.get("aisle_pitch_m", 1.0))
    for plan in flexible:

        def detour(k: int, plan: LinePlan = plan) -> tuple[float, int]:
            c = plan.options[k]
            ys = by_aisle.get(c.aisle)
            if ys:
                return (min(abs(c.y - y) for y in ys), k)
            return (c.aisle * pitch + c.y + 1000.0, k)

        plan.choice = min(range(len(plan.options)), key=detour)
        chosen = plan.options[plan.choice]
        by_aisle.setdefault(chosen.aisle, []).append(chosen.y)
