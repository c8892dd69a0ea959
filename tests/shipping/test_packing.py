"""Pack stations (issue 10): totes in, cartons out, one ``shipment_confirmed``
per order; every refusal a clear answer that changes nothing.

A real store with the seeded zone; picked orders are written as the picking
workflow leaves them (tasks done, lines picked), the SSCCs come from the real
allocator behind a real sync mark, labels go to a printer port that records
them or fails on command (the printer itself is proven in tests/devices).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from edge.config import ShippingConfig
from edge.shipping import sscc
from edge.shipping.labels import PrintError
from edge.shipping.service import PackingService, Station
from edge.store import Store, Transaction
from edge.store.db import now_ms
from edge.store.syncmark import SyncMark
from tests.support.api_fixtures import GTIN_A, GTIN_C, GTIN_E, seed_zone

PREFIX = "7612345"


@pytest.fixture
def zone(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "box.db", box_id="box-1") as store:
        seed_zone(store)
        SyncMark(store).reconcile()
        store.run(lambda tx: sscc.configure(tx, ShippingConfig(gs1_prefix=PREFIX, sscc_last=50)))
        yield store


def picked(store: Store, task: str, order: str | None, lines: dict[str, int], **kw: Any) -> None:
    """A task as picking leaves it: done, its lines picked."""

    def fn(tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO tasks (task, order_ref, tote, state, ship_postcode, ship_region, "
            "carrier, received_ms, finished_ms) VALUES (?, ?, ?, ?, '8001', 'ZH', ?, ?, ?)",
            (
                task,
                order,
                kw.get("tote"),
                kw.get("state", "done"),
                kw.get("carrier"),
                now_ms(),
                now_ms(),
            ),
        )
        for n, (sku, qty) in enumerate(lines.items(), start=1):
            tx.execute(
                "INSERT INTO task_lines (task, line, sku, qty, picked, state) "
                "VALUES (?, ?, ?, ?, ?, 'picked')",
                (task, str(n), sku, qty, qty if kw.get("state", "done") == "done" else 0),
            )

    store.run(fn)


class Printers:
    """Records jobs; fails with ``fault`` while it is set."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, bytes]] = []
        self.fault: str | None = None

    async def send(self, printer: str, job: bytes) -> None:
        if self.fault is not None:
            raise PrintError(self.fault)
        self.jobs.append((printer, job))


def service(store: Store, printers: Printers | None, **kw: Any) -> PackingService:
    return PackingService(
        store,
        allocate=sscc.allocate,
        printers=printers,
        stations={"P1": Station("P1", printer="ZT1" if printers else None), "P2": Station("P2")},
        box_id="box-1",
        door_of={"DHL": "D2"},
        default_door="D1",
        **kw,
    )


def events(store: Store, type_: str) -> list[dict[str, Any]]:
    return [
        msgpack.unpackb(r["payload"])
        for r in store.query("SELECT type, payload FROM outbox ORDER BY seq")
        if r["type"] == type_
    ]


def snapshot(store: Store) -> list[Any]:
    return [
        store.query(f"SELECT * FROM {t}")
        for t in ("pack_stations", "cartons", "carton_lines", "shipments", "outbox", "sscc_range")
    ]


class Station_:
    def __init__(self, svc: PackingService, station: str = "P1") -> None:
        self.svc, self.station, self.n = svc, station, 0

    async def scan(self, code: str) -> dict[str, Any]:
        self.n += 1
        outcome = await self.svc.scan(
            self.station, code, packer="P1", scan_id=f"{self.station}-{self.n}"
        )
        return outcome.json()


async def test_an_order_is_packed_into_cartons_labelled_and_shipped_once(zone: Store) -> None:
    picked(zone, "T-1", "O-1", {"SKU-A": 2}, tote="TOTE-1", carrier="DHL")
    picked(zone, "T-2", "O-1", {"SKU-C": 1})
    printers = Printers()
    st = Station_(service(zone, printers))
    opened = await st.scan("TOTE-1")
    assert (opened["result"], opened["feedback"]) == ("order_opened", "success")
    lines = opened["station"]["order"]["lines"]
    assert [(x["sku"], x["picked"], x["left"]) for x in lines] == [("SKU-A", 2, 2), ("SKU-C", 1, 1)]
    assert (await st.scan(GTIN_A))["result"] == "unit_packed"
    closed = await st.scan("CLOSE")
    assert closed["result"] == "carton_closed", closed
    assert not events(zone, "shipment_confirmed")  # units left
    assert (await st.scan(GTIN_A))["result"] == "unit_packed"
    assert (await st.scan(GTIN_C))["result"] == "unit_packed"
    done = await st.scan("CLOSE")
    assert (done["result"], done["printed"]) == ("shipped", True), done
    (shipment,) = events(zone, "shipment_confirmed")
    cartons = zone.query("SELECT sscc, state, door, printed_ms FROM cartons ORDER BY carton")
    ssccs = [c["sscc"] for c in cartons]
    assert all(sscc.is_valid(s) and s[1:8] == PREFIX for s in ssccs)
    assert len(set(ssccs)) == 2
    assert {(c["state"], c["door"]) for c in cartons} == {("shipped", "D2")}  # DHL's door
    assert shipment["orders"] == ["O-1"] and shipment["by"] == "P1"
    assert [(c["sscc"], c["lines"]) for c in shipment["cartons"]] == [
        (ssccs[0], [{"sku": "SKU-A", "qty": 1}]),
        (ssccs[1], [{"sku": "SKU-A", "qty": 1}, {"sku": "SKU-C", "qty": 1}]),
    ]
    # the answer carries what it shipped (the station is free again)
    (done_order,) = done["shipped"]
    assert done["station"]["order"] is None and done_order["order"] == "O-1"
    assert [c["sscc"] for c in done_order["cartons"]] == ssccs
    # one job with both labels, "n of m" known
    ((printer, job),) = printers.jobs
    assert printer == "ZT1" and job.count(b"^XA") == 2
    assert all(s.encode() in job for s in ssccs)
    # the station is free; the order cannot be packed again
    again = await st.scan("TOTE-1")
    assert (again["result"], again["feedback"]) == ("order_shipped", "error")
    assert len(events(zone, "shipment_confirmed")) == 1


async def test_refusals_answer_clearly_and_change_nothing(zone: Store) -> None:
    picked(zone, "T-1", "O-1", {"SKU-A": 1}, tote="TOTE-1")
    picked(zone, "T-2", "O-2", {"SKU-C": 2}, tote="TOTE-2")
    picked(zone, "T-3", "O-3", {"SKU-A": 1}, tote="TOTE-3", state="started")
    st = Station_(service(zone, Printers()))
    before = snapshot(zone)
    for code, result in [
        (GTIN_A, "no_order"),  # a unit before any tote
        ("CLOSE", "no_order"),
        ("NO-SUCH-TOTE", "unknown_code"),
        ("TOTE-3", "order_not_picked"),  # still being picked
    ]:
        answer = await st.scan(code)
        assert (answer["result"], answer["feedback"]) == (result, "error"), (code, answer)
    assert snapshot(zone) == before
    await st.scan("TOTE-1")
    before = snapshot(zone)
    for code, result in [
        (GTIN_C, "wrong_order"),  # SKU-C is O-2's
        (GTIN_E, "not_in_order"),
        ("CLOSE", "carton_empty"),
    ]:
        answer = await st.scan(code)
        assert (answer["result"], answer["feedback"]) == (result, "error"), (code, answer)
        if result == "wrong_order":
            assert "O-2" in answer["message"]
    assert snapshot(zone) == before
    assert (await st.scan(GTIN_A))["result"] == "unit_packed"
    before = snapshot(zone)
    assert (await st.scan(GTIN_A))["result"] == "all_packed"
    # another order while this one has packed units; another station takes O-1
    assert (await st.scan("TOTE-2"))["result"] == "station_busy"
    assert (await Station_(st.svc, "P2").scan("TOTE-1"))["result"] == "order_elsewhere"
    assert (await st.scan("RELEASE"))["result"] == "station_busy"
    assert snapshot(zone) == before


async def test_a_retried_scan_id_gets_its_answer_and_packs_nothing_more(zone: Store) -> None:
    picked(zone, "T-1", "O-1", {"SKU-A": 3}, tote="TOTE-1")
    svc = service(zone, Printers())
    await svc.scan("P1", "TOTE-1", packer="P1", scan_id="s-1")
    first = await svc.scan("P1", GTIN_A, packer="P1", scan_id="s-2")
    again = await svc.scan("P1", GTIN_A, packer="P1", scan_id="s-2")
    assert again.replayed and again.body == first.body
    assert zone.query("SELECT qty FROM carton_lines") == [{"qty": 1}]
    # a fixed scanner's message redelivered (same device key) packs once too
    one = await svc.scan("P1", GTIN_A, packer="P1", message=("scanner-1", "mqtt:7:ab:0"))
    two = await svc.scan("P1", GTIN_A, packer="P1", message=("scanner-1", "mqtt:7:ab:0"))
    assert not one.replayed and two.replayed
    assert zone.query("SELECT qty FROM carton_lines") == [{"qty": 2}]


async def test_nothing_ships_until_its_labels_printed_and_a_reprint_ships_it(zone: Store) -> None:
    picked(zone, "T-1", "O-1", {"SKU-A": 1}, tote="TOTE-1")
    printers = Printers()
    st = Station_(service(zone, printers))
    await st.scan("TOTE-1")
    await st.scan(GTIN_A)
    printers.fault = "paper out"
    st.svc.printer_state = {"ZT1": "paper out"}.get  # as the driver's ~HS poll reports it
    answer = await st.scan("CLOSE")
    assert (answer["result"], answer["printed"]) == ("order_packed", False), answer
    assert answer["station"]["printer_state"] == "paper out"
    assert "paper out" in answer["message"] and "REPRINT" in answer["message"]
    assert not events(zone, "shipment_confirmed")
    assert zone.query("SELECT state, error FROM print_jobs") == [
        {"state": "failed", "error": "paper out"}
    ]
    (carton,) = zone.query("SELECT sscc, state FROM cartons")
    assert carton["state"] == "closed"  # closed with its SSCC, not shipped
    printers.fault = None
    shipped = await st.scan("REPRINT")
    assert (shipped["result"], shipped["printed"]) == ("shipped", True), shipped
    (event,) = events(zone, "shipment_confirmed")
    assert event["cartons"][0]["sscc"] == carton["sscc"]  # the same SSCC, never a new one
    assert [r["state"] for r in zone.query("SELECT state FROM print_jobs")] == ["failed", "printed"]


async def test_without_required_labels_the_last_close_ships_at_once(zone: Store) -> None:
    picked(zone, "T-1", None, {"SKU-A": 1}, tote="TOTE-9")  # a task without an order
    st = Station_(service(zone, None, label_required=False))
    await st.scan("TOTE-9")
    await st.scan(GTIN_A)
    answer = await st.scan("CLOSE")
    assert answer["result"] == "shipped", answer
    (event,) = events(zone, "shipment_confirmed")
    assert event["orders"] == ["T-1"]
    assert zone.query("SELECT door FROM shipments") == [{"door": "D1"}]


async def test_an_exhausted_range_refuses_to_close_and_changes_nothing(zone: Store) -> None:
    zone.run(lambda tx: tx.execute("UPDATE sscc_range SET next_serial = last_serial + 1"))
    picked(zone, "T-1", "O-1", {"SKU-A": 1}, tote="TOTE-1")
    st = Station_(service(zone, Printers()))
    await st.scan("TOTE-1")
    await st.scan(GTIN_A)
    before = snapshot(zone)
    answer = await st.scan("CLOSE")
    assert (answer["result"], answer["feedback"]) == ("sscc_exhausted", "error"), answer
    assert snapshot(zone) == before


def on_one_cart(store: Store, *tasks: str) -> None:
    """The tasks were picked on one tour (one cart)."""

    def fn(tx: Transaction) -> None:
        (tour,) = tx.execute(
            "INSERT INTO tours (picker, state, started_ms) VALUES ('P1', 'done', ?) RETURNING tour",
            (now_ms(),),
        ).fetchone()
        for stop, task in enumerate(tasks, start=1):
            tx.execute(
                "INSERT INTO tour_stops (tour, stop, task, line, sku, location, qty, picked, "
                "state) VALUES (?, ?, ?, '1', 'SKU-A', 'A-01-05', 1, 1, 'done')",
                (tour, stop, task),
            )

    store.run(fn)


async def test_a_carts_orders_print_their_labels_in_one_job(zone: Store) -> None:
    picked(zone, "T-1", "O-1", {"SKU-A": 1}, tote="TOTE-1")
    picked(zone, "T-2", "O-2", {"SKU-C": 2}, tote="TOTE-2")
    picked(zone, "T-3", "O-3", {"SKU-A": 1}, tote="TOTE-3")
    picked(zone, "T-4", "O-4", {}, tote="TOTE-4")  # all short: nothing to ship
    on_one_cart(zone, "T-1", "T-2", "T-4")
    printers = Printers()
    st = Station_(service(zone, printers))
    await st.scan("TOTE-1")
    await st.scan(GTIN_A)
    first = await st.scan("CLOSE")
    assert first["result"] == "order_packed" and "O-2" in first["message"], first
    assert printers.jobs == [] and not events(zone, "shipment_confirmed")
    # the station moves on to the cart's next order (the first one is fully packed)
    assert (await st.scan("TOTE-2"))["result"] == "order_opened"
    await st.scan(GTIN_C)
    await st.scan(GTIN_C)
    last = await st.scan("CLOSE")
    assert (last["result"], last["printed"]) == ("shipped", True), last
    ((_, job),) = printers.jobs  # one job: both orders' labels
    assert job.count(b"^XA") == 2 and b"ORDER O-1" in job and b"ORDER O-2" in job
    assert sorted(e["orders"][0] for e in events(zone, "shipment_confirmed")) == ["O-1", "O-2"]
    # an order of no cart prints on its own
    await st.scan("TOTE-3")
    await st.scan(GTIN_A)
    assert (await st.scan("CLOSE"))["result"] == "shipped"
    assert len(printers.jobs) == 2


async def test_reprint_prints_a_carts_packed_orders_now(zone: Store) -> None:
    picked(zone, "T-1", "O-1", {"SKU-A": 1}, tote="TOTE-1")
    picked(zone, "T-2", "O-2", {"SKU-C": 1}, tote="TOTE-2")
    on_one_cart(zone, "T-1", "T-2")
    printers = Printers()
    st = Station_(service(zone, printers))
    await st.scan("TOTE-1")
    await st.scan(GTIN_A)
    assert (await st.scan("CLOSE"))["result"] == "order_packed"
    # O-2 cannot be packed now: the packer prints what is packed
    answer = await st.scan("REPRINT")
    assert (answer["result"], answer["printed"]) == ("shipped", True), answer
    assert [e["orders"] for e in events(zone, "shipment_confirmed")] == [["O-1"]]


async def test_a_task_the_label_cannot_show_as_sent_still_ships(zone: Store) -> None:
    """The cloud's data is cleaned for the label (a 43-character region, a
    postcode with a slash, control characters): the CLOSE ships, the label
    shows what it can; it never raises (a fixed scanner's message would be
    redelivered for ever)."""
    picked(zone, "T-1", "O-1", {"SKU-A": 1}, tote="TOTE-1")
    zone.run(
        lambda tx: tx.execute(
            "UPDATE tasks SET ship_region = ?, ship_postcode = '1010/Wien' WHERE task = 'T-1'",
            ("Provincia Autonoma di Bolzano - Alto Adige\x07",),
        )
    )
    printers = Printers()
    st = Station_(service(zone, printers))
    await st.scan("TOTE-1")
    await st.scan(GTIN_A)
    answer = await st.scan("CLOSE")
    assert answer["result"] == "shipped", answer
    ((_, job),) = printers.jobs
    assert b"1010Wien" in job and "Provincia Autonoma di Bolzano - Alto Ad…".encode() in job
    assert b"\x07" not in job


async def test_a_reprint_supersedes_a_job_that_never_reached_the_printer(zone: Store) -> None:
    picked(zone, "T-1", "O-1", {"SKU-A": 1}, tote="TOTE-1")
    printers = Printers()
    st = Station_(service(zone, printers))
    await st.scan("TOTE-1")
    await st.scan(GTIN_A)
    printers.fault = "paper out"
    await st.scan("CLOSE")
    # as a crash between the commit and the printer leaves it
    zone.run(lambda tx: tx.execute("UPDATE print_jobs SET state = 'queued', error = NULL"))
    printers.fault = None
    assert (await st.scan("REPRINT"))["result"] == "shipped"
    jobs = zone.query("SELECT state, error FROM print_jobs ORDER BY job")
    assert jobs == [
        {"state": "failed", "error": "superseded by a reprint"},
        {"state": "printed", "error": None},
    ]
