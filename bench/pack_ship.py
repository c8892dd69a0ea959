"""Pack and ship on the real daemon: pack station scan → label on the printer, and
dock portal read → carton departed (the two goals of issue 10).

Both parts build the daemon from a configuration the way ``pickedge run`` does
(``edge.wiring.build_daemon``: SQLite store on disk with its sync mark and SSCC
range, PDA API on a free port, device supervisor, ``FloorInbox``, dock ticker,
maintenance) and run it in this process; only the devices are simulators. The
simulators share the daemon's event loop (and its CPU).

1. **Pack stations.** Each station has a ``zpl-printer`` device whose URL is a
   :class:`~simulators.printer.PrinterSimulator` on a loopback port, so a label
   job goes the daemon's way: ``PackingService`` → ``DevicePrinters`` → the
   driver's ``PrinterLink`` (``~HS``, job + ``~HS``, over TCP). Picked orders
   (1–3 SKUs, 1–3 units each) are written into the store as picking leaves
   them, then packed by calling ``PackingService.scan`` as the PDA API does (a
   ``scan_id`` per scan): the tote, each unit, ``CLOSE`` after each carton
   (1–3 per order), back to back, no packer's think time. Clocks
   (``time.perf_counter``, one process):

   - *scan → committed answer*: from calling ``scan`` to the packer's push of
     the answer (a ``PackingService.subscribe`` listener, called right after
     the scan's commit and before any printing), for every scan and for the
     ``CLOSE`` that finishes an order (its answer is ``order_packed``);
   - *CLOSE → label bytes at the printer*: from calling ``scan`` with that
     ``CLOSE`` to the moment the simulator's connection handler has the job's
     first ``^XA…^XZ`` format off the socket (read and split from the stream,
     before the simulator parses it: :class:`TimedPrinter`). It includes the commit, the ``~HS`` the
     link asks before sending (answered by the simulator, in this process)
     and the job's trip over loopback. Goal: p99 ≤ 50 ms;
   - *CLOSE → shipped answer*: until ``scan`` returns (the ``~HS`` after the
     job, the commit that records it printed and confirms the shipment).

   Per run: p50/p99 over the run's orders; printed: the median over runs.

2. **Dock portal.** 200 shipped cartons (50 shipments of 4) are expected at
   door D1; an ``impinj-iot`` device at the door (``role = "dock_door"``) reads
   Impinj IoT JSON from a real Mosquitto (own config, free port). The carton
   flow is :func:`simulators.rfid_mqtt.portal_pass` — 4 antennas each reading
   a carton 1–5 times while it is in the field (1.5 s), a carton every
   60 s / 200 — published *paced*, each read (one ``ReaderEvent`` per message,
   the reader's default) when the wall clock reaches its reader timestamp, by
   an :class:`~simulators.rfid_mqtt.ImpinjReaderSim` (``pass_portal`` publishes
   a whole pass at once, which would test a burst, not a door). Box side: the
   Impinj driver, smoothing, ``FloorInbox``, ``dock.on_tag`` in the store.
   Per carton: from handing its first read to the MQTT client to the moment
   ``FloorInbox`` calls its listeners for the carton's ``seen`` (after the
   transaction that set ``departed_ms`` committed). Goal: every departure
   within 1 s of its first read. Duplicates: raw reads beyond the first per
   carton (absorbed by smoothing) and ``seen`` of a departed carton again
   (``duplicate`` at the dock); ``carton_departed`` must be one per carton.

    .venv/bin/python bench/pack_ship.py           # 200 orders x 5 runs; 200 cartons in 60 s x 3
    .venv/bin/python bench/pack_ship.py --quick   # 10 orders, 1 run; 20 cartons in 6 s, once
    .venv/bin/python bench/pack_ship.py --stations 4 --only pack
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from biip.checksums import gs1_standard_check_digit

from devices.codes.epc import decode_epc_info, encode_sscc96
from devices.events import DeviceEvent, PresenceKind, TagPresenceEvent
from devices.printer.zpl import Format, StreamItem
from edge.config import Config, load_config
from edge.shipping import sscc
from edge.shipping.inbox import FloorInbox
from edge.shipping.service import PackingService
from edge.store import Store, Transaction
from edge.store.db import now_ms
from edge.wiring import Daemon, build_daemon
from simulators.broker import MosquittoBroker
from simulators.printer import PrinterSimulator
from simulators.rfid_mqtt import ImpinjReaderSim, portal_pass

PREFIX = "7612345"  # the site's GS1 company prefix
DOOR = "D1"
PORTAL = "D1-portal"
PORTAL_TOPIC = "impinj/d1/events"

PACK_GOAL_MS = 50.0
DOCK_GOAL_MS = 1000.0


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (as bench/store.py)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def gtin14(base13: str) -> str:
    return base13 + str(gs1_standard_check_digit(base13))


SKUS = {f"SKU-{i:02d}": gtin14(f"095212340{i:04d}") for i in range(12)}  # sku → GTIN-14


# ------------------------------------------------------------------ the daemon


def daemon_config(
    workdir: Path,
    *,
    stations: Sequence[tuple[str, str]] = (),
    broker: MosquittoBroker | None = None,
) -> Config:
    """A configuration file as a site would write it, loaded like ``pickedge run``:
    ``stations`` = (station, printer URL); ``broker``: the dock portal on it."""
    toml = [
        '[box]\nid = "bench"',
        '[store]\npath = "box.db"',
        "[api]\nport = 0",
        f'[shipping]\ngs1_prefix = "{PREFIX}"\ndoor = "{DOOR}"',
    ]
    if broker is not None:
        (workdir / "mqtt.secret").write_text(broker.password + "\n")
        (workdir / "mqtt.secret").chmod(0o600)  # the daemon refuses one others can read
        toml.append(
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            f'username = "{broker.username}"\npassword_file = "mqtt.secret"'
        )
    for station, url in stations:
        toml.append(
            f'[[devices]]\nid = "{station}-printer"\ndriver = "zpl-printer"\n'
            f'role = "pack_station"\nurl = "{url}"\nbound_to = "{station}"'
        )
    if broker is not None:
        toml.append(
            f'[[devices]]\nid = "{PORTAL}"\ndriver = "impinj-iot"\nrole = "dock_door"\n'
            f'topic = "{PORTAL_TOPIC}"\nbound_to = "{DOOR}"'
        )
    path = workdir / "pickedge.toml"
    path.write_text("\n\n".join(toml) + "\n")
    return load_config(path, env={})


@contextlib.asynccontextmanager
async def running(daemon: Daemon) -> AsyncIterator[Daemon]:
    """Run ``daemon`` until the block ends; enter once every device is connected."""
    task = asyncio.create_task(daemon.run(install_signals=False))
    try:
        drivers = daemon.parts["devices"].drivers.values()
        async with asyncio.timeout(15):
            while not all(d.stats.connected for d in drivers):  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        yield daemon
    finally:
        daemon.stop()
        await task


# ------------------------------------------------------------------ pack stations


class TimedPrinter(PrinterSimulator):
    """A printer simulator that notes when a job's first format is off the socket."""

    def __init__(self) -> None:
        super().__init__()
        self.expecting: asyncio.Future[float] | None = None

    async def _handle(self, item: StreamItem, writer: asyncio.StreamWriter) -> None:
        waiting = self.expecting
        if isinstance(item, Format) and waiting is not None and not waiting.done():
            waiting.set_result(time.perf_counter())
        await super()._handle(item, writer)


@dataclass(frozen=True, slots=True)
class Order:
    ref: str
    tote: str
    lines: dict[str, int]  # sku → units picked
    #: the GTINs scanned into each carton, in order (each carton ends with CLOSE)
    cartons: tuple[tuple[str, ...], ...]


def plan_order(ref: str, tote: str, rng: random.Random) -> Order:
    """1–3 SKUs of 1–3 units each, shuffled into 1–3 cartons."""
    lines = {sku: rng.randint(1, 3) for sku in rng.sample(sorted(SKUS), rng.randint(1, 3))}
    units = [SKUS[sku] for sku, qty in lines.items() for _ in range(qty)]
    rng.shuffle(units)
    cuts = sorted(rng.sample(range(1, len(units)), min(len(units) - 1, rng.randint(0, 2))))
    bounds = zip([0, *cuts], [*cuts, len(units)], strict=True)
    return Order(ref, tote, lines, tuple(tuple(units[a:b]) for a, b in bounds))


def seed_orders(store: Store, orders: Sequence[Order]) -> None:
    """The items, and each order as picking leaves it: one task, done, in its tote."""

    def fn(tx: Transaction) -> None:
        for sku, gtin in SKUS.items():
            tx.execute("INSERT OR IGNORE INTO items (sku) VALUES (?)", (sku,))
            tx.execute("INSERT OR IGNORE INTO item_gtins (gtin, sku) VALUES (?, ?)", (gtin, sku))
        for o in orders:
            task = f"T-{o.ref}"
            tx.execute(
                "INSERT INTO tasks (task, order_ref, tote, state, ship_postcode, ship_region, "
                "received_ms, finished_ms) VALUES (?, ?, ?, 'done', '8001', 'ZH', ?, ?)",
                (task, o.ref, o.tote, now_ms(), now_ms()),
            )
            tx.executemany(
                "INSERT INTO task_lines (task, line, sku, qty, picked, state) "
                "VALUES (?, ?, ?, ?, ?, 'picked')",
                [(task, str(k), sku, n, n) for k, (sku, n) in enumerate(o.lines.items(), start=1)],
            )

    store.run(fn)


@dataclass
class PackTimes:
    """Milliseconds per scan / per order of one run."""

    commit_any: list[float] = field(default_factory=list)  # every scan → committed answer
    commit_last: list[float] = field(default_factory=list)  # finishing CLOSE → committed
    label: list[float] = field(default_factory=list)  # finishing CLOSE → job at printer
    shipped: list[float] = field(default_factory=list)  # finishing CLOSE → scan returned
    results: dict[str, int] = field(default_factory=dict)


async def pack_station(
    svc: PackingService,
    station: str,
    printer: TimedPrinter,
    orders: Sequence[Order],
    times: PackTimes,
) -> None:
    """Pack ``orders`` one after the other at ``station``, scans back to back."""
    committed: list[float] = []

    def pushed(packer: str, message: dict[str, object]) -> None:
        if packer == station:
            committed.append(time.perf_counter())

    svc.subscribe(pushed)
    loop = asyncio.get_running_loop()
    n = 0
    for order in orders:
        scans = [order.tote]
        for carton in order.cartons:
            scans += [*carton, "CLOSE"]
        for k, code in enumerate(scans):
            last = k == len(scans) - 1
            n += 1
            committed.clear()
            if last:
                printer.expecting = loop.create_future()
            t0 = time.perf_counter()
            outcome = await svc.scan(station, code, packer=station, scan_id=f"{station}-{n}")
            done = time.perf_counter()
            result = str(outcome.json()["result"])
            times.results[result] = times.results.get(result, 0) + 1
            times.commit_any.append((committed[0] - t0) * 1000)
            if last:
                assert printer.expecting is not None
                at_printer = await asyncio.wait_for(printer.expecting, 5)
                times.commit_last.append((committed[0] - t0) * 1000)
                times.label.append((at_printer - t0) * 1000)
                times.shipped.append((done - t0) * 1000)


async def pack_run(workdir: Path, *, orders: int, stations: int, seed: int) -> PackTimes:
    async with contextlib.AsyncExitStack() as stack:
        printers = [await stack.enter_async_context(TimedPrinter()) for _ in range(stations)]
        names = [f"P{i + 1}" for i in range(stations)]
        cfg = daemon_config(
            workdir, stations=[(s, p.url) for s, p in zip(names, printers, strict=True)]
        )
        daemon = build_daemon(cfg)
        rng = random.Random(seed)
        plans = [
            [
                plan_order(f"{s}-O-{n:05d}", f"{s}-TOTE-{n:05d}", rng)
                for n in range(orders // stations)
            ]
            for s in names
        ]
        seed_orders(daemon.store, [o for plan in plans for o in plan])
        times = PackTimes()
        await stack.enter_async_context(running(daemon))
        svc: PackingService = daemon.parts["packing"]
        await asyncio.gather(
            *(
                pack_station(svc, s, p, plan, times)
                for s, p, plan in zip(names, printers, plans, strict=True)
            )
        )
        shipped = daemon.store.query("SELECT COUNT(*) AS n FROM shipments")[0]["n"]
        labels = sum(len(p.printed) for p in printers)
        cartons = sum(len(o.cartons) for plan in plans for o in plan)
        assert shipped == sum(len(p) for p in plans), (shipped, times.results)
        assert labels == cartons, (labels, cartons)
        for code in daemon.store.query("SELECT sscc FROM cartons"):
            assert sscc.is_valid(code["sscc"])
        return times


# ------------------------------------------------------------------ the dock


def seed_departures(store: Store, cartons: int, per_shipment: int = 4) -> list[str]:
    """``cartons`` shipped cartons expected at :data:`DOOR` (as packing leaves them)."""
    codes = [sscc.format_sscc(9, PREFIX, serial) for serial in range(1, cartons + 1)]

    def fn(tx: Transaction) -> None:
        now = now_ms()
        for k in range(0, cartons, per_shipment):
            shipment, order = f"S-{k:05d}", f"O-{k:05d}"
            tx.execute(
                "INSERT INTO shipments (shipment, order_ref, door, confirmed_ms) "
                "VALUES (?, ?, ?, ?)",
                (shipment, order, DOOR, now),
            )
            for code in codes[k : k + per_shipment]:
                tx.execute(
                    "INSERT INTO cartons (order_ref, station, state, sscc, shipment, door, "
                    "opened_ms, closed_ms) VALUES (?, 'P1', 'shipped', ?, ?, ?, ?, ?)",
                    (order, code, shipment, DOOR, now, now),
                )

    store.run(fn)
    return codes


@dataclass
class DockRun:
    latencies: list[float]  # ms per carton, first read published → departure committed
    cartons: int
    reads: int
    departed_events: int
    outcomes: dict[str, int]
    publish_lag_max: float  # ms the publisher ran behind the reader's clock


async def dock_run(workdir: Path, *, cartons: int, seconds: float, seed: int) -> DockRun:
    with MosquittoBroker(workdir / "mosquitto") as broker:
        return await _dock_pass(workdir, broker, cartons=cartons, seconds=seconds, seed=seed)


async def _dock_pass(
    workdir: Path, broker: MosquittoBroker, *, cartons: int, seconds: float, seed: int
) -> DockRun:
    cfg = daemon_config(workdir, broker=broker)
    daemon = build_daemon(cfg)
    codes = seed_departures(daemon.store, cartons)
    epcs = [encode_sscc96(c, company_prefix_digits=len(PREFIX)) for c in codes]
    first_sent: dict[str, float] = {}
    departed: dict[str, float] = {}

    def on_event(event: DeviceEvent) -> None:
        # FloorInbox calls listeners once the read's transaction committed
        if (
            isinstance(event, TagPresenceEvent)
            and event.kind is PresenceKind.SEEN
            and event.epc_hex not in departed
        ):
            departed[event.epc_hex] = time.perf_counter()

    inbox: FloorInbox = daemon.parts["device_events"]
    inbox.listeners.append(on_event)
    async with (
        running(daemon),
        ImpinjReaderSim(
            broker.settings(prefix="bench-sim"),
            reader_id=PORTAL,
            topic=PORTAL_TOPIC,
            tags=[],
            antennas=4,
            rate=0,
            seed=seed,
        ) as reader,
    ):
        reads = portal_pass(
            epcs,
            start=time.time() + 0.2,
            rng=random.Random(seed),
            antennas=4,
            gap=seconds / cartons,
        )
        lag = 0.0
        for read in reads:
            wait = read.at - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            lag = max(lag, -wait)
            if read.epc_hex not in first_sent:
                first_sent[read.epc_hex] = time.perf_counter()
            await reader.publish_reads([read])
        async with asyncio.timeout(10):
            while len(departed) < cartons:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # the last reads' duplicates, if any
        events = daemon.store.query(
            "SELECT COUNT(*) AS n FROM outbox WHERE type = 'carton_departed'"
        )
        left = daemon.store.query("SELECT COUNT(*) AS n FROM cartons WHERE departed_ms IS NULL")
        assert left[0]["n"] == 0, left
        assert {decode_epc_info(e).gs1_key for e in departed} == set(codes)
        return DockRun(
            latencies=[(departed[e] - first_sent[e]) * 1000 for e in epcs],
            cartons=cartons,
            reads=len(reads),
            departed_events=int(events[0]["n"]),
            outcomes=dict(inbox.outcomes),
            publish_lag_max=lag * 1000,
        )


# ------------------------------------------------------------------ the table

Row = tuple[str, str, str, str]  # figure, goal, measured, verdict


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def pack_rows(runs: list[PackTimes]) -> list[Row]:
    def p50_p99(name: str) -> str:
        p50 = statistics.median(pct(getattr(r, name), 0.5) for r in runs)
        p99 = statistics.median(pct(getattr(r, name), 0.99) for r in runs)
        return f"{p50:.1f} / {p99:.1f} ms"

    worst = max(pct(r.label, 0.99) for r in runs)
    orders = sum(len(r.label) for r in runs)
    return [
        (
            "finishing CLOSE → label bytes at the printer, p50 / p99",
            f"p99 ≤ {PACK_GOAL_MS:.0f} ms",
            f"{p50_p99('label')} ({orders:,} orders)",
            verdict(worst <= PACK_GOAL_MS),
        ),
        ("… of which scan → committed answer (order_packed)", "—", p50_p99("commit_last"), ""),
        ("… worst run's p99 to the printer", "", f"{worst:.1f} ms", ""),
        ("finishing CLOSE → shipped answer (printed, confirmed)", "—", p50_p99("shipped"), ""),
        (
            "every pack scan → committed answer, p50 / p99",
            "—",
            f"{p50_p99('commit_any')} ({sum(len(r.commit_any) for r in runs):,} scans)",
            "",
        ),
    ]


def dock_rows(runs: list[DockRun]) -> list[Row]:
    def median(q: float) -> float:
        return statistics.median(pct(r.latencies, q) for r in runs)

    worst = max(max(r.latencies) for r in runs)
    late = sum(x > DOCK_GOAL_MS for r in runs for x in r.latencies)
    cartons = sum(r.cartons for r in runs)
    reads = sum(r.reads for r in runs)
    at_dock = sum(r.outcomes.get("duplicate", 0) for r in runs)
    events = sum(r.departed_events for r in runs)
    return [
        (
            "first read published → departure committed, p50 / p99",
            "all ≤ 1 s",
            f"{median(0.5):.1f} / {median(0.99):.1f} ms",
            verdict(worst <= DOCK_GOAL_MS),
        ),
        (
            "… slowest carton / late (> 1 s)",
            "0 late",
            f"{worst:.1f} ms / {late} of {cartons:,}",
            verdict(late == 0),
        ),
        (
            "reads / duplicate reads / `duplicate` at the dock",
            "—",
            f"{reads:,} / {reads - cartons:,} / {at_dock}",
            "",
        ),
        (
            "carton_departed events",
            "1 per carton",
            f"{events:,} for {cartons:,}",
            verdict(events == cartons),
        ),
    ]


def print_table(title: str, rows: list[Row]) -> None:
    header: Row = ("figure", "goal", "measured", "verdict")
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(3)]
    print(f"\n{title}")
    for figure, goal, measured, ok in [header, *rows]:
        cells = zip((figure, goal, measured), widths, strict=True)
        print("  " + "  ".join(f"{cell:<{w}}" for cell, w in cells) + f"  {ok}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 orders, 20 cartons, one run each")
    parser.add_argument("--orders", type=int, default=200, help="orders per pack run")
    parser.add_argument("--stations", type=int, default=1, help="pack stations scanning at once")
    parser.add_argument("--runs", type=int, default=5, help="pack runs")
    parser.add_argument("--cartons", type=int, default=200, help="cartons through the door")
    parser.add_argument("--seconds", type=float, default=60.0, help="the door's pass")
    parser.add_argument("--dock-runs", type=int, default=3, help="dock passes")
    parser.add_argument("--only", choices=("pack", "dock"), help="one of the two parts")
    args = parser.parse_args()
    if args.quick:
        args.orders, args.runs, args.cartons, args.seconds, args.dock_runs = 10, 1, 20, 6.0, 1
    with tempfile.TemporaryDirectory(prefix="pickedge-bench-", dir=Path.cwd()) as tmp:
        work = Path(tmp)
        if args.only != "dock":
            pack = []
            for r in range(args.runs):
                (work / f"pack-{r}").mkdir()
                pack.append(
                    asyncio.run(
                        pack_run(
                            work / f"pack-{r}", orders=args.orders, stations=args.stations, seed=r
                        )
                    )
                )
            print_table(
                f"pack stations: {args.stations} station(s) scanning back to back, "
                f"{args.orders} orders per run; median over {args.runs} run(s) "
                "of each run's p50 / p99",
                pack_rows(pack),
            )
        if args.only != "pack":
            dock = []
            for r in range(args.dock_runs):
                (work / f"dock-{r}").mkdir()
                dock.append(
                    asyncio.run(
                        dock_run(
                            work / f"dock-{r}", cartons=args.cartons, seconds=args.seconds, seed=r
                        )
                    )
                )
            lag = max(d.publish_lag_max for d in dock)
            print_table(
                f"dock portal: {args.cartons} cartons in {args.seconds:.0f} s through {DOOR}, "
                f"4 antennas, Impinj over Mosquitto; median over {args.dock_runs} pass(es) "
                f"(publisher at most {lag:.0f} ms behind the reader's clock)",
                dock_rows(dock),
            )


if __name__ == "__main__":
    main()
