"""SIGKILL a writer mid-transaction, again and again: the database stays sound,
every committed change has its events, no event lacks its change, seqs have no
gap, and everything the writer reported as committed is there."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from edge.store import Store
from tests.support.processes import ProcessReaper

CYCLES = 60


def _check(path: Path) -> tuple[int, set[int]]:
    with Store.open(path, box_id="kill-box") as store:
        assert store.integrity_check() == ["ok"]
        stock = {int(r["sku"][1:]): r["qty"] for r in store.query("SELECT sku, qty FROM stock")}
        events = store.query("SELECT seq, type, payload FROM outbox ORDER BY seq")
        next_seq = store.query("SELECT next_seq FROM box")[0]["next_seq"]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "a gap in the outbox"
    assert next_seq == len(seqs) + 1
    by_change: dict[int, list[str]] = {}
    for e in events:
        data = msgpack.unpackb(e["payload"])
        n = int(data["sku"][1:])
        by_change.setdefault(n, []).append(e["type"])
        assert n in stock, f"event {e['seq']} has no change"
    for n, qty in stock.items():
        assert qty == n
        assert by_change.get(n) == ["stock_delta", "pick_confirmed"], f"change {n} lacks events"
    return len(seqs), set(stock)


@pytest.mark.slow
def test_sigkill_mid_write_loses_and_breaks_nothing(
    tmp_path: Path, processes: ProcessReaper
) -> None:
    path = tmp_path / "kill.db"
    Store.open(path, box_id="kill-box").close()
    rng = random.Random(20261122)
    writer = Path(__file__).parent.parent / "support" / "store_writer.py"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    reported: set[int] = set()
    next_n = 0
    killed_with_progress = 0
    for _cycle in range(CYCLES):
        proc = processes.popen(
            [sys.executable, str(writer), str(path), str(next_n)],
            stdout=subprocess.PIPE,
            env=env,
        )
        # Wait until it writes, then kill it at a random moment of its loop.
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, "writer died before its first commit"
        reported.add(int(first))
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        reported.update(int(x) for x in out.split())
        assert proc.returncode == -signal.SIGKILL
        count, committed = _check(path)
        assert reported <= committed, "a change reported as committed is missing"
        killed_with_progress += count > 0
        next_n = max(committed) + 1
    assert killed_with_progress == CYCLES
    assert len(reported) > CYCLES
