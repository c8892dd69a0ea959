"""The cart proposer on a real store: the pool it reads, its proposals, its worker process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge.config import CartsConfig, Config
from edge.picking.pool import read_pool
from edge.picking.proposer import CartProposer
from edge.picking.queries import snapshot
from edge.store.db import Store, Transaction
from tests.support.api_fixtures import add_task
from tests.support.processes import ProcessReaper

MIN = 60_000
ROOT = Path(__file__).resolve().parents[2]


def set_task(store: Store, task: str, **values: object) -> None:
    cols = ", ".join(f"{k} = ?" for k in values)

    def fn(tx: Transaction) -> None:
        tx.execute(f"UPDATE tasks SET {cols} WHERE task = ?", (*values.values(), task))

    store.run(fn)


def pool(
    store: Store, *, zone: str | None = "Z1", limit: int = 50, now: int | None = None
) -> dict[str, tuple[int, tuple[tuple[int, float], ...]]]:
    now = int(time.time() * 1000) if now is None else now
    with snapshot(store.reader().conn) as db:
        found = read_pool(db, zone=zone, limit=limit, now_ms=now, max_wait_ms=15 * MIN)
    return {t.task: (t.units, t.picks) for t in found}


def test_the_pool_is_open_pick_tasks_with_their_likely_locations(
    zone_store: tuple[Store, Config],
) -> None:
    store, _ = zone_store
    add_task(store, "T1", [("SKU-A", 2), ("SKU-B", 1)])
    add_task(store, "T2", [("SKU-C", 1)])
    add_task(store, "T3", [("SKU-E", 4), ("SKU-D", 1)])  # SKU-E: no stock anywhere
    add_task(store, "T4", [("SKU-A", 1)])
    set_task(store, "T4", state="started")

    def partly_picked(tx: Transaction) -> None:
        tx.execute("UPDATE task_lines SET picked = 1 WHERE task = 'T1' AND line = '1'")

    store.run(partly_picked)
    # SKU-B: lot L1 (expires first) at A-04-10; SKU-C: no expiry, A-06-15 before A-08-04
    assert pool(store) == {
        "T1": (2, ((1, 5.0), (4, 10.0))),
        "T2": (1, ((6, 15.0),)),
        "T3": (5, ((3, 12.0),)),
    }


def test_fefo_skips_reserved_and_undated_stock(zone_store: tuple[Store, Config]) -> None:
    store, _ = zone_store
    add_task(store, "T1", [("SKU-B", 1)])

    def stock(tx: Transaction) -> None:
        tx.execute("INSERT INTO locations (code, aisle, y, zone) VALUES ('A-00-01', 0, 1.0, 'Z1')")
        tx.execute("INSERT INTO stock (sku, location, lot, qty) VALUES ('SKU-B', 'A-00-01', '', 9)")

    store.run(stock)
    assert pool(store)["T1"][1] == ((4, 10.0),)  # dated lots before the undated row

    def reserve_l1(tx: Transaction) -> None:
        tx.execute("UPDATE stock SET reserved = qty WHERE sku = 'SKU-B' AND lot = 'L1'")

    store.run(reserve_l1)
    assert pool(store)["T1"][1] == ((2, 8.0),)


def test_the_zone_limits_the_locations(zone_store: tuple[Store, Config]) -> None:
    store, _ = zone_store
    add_task(store, "T1", [("SKU-E", 1)])

    def elsewhere(tx: Transaction) -> None:
        tx.execute("INSERT INTO locations (code, aisle, y, zone) VALUES ('B-07-03', 7, 3.0, 'Z2')")
        tx.execute("INSERT INTO stock (sku, location, lot, qty) VALUES ('SKU-E', 'B-07-03', '', 2)")

    store.run(elsewhere)
    assert pool(store, zone="Z1") == {"T1": (1, ())}
    assert pool(store, zone="Z2") == {"T1": (1, ((7, 3.0),))}
    assert pool(store, zone=None) == {"T1": (1, ((7, 3.0),))}


def test_a_limit_keeps_overdue_tasks_before_higher_priorities(
    zone_store: tuple[Store, Config],
) -> None:
    store, _ = zone_store
    now = 1000 * MIN
    for i, (priority, age) in enumerate([(9, 1), (8, 2), (7, 3), (0, 20), (0, 40), (5, 14)]):
        add_task(store, f"T{i}", [("SKU-A", 1)], priority=priority)
        set_task(store, f"T{i}", received_ms=now - age * MIN)
    # overdue (older than 15 min): T4 then T3; then by priority T0, T1, T2, T5
    assert list(pool(store, limit=3, now=now)) == ["T4", "T3", "T0"]
    assert list(pool(store, limit=10, now=now)) == ["T4", "T3", "T0", "T1", "T2", "T5"]


CARTS = CartsConfig(totes=3, units=20, max_wait_s=900.0, propose_ms=50, improve_s=0.05)


def proposer(store: Store, cfg: Config, carts: CartsConfig = CARTS) -> CartProposer:
    return CartProposer(store, cfg.layout_dict(), carts, zone="Z1")


def propose(p: CartProposer, store: Store) -> tuple[str, ...]:
    with snapshot(store.reader().conn) as db:
        return p.propose(db)


def test_propose_on_a_real_store(zone_store: tuple[Store, Config]) -> None:
    store, cfg = zone_store
    p = proposer(store, cfg)
    assert propose(p, store) == ()
    add_task(store, "FAR", [("SKU-D", 1)])  # aisle 3
    add_task(store, "URGENT", [("SKU-C", 1)], priority=5)  # aisle 6
    add_task(store, "NEAR", [("SKU-C", 2)])  # aisle 6 as well
    add_task(store, "HELD", [("SKU-C", 1)])
    set_task(store, "HELD", state="started")  # another picker's: never offered
    cart = propose(p, store)
    assert cart[0] == "URGENT"
    assert "HELD" not in cart
    assert set(cart) <= {"URGENT", "NEAR", "FAR"}
    assert (p.proposals, p.cache_hits) == (2, 0)


def children() -> set[int]:
    me = os.getpid()
    out: set[int] = set()
    for tid in os.listdir(f"/proc/{me}/task"):
        with contextlib.suppress(FileNotFoundError):
            out |= {int(c) for c in Path(f"/proc/{me}/task/{tid}/children").read_text().split()}
    return out


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def resource_tracker(pid: int) -> bool:
    """multiprocessing's own helper (one per process, gone with it), not a worker."""
    with contextlib.suppress(FileNotFoundError):
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


async def test_run_improves_in_a_worker_and_proposals_reuse_it(
    zone_store: tuple[Store, Config],
) -> None:
    store, cfg = zone_store
    before = children()
    for i, sku in enumerate(["SKU-A", "SKU-B", "SKU-C", "SKU-D", "SKU-A", "SKU-C"]):
        add_task(store, f"T{i}", [(sku, 1)], priority=i % 2)
    p = proposer(store, cfg)
    runner = asyncio.create_task(p.run())
    try:
        for _ in range(300):  # the worker's spawn takes most of a second
            if p.improvements:
                break
            await asyncio.sleep(0.05)
        assert p.improvements >= 1
        [worker] = p.worker_pids()
        assert os.getpriority(os.PRIO_PROCESS, worker) == 19
        cart = await asyncio.to_thread(propose, p, store)
        assert (p.cache_hits, len(cart) > 1) == (1, True)
        improved = p.improvements
        await asyncio.sleep(0.3)  # the pool did not change: nothing to improve
        assert p.improvements == improved
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert p.worker_pids() == []
    assert not alive(worker)
    assert {c for c in children() - before if not resource_tracker(c)} == set()
    p.close()  # idempotent


async def test_close_stops_the_worker(zone_store: tuple[Store, Config]) -> None:
    store, cfg = zone_store
    p = proposer(store, cfg)
    worker = await p.warm_up()
    assert worker in children()
    p.close()
    assert not alive(worker)
    assert worker not in children()


async def test_a_starts_search_runs_in_the_searcher_and_survives_its_loss(
    zone_store: tuple[Store, Config], caplog: pytest.LogCaptureFixture
) -> None:
    """The search of a START runs in its own process (the daemon's GIL stays
    with the scans); a searcher that died is replaced by a search in the
    daemon, with one warning, and the START still gets its cart."""
    store, cfg = zone_store
    add_task(store, "URGENT", [("SKU-C", 1)], priority=5)
    add_task(store, "NEAR", [("SKU-C", 2)])
    add_task(store, "FAR", [("SKU-D", 1)])
    p = proposer(store, cfg)
    try:
        searcher = await p.start_searcher()
        assert searcher != os.getpid()
        assert searcher in children()
        cart = await asyncio.to_thread(propose, p, store)
        assert cart[0] == "URGENT"
        assert p.searches == 1
        os.kill(searcher, signal.SIGKILL)
        for _ in range(500):
            if not alive(searcher):
                break
            await asyncio.sleep(0.01)
        for _ in range(2):
            again = await asyncio.to_thread(propose, p, store)
            assert again[0] == "URGENT"
        assert sum("cart searcher failed" in r.message for r in caplog.records) == 1
        replaced = await p.start_searcher()  # what run() does next
        assert replaced != searcher
        assert (await asyncio.to_thread(propose, p, store))[0] == "URGENT"
    finally:
        p.close()
    assert not {searcher, replaced} & children()


async def test_no_worker_without_carts(zone_store: tuple[Store, Config]) -> None:
    store, cfg = zone_store
    p = proposer(store, cfg, CartsConfig(totes=1))
    runner = asyncio.create_task(p.run())
    await asyncio.sleep(0.1)
    assert p.worker_pids() == []
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner


PARENT = """
    import asyncio, sys, time
    from pathlib import Path
    from edge.config import CartsConfig
    from edge.picking.proposer import CartProposer
    from edge.store.db import Store

    async def main() -> None:
        store = Store.open(Path(sys.argv[1]), box_id="box-kill")
        layout = {"kind": "blocks", "aisles": 4, "aisle_pitch_m": 3.0, "blocks": 1,
                  "block_length_m": 20.0, "depot": {"x": 0.0, "y": 0.0}}
        p = CartProposer(store, layout, CartsConfig(totes=3))
        print(await p.warm_up(), flush=True)
        # busy when the daemon dies: only PR_SET_PDEATHSIG stops it then
        await asyncio.get_running_loop().run_in_executor(p._ensure_worker(), time.sleep, 60)

    if __name__ == "__main__":
        asyncio.run(main())
"""


async def test_the_worker_dies_with_a_killed_daemon(
    tmp_path: Path, processes: ProcessReaper
) -> None:
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT))
    parent = await processes.exec(
        sys.executable,
        str(script),
        str(tmp_path / "kill.db"),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert parent.stdout is not None
    line = await asyncio.wait_for(parent.stdout.readline(), 20)
    worker = int(line)
    assert alive(worker)
    parent.send_signal(signal.SIGKILL)
    try:
        for _ in range(100):
            if not alive(worker):
                break
            await asyncio.sleep(0.05)
        assert not alive(worker)
    finally:
        if alive(worker):  # the test failed: do not leave it behind
            os.kill(worker, signal.SIGKILL)
        await asyncio.wait_for(parent.wait(), 10)
