"""Floor benchmark: simulated PDAs running full tours against the real daemon.

Starts the PDA API in its own process (``python -m edge.api``, the same code
the daemon serves) on loopback over a seeded zone (a 2-block layout of 20
aisles, one SKU per slot, some SKUs in two slots), then runs N PDAs at once:
each logs in, scans an order (10 or 30 lines), walks the tour scanning every
location and every unit, and starts the next order. Every request is timed on
the client, so the figures include HTTP, JSON, the durable SQLite commit and
the client's own event loop on the same 2 cores.

Prints p50/p99 of ``POST /api/v1/scan`` (location and item scans), p50/p99 of
order scan → tour answer for 10- and 30-line orders, and the walking distance
of the tours against S-shape routing of the same picks. At the end it checks
durability: every unit the daemon confirmed is in its outbox, none twice.

    .venv/bin/python bench/floor.py            # 50 PDAs, 4 orders each
    .venv/bin/python bench/floor.py --quick    # 10 PDAs, 2 orders each
    .venv/bin/python bench/floor.py --think-ms 500   # pickers who take time
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import msgpack

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.api import auth  # noqa: E402
from edge.routing import heuristic_length  # noqa: E402
from edge.store.db import Store, Transaction, now_ms  # noqa: E402

AISLES, BLOCKS, BLOCK_LEN, PITCH = 20, 2, 20.0, 3.0
SLOTS_PER_BLOCK = 12


def gtin14(n: int) -> str:
    base = f"{952000000000 + n:013d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(base)))
    return base + str((10 - total % 10) % 10)


def seed(store: Store, pdas: int, orders: list[int], rng: random.Random) -> dict[str, Any]:
    """Zone, pickers, PDAs and orders; returns what the simulated PDAs need."""
    locations: dict[str, tuple[int, float]] = {}
    for aisle in range(AISLES):
        for block in range(BLOCKS):
            for k in range(SLOTS_PER_BLOCK):
                y = block * BLOCK_LEN + 1.0 + k * (BLOCK_LEN - 2.0) / (SLOTS_PER_BLOCK - 1)
                locations[f"A-{aisle:02d}-{block * SLOTS_PER_BLOCK + k:03d}"] = (aisle, round(y, 2))
    codes = list(locations)
    skus = [f"SKU-{n:04d}" for n in range(len(codes))]
    stock = [(sku, codes[n], 1_000_000) for n, sku in enumerate(skus)]
    # a fifth of the SKUs also sit in a second slot: the location choice matters
    for n in range(0, len(skus), 5):
        stock.append((skus[n], codes[(n * 7 + 13) % len(codes)], 1_000_000))
    keys: list[str] = []

    def fn(tx: Transaction) -> None:
        for n, sku in enumerate(skus):
            tx.execute("INSERT INTO items (sku, description) VALUES (?, ?)", (sku, f"item {n}"))
            tx.execute("INSERT INTO item_gtins (gtin, sku) VALUES (?, ?)", (gtin14(n), sku))
        for code, (aisle, y) in locations.items():
            tx.execute("INSERT INTO locations (code, aisle, y) VALUES (?, ?, ?)", (code, aisle, y))
        tx.executemany(
            "INSERT INTO stock (sku, location, lot, qty) VALUES (?, ?, '', ?) "
            "ON CONFLICT DO NOTHING",
            stock,
        )
        for p in range(pdas):
            tx.execute(
                "INSERT INTO pickers (id, name, badge, role) VALUES (?, ?, ?, 'picker')",
                (f"P{p}", f"Picker {p}", f"BADGE-{p}"),
            )
            for o, lines in enumerate(orders):
                task = f"T-{p}-{o}"
                tx.execute(
                    "INSERT INTO tasks (task, order_ref, received_ms) VALUES (?, ?, ?)",
                    (task, f"O-{p}-{o}", now_ms()),
                )
                chosen = rng.sample(range(len(skus)), lines)
                tx.executemany(
                    "INSERT INTO task_lines (task, line, sku, qty) VALUES (?, ?, ?, ?)",
                    [
                        (task, str(i), skus[s], rng.choice((1, 1, 1, 2, 3)))
                        for i, s in enumerate(chosen)
                    ],
                )

    store.run(fn)
    for p in range(pdas):
        keys.append(auth.enroll_pda(store, f"pda-{p}")[1])
    return {
        "locations": locations,
        "keys": keys,
        "gtin": {s: gtin14(n) for n, s in enumerate(skus)},
    }


class Figures:
    def __init__(self) -> None:
        self.scan_ms: list[float] = []
        self.route_ms: dict[int, list[float]] = {}
        self.optimal_m = 0.0
        self.sshape_m = 0.0
        self.units = 0
        self.errors: list[str] = []


async def pda(
    n: int,
    base: str,
    http: aiohttp.ClientSession,
    world: dict[str, Any],
    orders: list[int],
    figures: Figures,
    think_s: float,
    stagger_s: float,
    rng: random.Random,
) -> None:
    async with http.post(
        f"{base}/api/v1/sessions",
        json={"badge": f"BADGE-{n}"},
        headers={"X-Device-Key": world["keys"][n]},
    ) as r:
        token = (await r.json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    if stagger_s:
        # pickers do not all scan their first order in the same millisecond
        await asyncio.sleep(rng.uniform(0, stagger_s))

    async def scan(code: str) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        async with http.post(
            f"{base}/api/v1/scan",
            json={"code": code, "scan_id": uuid.uuid4().hex},
            headers=headers,
        ) as r:
            body = await r.json()
        elapsed = (time.perf_counter() - started) * 1000.0
        if r.status != 200:
            figures.errors.append(f"{r.status} {body}")
        return elapsed, body

    layout = {
        "kind": "blocks",
        "aisles": AISLES,
        "aisle_pitch_m": PITCH,
        "blocks": BLOCKS,
        "block_length_m": BLOCK_LEN,
        "depot": {"x": 0.0, "y": 0.0},
    }
    for o, lines in enumerate(orders):
        ms, answer = await scan(f"O-{n}-{o}")
        if answer.get("result") != "tour_started":
            figures.errors.append(f"order O-{n}-{o}: {answer.get('result')}")
            continue
        figures.route_ms.setdefault(lines, []).append(ms)
        tour = answer["tour"]
        picks = [
            {
                "id": str(s["stop"]),
                "aisle": world["locations"][s["location"]][0],
                "y": world["locations"][s["location"]][1],
            }
            for s in tour["stops"]
        ]
        figures.optimal_m += tour["route"]["length_m"]
        figures.sshape_m += heuristic_length({"layout": layout, "picks": picks}, "s-shape")
        while tour["next_stop"] is not None:
            stop = next(s for s in tour["stops"] if s["stop"] == tour["next_stop"])
            if think_s:
                await asyncio.sleep(rng.expovariate(1.0 / think_s))
            if stop["state"] == "pending":
                ms, answer = await scan(stop["location"])
                figures.scan_ms.append(ms)
                if answer.get("result") != "location_ok":
                    figures.errors.append(f"location: {answer.get('result')}")
                    return
            for _ in range(stop["qty"] - stop["picked"]):
                if think_s:
                    await asyncio.sleep(rng.expovariate(1.0 / think_s))
                ms, answer = await scan(world["gtin"][stop["sku"]])
                figures.scan_ms.append(ms)
                if answer.get("result") not in ("item_ok", "stop_done", "tour_done"):
                    figures.errors.append(f"item: {answer.get('result')}")
                    return
                figures.units += 1
            tour = answer["tour"]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    orders = [10, 30] * args.orders
    with tempfile.TemporaryDirectory(prefix="pickedge-floor-") as tmp:
        config = Path(tmp) / "floor.toml"
        config.write_text(
            textwrap.dedent(
                f"""\
                [box]
                id = "bench-box"
                [store]
                path = "floor.db"
                [api]
                host = "127.0.0.1"
                port = 0
                [layout]
                aisles = {AISLES}
                aisle_pitch_m = {PITCH}
                blocks = {BLOCKS}
                block_length_m = {BLOCK_LEN}
                """
            )
        )
        db = Path(tmp) / "floor.db"
        with Store.open(db, box_id="bench-box") as store:
            world = seed(store, args.pdas, orders, rng)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge.api",
            "--config",
            str(config),
            "--port",
            "0",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            base = f"http://127.0.0.1:{int(line.split()[1])}"
            figures = Figures()
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                started = time.perf_counter()
                await asyncio.gather(
                    *(
                        pda(
                            n,
                            base,
                            http,
                            world,
                            orders,
                            figures,
                            args.think_ms / 1000.0,
                            args.stagger_ms / 1000.0,
                            random.Random(args.seed + n),
                        )
                        for n in range(args.pdas)
                    )
                )
                wall = time.perf_counter() - started
        finally:
            proc.terminate()
            await proc.wait()
        with Store.open(db, box_id="bench-box") as store:
            rows = store.query("SELECT type, payload FROM outbox")
        confirmed = sum(
            msgpack.unpackb(r["payload"])["qty"] for r in rows if r["type"] == "pick_confirmed"
        )
        delta = sum(
            msgpack.unpackb(r["payload"])["qty"] for r in rows if r["type"] == "stock_delta"
        )
    saved = 100.0 * (1 - figures.optimal_m / figures.sshape_m) if figures.sshape_m else 0.0
    return {
        "pdas": args.pdas,
        "orders_per_pda": len(orders),
        "think_ms": args.think_ms,
        "stagger_ms": args.stagger_ms,
        "scans": len(figures.scan_ms),
        "wall_s": round(wall, 2),
        "scans_per_s": round(len(figures.scan_ms) / wall, 1),
        "scan_p50_ms": round(pct(figures.scan_ms, 50), 2),
        "scan_p99_ms": round(pct(figures.scan_ms, 99), 2),
        "scan_mean_ms": round(statistics.fmean(figures.scan_ms), 2) if figures.scan_ms else None,
        **{
            f"route_{k}_lines_p{p}_ms": round(pct(v, p), 2)
            for k, v in sorted(figures.route_ms.items())
            for p in (50, 99)
        },
        "tours": sum(len(v) for v in figures.route_ms.values()),
        "walk_m": round(figures.optimal_m, 1),
        "walk_s_shape_m": round(figures.sshape_m, 1),
        "walk_saved_pct": round(saved, 1),
        "units_confirmed_by_answers": figures.units,
        "units_in_outbox": confirmed,
        "stock_delta_sum": delta,
        "durable": confirmed == figures.units and delta == -figures.units,
        "errors": figures.errors[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdas", type=int, default=50)
    parser.add_argument("--orders", type=int, default=2, help="pairs of 10- and 30-line orders")
    parser.add_argument("--think-ms", type=float, default=0.0, help="mean pause before a scan")
    parser.add_argument(
        "--stagger-ms", type=float, default=0.0, help="spread the PDAs' first scans over this"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="10 PDAs, one pair of orders")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    if args.quick:
        args.pdas, args.orders = 10, 1
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"floor benchmark: {result['pdas']} PDAs x {result['orders_per_pda']} orders, "
        f"think {result['think_ms']} ms, stagger {result['stagger_ms']} ms, "
        f"{result['scans']} scans in {result['wall_s']} s "
        f"({result['scans_per_s']}/s)"
    )
    print(
        f"  POST /api/v1/scan      p50 {result['scan_p50_ms']:7.2f} ms   "
        f"p99 {result['scan_p99_ms']:7.2f} ms"
    )
    for lines in (10, 30):
        if f"route_{lines}_lines_p50_ms" in result:
            print(
                f"  order scan -> tour ({lines:2d} lines) p50 "
                f"{result[f'route_{lines}_lines_p50_ms']:7.2f} ms   "
                f"p99 {result[f'route_{lines}_lines_p99_ms']:7.2f} ms"
            )
    print(
        f"  walking: {result['walk_m']} m exact vs {result['walk_s_shape_m']} m S-shape "
        f"({result['walk_saved_pct']} % shorter) over {result['tours']} tours"
    )
    print(
        f"  durability: {result['units_in_outbox']} units in the outbox for "
        f"{result['units_confirmed_by_answers']} confirmed, stock_delta sum "
        f"{result['stock_delta_sum']}: {'OK' if result['durable'] else 'MISMATCH'}"
    )
    if result["errors"]:
        print("  errors:", *result["errors"], sep="\n    ")


if __name__ == "__main__":
    main()
