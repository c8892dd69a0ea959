"""Retention of the picking tables: finished tours, with their stops and scans,
go a retention period of box *uptime* after they were first seen finished.

Called by :mod:`edge.maintenance` inside its transaction, in two steps so the
period counts from when maintenance first saw the work finished: :func:`stamp`
marks what finished since the last purge with the uptime at which it may go,
:func:`purge` deletes what is due. Active tours and the scans of active tours
are never touched; a scan's dedup record goes only with its tour (or, outside
any tour, on its own stamp).
"""

from __future__ import annotations

from edge.store import Transaction


def stamp(tx: Transaction, purge_at_up: int) -> None:
    """Finished tours and scans outside any tour, not yet stamped, go at uptime
    ``purge_at_up``."""
    tx.execute(
        "UPDATE tours SET purge_at_up = ? WHERE state != 'active' AND purge_at_up IS NULL",
        (purge_at_up,),
    )
    tx.execute(
        "UPDATE scans SET purge_at_up = ? WHERE tour IS NULL AND purge_at_up IS NULL",
        (purge_at_up,),
    )


def purge(tx: Transaction, up: int) -> dict[str, int]:
    """Delete the scans and tours (their stops cascade) due by uptime ``up``;
    returns how many of each went, as ``{"scans": n, "tours": m}``."""
    scans = tx.execute(
        "DELETE FROM scans WHERE (tour IS NULL AND purge_at_up <= ?) "
        "OR tour IN (SELECT tour FROM tours WHERE purge_at_up <= ?)",
        (up, up),
    ).rowcount
    tours = tx.execute("DELETE FROM tours WHERE purge_at_up <= ?", (up,)).rowcount
    return {"scans": int(scans), "tours": int(tours)}
