"""Customer data leaves the box, proven on a real daemon (issue 13: data
minimisation by default, deletion on request).

Canary values go in through the real paths: a postcode, a ship-to name, a
street and a phone number in a task of the cloud simulator's change feed (the
box keeps only the postcode and region: the rest is dropped on ingest), a
picker's name and badge through ``pickedge picker add``. The picker logs in
with the badge on a PDA, picks the order, packs it at a station whose printer
(the printer simulator) prints the label carrying the postcode. Then either

- the cloud sends an ``erase`` of the order and of the picker, or
- the box runs on (its uptime advanced past every retention period) and the
  purge removes the finished work, the shipment, the label job and the
  inactive picker;

the daemon stops, and the raw bytes of the database, its ``-wal`` and ``-shm``,
the daemon's log file (debug level), the stored label jobs and the scraped
``/metrics`` are searched: no canary is left. Before that the same search
finds the postcode, the name and the badge (the test can fail), and
afterwards the quantities and codes are still there: the pick's stock
movement, the SSCC, every event at the cloud once.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulators.cloud import CloudSimulator, gtin14
from simulators.printer import PrinterSimulator
from tests.support.e2e import BOX, ROOT, SECRET, box_config, free_port
from tests.support.processes import ProcessReaper

POSTCODE = "ZQ9 7XK"
PICKER_NAME = "Canarina Quux"
BADGE = "BADGE-CANARY-7731"
SHIP_NAME = "Zebedee Canaryman"
STREET = "17 Canary Wharf Lane"
PHONE = "+44 7700 900123"
EMAIL = "zebedee@canary.example"
#: what the box must never keep at all, and what it keeps until purged or erased
NEVER = (SHIP_NAME, STREET, PHONE, EMAIL)
KEPT = (POSTCODE, PICKER_NAME, BADGE)

PICKER = "pc"
ORDER = "O-CANARY"
TASK = "T-CANARY"
SKU = "SKU-CANARY"
GTIN = gtin14(7731)
LOCATION = "A02-05"
STATION = "P1"
PRINTER = "pack-1-printer"
METRICS_TOKEN = "metrics-token-for-the-canary-test"
DAY_MS = 86_400_000


def feed() -> list[dict[str, Any]]:
    return [
        {
            "type": "item",
            "data": {"sku": SKU, "gtins": [GTIN], "description": "Canary seed", "uom": "EA"},
        },
        {"type": "location", "data": {"code": LOCATION, "aisle": 1, "y": 5.0, "zone": "A"}},
        {"type": "stock", "data": {"sku": SKU, "location": LOCATION, "base": 50}},
        {
            "type": "task",
            "data": {
                "task": TASK,
                "order": ORDER,
                "priority": 1,
                "lines": [{"line": 1, "sku": SKU, "qty": 2, "gift_note": PHONE}],
                "ship_to": {
                    "postcode": POSTCODE,
                    "region": "north",
                    "name": SHIP_NAME,
                    "street": STREET,
                },
                "carrier": "dhl",
                "customer_phone": PHONE,
                "customer_email": EMAIL,
            },
        },
    ]


def write_config(workdir: Path, cloud_url: str, port: int, printer_url: str) -> Path:
    (workdir / "metrics.token").write_text(METRICS_TOKEN + "\n")
    path = workdir / "pickedge.toml"
    path.write_text(
        box_config(workdir, cloud_url, port)
        + f"""metrics_token_file = "metrics.token"

[layout]
kind = "blocks"
aisles = 4
aisle_pitch_m = 3.0
blocks = 1
block_length_m = 18.0
depot = {{ x = 4.5, y = 0.0 }}

[shipping]
gs1_prefix = "7612345"
sscc_extension = 3

[retention]
purge_interval_s = 1.0

[[devices]]
id = "{PRINTER}"
driver = "zpl-printer"
role = "pack_station"
url = "{printer_url}"
bound_to = "{STATION}"
options = {{ poll_s = 0.3, timeout_s = 2.0 }}
"""
    )
    return path


@dataclass
class Site:
    """The daemon's files, its cloud and its printer."""

    workdir: Path
    config: Path
    port: int
    cloud: CloudSimulator
    printer: PrinterSimulator
    processes: ProcessReaper
    proc: asyncio.subprocess.Process | None = None

    @property
    def db(self) -> Path:
        return self.workdir / "box.db"

    @property
    def log(self) -> Path:
        return self.workdir / "daemon.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}

    async def cli(self, *args: str) -> str:
        proc = await self.processes.exec(
            sys.executable,
            *("-m", "edge", *args, "--config", str(self.config)),
            cwd=ROOT,
            env=self.env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, (args, out, err)
        return out.decode()

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await self.processes.exec(
                sys.executable,
                *("-m", "edge", "run", "--config", str(self.config)),
                *("--log-format", "text", "--log-level", "debug"),
                cwd=ROOT,
                env=self.env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            while time.monotonic() < deadline:
                assert self.proc.returncode is None, self.tail()
                try:
                    async with http.get(f"{self.base}/livez") as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"the daemon did not come up: {self.tail()}")

    async def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        assert await asyncio.wait_for(self.proc.wait(), 20) == 0, self.tail()
        self.proc = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    async def until(self, what: str, check: Any, within_s: float = 30.0) -> None:
        deadline = time.monotonic() + within_s
        while not check():
            assert time.monotonic() < deadline, f"{what}: not within {within_s} s: {self.tail()}"
            await asyncio.sleep(0.1)

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            async with http.get(f"{self.base}/metrics", headers=headers) as r:
                assert r.status == 200
                return await r.text()

    def events(self, type_: str) -> list[dict[str, Any]]:
        out = []
        for epoch, _ in self.cloud.receiver.epochs(BOX):
            out += [e for e in self.cloud.receiver.events(BOX, epoch) if e["type"] == type_]
        return out

    def drained(self) -> bool:
        epoch, next_seq = self.query("SELECT epoch, next_seq FROM box")[0]
        acked = self.query("SELECT acked_epoch, acked_seq FROM sync_state")[0]
        return bool(
            self.cloud.receiver.acked(BOX, epoch) == next_seq - 1
            and tuple(acked) == (epoch, next_seq - 1)
        )


@pytest.fixture
async def site(tmp_path: Path, processes: ProcessReaper) -> AsyncIterator[Site]:
    async with (
        CloudSimulator(SECRET, feed=feed()) as cloud,
        PrinterSimulator() as printer,
    ):
        import random

        port = free_port(random.Random())
        config = write_config(tmp_path, cloud.url, port, printer.url)
        s = Site(tmp_path, config, port, cloud, printer, processes)
        yield s
        if s.proc is not None and s.proc.returncode is None:
            await s.stop()


class Handheld:
    """A PDA enrolled with ``pickedge pda enroll``, its picker logged in by badge."""

    def __init__(self, http: aiohttp.ClientSession, base: str, key: str) -> None:
        self.http, self.base, self.key = http, base, key
        self.token = ""

    async def login(self, badge: str) -> int:
        async with self.http.post(
            f"{self.base}/api/v1/sessions",
            json={"badge": badge},
            headers={"X-Device-Key": self.key},
        ) as r:
            body = await r.json()
            self.token = body.get("token", "")
            return r.status

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = {**body, "scan_id": str(uuid.uuid4())}
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.http.post(f"{self.base}{path}", json=body, headers=headers) as r:
            return r.status, await r.json()

    async def scan(self, code: str) -> dict[str, Any]:
        status, answer = await self.post("/api/v1/scan", {"code": code})
        assert status == 200, answer
        return answer

    async def pack(self, code: str) -> dict[str, Any]:
        status, answer = await self.post("/api/v1/pack/scan", {"station": STATION, "code": code})
        assert status == 200, answer
        return answer


async def work_the_order(site: Site) -> None:
    """Ingest, enrol, pick, pack and ship the canary order through the daemon."""
    await site.cli("db", "migrate")
    key = (await site.cli("pda", "enroll", "canary-pda")).strip()
    await site.cli("picker", "add", PICKER, PICKER_NAME, BADGE)
    await site.start()
    await site.until("the task ingested", lambda: site.query("SELECT 1 FROM tasks"))
    async with aiohttp.ClientSession() as http:
        pda = Handheld(http, site.base, key)
        assert await pda.login(BADGE) == 201
        answer = await pda.scan(ORDER)
        assert answer["tour"] is not None, answer
        while answer["tour"]["next_stop"] is not None:
            stop = next(
                s for s in answer["tour"]["stops"] if s["state"] in ("pending", "location_ok")
            )
            if stop["state"] == "pending":
                answer = await pda.scan(stop["location"])
            for _ in range(stop["qty"] - stop["picked"]):
                answer = await pda.scan(GTIN)
                assert answer["result"] in ("item_ok", "stop_done", "tour_done"), answer
        assert answer["result"] == "tour_done", answer
        assert (await pda.pack(ORDER))["result"] == "order_opened"
        for _ in range(2):
            assert (await pda.pack(GTIN))["result"] == "unit_packed"
        answer = await pda.pack("CLOSE")
        for _ in range(20):  # the printer's first status may not be in yet
            if answer["result"] == "shipped":
                break
            await asyncio.sleep(0.5)
            answer = await pda.pack("REPRINT")
        assert answer["result"] == "shipped", answer
    await site.until("every event at the cloud", site.drained)


def search(site: Site, metrics: str, values: tuple[str, ...]) -> dict[str, list[str]]:
    """Where each of ``values`` is found: the raw bytes of the database files,
    the log, the stored label jobs, the stored scan answers, the metrics."""
    places: dict[str, bytes] = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = site.db.with_name(site.db.name + suffix)
        if path.exists():
            places[path.name] = path.read_bytes()
    places["daemon.log"] = site.log.read_bytes()
    places["metrics"] = metrics.encode()
    if site.db.exists():
        places["print_jobs"] = b"".join(
            bytes(r[0]) for r in site.query("SELECT zpl FROM print_jobs")
        )
        places["scan answers"] = b"".join(
            zlib.decompress(bytes(r[0])) for r in site.query("SELECT answer FROM scans")
        )
    return {
        value: sorted(name for name, data in places.items() if value.encode() in data)
        for value in values
    }


def check_quantities_kept(site: Site) -> None:
    """What physically happened is all still there: the pick's stock movement
    on the box and at the cloud, the carton's SSCC, every event once."""
    assert site.query("SELECT qty FROM stock WHERE sku = ? AND location = ?", (SKU, LOCATION)) == [
        (48,)
    ]
    assert site.cloud.receiver.net_stock(BOX) == {(SKU, LOCATION): -2}
    picks = site.events("pick_confirmed")
    assert {e["data"]["order"] for e in picks} == {ORDER}
    assert sum(e["data"]["qty"] for e in picks) == 2
    shipped = site.events("shipment_confirmed")
    assert len(shipped) == 1 and shipped[0]["data"]["orders"] == [ORDER]
    assert shipped[0]["data"]["cartons"][0]["lines"] == [{"sku": SKU, "qty": 2}]
    assert site.drained()


async def test_canaries_leave_the_box_on_erasure(site: Site) -> None:
    await work_the_order(site)
    metrics = await site.metrics()
    found = search(site, metrics, KEPT + NEVER)
    # What the box keeps until asked is on disk (the test can fail) ...
    assert found[POSTCODE] and found[PICKER_NAME] and found[BADGE], found
    assert "print_jobs" in found[POSTCODE], found
    # ... what it never keeps is nowhere, and no log line or metric names any of it.
    assert all(not found[v] for v in NEVER), found
    assert all(not set(found[v]) & {"daemon.log", "metrics"} for v in KEPT), found
    assert 'pickedge_customer_fields_dropped_total{where="ship_to"} 2.0' in metrics
    assert 'pickedge_customer_fields_dropped_total{where="task"} 2.0' in metrics
    assert 'pickedge_customer_fields_dropped_total{where="line"} 1.0' in metrics

    site.cloud.erase(order=ORDER, picker=PICKER)
    await site.until("the erased events", lambda: len(site.events("erased")) == 2)
    await site.until("every event at the cloud", site.drained)
    erased = {(e["data"].get("order"), e["data"].get("picker")) for e in site.events("erased")}
    assert erased == {(ORDER, None), (None, PICKER)}
    rows = {
        e["data"].get("order") or e["data"]["picker"]: e["data"]["rows"]
        for e in site.events("erased")
    }
    assert rows[ORDER] == 2  # the task and the label job
    assert rows[PICKER] >= 2  # the picker and its session
    # The erased picker can no longer log in; its id stays in the history.
    assert site.query("SELECT picker FROM tours") == [(PICKER,)]
    assert site.query("SELECT active FROM pickers WHERE id = ?", (PICKER,)) == [(0,)]
    assert site.query("SELECT count(*) FROM sessions") == [(0,)]
    # While the daemon runs on, the old values leave the database and its WAL.
    await site.until(
        "the erased values out of the files of the running daemon",
        lambda: (
            not any(
                value.encode() in path.read_bytes()
                for value in KEPT
                for path in (site.db, site.db.with_name(site.db.name + "-wal"))
                if path.exists()
            )
        ),
    )
    metrics = await site.metrics()
    assert 'pickedge_erasures_total{subject="order"} 1.0' in metrics
    assert 'pickedge_erasures_total{subject="picker"} 1.0' in metrics
    await site.stop()

    found = search(site, metrics, KEPT + NEVER)
    assert found == {v: [] for v in KEPT + NEVER}, found
    check_quantities_kept(site)


async def test_canaries_leave_the_box_when_their_retention_runs_out(site: Site) -> None:
    await work_the_order(site)
    # The picker leaves: the cloud deactivates them (same name and badge).
    site.cloud.feed.add(
        {
            "type": "picker",
            "data": {"id": PICKER, "name": PICKER_NAME, "badge": BADGE, "active": False},
        }
    )
    await site.until(
        "the picker deactivated and stamped for the purge",
        lambda: (
            site.query("SELECT purge_at_up IS NOT NULL FROM pickers WHERE id = ?", (PICKER,))
            == [(1,)]
        ),
    )
    await site.until(
        "the finished work stamped for the purge",
        lambda: (
            site.query("SELECT count(*) FROM shipments WHERE purge_at_up IS NOT NULL") == [(1,)]
            and site.query("SELECT count(*) FROM tasks WHERE purge_at_up IS NOT NULL") == [(1,)]
        ),
    )
    await site.until("every event at the cloud", site.drained)
    metrics = await site.metrics()
    found = search(site, metrics, KEPT)
    assert found[POSTCODE] and found[PICKER_NAME] and found[BADGE], found
    await site.stop()

    # The box runs on: 100 days of uptime (the wall clock plays no part; the
    # stored uptime is what the next start counts on from).
    conn = sqlite3.connect(site.db)
    try:
        conn.execute("UPDATE box SET uptime_ms = uptime_ms + ?", (100 * DAY_MS,))
        conn.commit()
    finally:
        conn.close()
    await site.start()
    await site.until(
        "the purge",
        lambda: (
            site.query("SELECT count(*) FROM pickers") == [(0,)]
            and site.query("SELECT count(*) FROM print_jobs") == [(0,)]
        ),
    )
    metrics = await site.metrics()
    for table in ("tasks", "tours", "shipments", "cartons", "print_jobs", "pickers"):
        assert f'pickedge_retention_purged_rows_total{{table="{table}"}} 1.0' in metrics, table
    await site.stop()

    found = search(site, metrics, KEPT + NEVER)
    assert found == {v: [] for v in KEPT + NEVER}, found
    assert site.query("SELECT count(*) FROM tasks") == [(0,)]
    assert site.query("SELECT count(*) FROM task_tombstones") == [(1,)]  # never picked twice
    check_quantities_kept(site)
