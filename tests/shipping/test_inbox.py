"""Device events into the workflows of their places (edge/shipping/inbox.py):
pack station scans once per message, dock reads judged at the reader's time,
devices without a place only counted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from devices.codes.epc import encode_sscc96
from devices.driver import DeviceSpec
from devices.events import DeviceRole, PresenceKind, ScanEvent, TagPresenceEvent
from edge.config import ShippingConfig
from edge.shipping import sscc
from edge.shipping.inbox import READER_CLOCK_SLACK_MS, FloorInbox, read_time_ms
from edge.shipping.service import PackingService, Station
from edge.store import Store
from edge.store.syncmark import SyncMark
from tests.shipping.test_dock import PREFIX, ship
from tests.shipping.test_dock import sscc as make_sscc
from tests.shipping.test_packing import picked
from tests.support.api_fixtures import GTIN_A, seed_zone

SPECS = (
    DeviceSpec(id="scan-p1", driver="mqtt-scanner", role=DeviceRole.PACK_STATION, bound_to="P1"),
    DeviceSpec(id="portal-d1", driver="impinj-iot", role=DeviceRole.DOCK_DOOR, bound_to="D1"),
    DeviceSpec(id="loose", driver="mqtt-scanner", role=DeviceRole.PACK_STATION),
)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[Store, FloorInbox]]:
    with Store.open(tmp_path / "box.db", box_id="box-1") as store:
        seed_zone(store)
        SyncMark(store).reconcile()
        store.run(lambda tx: sscc.configure(tx, ShippingConfig(gs1_prefix="7612345")))
        packing = PackingService(
            store,
            allocate=sscc.allocate,
            printers=None,
            stations={"P1": Station("P1")},
            box_id="box-1",
            label_required=False,
        )
        yield store, FloorInbox(store, SPECS, packing=packing, departure_window_s=120)


def outbox(store: Store, type_: str) -> list[dict[str, Any]]:
    rows = store.query("SELECT type, payload FROM outbox ORDER BY seq")
    return [msgpack.unpackb(r["payload"]) for r in rows if r["type"] == type_]


def scan(code: str, key: str | None, device: str = "scan-p1") -> ScanEvent:
    return ScanEvent(device_id=device, code=code, symbology=None, received_at=0.0, key=key)


def seen(code: str, at: float | None) -> TagPresenceEvent:
    epc = encode_sscc96(code, company_prefix_digits=len(PREFIX))
    return TagPresenceEvent(
        device_id="portal-d1", epc_hex=epc, kind=PresenceKind.SEEN, antenna=None, at=at
    )


async def test_a_redelivered_pack_message_packs_once(box: tuple[Store, FloorInbox]) -> None:
    store, inbox = box
    picked(store, "T-1", "O-1", {"SKU-A": 2}, tote="TOTE-1")
    await inbox(scan("TOTE-1", "mqtt:1:aa:0"))
    await inbox(scan(GTIN_A, "mqtt:2:bb:0"))
    await inbox(scan(GTIN_A, "mqtt:2:bb:0"))  # the broker sends it again after a crash
    assert store.query("SELECT qty FROM carton_lines") == [{"qty": 1}]
    assert inbox.counts["redelivered_scan"] == 1
    await inbox(scan(GTIN_A, "mqtt:3:bb:0"))  # the same barcode scanned again: a new message
    await inbox(scan("CLOSE", None))  # a serial scanner: no key, never redelivered
    assert store.query("SELECT qty FROM carton_lines") == [{"qty": 2}]
    (shipment,) = outbox(store, "shipment_confirmed")
    assert shipment["orders"] == ["O-1"] and shipment["by"] == "device:scan-p1"


async def test_a_scanner_without_a_place_changes_nothing(box: tuple[Store, FloorInbox]) -> None:
    store, inbox = box
    picked(store, "T-1", "O-1", {"SKU-A": 1}, tote="TOTE-1")
    await inbox(scan("TOTE-1", None, device="loose"))
    assert store.query("SELECT * FROM pack_stations") == []
    assert inbox.counts["ScanEvent"] == 1 and len(inbox.recent["loose"]) == 1


async def test_a_read_redelivered_after_an_outage_is_judged_when_it_happened(
    box: tuple[Store, FloorInbox],
) -> None:
    store, inbox = box
    a, b = make_sscc(1), make_sscc(2)
    ship(store, "S1", "D1", a, b)
    read_at = time.time() - 600  # ten minutes ago, far past the 120 s window
    await inbox(seen(a, read_at))
    await inbox(seen(a, read_at))  # the same read, redelivered now
    assert [e["sscc"] for e in outbox(store, "carton_departed")] == [a]
    assert outbox(store, "alert") == []  # not "already departed"
    assert inbox.outcomes["departed"] == 1 and inbox.outcomes["duplicate"] == 1
    departed = store.query("SELECT departed_ms FROM cartons WHERE sscc = ?", (a,))
    assert departed == [{"departed_ms": int(read_at * 1000)}]
    # undecodable tags are counted and change nothing
    await inbox(
        TagPresenceEvent(
            device_id="portal-d1", epc_hex="ZZ", kind=PresenceKind.SEEN, antenna=1, at=None
        )
    )
    assert inbox.outcomes["undecodable_tag"] == 1


def test_a_reader_clock_is_believed_only_near_the_box_clock() -> None:
    now = 1_800_000_000_000
    assert read_time_ms(None, now) == now
    assert read_time_ms((now - 5_000) / 1000, now) == now - 5_000
    assert read_time_ms((now - READER_CLOCK_SLACK_MS - 1) / 1000, now) == now  # a reader in 1970
    assert read_time_ms((now + READER_CLOCK_SLACK_MS + 1) / 1000, now) == now
