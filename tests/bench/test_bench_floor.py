"""``bench/floor.py --carts 3 --quick`` still runs end to end (a smoke test).

The benchmark's figures are the benchmark's business (no time limits here);
this checks that every mode picks what it starts, that its durability checks
hold, and that carts walk less per unit than one order per tour on S-shape.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.support.processes import ProcessReaper

ROOT = Path(__file__).resolve().parents[2]


async def test_the_cart_floor_benchmark_runs_every_mode(processes: ProcessReaper) -> None:
    proc = await processes.exec(
        sys.executable,
        str(ROOT / "bench" / "floor.py"),
        *("--carts", "3", "--quick", "--pdas", "3", "--json"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert set(result["runs"]) == {"single", "carts", "carts+batcher"}
    for mode, runs in result["runs"].items():
        (run,) = runs
        assert run["errors"] == [], (mode, run["errors"])
        assert run["starts"] == (3 if mode == "single" else 1) * 3
        assert run["durable"] and run["totes_ok"] and run["task_picked_ok"], (mode, run)
        walk = run["walk"]
        assert walk["orders"] == 9 and walk["routes_disagree"] == 0
        if mode != "single":
            assert walk["walk_m"] < walk["single_s_shape_m"]


async def test_the_surge_benchmark_runs_its_four_cells(processes: ProcessReaper) -> None:
    """``--surge``: the whole daemon at a normal and a 5x rate, peak protection
    off and on; only the protected surge enters peak mode and defers work."""
    proc = await processes.exec(
        sys.executable,
        str(ROOT / "bench" / "floor.py"),
        *("--surge", "--pdas", "3", "--rate-per-s", "15", "--repeat", "1"),
        *("--seconds", "5", "--settle-s", "2", "--json"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()
    runs = json.loads(out)["runs"]
    assert set(runs) == {"normal/off", "normal/on", "surge/off", "surge/on"}
    for cell, (run,) in runs.items():
        assert run["errors"] == [], (cell, run["errors"])
        assert run["scans_per_s"] > 0 and run["p99"] >= run["p50"] > 0
    assert runs["surge/on"][0]["entered"] == 1 and runs["surge/on"][0]["deferred"]
    assert runs["surge/off"][0]["entered"] == 0 and runs["normal/off"][0]["entered"] == 0
    assert runs["normal/on"][0]["entered"] == 0
    assert runs["surge/on"][0]["scans_per_s"] > 3 * runs["normal/on"][0]["scans_per_s"]
