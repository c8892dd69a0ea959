"""Retention of the shipping tables: confirmed shipments, their cartons (with
their lines) and the print jobs of those cartons go a retention period of box
*uptime* after maintenance first saw them finished.

Called by :mod:`edge.maintenance` inside its transaction, in two steps like
:mod:`edge.picking.retention`: :func:`stamp` marks what finished since the
last purge with the uptime at which it may go, :func:`purge` deletes what is
due. A carton goes with its shipment; a carton never shipped goes once no
task of its order is left on the box (the order was purged or never came)
and no station holds the order. A print job goes when none of its cartons is
left. Nothing here reads the wall clock.
"""

from __future__ import annotations

from edge.store import Transaction


def stamp(tx: Transaction, purge_at_up: int) -> None:
    """Shipments, shipped cartons and orphaned cartons not yet stamped go at
    uptime ``purge_at_up``."""
    tx.execute("UPDATE shipments SET purge_at_up = ? WHERE purge_at_up IS NULL", (purge_at_up,))
    tx.execute(
        "UPDATE cartons SET purge_at_up = ? WHERE purge_at_up IS NULL "
        "AND (state = 'shipped' OR NOT EXISTS "
        "(SELECT 1 FROM tasks t WHERE COALESCE(t.order_ref, t.task) = cartons.order_ref)) "
        "AND NOT EXISTS (SELECT 1 FROM pack_stations s WHERE s.order_ref = cartons.order_ref)",
        (purge_at_up,),
    )


def purge(tx: Transaction, up: int) -> dict[str, int]:
    """Delete the shipments and cartons due by uptime ``up`` and the print jobs
    left without a carton; returns ``{"shipments", "cartons", "print_jobs"}``."""
    shipments = tx.execute("DELETE FROM shipments WHERE purge_at_up <= ?", (up,)).rowcount
    deleted = tx.execute(
        "DELETE FROM cartons WHERE purge_at_up <= ? RETURNING sscc", (up,)
    ).fetchall()
    gone = {str(r[0]) for r in deleted if r[0] is not None}
    jobs = 0
    if gone:
        for job, cartons in tx.execute("SELECT job, cartons FROM print_jobs").fetchall():
            ssccs = [s for s in str(cartons).split(",") if s]
            if not gone.intersection(ssccs):
                continue
            marks = ", ".join("?" * len(ssccs))
            kept = tx.execute(
                f"SELECT 1 FROM cartons WHERE sscc IN ({marks}) LIMIT 1",  # noqa: S608 - placeholders only
                ssccs,
            ).fetchone()
            if kept is None:
                tx.execute("DELETE FROM print_jobs WHERE job = ?", (job,))
                jobs += 1
    return {"shipments": int(shipments), "cartons": len(deleted), "print_jobs": jobs}
