"""A tour planned on a read snapshot is used only if nothing it relied on changed;
otherwise the transaction plans again (the writer decides, never the snapshot)."""

from __future__ import annotations

from typing import Any

from edge.config import Config
from edge.picking import Picker, PickingService
from edge.store.db import Store
from tests.support.api_fixtures import add_task, events, stock

P1 = Picker("P1", "Pia", "picker")


class _Racing(PickingService):
    """Commits another change right after planning, like a concurrent writer."""

    def __init__(self, *args: Any, change: str, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.change = change
        self.prepared = 0

    def _prepare(self, picker: Picker, code: Any) -> Any:
        plan = super()._prepare(picker, code)
        self.prepared += plan is not None
        self.store.run(lambda tx: tx.execute(self.change))
        return plan


async def test_stock_arriving_after_the_plan_is_used(zone_store: tuple[Store, Config]) -> None:
    store, cfg = zone_store
    add_task(store, "T-1", [("SKU-A", 1), ("SKU-E", 2)])
    picking = _Racing(
        store,
        cfg.layout_dict(),
        change="INSERT INTO stock (sku, location, qty) VALUES ('SKU-E', 'A-09-18', 5)",
    )
    answer = (await picking.scan(P1, "T-1", "s1")).json()
    assert picking.prepared == 1
    assert (answer["result"], answer["feedback"]) == ("tour_started", "success")
    assert {(s["sku"], s["location"]) for s in answer["tour"]["stops"]} == {
        ("SKU-A", "A-01-05"),
        ("SKU-E", "A-09-18"),
    }
    assert events(store, "pick_exception") == []


async def test_units_reserved_after_the_plan_are_not_promised_twice(
    zone_store: tuple[Store, Config],
) -> None:
    store, cfg = zone_store
    add_task(store, "T-1", [("SKU-C", 3)])
    # after planning, someone else takes all of SKU-C's units at both locations
    picking = _Racing(
        store, cfg.layout_dict(), change="UPDATE stock SET reserved = qty WHERE sku = 'SKU-C'"
    )
    answer = (await picking.scan(P1, "T-1", "s1")).json()
    assert picking.prepared == 1
    assert answer["result"] == "no_stock"
    assert stock(store, "SKU-C", "A-06-15") == (3, 3)
    assert stock(store, "SKU-C", "A-08-04") == (10, 10)
    (exc,) = events(store, "pick_exception")
    assert (exc["sku"], exc["expected"]) == ("SKU-C", 3)
