"""``pickedge demo`` as a newcomer runs it: every part simulated, end to end,
and its own check that the cloud's account equals the box's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end_and_balances(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "demo",
            "--pickers",
            "2",
            "--tours",
            "2",
            "--pace",
            "0",
            "--dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "daemon up" in out
    assert "tour_done" not in out  # narrated in words, not codes
    assert "tour done" in out
    assert "wrong_location" in out  # the scripted error scan was refused
    assert "short at" in out
    assert "RFID tag entered the portal: urn:epc:id:sgtin:0614141.812345.6789" in out
    # the shipping half: packed at the station, labels printed, cartons out
    assert "✗ wrong_order" in out  # a unit of another order, refused and named
    assert "labels printed, shipment confirmed" in out
    assert "printed " in out and "carton labels (GS1-128, SSCC)" in out
    assert "RFID tag entered the portal: urn:epc:id:sscc:7612345." in out
    assert "alert: a shipment's carton did not leave in the window" in out
    assert "its alert cleared" in out
    for check in (
        "one task_picked per picked task",
        "one shipment_confirmed per packed",
        "the SSCCs confirmed are the SSCCs",
        "one carton_departed per carton",
        "held-back carton and stray carton",
    ):
        line = next(x for x in out.splitlines() if check in x)
        assert "yes" in line, line
    line = next(x for x in out.splitlines() if "cloud net stock = box ledger" in x)
    assert "yes" in line
    synced = next(x for x in out.splitlines() if "events synced exactly once" in x)
    left, right = synced.split("│")[2].strip().split(" = ")
    assert left == right and int(left) > 0
    # the broker ran with our config only: no anonymous access
    conf = (tmp_path / "demo" / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf
