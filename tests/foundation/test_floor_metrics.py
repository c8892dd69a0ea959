"""/metrics of the assembled daemon after real floor work (issue 13): PDA scans
through the API (tours, a wrong location, an unknown code, a retried scan_id),
a short, a skip and a cloud's cancel; a serial scanner on a pty; a label
printer (the simulator over TCP) out of paper; no cloud, so the outbox keeps
its backlog. The scraped text must hold exactly what the PDAs were answered,
and no label may name a person, an order, a task or a SKU."""

from __future__ import annotations

import asyncio
import collections
import re
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from devices.events import DeviceEvent, ScanEvent
from edge.api import auth
from edge.config import load_config
from edge.masterdata import apply_changes
from edge.picking import stats
from edge.store import Store, now_ms
from edge.store.outbox import raise_alert
from edge.store.sync_state import StoreChangeSink
from edge.wiring import build_daemon
from simulators.printer import PrinterSimulator
from simulators.serial_scanner import ScannerSimulator
from tests.support.api_fixtures import Pda, add_task, item_code, seed_zone, walk
from tests.support.mosquitto import until

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[str, float]:
    """Every sample of the exposition as ``name{labels}`` -> value (labels as written)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, line
        out[m[1] + (m[2] or "")] = float(m[3])
    return out


def label_names(text: str) -> set[str]:
    names: set[str] = set()
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m[2]:
            names.update(k for k, _ in LABEL.findall(m[2]))
    return names


def delta(after: dict[str, float], before: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


async def scrape(http: aiohttp.ClientSession, port: int) -> str:
    async with http.get(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer scrape-me"}
    ) as resp:
        assert resp.status == 200
        return await resp.text()


async def test_metrics_after_real_floor_work(tmp_path: Path) -> None:
    (tmp_path / "scrape.token").write_text("scrape-me\n")
    async with ScannerSimulator() as scanner, PrinterSimulator() as printer:
        (tmp_path / "pe.toml").write_text(
            f"""
[box]
id = "floor-metrics"
[store]
path = "pe.db"
[api]
port = 0
metrics_token_file = "scrape.token"
[[devices]]
id = "zone-scanner"
driver = "serial-scanner"
role = "pick_zone"
url = "{scanner.path}"
[[devices]]
id = "label-1"
driver = "zpl-printer"
role = "pack_station"
url = "{printer.url}"
options = {{ poll_s = 0.2, timeout_s = 2.0 }}
"""
        )
        cfg = load_config(tmp_path / "pe.toml", env={})
        store = Store.open(cfg.store_path(), box_id=cfg.box.id)
        seed_zone(store)
        add_task(store, "T-OK", [("SKU-A", 2)], order="O-1")
        add_task(store, "T-SHORT", [("SKU-A", 1)], order="O-2")
        add_task(store, "T-SKIP", [("SKU-A", 1), ("SKU-C", 1)], order="O-3")
        add_task(store, "T-CANCEL", [("SKU-C", 1)], order="O-4")
        _, key = auth.enroll_pda(store, "pda-metrics")
        daemon = build_daemon(cfg, store)
        runner = asyncio.create_task(daemon.run(install_signals=False))
        api = daemon.parts["api"]
        scanned = asyncio.Event()

        def seen(event: DeviceEvent) -> None:
            if isinstance(event, ScanEvent):
                scanned.set()

        daemon.parts["device_events"].listeners.append(seen)
        devices = daemon.parts["devices"]
        try:
            async with asyncio.timeout(30), aiohttp.ClientSession() as http:
                await api.started.wait()
                await until(lambda: all(d["connected"] for d in devices.snapshot().values()))
                await scanner.send("09521234543213", "]E0")
                await scanned.wait()
                printer.set_condition("paper-out")
                before = parse(await scrape(http, api.bound_port))

                pda = Pda(http, f"http://127.0.0.1:{api.bound_port}", key)
                await pda.login("BADGE-1")
                answered: collections.Counter[str] = collections.Counter()
                scans = 0

                async def scan(code: str, scan_id: str | None = None) -> dict[str, Any]:
                    nonlocal scans
                    scans += 1
                    body = await pda.scan(code, scan_id)
                    return body

                async def pick_rest(tour: dict[str, Any]) -> dict[str, Any]:
                    answer: dict[str, Any] = {"tour": tour}
                    while answer["tour"]["next_stop"] is not None:
                        stop = walk(answer["tour"])[0]
                        if stop["state"] == "pending":
                            answer = await scan(stop["location"])
                            answered[str(answer["result"])] += 1
                        for _ in range(stop["qty"] - stop["picked"]):
                            answer = await scan(item_code(stop))
                            answered[str(answer["result"])] += 1
                    return answer

                # a whole tour of 2 units, with a wrong location, an unknown code
                # and one scan sent twice (the second is a replay)
                started = await scan("T-OK")
                answered[str(started["result"])] += 1
                wrong = await scan("A-09-18")
                unknown = await scan("NO-SUCH-CODE-42")
                answered.update([str(wrong["result"]), str(unknown["result"])])
                stop = walk(started["tour"])[0]
                again = str(uuid.uuid4())
                first = await scan(stop["location"], again)
                replay = await scan(stop["location"], again)
                assert replay == first
                answered[str(first["result"])] += 1
                _, tour = await pda.tour()
                done = await pick_rest(tour)
                assert done["result"] == "tour_done"

                # a short of the only stop ends its tour
                short_start = await scan("T-SHORT")
                answered[str(short_start["result"])] += 1
                status, short = await pda.short(short_start["tour"]["next_stop"], 0, "damaged")
                assert status == 200 and short["result"] == "tour_done", short

                # a skip, then the tour picked to its end
                skip_start = await scan("T-SKIP")
                answered[str(skip_start["result"])] += 1
                status, skipped = await pda.call(
                    "POST", "/api/v1/tour/skip", {"stop": skip_start["tour"]["next_stop"]}
                )
                assert status == 200 and skipped["result"] == "skipped", skipped
                done = await pick_rest(skipped["tour"])
                assert done["result"] == "tour_done"

                # the cloud cancels a task, as the downloader applies its page
                planner = daemon.parts["picking"].planner
                sink = StoreChangeSink(store, partial(apply_changes, planner=planner))
                page = [{"type": "task_cancel", "data": {"task": "T-CANCEL"}}]
                await store.write(lambda tx: sink.apply(tx, page))

                await until(lambda: bool(daemon.parts["disk"].last))
                await asyncio.sleep(0.05)  # the oldest unsent event is some ms old
                await until(
                    lambda: (
                        (printer_status := devices.drivers["label-1"].last_status) is not None
                        and printer_status.paper_out
                    )
                )
                text = await scrape(http, api.bound_port)
                planned, single, _ = stats.walking(store.reader().conn, now_ms() - stats.DAY_MS)
        finally:
            daemon.stop()
            await asyncio.wait_for(runner, 15)
    after = parse(text)

    # scans by result: exactly what the PDA was answered; the replay apart
    results = {
        m[1]: 0.0
        for key in after
        if (m := re.match(r'pickedge_scans_total\{result="([^"]+)"\}', key))
    }
    got = {r: delta(after, before, f'pickedge_scans_total{{result="{r}"}}') for r in results}
    assert {r: n for r, n in got.items() if n} == dict(answered)
    assert answered["tour_started"] == 3 and answered["wrong_location"] == 1
    assert answered["unknown_code"] == 1
    assert delta(after, before, "pickedge_scans_replayed_total") == 1
    assert delta(after, before, "pickedge_api_scan_seconds_count") == scans
    # tours, units, shorts and skips
    assert delta(after, before, 'pickedge_tours_total{result="started"}') == 3
    assert delta(after, before, 'pickedge_tours_total{result="done"}') == 3
    assert delta(after, before, "pickedge_units_picked_total") == 2 + 2  # T-OK 2, T-SKIP 1 + 1
    assert delta(after, before, 'pickedge_pick_exceptions_total{kind="short"}') == 1
    assert delta(after, before, 'pickedge_pick_exceptions_total{kind="skip"}') == 1
    # a route per tour started, at least (re-routes after the short and skip add more)
    assert delta(after, before, "pickedge_route_seconds_count") >= 3
    assert after['pickedge_route_seconds_bucket{le="1.0"}'] == after["pickedge_route_seconds_count"]
    # per-window figures from the store
    for kind, n in (("short", 1), ("skip", 1), ("cancel", 1), ("supervisor", 0)):
        assert after[f'pickedge_task_exceptions{{kind="{kind}",window="1d"}}'] == n
    assert after['pickedge_tasks_finished{window="1d"}'] == 4
    assert after['pickedge_exception_rate_ratio{window="1d"}'] == 0.75
    assert single > 0
    assert after['pickedge_walk_saved_metres{window="1d"}'] == single - planned
    # the outbox keeps its backlog (no cloud), and its oldest event ages
    assert after["pickedge_outbox_backlog_events"] > 0
    assert after["pickedge_outbox_oldest_unsent_age_seconds"] > 0
    # devices and the printer
    assert after['pickedge_device_connected{device="zone-scanner"}'] == 1
    assert after['pickedge_device_frames_total{device="zone-scanner"}'] == 1
    assert after['pickedge_device_failures_total{device="zone-scanner"}'] == 0
    assert after['pickedge_device_state_seconds{device="zone-scanner"}'] > 0
    assert after['pickedge_device_connected{device="label-1"}'] == 1
    assert after['pickedge_printer_ready{printer="label-1"}'] == 0
    assert after['pickedge_printer_problem{kind="paper_out",printer="label-1"}'] == 1
    assert after['pickedge_printer_problem{kind="head_open",printer="label-1"}'] == 0
    # the store's disk
    assert after["pickedge_disk_free_bytes"] > 0
    assert 0 < after["pickedge_disk_free_ratio"] <= 1
    # nothing names a person, an order, a task or a SKU
    assert label_names(text).isdisjoint(
        {"sku", "order", "picker", "task", "person", "badge", "location", "tote"}
    )
    for canary in ("BADGE-1", "Pia", "O-1", "T-OK", "SKU-A", "A-01-05"):
        assert canary not in text


async def test_sync_errors_by_kind(tmp_path: Path) -> None:
    """A cloud nobody answers at: uploads and downloads counted as unreachable."""
    (tmp_path / "scrape.token").write_text("scrape-me\n")
    (tmp_path / "box.secret").write_text("box-secret\n")
    (tmp_path / "pe.toml").write_text(
        """
[box]
id = "sync-errors"
secret_file = "box.secret"
[cloud]
url = "http://127.0.0.1:9"
[store]
path = "pe.db"
[api]
port = 0
metrics_token_file = "scrape.token"
"""
    )
    cfg = load_config(tmp_path / "pe.toml", env={})
    store = Store.open(cfg.store_path(), box_id=cfg.box.id)
    store.run(lambda tx: raise_alert(tx, "test_alert", "warn", "something to send", {}))
    daemon = build_daemon(cfg, store)
    runner = asyncio.create_task(daemon.run(install_signals=False))
    api = daemon.parts["api"]
    wanted = (
        'pickedge_sync_errors_total{kind="upload_unreachable"}',
        'pickedge_sync_errors_total{kind="download_unreachable"}',
    )
    try:
        async with asyncio.timeout(20), aiohttp.ClientSession() as http:
            await api.started.wait()
            while True:
                text = await scrape(http, api.bound_port)
                figures = parse(text)
                if all(figures.get(k, 0) >= 1 for k in wanted):
                    break
                await asyncio.sleep(0.1)
    finally:
        daemon.stop()
        await asyncio.wait_for(runner, 15)
    assert figures["pickedge_outbox_backlog_events"] == 1
    assert figures["pickedge_outbox_oldest_unsent_age_seconds"] > 0
    assert figures["pickedge_sync_oldest_unacked_age_seconds"] > 0
    assert label_names(text).isdisjoint({"sku", "order", "picker", "task"})
