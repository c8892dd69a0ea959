"""Prometheus counters of the picking workflow, counted where it happens.

What a person did on the floor — scans by result, tours started and done,
units picked, the shorts and skips they reported — and how long the pick-path
engine took for each route. They live in prometheus-client's process-wide
registry, like the API's request counters (:mod:`edge.api.app`), and reach
``/metrics`` through :func:`edge.metrics.exposition`.

Promises:

- **Counted after the commit.** :class:`edge.picking.service.PickingService`
  calls :func:`answered` once the transaction of the answer is on disk, so a
  rolled-back scan counts nothing; a retried ``scan_id`` (the stored answer
  sent again) counts as a replay only.
- **No per-person, per-order or per-SKU labels**: the only labels are
  ``result`` (a pda-api-v1 scan result) and ``kind`` (``short``, ``skip``).
- The figures per day and month (exception rate, accuracy, walking) are read
  from the store at scrape time instead (:mod:`edge.picking.stats`): they
  survive restarts; these counters start at 0 with the process.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from edge.picking.decide import Count, Decision
from edge.picking.model import ScanResult

SCANS = Counter(
    "pickedge_scans",
    "PDA scans answered, by result (a retried scan_id is counted as a replay only)",
    ["result"],
)
SCAN_REPLAYS = Counter(
    "pickedge_scans_replayed", "Scans whose scan_id was answered before (stored answer sent)"
)
TOURS = Counter(
    "pickedge_tours", "Tours (pick and count) by what happened: started, done", ["result"]
)
UNITS = Counter("pickedge_units_picked", "Units confirmed picked (by scans and short picks)")
EXCEPTIONS = Counter(
    "pickedge_pick_exceptions", "Short picks and skips the pickers reported, by kind", ["kind"]
)
ROUTE_SECONDS = Histogram(
    "pickedge_route_seconds",
    "Time of the pick-path engine for one tour's walk (at a tour's start and each re-route)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)


def units_of(decision: Decision) -> int:
    """Units a scan's decision confirmed picked (a count tour's scans count none)."""
    intent = decision.intent
    return intent.units if isinstance(intent, Count) else 0


def answered(
    result: str, *, units: int = 0, scan: bool = False, replayed: bool = False, kind: str = ""
) -> None:
    """Count one committed answer: ``scan`` for ``POST /scan``; ``kind`` for a
    short pick or a skip; ``result`` says whether a tour started or ended."""
    if replayed:
        SCAN_REPLAYS.inc()
        return
    if scan and result:
        SCANS.labels(result=result).inc()
    if kind:
        EXCEPTIONS.labels(kind=kind).inc()
    if units > 0:
        UNITS.inc(units)
    if result == ScanResult.TOUR_STARTED:
        TOURS.labels(result="started").inc()
    elif result == ScanResult.TOUR_DONE:
        TOURS.labels(result="done").inc()
