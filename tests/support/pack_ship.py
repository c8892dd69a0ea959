"""The pack-and-ship kill loop, :func:`pack_ship_kill_loop`, and its machinery
(tests/e2e/test_e2e_pack_ship_kills.py; with power cuts instead of kills,
tests/durability/test_powercut_pack_ship.py).

The daemon (``python -m edge run``, started through the test's
:class:`~tests.support.processes.ProcessReaper`) packs at station ``P1`` and
ships through dock door ``D1``; around it, in the test's event loop and so
outliving every kill: a real Mosquitto, the printer simulator, the sync-v1
cloud simulator, the station's fixed MQTT scanner
(:class:`~simulators.rfid_mqtt.MqttScannerSim`, QoS 1) and the door's Impinj
portal (:class:`~simulators.rfid_mqtt.ImpinjReaderSim`).

- :func:`write_config` and :func:`seed_orders`: the box's configuration and
  its picked orders (tasks done, lines picked, as picking leaves them),
  written into the database before the first start.
- :class:`PackBox`: :class:`tests.support.e2e.Box` whose daemon is started
  through the reaper.
- :class:`Packer`: the packer at ``P1`` and the dock. It reads the station
  from the database (:func:`read_order`), scans what is left (tote, units,
  ``CLOSE``, ``REPRINT`` when packed labels did not print), waits for each
  scan to show, reads the SSCCs off the labels the *printer* printed and
  carries the cartons through the portal. What a kill took (a scan the box
  shows no effect of while it is up) it scans again.
- :class:`Live`: what the kill loop and the packer share (is the daemon up,
  pause at an order's end, events to aim kills at).
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.printer.zpl import ParsedLabel
from edge.store import Store, Transaction
from edge.store.db import now_ms
from simulators.cloud import CloudSimulator, Faults, gtin14
from simulators.printer import PrinterSimulator
from simulators.rfid_mqtt import ImpinjReaderSim, MqttScannerSim, ReaderSim
from tests.support.e2e import BOX, ROOT, SECRET, Box, box_config, free_port, outbox_epochs
from tests.support.mosquitto import MosquittoBroker
from tests.support.processes import ProcessReaper

GS1_PREFIX = "7612345"
STATION = "P1"
DOOR = "D1"
SCANNER = "pack-1-scanner"
PRINTER = "pack-1-printer"
READER = "dock-1"
SCANNER_TOPIC = "scanners/pack-1"
READER_TOPIC = "impinj/dock-1/events"
SKUS = 12
#: daemon seconds (while it is up) a scan may take to show before it is sent again
RESEND_AFTER_S = 1.5
#: daemon seconds a portal pass may take to show every carton departed
DEPART_WITHIN_S = 6.0


# --------------------------------------------------------------------------- the box


def write_config(
    workdir: Path, *, cloud_url: str, api_port: int, broker: MosquittoBroker, printer_url: str
) -> Path:
    (workdir / "mqtt.secret").write_text(broker.password + "\n")
    path = workdir / "pickedge.toml"
    path.write_text(
        box_config(workdir, cloud_url, api_port)
        + f"""
[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{broker.username}"
password_file = "mqtt.secret"
client_id_prefix = "packship"

[layout]
kind = "blocks"
aisles = 4
aisle_pitch_m = 3.0
blocks = 1
block_length_m = 18.0
depot = {{ x = 4.5, y = 0.0 }}

[shipping]
gs1_prefix = "{GS1_PREFIX}"
sscc_extension = 3
sscc_first = 1
sscc_last = 999999
door = "{DOOR}"
departure_window_s = 2.0

[[devices]]
id = "{SCANNER}"
driver = "mqtt-scanner"
role = "pack_station"
topic = "{SCANNER_TOPIC}"
bound_to = "{STATION}"
options = {{ qos = 1 }}

[[devices]]
id = "{PRINTER}"
driver = "zpl-printer"
role = "pack_station"
url = "{printer_url}"
bound_to = "{STATION}"
options = {{ poll_s = 0.5, timeout_s = 2.0 }}

[[devices]]
id = "{READER}"
driver = "impinj-iot"
role = "dock_door"
topic = "{READER_TOPIC}"
bound_to = "{DOOR}"
options = {{ qos = 1 }}
"""
    )
    return path


@dataclass
class PackBox(Box):
    """:class:`~tests.support.e2e.Box` whose daemon the test's reaper owns."""

    reaper: ProcessReaper | None = None

    async def start(self, *, armed: bool) -> asyncio.subprocess.Process:
        assert self.reaper is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}
        if armed:
            env["PICKEDGE_CRASH_POINTS"] = self.crash_points
        with self.log.open("ab") as out:
            proc = await self.reaper.exec(
                sys.executable,
                *("-m", "edge", "run", "--config", str(self.config)),
                *("--log-format", "json", "--log-level", "warning"),
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        self.starts += 1
        return proc

    async def backup(self, dest: Path) -> None:
        """``pickedge db backup DEST`` (the real CLI), whatever state the daemon is in."""
        assert self.reaper is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}
        proc = await self.reaper.exec(
            sys.executable,
            *("-m", "edge", "db", "backup", str(dest), "--config", str(self.config)),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, (out, err)


# --------------------------------------------------------------------------- orders


@dataclass(frozen=True)
class Order:
    ref: str
    tote: str
    lines: dict[str, int]  # sku -> units picked
    #: close the first carton after this many units (two cartons), or one carton
    split_after: int | None
    #: its cartons go through the portal (else they stay at the dock)
    leaves: bool

    @property
    def units(self) -> int:
        return sum(self.lines.values())


def sku_name(n: int) -> str:
    return f"SKU{n:03d}"


GTINS = {sku_name(n): gtin14(n) for n in range(1, SKUS + 1)}


def make_orders(count: int, rng: random.Random) -> list[Order]:
    orders = []
    for n in range(1, count + 1):
        skus = rng.sample(sorted(GTINS), rng.randint(1, 3))
        lines = {sku: rng.randint(1, 2) for sku in skus}
        units = sum(lines.values())
        split = rng.randint(1, units - 1) if units >= 2 and rng.random() < 0.4 else None
        orders.append(
            Order(f"ORD{n:05d}", f"TOTE{n:05d}", lines, split, leaves=rng.random() < 0.85)
        )
    return orders


def seed_orders(store: Store, orders: list[Order]) -> None:
    """Items with their GTINs, and each order as one task picking leaves it:
    done, every line picked, in its tote."""

    def fn(tx: Transaction) -> None:
        for sku, gtin in GTINS.items():
            tx.execute("INSERT INTO items (sku, description) VALUES (?, ?)", (sku, sku.lower()))
            tx.execute("INSERT INTO item_gtins (gtin, sku) VALUES (?, ?)", (gtin, sku))
        at = now_ms()
        for k, order in enumerate(orders):
            task = f"TSK{order.ref[3:]}"
            tx.execute(
                "INSERT INTO tasks (task, order_ref, tote, state, ship_postcode, ship_region, "
                "received_ms, finished_ms) VALUES (?, ?, ?, 'done', '8001', 'ZH', ?, ?)",
                (task, order.ref, order.tote, at + k, at + k),
            )
            for line, (sku, qty) in enumerate(order.lines.items(), start=1):
                tx.execute(
                    "INSERT INTO task_lines (task, line, sku, qty, picked, state) "
                    "VALUES (?, ?, ?, ?, ?, 'picked')",
                    (task, str(line), sku, qty, qty),
                )

    store.run(fn)


# --------------------------------------------------------------------------- the station


@dataclass(frozen=True)
class CartonView:
    carton: int
    state: str
    sscc: str | None
    printed: bool
    departed: bool
    lines: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class OrderView:
    """One order at the station as the box's database holds it."""

    at_station: bool
    shipped: bool
    cartons: tuple[CartonView, ...]
    jobs: tuple[int, int]  # print jobs made, printed (the whole box)

    def packed(self, sku: str) -> int:
        return sum(q for c in self.cartons for s, q in c.lines if s == sku)

    @property
    def open_carton(self) -> CartonView | None:
        return next((c for c in self.cartons if c.state == "open"), None)


def read_ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)


def read_order(db: Path, order: str) -> OrderView:
    conn = read_ro(db)
    try:
        at = conn.execute(
            "SELECT order_ref FROM pack_stations WHERE station = ?", (STATION,)
        ).fetchone()
        shipped = conn.execute("SELECT 1 FROM shipments WHERE order_ref = ?", (order,)).fetchone()
        cartons = []
        for carton, state, sscc, printed, departed in conn.execute(
            "SELECT carton, state, sscc, printed_ms IS NOT NULL, departed_ms IS NOT NULL "
            "FROM cartons WHERE order_ref = ? ORDER BY carton",
            (order,),
        ).fetchall():
            lines = tuple(
                (str(s), int(q))
                for s, q in conn.execute(
                    "SELECT sku, qty FROM carton_lines WHERE carton = ? ORDER BY sku", (carton,)
                )
            )
            cartons.append(CartonView(carton, state, sscc, bool(printed), bool(departed), lines))
        made, printed_jobs = conn.execute(
            "SELECT count(*), COALESCE(SUM(state = 'printed'), 0) FROM print_jobs"
        ).fetchone()
    finally:
        conn.close()
    return OrderView(
        at_station=at is not None and at[0] == order,
        shipped=shipped is not None,
        cartons=tuple(cartons),
        jobs=(int(made), int(printed_jobs)),
    )


def label_of(label: ParsedLabel) -> tuple[str, int, int, str]:
    """(order, carton n, of m, SSCC) of a printed carton label."""
    order = next(t[len("ORDER ") :] for t in label.texts if t.startswith("ORDER "))
    n, m = next(t for t in label.texts if t.startswith("CARTON ")).split()[1::2]
    (sscc,) = [b.data[2:] for b in label.barcodes if b.data.startswith("00")]
    return order, int(n), int(m), sscc


def serial_body(sscc: str) -> int:
    """The SSCC without its check digit, as a number: one extension digit and
    one prefix, so it grows with the serial."""
    return int(sscc[:-1])


# --------------------------------------------------------------------------- the packer


@dataclass
class Live:
    """What the kill loop and the packer share."""

    up_since: float | None = None  # monotonic time the daemon answered, None while down
    starts: int = 0  # daemons that answered so far
    finish: asyncio.Event = field(default_factory=asyncio.Event)  # end after this order
    pause: asyncio.Event = field(default_factory=asyncio.Event)  # stop at the next order's end
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    resume: asyncio.Event = field(default_factory=asyncio.Event)
    printed: asyncio.Event = field(default_factory=asyncio.Event)  # a label came out
    portal: asyncio.Event = field(default_factory=asyncio.Event)  # cartons in the portal
    #: called (once) when the next label comes out: kills the daemon while it
    #: waits for the printer's status after the job, before it records it printed
    at_next_label: Callable[[], None] | None = None
    label_acts: int = 0  # times it was called

    def label_printed(self) -> None:
        """The printer simulator's ``on_printed``."""
        self.pulse(self.printed)
        if self.at_next_label is not None:
            act, self.at_next_label = self.at_next_label, None
            self.label_acts += 1
            act()

    def answered(self) -> None:
        """The daemon answers ``/healthz``."""
        self.up_since = time.monotonic()
        self.starts += 1

    def up_for(self, since: float) -> float:
        """Seconds the daemon has been up since ``since`` (0 while it is down)."""
        if self.up_since is None:
            return 0.0
        return time.monotonic() - max(self.up_since, since)

    @staticmethod
    def pulse(event: asyncio.Event) -> None:
        event.set()
        event.clear()


@dataclass
class Shipped:
    """An order the box shipped, as the packer saw it."""

    order: Order
    ssccs: list[str]  # by carton n, read off the printed labels
    era: int  # restores before it was packed


@dataclass
class Packer:
    box: PackBox
    scanner: MqttScannerSim
    reader: ReaderSim
    printer: PrinterSimulator
    orders: list[Order]
    live: Live
    backup_path: Path
    backup_after_kills: int
    era: int = 0
    shipped: list[Shipped] = field(default_factory=list)
    scans: collections.Counter[str] = field(default_factory=collections.Counter)
    resent: collections.Counter[str] = field(default_factory=collections.Counter)
    reprints: int = 0
    portal_passes: int = 0
    #: index in ``shipped`` of the first order the backup does not know
    backup_at: int | None = None
    backup_took_s: float = 0.0
    #: where the packer is (the kill loop counts where its kills found it)
    phase: str = "idle"
    _last_view: OrderView | None = None

    async def run(self) -> None:
        for order in self.orders:
            if self.live.finish.is_set():
                return
            await self._boundary()
            await self.pack(order)
            await self.dock(order)
        raise AssertionError("the packer ran out of orders")

    async def _boundary(self) -> None:
        """Between two orders: the station is free. Take the backup here, or
        stop here while the loop restores it."""
        kills = self.box.test_kills + self.box.self_kills
        if self.backup_at is None and kills >= self.backup_after_kills and self.shipped:
            started = time.monotonic()
            await self.box.backup(self.backup_path)
            self.backup_took_s = time.monotonic() - started
            self.backup_at = len(self.shipped)
        if self.live.pause.is_set():
            self.live.pause.clear()
            self.live.paused.set()
            await self.live.resume.wait()
            self.live.resume.clear()

    async def _settle(self, order: Order, before: OrderView) -> OrderView:
        """The order's view once it differs from ``before``, or ``before`` when
        the daemon was up for :data:`RESEND_AFTER_S` without a change."""
        since = time.monotonic()
        while True:
            view = read_order(self.box.db, order.ref)
            if view != before:
                return view
            if self.live.up_for(since) >= RESEND_AFTER_S:
                return view
            await asyncio.sleep(0.02)

    def _next(self, order: Order, view: OrderView) -> str | None:
        """What the packer scans next (None: wait for the labels)."""
        if not view.at_station:
            return order.tote
        left = {sku: n - view.packed(sku) for sku, n in order.lines.items()}
        units_left = sum(max(n, 0) for n in left.values())
        carton = view.open_carton
        if units_left:
            closed = sum(c.state != "open" for c in view.cartons)
            in_open = sum(q for _, q in carton.lines) if carton else 0
            if order.split_after and not closed and carton and in_open >= order.split_after:
                return "CLOSE"
            sku = next(s for s, n in left.items() if n > 0)
            return GTINS[sku]
        if carton is not None:
            return "CLOSE"
        return None  # packed: the labels are printing, or a kill stopped them

    async def pack(self, order: Order) -> None:
        waiting: tuple[float, int] | None = None  # since when, under which daemon
        last: str | None = None
        view = read_order(self.box.db, order.ref)
        while not view.shipped:
            code = self._next(order, view)
            if code is None:
                # every carton closed, not shipped: its job is printing, or a
                # kill (or the after_close_before_print point) stopped it:
                # the packer sees the labels did not come and scans REPRINT
                # once another daemon runs (or this one never printed them)
                self.phase = "printing"
                if waiting is None:
                    waiting = (time.monotonic(), self.live.starts)
                restarted = self.live.starts != waiting[1] and self.live.up_since is not None
                if not restarted and self.live.up_for(waiting[0]) < RESEND_AFTER_S:
                    await asyncio.sleep(0.02)
                    view = read_order(self.box.db, order.ref)
                    continue
                code = "REPRINT"
                self.reprints += 1
                waiting = None
            self.phase = "packing"
            kind = self._kind(code)
            if code == last and view == self._last_view:
                self.resent[kind] += 1
            last, self._last_view = code, view
            await self.scanner.scan(code)
            self.scans[kind] += 1
            view = await self._settle(order, view)
            if code == "REPRINT":
                waiting = (time.monotonic(), self.live.starts)
        self.phase = "shipped"

    @staticmethod
    def _kind(code: str) -> str:
        if code in ("CLOSE", "REPRINT"):
            return code.lower()
        return "unit" if code in GTINS.values() else "tote"

    async def dock(self, order: Order) -> None:
        """The order is shipped: its labels are out. Read the SSCCs off them
        and carry the cartons through the portal (or keep them back)."""
        view = read_order(self.box.db, order.ref)
        labels: dict[int, set[str]] = collections.defaultdict(set)
        counts: set[int] = set()
        for label in self.printer.printed:
            ref, n, m, sscc = label_of(label)
            if ref == order.ref:
                labels[n].add(sscc)
                counts.add(m)
        # shipped only once its labels printed: they are all at the printer
        assert counts == {len(view.cartons)}, (order.ref, counts, view)
        assert sorted(labels) == list(range(1, len(view.cartons) + 1)), (order.ref, labels)
        assert all(len(s) == 1 for s in labels.values()), f"a carton with two SSCCs: {labels}"
        ssccs = [next(iter(labels[n])) for n in sorted(labels)]
        assert ssccs == [c.sscc for c in view.cartons], (ssccs, view)
        self.shipped.append(Shipped(order, ssccs, self.era))
        if not order.leaves:
            return
        self.phase = "portal"
        await self.reader.pass_portal(
            ssccs, company_prefix_digits=len(GS1_PREFIX), gap=0.05, dwell=0.3
        )
        self.portal_passes += 1
        Live.pulse(self.live.portal)
        since = time.monotonic()
        while not all(c.departed for c in read_order(self.box.db, order.ref).cartons):
            assert self.live.up_for(since) < DEPART_WITHIN_S, (
                f"cartons of {order.ref} passed the portal and did not all depart"
            )
            await asyncio.sleep(0.02)
        self.phase = "idle"


# --------------------------------------------------------------------------- the cloud


def cloud_events(cloud: CloudSimulator, types: set[str]) -> list[dict[str, Any]]:
    """Every event of the box the cloud holds, over its epochs, of ``types``."""
    out = []
    for epoch, _ in cloud.receiver.epochs(BOX):
        out += [e for e in cloud.receiver.events(BOX, epoch) if e["type"] in types]
    return out


def outbox_state(db: Path) -> tuple[str, int, str | None, int]:
    """(epoch, next seq, acked epoch, acked seq) of the box."""
    conn = read_ro(db)
    try:
        epoch, next_seq = conn.execute("SELECT epoch, next_seq FROM box").fetchone()
        acked = conn.execute("SELECT acked_epoch, acked_seq FROM sync_state").fetchone()
    finally:
        conn.close()
    return str(epoch), int(next_seq), acked[0], int(acked[1])


async def drained(box: Box, cloud: CloudSimulator, within_s: float = 60.0) -> None:
    """Until the cloud acked the box's every event and the box stored the ack."""
    deadline = time.monotonic() + within_s
    while True:
        epoch, next_seq, acked_epoch, acked_seq = outbox_state(box.db)
        if cloud.receiver.acked(BOX, epoch) == next_seq - 1 and (acked_epoch, acked_seq) == (
            epoch,
            next_seq - 1,
        ):
            return
        assert time.monotonic() < deadline, f"the uploader did not drain: {box.tail()}"
        await asyncio.sleep(0.1)


def ssccs_in(db: Path) -> set[str]:
    conn = read_ro(db)
    try:
        return {str(r[0]) for r in conn.execute("SELECT sscc FROM cartons WHERE sscc IS NOT NULL")}
    finally:
        conn.close()


# --------------------------------------------------------------------------- the loop

PACK_CRASH_POINTS = "after_pack_commit_before_ack:0.025,after_close_before_print:0.1"
PACK_BATCH_FAULTS = {"fail_after": 0.05, "drop_after": 0.05, "503": 0.03}


async def _ended(proc: asyncio.subprocess.Process, event: asyncio.Event, within: float) -> bool:
    """Wait for ``event`` (True) or the process's end or ``within`` seconds (False)."""
    waiter = asyncio.ensure_future(event.wait())
    dead = asyncio.ensure_future(proc.wait())
    try:
        done, _ = await asyncio.wait({waiter, dead}, timeout=within, return_when="FIRST_COMPLETED")
    finally:
        waiter.cancel()
        dead.cancel()
    return waiter in done


async def _subscribed(broker: MosquittoBroker, within: float = 30.0) -> None:
    """Until the daemon's MQTT devices hold their persistent sessions."""
    deadline = time.monotonic() + within
    while not all(f"packship-{d}" in broker.logs() for d in (SCANNER, READER)):
        assert time.monotonic() < deadline, broker.logs()
        await asyncio.sleep(0.05)


async def pack_ship_kill_loop(
    tmp_path: Path,
    broker: MosquittoBroker,
    processes: ProcessReaper,
    *,
    kills: int,
    box_dir: Path | None = None,
    make_box: Callable[..., PackBox] = PackBox,
    name: str = "e2e pack/ship kill loop",
) -> tuple[PackBox, str]:
    """The pack/ship kill loop and all its checks (tests/e2e/
    test_e2e_pack_ship_kills.py says what they are); returns the box and the
    summary. ``box_dir``: where the box's files live (default ``tmp_path``,
    which keeps the cloud's database, the backup and the daemon's log);
    ``make_box`` builds the :class:`PackBox` (a subclass)."""
    started = time.monotonic()
    rng = random.Random(20261204)
    orders = make_orders(200 + 12 * kills, rng)  # more than the loop packs
    live = Live()
    cloud = CloudSimulator(
        SECRET, db_path=tmp_path / "cloud.db", batch_faults=Faults(PACK_BATCH_FAULTS, seed=5)
    )
    printer = PrinterSimulator(on_printed=lambda _n, _label: live.label_printed())
    settings = broker.settings("packship-sim")
    async with (
        cloud,
        printer,
        MqttScannerSim(settings, scanner_id=SCANNER, topic=SCANNER_TOPIC) as scanner,
        ImpinjReaderSim(settings, reader_id=READER, topic=READER_TOPIC, tags=1, rate=0) as reader,
    ):
        port = free_port(rng)
        home = box_dir or tmp_path
        box = make_box(
            write_config(
                home,
                cloud_url=cloud.url,
                api_port=port,
                broker=broker,
                printer_url=printer.url,
            ),
            home / "box.db",
            port,
            tmp_path / "daemon.log",
            crash_points=PACK_CRASH_POINTS,
            reaper=processes,
        )
        with Store.open(box.db, box_id=BOX) as store:
            seed_orders(store, orders)
        packer = Packer(
            box,
            scanner,
            reader,
            printer,
            orders,
            live,
            backup_path=tmp_path / "backup.db",
            backup_after_kills=kills // 3,
        )

        # First start, unarmed: the devices' sessions exist before anything is scanned.
        proc = await box.start(armed=False)
        assert await box.up(proc)
        await _subscribed(broker)
        await box.kill(proc)

        work = asyncio.create_task(packer.run())
        kills_in: collections.Counter[str] = collections.Counter()
        plans: collections.Counter[str] = collections.Counter()
        restore: dict[str, int] = {}
        armed_points = [p.split(":")[0] for p in PACK_CRASH_POINTS.split(",")]
        loop_started = time.monotonic()

        def still_short() -> bool:
            fired = box.crash_points_fired()
            return (
                any(fired[p] == 0 for p in armed_points)
                or not restore
                # during printing: the packer waiting for its labels, or a
                # kill fired from inside the printer as a label came out
                or kills_in["printing"] + plans["at_label_fired"] == 0
                or kills_in["portal"] == 0
            )

        def killed() -> int:
            return box.test_kills + box.self_kills

        while killed() < kills or (box.starts < 3 * kills and still_short()):
            if (
                not restore
                and killed() >= 2 * kills // 3
                and packer.backup_at is not None
                and len(packer.shipped) - packer.backup_at >= 2
            ):
                restore = await _restore(box, cloud, packer, live)
                continue
            proc = await box.start(armed=True)
            at_label_kills = 0
            if await box.up(proc):
                live.answered()
                r, budget = rng.random(), rng.uniform(0.3, 2.0)
                if r < 0.15:
                    # as the printer takes the job: before its status answer
                    plans["at_label"] += 1
                    acted = live.label_acts
                    live.at_next_label = proc.kill
                    await _ended(proc, live.printed, budget)
                    live.at_next_label = None
                    if live.label_acts > acted:  # it fired: the test's kill
                        at_label_kills += 1
                        await proc.wait()
                elif r < 0.3:
                    plans["after_label"] += 1  # around the commit of "printed"
                    if await _ended(proc, live.printed, budget):
                        await asyncio.sleep(rng.uniform(0, 0.03))
                elif r < 0.45:
                    plans["portal"] += 1  # while the portal reads cartons
                    if await _ended(proc, live.portal, budget):
                        await asyncio.sleep(rng.uniform(0, 0.1))
                else:
                    plans["random"] += 1
                    await _ended(proc, asyncio.Event(), budget)
            live.up_since = None
            await box.kill(proc)
            if at_label_kills:  # box.kill found it dead: count it as the test's
                box.self_kills -= at_label_kills
                box.test_kills += at_label_kills
                plans["at_label_fired"] += at_label_kills
                at_label_kills = 0
            kills_in[packer.phase] += 1
            if work.done():
                work.result()  # the packer's failure fails the test here
                raise AssertionError("the packer stopped during the loop")
        loop_s = time.monotonic() - loop_started

        # The end: no crash points; the packer finishes its order; the outbox drains.
        live.finish.set()
        proc = await box.start(armed=False)
        assert await box.up(proc)
        live.answered()
        await asyncio.wait_for(work, 90)
        await asyncio.sleep(0.5)  # the portal's last reads
        await drained(box, cloud)
        proc.terminate()
        assert await proc.wait() == 0, box.tail()
        box.check_integrity()

        # ---------------------------------------------------------------- checks
        shipped = {s.order.ref: s for s in packer.shipped}
        assert len(shipped) == len(packer.shipped)

        # The printer: one SSCC per carton, one carton per SSCC.
        cartons_of: dict[str, set[tuple[str, int]]] = collections.defaultdict(set)
        ssccs_of: dict[tuple[str, int], set[str]] = collections.defaultdict(set)
        for label in printer.printed:
            order, n, _m, sscc = label_of(label)
            cartons_of[sscc].add((order, n))
            ssccs_of[order, n].add(sscc)
        assert all(len(c) == 1 for c in cartons_of.values()), "an SSCC on two cartons"
        assert all(len(s) == 1 for s in ssccs_of.values()), "a carton under two SSCCs"
        assert {o for o, _ in ssccs_of} == set(shipped), "labels of an order never shipped"
        printed = set(cartons_of)
        assert printed == {x for s in packer.shipped for x in s.ssccs}

        # The cloud: one shipment_confirmed per shipped order, with its labels' SSCCs.
        confirmed = cloud_events(cloud, {"shipment_confirmed"})
        by_order = collections.Counter(o for e in confirmed for o in e["data"]["orders"])
        assert by_order == collections.Counter(set(shipped)), "a shipment confirmed twice or lost"
        units: collections.Counter[str] = collections.Counter()
        for e in confirmed:
            (order,) = e["data"]["orders"]
            assert [c["sscc"] for c in e["data"]["cartons"]] == shipped[order].ssccs, e
            lines: collections.Counter[str] = collections.Counter()
            for c in e["data"]["cartons"]:
                lines.update({x["sku"]: x["qty"] for x in c["lines"]})
            assert lines == shipped[order].order.lines, e
            units.update(lines)
        # A redelivered scan packs nothing: every unit packed is a unit the
        # packer scanned (a scan sent again may be refused: all packed).
        assert sum(units.values()) <= packer.scans["unit"]
        if not packer.resent["unit"]:
            assert sum(units.values()) == packer.scans["unit"]
        at_cloud = [c["sscc"] for e in confirmed for c in e["data"]["cartons"]]
        assert len(at_cloud) == len(set(at_cloud)) == len(printed), "an SSCC confirmed twice"

        # Departures: once per carton through the portal, none for the others.
        departed = collections.Counter(
            e["data"]["sscc"] for e in cloud_events(cloud, {"carton_departed"})
        )
        through = [x for s in packer.shipped if s.order.leaves for x in s.ssccs]
        assert departed == collections.Counter(through), "a departure lost or doubled"

        # The restore: nothing handed out after it was handed out before it.
        after = [x for s in packer.shipped if s.era == 1 for x in s.ssccs]
        assert after, "nothing was packed after the restore"
        assert min(map(serial_body, after)) > restore["max_before"], (after, restore)
        assert not set(after) & ssccs_in(tmp_path / "backup.db")
        assert ssccs_in(box.db) <= printed  # nothing the box holds was never printed

        # The cloud holds each epoch once and in order, as the box wrote it.
        conn = read_ro(box.db)
        try:
            epochs = outbox_epochs(conn)
        finally:
            conn.close()
        assert len(epochs) == 2, "the restore started one new epoch"
        for ep in epochs:
            held = cloud.receiver.events(BOX, ep.epoch)
            assert [x["seq"] for x in held[: ep.last]] == list(range(1, ep.last + 1))
            kept = {r["seq"] for r in ep.rows}
            assert ep.rows == [x for x in held[: ep.last] if x["seq"] in kept]
        assert len(cloud.receiver.events(BOX, epochs[-1].epoch)) == epochs[-1].last

        fired = box.crash_points_fired()
        text = (
            f"\n{name}: {box.test_kills} SIGKILLs by the test "
            f"(aimed {dict(plans)}) + {box.self_kills} by crash points {dict(fired)}; "
            f"kills found the packer {dict(kills_in)}; {box.starts} starts, "
            f"{box.integrity_checks} integrity checks ({box.hot_wals} on a hot WAL); "
            f"{len(shipped)} orders shipped in {len(printed)} cartons "
            f"({len(after)} after the restore), {len(printer.printed)} labels printed "
            f"({len(printer.printed) - len(printed)} again), "
            f"{packer.reprints} REPRINTs; scans {dict(packer.scans)}, "
            f"re-sent {dict(packer.resent)}; {sum(departed.values())} departures in "
            f"{packer.portal_passes} portal passes; restore: {restore}, backup "
            f"{packer.backup_took_s:.2f} s; cloud faults {dict(cloud.batch_faults.drawn)}; "
            f"loop {loop_s:.0f} s, total {time.monotonic() - started:.0f} s"
        )
        assert killed() >= kills
        # (a crash point that fires as the test kills is counted as the test's)
        assert sum(fired.values()) >= box.self_kills
        # a job the point stopped is printed only by a REPRINT
        assert packer.reprints >= fired["after_close_before_print"] >= 1
        assert not still_short(), (fired, dict(kills_in), restore)
        assert len(shipped) >= kills // 2, "the packer got real work done"
        return box, text


async def _restore(
    box: PackBox, cloud: CloudSimulator, packer: Packer, live: Live
) -> dict[str, int]:
    """At an order's end: drain, kill, copy the backup over the database."""
    live.pause.set()
    proc = await box.start(armed=False)
    assert await box.up(proc)
    live.answered()
    await asyncio.wait_for(live.paused.wait(), 60)
    live.paused.clear()
    await asyncio.sleep(0.5)  # the portal's last reads
    await drained(box, cloud)
    live.up_since = None
    await box.kill(proc)
    before = ssccs_in(box.db) | {x for s in packer.shipped for x in s.ssccs}
    in_backup = ssccs_in(packer.backup_path)
    assert in_backup < before, "orders were shipped between the backup and the restore"
    shutil.copyfile(packer.backup_path, box.db)
    for suffix in ("-wal", "-shm"):
        box.db.with_name(box.db.name + suffix).unlink(missing_ok=True)
    packer.era += 1
    live.resume.set()
    return {
        "max_before": max(map(serial_body, before)),
        "handed_out_before": len(before),
        "in_backup": len(in_backup),
    }
