"""Reads of ``stock_ledger``: the box's own stock movements, one row per
``stock_delta`` event, written only by :meth:`edge.store.Transaction.append`,
and of ``stock_ledger_base``, the folded past (:func:`edge.store.outbox.
fold_ledger`): one row per (sku, location) for what can no longer be asked about.

The sync-v1 ``stock`` rule's sum "after seq N of epoch E" is
:func:`edge.store.outbox.deltas_after`; this module answers the whole-box
question a check of cloud against box asks (the demo's, a site engineer's).
"""

from __future__ import annotations

from edge.store.db import Store


def net_movements(store: Store) -> dict[tuple[str, str], int]:
    """The net quantity this box moved per (sku, location), over every epoch:
    the live rows and the folded past (``stock_ledger_base``, one row per
    (sku, location) for rows acked longer ago than the retention)."""
    rows = store.query(
        "SELECT sku, location, SUM(qty) AS qty FROM ("
        "SELECT sku, location, qty FROM stock_ledger "
        "UNION ALL SELECT sku, location, qty FROM stock_ledger_base"
        ") GROUP BY sku, location"
    )
    return {(str(r["sku"]), str(r["location"])): int(r["qty"]) for r in rows}
