"""A cart of three orders through the real daemon (issue 11).

``python -m edge run`` in its own process with ``[carts] totes = 3``, its
online batcher's worker process running, the cloud simulator on loopback
feeding the zone, and a PDA on the real HTTP API: START proposes a cart with
the most urgent task in it, a tote is bound per order (a location scanned
too early is refused), every stop's units are put into their tote (a wrong
tote once, refused), and upstream the cloud receives ``pick_confirmed`` with
each unit's tote and one ``task_picked`` per task of the cart. A SIGKILL of
the daemon leaves no batcher process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from pathlib import Path
from typing import Any

from edge.api.auth import enroll_pda
from edge.store import Store
from simulators.cloud import CloudSimulator
from simulators.floor import PdaClient, Zone, zone_feed
from tests.support.e2e import BOX, SECRET, Box, free_port, write_config

ZONE = Zone(aisles=6, blocks=1, block_length_m=18.0, slots_per_block=6)
TASKS = 9


def children_of(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # pid (comm) state ppid …: comm may hold spaces, so split after ')'
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def until(what: str, condition: Any, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def cloud_events(cloud: CloudSimulator, type_: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for epoch, _ in cloud.receiver.epochs(BOX)
        for e in cloud.receiver.events(BOX, epoch)
        if e["type"] == type_
    ]


async def test_a_cart_of_three_orders_through_the_real_daemon(tmp_path: Path) -> None:
    feed, gtins = zone_feed(ZONE, pickers=1, tasks=TASKS)
    async with CloudSimulator(SECRET, db_path=tmp_path / "cloud.db", feed=feed) as cloud:
        port = free_port(random.Random())
        config = write_config(tmp_path, cloud.url, port)
        config.write_text(
            config.read_text() + "\n[carts]\ntotes = 3\nunits = 60\nimprove_s = 0.3\n"
        )
        box = Box(config, tmp_path / "box.db", port, tmp_path / "daemon.log")
        with Store.open(box.db, box_id=BOX) as store:
            key = enroll_pda(store, "e2e-cart-pda")[1]
        proc = await box.start(armed=False)
        workers: set[int] = set()
        try:
            assert await box.up(proc)
            await until(
                "the first download",
                lambda: box.query("SELECT count(*) FROM tasks")[0][0] == TASKS,
            )
            ((seed,),) = box.query(
                "SELECT task FROM tasks ORDER BY priority DESC, received_ms, task LIMIT 1"
            )
            async with PdaClient(f"http://127.0.0.1:{port}", key) as pda:
                await pda.login("BADGE0001")
                started = await pda.scan("START")
                assert started["result"] == "tour_started", started
                tour = started["tour"]
                totes = tour["cart"]["totes"]
                assert len(totes) == 3
                assert seed in [t["task"] for t in totes]
                assert {s["task"] for s in tour["stops"]} == {t["task"] for t in totes}

                early = await pda.scan(tour["stops"][0]["location"])
                assert (early["result"], early["feedback"]) == ("tote_expected", "warning")
                labels = {}
                for slot in (1, 2, 3):
                    answer = await pda.scan(f"TOTE-E2E-{slot}")
                    assert answer["result"] == "tote_bound", answer
                    labels[totes[slot - 1]["task"]] = f"TOTE-E2E-{slot}"
                tour = answer["tour"]
                assert tour["cart"]["next_slot"] is None

                wrong_once = True
                while tour["next_stop"] is not None:
                    stop = next(s for s in tour["stops"] if s["stop"] == tour["next_stop"])
                    assert stop["tote"] == labels[stop["task"]]
                    if stop["state"] == "pending":
                        tour = (await pda.scan(stop["location"]))["tour"]
                    for _ in range(stop["qty"] - stop["picked"]):
                        answer = await pda.scan(gtins[stop["sku"]])
                        assert answer["feedback"] == "success", answer
                    assert answer["result"] == "item_ok"
                    assert stop["tote"] in answer["message"]
                    if wrong_once:
                        other = next(t for t in labels.values() if t != stop["tote"])
                        refused = await pda.scan(other)
                        assert (refused["result"], refused["feedback"]) == ("wrong_tote", "error")
                        wrong_once = False
                    answer = await pda.scan(stop["tote"])
                    assert answer["result"] in ("stop_done", "tour_done"), answer
                    tour = answer["tour"]
                assert answer["result"] == "tour_done"

            cart = set(labels)
            await until(
                "task_picked of the cart's tasks at the cloud",
                lambda: {e["task"] for e in cloud_events(cloud, "task_picked")} == cart,
            )
            for event in cloud_events(cloud, "task_picked"):
                assert event["totes"] == [labels[event["task"]]]
            confirmed = cloud_events(cloud, "pick_confirmed")
            assert confirmed
            assert all(e["tote"] == labels[e["task"]] for e in confirmed)
            units = sum(s["qty"] for s in tour["stops"])
            assert sum(e["qty"] for e in confirmed) == units

            # the batcher's worker does not outlive a SIGKILLed daemon
            workers = children_of(proc.pid)
            assert workers, "the daemon runs its batcher in a worker process"
            await box.kill(proc)
            await until("the worker to die with the daemon", lambda: not any(map(alive, workers)))
        finally:
            workers |= children_of(proc.pid) if proc.returncode is None else set()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            for pid in workers:  # reaped even when the test failed
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)
