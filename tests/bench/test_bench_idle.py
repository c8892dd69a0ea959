"""``bench/idle.py --quick`` still runs end to end and prints its figures (a
smoke test: the figures are the benchmark's business, no limits here)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.support.processes import ProcessReaper

ROOT = Path(__file__).resolve().parents[2]


async def test_the_idle_benchmark_prints_its_figures(processes: ProcessReaper) -> None:
    proc = await processes.exec(
        sys.executable,
        str(ROOT / "bench" / "idle.py"),
        *("--quick", "--seconds", "2", "--settle", "0.5", "--pdas", "3", "--json"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()
    results = {r["scenario"]: r for r in json.loads(out)["results"]}
    assert set(results) == {"idle", "carts", "floor"}
    for name, r in results.items():
        assert r["daemon_rss_mb"] > 5 and r["total_pss_mb"] > 5, (name, r)
        assert r["daemon_cpu_pct"] >= 0 and r["threads"] >= 1, (name, r)
        assert r["notes"] == [], (name, r["notes"])  # the daemon logged no error
    assert results["idle"]["children_rss_mb"] == {}  # no carts: no worker processes
    assert {"cart searcher", "cart worker"} <= set(results["carts"]["children_rss_mb"])


async def test_the_table_compares_with_the_goal(processes: ProcessReaper) -> None:
    proc = await processes.exec(
        sys.executable,
        str(ROOT / "bench" / "idle.py"),
        *("--quick", "--only", "idle", "--seconds", "1", "--settle", "0"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "daemon RSS" in text and "idle, no devices:" in text
    assert "goal (<= 50 MB, < 0.5 %)" in text and "68.6 MB" in text and "61.5 MB" in text
