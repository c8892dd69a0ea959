"""The master-data tables module on a real store: what each function leaves in
the tables (the decisions around them are tested with ``apply_changes``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.masterdata import tables
from edge.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "md.db", box_id="md-box") as s:
        yield s


def test_gtins_are_replaced_and_a_gtin_follows_its_new_sku(store: Store) -> None:
    with store.transaction() as tx:
        tables.upsert_item(tx, "A", "apple", "EA", serialized=False)
        tables.upsert_item(tx, "B", "pear", "EA", serialized=True)
        tables.replace_gtins(tx, "A", ["00000000000017", "00000000000024", "00000000000017"])
        tables.replace_gtins(tx, "B", ["00000000000024"])
        tables.upsert_item(tx, "A", "green apple", "BOX", serialized=False)
    rows = store.query("SELECT gtin, sku FROM item_gtins ORDER BY gtin")
    assert rows == [{"gtin": "00000000000017", "sku": "A"}, {"gtin": "00000000000024", "sku": "B"}]
    items = store.query("SELECT sku, description, uom, serialized FROM items ORDER BY sku")
    assert items[0] == {"sku": "A", "description": "green apple", "uom": "BOX", "serialized": 0}
    assert items[1]["serialized"] == 1


def test_on_hand_keeps_reserved_and_locations_read_back(store: Store) -> None:
    with store.transaction() as tx:
        tables.upsert_location(tx, "A-01", 1, 2.5, "z1")
        tables.upsert_location(tx, "A-01", 1, 3.0, "z1")
        tables.set_on_hand(tx, "A", "A-01", 5)
        tx.execute("UPDATE stock SET reserved = 2")
        tables.set_on_hand(tx, "A", "A-01", 7)
    assert store.query("SELECT lot, qty, reserved FROM stock") == [
        {"lot": "", "qty": 7, "reserved": 2}
    ]
    assert tables.locations(store) == {"A-01": tables.Location("A-01", 1, 3.0, "z1")}


def test_a_task_round_trips_and_its_purge_leaves_a_tombstone(store: Store) -> None:
    header = tables.TaskHeader("pick", "O1", 3, "1000", "N", None)
    lines: list[tables.TaskLine] = [("2", "B", 1, "L2"), ("1", "A", 4, None)]
    with store.transaction() as tx:
        assert tables.stored_task(tx, "T1") is None
        tables.insert_task(tx, "T1", header, received_ms=0)
        tables.replace_task_lines(tx, "T1", lines)
        assert tables.stored_task(tx, "T1") == tables.StoredTask("open", header)
        assert tables.task_lines(tx, "T1") == lines  # stored order, not sorted
        tables.cancel_task(tx, "T1", finished_ms=1)
        assert tables.task_state(tx, "T1") == "cancelled"
        tables.stamp_finished_tasks(tx, purge_at_up=100)
        assert tables.purge_tasks(tx, 99, tombstone_until=500) == 0
        assert tables.purge_tasks(tx, 100, tombstone_until=500) == 1
        assert tables.task_lines(tx, "T1") == []
        assert tables.is_tombstoned(tx, "T1")
        assert tables.purge_tombstones(tx, 499) == 0
        assert tables.purge_tombstones(tx, 500) == 1
        assert not tables.is_tombstoned(tx, "T1")


def test_pickers_badges_and_counts(store: Store) -> None:
    with store.transaction() as tx:
        tables.upsert_picker(tx, "p1", "Ana", "B1", "picker", active=True, source="local")
        assert tables.badge_holder(tx, "B1") == "p1"
        assert tables.picker_active(tx, "p1") is True
        assert tables.picker_active(tx, "nobody") is None
        tables.take_badge(tx, "p1")
        assert tables.badge_holder(tx, "B1") is None
        tables.upsert_picker(tx, "p2", "Bo", "B1", "supervisor", active=True, source="cloud")
    assert tables.active_picker_by_badge(store, "B1") == tables.PickerRow("p2", "Bo", "supervisor")
    assert tables.active_picker_by_badge(store, "~reissued:p1") is None  # deactivated
    assert store.query("SELECT source FROM pickers ORDER BY id") == [
        {"source": "local"},
        {"source": "cloud"},
    ]
    assert tables.counts(store) == {"items": 0, "locations": 0, "tasks": 0, "pickers": 2}
