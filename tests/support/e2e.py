"""The machinery of the end-to-end kill loops (tests/e2e/test_e2e_kill_loop.py).

``pickedge run`` runs in its own process with a configuration of its own
(:class:`Box`); the cloud (the sync-v1 simulator, with its faults and the
zone's master data and tasks, :func:`cloud_for`) and the pickers' handhelds
(:class:`Handheld`, walking tours in :func:`picker`) run in the test's event
loop, so both outlive every kill of the box. :func:`kill_loop` runs the loop
and the drain; :func:`check_exactly_once` makes the final assertions, over
every epoch the box went through, put-backs and counts included
(:func:`check_floor`; :class:`Floor` is the shelves the pickers count). A
:class:`Hooks` object lets a loop do more between and around the kills
(tests/e2e/test_e2e_kill_loop_ops.py: backups, cancels, put-backs, counts,
epoch changes); :func:`check_backup` checks a backup file.

:class:`WallClock` runs the daemon under libfaketime (Debian's ``faketime``
package): its wall clock gets a different offset at every start and jumps
while it runs; its monotonic clock stays real.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import glob
import itertools
import os
import random
import re
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgpack

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


# --------------------------------------------------------------------------- the clock

#: libfaketime's offset units ("y" is 365 days)
UNIT_MS = {"": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "y": 365 * 86_400_000}


def offset_ms(spec: str) -> int:
    """The offset of a libfaketime relative spec such as ``+7y`` or ``-3d``."""
    m = re.fullmatch(r"([+-]\d+)([mhdy]?)", spec)
    assert m is not None, f"not a relative libfaketime offset: {spec!r}"
    return int(m[1]) * UNIT_MS[m[2]]


def libfaketime() -> str:
    found = sorted(
        glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
        + glob.glob("/usr/lib/faketime/libfaketimeMT.so.1")
        + glob.glob("/usr/local/lib/faketime/libfaketimeMT.so.1")
    )
    assert found, "libfaketime is missing: apt-get install faketime (./dev.sh test does)"
    return found[0]


def real_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Window:
    """A stretch of real time during which the daemon's wall clock had one offset."""

    spec: str
    offset_ms: int
    since_ms: int  # real time
    until_ms: int | None = None
    jump: bool = False  # set while the daemon ran (else: before a start)


class WallClock:
    """The daemon's wall clock under libfaketime, wrong and jumping.

    The offset lives in ``FAKETIME_TIMESTAMP_FILE``, read at every call
    (``FAKETIME_NO_CACHE``): :meth:`start` writes the next of ``starts`` before
    each start, :meth:`jump` the next of ``jumps`` while the daemon runs. The
    monotonic clock is left alone (``FAKETIME_DONT_FAKE_MONOTONIC``): a box's
    monotonic clock does not jump, its wall clock does. :attr:`windows`
    records which offset held when, in real time, to check the events' ``at``.

    The library is ``libfaketimeMT``: the single-threaded build, re-reading the
    file at every call, hands the *real* time to a thread that reads the clock
    while another parses the file (4 of 1,800 events stamped with the real time
    in one run; a 3-thread ``time.time()`` loop gets 2,600 of 600,000 readings
    wrong); the MT build serialises those calls.
    """

    def __init__(self, workdir: Path, starts: Sequence[str], jumps: Sequence[str], *, seed: int):
        for spec in (*starts, *jumps):
            offset_ms(spec)
        self.lib = libfaketime()
        self.file = workdir / "faketime.rc"
        self.rng = random.Random(seed)
        self.windows: list[Window] = []
        self.shm_cleaned = 0
        self._starts = itertools.cycle(starts)
        self._jumps = itertools.cycle(jumps)

    def _set(self, spec: str, *, jump: bool) -> None:
        now = real_ms()
        tmp = self.file.with_name(self.file.name + ".tmp")
        tmp.write_text(spec + "\n")
        os.replace(tmp, self.file)  # atomic: libfaketime never reads half a file
        if self.windows:
            self.windows[-1].until_ms = now
        self.windows.append(Window(spec, offset_ms(spec), now, jump=jump))

    def start(self) -> dict[str, str]:
        """The next start's offset; returns the daemon's environment for it."""
        self._set(next(self._starts), jump=False)
        return {
            "LD_PRELOAD": self.lib,
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def jump(self) -> None:
        self._set(next(self._jumps), jump=True)

    async def run(self, proc: asyncio.subprocess.Process, seconds: float) -> None:
        """Let the daemon run ``seconds`` (or until it dies), jumping once or twice."""
        cuts = sorted(self.rng.uniform(0, seconds) for _ in range(self.rng.randint(1, 2)))
        waited = 0.0
        for cut in cuts:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), cut - waited)
            waited = cut
            if proc.returncode is not None:
                return
            self.jump()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), seconds - waited)

    def ended(self, pid: int) -> None:
        """A SIGKILLed libfaketime leaves its shared memory behind: remove it."""
        for name in (f"faketime_shm_{pid}", f"sem.faketime_sem_{pid}"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/dev/shm/{name}")
                self.shm_cleaned += 1

    def window_of(self, at_ms: int, slack_ms: int = 100) -> Window | None:
        """The window whose offset explains a wall-clock reading ``at_ms``."""
        now = real_ms()
        for w in self.windows:
            real = at_ms - w.offset_ms
            if w.since_ms - slack_ms <= real <= (w.until_ms or now) + slack_ms:
                return w
        return None


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


def box_config(
    workdir: Path, cloud_url: str, port: int, *, checkpoint_interval_s: float = 1.0
) -> str:
    """The ``[box]``, ``[cloud]``, ``[store]`` and ``[api]`` sections every
    e2e daemon runs with (small batches, quick retries), its secret written."""
    (workdir / "box.secret").write_text(SECRET + "\n")
    return f"""
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
checkpoint_interval_s = {checkpoint_interval_s}

[api]
host = "127.0.0.1"
port = {port}
"""


def write_config(
    workdir: Path,
    cloud_url: str,
    port: int,
    *,
    checkpoint_interval_s: float = 1.0,
    metrics_token: str | None = None,
    zero_checks: bool = False,
) -> Path:
    metrics = ""
    if metrics_token is not None:
        (workdir / "metrics.token").write_text(metrics_token + "\n")
        metrics = 'metrics_token_file = "metrics.token"'
    path = workdir / "pickedge.toml"
    core = box_config(workdir, cloud_url, port, checkpoint_interval_s=checkpoint_interval_s)
    path.write_text(
        core
        + f"""{metrics}

[layout]
kind = "blocks"
aisles = {ZONE.aisles}
aisle_pitch_m = 3.0
blocks = {ZONE.blocks}
block_length_m = {ZONE.block_length_m}
depot = {{ x = 10.5, y = 0.0 }}

[floor]
zero_checks = {"true" if zero_checks else "false"}
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
    clock: WallClock | None = None  # the daemon's wall clock, when faked
    crash_points: str = CRASH_POINTS  # when armed

    async def start(self, *, armed: bool) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}
        if armed:
            env["PICKEDGE_CRASH_POINTS"] = self.crash_points
        if self.clock is not None:
            env = {k: v for k, v in env.items() if not k.startswith("FAKETIME")}
            env.update(self.clock.start())
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
        if self.clock is not None:
            self.clock.ended(proc.pid)
        assert rc == -9, f"the daemon ended with {rc}, not SIGKILL: {self.tail()}"
        self.after_death()
        self.check_integrity()

    def after_death(self) -> None:
        """The daemon is dead, its file not yet checked: nothing here (the
        power-cut loop cuts the power here, tests/support/powercut_loop.py)."""

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
    """A PDA that keeps asking until the box answers, like the PDA page.

    :attr:`rtt_ms` keeps the round trip of every request a live daemon answered
    at the first attempt, ``(path, sent, ms)`` (``sent``: ``perf_counter``): a
    request that met a dead daemon or one that died under it (and was sent
    again) is left out, since its time is the restart's, not the box's;
    :attr:`rtt_restart_ms` keeps the last attempt of those (the first answers of
    a daemon that just started).
    """

    lost: int = 0  # attempts without an answer (the box was down or died)
    retried: int = 0  # requests answered only after the box restarted
    unauthorized: int = 0  # sessions the box forgot
    badge: str = ""

    @property
    def rtt_ms(self) -> list[tuple[str, float, float]]:
        kept: list[tuple[str, float, float]] = self.__dict__.setdefault("_rtt_ms", [])
        return kept

    @property
    def rtt_restart_ms(self) -> list[tuple[str, float, float]]:
        kept: list[tuple[str, float, float]] = self.__dict__.setdefault("_rtt_restart_ms", [])
        return kept

    async def ask(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        deadline = time.monotonic() + 90
        lost_before = self.lost
        while True:
            try:
                sent = time.perf_counter()
                answer = await self._call(method, path, body)
                took = (path, sent, (time.perf_counter() - sent) * 1000)
                (self.rtt_ms if self.lost == lost_before else self.rtt_restart_ms).append(took)
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
    withdrawn: int = 0  # answers that met a stop a cancel had taken out
    #: pick_exception lines a start could not fill (its answer's ``exceptions``)
    unfillable: int = 0
    #: shorts with reason ``empty``: (task, key); the box zeroes the location
    #: to what it believed was there, a figure the PDA is never told
    emptied: list[tuple[str, Key]] = field(default_factory=list)
    #: units put back per (sku, location): every ``put_back_done`` answer
    returned: collections.Counter[Key] = field(default_factory=collections.Counter)
    #: (task, sku, location, units) of every ``put_back_done`` answer
    put_backs: list[tuple[str, str, str, int]] = field(default_factory=list)
    put_back_items: int = 0  # ``put_back_item`` answers
    put_back_elsewhere: int = 0  # put back into another location of the SKU
    put_back_refused: int = 0  # a wrong location scanned with units in hand
    #: the picker's open put-back lines as its last answer without a tour listed them
    open_lines: list[dict[str, Any]] = field(default_factory=list)
    count_tours: int = 0
    #: every ``count_done`` answer: (task, sku, location, units counted, feedback)
    counts: list[tuple[str, str, str, int, str]] = field(default_factory=list)
    recounts: int = 0  # ``recount`` answers
    miscounts: int = 0  # count attempts the picker got wrong on purpose
    #: ``recount`` answers per (task, location)
    recounted: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)


@dataclass(frozen=True, slots=True)
class Play:
    """How the simulated pickers get things wrong (none of it by default)."""

    empty_shorts: float = 0.0  # the share of shorts called ``empty``
    miscounts: float = 0.0  # the share of count attempts counted wrong
    wrong_put_backs: float = 0.0  # the share of put-backs tried at a wrong location first


@dataclass
class Floor:
    """The zone as it physically is, shared by the simulated pickers.

    ``truth`` is the units on each shelf per (sku, location): the zone's
    initial stock, less what the pickers were told they picked or wrote off,
    plus what they were told they put back. An ``empty`` short leaves it as
    it was (the picker overlooked the units: the zero check finds them). A
    picker counting right counts ``truth``; one counting wrong (``play.miscounts``
    of the attempts) is a few units off, on purpose.
    """

    truth: collections.Counter[Key]
    homes: dict[str, list[str]]  # the locations that stock each SKU
    play: Play = Play()
    emptied: set[Key] = field(default_factory=set)  # emptied, not counted since

    @classmethod
    def of(cls, feed: list[dict[str, Any]], play: Play) -> Floor:
        truth: collections.Counter[Key] = collections.Counter()
        homes: dict[str, list[str]] = collections.defaultdict(list)
        for change in feed:
            if change["type"] == "stock":
                d = change["data"]
                truth[d["sku"], d["location"]] += d["base"]
                homes[d["sku"]].append(d["location"])
        return cls(truth, dict(homes), play)


@dataclass
class Cancels:
    """The tasks the test had the cloud cancel, for pickers that must expect
    stops to leave their tours under them.

    ``tasks`` gets a task *before* its ``task_cancel`` is enqueued, so every
    stop a cancel takes out belongs to one of them. ``stops(tour)`` is
    ``{stop: (state, task)}`` of a tour as the box's database holds it: how a
    picker tells whether a cancel explains an answer it did not expect, and,
    when an answer was lost, whether its short pick committed or a cancel
    closed the stop first (the PDA cannot see a tour a cancel finished).
    """

    tasks: set[str]
    stops: Callable[[int], dict[int, tuple[str, str]]]

    def state(self, tour: int, stop: int) -> tuple[str, str] | None:
        return self.stops(tour).get(stop)

    def touched(self, view: dict[str, Any]) -> bool:
        """A cancel of ours took a stop out of the tour since ``view`` (the
        picker's last view of it): its walk may have changed too."""
        now = self.stops(view["tour"])
        return any(
            s["state"] in OPEN
            and now.get(s["stop"], ("", ""))[0] == "cancelled"
            and s["task"] in self.tasks
            for s in view["stops"]
        )


def stop_of(tour: dict[str, Any], number: int) -> dict[str, Any]:
    return next(s for s in tour["stops"] if s["stop"] == number)


def counted_stop(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The one stop of ``after`` whose ``picked`` grew by one since ``before``."""
    assert after["tour"] == before["tour"], (before["tour"], after["tour"])
    was = {s["stop"]: s["picked"] for s in before["stops"]}
    grew = [s for s in after["stops"] if s["picked"] != was.get(s["stop"], 0)]
    assert len(grew) == 1 and grew[0]["picked"] == was.get(grew[0]["stop"], 0) + 1, (before, after)
    counted: dict[str, Any] = grew[0]
    return counted


def same_tour(told: dict[str, Any], now: dict[str, Any] | None, cancels: Cancels | None) -> None:
    """After a lost answer the box's view of the tour is the one it answered:
    exactly, or, with cancels, but for the stops cancelled tasks left."""
    if told["state"] != "active":
        return
    if cancels is None:
        assert now is not None
        assert (now["stops"], now["next_stop"]) == (told["stops"], told["next_stop"])
        return

    def kept(tour: dict[str, Any]) -> list[tuple[int, int, str]]:
        return [
            (s["stop"], s["picked"], s["state"])
            for s in tour["stops"]
            if s["task"] not in cancels.tasks
        ]

    if now is None:  # a cancel took the last open stops: they were all its own
        assert all(s["task"] in cancels.tasks for s in told["stops"] if s["state"] in OPEN), told
        return
    assert now["tour"] == told["tour"] and kept(now) == kept(told), (told, now)


OPEN = ("pending", "location_ok")


async def picker(
    pda: Handheld,
    gtins: dict[str, str],
    locations: list[str],
    told: Told,
    rng: random.Random,
    stop: asyncio.Event,
    cancels: Cancels | None = None,
    floor: Floor | None = None,
) -> None:
    """Walk tours until ``stop`` (or no work is left), remembering what was told.

    With ``cancels``, a stop may leave the tour between two answers: an answer
    the picker did not expect is allowed only when the box shows the stop
    cancelled with a task of ``cancels`` (then the picker fetches its tour and
    goes on), and a counted unit is the one stop whose ``picked`` grew.
    ``task_unavailable`` is never allowed: a cancel takes its stops out in its
    own transaction (and start-up repairs any left), so no scan may meet one.

    Units a cancel leaves in the picker's hands are put back before any new
    work (:func:`put_back_step`; a scan meant as a pick may meet the cancel
    and take a unit in hand instead, a location scan may put it back), and
    count tours are counted against ``floor`` (:func:`count_step`).
    """
    floor = floor or Floor(collections.Counter(), {})
    plans: dict[tuple[int, int], int] = {}  # the units this attempt of a count stop counts
    await pda.log_in()
    tour: dict[str, Any] | None = None
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0, 0.006))  # a picker is not a benchmark
        lost_before = pda.lost
        if tour is None or tour["state"] != "active":
            tour = await pda.current()
            if tour is None:
                if told.open_lines:
                    await put_back_step(pda, gtins, locations, told, rng, floor)
                    continue
                answer = await pda.scan_code("START")
                heard(told, floor, answer, "START")
                if answer["result"] == "no_work":
                    return
                if answer["result"] == "put_back_required":
                    assert told.open_lines, answer
                    continue
                assert answer["result"] in ("tour_started", "no_stock"), answer
                told.unfillable += len(answer.get("exceptions") or [])
                tour = answer["tour"]
                if answer["result"] == "tour_started":
                    assert tour is not None
                    if tour["kind"] == "count":
                        told.count_tours += 1
                    else:
                        told.tours += 1
            continue
        if tour["kind"] == "count":
            answer = await count_step(pda, gtins, tour, told, rng, floor, plans)
        else:
            answered = await pick_step(pda, gtins, locations, tour, told, rng, cancels, floor)
            if answered is None:  # a cancel changed the walk: look at the tour again
                tour = await pda.current()
                continue
            answer = answered
        tour = answer["tour"]
        if pda.lost > lost_before:
            # the box restarted under this call: resume from its view of the tour
            told.resumed += 1
            now = await pda.current()
            if tour is not None:
                same_tour(tour, now, cancels)
            tour = now


async def pick_step(
    pda: Handheld,
    gtins: dict[str, str],
    locations: list[str],
    tour: dict[str, Any],
    told: Told,
    rng: random.Random,
    cancels: Cancels | None,
    floor: Floor,
) -> dict[str, Any] | None:
    """One step at the tour's next stop: its location, a unit, or a short.
    Returns the answer, or None when a cancel took stops out under it."""
    lost_before = pda.lost
    number = tour["next_stop"]
    here = stop_of(tour, number)
    key = (here["sku"], here["location"])

    def withdrawn(answer: dict[str, Any], view: dict[str, Any] = tour) -> bool:
        """An unexpected answer: fine only when a cancel took stops out of
        the tour (the walk changed, or the tour finished)."""
        assert answer.get("result") != "task_unavailable", (
            f"a scan met an open stop of a task that is no longer pickable: {answer}"
        )
        if cancels is None or not cancels.touched(view):
            return False
        told.withdrawn += 1
        return True

    if here["state"] == "pending":
        if rng.random() < 0.03:
            wrong = rng.choice([c for c in locations if c != here["location"]])
            answer = await pda.scan_code(wrong)
            heard(told, floor, answer, wrong)
            if (answer["result"], answer["feedback"]) != ("wrong_location", "error"):
                assert withdrawn(answer), answer
                return None
            told.errors += 1
        answer = await pda.scan_code(here["location"])
        heard(told, floor, answer, here["location"])
        if answer["result"] != "location_ok":
            assert withdrawn(answer), answer
            return None
        return answer
    # an emptied location is not shorted again before its zero check: what
    # the box writes off there is then what the picker says is missing
    if rng.random() < 0.04 and key not in floor.emptied:
        # a short of what was scanned: the rest is damaged and written off,
        # or the picker calls the location empty (overlooking what is left)
        found, missing = here["picked"], here["qty"] - here["picked"]
        empty = rng.random() < floor.play.empty_shorts
        reason = "empty" if empty else rng.choice(["damaged", "other"])
        body = {"stop": number, "found": found, "reason": reason}
        try:
            answer = await pda.ask("POST", "/api/v1/tour/short", body)
        except ApiAnswerError as exc:
            # The first attempt committed and its answer was lost: the retry
            # finds the stop closed (or the tour finished by that short).
            # With cancels, a cancel may have closed it first instead.
            assert exc.code in ("stop_closed", "no_tour"), exc
            if cancels is not None:
                state = cancels.state(tour["tour"], number)
                assert state is not None, exc
                if state[0] == "cancelled":
                    assert withdrawn({"error": exc.code}), (exc, state)
                    return None
                assert state[0] == "short", (exc, state)
            assert pda.lost > lost_before, exc
            answer = {"tour": await pda.current()}
        else:
            heard(told, floor, answer, "")
        if empty:
            told.emptied.append((here["task"], key))
            floor.emptied.add(key)
        else:
            told.written_off[key] += missing
            floor.truth[key] -= missing
        told.shorts += 1
        return answer
    answer = await pda.scan_code(gtins[here["sku"]])
    heard(told, floor, answer, gtins[here["sku"]])
    told.scans += 1
    if answer["feedback"] != "success" or answer["result"] not in SKUS_OF:
        assert cancels is not None and withdrawn(answer), answer
        return None
    if cancels is None:
        after = stop_of(answer["tour"], number)
        assert after["picked"] == here["picked"] + 1, (here, after)
    else:
        # a cancel may have put another stop of the same sku and
        # location first: the unit counts where the box counted it
        after = counted_stop(tour, answer["tour"])
        key = (after["sku"], after["location"])
    told.units[key] += 1
    floor.truth[key] -= 1
    return answer


def heard(told: Told, floor: Floor, answer: dict[str, Any], code: str) -> None:
    """Every answer: the put-back lines it lists (answers without an active
    tour list them), and the units a ``put_back_done`` put back at ``code``
    (the line that had units in hand: the line lists them fewer, or closed)."""
    view = answer.get("tour")
    if view is not None and view["state"] == "active":
        return
    after: list[dict[str, Any]] = answer.get("put_backs", [])
    if answer["result"] == "put_back_done":
        held = [n for n in told.open_lines if n["in_hand"]]
        assert len(held) == 1, (told.open_lines, answer)
        line = held[0]
        units, key = line["in_hand"], (line["sku"], code)
        assert not floor.homes or code in floor.homes[line["sku"]], (line, code)
        told.returned[key] += units
        told.put_backs.append((line["task"], line["sku"], code, units))
        told.put_back_elsewhere += code != line["origin"]
        floor.truth[key] += units
        ident = ("task", "sku", "origin", "lot")
        same = [m for m in after if all(m[k] == line[k] for k in ident)]
        left = line["qty"] - units
        assert [(m["qty"], m["in_hand"]) for m in same] == ([(left, 0)] if left else []), (
            line,
            answer,
        )
    elif answer["result"] == "put_back_item":
        told.put_back_items += 1
    told.open_lines = after


async def put_back_step(
    pda: Handheld,
    gtins: dict[str, str],
    locations: list[str],
    told: Told,
    rng: random.Random,
    floor: Floor,
) -> None:
    """One scan of putting back: a unit of the first line (or a count of
    several), or, with units in hand, a location: the origin or another
    location of the SKU, now and then a wrong one first."""
    held = next((n for n in told.open_lines if n["in_hand"]), None)
    if held is None:
        line = told.open_lines[0]
        units = rng.randint(1, line["qty"])
        gtin = gtins[line["sku"]]
        code = gtin if units == 1 else f"01{gtin}30{units}"
        answer = await pda.scan_code(code)
        heard(told, floor, answer, code)
        assert (answer["result"], answer["feedback"]) == ("put_back_item", "success"), answer
        return
    homes = floor.homes.get(held["sku"]) or [held["origin"]]
    if rng.random() < floor.play.wrong_put_backs:
        wrong = rng.choice([c for c in locations if c not in homes])
        answer = await pda.scan_code(wrong)
        heard(told, floor, answer, wrong)
        assert (answer["result"], answer["feedback"]) == ("wrong_location", "error"), answer
        told.put_back_refused += 1
        return
    others = [c for c in homes if c != held["origin"]]
    where = rng.choice(others) if others and rng.random() < 0.5 else held["origin"]
    answer = await pda.scan_code(where)
    heard(told, floor, answer, where)
    assert (answer["result"], answer["feedback"]) == ("put_back_done", "success"), answer


async def count_step(
    pda: Handheld,
    gtins: dict[str, str],
    tour: dict[str, Any],
    told: Told,
    rng: random.Random,
    floor: Floor,
    plans: dict[tuple[int, int], int],
) -> dict[str, Any]:
    """One scan of a count tour: the stop's location to begin, the units
    (one, or a count of several: AI 30), the location again to finish.

    Each attempt counts what ``floor`` holds when it begins, or, in
    ``floor.play.miscounts`` of them, a few units off. (Picks by others while a
    location is counted make a right count differ too: the recount, begun
    later, counts them gone.)"""
    number = tour["next_stop"]
    here = stop_of(tour, number)
    sku, location = here["sku"], here["location"]
    assert here["qty"] is None, here  # blind
    if here["state"] == "pending":
        answer = await pda.scan_code(location)
        heard(told, floor, answer, location)
        assert (answer["result"], answer["feedback"]) == ("location_ok", "success"), answer
        return answer
    at = (tour["tour"], number)
    if at not in plans:
        truth = floor.truth[sku, location]
        plans[at] = truth
        if rng.random() < floor.play.miscounts:
            told.miscounts += 1
            plans[at] = max(0, truth + rng.choice((-3, -2, -1, 1, 2, 3)))
    target, have = plans[at], here["picked"]
    assert have <= target, (here, target)
    if have < target:
        single = target - have == 1 or rng.random() < 0.2
        code = gtins[sku] if single else f"01{gtins[sku]}30{target - have}"
        answer = await pda.scan_code(code)
        heard(told, floor, answer, code)
        assert (answer["result"], answer["feedback"]) == ("counted", "success"), answer
        return answer
    answer = await pda.scan_code(location)
    heard(told, floor, answer, location)
    del plans[at]
    if answer["result"] == "recount":
        assert answer["feedback"] == "warning", answer
        told.recounts += 1
        told.recounted[here["task"], location] += 1
    else:
        assert answer["result"] == "count_done", answer
        told.counts.append((here["task"], sku, location, target, answer["feedback"]))
        floor.emptied.discard((sku, location))
    return answer


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


@dataclass
class Epoch:
    """One epoch of the box as its database holds it."""

    epoch: str
    last: int  # its last seq: the sealed end, or next_seq - 1 for the current one
    acked: int
    sealed: bool
    rows: list[dict[str, Any]]  # the outbox rows kept, in seq order


def read_ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def logical_seq(conn: sqlite3.Connection) -> Callable[[str, int], tuple[str, int]]:
    """Where a stored (epoch, seq) belongs: itself, or, for a row an epoch
    change cut short by a kill is still to move (``epoch_moves``), its place in
    the new epoch. The daemon finishes such a move before it sends; a backup
    or a killed file may hold one half done."""
    moves = conn.execute("SELECT target, source, after, upto, to_seq FROM epoch_moves").fetchall()

    def place(epoch: str, seq: int) -> tuple[str, int]:
        for target, source, after, upto, to_seq in moves:
            if epoch == source and after < seq <= upto:
                return target, seq + to_seq - after - 1
        return epoch, seq

    return place


def outbox_epochs(conn: sqlite3.Connection) -> list[Epoch]:
    """Every epoch of the box in the order it started, with its kept rows (as
    they will be once an unfinished epoch change has moved them)."""
    current, next_seq = conn.execute("SELECT epoch, next_seq FROM box").fetchone()
    place = logical_seq(conn)
    rows_of: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for stored_epoch, stored_seq, type_, at, payload in conn.execute(
        "SELECT epoch, seq, type, at_ms, payload FROM outbox"
    ):
        epoch, seq = place(stored_epoch, stored_seq)
        rows_of[epoch].append(
            {"seq": seq, "type": type_, "at": at, "data": msgpack.unpackb(payload)}
        )
    out = []
    for epoch, acked, last_seq in conn.execute(
        "SELECT epoch, acked, last_seq FROM epochs ORDER BY n"
    ).fetchall():
        rows = sorted(rows_of[epoch], key=lambda r: int(r["seq"]))
        sealed = epoch != current
        assert sealed == (last_seq is not None), (epoch, current, last_seq)
        last = last_seq if sealed else next_seq - 1
        out.append(Epoch(epoch, last, acked, sealed, rows))
    assert out and out[-1].epoch == current, "the current epoch is the last one started"
    return out


def ledger_sums(conn: sqlite3.Connection) -> dict[Key, int]:
    """The box's net stock movement per (sku, location): live and folded rows."""
    return nonzero(
        {
            (sku, loc): qty
            for sku, loc, qty in conn.execute(
                "SELECT sku, location, SUM(qty) FROM ("
                "SELECT sku, location, qty FROM stock_ledger "
                "UNION ALL SELECT sku, location, qty FROM stock_ledger_base"
                ") GROUP BY sku, location"
            )
        }
    )


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


# --------------------------------------------------------------------------- the loop


@dataclass
class LoopRun:
    """A finished loop: the box stopped cleanly, the cloud still up."""

    box: Box
    cloud: CloudSimulator
    pdas: list[Handheld]
    told: list[Told]
    kills: int
    loop_s: float
    started: float  # monotonic
    floor: Floor


class Hooks:
    """What a kill loop does besides starting and killing the daemon; every
    method does nothing here. A hook that raises fails the test where it is
    called (background work reports its failures through :meth:`down`)."""

    async def begin(self, box: Box, cloud: CloudSimulator) -> None:
        """The zone is downloaded, the daemon down; the loop starts next."""

    async def up(self, box: Box, proc: asyncio.subprocess.Process, seconds: float) -> float:
        """The daemon answers ``/healthz``; returns how long it runs before the
        test kills it (``seconds``: what the loop drew)."""
        return seconds

    async def before_kill(self, box: Box, proc: asyncio.subprocess.Process) -> None:
        """The test is about to SIGKILL a running daemon."""

    async def down(self, box: Box) -> None:
        """The daemon is dead and its file checked; the next start comes after."""

    async def end(self, box: Box) -> None:
        """The loop is over (the daemon down); the clean start and drain follow."""

    async def close(self) -> None:
        """The test ends, passed or failed: stop whatever was started."""


@contextlib.asynccontextmanager
async def kill_loop(
    tmp_path: Path,
    *,
    kills: int,
    clock: WallClock | None = None,
    crash_points: str = CRASH_POINTS,
    run_s: tuple[float, float] = (0.1, 0.6),
    hooks: Hooks | None = None,
    cancels: Cancels | None = None,
    checkpoint_interval_s: float = 1.0,
    metrics_token: str | None = None,
    tasks: int = TASKS,
    zero_checks: bool = False,
    play: Play = Play(),
    box_dir: Path | None = None,
    make_box: Callable[..., Box] = Box,
    told: list[Told] | None = None,
) -> AsyncIterator[LoopRun]:
    """Run the kill loop, the clean end and the drain; yields with the cloud up.

    Each start runs a random ``run_s`` seconds after ``/healthz`` answers (or
    what ``hooks.up`` makes of it). ``cancels``: the pickers expect stops to
    leave their tours (see :func:`picker`). ``zero_checks`` sets ``[floor]
    zero_checks``; ``play`` how the pickers err (:class:`Play`: ``empty``
    shorts, miscounts, wrong locations for a put-back). ``box_dir``: where
    the box's files live (configuration, secret, database; default
    ``tmp_path``, which keeps the cloud's database and the daemon's log);
    ``make_box`` builds the :class:`Box` (a subclass); ``told``: the list the
    pickers' records go into, for a caller that reads them during the loop.
    """
    hooks = hooks or Hooks()
    started = time.monotonic()
    rng = random.Random(20261122)
    feed, gtins = zone_feed(ZONE, pickers=PICKERS, tasks=tasks)
    for change in feed:
        if change["type"] == "stock":
            change["data"]["base"] = STOCK
    locations = [c["data"]["code"] for c in feed if c["type"] == "location"]
    floor = Floor.of(feed, play)

    proc: asyncio.subprocess.Process | None = None
    async with cloud_for(tmp_path, feed) as cloud:
        try:
            port = free_port(rng)
            home = box_dir or tmp_path
            box = make_box(
                write_config(
                    home,
                    cloud.url,
                    port,
                    checkpoint_interval_s=checkpoint_interval_s,
                    metrics_token=metrics_token,
                    zero_checks=zero_checks,
                ),
                home / "box.db",
                port,
                tmp_path / "daemon.log",
                clock=clock,
                crash_points=crash_points,
            )
            with Store.open(box.db, box_id=BOX) as store:
                keys = [enroll_pda(store, f"e2e-pda-{n}")[1] for n in range(1, PICKERS + 1)]

            # First start, unarmed: the box downloads the zone (then it is killed too).
            proc = await box.start(armed=False)
            assert await box.up(proc)
            deadline = time.monotonic() + 60
            while box.query("SELECT count(*) FROM tasks")[0][0] < tasks:
                assert time.monotonic() < deadline, "the first download did not finish"
                await asyncio.sleep(0.1)
            await box.kill(proc)
            await hooks.begin(box, cloud)

            base = f"http://127.0.0.1:{port}"
            stop = asyncio.Event()
            if told is None:
                told = []
            told[:] = [Told() for _ in range(PICKERS)]
            async with contextlib.AsyncExitStack() as stack:
                pdas: list[Handheld] = []
                for n, key in enumerate(keys, start=1):
                    pda = Handheld(base, key)
                    await stack.enter_async_context(pda)
                    pda.badge = f"BADGE{n:04d}"
                    pdas.append(pda)
                walkers = [
                    asyncio.create_task(
                        picker(pda, gtins, locations, t, random.Random(n), stop, cancels, floor)
                    )
                    for n, (pda, t) in enumerate(zip(pdas, told, strict=True))
                ]
                stack.callback(lambda: [w.cancel() for w in walkers])
                loop_started = time.monotonic()
                armed_points = [part.split(":")[0] for part in crash_points.split(",") if part]

                def still_short() -> bool:
                    # What check_the_loop_worked needs: on a loaded box the pickers
                    # get less done per start, so the loop runs on (bounded) rather
                    # than the proof depending on how busy the machine is.
                    fired = box.crash_points_fired()
                    return (
                        any(fired[name] == 0 for name in armed_points)
                        or sum(sum(t.units.values()) for t in told) <= 5 * kills
                        or sum(t.shorts for t in told) == 0
                    )

                while box.test_kills + box.self_kills < kills or (
                    box.starts < 3 * kills and still_short()
                ):
                    proc = await box.start(armed=True)
                    if await box.up(proc):
                        seconds = await hooks.up(box, proc, rng.uniform(*run_s))
                        if clock is None:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(proc.wait(), seconds)
                        else:
                            await clock.run(proc, seconds)
                        if proc.returncode is None:
                            await hooks.before_kill(box, proc)
                    await box.kill(proc)
                    await hooks.down(box)
                    for w in walkers:
                        if w.done():
                            w.result()  # a picker's failure fails the test here
                            raise AssertionError("a picker ran out of work during the loop")
                loop_s = time.monotonic() - loop_started
                await hooks.end(box)

                # The end: no crash points, no faults; every PDA hears its last answer.
                cloud.batch_faults.clear()
                cloud.changes_faults.clear()
                proc = await box.start(armed=False)
                assert await box.up(proc)
                if clock is not None:
                    clock.jump()
                stop.set()
                await asyncio.wait_for(asyncio.gather(*walkers), 120)
            if clock is not None:
                clock.jump()
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
            if clock is not None:
                clock.ended(proc.pid)
            box.check_integrity()
        finally:
            await hooks.close()
            if proc is not None and proc.returncode is None:
                proc.kill()  # a failed test leaves no daemon behind
                await proc.wait()
        yield LoopRun(box, cloud, pdas, told, kills, loop_s, started, floor)


#: the units picked per (sku, location) on the tours a box keeps (a count
#: tour's ``picked`` is the picker's count, no pick)
PICKED_ON_TOURS = (
    "SELECT s.sku, s.location, SUM(s.picked) FROM tour_stops s JOIN tours r ON r.tour = s.tour "
    "WHERE r.kind = 'pick' GROUP BY s.sku, s.location"
)


@dataclass
class FloorFigures:
    """Put-backs and counts as the cloud holds them, every check passed."""

    returns: int  # stock_delta reason return
    returned_units: int
    counts: int  # count_result
    corrected: int  # counts that corrected the stock (a stock_delta reason count)
    corrected_units: int  # the units those moved, either way
    recounts: int  # second attempts (the box's count_results.attempts)
    empties: int  # pick_exception reason empty
    zero_checks: int  # count tasks the box made itself
    open_put_back_units: int  # still to be put back at the end
    #: per (sku, location): the stock_delta reason count, and reason short of
    #: ``empty`` shorts (the two movements a PDA is never told the size of)
    corrections: dict[Key, int]


def check_floor(
    conn: sqlite3.Connection,
    at_cloud: list[dict[str, Any]],
    told: Sequence[Told],
    base: Mapping[Key, int],
) -> FloorFigures:
    """Put-backs and counts, exactly once, each tied to the answers a PDA got.

    A count is blind and an ``empty`` short zeroes what the box believed was
    there: the PDA is never told how many units either moves, so those
    corrections cannot come from the answers. They come from the cloud's
    events, and the events are tied to the answers, which proves more than
    either alone: replaying every ``stock_delta`` in seq order from the
    zone's initial stock (the on-hand the box held at each point),

    - each ``count_result`` is the final count of exactly one ``count_done``
      answer (task, SKU, location, the units the picker counted), and after
      its transaction the on-hand *is* that count: the ``stock_delta``
      reason ``count`` that follows (at most one: one lot per location
      here) is ``counted − on-hand``, present exactly when the answer's
      feedback was ``warning``; the box's ``count_results.attempts`` is one
      more than the ``recount`` answers of that (task, location);
    - each ``pick_exception`` reason ``empty`` is an ``empty`` short a picker
      made, and leaves the on-hand at 0 (its ``stock_delta`` reason
      ``short`` just before it); each other short writes off exactly the
      missing units a picker was told of (``Told.written_off``); each
      emptied location got a count task;
    - each ``put_back_done`` answer is one ``stock_delta`` reason ``return``
      (ref the task, the location scanned, the units in hand) and each such
      event one answer;
    - nothing of a cancel is lost: per cancelled task and (SKU, origin), the
      ``put_back`` of its ``task_cancelled`` is the box's put-back line, of
      which the returns came back and the rest is still open; the lines a
      picker was last told are open are open, as told.
    """
    running: collections.Counter[Key] = collections.Counter(base)
    corrections: collections.Counter[Key] = collections.Counter()
    returns: collections.Counter[tuple[str, str, str, int]] = collections.Counter()
    count_deltas: collections.Counter[tuple[str, str]] = collections.Counter()
    results: collections.Counter[tuple[str, str, str, int]] = collections.Counter()
    emptied: collections.Counter[tuple[str, Key]] = collections.Counter()
    cancelled: collections.Counter[tuple[str, str, str]] = collections.Counter()
    pending: tuple[Key, int, str] | None = None  # a count_result, its delta may follow
    corrected_units = 0
    previous: dict[str, Any] = {}

    def settle() -> None:
        nonlocal pending
        if pending is not None:
            key, counted, task = pending
            assert running[key] == counted, (task, key, running[key], counted)
            pending = None

    for ev in at_cloud:
        t, d = ev["type"], ev["data"]
        if t == "stock_delta":
            key = (d["sku"], d["location"])
            if d["reason"] == "count":
                assert pending is not None and pending[0] == key and pending[2] == d["ref"], ev
                count_deltas[d["ref"], d["location"]] += 1
                corrections[key] += d["qty"]
                corrected_units += abs(d["qty"])
            else:
                settle()
            if d["reason"] == "return":
                returns[d["ref"], d["sku"], d["location"], d["qty"]] += 1
            assert d["reason"] in ("pick", "short", "count", "return"), ev
            running[key] += d["qty"]
        else:
            settle()
        if t == "count_result":
            results[d["task"], d["sku"], d["location"], d["counted"]] += 1
            pending = ((d["sku"], d["location"]), d["counted"], d["task"])
        elif t == "pick_exception" and d["location"] is not None:
            key = (d["sku"], d["location"])
            missing = d["expected"] - d["picked"]
            short = previous if previous.get("type") == "stock_delta" else {}
            p = short.get("data", {})
            wrote_off = p["qty"] if (p.get("reason"), p.get("ref")) == ("short", d["task"]) else 0
            if d["reason"] == "empty":
                emptied[d["task"], key] += 1
                corrections[key] += wrote_off
                assert running[key] == 0, (ev, running[key])
            else:
                assert wrote_off == -missing, (ev, previous)
        elif t == "task_cancelled":
            for line in d["put_back"]:
                cancelled[d["task"], line["sku"], line["location"]] += line["qty"]
        previous = ev
    settle()

    # counts: one result per count_done answer, its correction iff it differed
    answered = collections.Counter(
        (task, sku, loc, n) for x in told for task, sku, loc, n, _ in x.counts
    )
    assert results == answered, (results - answered, answered - results)
    assert max(count_deltas.values(), default=0) <= 1, count_deltas  # no stock_delta twice
    for x in told:
        for task, _, loc, _, feedback in x.counts:
            assert count_deltas[task, loc] == (feedback == "warning"), (task, loc, feedback)
    recounted: collections.Counter[tuple[str, str]] = collections.Counter()
    for x in told:
        recounted.update(x.recounted)
    attempts = {
        (task, loc): n
        for task, loc, n in conn.execute("SELECT task, location, attempts FROM count_results")
    }
    assert len(attempts) == sum(results.values()), "a location counted twice in one task"
    assert {k: n - 1 for k, n in attempts.items() if n > 1} == nonzero_pairs(recounted)
    # empty shorts: each a picker's, each emptied location counted or to be
    made = collections.Counter((task, key) for x in told for task, key in x.emptied)
    assert emptied == made, (emptied, made)
    count_tasks = {
        (sku, loc): task
        for task, sku, loc in conn.execute(
            "SELECT t.task, l.sku, l.location FROM tasks t JOIN task_lines l ON l.task = t.task "
            "WHERE t.kind = 'count'"
        )
    }
    assert all(key in count_tasks for _, key in made), (made, count_tasks)
    zero_checks = [key for key, task in count_tasks.items() if task.startswith("ZC-")]
    # (a location picked to zero would make one too; with STOCK none is)
    assert {key for _, key in made} >= set(zero_checks), zero_checks
    # put-backs: one return per put_back_done answer, each once
    answered_back = collections.Counter(r for x in told for r in x.put_backs)
    assert returns == answered_back, (returns - answered_back, answered_back - returns)
    lines: collections.Counter[tuple[str, str, str]] = collections.Counter()
    back: collections.Counter[tuple[str, str]] = collections.Counter()
    open_units = 0
    open_of: dict[str, set[tuple[Any, ...]]] = collections.defaultdict(set)
    for task, picker, sku, origin, lot, qty, put_back, in_hand, closed in conn.execute(
        "SELECT task, picker, sku, origin, lot, qty, put_back, in_hand, closed_ms FROM put_backs"
    ):
        lines[task, sku, origin] += qty
        back[task, sku] += put_back
        assert (closed is None) == (put_back < qty), (task, sku, qty, put_back, closed)
        if closed is None:
            open_units += qty - put_back
            open_of[picker].add((task, sku, origin, lot or None, qty - put_back, in_hand))
    assert lines == cancelled, (lines - cancelled, cancelled - lines)  # no line lost
    returned_of: collections.Counter[tuple[str, str]] = collections.Counter()
    for (task, sku, _, units), n in returns.items():
        returned_of[task, sku] += units * n
    assert nonzero_pairs(back) == nonzero_pairs(returned_of), (back, returned_of)
    for n, x in enumerate(told, start=1):
        shown = {
            (m["task"], m["sku"], m["origin"], m["lot"], m["qty"], m["in_hand"])
            for m in x.open_lines
        }
        assert shown <= open_of[f"p{n}"], (n, shown, open_of)
    return FloorFigures(
        returns=sum(returns.values()),
        returned_units=sum(r[3] * n for r, n in returns.items()),
        counts=sum(results.values()),
        corrected=sum(count_deltas.values()),
        corrected_units=corrected_units,
        recounts=sum(recounted.values()),
        empties=sum(emptied.values()),
        zero_checks=len(zero_checks),
        open_put_back_units=open_units,
        corrections=nonzero(corrections),
    )


def nonzero_pairs(counts: Mapping[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {k: v for k, v in counts.items() if v}


@dataclass
class Figures:
    events: list[dict[str, Any]]  # as the cloud holds them
    units: collections.Counter[Key]
    pruned: int  # acked outbox rows the box has already pruned
    on_tours: dict[Key, int]  # units picked on the tours the box still keeps
    tours_kept: int
    tours_started: int
    floor: FloorFigures


def check_exactly_once(run: LoopRun, planted: Mapping[str, range] | None = None) -> Figures:
    """The final assertions: every event at the cloud exactly once, and the
    cloud's stock == the box's ledger == what the PDAs were told.

    Over every epoch: the box has one more than ``planted`` names (an epoch
    whose tail the test had the cloud hold with other content, ``planted``
    seqs of it: see :func:`plant_clone_events`); the cloud holds each epoch's
    seqs 1..last exactly as the box wrote them, a sealed epoch's planted seqs
    after them and nothing else, and has acked all of it.
    """
    planted = planted or {}
    box, cloud, told = run.box, run.cloud, run.told
    conn = read_ro(box.db)
    try:
        epochs = outbox_epochs(conn)
        ledger = ledger_sums(conn)
        acked = conn.execute("SELECT acked_epoch, acked_seq FROM sync_state").fetchone()
    finally:
        conn.close()
    current = epochs[-1]
    # One epoch, and one more for each conflict the test planted (each moved
    # what followed the planted seqs once, to an epoch no one else wrote).
    assert len(epochs) == 1 + len(planted), ([e.epoch for e in epochs], planted)
    assert set(planted) <= {e.epoch for e in epochs if e.sealed}
    assert [e for e, _ in cloud.receiver.epochs(BOX)] == [e.epoch for e in epochs if e.last]
    at_cloud: list[dict[str, Any]] = []
    pruned = 0
    for e in epochs:
        extra = planted.get(e.epoch, range(0))
        assert not extra or extra.start == e.last + 1, (e.epoch, e.last, extra)
        held = cloud.receiver.events(BOX, e.epoch)
        # Exactly once, contiguous, as the box wrote them; nothing unacked.
        assert [x["seq"] for x in held] == [*range(1, e.last + 1), *extra], e.epoch
        mine = held[: e.last]
        kept = {r["seq"] for r in e.rows}
        assert e.rows == [x for x in mine if x["seq"] in kept]
        assert e.acked == e.last  # so every pruned row was acked
        assert cloud.receiver.acked(BOX, e.epoch) == e.last + len(extra)
        at_cloud += mine
        pruned += e.last - len(e.rows)
    assert acked == (current.epoch, current.last)

    # Put-backs and counts, each tied to its answer; the corrections the PDAs
    # are not told the size of (see check_floor).
    conn = read_ro(box.db)
    try:
        floor = check_floor(conn, at_cloud, told, Floor.of(cloud.feed.changes, Play()).truth)
    finally:
        conn.close()

    # Stock: the cloud == the ledger == what the PDAs were told: picks,
    # write-offs and returns from the answers, and the corrections of counts
    # and empty shorts.
    units: collections.Counter[Key] = collections.Counter()
    told_delta: collections.Counter[Key] = collections.Counter(floor.corrections)
    for t in told:
        units.update(t.units)
        told_delta.subtract(t.units)
        told_delta.subtract(t.written_off)
        told_delta.update(t.returned)
    cloud_net = nonzero(cloud.receiver.net_stock(BOX))
    assert cloud_net == ledger
    assert ledger == nonzero(told_delta)
    picked: collections.Counter[Key] = collections.Counter()
    for ev in at_cloud:
        if ev["type"] == "pick_confirmed":
            picked[ev["data"]["sku"], ev["data"]["location"]] += ev["data"]["qty"]
    assert nonzero(picked) == nonzero(units)
    shorts = sum(ev["type"] == "pick_exception" for ev in at_cloud)
    assert shorts == sum(t.shorts + t.unfillable for t in told)
    on_tours = dict(((sku, loc), n) for sku, loc, n in box.query(PICKED_ON_TOURS) if n)
    (tours_kept,) = box.query("SELECT count(*) FROM tours")[0]
    return Figures(
        at_cloud,
        units,
        pruned,
        on_tours,
        tours_kept,
        sum(t.tours for t in told),
        floor,
    )


def plant_clone_events(cloud: CloudSimulator, epoch: str, count: int) -> range:
    """Have the cloud hold ``count`` events of another writer right after what
    it holds of ``epoch``: a card cloned bit for bit that kept writing as this
    box (docs/sync.md, "Limits"). They are applied through the receiver as a
    batch would be, and move no stock. The box, when it sends the seqs it
    wrote there, gets ``epoch_conflict`` at the first of them; returns them."""
    first = cloud.receiver.acked(BOX, epoch) + 1
    events = [
        {"seq": seq, "type": "e2e_clone", "at": real_ms(), "data": {"clone": seq}}
        for seq in range(first, first + count)
    ]
    body = msgpack.packb(
        {
            "v": 1,
            "box": BOX,
            "epoch": epoch,
            "first": first,
            "last": first + count - 1,
            "events": events,
        },
        use_bin_type=True,
    )
    answer = cloud.receiver.receive(BOX, body)
    assert answer.status == 200, answer
    return range(first, first + count)


@dataclass
class BackupCheck:
    """What one backup file held, every check passed."""

    epochs: int
    events: int
    stock_deltas: int
    units: int


def check_backup(path: Path) -> BackupCheck:
    """A backup is a sound database and a consistent cut of the box's history:

    - ``PRAGMA integrity_check`` is ok;
    - each epoch's outbox is contiguous from seq 1 to its last (nothing is
      pruned within a loop: retention is days of uptime);
    - every ``stock_delta`` event has its ledger row, seq for seq and with the
      same sku, location and quantity, and no ledger row lacks its event (so
      the ledger's sum per (sku, location) is the events' sum);
    - the units picked on tours per (sku, location) are the units of the
      ``pick_confirmed`` events: no committed pick without its event.
    """
    conn = read_ro(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], path
        epochs = outbox_epochs(conn)
        place = logical_seq(conn)
        ledger_rows = {
            place(epoch, seq): (sku, loc, qty)
            for epoch, seq, sku, loc, qty in conn.execute(
                "SELECT epoch, seq, sku, location, qty FROM stock_ledger"
            )
        }
        (base,) = conn.execute("SELECT count(*) FROM stock_ledger_base").fetchone()
        ledger = ledger_sums(conn)
        on_tours = nonzero({(sku, loc): n for sku, loc, n in conn.execute(PICKED_ON_TOURS)})
    finally:
        conn.close()
    assert base == 0, "nothing is folded within a loop"
    deltas: dict[tuple[str, int], tuple[str, str, int]] = {}
    sums: collections.Counter[Key] = collections.Counter()
    picked: collections.Counter[Key] = collections.Counter()
    events = 0
    for e in epochs:
        assert [r["seq"] for r in e.rows] == list(range(1, e.last + 1)), (path, e.epoch)
        events += len(e.rows)
        for r in e.rows:
            d = r["data"]
            if r["type"] == "stock_delta":
                deltas[e.epoch, r["seq"]] = (d["sku"], d["location"], d["qty"])
                sums[d["sku"], d["location"]] += d["qty"]
            elif r["type"] == "pick_confirmed":
                picked[d["sku"], d["location"]] += d["qty"]
    assert ledger_rows == deltas, (path, set(ledger_rows) ^ set(deltas))
    assert ledger == nonzero(sums), path
    assert on_tours == nonzero(picked), path
    return BackupCheck(len(epochs), events, len(deltas), sum(picked.values()))


def summary(name: str, run: LoopRun, f: Figures) -> str:
    box, told, pdas = run.box, run.told, run.pdas
    return (
        f"\n{name}: {box.test_kills} SIGKILLs by the test + "
        f"{box.self_kills} by crash points {dict(box.crash_points_fired())}; "
        f"{box.starts} starts, "
        f"{box.integrity_checks} integrity checks ({box.hot_wals} on a hot WAL); "
        f"{len(f.events)} events, "
        f"{sum(f.units.values())} units in {f.tours_started} tours, "
        f"{sum(t.shorts for t in told)} shorts; {floor_summary(run, f)}; "
        f"{sum(p.retried for p in pdas)} PDA requests answered only after a restart, "
        f"{sum(t.resumed for t in told)} resumes, {sum(p.unauthorized for p in pdas)} "
        f"re-logins; faults {dict(run.cloud.batch_faults.drawn)}; "
        f"loop {run.loop_s:.0f} s, total {time.monotonic() - run.started:.0f} s"
    )


def floor_summary(run: LoopRun, f: Figures) -> str:
    """Put-backs and counts, as the pickers were told and the cloud holds them."""
    told, g = run.told, f.floor
    return (
        f"{g.returns} put-backs ({g.returned_units} units, "
        f"{sum(t.put_back_elsewhere for t in told)} into another location of the SKU, "
        f"{sum(t.put_back_refused for t in told)} wrong locations refused first; "
        f"{g.open_put_back_units} units still to put back at the end), "
        f"{g.counts} counts in {sum(t.count_tours for t in told)} count tours "
        f"({g.recounts} recounts, {sum(t.miscounts for t in told)} attempts miscounted "
        f"on purpose, {g.corrected} corrected the stock by {g.corrected_units} units; "
        f"{g.empties} empty shorts, {g.zero_checks} zero checks)"
    )


def check_the_loop_worked(run: LoopRun, f: Figures) -> None:
    """The loop did what it claims (thresholds scale with the kills)."""
    box, pdas, kills = run.box, run.pdas, run.kills
    fired = box.crash_points_fired()
    assert box.test_kills + box.self_kills >= kills
    assert fired["after_commit_before_answer"] >= 1, fired
    assert fired["after_send_before_ack"] >= 1, fired
    # (a crash point that fires as the test kills is counted as the test's)
    assert sum(fired.values()) >= box.self_kills
    assert box.hot_wals >= kills // 2, "kills should leave a hot WAL to recover"
    assert sum(p.retried for p in pdas) >= kills // 2
    assert sum(f.units.values()) > 5 * kills, "the pickers did real work"
    assert sum(t.shorts for t in run.told) > 0
    drawn = run.cloud.batch_faults.drawn
    assert sum(drawn.values()) > kills // 5, drawn
