"""The end-to-end kill loop: the real daemon, real PDAs, a faulty cloud, SIGKILL.

``pickedge run`` runs in its own process with a configuration of its own; the
cloud (the sync-v1 simulator, with its faults and the zone's master data and
tasks) and the pickers' handhelds (:class:`simulators.floor.PdaClient`) run in
the test's event loop, so both outlive every kill of the box.

The loop: start the daemon, let it work for a random 0.1–0.6 s, SIGKILL it —
unless one of the named crash points (:mod:`edge.faults`, armed through
``PICKEDGE_CRASH_POINTS``) killed it first, right after a scan committed and
before its answer, or right after a batch was answered and before its ack was
stored — run ``PRAGMA integrity_check`` on the database file, start again. The
handhelds behave like the PDA page: a scan that got no answer is sent again
with the same ``scan_id`` until the box answers, and after a restart the PDA
fetches ``GET /api/v1/tour`` to resume.

Each handheld remembers what the box *told* it: a unit is confirmed by an
answer ``item_ok`` / ``stop_done`` / ``tour_done`` to an item scan, and a short
pick (always of the units the picker scanned, reason ``damaged`` or ``other``,
with plenty of stock at the location) writes off the missing units there.

After the loop (crash points disarmed, faults cleared, the outbox drained):

- per (sku, location): the cloud's net stock delta == the box's ledger == what
  the PDAs were told; the cloud's ``pick_confirmed`` units == the units told;
- the cloud holds every (epoch, seq) of the box exactly once, contiguous from
  1, with the content the box wrote; nothing is left unacked;
- sessions survived every kill (no PDA had to log in again).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest

from edge import faults
from edge.api.auth import enroll_pda
from edge.store import Store
from simulators.cloud import CloudSimulator, Faults
from simulators.floor import ApiAnswerError, PdaClient, Zone, zone_feed

ROOT = Path(__file__).resolve().parents[2]
BOX = "e2e-zone-a"
SECRET = "e2e-kill-loop-shared-secret"
PICKERS = 3
TASKS = 1600  # more than the pickers can walk during the loop: work never runs out
STOCK = 1000  # per location: a short's write-off is always the missing units
KILLS = 100
CRASH_POINTS = "after_commit_before_answer:0.003,after_send_before_ack:0.04"
BATCH_FAULTS = {
    "fail_after": 0.06,
    "drop_after": 0.06,
    "fail_before": 0.03,
    "drop_before": 0.03,
    "slow": 0.03,
    "500": 0.02,
    "503": 0.02,
    "429": 0.02,
    "409": 0.02,
    "413": 0.02,
    "bad_sig": 0.02,
    "unsigned": 0.02,
    "lying_ack": 0.02,
}
CHANGES_FAULTS = {"fail_before": 0.05, "drop_after": 0.05, "bad_sig": 0.03}
ZONE = Zone(aisles=8, blocks=2, block_length_m=18.0, slots_per_block=6)
SKUS_OF = {"item_ok", "stop_done", "tour_done"}  # answers that confirm one scanned unit
Key = tuple[str, str]  # (sku, location)


# --------------------------------------------------------------------------- the box


def free_port(rng: random.Random) -> int:
    """A free port below the ephemeral range: while the daemon is down between
    kills, no outgoing connection can take it as its local port."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", port))
            return port
    raise AssertionError("no free port below the ephemeral range")


def write_config(workdir: Path, cloud_url: str, port: int) -> Path:
    (workdir / "box.secret").write_text(SECRET + "\n")
    path = workdir / "pickedge.toml"
    path.write_text(
        f"""
[box]
id = "{BOX}"
secret_file = "box.secret"

[cloud]
url = "{cloud_url}"
timeout_s = 1.0
batch_max_events = 40
backoff_max_s = 1.0
pull_interval_s = 0.5

[store]
path = "box.db"
checkpoint_interval_s = 1.0

[api]
host = "127.0.0.1"
port = {port}

[layout]
kind = "blocks"
aisles = {ZONE.aisles}
aisle_pitch_m = 3.0
blocks = {ZONE.blocks}
block_length_m = {ZONE.block_length_m}
depot = {{ x = 10.5, y = 0.0 }}
"""
    )
    return path


@dataclass
class Box:
    """The daemon under test: ``python -m edge run`` in its own process."""

    config: Path
    db: Path
    port: int
    log: Path
    starts: int = 0
    test_kills: int = 0
    self_kills: int = 0
    integrity_checks: int = 0
    hot_wals: int = 0  # kills that left committed frames in the WAL for the next start

    async def start(self, *, armed: bool) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}
        if armed:
            env["PICKEDGE_CRASH_POINTS"] = CRASH_POINTS
        with self.log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "edge",
                "run",
                "--config",
                str(self.config),
                "--log-format",
                "json",
                "--log-level",
                "warning",
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=out,
            )
        self.starts += 1
        return proc

    async def up(self, proc: asyncio.subprocess.Process, within_s: float = 30.0) -> bool:
        """True once ``/healthz`` answers; False when the process died first."""
        deadline = time.monotonic() + within_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            while time.monotonic() < deadline:
                if proc.returncode is not None:
                    return False
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as r:
                        if r.status == 200:
                            return True
                await asyncio.sleep(0.02)
        raise AssertionError(f"the daemon did not come up within {within_s} s: {self.tail()}")

    async def kill(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            proc.kill()
            self.test_kills += 1
            rc = await proc.wait()
        else:
            rc = proc.returncode
            self.self_kills += 1
        assert rc == -9, f"the daemon ended with {rc}, not SIGKILL: {self.tail()}"
        self.check_integrity()

    def check_integrity(self) -> None:
        # read-only: closing it does not checkpoint, so the next daemon finds the
        # WAL exactly as the kill left it and recovers it itself
        wal = self.db.with_name(self.db.name + "-wal")
        self.hot_wals += wal.exists() and wal.stat().st_size > 0
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            check = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
        self.integrity_checks += 1
        assert check == [("ok",)], f"after start {self.starts}: {check}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def crash_points_fired(self) -> collections.Counter[str]:
        text = self.log.read_text(errors="replace")
        return collections.Counter(re.findall(r"crash point (\w+): SIGKILL", text))

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


# --------------------------------------------------------------------------- the PDAs


class Handheld(PdaClient):
    """A PDA that keeps asking until the box answers, like the PDA page."""

    lost: int = 0  # attempts without an answer (the box was down or died)
    retried: int = 0  # requests answered only after the box restarted
    unauthorized: int = 0  # sessions the box forgot
    badge: str = ""

    async def ask(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        deadline = time.monotonic() + 90
        lost_before = self.lost
        while True:
            try:
                answer = await self._call(method, path, body)
                self.retried += self.lost > lost_before
                return answer
            except (aiohttp.ClientError, TimeoutError):
                self.lost += 1
            except ApiAnswerError as exc:
                if exc.status == 401 and path != "/api/v1/sessions":
                    self.unauthorized += 1
                    await self.log_in()
                    continue
                if exc.status != 503:
                    raise
                self.lost += 1
            assert time.monotonic() < deadline, f"no answer to {method} {path} for 90 s"
            await asyncio.sleep(0.05)

    async def log_in(self) -> None:
        doc = await self.ask("POST", "/api/v1/sessions", {"badge": self.badge})
        self.token = doc["token"]

    async def scan_code(self, code: str) -> dict[str, Any]:
        """One scan, one ``scan_id``, sent until answered."""
        answer: dict[str, Any] = await self.ask(
            "POST", "/api/v1/scan", {"code": code, "scan_id": str(uuid.uuid4())}
        )
        return answer

    async def current(self) -> dict[str, Any] | None:
        try:
            tour: dict[str, Any] = await self.ask("GET", "/api/v1/tour")
        except ApiAnswerError as exc:
            if exc.code == "no_tour":
                return None
            raise
        return tour


@dataclass
class Told:
    """What the box told one picker."""

    units: collections.Counter[Key] = field(default_factory=collections.Counter)
    written_off: collections.Counter[Key] = field(default_factory=collections.Counter)
    shorts: int = 0
    tours: int = 0
    scans: int = 0
    errors: int = 0
    resumed: int = 0


def stop_of(tour: dict[str, Any], number: int) -> dict[str, Any]:
    return next(s for s in tour["stops"] if s["stop"] == number)


async def picker(
    pda: Handheld,
    gtins: dict[str, str],
    locations: list[str],
    told: Told,
    rng: random.Random,
    stop: asyncio.Event,
) -> None:
    """Walk tours until ``stop`` (or no work is left), remembering what was told."""
    await pda.log_in()
    tour: dict[str, Any] | None = None
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0, 0.006))  # a picker is not a benchmark
        lost_before = pda.lost
        if tour is None or tour["state"] != "active":
            tour = await pda.current()
            if tour is None:
                answer = await pda.scan_code("START")
                if answer["result"] == "no_work":
                    return
                assert answer["result"] in ("tour_started", "no_stock"), answer
                tour = answer["tour"]
                told.tours += answer["result"] == "tour_started"
            continue
        number = tour["next_stop"]
        here = stop_of(tour, number)
        key = (here["sku"], here["location"])
        if here["state"] == "pending":
            if rng.random() < 0.03:
                wrong = rng.choice([c for c in locations if c != here["location"]])
                answer = await pda.scan_code(wrong)
                assert (answer["result"], answer["feedback"]) == ("wrong_location", "error")
                told.errors += 1
            answer = await pda.scan_code(here["location"])
            assert answer["result"] == "location_ok", answer
        elif rng.random() < 0.04:
            # a short of what was scanned: the rest is damaged and written off
            found, missing = here["picked"], here["qty"] - here["picked"]
            body = {"stop": number, "found": found, "reason": rng.choice(["damaged", "other"])}
            try:
                answer = await pda.ask("POST", "/api/v1/tour/short", body)
            except ApiAnswerError as exc:
                # The first attempt committed and its answer was lost: the retry
                # finds the stop closed (or the tour finished by that short).
                assert pda.lost > lost_before, exc
                assert exc.code in ("stop_closed", "no_tour"), exc
                answer = {"tour": await pda.current()}
            told.written_off[key] += missing
            told.shorts += 1
        else:
            answer = await pda.scan_code(gtins[here["sku"]])
            told.scans += 1
            assert answer["feedback"] == "success" and answer["result"] in SKUS_OF, answer
            after = stop_of(answer["tour"], number)
            assert after["picked"] == here["picked"] + 1, (here, after)
            told.units[key] += 1
        tour = answer["tour"]
        if pda.lost > lost_before:
            # the box restarted under this call: resume from its view of the tour
            told.resumed += 1
            now = await pda.current()
            if tour is not None and tour["state"] == "active":
                assert now is not None
                assert (now["stops"], now["next_stop"]) == (tour["stops"], tour["next_stop"])
            tour = now


# --------------------------------------------------------------------------- checks


def outbox(db: Path) -> tuple[str, int, list[dict[str, Any]], dict[Key, int], tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        epoch, next_seq = conn.execute("SELECT epoch, next_seq FROM box").fetchone()
        rows = [
            {"seq": seq, "type": type_, "at": at, "data": msgpack.unpackb(payload)}
            for seq, type_, at, payload in conn.execute(
                "SELECT seq, type, at_ms, payload FROM outbox WHERE epoch = ? ORDER BY seq",
                (epoch,),
            )
        ]
        ledger = {
            (sku, loc): qty
            for sku, loc, qty in conn.execute(
                "SELECT sku, location, SUM(qty) FROM stock_ledger GROUP BY sku, location"
            )
            if qty
        }
        acked = conn.execute("SELECT acked_epoch, acked_seq FROM sync_state").fetchone()
    finally:
        conn.close()
    return epoch, next_seq, rows, ledger, acked


def nonzero(counts: dict[Key, int]) -> dict[Key, int]:
    return {k: v for k, v in counts.items() if v}


# --------------------------------------------------------------------------- the test


@contextlib.asynccontextmanager
async def cloud_for(tmp_path: Path, feed: list[dict[str, Any]]) -> AsyncIterator[CloudSimulator]:
    sim = CloudSimulator(
        SECRET,
        db_path=tmp_path / "cloud.db",
        feed=feed,
        batch_faults=Faults(BATCH_FAULTS, seed=11),
        changes_faults=Faults(CHANGES_FAULTS, seed=12),
        slow_s=1.5,
    )
    async with sim:
        yield sim


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_e2e_kill_loop_daemon_pdas_faulty_cloud(tmp_path: Path) -> None:
    started = time.monotonic()
    rng = random.Random(20261122)
    feed, gtins = zone_feed(ZONE, pickers=PICKERS, tasks=TASKS)
    for change in feed:
        if change["type"] == "stock":
            change["data"]["base"] = STOCK
    locations = [c["data"]["code"] for c in feed if c["type"] == "location"]

    async with cloud_for(tmp_path, feed) as cloud:
        port = free_port(rng)
        box = Box(
            write_config(tmp_path, cloud.url, port),
            tmp_path / "box.db",
            port,
            tmp_path / "daemon.log",
        )
        with Store.open(box.db, box_id=BOX) as store:
            keys = [enroll_pda(store, f"e2e-pda-{n}")[1] for n in range(1, PICKERS + 1)]

        # First start, unarmed: the box downloads the zone (then it is killed too).
        proc = await box.start(armed=False)
        assert await box.up(proc)
        deadline = time.monotonic() + 60
        while box.query("SELECT count(*) FROM tasks")[0][0] < TASKS:
            assert time.monotonic() < deadline, "the first download did not finish"
            await asyncio.sleep(0.1)
        await box.kill(proc)

        base = f"http://127.0.0.1:{port}"
        stop = asyncio.Event()
        told = [Told() for _ in range(PICKERS)]
        async with contextlib.AsyncExitStack() as stack:
            pdas = []
            for n, key in enumerate(keys, start=1):
                pda = await stack.enter_async_context(Handheld(base, key))
                pda.badge = f"BADGE{n:04d}"
                pdas.append(pda)
            walkers = [
                asyncio.create_task(picker(pda, gtins, locations, t, random.Random(n), stop))
                for n, (pda, t) in enumerate(zip(pdas, told, strict=True))
            ]
            loop_started = time.monotonic()
            while box.test_kills + box.self_kills < KILLS:
                proc = await box.start(armed=True)
                if await box.up(proc):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), rng.uniform(0.1, 0.6))
                await box.kill(proc)
                for w in walkers:
                    if w.done():
                        w.result()  # a picker's failure fails the test here
                        raise AssertionError("a picker ran out of work during the loop")
            loop_s = time.monotonic() - loop_started

            # The end: no crash points, no faults; every PDA hears its last answer.
            cloud.batch_faults.clear()
            cloud.changes_faults.clear()
            proc = await box.start(armed=False)
            assert await box.up(proc)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*walkers), 120)
        deadline = time.monotonic() + 120
        while True:
            epoch, next_seq, *_ = outbox(box.db)
            if cloud.receiver.acked(BOX, epoch) == next_seq - 1:
                acked = box.query("SELECT acked_seq FROM sync_state")[0][0]
                if acked == next_seq - 1:
                    break
            assert time.monotonic() < deadline, "the uploader did not drain"
            await asyncio.sleep(0.1)
        proc.terminate()
        assert await proc.wait() == 0, box.tail()
        box.check_integrity()

        epoch, next_seq, rows, ledger, acked = outbox(box.db)
        # Exactly once, contiguous, as the box wrote them; nothing unacked.
        assert cloud.receiver.epochs(BOX) == [(epoch, next_seq - 1)]
        at_cloud = cloud.receiver.events(BOX, epoch)
        assert [e["seq"] for e in at_cloud] == list(range(1, next_seq))
        assert at_cloud == rows
        assert acked == (epoch, next_seq - 1)
        assert cloud.receiver.acked(BOX, epoch) == next_seq - 1

        # Stock: the cloud == the ledger == what the PDAs were told.
        units: collections.Counter[Key] = collections.Counter()
        written_off: collections.Counter[Key] = collections.Counter()
        for t in told:
            units.update(t.units)
            written_off.update(t.written_off)
        told_delta = nonzero({k: -units[k] - written_off[k] for k in set(units) | set(written_off)})
        cloud_net = nonzero(cloud.receiver.net_stock(BOX))
        assert cloud_net == ledger
        assert ledger == told_delta
        picked: collections.Counter[Key] = collections.Counter()
        for e in at_cloud:
            if e["type"] == "pick_confirmed":
                picked[e["data"]["sku"], e["data"]["location"]] += e["data"]["qty"]
        assert nonzero(picked) == nonzero(units)
        shorts = sum(e["type"] == "pick_exception" for e in at_cloud)
        assert shorts == sum(t.shorts for t in told)
        on_tours = dict(
            ((sku, loc), n)
            for sku, loc, n in box.query(
                "SELECT sku, location, SUM(picked) FROM tour_stops GROUP BY sku, location"
            )
            if n
        )
        assert on_tours == nonzero(units)

        # The loop did what it claims.
        fired = box.crash_points_fired()
        total_units = sum(units.values())
        print(
            f"\ne2e kill loop: {box.test_kills} SIGKILLs by the test + "
            f"{box.self_kills} by crash points {dict(fired)}; {box.starts} starts, "
            f"{box.integrity_checks} integrity checks ({box.hot_wals} on a hot WAL); "
            f"{next_seq - 1} events, "
            f"{total_units} units in {sum(t.tours for t in told)} tours, "
            f"{sum(t.shorts for t in told)} shorts; "
            f"{sum(p.retried for p in pdas)} PDA requests answered only after a restart, "
            f"{sum(t.resumed for t in told)} resumes; faults {dict(cloud.batch_faults.drawn)}; "
            f"loop {loop_s:.0f} s, total {time.monotonic() - started:.0f} s"
        )
        assert box.test_kills + box.self_kills >= KILLS
        assert fired["after_commit_before_answer"] >= 1, fired
        assert fired["after_send_before_ack"] >= 1, fired
        # (a crash point that fires as the test kills is counted as the test's)
        assert sum(fired.values()) >= box.self_kills
        assert sum(p.unauthorized for p in pdas) == 0, "a kill lost a PDA session"
        assert box.hot_wals >= KILLS // 2, "kills should leave a hot WAL to recover"
        assert sum(p.retried for p in pdas) >= KILLS // 2
        assert total_units > 500, "the pickers did real work"
        assert sum(t.shorts for t in told) > 0
        assert sum(cloud.batch_faults.drawn.values()) > 20, cloud.batch_faults.drawn


def test_e2e_crash_points_are_inert_unless_armed() -> None:
    code = "from edge.faults import crash_point as c; c('after_send_before_ack'); print('alive')"

    def run(spec: str | None) -> subprocess.CompletedProcess[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}
        if spec is not None:
            env[faults.ENV] = spec
        return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True)

    for spec in (None, "", "after_commit_before_answer:1", "after_send_before_ack:0"):
        inert = run(spec)
        assert (inert.returncode, inert.stdout) == (0, b"alive\n"), (spec, inert.stderr)
    armed = run("after_commit_before_answer:0, after_send_before_ack:1")
    assert (armed.returncode, armed.stdout) == (-9, b"")
    assert armed.stderr == b"crash point after_send_before_ack: SIGKILL\n"
    typo = run("after_send_before_akc:1")
    assert typo.returncode == 1 and b"unknown crash point" in typo.stderr

    assert faults.parse("after_send_before_ack:0.25,") == {"after_send_before_ack": 0.25}
    for bad in ("after_send_before_ack", "after_send_before_ack:x", "after_send_before_ack:2"):
        with pytest.raises(ValueError, match=faults.ENV):
            faults.parse(bad)
    assert faults.ARMED == {}  # the test process itself is never armed
