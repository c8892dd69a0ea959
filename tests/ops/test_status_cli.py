"""``pickedge status`` (issue 13): the dashboard's figures in a terminal, read
from the database read-only, on a store with known data from a real run.

A picker picks O-1 (2 × SKU-A, 1 × SKU-C) through the PDA API; another is
under way on O-2; the maintenance tick's flush has stored the hour's scans;
the devices table holds an online scanner; a ``disk_low`` alert is open and
acknowledged. The text names each of them; ``--json`` is the dashboard's
snapshot (this hour: the scans flushed, 4 units). A database without the
dashboard's schema is refused with one line and exit 2.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from edge.api.app import SCAN_HOURS
from edge.cli import cli
from edge.ops import hours
from edge.store.db import Transaction, now_ms
from edge.store.outbox import raise_alert
from tests.support.api_fixtures import Zone, add_task, item_code, pick_all, walk, write_config


async def floor(zone: Zone) -> int:
    """The real run; returns the scans answered."""
    add_task(zone.store, "T-1", [("SKU-A", 2), ("SKU-C", 1)], order="O-1")
    add_task(zone.store, "T-2", [("SKU-D", 1), ("SKU-B", 1)], order="O-2")
    p1 = await zone.picker("BADGE-1")
    started = await p1.scan("O-1")
    assert (await pick_all(p1, started["tour"]))["result"] == "tour_done"
    p2 = await zone.picker("BADGE-2")
    other = await p2.scan("O-2")
    first = walk(other["tour"])[0]
    await p2.scan(first["location"])
    await p2.scan(item_code(first))
    await zone.server.app[SCAN_HOURS].flush(zone.store)
    now = now_ms()

    def fn(tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO devices (id, driver, role, state, state_since_ms) "
            "VALUES ('scan-1', 'newland-serial', 'pack_station', 'connected', ?)",
            (now - 600_000,),
        )
        raise_alert(tx, "disk_low", "crit", "4 % of the disk free", {"free": 0.04})
        tx.execute(
            "UPDATE alerts SET acked_by = 'S1', acked_ms = ? WHERE kind = 'disk_low'", (now,)
        )

    zone.store.run(fn)
    return 6 + 3  # O-1: the order, 2 locations, 3 units; O-2: the order, a location, a unit


async def test_status_prints_the_dashboards_figures(zone: Zone) -> None:
    scans = await floor(zone)
    config = str(zone.cfg.path)
    runner = CliRunner()

    result = runner.invoke(cli, ["status", "--config", config, "--json"])
    assert result.exit_code == 0, result.output
    snap = json.loads(result.output)
    last = snap["hours"][-1]
    assert last["hour_ms"] == hours.hour_of(snap["at_ms"])
    assert (last["scans"], last["picks"], last["units"]) == (scans, 4, 4)
    assert last["scan_p99_ms"] is not None
    assert [(d["id"], d["state"]) for d in snap["devices"]] == [("scan-1", "online")]
    assert [(a["kind"], a["acked_by"]) for a in snap["alerts"]] == [("disk_low", "S1")]
    assert [t["picker"]["id"] for t in snap["tours"]] == ["P2"]
    assert snap["sync"]["state"] == "never_synced"
    assert snap["exceptions"]["1d"]["tasks"] == 1

    result = runner.invoke(cli, ["status", "--config", config], terminal_width=160)
    assert result.exit_code == 0, result.output
    text = result.output
    for expected in (
        "PickEdge box-test",
        "scan-1",
        "online",
        "(10 min)",
        "never synced",
        "exception rate",
        "0.0 % of 1 tasks",
        "disk_low",
        "S1",
        "Per (P2)",
        "Tours in progress (1)",
    ):
        assert expected in text, (expected, text)
    hour_row = next(line for line in text.splitlines() if f" {scans} " in line and "█" in line)
    assert " 4 " in hour_row, hour_row


def test_status_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    conn = sqlite3.connect(tmp_path / "box.db")
    conn.execute("CREATE TABLE box (id INTEGER PRIMARY KEY, box_id TEXT, epoch TEXT, next_seq INT)")
    conn.execute("INSERT INTO box VALUES (1, 'box-test', 'e1', 1)")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(cli, ["status", "--config", str(config)])
    assert result.exit_code == 2
    assert "error:" in result.output
