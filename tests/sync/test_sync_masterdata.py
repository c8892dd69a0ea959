"""Downstream changes applied to the box: idempotency, the stock baseline rule,
tasks after start, cancels, pickers, unknown types."""

from __future__ import annotations

import logging
from typing import Any

import msgpack
import pytest

from cloud_sync.events import StockDelta, StockReason
from edge.masterdata import UNKNOWN_CHANGES, ChangeError, Notice, StockAheadError, apply_changes
from edge.store import Store
from edge.store.outbox import mark_acked, start_new_epoch
from simulators.cloud import task_feed

TABLES = ("items", "item_gtins", "locations", "stock", "tasks", "task_lines", "pickers", "alerts")


def snapshot(store: Store) -> dict[str, list[dict[str, Any]]]:
    return {t: store.query(f"SELECT * FROM {t} ORDER BY 1, 2") for t in TABLES}


def apply(store: Store, changes: list[dict[str, Any]]) -> list[Notice]:
    with store.transaction() as tx:
        return apply_changes(tx, changes)


def resolved_feed() -> list[dict[str, Any]]:
    out = []
    for change in task_feed(items=8, locations=6, pickers=3, tasks=6):
        c = change
        if c["type"] == "stock":
            d = c["data"]
            c = {
                "type": "stock",
                "data": {
                    "sku": d["sku"],
                    "location": d["location"],
                    "qty": d["base"],
                    "epoch": None,
                    "acked": 0,
                },
            }
        out.append(c)
    return out


def delta(store: Store, sku: str, loc: str, qty: int) -> int:
    with store.transaction() as tx:
        return tx.append(
            StockDelta(sku=sku, location=loc, qty=qty, reason=StockReason.PICK, ref=None, lot=None)
        )


def task(name: str = "T1", qty: int = 2, **over: Any) -> dict[str, Any]:
    data = {
        "task": name,
        "kind": "pick",
        "order": "O1",
        "priority": 1,
        "lines": [{"line": 1, "sku": "S1", "qty": qty}],
        "ship_to": {
            "postcode": "12345",
            "region": "north",
            "name": "Alice Example",
            "phone": "+49 555 0101",
        },
        "carrier": "dhl",
    }
    data.update(over)
    return {"type": "task", "data": data}


def test_applying_the_same_page_twice_leaves_the_same_state(store: Store) -> None:
    page = resolved_feed()
    assert apply(store, page) == []
    first = snapshot(store)
    assert len(first["items"]) == 8 and len(first["tasks"]) == 6 and len(first["stock"]) == 8
    assert len(first["pickers"]) == 3
    apply(store, page)
    assert snapshot(store) == first


def test_stock_baseline_is_cloud_qty_plus_own_deltas_after_acked(store: Store) -> None:
    epoch = store.epoch
    delta(store, "S1", "L1", -2)  # seq 1
    delta(store, "S2", "L1", -7)  # seq 2, another sku
    delta(store, "S1", "L1", -3)  # seq 3
    delta(store, "S1", "L1", +1)  # seq 4
    with store.transaction() as tx:
        tx.execute("INSERT INTO stock (sku, location, qty, reserved) VALUES ('S1', 'L1', 0, 4)")
    # the cloud's 100 includes seqs ≤ 3 of this epoch: add only seq 4
    apply(
        store,
        [
            {
                "type": "stock",
                "data": {"sku": "S1", "location": "L1", "qty": 100, "epoch": epoch, "acked": 3},
            }
        ],
    )
    row = store.query("SELECT qty, reserved FROM stock WHERE sku = 'S1'")[0]
    assert row == {"qty": 101, "reserved": 4}  # reserved is kept
    # it includes none of them: add all three
    apply(
        store,
        [
            {
                "type": "stock",
                "data": {"sku": "S1", "location": "L1", "qty": 100, "epoch": None, "acked": 0},
            }
        ],
    )
    assert store.query("SELECT qty FROM stock WHERE sku = 'S1'")[0]["qty"] == 96
    # an epoch this box does not know counts as none
    apply(
        store,
        [
            {
                "type": "stock",
                "data": {"sku": "S1", "location": "L1", "qty": 100, "epoch": "unknown", "acked": 3},
            }
        ],
    )
    assert store.query("SELECT qty FROM stock WHERE sku = 'S1'")[0]["qty"] == 96


def test_stock_baseline_counts_later_epochs_in_full(store: Store) -> None:
    old = store.epoch
    delta(store, "S1", "L1", -2)  # old seq 1 (the cloud has it)
    delta(store, "S1", "L1", -5)  # old seq 2 (unacked: moves to the new epoch)
    with store.transaction() as tx:
        mark_acked(tx, old, 1)
        start_new_epoch(tx)
    delta(store, "S1", "L1", -1)  # new epoch seq 2
    apply(
        store,
        [
            {
                "type": "stock",
                "data": {"sku": "S1", "location": "L1", "qty": 50, "epoch": old, "acked": 1},
            }
        ],
    )
    assert store.query("SELECT qty FROM stock")[0]["qty"] == 44


def test_task_is_updated_while_open_and_ignored_with_a_warning_once_started(
    store: Store,
) -> None:
    apply(store, [task(qty=2)])
    apply(store, [task(qty=5, priority=9)])
    assert store.query("SELECT priority FROM tasks")[0]["priority"] == 9
    assert store.query("SELECT qty FROM task_lines")[0]["qty"] == 5
    with store.transaction() as tx:
        tx.execute("UPDATE tasks SET state = 'started' WHERE task = 'T1'")
    apply(store, [task(qty=5, priority=9)])  # the same again: nothing to say
    assert store.query("SELECT count(*) AS n FROM alerts")[0]["n"] == 0
    apply(store, [task(qty=1)])
    assert store.query("SELECT qty FROM task_lines")[0]["qty"] == 5  # ignored
    [alert] = store.query("SELECT kind, severity FROM alerts")
    assert alert == {"kind": "task_update_ignored", "severity": "warn"}
    [event] = store.query("SELECT type, payload FROM outbox WHERE type = 'alert'")
    assert msgpack.unpackb(event["payload"])["detail"] == {"task": "T1", "state": "started"}


def test_only_postcode_and_region_of_the_customer_are_stored(store: Store) -> None:
    apply(store, [task()])
    dump = "\n".join(str(r) for t in TABLES for r in snapshot(store)[t])
    assert "12345" in dump and "north" in dump
    assert "Alice" not in dump and "555" not in dump


def test_cancel_of_an_open_task_and_of_a_started_one(store: Store) -> None:
    apply(store, [task("T1"), task("T2")])
    with store.transaction() as tx:
        tx.execute("UPDATE tasks SET state = 'started' WHERE task = 'T2'")
        tx.execute("INSERT INTO tours (tour, picker, started_ms) VALUES (7, 'p1', 0)")
        tx.execute(
            "INSERT INTO tour_stops (tour, stop, task, line, sku, location, qty) "
            "VALUES (7, 1, 'T2', '1', 'S1', 'L1', 2)"
        )
    assert apply(store, [{"type": "task_cancel", "data": {"task": "T1"}}]) == []
    notices = apply(store, [{"type": "task_cancel", "data": {"task": "T2"}}])
    assert notices == [Notice(kind="task_cancelled", task="T2", pickers=("p1",), tours=(7,))]
    states = {r["task"]: r["state"] for r in store.query("SELECT task, state FROM tasks")}
    assert states == {"T1": "cancelled", "T2": "cancelled"}
    # again: idempotent, no second notice; unknown tasks are ignored
    assert (
        apply(
            store,
            [
                {"type": "task_cancel", "data": {"task": "T2"}},
                {"type": "task_cancel", "data": {"task": "T9"}},
            ],
        )
        == []
    )


def test_pickers_upsert_deactivate_and_badge_reissue(store: Store) -> None:
    def picker(pid: str, badge: str, active: bool = True) -> dict[str, Any]:
        return {
            "type": "picker",
            "data": {
                "id": pid,
                "name": pid.upper(),
                "badge": badge,
                "role": "picker",
                "active": active,
            },
        }

    apply(store, [picker("p1", "B1"), picker("p2", "B2")])
    assert apply(store, [picker("p1", "B1", active=False)]) == [
        Notice(kind="picker_deactivated", pickers=("p1",))
    ]
    assert apply(store, [picker("p1", "B1", active=False)]) == []  # already inactive
    notices = apply(store, [picker("p3", "B2")])  # B2 reissued to p3
    assert notices == [Notice(kind="picker_deactivated", pickers=("p2",))]
    rows = {r["id"]: (r["badge"], r["active"]) for r in store.query("SELECT * FROM pickers")}
    assert rows["p3"] == ("B2", 1) and rows["p2"][1] == 0 and rows["p1"] == ("B1", 0)


def test_unknown_types_are_counted_logged_once_and_skipped(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge.masterdata")
    before = UNKNOWN_CHANGES["hologram_v9"]
    apply(
        store,
        [{"type": "hologram_v9", "data": {}}, task(), {"type": "hologram_v9", "data": {"x": 1}}],
    )
    assert UNKNOWN_CHANGES["hologram_v9"] == before + 2
    assert store.query("SELECT count(*) AS n FROM tasks")[0]["n"] == 1
    apply(store, [{"type": "hologram_v9", "data": {}}])
    assert caplog.text.count("hologram_v9") == (1 if before == 0 else 0)


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "item", "data": {"sku": "S9", "gtins": ["123"]}},
        {"type": "location", "data": {"code": "X", "aisle": "one", "y": 1}},
        {"type": "stock", "data": {"sku": "S1", "location": "L1", "qty": "many"}},
        {"type": "task", "data": {"task": "T5", "lines": []}},
        {"type": "picker", "data": {"id": "p1", "badge": "B", "role": "boss"}},
        {"type": "item", "data": None},
        # two lines of one id (1 and "1" are one id): refused before any SQL (issue 17, 5)
        task(
            "T5", lines=[{"line": 1, "sku": "S1", "qty": 1}, {"line": "1", "sku": "S2", "qty": 1}]
        ),
        task("T5", lines=[{"line": True, "sku": "S1", "qty": 1}]),
    ],
)
def test_a_bad_change_rolls_back_the_whole_page(store: Store, bad: dict[str, Any]) -> None:
    before = snapshot(store)
    with pytest.raises(ChangeError):
        apply(store, [task("T1"), bad])
    assert snapshot(store) == before


def test_gtins_follow_their_item(store: Store) -> None:
    def item(sku: str, gtins: list[str]) -> dict[str, Any]:
        return {
            "type": "item",
            "data": {
                "sku": sku,
                "gtins": gtins,
                "description": sku,
                "uom": "EA",
                "serialized": False,
            },
        }

    apply(store, [item("S1", ["04000000000011", "04000000000028"]), item("S2", [])])
    apply(store, [item("S1", ["04000000000011"]), item("S2", ["04000000000028"])])
    rows = store.query("SELECT gtin, sku FROM item_gtins ORDER BY gtin")
    assert rows == [
        {"gtin": "04000000000011", "sku": "S1"},
        {"gtin": "04000000000028", "sku": "S2"},
    ]


def test_a_duplicate_line_id_names_the_change_and_the_line(store: Store) -> None:
    lines = [{"line": "L1", "sku": "S1", "qty": 1}, {"line": "L1", "sku": "S2", "qty": 2}]
    with pytest.raises(ChangeError, match=r"change 1 \(task T7\): task T7: line L1 appears twice"):
        apply(store, [task("T6"), task("T7", lines=lines)])
    assert store.query("SELECT count(*) AS n FROM tasks")[0]["n"] == 0


def test_a_constraint_the_checks_miss_is_a_change_error_of_that_change(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.masterdata import tables

    def bad_gtins(tx: Any, sku: str, gtins: Any) -> None:  # a GTIN the CHECK refuses
        tx.execute("INSERT INTO item_gtins (gtin, sku) VALUES ('123', ?)", (sku,))

    monkeypatch.setattr(tables, "replace_gtins", bad_gtins)
    item = {"sku": "S9", "gtins": [], "description": "", "uom": "EA", "serialized": False}
    with pytest.raises(ChangeError, match=r"change 0 \(item S9\): the box's tables refuse it"):
        apply(store, [{"type": "item", "data": item}])
    assert store.query("SELECT count(*) AS n FROM items")[0]["n"] == 0


def test_a_stock_figure_ahead_of_what_the_box_wrote_is_refused(store: Store) -> None:
    # Issue 17, 6: restored from a backup (or a cloned card), the box has written
    # 2 events of its epoch; the cloud saw that epoch up to seq 5 from the lost
    # timeline. Its figure must not replace the box's own deltas after seq 2.
    epoch = store.epoch
    with store.transaction() as tx:
        tx.execute("INSERT INTO stock (sku, location, qty) VALUES ('S1', 'L1', 20)")
    delta(store, "S1", "L1", -2)  # seq 1
    delta(store, "S1", "L1", -3)  # seq 2
    ahead = {
        "type": "stock",
        "data": {"sku": "S1", "location": "L1", "qty": 100, "epoch": epoch, "acked": 5},
    }
    with pytest.raises(StockAheadError, match=r"up to seq 5 .* written only 2") as refused:
        apply(store, [task("T1"), ahead])
    assert refused.value.alert_kind == "sync_stock_ahead"
    assert "change 1 (stock S1 at L1)" in str(refused.value)
    assert store.query("SELECT qty FROM stock")[0]["qty"] == 20  # nothing applied
    assert store.query("SELECT count(*) AS n FROM tasks")[0]["n"] == 0
    # up to what the box wrote is fine (seq 2: nothing after it to add)
    at = {**ahead, "data": {**ahead["data"], "acked": 2}}
    apply(store, [at])
    assert store.query("SELECT qty FROM stock")[0]["qty"] == 100
    # once the box is in a new epoch (its unacked deltas moved there), the same
    # figure applies and the box's deltas count in full: nothing is lost
    with store.transaction() as tx:
        start_new_epoch(tx)
    apply(store, [ahead])
    assert store.query("SELECT qty FROM stock")[0]["qty"] == 95


def test_a_cancel_before_the_task_leaves_a_tombstone(store: Store) -> None:
    # Issue 17, 9: the cloud cancels T5 before the box received it; T5 arriving
    # later (the next page, or the same one) must never become pickable.
    with store.transaction() as tx:
        tx.execute("UPDATE box SET uptime_ms = 5000")
    assert apply(store, [{"type": "task_cancel", "data": {"task": "T5"}}]) == []
    [stone] = store.query("SELECT task, purge_at_up FROM task_tombstones")
    assert stone == {"task": "T5", "purge_at_up": 5000 + 365 * 86_400_000}
    apply(store, [task("T5")])
    apply(store, [{"type": "task_cancel", "data": {"task": "T6"}}, task("T6")])
    assert store.query("SELECT count(*) AS n FROM tasks")[0]["n"] == 0
    alerts = store.query("SELECT kind, severity, subject FROM alerts ORDER BY id")
    assert [(a["kind"], a["severity"]) for a in alerts] == [("task_update_ignored", "warn")] * 2
    assert "T5" in alerts[0]["subject"] and "cancelled" in alerts[0]["subject"]
    # the cancel again changes nothing (idempotent), and a task it never named is taken
    apply(store, [{"type": "task_cancel", "data": {"task": "T5"}}, task("T7")])
    assert store.query("SELECT count(*) AS n FROM task_tombstones")[0]["n"] == 2
    assert [r["task"] for r in store.query("SELECT task FROM tasks")] == ["T7"]
