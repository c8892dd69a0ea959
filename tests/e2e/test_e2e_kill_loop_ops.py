"""The kill loop while the box is operated: backups, cancels, epoch changes, checkpoints.

Issue 17's proof: "a kill loop that also kills during epoch changes, cancels
and checkpoints, with a ``db backup`` running concurrently: scan p99
unaffected, nothing lost or doubled". The loop of ``test_e2e_kill_loop.py``
(:mod:`tests.support.e2e`: the real daemon, three handhelds, the faulty cloud
simulator, SIGKILL and the two crash points, and a third between the chunks
of an epoch change's move), and beside it (:class:`Ops`):

- **backups**: ``pickedge db backup`` (the real CLI, ``python -m edge db
  backup DEST --config ...``) back to back for the whole loop, whether the
  daemon runs, starts or lies dead with a hot WAL. Each must exit 0 and each
  copy must pass :func:`~tests.support.e2e.check_backup`: integrity, every
  epoch's outbox contiguous, every ``stock_delta`` with its ledger row and no
  ledger row without its event (so the ledger's sum per (sku, location) is
  the events' sum), the tours' picked units == the ``pick_confirmed`` units.
- **cancels**: the cloud's feed gets ``task_cancel`` for tasks on active tours
  (most with units already picked), for open tasks nobody started, and for
  tasks the box has not received (whose ``task`` the feed sends later: never
  pickable). Often right after a start, so that kills land while the
  downloader applies them. The handhelds expect stops to leave their tours
  (:class:`~tests.support.e2e.Cancels`); ``task_unavailable`` — a scan
  meeting an open stop of a cancelled task — fails the test.
- **put-backs** (issue 12): a picker a cancel left with units puts them back
  before any new work (START answers ``put_back_required``): it scans the
  units (one, or a count of several), then the origin or, half the time
  when the zone has one, another location of the SKU, now and then a wrong
  location first (refused). A scan meant as a pick that meets the cancel
  takes a unit in hand instead; a location scan may then put it back: the
  handhelds account for whatever an answer says (:func:`~tests.support.e2e.heard`).
- **counts** (issue 12): ``[floor] zero_checks = true``; every third time the
  daemon is down the cloud sends a count task of one to three stocked
  locations, priority above every pick task; a fifth of the shorts call the
  location ``empty`` (the units are still there: the zero check finds them).
  The pickers count what :class:`~tests.support.e2e.Floor` says the shelf
  holds (the zone's stock less what they were told they picked and wrote
  off, plus what they put back), a third of the attempts a few units off on
  purpose; a count that differs is counted again (``recount``), as is one
  that picks by others made differ.
- **epoch changes**: while the daemon is down the cloud is made to hold a few
  events of another writer right after what it holds of the box's current
  epoch, where the box has written events it has not had acked (a card cloned
  bit for bit, docs/sync.md "Limits";
  :func:`~tests.support.e2e.plant_clone_events`). The next start sends its
  own events under those seqs, gets ``epoch_conflict`` with ``conflict_at``,
  acks what matched and moves the rest to a new epoch; that start is killed
  early (0.05–1.5 s), before or after the epoch change (a fault's 1 s back-off
  may come first), and the ``after_send_before_ack`` crash point may fire on
  the conflict answer. :func:`~tests.support.e2e.check_exactly_once` then
  checks every epoch: the cloud holds the planted seqs and nothing of the box
  twice.
- **checkpoints**: ``store.checkpoint_interval_s`` at its minimum (1 s), runs
  long enough for maintenance to tick, and a share of the kills aimed at the
  first tick (0.95–1.15 s after ``/healthz``; it comes ~1.0 s after). Ticks
  are counted from the box's stored uptime (maintenance stores it at each);
  a run during which the database file itself was written had a checkpoint
  (in WAL mode only checkpoints write it: maintenance's, or SQLite's PASSIVE
  auto-checkpoint after a commit).

Checked at every kill, on the dead daemon's file: no open stop of a cancelled
task in any tour, and every stock row's ``reserved`` equals what open stops of
active tours still need. After the loop (crash points disarmed, faults
cleared, the outbox drained): the exactly-once checks of the other loops over
every epoch (cloud net stock == box ledger == what the PDAs were told, every
(epoch, seq) once, planted seqs apart), and
:func:`~tests.support.e2e.check_floor`: every ``put_back_done`` answer one
``stock_delta`` reason ``return`` and each of those one answer; every
``count_done`` answer one ``count_result`` with the count the picker made,
after which the cloud's replayed on-hand *is* that count, with a
``stock_delta`` reason ``count`` (never two) exactly when the answer said
the stock was corrected, and one attempt more than the picker's ``recount``
answers; every ``empty`` short a picker's, leaving the on-hand at 0 and a
count task for it; no put-back line lost (each cancelled task's picked
units put back or still open at the end, as the picker was last told);
every count task the cloud sent done once each location of it is counted.
Every cancelled task cancelled (or
done before its cancel came), its ``pick_confirmed`` units all stamped before
the cancel was recorded; no late task received.

Latency: the round trip of every ``POST /api/v1/scan`` a live daemon answered
at the first attempt (the handhelds leave out requests that met a dead or
dying daemon), and the daemon's own ``pickedge_api_scan_seconds`` histogram
scraped before each kill; p50/p99/max printed, split by whether a backup
process ran. Held to: p99 < 100 ms (client and daemon), and no scan over
500 ms, those in flight while an epoch change moved its rows included (the
rows move a chunk per transaction, ``bench/epoch_change.py``, docs/sync.md;
before that, the loop's epoch changes moved 5,000–25,000 events in one
transaction and held scans 60–210 ms).

``PICKEDGE_E2E_OPS_KILLS`` sets the number of kills (default 40, ~55 s on a
2-core box); a larger figure makes a soak of it.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import json
import multiprocessing
import os
import random
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simulators.cloud import CloudSimulator
from tests.support.e2e import (
    BOX,
    ROOT,
    TASKS,
    Box,
    Cancels,
    Hooks,
    Play,
    check_backup,
    check_exactly_once,
    check_the_loop_worked,
    kill_loop,
    nonzero,
    plant_clone_events,
    read_ro,
    summary,
)

KILLS = int(os.environ.get("PICKEDGE_E2E_OPS_KILLS", "40"))
#: the plain loop's after_send_before_ack; a scan's crash point rarer than
#: there (the pickers scan ~200 times a second), so that the test's aimed
#: kills (the first tick, the epoch change, a cancel coming down) get their turn
CRASH_POINTS = "after_commit_before_answer:0.0005,after_send_before_ack:0.04,during_epoch_move:0.1"
#: seconds a start runs when no operation aims the kill: many outlive a tick
RUN_S = (0.3, 3.0)
CHECKPOINT_S = 1.0  # the configuration's minimum
METRICS_TOKEN = "e2e-ops-scrape-token"
#: no scan takes longer, on a loaded 2-core CI box (epoch changes included:
#: their rows move a chunk per transaction, bench/epoch_change.py)
RTT_MAX_MS = 500.0
SERVER_SLOW_S = 0.25  # reported: scans the daemon took longer than this itself
OPEN = ("pending", "location_ok")
#: how the pickers err: a fifth of the shorts call the location empty (a zero
#: check follows), a third of the count attempts are a few units off, some
#: put-backs meet a wrong location first
PLAY = Play(empty_shorts=0.2, miscounts=0.3, wrong_put_backs=0.1)
COUNT_PRIORITY = (4, 9)  # above every pick task's (0-3): the next START counts


@dataclass
class Ops(Hooks):
    """Backups, cancels, clone events and aimed kills around the loop."""

    tmp: Path
    cancels: Cancels
    rng: random.Random = field(default_factory=lambda: random.Random(17))
    cloud: CloudSimulator | None = None
    #: (task, kind) in the order enqueued: kind in open, picking, unknown
    cancelled: list[tuple[str, str]] = field(default_factory=list)
    late: dict[str, dict[str, Any]] = field(default_factory=dict)  # task sent after its cancel
    late_sent: set[str] = field(default_factory=set)
    counts_sent: list[str] = field(default_factory=list)  # count tasks the cloud sent
    planted: dict[str, range] = field(default_factory=dict)
    pending_plant: str | None = None
    plant_runs: collections.Counter[str] = field(default_factory=collections.Counter)
    runs: collections.Counter[str] = field(default_factory=collections.Counter)
    checkpointed_runs: int = 0
    ticked_runs: int = 0
    ticks: int = 0
    backups: list[tuple[float, bool, int, int]] = field(default_factory=list)
    #: (start, end) perf_counter of each backup process
    backup_windows: list[tuple[float, float]] = field(default_factory=list)
    server_buckets: collections.Counter[str] = field(default_factory=collections.Counter)
    scrapes: int = 0
    downs: int = 0
    invariant_checks: int = 0
    daemon_up: bool = False
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _checker: ProcessPoolExecutor | None = None
    _proc: asyncio.subprocess.Process | None = None
    _file: tuple[int, int] = (0, 0)
    _uptime: int = 0
    _plan: str = ""

    # ------------------------------------------------------------------ hooks

    async def begin(self, box: Box, cloud: CloudSimulator) -> None:
        self.cloud = cloud
        (self.tmp / "backups").mkdir()
        # two tasks cancelled before the box hears of them; sent later
        template = next(c for c in cloud.feed.changes if c["type"] == "task")
        for n in (1, 2):
            task = f"LATE{n:03d}"
            self.late[task] = {"type": "task", "data": {**template["data"], "task": task}}
        self._checker = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self._task = asyncio.create_task(self._backups(box))

    async def up(self, box: Box, proc: asyncio.subprocess.Process, seconds: float) -> float:
        self.daemon_up = True
        self._uptime = uptime(box)
        self._file = file_stamp(box.db)
        if self.pending_plant is not None:
            # kill near the first sends: before or after the change (a fault's
            # 1 s back-off, or a resend of what the cloud holds, may come first)
            self._plan = "epoch"
            return self.rng.uniform(0.05, 1.5)
        r = self.rng.random()
        if r < 0.25:
            self._plan = "cancel"  # kill while the downloader applies it, or soon after
            for _ in range(self.rng.randint(1, 2)):
                self.cancel(box, "picking" if self.rng.random() < 0.7 else "open")
            return self.rng.uniform(0.05, 1.2)
        if r < 0.65:
            # maintenance ticks ~1 s after /healthz: kill around the first
            # tick, or after one or two
            self._plan = "checkpoint"
            return self.rng.uniform(0.95, 1.15) if r < 0.45 else self.rng.uniform(1.15, 2.2)
        self._plan = "plain"
        return seconds

    async def before_kill(self, box: Box, proc: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            self.server_buckets.update(await scrape_scan_seconds(box.port))
            self.scrapes += 1

    async def down(self, box: Box) -> None:
        self.downs += 1
        if self.daemon_up:
            self.runs[self._plan] += 1
            # maintenance stores the uptime at each tick (and at its start)
            ticks = round((uptime(box) - self._uptime) / (CHECKPOINT_S * 1000))
            self.ticks += ticks
            self.ticked_runs += ticks > 0
            self.checkpointed_runs += file_stamp(box.db) != self._file
            if self._plan == "epoch" and self.pending_plant is not None:
                moved = current_epoch(box) != self.pending_plant
                self.plant_runs["changed before the kill" if moved else "killed first"] += 1
        self.daemon_up = False
        if self._task is not None and self._task.done():
            self._task.result()  # a failed backup fails the test here
            raise AssertionError("the backups stopped")
        self.check_cancels_on_file(box)
        if self.pending_plant is not None and current_epoch(box) != self.pending_plant:
            self.pending_plant = None
        # while down: sometimes an epoch to change, a cancel for the next start,
        # a late task's cancel or the late task itself
        if self.pending_plant is None and self.downs % 5 == 3:
            self.plant(box)
        elif self.rng.random() < 0.4:
            # The pickers finish a task in a fraction of a second, less than
            # the downloader's pull interval: a cancel of one they are picking
            # reaches it in time when it is the first thing the next start
            # pulls, racing the handhelds' retries.
            self.cancel(box, "picking" if self.rng.random() < 0.8 else "open")
        late = [t for t in self.late if (t, "unknown") not in self.cancelled]
        if late and self.downs in (2, 4):
            self.cancel(box, "unknown", task=late[0])
        elif self.downs in (10, 14):
            task = next(t for t in self.late if t not in self.late_sent)
            self.late_sent.add(task)
            assert self.cloud is not None
            self.cloud.feed.add(self.late[task])
        if self.downs % 3 == 1:
            self.count()

    def count(self) -> None:
        """Have the cloud send a count task of one to three stocked locations."""
        assert self.cloud is not None
        stocked = sorted(
            (c["data"]["sku"], c["data"]["location"])
            for c in self.cloud.feed.changes
            if c["type"] == "stock"
        )
        keys = self.rng.sample(stocked, self.rng.randint(1, 3))
        if len({loc for _, loc in keys}) < len(keys):
            return  # one SKU per location in a count task
        task = f"CNT{len(self.counts_sent) + 1:04d}"
        self.counts_sent.append(task)
        lines = [
            {"line": n, "sku": sku, "location": loc, "qty": 0}
            for n, (sku, loc) in enumerate(keys, start=1)
        ]
        data = {"task": task, "kind": "count", "priority": self.rng.randint(*COUNT_PRIORITY)}
        self.cloud.feed.add({"type": "task", "data": {**data, "lines": lines}})

    async def end(self, box: Box) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 60)

    async def close(self) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._checker is not None:
            self._checker.shutdown(cancel_futures=True)

    # ------------------------------------------------------------------ operations

    async def _backups(self, box: Box) -> None:
        """``pickedge db backup`` back to back until :meth:`end`; each copy checked."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}
        n = 0
        while not self._stop.is_set():
            n += 1
            dest = self.tmp / "backups" / f"backup-{n:04d}.db"
            up = self.daemon_up
            started = time.perf_counter()
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "edge", "db", "backup", str(dest), "--config", str(box.config)),
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await self._proc.communicate()
            self.backup_windows.append((started, time.perf_counter()))
            took = self.backup_windows[-1][1] - started
            assert self._proc.returncode == 0, (n, out, err)
            # in another process: decoding thousands of events here would hold
            # the GIL the handhelds' event loop needs, and show in their times
            check = await asyncio.get_running_loop().run_in_executor(
                self._checker, check_backup, dest
            )
            self.backups.append((took, up, check.epochs, check.events))
            dest.unlink()

    def cancel(self, box: Box, kind: str, *, task: str | None = None) -> None:
        """Enqueue a ``task_cancel`` of a task on an active tour (``picking``),
        of an open task no tour has (``open``), or of ``task`` (``unknown``)."""
        if task is None:
            task = pick_task(box, kind, self.cancels.tasks)
            if task is None:
                return
        self.cancels.tasks.add(task)  # before the cloud can send it
        self.cancelled.append((task, kind))
        assert self.cloud is not None
        self.cloud.feed.add({"type": "task_cancel", "data": {"task": task}})

    def plant(self, box: Box) -> None:
        """Clone events right after what the cloud holds of the box's epoch,
        where the box holds events of its own it has not had acked."""
        assert self.cloud is not None
        epoch, next_seq = box.query("SELECT epoch, next_seq FROM box")[0]
        held = self.cloud.receiver.acked(BOX, epoch)
        ahead = next_seq - 1 - held
        if held < 1 or ahead < 1:
            return  # nothing the box would send under the planted seqs
        self.planted[epoch] = plant_clone_events(
            self.cloud, epoch, self.rng.randint(1, min(3, ahead))
        )
        self.pending_plant = epoch

    def check_cancels_on_file(self, box: Box) -> None:
        """Whatever a kill left: no open stop of a cancelled task in any tour,
        and each stock row reserves exactly what open stops of active tours
        still need (a cancel releases what its stops held, in its own
        transaction)."""
        stranded = box.query(
            "SELECT s.tour, s.stop, s.task FROM tour_stops s JOIN tasks t ON t.task = s.task "
            f"WHERE t.state = 'cancelled' AND s.state IN {OPEN}"
        )
        assert not stranded, f"open stops of cancelled tasks after start {box.starts}: {stranded}"
        assert reserved(box) == needed(box), f"reservations off after start {box.starts}"
        self.invariant_checks += 1


# --------------------------------------------------------------------------- helpers


def file_stamp(db: Path) -> tuple[int, int]:
    st = db.stat()
    return st.st_mtime_ns, st.st_size


def uptime(box: Box) -> int:
    return int(box.query("SELECT uptime_ms FROM box")[0][0])


def current_epoch(box: Box) -> str:
    return str(box.query("SELECT epoch FROM box")[0][0])


def pick_task(box: Box, kind: str, taken: set[str]) -> str | None:
    if kind == "picking":
        # tasks with open stops on active tours: those with units picked
        # already first, then those with the most left to pick (so that the
        # pickers do not finish them before the cancel comes down)
        rows = box.query(
            "SELECT s.task, SUM(s.picked) > 0, SUM(CASE WHEN s.state IN "
            f"{OPEN} THEN s.qty - s.picked ELSE 0 END) FROM tour_stops s "
            "JOIN tours r ON r.tour = s.tour JOIN tasks t ON t.task = s.task "
            "WHERE r.state = 'active' AND t.state IN ('open', 'started') AND t.kind = 'pick' "
            "GROUP BY s.task "
            f"HAVING SUM(s.state IN {OPEN}) > 0"
        )
    else:
        rows = box.query(
            "SELECT task, 0, 0 FROM tasks WHERE state = 'open' AND kind = 'pick' "
            "AND task NOT IN (SELECT task FROM tour_stops) ORDER BY random() LIMIT 20"
        )
    free = sorted((-int(p), -int(left), t) for t, p, left in rows if t not in taken)
    return free[0][2] if free else None


def reserved(box: Box) -> dict[tuple[str, str, str], int]:
    return {
        (sku, loc, lot): n
        for sku, loc, lot, n in box.query(
            "SELECT sku, location, lot, reserved FROM stock WHERE reserved <> 0"
        )
    }


def needed(box: Box) -> dict[tuple[str, str, str], int]:
    return {
        (sku, loc, lot): n
        for sku, loc, lot, n in box.query(
            "SELECT s.sku, s.location, s.lot, SUM(s.qty - s.picked) FROM tour_stops s "
            "JOIN tours r ON r.tour = s.tour "
            f"WHERE r.state = 'active' AND r.kind = 'pick' AND s.state IN {OPEN} "
            "GROUP BY s.sku, s.location, s.lot HAVING SUM(s.qty - s.picked) <> 0"
        )
    }


def stops_of(db: Path, tour: int) -> dict[int, tuple[str, str]]:
    conn = read_ro(db)
    try:
        rows = conn.execute(
            "SELECT stop, state, task FROM tour_stops WHERE tour = ?", (tour,)
        ).fetchall()
    finally:
        conn.close()
    return {int(stop): (str(state), str(task)) for stop, state, task in rows}


BUCKET = re.compile(r'^pickedge_api_scan_seconds_bucket\{le="([^"]+)"\} ([0-9.e+]+)$', re.M)


async def scrape_scan_seconds(port: int) -> dict[str, int]:
    """The daemon's ``pickedge_api_scan_seconds`` buckets (cumulative) since it started."""
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    timeout = aiohttp.ClientTimeout(total=1)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(f"http://127.0.0.1:{port}/metrics", headers=headers) as r,
    ):
        assert r.status == 200, r.status
        text = await r.text()
    return {le: int(float(n)) for le, n in BUCKET.findall(text)}


EPOCH_MOVE = re.compile(r"^epoch conflict on .*, (\d+) events moved to new epoch ")


def epoch_moves(log: Path) -> list[tuple[float, int]]:
    """(wall-clock time, events moved) of each epoch change, from the daemon's log."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            m = EPOCH_MOVE.match(str(doc.get("msg", "")))
            if m and doc.get("logger") == "cloud_sync.uploader":
                out.append((float(doc["ts"]), int(m[1])))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------------------- the test


@pytest.mark.slow
@pytest.mark.timeout(150 + 4 * KILLS)
async def test_e2e_kill_loop_with_backups_cancels_epoch_changes_checkpoints(
    tmp_path: Path,
) -> None:
    db = tmp_path / "box.db"
    cancels = Cancels(set(), lambda tour: stops_of(db, tour))
    ops = Ops(tmp_path, cancels)
    async with kill_loop(
        tmp_path,
        kills=KILLS,
        crash_points=CRASH_POINTS,
        run_s=RUN_S,
        hooks=ops,
        cancels=cancels,
        checkpoint_interval_s=CHECKPOINT_S,
        metrics_token=METRICS_TOKEN,
        tasks=max(TASKS, 45 * KILLS),  # the pickers finish ~25 tasks per kill
        zero_checks=True,
        play=PLAY,
    ) as run:
        box = run.box
        f = check_exactly_once(run, ops.planted)
        assert f.pruned == 0
        assert f.on_tours == nonzero(f.units)
        ops.check_cancels_on_file(box)  # after the clean stop too

        # The box applied the whole feed: every cancel and both late tasks.
        (cursor,) = box.query("SELECT cursor FROM sync_state")[0]
        assert cursor == f"p{len(run.cloud.feed.changes)}", cursor

        # Cancels: each cancelled task is cancelled, or was done before its
        # cancel came; every unit picked of it was confirmed before the cancel
        # was recorded (pick and cancel stamp the wall clock inside their
        # transactions, and the writer runs one at a time).
        state = {
            t: (s, fin) for t, s, fin in box.query("SELECT task, state, finished_ms FROM tasks")
        }
        picks_of: dict[str, list[int]] = collections.defaultdict(list)
        for e in f.events:
            if e["type"] == "pick_confirmed":
                picks_of[e["data"]["task"]].append(e["at"])
        # Upstream (issue 12): one task_cancelled per task cancelled here, its
        # put_back the units picked of it; a cancel that came after the task
        # was picked is refused with a cancel_refused alert instead.
        told_cancelled = collections.Counter(
            e["data"]["task"] for e in f.events if e["type"] == "task_cancelled"
        )
        put_back = {
            e["data"]["task"]: sum(p["qty"] for p in e["data"]["put_back"])
            for e in f.events
            if e["type"] == "task_cancelled"
        }
        refused = {
            e["data"]["detail"]["task"]
            for e in f.events
            if e["type"] == "alert" and e["data"]["kind"] == "cancel_refused"
        }
        units_of: collections.Counter[str] = collections.Counter()
        for e in f.events:
            if e["type"] == "pick_confirmed":
                units_of[e["data"]["task"]] += e["data"]["qty"]
        outcome: collections.Counter[str] = collections.Counter()
        for task, kind in ops.cancelled:
            if kind == "unknown":
                assert task not in state, f"{task} was cancelled before it came: never pickable"
                assert not box.query(f"SELECT 1 FROM tour_stops WHERE task = '{task}'")
                outcome["unknown: tombstoned"] += 1
                continue
            s, cancelled_at = state[task]
            assert s in ("cancelled", "done"), (task, s)
            late = [at for at in picks_of.get(task, []) if at > cancelled_at]
            if s == "cancelled":
                assert not late, f"{task}: {len(late)} units confirmed after its cancel"
                assert told_cancelled[task] == 1, (task, told_cancelled[task])
                assert put_back[task] == units_of[task], (task, put_back[task], units_of[task])
            else:
                assert told_cancelled[task] == 0 and task in refused, task
            picked = "with units" if picks_of.get(task) else "no units"
            outcome[f"{kind}: {s}, {picked}"] += 1
        assert sum(kind == "unknown" for _, kind in ops.cancelled) == 2
        assert len(ops.late_sent) == 2
        assert outcome["picking: cancelled, with units"] >= 1, outcome
        assert sum(n for k, n in outcome.items() if k.startswith("open: cancelled")) >= 1
        assert sum(t.withdrawn for t in run.told) >= 1, "no picker met a cancel"

        # Put-backs and counts (check_exactly_once tied each to its answer:
        # check_floor): the pickers put back what cancels left them, counted
        # the cloud's count tasks and the zero checks, right and wrong.
        g = f.floor
        assert g.returns >= 3 and g.counts >= 5, g
        assert g.recounts >= 1 and g.corrected >= 1 and g.empties >= 1 and g.zero_checks >= 1, g
        counted = {(t, loc) for t, loc in box.query("SELECT task, location FROM count_results")}
        for task in ops.counts_sent:
            (now,) = box.query(f"SELECT state FROM tasks WHERE task = '{task}'")[0]
            lines = {
                (task, loc)
                for (loc,) in box.query(f"SELECT location FROM task_lines WHERE task = '{task}'")
            }
            # a count task is done once every location of it is counted
            assert (now == "done") == (lines <= counted), (task, now, lines - counted)

        # Epoch changes: every planted conflict moved the box to a new epoch
        # (check_exactly_once counted the epochs), each raised its alert.
        conflicts = box.query("SELECT count(*) FROM alerts WHERE kind = 'sync_epoch_conflict'")
        assert conflicts[0][0] == len(ops.planted)
        assert len(ops.planted) >= 3, ops.planted

        # Backups: all of them passed check_backup (in the loop); while the
        # daemon ran and while it lay dead.
        assert len(ops.backups) >= KILLS, len(ops.backups)
        assert any(up for _, up, *_ in ops.backups) and not all(up for _, up, *_ in ops.backups)
        assert max(ep for *_, ep, _ in ops.backups) > 1, "no backup caught a later epoch"

        # Checkpoints: maintenance ticked in many runs, and checkpoints (its
        # own or SQLite's PASSIVE auto-checkpoint) wrote the file in more.
        assert ops.ticks >= KILLS // 5, ops.ticks
        assert ops.ticked_runs >= KILLS // 8, ops.ticked_runs
        assert ops.checkpointed_runs >= KILLS // 2, ops.checkpointed_runs

        # Latency: scans a live daemon answered at the first attempt.
        scans = [(t, ms) for p in run.pdas for path, t, ms in p.rtt_ms if path == "/api/v1/scan"]
        rtt = [ms for _, ms in scans]
        assert len(rtt) >= 1000, len(rtt)
        p50, p99, worst = statistics.median(rtt), percentile(rtt, 0.99), max(rtt)
        # with a backup process running (sent or answered inside its window) or not
        windows = sorted(ops.backup_windows)
        starts = [w[0] for w in windows]

        def beside_backup(sent: float, ms: float) -> bool:
            i = bisect.bisect_right(starts, sent + ms / 1000) - 1
            return i >= 0 and windows[i][1] >= sent

        during = [ms for t, ms in scans if beside_backup(t, ms)]
        apart = [ms for t, ms in scans if not beside_backup(t, ms)]
        assert len(during) >= 100 and len(apart) >= 100, (len(during), len(apart))
        # in flight when an epoch change committed (the daemon logs it right
        # after the move): no longer than any other (chunked moves)
        moves = epoch_moves(box.log)
        # (one the during_epoch_move crash point cut short is logged when the
        # next start finishes it, not by this line)
        assert 1 <= len(moves) <= len(ops.planted), moves
        wall = time.time() - time.perf_counter()

        def at_move(sent: float, ms: float) -> bool:
            return any(
                sent + wall <= ts and sent + wall + ms / 1000 >= ts - 0.05 for ts, _ in moves
            )

        waited = [ms for t, ms in scans if at_move(t, ms)]
        rest = [ms for t, ms in scans if not at_move(t, ms)]
        b = ops.server_buckets
        served = b["+Inf"]
        slow = served - b[str(SERVER_SLOW_S)]
        over_100 = served - b["0.1"]
        # the daemon's p99: the first bucket holding 99 % of the scans
        server_p99 = min(float(le) for le, n in b.items() if n >= 0.99 * served)

        print(summary("e2e kill loop with backups, cancels, epoch changes, checkpoints", run, f))
        backup_s = [took for took, *_ in ops.backups]
        print(
            f"ops: {len(ops.backups)} backups checked "
            f"({sum(up for _, up, *_ in ops.backups)} begun with the daemon up; "
            f"{statistics.median(backup_s):.2f} s median, {max(backup_s):.2f} s max); "
            f"{len(ops.cancelled)} cancels {dict(outcome)}, "
            f"{sum(t.withdrawn for t in run.told)} picker answers met a cancel; "
            f"{len(ops.planted)} epoch changes moving {sorted(n for _, n in moves)} events "
            f"(runs after a plant: {dict(ops.plant_runs)}); "
            f"runs {dict(ops.runs)}, {ops.ticks} maintenance ticks in {ops.ticked_runs} of them, "
            f"{ops.checkpointed_runs} with a checkpoint writing the database file; "
            f"{ops.invariant_checks} cancel/reservation checks on the killed file\n"
            f"scan round trip, live daemon, first attempt: {len(rtt)} scans, "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms "
            f"({len(during)} beside a backup: p50 {statistics.median(during):.1f}, "
            f"p99 {percentile(during, 0.99):.1f}, max {max(during):.1f} ms; "
            f"{len(apart)} with none: p50 {statistics.median(apart):.1f}, "
            f"p99 {percentile(apart, 0.99):.1f}, max {max(apart):.1f} ms; "
            f"{len(waited)} in flight at an epoch change: max {max(waited, default=0):.1f} ms, "
            f"the others max {max(rest):.1f} ms); "
            f"daemon's own scan time ({ops.scrapes} scrapes, {served} scans): "
            f"p99 <= {server_p99 * 1000:.0f} ms, {over_100} over 100 ms, "
            f"{slow} over {SERVER_SLOW_S * 1000:.0f} ms, "
            f"buckets {dict(sorted(b.items(), key=lambda kv: float(kv[0])))}"
        )
        check_the_loop_worked(run, f)
        assert p99 < 100, f"scan p99 {p99:.0f} ms"
        assert worst < RTT_MAX_MS, f"a scan took {worst:.0f} ms (p99 {p99:.0f} ms)"
        assert served >= 1000, served
        assert server_p99 <= 0.1, f"the daemon's scan p99 is over 100 ms: {dict(b)}"
