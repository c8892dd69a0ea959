"""Group commit: scans arriving together share one transaction, each in its
own savepoint; one that fails leaves the others and the outbox seq unbroken."""

from __future__ import annotations

import asyncio

import pytest

from edge.config import Config
from edge.picking import Picker, PickingService, ScanIdConflictError
from edge.store.db import Store
from tests.support.api_fixtures import GTIN_A, GTIN_C, add_task, events

P1 = Picker("P1", "Pia", "picker")
P2 = Picker("P2", "Per", "picker")


async def test_a_failing_scan_in_a_batch_leaves_the_others(
    zone_store: tuple[Store, Config],
) -> None:
    store, cfg = zone_store
    picking = PickingService(store, cfg.layout_dict())
    add_task(store, "T-1", [("SKU-A", 3)], order="O-1")
    add_task(store, "T-2", [("SKU-C", 3)], order="O-2")
    t1 = (await picking.scan(P1, "O-1", "a0")).json()["tour"]
    t2 = (await picking.scan(P2, "O-2", "b0")).json()["tour"]
    await picking.scan(P1, t1["stops"][0]["location"], "a1")
    await picking.scan(P2, t2["stops"][0]["location"], "b1")
    results = await asyncio.gather(
        picking.scan(P1, GTIN_A, "a2"),
        picking.scan(P2, GTIN_C, "b2"),
        picking.scan(P2, GTIN_C, "a2"),  # P1's scan_id: refused, alone
        picking.scan(P1, GTIN_A, "a3"),
        picking.scan(P2, GTIN_C, "b3"),
        return_exceptions=True,
    )
    assert isinstance(results[2], ScanIdConflictError)
    ok = [r.json()["result"] for r in results if not isinstance(r, BaseException)]
    assert ok == ["item_ok", "item_ok", "item_ok", "item_ok"]
    confirmed = events(store, "pick_confirmed")
    assert sorted((e["sku"], e["qty"]) for e in confirmed) == [
        ("SKU-A", 1),
        ("SKU-A", 1),
        ("SKU-C", 1),
        ("SKU-C", 1),
    ]
    seqs = [e["seq"] for e in events(store)]
    assert seqs == list(range(1, len(seqs) + 1))
    with pytest.raises(ScanIdConflictError):
        await picking.scan(P2, GTIN_C, "a3")
