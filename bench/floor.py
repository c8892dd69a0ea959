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

With ``--carts N`` (N totes a cart; issue 11) it runs the cart benchmark
instead: every PDA scans ``START``, binds a ``TOTE-…`` label per slot, walks
the tour with a put (the stop's tote scanned) per stop, and starts again;
over a pool of ``--open-tasks`` open orders beyond the ones the run picks.
Three modes run over the same seeded tasks, each on a fresh zone and daemon,
``--repeat`` times in rotated order: one order per START (no carts, the
baseline), carts with the background batcher off (``improve_s = 0``: every
START searches for ``propose_ms``) and on (``--improve-s``, ``--improve-ms``,
its nice-19 worker process). Printed per mode, medians over the runs: scan
p50/p99 (location, item and tote scans), START -> answer p50/p99 with the open
tasks then, the CPU the daemon, its worker and the client used; where scans
wait (p99 of scans overlapping a START in flight, and while the worker burns
CPU, against the others); walking per unit of the tours against the same
orders picked one per tour on S-shape and on optimal routes (each order's
locations chosen for its own shortest route); and durability (every unit the
answers confirmed in the outbox once per task and SKU, with the bound tote;
one ``task_picked`` per task with its tote).

    .venv/bin/python bench/floor.py            # 50 PDAs, 4 orders each
    .venv/bin/python bench/floor.py --quick    # 10 PDAs, 2 orders each
    .venv/bin/python bench/floor.py --think-ms 500   # pickers who take time
    .venv/bin/python bench/floor.py --carts 3          # 20 PDAs, 2 carts each, 2 runs a mode
    .venv/bin/python bench/floor.py --carts 3 --quick  # 6 PDAs, 1 cart each, 1 run
    .venv/bin/python bench/floor.py --surge            # peak protection (bench/_floor_surge.py)
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import os
import random
import signal
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
from edge.config import load_config  # noqa: E402
from edge.routing import choose_locations, heuristic_length, route  # noqa: E402
from edge.store.db import Store, Transaction, now_ms  # noqa: E402

AISLES, BLOCKS, BLOCK_LEN, PITCH = 20, 2, 20.0, 3.0
SLOTS_PER_BLOCK = 12
SKUS = AISLES * BLOCKS * SLOTS_PER_BLOCK  # one SKU per slot


def zone_locations() -> dict[str, tuple[int, float]]:
    """Location code -> routing-v1 (aisle, y) of every slot of the zone."""
    locations: dict[str, tuple[int, float]] = {}
    for aisle in range(AISLES):
        for block in range(BLOCKS):
            for k in range(SLOTS_PER_BLOCK):
                y = block * BLOCK_LEN + 1.0 + k * (BLOCK_LEN - 2.0) / (SLOTS_PER_BLOCK - 1)
                locations[f"A-{aisle:02d}-{block * SLOTS_PER_BLOCK + k:03d}"] = (aisle, round(y, 2))
    return locations


def sku_of(n: int) -> str:
    return f"SKU-{n:04d}"


def gtin14(n: int) -> str:
    base = f"{952000000000 + n:013d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(base)))
    return base + str((10 - total % 10) % 10)


Task = tuple[str, str, int, int, list[tuple[str, int]]]
"""(task, order_ref, priority, age_ms, [(sku, qty)]): one seeded order."""


def classic_tasks(pdas: int, orders: list[int], rng: random.Random) -> list[Task]:
    """Per PDA, its own orders (``O-<pda>-<n>``) of the given line counts."""
    tasks: list[Task] = []
    for p in range(pdas):
        for o, lines in enumerate(orders):
            chosen = rng.sample(range(SKUS), lines)
            tasks.append(
                (
                    f"T-{p}-{o}",
                    f"O-{p}-{o}",
                    0,
                    0,
                    [(sku_of(s), rng.choice((1, 1, 1, 2, 3))) for s in chosen],
                )
            )
    return tasks


def seed(store: Store, pdas: int, tasks: list[Task]) -> dict[str, Any]:
    """Zone, pickers, PDAs and orders; returns what the simulated PDAs need."""
    locations = zone_locations()
    codes = list(locations)
    skus = [sku_of(n) for n in range(SKUS)]
    stock = [(sku, codes[n], 1_000_000) for n, sku in enumerate(skus)]
    # a fifth of the SKUs also sit in a second slot: the location choice matters
    for n in range(0, len(skus), 5):
        stock.append((skus[n], codes[(n * 7 + 13) % len(codes)], 1_000_000))
    keys: list[str] = []
    now = now_ms()

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
        for task, order, priority, age_ms, lines in tasks:
            tx.execute(
                "INSERT INTO tasks (task, order_ref, priority, received_ms) VALUES (?, ?, ?, ?)",
                (task, order, priority, now - age_ms),
            )
            tx.executemany(
                "INSERT INTO task_lines (task, line, sku, qty) VALUES (?, ?, ?, ?)",
                [(task, str(i), sku, qty) for i, (sku, qty) in enumerate(lines)],
            )

    store.run(fn)
    for p in range(pdas):
        keys.append(auth.enroll_pda(store, f"pda-{p}")[1])
    slots: dict[str, list[str]] = {}
    for sku, code, _ in stock:
        slots.setdefault(sku, []).append(code)
    return {
        "locations": locations,
        "keys": keys,
        "gtin": {s: gtin14(n) for n, s in enumerate(skus)},
        "slots": slots,
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


def write_config(tmp: Path, carts: str = "") -> Path:
    """The daemon's configuration over ``floor.db`` in ``tmp`` (plus ``carts``)."""
    config = tmp / "floor.toml"
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
        + carts
    )
    return config


def children_of(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry.name))
    return found


def started_at(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot; None: gone): with the pid,
    it names one process even after the pid is reused."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def cpu_s(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (0.0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Daemon:
    """``python -m edge.api`` in its own process; reaped (with its batcher
    worker) on exit."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.base = ""
        self.proc: asyncio.subprocess.Process | None = None
        self.cpu: dict[str, float] = {}

    async def __aenter__(self) -> Daemon:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge.api",
            "--config",
            str(self.config),
            "--port",
            "0",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert self.proc.stdout is not None
            line = (await asyncio.wait_for(self.proc.stdout.readline(), 60)).decode()
            self.base = f"http://127.0.0.1:{int(line.split()[1])}"
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    def measure_cpu(self) -> None:
        """CPU seconds so far of the daemon and of its worker processes."""
        assert self.proc is not None
        workers = children_of(self.proc.pid)
        self.cpu = {"daemon": cpu_s(self.proc.pid), "worker": sum(map(cpu_s, workers))}

    async def __aexit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        workers = {pid: started_at(pid) for pid in children_of(proc.pid)}
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        # PR_SET_PDEATHSIG takes the worker along; never leave one behind
        for pid, since in workers.items():
            if since is not None and started_at(pid) == since:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    orders = [10, 30] * args.orders
    with tempfile.TemporaryDirectory(prefix="pickedge-floor-") as tmp:
        config = write_config(Path(tmp))
        db = Path(tmp) / "floor.db"
        with Store.open(db, box_id="bench-box") as store:
            world = seed(store, args.pdas, classic_tasks(args.pdas, orders, rng))
        async with Daemon(config) as daemon:
            figures = Figures()
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                started = time.perf_counter()
                await asyncio.gather(
                    *(
                        pda(
                            n,
                            daemon.base,
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


# ---------------------------------------------------------------------- carts

MODES = ("single", "carts", "carts+batcher")
TITLES = {
    "single": "one order per START",
    "carts": "carts, batcher off",
    "carts+batcher": "carts, batcher on",
}
SCAN_KINDS = ("location", "item", "tote")


def cart_tasks(count: int, rng: random.Random) -> list[Task]:
    """``count`` orders of 4-12 lines (1-3 units each), priority 0-2, received
    in the last 5 minutes (none becomes overdue during a run)."""
    tasks: list[Task] = []
    for k in range(count):
        chosen = rng.sample(range(SKUS), rng.randint(4, 12))
        tasks.append(
            (
                f"T-{k:05d}",
                f"O-{k:05d}",
                rng.choice((0, 0, 0, 1, 2)),
                rng.randrange(300_000),
                [(sku_of(s), rng.choice((1, 1, 1, 2, 3))) for s in chosen],
            )
        )
    return tasks


class CartFigures:
    def __init__(self, seeded: int) -> None:
        self.seeded = seeded
        self.scan_ms: dict[str, list[float]] = {kind: [] for kind in SCAN_KINDS}
        self.start_ms: list[float] = []
        #: (sent, answered) perf_counter times of every START and of every other scan
        self.start_spans: list[tuple[float, float]] = []
        self.scan_spans: list[tuple[float, float]] = []
        #: open tasks when each START was sent (seeded minus those taken by answered STARTs)
        self.start_open: list[int] = []
        self.taken = 0
        #: each tour as started: its route length and its stops (task, location, sku, qty)
        self.tours: list[tuple[float, list[tuple[str, str, str, int]]]] = []
        #: units the answers confirmed, per (task, sku)
        self.confirmed: dict[tuple[str, str], int] = {}
        #: the tote bound to each task
        self.totes: dict[str, str] = {}
        self.errors: list[str] = []


async def cart_pda(
    n: int,
    base: str,
    http: aiohttp.ClientSession,
    world: dict[str, Any],
    figures: CartFigures,
    starts: int,
    think_s: float,
    stagger_s: float,
    rng: random.Random,
) -> None:
    """START, bind a tote per slot, walk with a put per stop; ``starts`` times."""
    async with http.post(
        f"{base}/api/v1/sessions",
        json={"badge": f"BADGE-{n}"},
        headers={"X-Device-Key": world["keys"][n]},
    ) as r:
        token = (await r.json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    if stagger_s:
        await asyncio.sleep(rng.uniform(0, stagger_s))

    async def scan(code: str, kind: str, *expected: str) -> dict[str, Any] | None:
        if think_s:
            await asyncio.sleep(rng.expovariate(1.0 / think_s))
        started = time.perf_counter()
        async with http.post(
            f"{base}/api/v1/scan",
            json={"code": code, "scan_id": uuid.uuid4().hex},
            headers=headers,
        ) as r:
            body: dict[str, Any] = await r.json()
        answered = time.perf_counter()
        elapsed = (answered - started) * 1000.0
        (figures.start_ms if kind == "start" else figures.scan_ms[kind]).append(elapsed)
        (figures.start_spans if kind == "start" else figures.scan_spans).append((started, answered))
        if r.status != 200 or body.get("result") not in expected:
            figures.errors.append(f"PDA {n} {kind} {code}: {r.status} {body.get('result')}")
            return None
        return body

    for k in range(starts):
        open_now = figures.seeded - figures.taken
        answer = await scan("START", "start", "tour_started")
        if answer is None:
            return
        tour = answer["tour"]
        figures.start_open.append(open_now)
        figures.taken += len({s["task"] for s in tour["stops"]})
        figures.tours.append(
            (
                float(tour["route"]["length_m"]),
                [(s["task"], s["location"], s["sku"], s["qty"]) for s in tour["stops"]],
            )
        )
        while tour.get("cart") and tour["cart"]["next_slot"] is not None:
            slot = tour["cart"]["next_slot"]
            label = f"TOTE-{n}-{k}-{slot}"
            answer = await scan(label, "tote", "tote_bound")
            if answer is None:
                return
            task = next(t["task"] for t in tour["cart"]["totes"] if t["slot"] == slot)
            figures.totes[task] = label
            tour = answer["tour"]
        while tour["next_stop"] is not None:
            stop = next(s for s in tour["stops"] if s["stop"] == tour["next_stop"])
            if stop["state"] == "pending":
                answer = await scan(stop["location"], "location", "location_ok")
                if answer is None:
                    return
                tour = answer["tour"]
            for _ in range(stop["qty"] - stop["picked"]):
                answer = await scan(
                    world["gtin"][stop["sku"]], "item", "item_ok", "stop_done", "tour_done"
                )
                if answer is None:
                    return
                key = (stop["task"], stop["sku"])
                figures.confirmed[key] = figures.confirmed.get(key, 0) + 1
                tour = answer["tour"]
            now = next(s for s in tour["stops"] if s["stop"] == stop["stop"])
            if now["state"] == "to_put":
                answer = await scan(now["tote"], "tote", "stop_done", "tour_done")
                if answer is None:
                    return
                tour = answer["tour"]


def walking(
    layout: dict[str, Any],
    world: dict[str, Any],
    tours: list[tuple[float, list[tuple[str, str, str, int]]]],
) -> dict[str, Any]:
    """The tours' walk against the same tasks picked one order per tour, on
    S-shape and on optimal routes (each order's locations chosen for its own
    shortest route, as a single-order tour would). Also re-routes each tour
    over its stops: its length must agree to 1 mm."""
    tour_m = single_s_m = single_opt_m = 0.0
    units = orders = disagree = 0
    for length_m, stops in tours:
        tour_m += length_m
        units += sum(qty for *_, qty in stops)
        spots = [world["locations"][location] for _, location, _, _ in stops]
        again = route(
            {
                "layout": layout,
                "picks": [{"id": str(i), "aisle": a, "y": y} for i, (a, y) in enumerate(spots)],
            }
        )["length_m"]
        disagree += abs(again - length_m) > 0.001
        by_task: dict[str, list[str]] = {}
        for task, _, sku, _ in stops:
            by_task.setdefault(task, []).append(sku)
        for skus in by_task.values():
            orders += 1
            groups = [
                {
                    "id": str(i),
                    "candidates": [
                        {"aisle": world["locations"][code][0], "y": world["locations"][code][1]}
                        for code in world["slots"][sku]
                    ],
                }
                for i, sku in enumerate(skus)
            ]
            chosen = choose_locations(layout, groups, budget_ms=None)
            single_opt_m += chosen["route"]["length_m"]
            single_s_m += heuristic_length({"layout": layout, "picks": chosen["picks"]}, "s-shape")
    return {
        "tours": len(tours),
        "orders": orders,
        "units": units,
        "walk_m": round(tour_m, 1),
        "single_s_shape_m": round(single_s_m, 1),
        "single_optimal_m": round(single_opt_m, 1),
        "routes_disagree": disagree,
    }


def merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of time intervals, sorted, disjoint."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def split_by(
    scans: list[tuple[float, float]], busy: list[tuple[float, float]]
) -> dict[str, list[float]]:
    """Scan latencies (ms) split by whether the scan was sent inside a ``busy``
    interval (merged) or not. (By the sending time, not by overlap: a scan
    slowed by anything overlaps more of everything.)"""
    starts = [a for a, _ in busy]
    out: dict[str, list[float]] = {"during": [], "outside": []}
    for a, b in scans:
        i = bisect.bisect_right(starts, a) - 1  # the last interval starting before the send
        hit = i >= 0 and busy[i][1] > a
        out["during" if hit else "outside"].append((b - a) * 1000.0)
    return out


async def sample_cpu(pid: int, samples: list[tuple[float, float]], every_s: float) -> None:
    """Append (time, CPU seconds of ``pid``'s children) until cancelled."""
    while True:
        samples.append((time.perf_counter(), sum(map(cpu_s, children_of(pid)))))
        await asyncio.sleep(every_s)


def busy_spans(samples: list[tuple[float, float]], share: float) -> list[tuple[float, float]]:
    """Intervals between samples in which the sampled CPU use exceeded ``share``
    of one core."""
    return merged(
        [
            (t0, t1)
            for (t0, c0), (t1, c1) in itertools.pairwise(samples)
            if t1 > t0 and (c1 - c0) / (t1 - t0) > share
        ]
    )


def per_unit(walk: dict[str, Any], key: str) -> float:
    return float(walk[key]) / walk["units"] if walk["units"] else float("nan")


async def run_mode(
    args: argparse.Namespace, mode: str, tasks: list[Task], layout: dict[str, Any]
) -> dict[str, Any]:
    """One run of the daemon in ``mode`` over a fresh zone seeded with ``tasks``."""
    carts = ""
    starts = args.tours * args.carts
    if mode != "single":
        improve_s = args.improve_s if mode == "carts+batcher" else 0
        carts = textwrap.dedent(
            f"""\
            [carts]
            totes = {args.carts}
            units = {args.cart_units}
            improve_s = {improve_s}
            improve_ms = {args.improve_ms}
            """
        )
        starts = args.tours
    with tempfile.TemporaryDirectory(prefix="pickedge-floor-") as tmp:
        config = write_config(Path(tmp), carts)
        db = Path(tmp) / "floor.db"
        with Store.open(db, box_id="bench-box") as store:
            world = seed(store, args.pdas, tasks)
        figures = CartFigures(len(tasks))
        async with Daemon(config) as daemon:
            # a box in service: the batcher's worker is up and has improved once
            await asyncio.sleep(args.warm_s)
            daemon.measure_cpu()
            cpu_before, client_before = daemon.cpu, time.process_time()
            load = os.getloadavg()[0]
            worker_cpu: list[tuple[float, float]] = []
            assert daemon.proc is not None
            sampler = asyncio.create_task(sample_cpu(daemon.proc.pid, worker_cpu, 0.1))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                started = time.perf_counter()
                await asyncio.gather(
                    *(
                        cart_pda(
                            n,
                            daemon.base,
                            http,
                            world,
                            figures,
                            starts,
                            args.think_ms / 1000.0,
                            args.stagger_ms / 1000.0,
                            random.Random(args.seed + n),
                        )
                        for n in range(args.pdas)
                    )
                )
                wall = time.perf_counter() - started
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            daemon.measure_cpu()
            cpu = {k: daemon.cpu[k] - cpu_before[k] for k in daemon.cpu}
            cpu["client"] = time.process_time() - client_before
        with Store.open(db, box_id="bench-box") as store:
            rows = [
                (r["type"], msgpack.unpackb(r["payload"]))
                for r in store.query("SELECT type, payload FROM outbox")
            ]
    in_outbox: dict[tuple[str, str], int] = {}
    tote_ok = True
    for kind, event in rows:
        if kind == "pick_confirmed":
            key = (event["task"], event["sku"])
            in_outbox[key] = in_outbox.get(key, 0) + event["qty"]
            tote_ok &= event.get("tote") == figures.totes.get(event["task"])
    picked = {e["task"]: e.get("totes") for kind, e in rows if kind == "task_picked"}
    started_tasks = {task for _, stops in figures.tours for task, *_ in stops}
    units = sum(figures.confirmed.values())
    delta = sum(e["qty"] for kind, e in rows if kind == "stock_delta")
    scans = [ms for kind in SCAN_KINDS for ms in figures.scan_ms[kind]]
    # where the time goes: scans while the planner thread works on a START,
    # and while the batcher's worker process burns CPU (> 30 % of a core)
    by_start = split_by(figures.scan_spans, merged(figures.start_spans))
    by_worker = split_by(figures.scan_spans, busy_spans(worker_cpu, 0.3))
    return {
        "mode": mode,
        "load_1min": round(load, 2),
        "wall_s": round(wall, 2),
        "scans": len(scans),
        "scans_per_s": round(len(scans) / wall, 1),
        "scan_p50_ms": round(pct(scans, 50), 2),
        "scan_p99_ms": round(pct(scans, 99), 2),
        "scan_max_ms": round(max(scans), 2) if scans else None,
        **{f"{kind}_p99_ms": round(pct(figures.scan_ms[kind], 99), 2) for kind in SCAN_KINDS},
        "scan_samples": scans,
        "starts": len(figures.start_ms),
        "start_p50_ms": round(pct(figures.start_ms, 50), 2),
        "start_p99_ms": round(pct(figures.start_ms, 99), 2),
        "start_samples": figures.start_ms,
        "open_at_start": [min(figures.start_open), max(figures.start_open)]
        if figures.start_open
        else None,
        "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
        "scan_by_start": by_start,
        "scan_by_worker": by_worker,
        "walk": walking(layout, world, figures.tours),
        "units_confirmed_by_answers": units,
        "units_in_outbox": sum(in_outbox.values()),
        "stock_delta_sum": delta,
        "durable": in_outbox == figures.confirmed and delta == -units,
        "totes_ok": tote_ok,
        "task_picked_ok": set(picked) == started_tasks
        and all(picked[t] == ([figures.totes[t]] if t in figures.totes else []) for t in picked),
        "errors": figures.errors[:5],
    }


async def run_carts(args: argparse.Namespace) -> dict[str, Any]:
    """Every mode over the same seeded tasks, ``args.repeat`` times (the modes
    in a rotated order each time, so drift on a busy box spreads evenly)."""
    work = args.pdas * args.tours * args.carts
    tasks = cart_tasks(args.open_tasks + work, random.Random(args.seed))
    with tempfile.TemporaryDirectory(prefix="pickedge-floor-") as tmp:
        layout = load_config(write_config(Path(tmp))).layout_dict()
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for rep in range(args.repeat):
        for mode in MODES[rep % 3 :] + MODES[: rep % 3]:
            result = await run_mode(args, mode, tasks, layout)
            runs[mode].append(result)
            if not args.json:
                print(f"  [{rep + 1}/{args.repeat}] {row(mode, [result])}", flush=True)
    return {
        "pdas": args.pdas,
        "totes": args.carts,
        "cart_units": args.cart_units,
        "tours": args.tours,
        "tasks": len(tasks),
        "think_ms": args.think_ms,
        "repeat": args.repeat,
        "runs": runs,
    }


def median_of(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in results)


def row(mode: str, results: list[dict[str, Any]]) -> str:
    """One line of figures; medians over the repetitions."""
    cpu = {k: statistics.median(r["cpu_s"][k] for r in results) for k in results[0]["cpu_s"]}
    wall = median_of(results, "wall_s")
    opened = [n for r in results if r["open_at_start"] for n in r["open_at_start"]]
    return (
        f"{TITLES[mode]:<20} scan p50 {median_of(results, 'scan_p50_ms'):6.2f}"
        f" p99 {median_of(results, 'scan_p99_ms'):6.2f} ms"
        f" (loc {median_of(results, 'location_p99_ms'):5.1f}"
        f" item {median_of(results, 'item_p99_ms'):5.1f}"
        f" tote {median_of(results, 'tote_p99_ms'):5.1f})"
        f" | START p50 {median_of(results, 'start_p50_ms'):6.1f}"
        f" p99 {median_of(results, 'start_p99_ms'):6.1f} ms"
        f" ({sum(r['starts'] for r in results)}, {min(opened, default=0)}-"
        f"{max(opened, default=0)} open)"
        f" | {median_of(results, 'scans_per_s'):4.0f} scans/s in {wall:3.0f} s,"
        f" CPU daemon {cpu['daemon'] / wall:4.0%} worker {cpu['worker'] / wall:4.0%}"
        f" client {cpu['client'] / wall:4.0%}, load {median_of(results, 'load_1min'):.1f}"
    )


def report_carts(result: dict[str, Any]) -> None:
    runs: dict[str, list[dict[str, Any]]] = result["runs"]
    print(
        f"floor benchmark, carts: {result['pdas']} PDAs, carts of {result['totes']} totes /"
        f" {result['cart_units']} units, {result['tours']} carts per PDA (one order per START:"
        f" {result['tours'] * result['totes']} STARTs), {result['tasks']} tasks seeded,"
        f" think {result['think_ms']} ms; medians over {result['repeat']} run(s) per mode"
    )
    for mode in MODES:
        print(f"  {row(mode, runs[mode])}")
    on, off = runs["carts+batcher"], runs["carts"]

    def pooled(results: list[dict[str, Any]], key: str) -> float:
        return pct([ms for r in results for ms in r[key]], 99)

    p99_ratio = median_of(on, "scan_p99_ms") / median_of(off, "scan_p99_ms")
    p50_ratio = median_of(on, "scan_p50_ms") / median_of(off, "scan_p50_ms")
    print(
        f"  batcher on / off: scan p99 x{p99_ratio:.2f}, p50 x{p50_ratio:.2f};"
        f" all runs pooled: scan p99 {pooled(on, 'scan_samples'):.2f}"
        f" vs {pooled(off, 'scan_samples'):.2f} ms"
        f" (carts off {pooled(runs['single'], 'scan_samples'):.2f}),"
        f" START p99 {pooled(on, 'start_samples'):.1f} vs {pooled(off, 'start_samples'):.1f} ms"
    )
    print("  where scans wait (sent while ...; all runs pooled; p99 ms, number of scans):")
    for mode in MODES:

        def part(key: str, side: str, results: list[dict[str, Any]] = runs[mode]) -> str:
            values = [ms for r in results for ms in r[key][side]]
            return f"{pct(values, 99):6.1f} ({len(values)})"

        line = (
            f"    {TITLES[mode]:<20} a START in flight {part('scan_by_start', 'during')},"
            f" otherwise {part('scan_by_start', 'outside')}"
        )
        if mode == "carts+batcher":
            line += (
                f"; while the worker runs {part('scan_by_worker', 'during')},"
                f" otherwise {part('scan_by_worker', 'outside')}"
            )
        print(line)
    print("  walking per unit (the tours vs the same orders one per tour, S-shape / optimal):")
    for mode in MODES:
        walk = {
            k: sum(r["walk"][k] for r in runs[mode])
            for k in (
                "tours",
                "orders",
                "units",
                "walk_m",
                "single_s_shape_m",
                "single_optimal_m",
                "routes_disagree",
            )
        }
        m = per_unit(walk, "walk_m")
        s = per_unit(walk, "single_s_shape_m")
        o = per_unit(walk, "single_optimal_m")
        print(
            f"    {TITLES[mode]:<20} {m:5.2f} m/unit vs {s:5.2f} S-shape"
            f" ({100 * (m / s - 1):+.0f} %) vs {o:5.2f} optimal ({100 * (m / o - 1):+.0f} %);"
            f" {walk['tours']} tours,"
            f" {walk['orders']} orders, {walk['units']} units"
            + (
                f"; {walk['routes_disagree']} route lengths DISAGREE"
                if walk["routes_disagree"]
                else ""
            )
        )
    bad = [
        f"{TITLES[mode]} run {i + 1}"
        for mode in MODES
        for i, r in enumerate(runs[mode])
        if not (r["durable"] and r["totes_ok"] and r["task_picked_ok"])
    ]
    units = sum(r["units_in_outbox"] for rs in runs.values() for r in rs)
    print(
        f"  durability: {units} units confirmed, each in the outbox once per (task, SKU),"
        f" stock_delta matching, pick_confirmed with the bound tote, task_picked per task:"
        f" {'OK' if not bad else 'MISMATCH in ' + ', '.join(bad)}"
    )
    errors = [e for rs in runs.values() for r in rs for e in r["errors"]]
    if errors:
        print("  errors:", *errors[:10], sep="\n    ")


def report_classic(result: dict[str, Any]) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pdas", type=int, help="simulated PDAs (50; with --carts 20)")
    parser.add_argument("--orders", type=int, default=2, help="pairs of 10- and 30-line orders")
    parser.add_argument(
        "--think-ms", type=float, help="mean pause before a scan (0; with --carts 100)"
    )
    parser.add_argument(
        "--stagger-ms",
        type=float,
        help="spread the PDAs' first scans over this (0; with --carts 3000)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--carts", type=int, default=1, help="totes per cart (>= 2: the cart benchmark)"
    )
    parser.add_argument("--cart-units", type=int, default=60, help="most units on one cart")
    parser.add_argument(
        "--open-tasks",
        type=int,
        default=200,
        help="open tasks beyond the ones the run picks (the pool proposals choose from)",
    )
    parser.add_argument("--tours", type=int, default=2, help="carts each PDA picks")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each mode (carts)")
    parser.add_argument(
        "--improve-s", type=float, default=2.0, help="[carts] improve_s with the batcher on"
    )
    parser.add_argument("--improve-ms", type=int, default=1000, help="[carts] improve_ms")
    parser.add_argument(
        "--warm-s",
        type=float,
        default=2.5,
        help="wait after the daemon is up (its batcher worker spawns and improves once)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10 PDAs, one pair of orders (with --carts: 6 PDAs, one cart each, one run)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    import _floor_surge as floor_surge  # beside this file; it imports this one

    floor_surge.add_arguments(parser)
    args = parser.parse_args()
    if args.surge:
        args.pdas = 10 if args.pdas is None else args.pdas
        args.think_ms = 400.0 if args.think_ms is None else args.think_ms
        floor_surge.main(args)
        return
    carts = args.carts > 1
    if args.quick and carts:
        args.pdas = 6 if args.pdas is None else args.pdas
        args.tours, args.repeat = 1, 1
        args.think_ms = 20.0 if args.think_ms is None else args.think_ms
        args.stagger_ms = 500.0 if args.stagger_ms is None else args.stagger_ms
        args.warm_s = min(args.warm_s, 2.0)
    elif args.quick:
        args.pdas, args.orders = 10, 1
    args.pdas = args.pdas if args.pdas is not None else (20 if carts else 50)
    args.think_ms = args.think_ms if args.think_ms is not None else (100.0 if carts else 0.0)
    args.stagger_ms = args.stagger_ms if args.stagger_ms is not None else (3000.0 if carts else 0.0)
    if carts:
        result = asyncio.run(run_carts(args))
        if args.json:
            for runs in result["runs"].values():
                for r in runs:
                    for key in ("scan_samples", "start_samples", "scan_by_start", "scan_by_worker"):
                        del r[key]
            print(json.dumps(result))
        else:
            report_carts(result)
        return
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return
    report_classic(result)


if __name__ == "__main__":
    main()
