"""``pickedge demo``: the whole box, every part simulated, narrated.

What runs, all on loopback and in a scratch directory:

- a cloud OMS (the sync-v1 simulator) holding a zone's master data and tasks,
  which now and then fails a request on purpose (a 503, a slow answer, an
  answer lost after the batch was applied, so the box resends and the cloud
  discards what it already holds);
- a Mosquitto broker of its own (no anonymous access), an Impinj RFID portal at
  the dock door publishing to it, and a serial barcode scanner at the pack
  station on a pty;
- the real daemon (``edge.wiring.build_daemon``): PDA API, devices, sync,
  alert rules, upkeep, the supervisors' dashboard;
- simulated PDAs: pickers log in by badge, scan ``START`` and get a cart of
  orders the box's online batcher chose, scan a tote for each order, walk
  their tours scan by scan, putting each stop's units into its tote (one wrong
  location, one short pick), while the box syncs every confirmed unit
  upstream; the walk per unit is compared with one order per tour on an
  S-shape route, as most sites pick today;
- in the middle of picking the cloud goes away (its server stopped, the
  address refusing connections) for a few seconds and comes back on the same
  address: the pickers never notice, the uploader backs off, the backlog grows,
  the ``backlog_age`` alert rule raises an alert, and once the cloud is back
  the backlog drains and the alert clears — both the raise and the clear go
  upstream as ``alert`` events;
- then the shipping half: every picked order is packed at the pack station
  (the serial scanner scans the order, its units and ``CLOSE``), its carton
  labels print on a ZPL label printer (the printer simulator on TCP 9100's
  protocol), and the cartons leave through the dock door's RFID portal, their
  SSCC-96 tags read by four antennas. One carton is held back past the
  departure window and a stray carton crosses the portal: both raise alerts,
  and the held-back one clears its alert when it leaves;
- with ``--duration``, more waves of orders from the cloud (and stock
  replenished) are picked, packed and shipped until the time is up.

Ctrl-C (or SIGTERM) stops it at any moment, and so does the end of
``--duration``: pickers finish the scan in hand, the cloud comes back if it
was away, the box drains its outbox, the report is printed for what happened
so far, then the daemon, the simulators and the broker are stopped in order
(the broker runs in its own process group, so a terminal's Ctrl-C reaches
only the demo). The exit code is 0 when the report's checks hold — also after
Ctrl-C, as ``ping`` does — and 1 when one does not; a second Ctrl-C stops at
once, without the report (exit code 130).

At the end it checks the invariants the product promises — nothing lost and
nothing counted twice (units told to pickers = units in the cloud's
``pick_confirmed`` events = units the box's ledger took off the shelves;
every event the box wrote acked and held by the cloud once, the resends it
discarded counted), the cloud's net stock movement equals the box's ledger,
one ``task_picked`` per task, one ``shipment_confirmed`` per shipment with the
SSCCs printed, one ``carton_departed`` per carton, every alert raised and
cleared on the box received upstream as such — and prints figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import signal
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simulators.floor import PdaClient

console = Console(highlight=False, emoji=False, soft_wrap=True)

LAYOUT = {
    "kind": "blocks",
    "aisles": 8,
    "aisle_pitch_m": 3.0,
    "blocks": 2,
    "block_length_m": 18.0,
    "depot": {"x": 10.5, "y": 0.0},
}


GS1_PREFIX = "7612345"  # the demo site's GS1 company prefix
CART_TOTES, CART_UNITS = 3, 40  # the demo's carts
WINDOW_S = 3.0  # the dock door's departure window
OUTAGE_S = 7.0  # how long the cloud is away in the middle of picking
BACKLOG_AGE_S = 4.0  # the oldest unsent event older than this raises backlog_age
#: the cloud's occasional faults, per request (simulators.cloud.Faults)
BATCH_FAULTS = {"503": 0.015, "slow": 0.01, "drop_after": 0.0075, "fail_after": 0.0075}
CHANGES_FAULTS = {"503": 0.02, "slow": 0.01}
FAULT_SEED = 13
SUPERVISOR = ("S1", "Sam Supervisor", "SUPER0001")  # id, name, badge
FAULT_WORDS = {
    "503": "503, nothing applied: the box backs off and sends it again",
    "500": "500, nothing applied: the box backs off and sends it again",
    "slow": "answered late",
    "drop_after": "applied, then the connection dropped before the answer: "
    "the box will resend what the cloud already holds",
    "fail_after": "applied, then answered 500: the box will resend what the cloud already holds",
}


class _Stopped(Exception):
    """The demo was asked to stop (Ctrl-C, SIGTERM or the end of ``--duration``)."""


@dataclass
class _Outage:
    planned_s: float
    started: float | None = None
    ended: float | None = None
    peak_backlog: int = 0
    #: events written while the cloud was away, and how long they took to go once it was back
    written: int = 0
    caught_up_s: float | None = None

    @property
    def length_s(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@dataclass
class _Run:
    """What the demo did so far: the report reads it whenever the demo stops."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: Ctrl-C or SIGTERM (not the end of --duration): ends --keep too
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)
    #: how it was stopped ("" while it runs, and when it ran to its end)
    why: str = ""
    started: float = field(default_factory=time.monotonic)
    tours: int = 0
    #: units the box confirmed to a PDA, per tour (the last answer's stops)
    told: dict[int, int] = field(default_factory=dict)
    shorts: int = 0
    errors: int = 0
    walked: dict[str, float] = field(
        default_factory=lambda: {"cart": 0.0, "single s-shape": 0.0, "units": 0.0}
    )
    latencies: list[float] = field(default_factory=list)
    waves: int = 0
    picking: bool = False
    #: every packing phase so far ran to its end
    shipping_done: bool = False
    #: the held-back carton's alert was raised and cleared
    dock_done: bool = False
    #: SSCCs carried through the portal
    left: list[str] = field(default_factory=list)
    outage: _Outage | None = None
    dashboard: str | None = None
    #: --duration: more waves after the scenario, until the time is up
    keep_going: bool = False

    def halt(self, why: str) -> None:
        if not self.stop.is_set():
            self.why = why
            self.stop.set()

    def check(self) -> None:
        if self.stop.is_set():
            raise _Stopped

    async def pause(self, seconds: float) -> None:
        """Sleep, or raise :class:`_Stopped` as soon as the demo is stopped."""
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return
        raise _Stopped

    @property
    def units_told(self) -> int:
        return sum(self.told.values())


@dataclass
class _Pda(PdaClient):
    """A handheld that stops between scans (never with a request in flight, so
    what its picker was told is what the box committed) and remembers what
    each answer said was picked."""

    run: _Run | None = None

    def _note(self, answer: dict[str, Any]) -> dict[str, Any]:
        tour = answer.get("tour")
        if self.run is not None and isinstance(tour, dict) and "tour" in tour:
            self.run.told[int(tour["tour"])] = sum(int(s["picked"]) for s in tour["stops"])
        return answer

    async def scan(self, code: str, *, retries: int = 3) -> dict[str, Any]:
        if self.run is not None:
            self.run.check()
        return self._note(await super().scan(code, retries=retries))

    async def short(self, stop: int, found: int, reason: str = "empty") -> dict[str, Any]:
        if self.run is not None:
            self.run.check()
        return self._note(await super().short(stop, found, reason))


def _config(
    workdir: Path, *, cloud_url: str, broker: Any, scanner_path: str, printer_url: str
) -> Path:
    for name, value in (
        ("box.secret", secrets.token_urlsafe(24)),
        ("mqtt.password", broker.password),
    ):
        secret = workdir / name
        secret.write_text(value + "\n")
        secret.chmod(0o600)  # the daemon refuses a secret file others can read
    depot = LAYOUT["depot"]
    assert isinstance(depot, dict)
    text = f"""
[box]
id = "demo-zone-a"
secret_file = "box.secret"

[cloud]
url = "{cloud_url}"
pull_interval_s = 0.5
backoff_max_s = 2.0

[store]
path = "pickedge.db"
checkpoint_interval_s = 5.0

[api]
host = "127.0.0.1"
port = 0

[mqtt]
host = "{broker.host}"
port = {broker.port}
username = "{broker.username}"
password_file = "mqtt.password"
client_id_prefix = "demo"

[layout]
kind = "blocks"
aisles = {LAYOUT["aisles"]}
aisle_pitch_m = {LAYOUT["aisle_pitch_m"]}
blocks = {LAYOUT["blocks"]}
block_length_m = {LAYOUT["block_length_m"]}
depot = {{ x = {depot["x"]}, y = 0.0 }}

[carts]
totes = {CART_TOTES}
units = {CART_UNITS}
improve_s = 2.0

[shipping]
gs1_prefix = "{GS1_PREFIX}"
sscc_extension = 3
sscc_first = 1
sscc_last = 99999
door = "dock-1"
departure_window_s = {WINDOW_S}

[alerts]
interval_s = 0.5
backlog_age_min = {BACKLOG_AGE_S / 60:.4f}

[[devices]]
id = "pack-1-printer"
driver = "zpl-printer"
role = "pack_station"
url = "{printer_url}"
bound_to = "pack-1"
options = {{ poll_s = 1.0 }}

[[devices]]
id = "pack-1-scanner"
driver = "serial-scanner"
role = "pack_station"
url = "{scanner_path}"
bound_to = "pack-1"

[[devices]]
id = "dock-1-portal"
driver = "impinj-iot"
role = "dock_door"
topic = "demo/impinj/dock-1"
bound_to = "dock-1"
options = {{ gone_after = 2.0 }}
"""
    path = workdir / "pickedge.toml"
    path.write_text(text)
    return path


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _wait_for(predicate: Any, within_s: float, what: str, run: _Run | None = None) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if run is not None:
            run.check()
        if time.monotonic() > deadline:
            raise click.ClickException(f"demo: timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _say(who: str, text: str, style: str = "") -> None:
    stamp = time.strftime("%H:%M:%S")
    console.print(f"[dim]{stamp}[/] [bold]{who:<15}[/] {escape(text)}", style=style)


@dataclass
class _Floor:
    """Everything running, for the phases of the scenario."""

    run: _Run
    daemon: Any
    store: Any
    cloud: Any
    scanner: Any
    printer: Any
    reader: Any
    base: str
    gtins: dict[str, str]
    feed: list[dict[str, Any]]
    pickers: int
    pace: float
    where: dict[str, Any] = field(default_factory=dict)
    #: device key of each picker's PDA, enrolled on first use
    keys: dict[int, str] = field(default_factory=dict)
    #: one entry per order the pack station finished
    packed: list[str] = field(default_factory=list)
    #: narrate every tag the portal sees (the first wave), or only a summary
    portal_verbose: bool = True
    subscribed: bool = False
    next_task: int = 1


async def _demo(
    workdir: Path,
    *,
    pickers: int,
    tours: int,
    keep: bool,
    pace: float,
    duration: float | None,
    outage_s: float,
) -> int:
    """Run the demo; the exit code (0: every check holds)."""
    run = _Run(keep_going=duration is not None)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    presses = 0

    def interrupted(why: str) -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            console.print()
            _say("demo", f"{why}: stopping cleanly (again to stop at once)", "bold")
            run.halt(why)
            run.interrupted.set()
        elif main is not None:
            main.cancel()

    loop.add_signal_handler(signal.SIGINT, interrupted, "Ctrl-C")
    loop.add_signal_handler(signal.SIGTERM, interrupted, "SIGTERM")
    if duration is not None:
        loop.call_later(duration, run.halt, f"--duration {duration:g} s reached")
    try:
        return await _main(
            workdir, run, pickers=pickers, tours=tours, keep=keep, pace=pace, outage_s=outage_s
        )
    except asyncio.CancelledError:
        _say("demo", "stopped at once (second Ctrl-C): no report", "bold")
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


async def _main(
    workdir: Path,
    run: _Run,
    *,
    pickers: int,
    tours: int,
    keep: bool,
    pace: float,
    outage_s: float,
) -> int:
    from devices.codes import decode
    from devices.events import PresenceKind, ScanEvent, TagPresenceEvent
    from edge.config import load_config
    from edge.masterdata import tables as masterdata_tables
    from edge.wiring import build_daemon
    from simulators.broker import MosquittoBroker
    from simulators.cloud import CloudSimulator, Faults
    from simulators.floor import Zone, zone_feed
    from simulators.printer import PrinterSimulator
    from simulators.rfid_mqtt import ImpinjReaderSim
    from simulators.serial_scanner import ScannerSimulator

    zone = Zone(
        aisles=int(LAYOUT["aisles"]),  # type: ignore[call-overload]
        blocks=int(LAYOUT["blocks"]),  # type: ignore[call-overload]
        block_length_m=float(LAYOUT["block_length_m"]),  # type: ignore[arg-type]
        slots_per_block=6,
    )
    first_tasks = pickers * tours * CART_TOTES + 2
    feed, gtins = zone_feed(zone, pickers=pickers, tasks=first_tasks)
    console.rule("[bold]PickEdge demo[/]: one pick zone, every part simulated")
    _say("demo", f"working in {workdir}")

    broker = MosquittoBroker(workdir / "mosquitto", own_process_group=True)
    broker.start()
    _say("mosquitto", f"broker on 127.0.0.1:{broker.port} (password auth, no anonymous access)")

    async with contextlib.AsyncExitStack() as stack:
        stack.callback(broker.stop)
        scanner = await stack.enter_async_context(ScannerSimulator())
        _say("pack-1-scanner", f"serial scanner on pty {scanner.path}")
        printer = await stack.enter_async_context(PrinterSimulator())
        _say("pack-1-printer", f"ZPL label printer (simulated) on {printer.url}")
        # The cloud must know the box's secret: write it first, then start both.
        cfg_path = _config(
            workdir,
            cloud_url="http://127.0.0.1:1",
            broker=broker,
            scanner_path=scanner.path,
            printer_url=printer.url,
        )
        cloud_secret = (workdir / "box.secret").read_text().strip()
        cloud = CloudSimulator(
            cloud_secret,
            feed=feed,
            batch_faults=Faults(BATCH_FAULTS, seed=FAULT_SEED),
            changes_faults=Faults(CHANGES_FAULTS, seed=FAULT_SEED + 1),
        )
        await cloud.start()
        stack.callback(cloud.close)
        stack.push_async_callback(cloud.stop)
        chance = 100 * sum(BATCH_FAULTS.values())
        _say(
            "cloud",
            f"OMS simulator on {cloud.url}: {len(feed)} changes queued for the box; "
            f"it fails about {chance:.0f} % of batches on purpose "
            f"({', '.join(BATCH_FAULTS)})",
        )
        text = cfg_path.read_text().replace("http://127.0.0.1:1", cloud.url)
        cfg_path.write_text(text)

        cfg = load_config(cfg_path)
        daemon = build_daemon(cfg)
        store = daemon.store
        sink = daemon.parts["device_events"]
        floor = _Floor(
            run=run,
            daemon=daemon,
            store=store,
            cloud=cloud,
            scanner=scanner,
            printer=printer,
            reader=None,
            base="",
            gtins=gtins,
            feed=feed,
            pickers=pickers,
            pace=pace,
            next_task=first_tasks + 1,
        )

        def on_device(event: Any) -> None:
            if isinstance(event, ScanEvent) and event.device_id != "pack-1-scanner":
                try:
                    meaning = decode(event.code, event.symbology).to_json()
                    kind = meaning.get("kind", "?")
                except Exception as exc:  # shown, not fatal: the demo narrates
                    kind = f"invalid ({exc})"
                _say(event.device_id, f"scanned {event.code!r} ({event.symbology}) → {kind}")
            elif (
                isinstance(event, TagPresenceEvent)
                and event.kind is PresenceKind.SEEN
                and floor.portal_verbose
            ):
                epc = decode(event.epc_hex).epc if len(event.epc_hex) == 24 else None
                uri = epc.uri if epc is not None and epc.uri else event.epc_hex
                _say(event.device_id, f"RFID tag entered the portal: {uri}")

        sink.listeners.append(on_device)
        runner = asyncio.create_task(daemon.run(install_signals=False))

        async def stop_daemon() -> None:
            daemon.stop()
            await runner
            _say("pickedge", "daemon stopped; simulators and broker stop next")

        stack.push_async_callback(stop_daemon)
        api = daemon.parts["api"]
        await _wait_for(lambda: api.started.is_set() or runner.done(), 15, "the PDA API")
        if runner.done():
            runner.result()
        floor.base = base = f"http://127.0.0.1:{api.bound_port}"
        _say("pickedge", f"daemon up: PDA page and API on {base}/", "green")

        watchers = [
            asyncio.create_task(_watch_cloud(floor)),
            asyncio.create_task(_watch_alerts(floor)),
        ]
        outage = asyncio.create_task(asyncio.sleep(0))
        try:
            await _wait_for(
                lambda: masterdata_tables.counts(store)["tasks"] >= pickers * tours,
                20,
                "the first download from the cloud",
                run,
            )
            counts = masterdata_tables.counts(store)
            _say(
                "downloader",
                f"pulled {counts['items']} items, {counts['locations']} locations, "
                f"{counts['tasks']} tasks, {counts['pickers']} pickers "
                "(signed pages, each applied in one transaction)",
            )
            run.dashboard = await _dashboard(floor)
            floor.where = masterdata_tables.locations(store)

            # Devices at the pack station and the dock door.
            floor.reader = ImpinjReaderSim(
                broker.settings("demo-sim"),
                reader_id="dock-1",
                topic="demo/impinj/dock-1",
                tags=["3074257BF7194E4000001A85", "3114257BF4B28A0000000001"],
                antennas=2,
                rate=40.0,
            )
            await stack.enter_async_context(floor.reader)

            run.outage = _Outage(outage_s) if outage_s > 0 else None
            if run.outage is not None:
                outage = asyncio.create_task(_cloud_outage(floor, run.outage))
            run.waves = 1
            await _picking(floor, tours, scripted=True)
            await run.pause(1.0)  # let the portal's smoothing window report
            await _pack_and_ship(floor, drama=True)
            await outage
            while run.keep_going:  # --duration: more waves until the time is up
                await _wave(floor)
        except _Stopped:
            pass
        finally:
            run.picking = False
        if not outage.done():
            # stopped: the outage ends now (the cloud back on its address)
            with contextlib.suppress(_Stopped):
                await outage
        if run.why:
            _say("demo", f"{run.why}: the floor stops; the box sends what it still holds")
        else:
            _say("demo", "the scenario is over: the box sends what it still holds")
        await _settle(floor)
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        ok = _report(floor)
        if keep and not run.interrupted.is_set():
            where = f"{base}/" + (f" and {run.dashboard}" if run.dashboard else "")
            _say("pickedge", f"still running: open {where} (Ctrl-C to stop)", "green")
            await run.interrupted.wait()
    return 0 if ok else 1


async def _dashboard(floor: _Floor) -> str | None:
    """Add a supervisor and a tablet, and print how to open the dashboard —
    only when ``/dashboard`` answers and the supervisor's login reads its
    data (never a dead link)."""
    import aiohttp

    from edge.api.auth import add_picker, enroll_pda

    picker_id, name, badge = SUPERVISOR
    await asyncio.to_thread(add_picker, floor.store, picker_id, name, badge, "supervisor")
    key = (await asyncio.to_thread(enroll_pda, floor.store, "demo-tablet"))[1]
    url = f"{floor.base}/dashboard"
    page = data = False
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(url) as resp:
                page = resp.status == 200 and resp.content_type == "text/html"
            headers = {"X-Device-Key": key}
            async with http.post(
                f"{floor.base}/api/v1/sessions", json={"badge": badge}, headers=headers
            ) as resp:
                token = (await resp.json()).get("token") if resp.status == 201 else None
            if page and token:
                headers["Authorization"] = f"Bearer {token}"
                async with http.get(f"{floor.base}/api/v1/dashboard", headers=headers) as resp:
                    data = resp.status == 200
                async with http.delete(f"{floor.base}/api/v1/sessions", headers=headers):
                    pass
    except (aiohttp.ClientError, TimeoutError, ValueError):
        page = data = False
    if not (page and data):
        _say("dashboard", "not served by this build: no dashboard link", "yellow")
        return None
    _say(
        "dashboard",
        f"open {url} in a browser while the demo runs: device key {key} "
        f"(asked once per browser), then badge {badge} ({name}, supervisor)",
        "bold",
    )
    return url


async def _watch_cloud(floor: _Floor) -> None:
    """Narrate the faults the cloud injects and the resends it discards."""
    cloud = floor.cloud
    seen: Counter[tuple[str, str]] = Counter()
    discarded = 0
    while True:
        await asyncio.sleep(0.2)
        for what, faults in (
            ("a batch", cloud.batch_faults),
            ("a changes pull", cloud.changes_faults),
        ):
            for fault, n in list(faults.drawn.items()):
                if n > seen[what, fault]:
                    seen[what, fault] = n
                    words = FAULT_WORDS.get(fault, fault)
                    if fault == "slow":
                        words = f"answered {cloud.slow_s:g} s late"
                    elif what != "a batch" and fault in ("503", "500"):
                        words = f"{fault}: the box pulls again after a pause"
                    _say("cloud", f"fault injected on {what}: {words}", "magenta")
        if cloud.receiver.discarded > discarded:
            n, discarded = cloud.receiver.discarded - discarded, cloud.receiver.discarded
            _say("cloud", f"{n} events arrived again and were discarded: held once already")


def _alert_rows(store: Any) -> list[dict[str, Any]]:
    import msgpack

    rows = store.query(
        "SELECT id, kind, severity, subject, detail, cleared_ms FROM alerts ORDER BY id"
    )
    return [{**r, "detail": msgpack.unpackb(r["detail"], raw=False)} for r in rows]


async def _watch_alerts(floor: _Floor) -> None:
    """Narrate the alerts the box raises and clears (the dock's are narrated
    where the cartons are carried)."""
    from edge.alerting.rules import CLEARED_WHY

    raised: set[int] = set()
    cleared: set[int] = set()
    while True:
        await asyncio.sleep(0.25)
        for a in await asyncio.to_thread(_alert_rows, floor.store):
            if a["kind"].startswith("dock_"):
                continue
            detail = a["detail"]
            if a["id"] not in raised:
                raised.add(a["id"])
                if a["kind"] == "backlog_age":
                    why = (
                        f"the oldest unsent event is {detail.get('oldest_s')} s old "
                        f"(limit {BACKLOG_AGE_S:g} s), {detail.get('backlog')} events wait"
                    )
                else:
                    why = ", ".join(f"{k} {v}" for k, v in detail.items() if v is not None)
                    why = why or a["subject"]
                _say(
                    "pickedge",
                    f"alert raised: {a['kind']} ({a['severity']}) — {why}; "
                    "queued upstream as an alert event",
                    "yellow",
                )
            if a["cleared_ms"] is not None and a["id"] not in cleared:
                cleared.add(a["id"])
                why = CLEARED_WHY.get(a["kind"], "resolved")
                _say(
                    "pickedge",
                    f"alert cleared: {a['kind']} — {why}; sent upstream as cleared",
                    "green",
                )


async def _cloud_outage(floor: _Floor, outage: _Outage) -> None:
    """In the middle of picking, stop the cloud's server for ``planned_s`` and
    start it again on the same address; narrate what the box does meanwhile."""
    from edge.store.outbox import status

    run, cloud, store = floor.run, floor.cloud, floor.store
    uploader = floor.daemon.parts.get("uploader")
    # a quarter or so into the first wave's picking, or when it ends
    await _wait_for(
        lambda: run.units_told >= 30 or (run.tours > 0 and not run.picking),
        300,
        "picking to start",
        run,
    )
    port = int(cloud.url.rsplit(":", 1)[1])
    before = status(store)
    await cloud.stop()
    outage.started = time.monotonic()
    _say(
        "cloud",
        f"OUTAGE: the cloud is unreachable (its server stopped, {cloud.url} refuses "
        f"connections) for {outage.planned_s:g} s; the pickers carry on",
        "bold red",
    )
    try:
        while (left := outage.planned_s - (time.monotonic() - outage.started)) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.stop.wait(), min(2.0, left))
            st = status(store)
            outage.peak_backlog = max(outage.peak_backlog, st.backlog)
            if run.stop.is_set():
                break
            if left <= 2.0:
                continue
            age = (time.time() * 1000 - st.oldest_unacked_ms) / 1000 if st.oldest_unacked_ms else 0
            backoff = (
                f"backing off {uploader.backoff_s:.1f} s" if uploader is not None else "waiting"
            )
            _say(
                "uploader",
                f"cloud unreachable: {backoff}; backlog {st.backlog} events, the oldest "
                f"{age:.1f} s old; every scan still answered by the box",
                "yellow",
            )
    finally:
        await cloud.start(port=port)  # the same address: nothing to reconfigure
        outage.ended = time.monotonic()
    back = status(store)
    outage.written = back.next_seq - before.next_seq
    _say(
        "cloud",
        f"back after {outage.length_s:.1f} s on the same address"
        + (" (the outage cut short: the demo is stopping)" if run.stop.is_set() else ""),
        "green",
    )
    if run.stop.is_set():
        return
    mark = back.next_seq - 1
    await _wait_for(lambda: status(store).acked_seq >= mark, 60, "the backlog to drain", run)
    outage.caught_up_s = time.monotonic() - outage.ended
    _say(
        "uploader",
        f"caught up {outage.caught_up_s:.1f} s later: the {outage.written} events written "
        f"during the outage are acked (backlog peaked at {outage.peak_backlog})",
        "green",
    )


async def _picking(floor: _Floor, tours: int, *, scripted: bool) -> None:
    """Every picker walks ``tours`` tours (scripted: one wrong location, one short)."""
    run = floor.run
    run.picking = True
    try:
        results = await asyncio.gather(
            *(_picker(floor, n, tours, scripted) for n in range(1, floor.pickers + 1)),
            return_exceptions=True,
        )
    finally:
        run.picking = False
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, _Stopped):
            raise result
    run.check()


async def _picker(floor: _Floor, n: int, tours: int, scripted: bool) -> None:
    from edge.api.auth import enroll_pda
    from edge.routing import heuristic_length
    from simulators.floor import walk_tour

    run = floor.run
    first = n not in floor.keys
    if first:
        floor.keys[n] = (await asyncio.to_thread(enroll_pda, floor.store, f"demo-pda-{n}"))[1]
    async with _Pda(floor.base, floor.keys[n], pace_s=floor.pace, run=run) as pda:
        try:
            who = await pda.login(f"BADGE{n:04d}")
            name = who["picker"]["name"]
            if first:
                _say(name, f"logged in by badge on demo-pda-{n}")
            for t in range(tours):
                answer = await pda.scan("START")
                tour = answer.get("tour")
                if answer["result"] != "tour_started" or tour is None:
                    _say(name, f"{answer['result']}: {answer.get('message', '')}", "yellow")
                    return
                orders = len(tour.get("cart", {}).get("totes", [])) or 1
                line = f"tour {tour['tour']}: a cart of {orders} orders, "
                line += f"{len(tour['stops'])} stops, {tour['route']['length_m']:.1f} m"
                alone = _single_s_shape(tour, floor.where, heuristic_length)
                if alone is not None:
                    run.walked["cart"] += tour["route"]["length_m"]
                    run.walked["single s-shape"] += alone
                    run.walked["units"] += sum(s["qty"] for s in tour["stops"])
                    line += f" (one order per tour on S-shape routes: {alone:.1f} m)"
                _say(name, line, "cyan")

                async def narrate(kind: str, detail: dict[str, Any], who: str = name) -> None:
                    result = detail.get("result", kind)
                    if kind == "tote":
                        _say(
                            who,
                            f"tote {detail['code']} → slot {detail['slot']} "
                            f"(order {detail['order']})",
                        )
                    elif detail.get("feedback") == "error":
                        run.errors += 1
                        _say(who, f"✗ {detail.get('code')}: {result}", "red")
                    elif kind == "short":
                        run.shorts += 1
                        stop = detail["stop"]
                        _say(
                            who,
                            f"short at {stop['location']}: found {detail['found']} of "
                            f"{stop['qty'] - stop['picked']}; rest re-routed, "
                            "shortage sent upstream",
                            "yellow",
                        )
                    elif result in ("stop_done", "tour_done") and "stop" in detail:
                        stop = detail["stop"]
                        _say(
                            who,
                            f"✓ {stop['location']}  {stop['sku']} × {stop['qty']}"
                            + ("  — tour done" if result == "tour_done" else ""),
                            "green",
                        )

                await walk_tour(
                    pda,
                    tour,
                    floor.gtins,
                    say=narrate,
                    short_stop=2 if (scripted and n == floor.pickers and t == 0) else None,
                    wrong_location="H-02-06" if (scripted and n == 1 and t == 0) else None,
                )
                run.tours += 1
        finally:
            run.latencies.extend(pda.latencies_ms)


async def _wave(floor: _Floor) -> None:
    """One more wave (``--duration``): new orders from the cloud with their
    stock replenished, a tour for each picker, packed and shipped."""
    run, store = floor.run, floor.store
    run.check()
    run.waves += 1
    rng = random.Random(run.waves)
    skus = sorted(floor.gtins)
    ids = []
    changes: list[dict[str, Any]] = []
    for _ in range(floor.pickers * CART_TOTES):
        n = floor.next_task
        floor.next_task += 1
        ids.append(f"T{n:05d}")
        chosen = rng.sample(skus, k=rng.randint(3, 6))
        changes.append(
            {
                "type": "task",
                "data": {
                    "task": f"T{n:05d}",
                    "kind": "pick",
                    "order": f"O{n:05d}",
                    "priority": rng.randint(0, 3),
                    "lines": [
                        {"line": i, "sku": sku, "qty": rng.randint(1, 3)}
                        for i, sku in enumerate(chosen, start=1)
                    ],
                    "ship_to": {"postcode": f"{rng.randint(10000, 99999)}", "region": "north"},
                    "carrier": "dhl",
                },
            }
        )
    # the shelves refilled: the cloud's stock view goes up by a full load
    refill = [
        {"type": "stock", "data": {**c["data"], "base": c["data"]["base"] + 40 * (run.waves - 1)}}
        for c in floor.feed
        if c["type"] == "stock"
    ]
    floor.cloud.feed.add(*refill, *changes)
    _say(
        "cloud",
        f"wave {run.waves}: {len(ids)} new orders for the zone, its shelves replenished",
        "bold",
    )
    marks = ", ".join("?" * len(ids))

    def pulled() -> bool:
        rows = store.query(f"SELECT COUNT(*) AS n FROM tasks WHERE task IN ({marks})", ids)  # noqa: S608 - placeholders only
        return int(rows[0]["n"]) == len(ids)

    await _wait_for(pulled, 60, f"wave {run.waves} to be pulled", run)
    await _picking(floor, 1, scripted=False)
    await run.pause(1.0)
    await _pack_and_ship(floor, drama=False)


async def _pack_and_ship(floor: _Floor, *, drama: bool) -> None:
    """Pack every picked order not packed yet at pack-1 through its serial
    scanner, print its labels (a cart's orders print together, once the last
    of them is packed), and carry the cartons through dock-1's portal. With
    ``drama``: a unit of another order scanned first, one carton held back
    past the window, a stray carton."""
    from edge.shipping.sscc import format_sscc

    run, store, packing = floor.run, floor.store, floor.daemon.parts["packing"]
    run.shipping_done = False
    if not floor.subscribed:

        def on_station(packer: str, message: dict[str, Any]) -> None:
            if message["result"] in ("order_packed", "shipped"):
                floor.packed.append(message["result"])
            if message.get("feedback") == "error":
                _say("pack-1", f"✗ {message['result']}: {message['message']}", "red")
            else:
                tone = "green" if message["result"] == "shipped" else ""
                _say("pack-1", f"✓ {message['message']}", tone)

        packing.subscribe(on_station)
        floor.subscribed = True
    orders = [
        str(r["o"])
        for r in store.query(
            "SELECT DISTINCT COALESCE(order_ref, task) AS o FROM tasks t WHERE state = 'done' "
            "AND EXISTS (SELECT 1 FROM task_lines l WHERE l.task = t.task AND l.picked > 0) "
            "AND NOT EXISTS (SELECT 1 FROM cartons c "
            "WHERE c.order_ref = COALESCE(t.order_ref, t.task)) "
            "ORDER BY o"
        )
    ]
    units = {
        order: [
            floor.gtins[r["sku"]]
            for r in store.query(
                "SELECT l.sku, l.picked FROM task_lines l JOIN tasks t ON t.task = l.task "
                "WHERE COALESCE(t.order_ref, t.task) = ? ORDER BY l.task, l.line",
                (order,),
            )
            for _ in range(r["picked"])
        ]
        for order in orders
    }
    done_before = len(floor.packed)
    for n, order in enumerate(orders):
        run.check()
        scans: list[tuple[str, str | None]] = [(order, None)]
        if drama and n == 0 and len(orders) > 1:
            # a unit of the next order in the wrong tote: refused, named
            stranger = next((g for g in units[orders[1]] if g not in units[order]), None)
            if stranger is not None:
                scans.append((stranger, "]E0"))
        for i, gtin in enumerate(units[order], start=1):
            scans.append((gtin, "]E0"))
            if i == 2 and len(units[order]) > 2:
                scans.append(("CLOSE", None))  # a second carton for the rest
        scans.append(("CLOSE", None))
        await floor.scanner.send_many(scans)
        await _wait_for(
            lambda n=n: len(floor.packed) > done_before + n, 20, f"order {order} to be packed", run
        )
    for order in orders:
        await _wait_for(
            lambda o=order: bool(store.query("SELECT 1 FROM shipments WHERE order_ref = ?", (o,))),
            20,
            f"order {order} to ship",
            run,
        )
    if orders:
        _say(
            "pack-1-printer",
            f"{len(floor.printer.printed)} carton labels printed so far (GS1-128, SSCC)",
        )

    # The dock: every carton leaves (with drama, one of them later, past the window).
    marks = ", ".join("?" * len(orders))
    cartons = [
        str(r["sscc"])
        for r in store.query(
            f"SELECT sscc FROM cartons WHERE order_ref IN ({marks}) ORDER BY carton",  # noqa: S608 - placeholders only
            orders,
        )
    ]
    if not cartons:
        run.shipping_done = True
        return
    run.check()
    if not drama:
        await floor.reader.pass_portal(
            cartons, company_prefix_digits=len(GS1_PREFIX), gap=0.15, dwell=0.6
        )
        run.left += cartons
        _say("dock-1-portal", f"{len(cartons)} cartons pass the portal")
        run.shipping_done = True
        return
    held, leaving = cartons[-1], cartons[:-1]
    stray = format_sscc(9, GS1_PREFIX, 999_999)  # a carton no one packed here
    # a carton every 0.15 s: a conveyor's pace, the whole dock in a few seconds
    await floor.reader.pass_portal(
        [*leaving, stray], company_prefix_digits=len(GS1_PREFIX), gap=0.15, dwell=0.6
    )
    run.left += leaving
    _say("dock-1-portal", f"{len(leaving)} cartons and a stray one pass the portal; one held back")
    await _wait_for(
        lambda: _open_alert(store, "dock_shipment_incomplete"),
        WINDOW_S + 15,
        "the late carton",
        run,
    )
    _say("pickedge", "alert: a shipment's carton did not leave in the window", "yellow")
    await floor.reader.pass_portal([held], company_prefix_digits=len(GS1_PREFIX))
    run.left.append(held)
    await _wait_for(
        lambda: not _open_alert(store, "dock_shipment_incomplete"), 15, "the alert to clear", run
    )
    _say("pickedge", "the held-back carton left: its alert cleared, upstream too", "green")
    floor.portal_verbose = False  # later waves: a line per wave, not per tag
    run.dock_done = True
    run.shipping_done = True


async def _settle(floor: _Floor) -> None:
    """Wait (up to 30 s) until the box has nothing left to send and stays so
    for a second (an alert may clear once the backlog is gone)."""
    from edge.store.outbox import status

    deadline = time.monotonic() + 30
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        if status(floor.store).backlog == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 1.2:
                return
        else:
            quiet_since = None
        await asyncio.sleep(0.1)
    _say("uploader", "the backlog did not drain within 30 s", "red")


def _ledger_picks(store: Any) -> int:
    """Units the box's stock ledger took off the shelves for picks."""
    import msgpack

    rows = store.query(
        "SELECT o.payload FROM stock_ledger l JOIN outbox o "
        "ON o.epoch = l.epoch AND o.seq = l.seq WHERE o.type = 'stock_delta'"
    )
    total = 0
    for r in rows:
        data = msgpack.unpackb(r["payload"], raw=False)
        if data.get("reason") == "pick":
            total -= int(data["qty"])
    return total


def _report(floor: _Floor) -> bool:
    """Print what happened and the checks; whether every check holds."""
    from edge.store.ledger import net_movements
    from edge.store.outbox import status

    run, store, cloud = floor.run, floor.store, floor.cloud
    st = status(store)
    box = store.box_id
    cloud_net = cloud.receiver.net_stock(box)
    ledger = net_movements(store)
    same = {k: v for k, v in cloud_net.items() if v} == {k: v for k, v in ledger.items() if v}
    upstream = _cloud_events(cloud.receiver, box)
    written = int(store.query("SELECT COUNT(*) AS n FROM outbox")[0]["n"])
    acked = sum(a for _, a in cloud.receiver.epochs(box))
    held = cloud.receiver.count(box)
    told = run.units_told
    at_cloud_units = sum(int(e["qty"]) for e in upstream.get("pick_confirmed", []))
    ledger_units = _ledger_picks(store)
    events_once = written == acked == held and st.backlog == 0
    nothing_lost = told == at_cloud_units == ledger_units and events_once and same

    elapsed = time.monotonic() - run.started
    table = Table(title="What happened", show_header=False)
    table.add_row(
        "stopped",
        f"{run.why} after {elapsed:.0f} s"
        if run.why
        else f"the scenario ran to its end in {elapsed:.0f} s",
    )
    table.add_row("waves of orders / tours walked", f"{run.waves} / {run.tours}")
    table.add_row("units confirmed (each durable before its beep)", str(told))
    table.add_row("short picks / error scans", f"{run.shorts} / {run.errors}")
    walked = run.walked
    if walked["single s-shape"] and walked["units"]:
        per_unit = walked["cart"] / walked["units"]
        alone_per_unit = walked["single s-shape"] / walked["units"]
        saved = 100 * (1 - walked["cart"] / walked["single s-shape"])
        table.add_row(
            f"walking saved per unit: carts of {CART_TOTES} orders vs one order per tour (S-shape)",
            f"{alone_per_unit - per_unit:.1f} m saved per unit: {per_unit:.1f} m vs "
            f"{alone_per_unit:.1f} m ({saved:.0f} % less walking)",
        )
    if run.latencies:
        table.add_row(
            "scan answer p50 / p99",
            f"{statistics.median(run.latencies):.1f} ms / {_pct(run.latencies, 0.99):.1f} ms",
        )
    confirmed = upstream.get("shipment_confirmed", [])
    at_cloud = sorted(c["sscc"] for e in confirmed for c in e["cartons"])
    departed = sorted(e["sscc"] for e in upstream.get("carton_departed", []))
    table.add_row(
        "shipments confirmed (shipment_confirmed at the cloud)",
        f"{len(confirmed)} orders in {len(at_cloud)} cartons, {len(departed)} cartons departed",
    )
    faults = {
        what: ", ".join(f"{k} ×{v}" for k, v in sorted(f.drawn.items())) or "none"
        for what, f in (("batches", cloud.batch_faults), ("changes", cloud.changes_faults))
    }
    table.add_row(
        "faults the cloud injected",
        f"batches: {faults['batches']}; changes pulls: {faults['changes']}",
    )
    outage = run.outage
    if outage is not None and outage.length_s is not None:
        caught = (
            f", caught up {outage.caught_up_s:.1f} s after it came back"
            if outage.caught_up_s is not None
            else ""
        )
        table.add_row(
            "cloud outage",
            f"{outage.length_s:.1f} s unreachable; {outage.written} events written meanwhile, "
            f"backlog peaked at {outage.peak_backlog}{caught}",
        )
    elif outage is not None:
        table.add_row("cloud outage", "not reached before the demo stopped")
    alerts = _alert_rows(store)
    up_alerts = Counter(
        (e["kind"], e["subject"], e.get("state", "raised")) for e in upstream.get("alert", [])
    )
    box_alerts = Counter((a["kind"], a["subject"], "raised") for a in alerts) + Counter(
        (a["kind"], a["subject"], "cleared") for a in alerts if a["cleared_ms"] is not None
    )
    by_kind: dict[str, list[int]] = {}
    for a in alerts:
        counts = by_kind.setdefault(a["kind"], [0, 0])
        counts[0] += 1
        counts[1] += a["cleared_ms"] is not None
    table.add_row(
        "alerts raised / cleared (each also received upstream)",
        ", ".join(f"{k} {r}/{c}" for k, (r, c) in sorted(by_kind.items())) or "none",
    )
    table.add_row(
        "events: written = acked = held by the cloud, once each",
        f"{written} = {acked} = {held}; {cloud.receiver.discarded} resent and discarded "
        "by the cloud as duplicates",
    )
    table.add_row(
        "units: told to pickers = in the cloud's pick_confirmed = the box's ledger",
        f"{told} = {at_cloud_units} = {ledger_units}",
    )
    if run.dashboard:
        table.add_row("dashboard (supervisor)", run.dashboard)

    done_tasks = {r["task"] for r in store.query("SELECT task FROM tasks WHERE state = 'done'")}
    task_picked = [e["task"] for e in upstream.get("task_picked", [])]
    shipments = sorted(str(r["order_ref"]) for r in store.query("SELECT order_ref FROM shipments"))
    box_ssccs = sorted(
        str(r["sscc"])
        for r in store.query(
            "SELECT c.sscc FROM cartons c JOIN shipments s ON s.order_ref = c.order_ref"
        )
    )
    printed = sorted(
        f.data[2:]
        for label in floor.printer.printed
        for f in label.barcodes
        if f.data.startswith("00")
    )
    box_departed = sorted(
        str(r["sscc"])
        for r in store.query("SELECT sscc FROM cartons WHERE departed_ms IS NOT NULL")
    )
    checks: dict[str, bool] = {
        "nothing lost, nothing counted twice": nothing_lost,
        "cloud net stock = box ledger": same,
        "one task_picked per picked task": sorted(task_picked) == sorted(done_tasks),
        "one shipment_confirmed per shipment": sorted(o for e in confirmed for o in e["orders"])
        == shipments,
        "the SSCCs confirmed are the SSCCs printed": at_cloud == box_ssccs
        and set(at_cloud) <= set(printed)
        and (printed == at_cloud or not run.shipping_done),
        "one carton_departed per carton that left": departed == box_departed
        and (not run.shipping_done or sorted(run.left) == departed),
        "every alert raised and cleared on the box was received upstream as such": all(
            up_alerts[key] >= n for key, n in box_alerts.items()
        ),
    }
    if run.dock_done:
        checks["held-back carton and stray carton alerted, held-back cleared"] = {
            ("dock_shipment_incomplete", "raised"),
            ("dock_shipment_incomplete", "cleared"),
            ("dock_unexpected_carton", "raised"),
        } <= {(k, s) for k, _, s in up_alerts}
    if outage is not None and outage.caught_up_s is not None:
        checks["the outage raised backlog_age and cleared it, both received upstream"] = {
            ("backlog_age", "raised"),
            ("backlog_age", "cleared"),
        } <= {(k, s) for k, _, s in up_alerts}
    for name, ok in checks.items():
        table.add_row(name, "[green]yes[/]" if ok else "[red]NO[/]")
    sink = floor.daemon.parts["device_events"]
    table.add_row("device events", ", ".join(f"{k} {v}" for k, v in sink.counts.items()))
    console.print(table)
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        console.print(f"[red]demo: {escape('; '.join(failed))}: no[/]")
    return not failed


def _single_s_shape(tour: dict[str, Any], where: dict[str, Any], s_shape: Any) -> float | None:
    """What the tour's orders would walk picked one order per tour on S-shape
    routes (None when a stop's location is not on the map)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for s in tour["stops"]:
        if s["location"] not in where:
            return None
        spot = {"id": str(s["stop"]), "aisle": where[s["location"]].aisle}
        by_task.setdefault(s["task"], []).append({**spot, "y": where[s["location"]].y})
    return sum(
        float(s_shape({"layout": LAYOUT, "picks": picks}, "s-shape")) for picks in by_task.values()
    )


def _cloud_events(receiver: Any, box: str) -> dict[str, list[dict[str, Any]]]:
    """Every event the cloud applied for ``box``, by type (all epochs)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for epoch, _ in receiver.epochs(box):
        for event in receiver.events(box, epoch):
            out.setdefault(event["type"], []).append(event["data"])
    return out


def _open_alert(store: Any, kind: str) -> bool:
    rows = store.query("SELECT 1 FROM alerts WHERE kind = ? AND cleared_ms IS NULL", (kind,))
    return bool(rows)


@click.command("demo")
@click.option("--pickers", type=click.IntRange(1, 8), default=3, show_default=True)
@click.option(
    "--tours",
    type=click.IntRange(1, 10),
    default=2,
    show_default=True,
    help="Tours each picker walks in the first wave.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    help="Stop after this many seconds; until then, more waves of orders after the "
    "first (default: stop when the first wave is shipped).",
)
@click.option(
    "--outage",
    "outage_s",
    type=click.FloatRange(0, 60),
    default=OUTAGE_S,
    show_default=True,
    help="Seconds the cloud is unreachable in the middle of picking (0: no outage).",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the demo's files here (default: a temporary directory).",
)
@click.option("--keep", is_flag=True, help="Keep everything running after the report.")
@click.option(
    "--pace",
    type=click.FloatRange(0, 5),
    default=0.15,
    show_default=True,
    help="Seconds a picker takes per scan (0: as fast as the box answers).",
)
def demo_command(
    *,
    pickers: int,
    tours: int,
    duration: float | None,
    outage_s: float,
    workdir: Path | None,
    keep: bool,
    pace: float,
) -> None:
    """Run the whole box with every part simulated, and narrate what happens.

    Starts a cloud OMS simulator (with occasional faults and an outage in the
    middle of picking), a Mosquitto broker, a serial scanner, a label printer
    and an RFID portal, the real daemon, and simulated PDAs whose pickers
    walk their tours; then packs and ships, and checks that nothing was lost
    or counted twice.

    Ctrl-C (or SIGTERM) stops it cleanly at any moment and prints the report
    for what happened so far; a second Ctrl-C stops at once. Exit code 0 when
    every check holds (also after Ctrl-C), 1 when one does not.

    \b
    Examples:
      pickedge demo
      pickedge demo --duration 300          # waves of orders for five minutes
      pickedge demo --pickers 5 --tours 3 --pace 0 --outage 0
      pickedge demo --keep --dir /tmp/pickedge-demo    # then open the PDA page
    """
    from edge.logs import setup_logging

    setup_logging("warning", "text")
    options: dict[str, Any] = {
        "pickers": pickers,
        "tours": tours,
        "keep": keep,
        "pace": pace,
        "duration": duration,
        "outage_s": outage_s,
    }
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        code = asyncio.run(_demo(workdir, **options))
    else:
        with tempfile.TemporaryDirectory(prefix="pickedge-demo-") as tmp:
            code = asyncio.run(_demo(Path(tmp), **options))
    if code:
        raise click.exceptions.Exit(code)
