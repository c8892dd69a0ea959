"""``bench/fleet.py`` in a small form still runs end to end and verifies exactly once.

10 boxes against 1 and then 2 receiver processes on a throwaway PostgreSQL (or
``PICKEDGE_TEST_PG``), 3 s each, one receiver killed -9 mid-run, every fault
injected often. The figures are the benchmark's business (no limits here):
this checks that PostgreSQL ends up holding every (box, epoch, seq) once with
the content sent, the net stock the boxes sent, and that the faults happened.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.support.processes import ProcessReaper

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ("answers", "heads", "exactly once", "content", "types", "net stock", "oms")


async def test_the_fleet_benchmark_verifies_exactly_once(processes: ProcessReaper) -> None:
    proc = await processes.exec(
        sys.executable,
        str(ROOT / "bench" / "fleet.py"),
        *("--boxes", "10", "--receivers", "1,2", "--seconds", "3", "--repeat", "1"),
        *("--warmup-s", "0.5", "--drain-s", "30"),
        *("--p-dup", "0.15", "--p-reorder", "0.15", "--p-lost", "0.15", "--p-twin", "0.15"),
        "--json",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    lines = text.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")], text
    for name in CHECKS:
        assert any(line.startswith(f"PASS {name} (") for line in lines), (name, text)
    runs = json.loads(lines[-1])
    assert [r["receivers"] for r in runs] == [1, 2]
    for run in runs:
        assert [c["name"] for c in run["checks"]] == list(CHECKS)
        assert all(c["ok"] for c in run["checks"]), run["checks"]
        assert run["events"] > 0 and run["steady_events_per_s"] > 0
        assert run["p99_ms"] >= run["p50_ms"] > 0
        assert run["tx_per_batch"] is not None and run["tx_per_batch"] >= 1
    assert runs[0]["restart_s"] is not None  # the only receiver was killed and restarted
    counts = runs[0]["counts"]
    for other in runs[1:]:
        for key, value in other["counts"].items():
            counts[key] = counts.get(key, 0) + value
    for fault in ("duplicate: 200", "reordered: 409 gap", "lost answer: applied, resent"):
        assert counts.get(fault, 0) > 0, (fault, counts)
    assert counts.get("twins: 200", 0) > 0, counts
