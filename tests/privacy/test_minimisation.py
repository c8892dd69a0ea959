"""Data minimisation on ingest, the `erase` change, and the purges of the
shipping tables, pickers and alerts (issue 13), on a store without a daemon."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgpack
import pytest

from devices.printer.zpl import REDACTED, CartonLabel, parse_jobs, redact_ship_to, render_batch
from edge.maintenance import Maintenance
from edge.masterdata import DROPPED_FIELDS, ERASURES, ChangeError, Notice, apply_changes
from edge.shipping import labels
from edge.store import Store, Transaction
from simulators.cloud import erase_change

DAY = 86_400_000


def _sscc(body17: str) -> str:
    from biip.checksums import gs1_standard_check_digit

    return body17 + str(gs1_standard_check_digit(body17))


def _task(task: str, order: str, postcode: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "task",
        "data": {
            "task": task,
            "order": order,
            "lines": [{"line": 1, "sku": "A", "qty": 2}],
            "ship_to": {"postcode": postcode, "region": "north"},
            **extra,
        },
    }


def _events(store: Store, type_: str) -> list[dict[str, Any]]:
    rows = store.query("SELECT payload FROM outbox WHERE type = ? ORDER BY seq", (type_,))
    return [msgpack.unpackb(r["payload"]) for r in rows]


def test_only_postcode_and_region_are_kept_the_rest_is_counted_and_logged_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = dict(DROPPED_FIELDS)
    change = _task("T1", "O1", "AB1 2CD", customer_name="Ada Secret", phone="0700 SECRET")
    change["data"]["ship_to"].update(name="Ada Secret", street="1 Secret Row")
    change["data"]["lines"][0]["note"] = "ring SECRET bell"
    caplog.set_level(logging.INFO)
    with Store.open(tmp_path / "m.db", box_id="b") as store:
        store.run(lambda tx: apply_changes(tx, [change]))
        row = store.query("SELECT ship_postcode, ship_region, order_ref FROM tasks")
        assert row == [{"ship_postcode": "AB1 2CD", "ship_region": "north", "order_ref": "O1"}]
        assert store.query("SELECT qty FROM task_lines") == [{"qty": 2}]
    assert DROPPED_FIELDS["task"] - before.get("task", 0) == 2
    assert DROPPED_FIELDS["ship_to"] - before.get("ship_to", 0) == 2
    assert DROPPED_FIELDS["line"] - before.get("line", 0) == 1
    assert "SECRET" not in caplog.text and "Ada" not in caplog.text
    assert "'ship_to.street'" in caplog.text and "'task.phone'" in caplog.text
    # Logged once per field name, however often it comes.
    caplog.clear()
    with Store.open(tmp_path / "m.db", box_id="b") as store:
        store.run(lambda tx: apply_changes(tx, [change]))
    assert "ship_to.street" not in caplog.text


def test_a_bad_badge_is_refused_without_echoing_it() -> None:
    change = {"type": "picker", "data": {"id": "p1", "name": "N", "badge": 12345}}
    with pytest.raises(ChangeError) as caught:
        apply_changes(None, [change])  # type: ignore[arg-type]  # refused before any SQL
    assert "12345" not in str(caught.value) and "badge" in str(caught.value)


def test_redaction_blanks_only_the_labels_of_the_erased_order() -> None:
    a, b = _sscc("37612345000000001"), _sscc("37612345000000002")
    job = render_batch(
        [
            CartonLabel(a, "AB1 2CD", "north", "O1", 1, 1, sender="box"),
            CartonLabel(b, "ZZ9 9ZZ", "south", "O2", 1, 1, sender="box"),
        ]
    )
    redacted = redact_ship_to(job, [a])
    assert b"AB1 2CD" not in redacted and b"north" not in redacted
    assert b"ZZ9 9ZZ" in redacted and b"south" in redacted
    first, second = parse_jobs(redacted)
    assert REDACTED in first.texts and "O1" in " ".join(first.texts)
    assert first.barcodes == parse_jobs(job)[0].barcodes  # the barcode is kept
    assert second == parse_jobs(job)[1]


def _packed(tx: Transaction, order: str, task: str, sscc: str, postcode: str) -> None:
    apply_changes(tx, [_task(task, order, postcode)])
    tx.execute("UPDATE tasks SET state = 'done' WHERE task = ?", (task,))
    tx.execute(
        "INSERT INTO cartons (order_ref, station, state, sscc, opened_ms) "
        "VALUES (?, 'P1', 'closed', ?, 0)",
        (order, sscc),
    )


def test_erase_of_an_order_and_a_picker(tmp_path: Path) -> None:
    a, b = _sscc("37612345000000001"), _sscc("37612345000000002")
    orders_before, pickers_before = ERASURES["order"], ERASURES["picker"]
    with Store.open(tmp_path / "e.db", box_id="b") as store:

        def seed(tx: Transaction) -> None:
            _packed(tx, "O1", "T1", a, "AB1 2CD")
            _packed(tx, "O2", "T2", b, "ZZ9 9ZZ")
            labels.make_job(tx, ["O1", "O2"], "printer", sender="box", now=0)  # a cart's job
            tx.execute(
                "INSERT INTO pickers (id, name, badge, role) "
                "VALUES ('p1', 'Ada', 'B-ADA', 'picker')"
            )
            tx.execute(
                "INSERT INTO pdas (id, name, key_hash, created_ms) VALUES ('d', 'd', 'h', 0)"
            )
            tx.execute("INSERT INTO sessions VALUES ('s', 'p1', 'd', 99999999)")
            tx.execute("INSERT INTO tours (picker, state, started_ms) VALUES ('p1', 'done', 0)")

        store.run(seed)
        notices = store.run(
            lambda tx: apply_changes(tx, [erase_change(order="O1"), erase_change(picker="p1")])
        )
        assert store.query("SELECT task, ship_postcode, ship_region FROM tasks ORDER BY 1") == [
            {"task": "T1", "ship_postcode": None, "ship_region": None},
            {"task": "T2", "ship_postcode": "ZZ9 9ZZ", "ship_region": "north"},
        ]
        (job,) = store.query("SELECT zpl, cartons FROM print_jobs")
        assert b"AB1 2CD" not in job["zpl"] and b"ZZ9 9ZZ" in job["zpl"]
        assert job["cartons"] == f"{a},{b}"  # the codes stay
        assert store.query("SELECT count(*) AS n FROM task_lines") == [{"n": 2}]
        assert store.query("SELECT id, name, badge, active FROM pickers") == [
            {"id": "p1", "name": "(erased)", "badge": "~erased:p1", "active": 0}
        ]
        assert store.query("SELECT count(*) AS n FROM sessions") == [{"n": 0}]
        assert store.query("SELECT picker FROM tours") == [{"picker": "p1"}]
        assert _events(store, "erased") == [
            {"order": "O1", "picker": None, "rows": 2},
            {"order": None, "picker": "p1", "rows": 2},
        ]
        assert [n.kind for n in notices] == ["erased", "picker_deactivated", "erased"]
        assert Notice(kind="picker_deactivated", pickers=("p1",)) in notices
        # The same erasure again changes nothing and says so.
        store.run(lambda tx: apply_changes(tx, [erase_change(order="O1")]))
        assert _events(store, "erased")[-1] == {"order": "O1", "picker": None, "rows": 0}
    assert ERASURES["order"] - orders_before == 2 and ERASURES["picker"] - pickers_before == 1


def test_an_erase_naming_nobody_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path / "n.db", box_id="b") as store, pytest.raises(ChangeError):
        store.run(lambda tx: apply_changes(tx, [{"type": "erase", "data": {}}]))


def test_shipments_cartons_jobs_pickers_and_alerts_are_purged_by_uptime(tmp_path: Path) -> None:
    a, b = _sscc("37612345000000001"), _sscc("37612345000000002")
    with Store.open(tmp_path / "r.db", box_id="b") as store:

        def seed(tx: Transaction) -> None:
            _packed(tx, "O1", "T1", a, "AB1 2CD")
            _packed(tx, "O2", "T2", b, "ZZ9 9ZZ")
            labels.make_job(tx, ["O1"], "printer", sender="box", now=0)
            labels.make_job(tx, ["O2"], "printer", sender="box", now=0)
            tx.execute(
                "INSERT INTO shipments (shipment, order_ref, confirmed_ms) VALUES ('S1', 'O1', 0)"
            )
            tx.execute("UPDATE cartons SET state = 'shipped', shipment = 'S1' WHERE sscc = ?", (a,))
            for pid, active in (("gone", 0), ("here", 1), ("touring", 0)):
                tx.execute(
                    "INSERT INTO pickers (id, name, badge, role, active) "
                    "VALUES (?, ?, ?, 'picker', ?)",
                    (pid, pid, f"B-{pid}", active),
                )
            tx.execute(
                "INSERT INTO tours (picker, state, started_ms) VALUES ('touring', 'active', 0)"
            )
            tx.execute(
                "INSERT INTO alerts (kind, severity, subject, detail, raised_ms, cleared_ms) "
                "VALUES ('x', 'warn', 'cleared', x'80', 0, 5), "
                "('y', 'warn', 'open', x'80', 0, NULL)"
            )

        store.run(seed)
        m = Maintenance(
            store,
            interval_s=60,
            warn_backlog=100,
            shipments_days=30,
            pickers_days=90,
            alerts_days=10,
        )
        with store.transaction() as tx:
            counts = m.purge(tx, 0)  # stamps; nothing goes
        assert counts["shipments"] == counts["print_jobs"] == counts["pickers"] == 0
        with store.transaction() as tx:
            assert m.purge(tx, 10 * DAY)["alerts"] == 1
        assert store.query("SELECT subject FROM alerts") == [{"subject": "open"}]
        with store.transaction() as tx:
            counts = m.purge(tx, 30 * DAY)
        assert (counts["shipments"], counts["cartons"], counts["print_jobs"]) == (1, 1, 1)
        # O2's carton (never shipped, its task still here) and its job stay
        assert store.query("SELECT sscc FROM cartons") == [{"sscc": b}]
        assert store.query("SELECT cartons FROM print_jobs") == [{"cartons": b}]
        with store.transaction() as tx:
            assert m.purge(tx, 90 * DAY)["pickers"] == 1
        # active, or inactive on an active tour: kept
        assert store.query("SELECT id FROM pickers ORDER BY 1") == [
            {"id": "here"},
            {"id": "touring"},
        ]
        # A picker active again loses its stamp.
        store.run(
            lambda tx: apply_changes(
                tx,
                [{"type": "picker", "data": {"id": "touring", "badge": "B-t", "active": True}}],
            )
        )
        assert store.query("SELECT purge_at_up FROM pickers WHERE id = 'touring'") == [
            {"purge_at_up": None}
        ]
