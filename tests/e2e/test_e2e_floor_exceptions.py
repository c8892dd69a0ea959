"""The floor beyond the happy path, through the real daemon (issue 12).

``python -m edge run`` in its own process (carts of two orders, zero checks
on), the cloud simulator on loopback feeding a small zone of known stock and
sending cancels and counts as the scenario goes, PDAs on the real HTTP API:

1. a cart of two orders; one is cancelled by the cloud mid-tour after its
   units were taken: the tour goes on, its units are put back into a
   location (``stock_delta`` return), only the other order is picked;
2. a blind count with a pick at the same location while it is counted, a
   difference, a recount, and the stock corrected (``stock_delta`` count);
3. an ``empty`` short creating a zero check, counted next;
4. a supervisor releasing an abandoned tour, putting its unit back, and
   adjusting stock.

Each step checks the exact events the cloud received for it; at the end the
cloud's net stock per (sku, location) equals the box's ledger and the stock
the box holds, and every event arrived once.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.api.auth import enroll_pda
from edge.store import Store
from simulators.cloud import CloudSimulator, gtin14
from simulators.floor import ApiAnswerError, PdaClient, location_code
from tests.support.e2e import BOX, SECRET, Box, free_port, ledger_sums, write_config

SKUS = ("SKU-A", "SKU-B", "SKU-C", "SKU-D")
GTIN = {sku: gtin14(n) for n, sku in enumerate(SKUS, start=1)}
LOC = {
    "A": location_code(1, 0, 1),
    "A2": location_code(5, 0, 3),
    "B": location_code(2, 0, 2),
    "C": location_code(3, 0, 4),
    "D": location_code(4, 0, 1),
}
BASE = {("SKU-A", "A"): 20, ("SKU-A", "A2"): 5, ("SKU-B", "B"): 10, ("SKU-C", "C"): 10}
BASE[("SKU-D", "D")] = 1


def feed() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {"type": "item", "data": {"sku": s, "gtins": [GTIN[s]], "description": s, "uom": "EA"}}
        for s in SKUS
    ]
    for name, code in LOC.items():
        aisle, slot = ord(code[0]) - ord("A"), int(code[-2:]) - 1
        y = (slot + 0.5) * 3.0
        out.append({"type": "location", "data": {"code": code, "aisle": aisle, "y": y}})
        del name
    out += [
        {"type": "stock", "data": {"sku": sku, "location": LOC[where], "base": qty}}
        for (sku, where), qty in BASE.items()
    ]
    for pid, badge, role in (("p1", "BADGE-1", "picker"), ("p2", "BADGE-2", "picker")):
        out.append(
            {
                "type": "picker",
                "data": {"id": pid, "name": pid, "badge": badge, "role": role, "active": True},
            }
        )
    out.append(
        {
            "type": "picker",
            "data": {
                "id": "s1",
                "name": "s1",
                "badge": "BADGE-S",
                "role": "supervisor",
                "active": True,
            },
        }
    )
    out += [pick_task("T1", "SKU-A", 2, priority=5), pick_task("T2", "SKU-B", 1, priority=4)]
    return out


def pick_task(task: str, sku: str, qty: int, *, priority: int = 0) -> dict[str, Any]:
    return {
        "type": "task",
        "data": {
            "task": task,
            "kind": "pick",
            "order": f"O{task[1:]}",
            "priority": priority,
            "lines": [{"line": 1, "sku": sku, "qty": qty}],
            "ship_to": {"postcode": "10000", "region": "north"},
            "carrier": "dhl",
        },
    }


def count_task(task: str, sku: str, where: str, *, priority: int) -> dict[str, Any]:
    return {
        "type": "task",
        "data": {
            "task": task,
            "kind": "count",
            "priority": priority,
            "lines": [{"line": 1, "sku": sku, "qty": 0, "location": LOC[where]}],
        },
    }


class Floor:
    """The daemon's database (read-only), the cloud, and waiting for both."""

    def __init__(self, db: Path, cloud: CloudSimulator) -> None:
        self.db = db
        self.cloud = cloud

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    async def until(self, what: str, condition: Callable[[], bool], within_s: float = 30) -> None:
        deadline = time.monotonic() + within_s
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    def events(self, type_: str) -> list[dict[str, Any]]:
        """What the cloud applied of ``type_``, in order."""
        return [
            e["data"]
            for epoch, _ in self.cloud.receiver.epochs(BOX)
            for e in self.cloud.receiver.events(BOX, epoch)
            if e["type"] == type_
        ]

    def deltas(self, reason: str) -> list[tuple[str, str, int, str | None]]:
        return [
            (e["sku"], e["location"], e["qty"], e["ref"])
            for e in self.events("stock_delta")
            if e["reason"] == reason
        ]

    async def synced(self) -> None:
        """Every event of the box acked by the cloud."""

        def done() -> bool:
            (total,) = self.query("SELECT count(*) FROM outbox")[0]
            (acked,) = self.query("SELECT acked_seq FROM sync_state")[0]
            return bool(self.cloud.receiver.count(BOX) >= total and acked >= total)

        await self.until("the cloud to ack everything", done)

    async def has_task(self, task: str) -> None:
        await self.until(
            f"task {task}", lambda: bool(self.query("SELECT 1 FROM tasks WHERE task = ?", (task,)))
        )


async def walk(pda: PdaClient, answer: dict[str, Any]) -> dict[str, Any]:
    """Bind a tote per slot, then every stop: location, units, put."""
    tour = answer["tour"]
    while tour.get("cart") and tour["cart"]["next_slot"] is not None:
        answer = await pda.scan(f"TOTE-{random.randrange(10**6):06d}")
        assert answer["result"] == "tote_bound", answer
        tour = answer["tour"]
    while tour["next_stop"] is not None:
        answer = await stop_once(pda, tour)
        tour = answer["tour"]
    return answer


async def stop_once(pda: PdaClient, tour: dict[str, Any]) -> dict[str, Any]:
    """The next stop of ``tour``, to its put."""
    stop = next(s for s in tour["stops"] if s["stop"] == tour["next_stop"])
    if stop["state"] == "pending":
        assert (await pda.scan(stop["location"]))["result"] == "location_ok"
    for _ in range(stop["qty"] - stop["picked"]):
        answer = await pda.scan(GTIN[stop["sku"]])
        assert answer["feedback"] == "success", answer
    answer = await pda.scan(stop["tote"])
    assert answer["result"] in ("stop_done", "tour_done"), answer
    return answer


async def test_cancels_put_backs_counts_zero_checks_and_a_supervisor(tmp_path: Path) -> None:
    async with CloudSimulator(SECRET, db_path=tmp_path / "cloud.db", feed=feed()) as cloud:
        port = free_port(random.Random())
        config = write_config(tmp_path, cloud.url, port)
        text = config.read_text() + "\n[carts]\ntotes = 2\nunits = 40\nimprove_s = 0\n"
        text = text.replace("zero_checks = false", "zero_checks = true")
        if "[floor]" not in text:
            text += "\n[floor]\nzero_checks = true\n"
        config.write_text(text)
        box = Box(config, tmp_path / "box.db", port, tmp_path / "daemon.log")
        with Store.open(box.db, box_id=BOX) as store:
            keys = [enroll_pda(store, f"pda-{n}")[1] for n in range(3)]
        floor = Floor(box.db, cloud)
        proc = await box.start(armed=False)
        try:
            assert await box.up(proc)
            await floor.has_task("T2")
            base = f"http://127.0.0.1:{port}"
            async with (
                PdaClient(base, keys[0]) as p1,
                PdaClient(base, keys[1]) as p2,
                PdaClient(base, keys[2]) as s1,
            ):
                await p1.login("BADGE-1")
                await p2.login("BADGE-2")
                await s1.login("BADGE-S")
                await cart_with_a_cancel(floor, p1)
                await count_with_a_pick_meanwhile(floor, p1, p2)
                await zero_check_after_an_empty_short(floor, p1)
                await supervisor_releases_and_adjusts(floor, p2, s1)
            await floor.synced()
            await box.kill(proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        # the cloud's account equals the box's, and what the box holds
        conn = sqlite3.connect(f"file:{box.db}?mode=ro", uri=True)
        try:
            ledger = ledger_sums(conn)
            held = {
                (sku, loc): qty - base
                for sku, loc, qty, base in (
                    (sku, loc, int(qty), BASE[(sku, k)])
                    for sku, loc, qty in conn.execute(
                        "SELECT sku, location, SUM(qty) FROM stock GROUP BY sku, location"
                    )
                    for k in [next(k for k, v in LOC.items() if v == loc)]
                )
                if qty != base
            }
        finally:
            conn.close()
        cloud_net = {k: v for k, v in cloud.receiver.net_stock(BOX).items() if v}
        assert cloud_net == ledger == held
        seqs = [
            e["seq"]
            for epoch, _ in cloud.receiver.epochs(BOX)
            for e in cloud.receiver.events(BOX, epoch)
        ]
        assert len(seqs) == len(set(seqs))


async def cart_with_a_cancel(floor: Floor, p1: PdaClient) -> None:
    started = await p1.scan("START")
    assert started["result"] == "tour_started", started
    tour = started["tour"]
    assert [t["task"] for t in tour["cart"]["totes"]] == ["T1", "T2"]
    for slot in (1, 2):
        tour = (await p1.scan(f"TOTE-C{slot}"))["tour"]
    first = next(s for s in tour["stops"] if s["stop"] == tour["next_stop"])
    tour = (await stop_once(p1, tour))["tour"]
    cancelled, kept = first["task"], ({"T1", "T2"} - {first["task"]}).pop()
    floor.cloud.feed.add({"type": "task_cancel", "data": {"task": cancelled}})
    await floor.until(
        "the cancel to reach the box",
        lambda: (
            floor.query("SELECT state FROM tasks WHERE task = ?", (cancelled,))[0][0] == "cancelled"
        ),
    )
    current = await p1.tour()
    assert current is not None
    assert [t["state"] for t in current["cart"]["totes"] if t["task"] == cancelled] == ["cancelled"]
    done = await walk(p1, {"tour": current})
    assert done["result"] == "tour_done", done
    assert [(b["sku"], b["origin"], b["qty"]) for b in done["put_backs"]] == [
        (first["sku"], first["location"], first["qty"])
    ]
    refused = await p1.scan("START")
    assert refused["result"] == "put_back_required"
    await p1.scan(f"01{GTIN[first['sku']]}30{first['qty']}")
    back = await p1.scan(first["location"])
    assert back["result"] == "put_back_done", back
    await floor.synced()
    (event,) = floor.events("task_cancelled")
    assert (event["task"], event["at_stage"], event["put_back"]) == (
        cancelled,
        "picked",
        [{"sku": first["sku"], "location": first["location"], "qty": first["qty"]}],
    )
    assert [e["task"] for e in floor.events("task_picked")] == [kept]
    assert floor.deltas("return") == [(first["sku"], first["location"], first["qty"], cancelled)]
    totes = {t["task"]: t["tote"] for t in current["cart"]["totes"]}
    assert {(e["task"], e["tote"]) for e in floor.events("pick_confirmed")} == {
        (task, totes[task]) for task in ("T1", "T2")
    }


async def count_with_a_pick_meanwhile(floor: Floor, p1: PdaClient, p2: PdaClient) -> None:
    floor.cloud.feed.add(
        count_task("C1", "SKU-C", "C", priority=9), pick_task("T3", "SKU-C", 2, priority=1)
    )
    await floor.has_task("T3")
    counting = await p2.scan("START")
    assert counting["tour"]["kind"] == "count", counting
    assert counting["tour"]["stops"][0]["qty"] is None
    assert (await p2.scan(LOC["C"]))["result"] == "location_ok"  # 10 on hand now
    picked = await walk(p1, await p1.scan("O3"))  # 2 taken while it is counted
    assert picked["result"] == "tour_done"
    for attempt in (1, 2):
        for _ in range(7):
            assert (await p2.scan(GTIN["SKU-C"]))["result"] == "counted"
        answer = await p2.scan(LOC["C"])
        assert answer["result"] == ("recount" if attempt == 1 else "count_done"), answer
    assert answer["feedback"] == "warning"
    await floor.synced()
    (result,) = floor.events("count_result")
    assert (result["task"], result["counted"], result["expected"], result["picker"]) == (
        "C1",
        7,
        10,
        "p2",
    )
    assert floor.deltas("count") == [("SKU-C", LOC["C"], -1, "C1")]


async def zero_check_after_an_empty_short(floor: Floor, p1: PdaClient) -> None:
    floor.cloud.feed.add(pick_task("T4", "SKU-D", 1))
    await floor.has_task("T4")
    started = await p1.scan("O4")
    tour = started["tour"]
    tour = (await p1.scan("TOTE-Z1"))["tour"]
    short = await p1.short(tour["next_stop"], 0, "empty")
    assert short["result"] == "tour_done", short
    ((zero_check,),) = floor.query("SELECT task FROM tasks WHERE task LIKE 'ZC-%'")
    count = await p1.scan("START")
    assert count["tour"]["kind"] == "count"
    assert [s["location"] for s in count["tour"]["stops"]] == [LOC["D"]]
    await p1.scan(LOC["D"])
    done = await p1.scan(LOC["D"])  # nothing there: 0, as the box now holds
    assert (done["result"], done["feedback"]) == ("count_done", "success")
    await floor.synced()
    assert floor.deltas("short") == [("SKU-D", LOC["D"], -1, "T4")]
    assert [(r["task"], r["counted"], r["expected"]) for r in floor.events("count_result")][-1] == (
        zero_check,
        0,
        0,
    )


async def supervisor_releases_and_adjusts(floor: Floor, p2: PdaClient, s1: PdaClient) -> None:
    floor.cloud.feed.add(pick_task("T5", "SKU-B", 2))
    await floor.has_task("T5")
    tour = (await p2.scan("O5"))["tour"]
    tour = (await p2.scan("TOTE-AB1"))["tour"]
    await p2.scan(LOC["B"])
    assert (await p2.scan(GTIN["SKU-B"]))["result"] == "item_ok"  # then the picker leaves
    try:
        await p2._call("POST", f"/api/v1/supervisor/tours/{tour['tour']}/release", {"reason": "x"})
    except ApiAnswerError as exc:
        assert exc.status == 403  # a picker may not
    else:
        raise AssertionError("a picker released a tour")
    listed = await s1._call("GET", "/api/v1/supervisor/tours")
    assert [t["tour"] for t in listed["tours"]] == [tour["tour"]]
    await s1._call(
        "POST", f"/api/v1/supervisor/tours/{tour['tour']}/release", {"reason": "went home"}
    )
    assert await p2.tour() is None
    ((state,),) = floor.query("SELECT state FROM tasks WHERE task = 'T5'")
    assert state == "open"
    assert (await s1.scan(GTIN["SKU-B"]))["result"] == "put_back_item"
    assert (await s1.scan(LOC["B"]))["result"] == "put_back_done"
    await s1._call(
        "POST",
        "/api/v1/supervisor/stock/adjust",
        {"sku": "SKU-A", "location": LOC["A2"], "qty": -1, "reason": "damaged"},
    )
    await floor.synced()
    actions = [(a["action"], a["by"]) for a in floor.events("supervisor_action")]
    assert actions == [("release", "s1"), ("adjust", "s1")]
    assert floor.deltas("adjust") == [("SKU-A", LOC["A2"], -1, None)]
    assert floor.deltas("return")[-1] == ("SKU-B", LOC["B"], 1, "T5")
