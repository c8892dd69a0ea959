"""``pickedge demo``: the whole box, every part simulated, narrated.

What runs, all on loopback and in a scratch directory:

- a cloud OMS (the sync-v1 simulator) holding a zone's master data and tasks;
- a Mosquitto broker of its own (no anonymous access), an Impinj RFID portal at
  the dock door publishing to it, and a serial barcode scanner at the pack
  station on a pty;
- the real daemon (``edge.wiring.build_daemon``): PDA API, devices, sync, upkeep;
- simulated PDAs: pickers log in by badge, scan ``START`` and get a cart of
  orders the box's online batcher chose, scan a tote for each order, walk
  their tours scan by scan, putting each stop's units into its tote (one wrong
  location, one short pick), while the box syncs every confirmed unit
  upstream; the walk per unit is compared with one order per tour on an
  S-shape route, as most sites pick today;
- then the shipping half: every picked order is packed at the pack station
  (the serial scanner scans the order, its units and ``CLOSE``), its carton
  labels print on a ZPL label printer (the printer simulator on TCP 9100's
  protocol), and the cartons leave through the dock door's RFID portal, their
  SSCC-96 tags read by four antennas. One carton is held back past the
  departure window and a stray carton crosses the portal: both raise alerts,
  and the held-back one clears its alert when it leaves.

At the end it checks the invariants the product promises — the cloud's net
stock movement equals the box's ledger, every event once, one ``task_picked``
per task, one ``shipment_confirmed`` per packed order with the SSCCs printed,
one ``carton_departed`` per carton — and prints figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
backoff_max_s = 5.0

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


async def _wait_for(predicate: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise click.ClickException(f"demo: timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _demo(workdir: Path, pickers: int, tours: int, keep: bool, pace: float) -> None:
    from devices.codes import decode
    from devices.events import PresenceKind, ScanEvent, TagPresenceEvent
    from edge.api.auth import enroll_pda
    from edge.config import load_config
    from edge.masterdata import tables as masterdata_tables
    from edge.routing import heuristic_length
    from edge.store.ledger import net_movements
    from edge.store.outbox import status
    from edge.wiring import build_daemon
    from simulators.broker import MosquittoBroker
    from simulators.cloud import CloudSimulator
    from simulators.floor import PdaClient, Zone, walk_tour, zone_feed
    from simulators.printer import PrinterSimulator
    from simulators.rfid_mqtt import ImpinjReaderSim
    from simulators.serial_scanner import ScannerSimulator

    def say(who: str, text: str, style: str = "") -> None:
        stamp = time.strftime("%H:%M:%S")
        console.print(f"[dim]{stamp}[/] [bold]{who:<15}[/] {escape(text)}", style=style)

    zone = Zone(
        aisles=int(LAYOUT["aisles"]),  # type: ignore[call-overload]
        blocks=int(LAYOUT["blocks"]),  # type: ignore[call-overload]
        block_length_m=float(LAYOUT["block_length_m"]),  # type: ignore[arg-type]
        slots_per_block=6,
    )
    feed, gtins = zone_feed(zone, pickers=pickers, tasks=pickers * tours * CART_TOTES + 2)
    console.rule("[bold]PickEdge demo[/]: one pick zone, every part simulated")
    say("demo", f"working in {workdir}")

    broker = MosquittoBroker(workdir / "mosquitto")
    broker.start()
    say("mosquitto", f"broker on 127.0.0.1:{broker.port} (password auth, no anonymous access)")

    async with contextlib.AsyncExitStack() as stack:
        stack.callback(broker.stop)
        cloud_secret = None
        scanner = await stack.enter_async_context(ScannerSimulator())
        say("pack-1-scanner", f"serial scanner on pty {scanner.path}")
        printer = await stack.enter_async_context(PrinterSimulator())
        say("pack-1-printer", f"ZPL label printer (simulated) on {printer.url}")
        # The cloud must know the box's secret: write it first, then start both.
        cfg_path = _config(
            workdir,
            cloud_url="http://127.0.0.1:1",
            broker=broker,
            scanner_path=scanner.path,
            printer_url=printer.url,
        )
        cloud_secret = (workdir / "box.secret").read_text().strip()
        cloud = CloudSimulator(cloud_secret, feed=feed)
        await cloud.start()
        stack.push_async_callback(cloud.stop)
        stack.callback(cloud.close)
        say("cloud", f"OMS simulator on {cloud.url}: {len(feed)} changes queued for the box")
        text = cfg_path.read_text().replace("http://127.0.0.1:1", cloud.url)
        cfg_path.write_text(text)

        cfg = load_config(cfg_path)
        daemon = build_daemon(cfg)
        store = daemon.store
        sink = daemon.parts["device_events"]

        def on_device(event: Any) -> None:
            if isinstance(event, ScanEvent) and event.device_id != "pack-1-scanner":
                try:
                    meaning = decode(event.code, event.symbology).to_json()
                    kind = meaning.get("kind", "?")
                except Exception as exc:  # shown, not fatal: the demo narrates
                    kind = f"invalid ({exc})"
                say(event.device_id, f"scanned {event.code!r} ({event.symbology}) → {kind}")
            elif isinstance(event, TagPresenceEvent) and event.kind is PresenceKind.SEEN:
                epc = decode(event.epc_hex).epc if len(event.epc_hex) == 24 else None
                uri = epc.uri if epc is not None and epc.uri else event.epc_hex
                say(event.device_id, f"RFID tag entered the portal: {uri}")

        sink.listeners.append(on_device)
        runner = asyncio.create_task(daemon.run(install_signals=False))
        api = daemon.parts["api"]
        await _wait_for(lambda: api.started.is_set() or runner.done(), 15, "the PDA API")
        if runner.done():
            runner.result()
        base = f"http://127.0.0.1:{api.bound_port}"
        say("pickedge", f"daemon up: PDA page and API on {base}/", "green")

        await _wait_for(
            lambda: masterdata_tables.counts(store)["tasks"] >= pickers * tours,
            20,
            "the first download from the cloud",
        )
        counts = masterdata_tables.counts(store)
        say(
            "downloader",
            f"pulled {counts['items']} items, {counts['locations']} locations, "
            f"{counts['tasks']} tasks, {counts['pickers']} pickers "
            "(signed pages, each applied in one transaction)",
        )

        # Devices at the pack station and the dock door.
        reader = ImpinjReaderSim(
            broker.settings("demo-sim"),
            reader_id="dock-1",
            topic="demo/impinj/dock-1",
            tags=["3074257BF7194E4000001A85", "3114257BF4B28A0000000001"],
            antennas=2,
            rate=40.0,
        )
        await stack.enter_async_context(reader)

        where = masterdata_tables.locations(store)
        walked: dict[str, float] = {"cart": 0.0, "single s-shape": 0.0, "units": 0.0}
        stats = {"tours": 0, "units": 0, "shorts": 0, "errors": 0}

        async def picker(n: int) -> None:
            key = (await asyncio.to_thread(enroll_pda, store, f"demo-pda-{n}"))[1]
            async with PdaClient(base, key, pace_s=pace) as pda:
                who = await pda.login(f"BADGE{n:04d}")
                name = who["picker"]["name"]
                say(name, f"logged in by badge on demo-pda-{n}")
                for t in range(tours):
                    answer = await pda.scan("START")
                    tour = answer.get("tour")
                    if answer["result"] != "tour_started" or tour is None:
                        say(name, f"{answer['result']}: {answer.get('message', '')}", "yellow")
                        return
                    orders = len(tour.get("cart", {}).get("totes", [])) or 1
                    line = f"tour {tour['tour']}: a cart of {orders} orders, "
                    line += f"{len(tour['stops'])} stops, {tour['route']['length_m']:.1f} m"
                    alone = _single_s_shape(tour, where, heuristic_length)
                    if alone is not None:
                        walked["cart"] += tour["route"]["length_m"]
                        walked["single s-shape"] += alone
                        walked["units"] += sum(s["qty"] for s in tour["stops"])
                        line += f" (one order per tour on S-shape routes: {alone:.1f} m)"
                    say(name, line, "cyan")

                    async def narrate(kind: str, detail: dict[str, Any], who: str = name) -> None:
                        result = detail.get("result", kind)
                        if kind == "tote":
                            say(
                                who,
                                f"tote {detail['code']} → slot {detail['slot']} "
                                f"(order {detail['order']})",
                            )
                        elif detail.get("feedback") == "error":
                            stats["errors"] += 1
                            say(who, f"✗ {detail.get('code')}: {result}", "red")
                        elif kind == "short":
                            stats["shorts"] += 1
                            stop = detail["stop"]
                            say(
                                who,
                                f"short at {stop['location']}: found {detail['found']} of "
                                f"{stop['qty'] - stop['picked']}; rest re-routed, "
                                "shortage sent upstream",
                                "yellow",
                            )
                        elif result in ("stop_done", "tour_done") and "stop" in detail:
                            stop = detail["stop"]
                            say(
                                who,
                                f"✓ {stop['location']}  {stop['sku']} × {stop['qty']}"
                                + ("  — tour done" if result == "tour_done" else ""),
                                "green",
                            )

                    done = await walk_tour(
                        pda,
                        tour,
                        gtins,
                        say=narrate,
                        short_stop=2 if (n == pickers and t == 0) else None,
                        wrong_location="H-02-06" if (n == 1 and t == 0) else None,
                    )
                    stats["tours"] += 1
                    stats["units"] += sum(s["picked"] for s in done["stops"])
                latencies.extend(pda.latencies_ms)

        latencies: list[float] = []
        await asyncio.gather(*(picker(n) for n in range(1, pickers + 1)))
        await asyncio.sleep(1.0)  # let the portal's smoothing window report

        shipped = await _pack_and_ship(
            daemon=daemon,
            store=store,
            scanner=scanner,
            printer=printer,
            reader=reader,
            gtins=gtins,
            say=say,
        )

        await _wait_for(lambda: status(store).backlog == 0, 30, "the outbox to drain")
        st = status(store)
        box = store.box_id
        cloud_net = cloud.receiver.net_stock(box)
        ledger = net_movements(store)
        same = {k: v for k, v in cloud_net.items() if v} == {k: v for k, v in ledger.items() if v}
        say(
            "uploader",
            f"{st.acked_seq} events acked by the cloud (epoch {st.epoch}); backlog {st.backlog}",
        )

        table = Table(title="What happened", show_header=False)
        table.add_row("tours walked", str(stats["tours"]))
        table.add_row("units confirmed (each durable before its beep)", str(stats["units"]))
        table.add_row("short picks / error scans", f"{stats['shorts']} / {stats['errors']}")
        if walked["single s-shape"] and walked["units"]:
            saved = 100 * (1 - walked["cart"] / walked["single s-shape"])
            per_unit = walked["cart"] / walked["units"]
            alone_per_unit = walked["single s-shape"] / walked["units"]
            table.add_row(
                f"walk per unit: carts of {CART_TOTES} orders vs one order per tour (S-shape)",
                f"{per_unit:.1f} m vs {alone_per_unit:.1f} m ({saved:.0f} % less walking)",
            )
        if latencies:
            table.add_row(
                "scan answer p50 / p99",
                f"{statistics.median(latencies):.1f} ms / {_pct(latencies, 0.99):.1f} ms",
            )
        table.add_row("events synced exactly once", f"{cloud.receiver.count(box)} = {st.acked_seq}")
        table.add_row("cloud net stock = box ledger", "[green]yes[/]" if same else "[red]NO[/]")
        upstream = _cloud_events(cloud.receiver, box)
        done_tasks = {r["task"] for r in store.query("SELECT task FROM tasks WHERE state = 'done'")}
        task_picked = [e["task"] for e in upstream.get("task_picked", [])]
        confirmed = upstream.get("shipment_confirmed", [])
        at_cloud = sorted(c["sscc"] for e in confirmed for c in e["cartons"])
        departed = sorted(e["sscc"] for e in upstream.get("carton_departed", []))
        alerts = [
            (e["kind"], e.get("state", "raised"))
            for e in upstream.get("alert", [])
            if e["kind"].startswith("dock_")
        ]
        checks = {
            "one task_picked per picked task": sorted(task_picked) == sorted(done_tasks),
            "one shipment_confirmed per packed order": sorted(
                o for e in confirmed for o in e["orders"]
            )
            == sorted(shipped.orders),
            "the SSCCs confirmed are the SSCCs printed": at_cloud == sorted(shipped.printed),
            "one carton_departed per carton that left": departed == sorted(shipped.left),
            "held-back carton and stray carton alerted, held-back cleared": {
                ("dock_shipment_incomplete", "raised"),
                ("dock_shipment_incomplete", "cleared"),
                ("dock_unexpected_carton", "raised"),
            }
            <= set(alerts),
        }
        table.add_row(
            "pack and ship",
            f"{len(task_picked)} tasks picked, {len(confirmed)} orders shipped in "
            f"{len(at_cloud)} cartons, {len(departed)} cartons departed",
        )
        for name, ok in checks.items():
            table.add_row(name, "[green]yes[/]" if ok else "[red]NO[/]")
        table.add_row("device events", ", ".join(f"{k} {v}" for k, v in sink.counts.items()))
        console.print(table)
        if keep:
            say("pickedge", f"still running: open {base}/ (Ctrl-C to stop)", "green")
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        daemon.stop()
        await runner
        if not same or cloud.receiver.count(box) != st.acked_seq:
            raise click.ClickException("demo: the cloud's account differs from the box's")
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise click.ClickException(f"demo: {'; '.join(failed)}: no")


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


@dataclass
class Shipped:
    orders: list[str] = field(default_factory=list)
    #: SSCCs the printer printed (parsed back from its ZPL)
    printed: list[str] = field(default_factory=list)
    #: SSCCs that crossed the dock door's portal
    left: list[str] = field(default_factory=list)


async def _pack_and_ship(
    *,
    daemon: Any,
    store: Any,
    scanner: Any,
    printer: Any,
    reader: Any,
    gtins: dict[str, str],
    say: Any,
) -> Shipped:
    """Pack every picked order at pack-1 through its serial scanner, print its
    labels (a cart's orders print together, once the last of them is packed),
    and carry the cartons through dock-1's portal (one held back past the
    window, one stray carton)."""
    from edge.shipping.sscc import format_sscc

    shipped = Shipped()
    packing = daemon.parts["packing"]

    packed: list[str] = []  # one entry per order the station finished

    def on_station(packer: str, message: dict[str, Any]) -> None:
        if message["result"] in ("order_packed", "shipped"):
            packed.append(message["result"])
        if message.get("feedback") == "error":
            say("pack-1", f"✗ {message['result']}: {message['message']}", "red")
        else:
            tone = "green" if message["result"] == "shipped" else ""
            say("pack-1", f"✓ {message['message']}", tone)

    packing.subscribe(on_station)
    orders = [
        str(r["o"])
        for r in store.query(
            "SELECT DISTINCT COALESCE(order_ref, task) AS o FROM tasks t WHERE state = 'done' "
            "AND EXISTS (SELECT 1 FROM task_lines l WHERE l.task = t.task AND l.picked > 0) "
            "ORDER BY o"
        )
    ]
    units = {
        order: [
            gtins[r["sku"]]
            for r in store.query(
                "SELECT l.sku, l.picked FROM task_lines l JOIN tasks t ON t.task = l.task "
                "WHERE COALESCE(t.order_ref, t.task) = ? ORDER BY l.task, l.line",
                (order,),
            )
            for _ in range(r["picked"])
        ]
        for order in orders
    }
    for n, order in enumerate(orders):
        scans: list[tuple[str, str | None]] = [(order, None)]
        if n == 0 and len(orders) > 1:
            # a unit of the next order in the wrong tote: refused, named
            stranger = next((g for g in units[orders[1]] if g not in units[order]), None)
            if stranger is not None:
                scans.append((stranger, "]E0"))
        for i, gtin in enumerate(units[order], start=1):
            scans.append((gtin, "]E0"))
            if i == 2 and len(units[order]) > 2:
                scans.append(("CLOSE", None))  # a second carton for the rest
        scans.append(("CLOSE", None))
        await scanner.send_many(scans)
        await _wait_for(lambda n=n: len(packed) > n, 20, f"order {order} to be packed")
    for order in orders:
        await _wait_for(
            lambda o=order: bool(store.query("SELECT 1 FROM shipments WHERE order_ref = ?", (o,))),
            20,
            f"order {order} to ship",
        )
        shipped.orders.append(order)
    shipped.printed = [
        f.data[2:] for label in printer.printed for f in label.barcodes if f.data.startswith("00")
    ]
    say("pack-1-printer", f"printed {len(printer.printed)} carton labels (GS1-128, SSCC)")

    # The dock: every carton but one leaves; the last one later, past the window.
    cartons = [str(r["sscc"]) for r in store.query("SELECT sscc FROM cartons ORDER BY carton")]
    held, leaving = cartons[-1], cartons[:-1]
    stray = format_sscc(9, GS1_PREFIX, 999_999)  # a carton no one packed here
    # a carton every 0.15 s: a conveyor's pace, the whole dock in a few seconds
    await reader.pass_portal(
        [*leaving, stray], company_prefix_digits=len(GS1_PREFIX), gap=0.15, dwell=0.6
    )
    say("dock-1-portal", f"{len(leaving)} cartons and a stray one pass the portal; one held back")
    await _wait_for(
        lambda: _open_alert(store, "dock_shipment_incomplete"), WINDOW_S + 15, "the late carton"
    )
    say("pickedge", "alert: a shipment's carton did not leave in the window", "yellow")
    await reader.pass_portal([held], company_prefix_digits=len(GS1_PREFIX))
    await _wait_for(
        lambda: not _open_alert(store, "dock_shipment_incomplete"), 15, "the alert to clear"
    )
    say("pickedge", "the held-back carton left: its alert cleared, upstream too", "green")
    shipped.left = cartons
    return shipped


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
    help="Tours each picker walks.",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the demo's files here (default: a temporary directory).",
)
@click.option("--keep", is_flag=True, help="Keep everything running after the scenario.")
@click.option(
    "--pace",
    type=click.FloatRange(0, 5),
    default=0.15,
    show_default=True,
    help="Seconds a picker takes per scan (0: as fast as the box answers).",
)
def demo_command(pickers: int, tours: int, workdir: Path | None, keep: bool, pace: float) -> None:
    """Run the whole box with every part simulated, and narrate what happens.

    Starts a cloud OMS simulator, a Mosquitto broker, a serial scanner and an
    RFID portal, the real daemon, and simulated PDAs whose pickers walk their
    tours; then checks that the cloud's account equals the box's.

    \b
    Examples:
      pickedge demo
      pickedge demo --pickers 5 --tours 3 --pace 0
      pickedge demo --keep --dir /tmp/pickedge-demo    # then open the PDA page
    """
    from edge.logs import setup_logging

    setup_logging("warning", "text")
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        asyncio.run(_demo(workdir, pickers, tours, keep, pace))
        return
    with tempfile.TemporaryDirectory(prefix="pickedge-demo-") as tmp:
        asyncio.run(_demo(Path(tmp), pickers, tours, keep, pace))
