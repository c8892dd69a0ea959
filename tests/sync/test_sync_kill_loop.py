"""SIGKILL a box (floor writer + uploader) ≥ 100 times against a faulty cloud.

After every kill the database passes ``PRAGMA integrity_check``. After a final
drain: the cloud holds every event exactly once, contiguous, identical to the
outbox; the cloud's net stock per (sku, location) equals the box's ledger; every
fact the floor was told is in the ledger exactly as told (the only ledger rows
not in the told log are commits a kill cut off before the telling: the last
commit of a killed run).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
from pathlib import Path

import pytest
from sync_helpers import BOX, SECRET, assert_converged

from edge.store import Store
from simulators.cloud import CloudSimulator, Faults
from tests.support.processes import ProcessReaper

WORKER = Path(__file__).with_name("sync_floor_worker.py")
KILLS = 100
FAULTS = {
    "fail_after": 0.08,
    "drop_after": 0.08,
    "fail_before": 0.04,
    "drop_before": 0.04,
    "500": 0.04,
    "429": 0.03,
    "bad_sig": 0.04,
    "unsigned": 0.02,
    "lying_ack": 0.02,
    "409": 0.02,
    "413": 0.02,
    "slow": 0.02,
}


async def run_worker(
    processes: ProcessReaper, db: Path, told: Path, url: str, mode: str, seed: int
) -> asyncio.subprocess.Process:
    return await processes.exec(
        sys.executable,
        str(WORKER),
        str(db),
        str(told),
        url,
        mode,
        str(seed),
        stdout=asyncio.subprocess.PIPE,
    )


def integrity_and_last_move(db: Path) -> tuple[str, int | None]:
    """``PRAGMA integrity_check`` and the last stock move committed."""
    conn = sqlite3.connect(db)
    try:
        check = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        last = conn.execute("SELECT max(seq) FROM stock_ledger").fetchone()[0]
        return check, last
    finally:
        conn.close()


def read_told(path: Path) -> dict[int, tuple[str, str, int]]:
    told: dict[int, tuple[str, str, int]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:  # a kill can cut the last line short; fsync ran after it
            told[int(parts[0])] = (parts[1], parts[2], int(parts[3]))
    return told


@pytest.mark.slow
async def test_kill_loop_loses_nothing_and_applies_nothing_twice(
    tmp_path: Path, processes: ProcessReaper
) -> None:
    db, told_path = tmp_path / "box.db", tmp_path / "told.log"
    rng = random.Random(20261122)
    async with CloudSimulator(SECRET, slow_s=0.4) as sim:
        sim.batch_faults = Faults(FAULTS, seed=1)
        Store.open(db, box_id=BOX).close()
        last_of_run: set[int] = set()  # the commit each kill may have cut off from its telling
        for i in range(KILLS):
            proc = await run_worker(processes, db, told_path, sim.url, "work", i + 1)
            assert proc.stdout is not None
            async with asyncio.timeout(30):
                assert await proc.stdout.readline() == b"ready\n"
            await asyncio.sleep(rng.uniform(0.05, 0.4))
            assert proc.returncode is None, "the worker died by itself"
            proc.kill()
            assert await proc.wait() == -9
            check, last = integrity_and_last_move(db)
            assert check == "ok", f"after kill {i + 1}"
            if last is not None:
                last_of_run.add(last)

        sim.batch_faults.clear()
        drain = await run_worker(processes, db, told_path, sim.url, "drain", 0)
        async with asyncio.timeout(60):
            assert await drain.wait() == 0
        assert integrity_and_last_move(db)[0] == "ok"

        with Store.open(db, box_id=BOX) as store:
            assert len(sim.receiver.epochs(BOX)) == 1  # no kill ever reused a seq
            assert_converged(sim, store)  # exactly once, contiguous, same content, stock
            ledger = {
                r["seq"]: (r["sku"], r["location"], r["qty"])
                for r in store.query("SELECT seq, sku, location, qty FROM stock_ledger")
            }
        told = read_told(told_path)
        assert len(told) > 500, "the floor did real work"
        for seq, fact in told.items():
            assert ledger.get(seq) == fact, f"told fact {seq} {fact} is not in the ledger as told"
        # the ledger is the told log plus, at most, the last commit of each killed run
        # (committed, then killed before the PDA could hear it): nothing else
        untold = set(ledger) - set(told)
        assert untold <= last_of_run, sorted(untold - last_of_run)
        assert sum(sim.batch_faults.drawn.values()) > 50, sim.batch_faults.drawn
