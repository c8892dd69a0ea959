"""The dashboard's API (issue 13): ``GET /api/v1/dashboard``, the open alerts
and their acknowledgement, over a real server and real floor work.

A picker picks a tour of two lines (3 units) through the API and another
picks one unit of a second tour; the overview's latest hour then shows the 4
pick confirmations and 4 units, every scan with an answer
time (p99 not null), the walking saved, and the exception rate; a second
picker's tour in progress is on the map with its remaining stops and where
the picker last took something. A flush (the maintenance tick's) moves the
figures to ``floor_hours`` without counting a pick twice; the purge keeps 48
hours behind the newest row. An alert is listed, acknowledged once (who and
when stay), stays open, and a cleared one refuses an acknowledgement. A
picker gets 403, nobody 401.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from edge.api.app import SCAN_HOURS
from edge.ops import hours, overview
from edge.store.db import Transaction, now_ms
from edge.store.outbox import clear_alerts, raise_alert
from tests.support.api_fixtures import Zone, add_task, item_code, pick_all, walk

ROUTES = (
    ("GET", "/api/v1/dashboard"),
    ("GET", "/api/v1/supervisor/alerts"),
    ("POST", "/api/v1/supervisor/alerts/1/ack"),
)


async def test_nobody_gets_401_and_a_picker_403(zone: Zone) -> None:
    anonymous = zone.pda()
    picker = await zone.picker("BADGE-1")
    for method, path in ROUTES:
        status, body = await anonymous.call(method, path)
        assert (status, body["error"]["code"]) == (401, "unauthorized"), path
        status, body = await picker.call(method, path)
        assert (status, body["error"]["code"]) == (403, "forbidden"), path


async def dashboard(zone: Zone) -> dict[str, Any]:
    supervisor = await zone.picker("BADGE-S")
    status, body = await supervisor.call("GET", "/api/v1/dashboard")
    assert status == 200, body
    return body


async def test_the_overview_of_a_real_run(zone: Zone) -> None:
    add_task(zone.store, "T-1", [("SKU-A", 2), ("SKU-C", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 1), ("SKU-B", 1)], order="O-2")
    p1 = await zone.picker("BADGE-1")
    answer = await p1.scan("O-1")
    assert answer["result"] == "tour_started"
    done = await pick_all(p1, answer["tour"])
    assert done["result"] == "tour_done"
    scans = 1 + 2 + 3  # the order, two locations, three units
    # P2 takes the first stop of O-2 and walks on
    p2 = await zone.picker("BADGE-2")
    started = await p2.scan("O-2")
    first = walk(started["tour"])[0]
    await p2.scan(first["location"])
    await p2.scan(item_code(first))
    scans += 3

    body = await dashboard(zone)
    assert body["box"] == "box-test"
    last = body["hours"][-1]
    assert len(body["hours"]) == 24 and last["hour_ms"] == hours.hour_of(body["at_ms"])
    # one pick_confirmed per unit scanned: 3 of O-1, 1 of O-2
    assert (last["picks"], last["units"], last["scans"]) == (4, 4, scans)
    assert last["scan_p99_ms"] is not None and last["scan_p99_ms"] > 0
    assert all(h["scans"] == 0 for h in body["hours"][:-1])
    assert body["walking"]["1d"]["units"] == 3
    assert body["walking"]["1d"]["planned_m"] > 0
    assert body["exceptions"]["1d"] == {"tasks": 1, "exceptions": 0, "ratio": 0.0}
    assert body["accuracy"]["1d"]["ratio"] is None
    assert body["sync"]["state"] == "never_synced" and body["sync"]["backlog"] > 0
    assert body["devices"] == []
    (tour,) = body["tours"]
    assert tour["picker"] == {"id": "P2", "name": "Per"}
    assert tour["at"]["location"] == first["location"]
    assert [s["location"] for s in tour["remaining"]] == [
        s["location"] for s in walk(started["tour"])[1:]
    ]
    for point in [tour["at"], *tour["remaining"]]:
        assert point["x"] is not None and point["y"] is not None

    # the maintenance tick's flush: the same figures, nothing counted twice
    await zone.server.app[SCAN_HOURS].flush(zone.store)
    stored = zone.store.query("SELECT hour_ms, scans, picks, units FROM floor_hours")
    assert [(r["scans"], r["picks"], r["units"]) for r in stored] == [(scans, 4, 4)]
    again = await dashboard(zone)
    assert again["hours"][-1] | {"scans": 0} == last | {"scans": 0}
    assert again["hours"][-1]["scans"] == scans  # the supervisor's login scanned nothing


async def test_devices_come_from_the_devices_table(zone: Zone) -> None:
    def fn(tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO devices (id, driver, role, state, last_seen_ms, state_since_ms) "
            "VALUES ('scan-1', 'honeywell', 'pack_station', 'connected', 5, 4), "
            "('portal-1', 'impinj', 'dock_door', 'disconnected', NULL, 7)"
        )

    zone.store.run(fn)
    body = await dashboard(zone)
    assert [(d["id"], d["state"], d["since_ms"]) for d in body["devices"]] == [
        ("portal-1", "offline", 7),
        ("scan-1", "online", 4),
    ]


def test_devices_from_the_supervisor_or_the_configuration() -> None:
    live = {
        "rfid-1": {"driver": "a0", "role": "dock_door", "available": False, "down_for_s": 2.5},
        "scan-1": {"driver": "x", "role": "pick", "available": True, "last_seen": 1.5},
    }

    empty = sqlite3.connect(":memory:")  # no devices rows
    empty.execute("CREATE TABLE devices (id TEXT, state TEXT)")
    got = overview.devices(empty, 10_000, live, ())
    assert [(d["id"], d["state"], d["since_ms"], d["last_seen_ms"]) for d in got] == [
        ("rfid-1", "offline", 7_500, None),
        ("scan-1", "online", None, 1500),
    ]
    configured = [overview.ConfiguredDevice("p-1", "zpl-printer", "pack_station")]
    (only,) = overview.devices(empty, 10_000, None, configured)
    assert (only["id"], only["state"]) == ("p-1", "unknown")


async def test_alerts_are_listed_and_acknowledged_once(zone: Zone) -> None:
    def fn(tx: Transaction) -> None:
        raise_alert(tx, "backlog_high", "warn", "120 events wait", {"backlog": 120})
        raise_alert(tx, "disk_low", "crit", "disk 4 % free", {"free": 0.04})

    zone.store.run(fn)
    supervisor = await zone.picker("BADGE-S")
    status, body = await supervisor.call("GET", "/api/v1/supervisor/alerts")
    assert status == 200
    assert [(a["kind"], a["severity"], a["acked_by"]) for a in body["alerts"]] == [
        ("disk_low", "crit", None),
        ("backlog_high", "warn", None),
    ]
    assert body["alerts"][1]["detail"] == {"backlog": 120}
    backlog = body["alerts"][1]["id"]

    before = now_ms()
    status, acked = await supervisor.call("POST", f"/api/v1/supervisor/alerts/{backlog}/ack")
    assert status == 200, acked
    assert acked["alert"]["acked_by"] == "S1" and acked["alert"]["acked_ms"] >= before
    status, twice = await supervisor.call("POST", f"/api/v1/supervisor/alerts/{backlog}/ack")
    assert (status, twice) == (200, acked)  # the first acknowledgement stays
    listed = (await dashboard(zone))["alerts"]
    assert [(a["kind"], a["acked_by"]) for a in listed] == [
        ("disk_low", None),
        ("backlog_high", "S1"),
    ]  # still open

    zone.store.run(lambda tx: clear_alerts(tx, ["backlog_high"]))
    status, body = await supervisor.call("POST", f"/api/v1/supervisor/alerts/{backlog}/ack")
    assert (status, body["error"]["code"]) == (409, "alert_cleared")
    status, body = await supervisor.call("POST", "/api/v1/supervisor/alerts/999/ack")
    assert (status, body["error"]["code"]) == (404, "unknown_alert")
    status, body = await supervisor.call("POST", "/api/v1/supervisor/alerts/x1/ack")
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert zone.store.query("SELECT COUNT(*) AS n FROM alerts WHERE acked_by IS NOT NULL") == [
        {"n": 1}
    ]


def test_hourly_rows_are_kept_48_hours_behind_the_newest(zone: Zone) -> None:
    newest = 1_000 * hours.HOUR_MS

    def fn(tx: Transaction) -> int:
        for back in (0, 24, 48, 49, 100):
            tx.execute(
                "INSERT INTO floor_hours (hour_ms, scans) VALUES (?, 1)",
                (newest - back * hours.HOUR_MS,),
            )
        return hours.purge(tx)

    assert zone.store.run(fn) == 2
    kept = zone.store.query("SELECT hour_ms FROM floor_hours ORDER BY hour_ms DESC")
    assert [(newest - r["hour_ms"]) // hours.HOUR_MS for r in kept] == [0, 24, 48]


def test_p99_is_the_bound_of_its_bucket() -> None:
    clock = [5 * hours.HOUR_MS + 10]
    scan_hours = hours.ScanHours(clock=lambda: clock[0])
    for _ in range(98):
        scan_hours.record(0.0015)  # 2 ms bucket
    scan_hours.record(0.040)  # 50 ms
    scan_hours.record(0.040)
    clock[0] += hours.HOUR_MS
    scan_hours.record(9.0)  # past the last bound
    first, second = sorted(scan_hours.pending().values(), key=lambda h: h.hour_ms)
    assert (first.scans, first.quantile_ms(0.5), first.quantile_ms(0.99)) == (100, 2.0, 50.0)
    assert (second.scans, second.quantile_ms(0.99)) == (1, None)
