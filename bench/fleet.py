"""Fleet benchmark: simulated boxes syncing into receiver processes on one PostgreSQL.

    .venv/bin/python bench/fleet.py            # 200 boxes; 1, 2, 4 receivers; 20 s; median of 3
    .venv/bin/python bench/fleet.py --quick    # 20 boxes; 1, 2 receivers; 4 s; once

Each run gets a fresh database and ``--receivers``-many ``pickedge cloud-receiver``
processes sharing one sync port (``--reuse-port``: the kernel spreads
connections among them, as an L4 load balancer would), each with its own ops
port, ready when ``/readyz`` says so. Then ``--boxes`` lightweight sync-v1
boxes (asyncio, in ``--client-procs`` processes; :class:`SyncClient`: signed
requests, and every answer's signature verified — an unsigned answer is a
transport failure), each with its own epoch and one batch in flight, send
batches of 20–50 events flat out: ``stock_delta`` mostly, ``pick_confirmed``,
``alert`` (raised and cleared), ``shipment_confirmed`` and a type no receiver
knows. They follow sync-v1 (resend from acked + 1, back off with jitter on a
transport failure, 429 or 5xx) and inject faults:

- duplicates: an acked batch resent (answer 200 with the same mark);
- reordered retries: batch k+1 sent before k (409 gap, then k, then k+1);
- lost answers: an answer dropped as if it had timed out, and the batch resent
  from the last known ack with more events (the held part compared by digest);
- twins: one batch sent twice at once on two connections (often two receivers:
  the box row's lock serialises them).

Halfway through a run one receiver is killed with SIGKILL; with one receiver it
is restarted at once, with more the boxes carry on against the survivors.

Afterwards PostgreSQL itself is checked (PASS/FAIL lines; exit status 1 on any
FAIL): each box has one head, ``acked`` = its last seq; every (box, epoch, seq)
is in ``events`` exactly once with the bytes the box sent (a hash chain over the
bodies, and each digest); net stock per (box, sku, location) summed from the
stored ``stock_delta`` events and read from the reference OMS's ``oms_stock``
both equal what the boxes sent; the OMS's alert counters, shipments, cartons
and tasks match (a double apply would count twice); event counts per type
match; and no answer broke the protocol (a mark going back, a gap on the
normal path, a conflict, an echo of another batch, an unexpected status).

Figures per receiver count, medians over ``--repeat`` runs (rotated order):
events/s and batches/s in the steady window (after a warm-up, before the kill:
every receiver alive), and events/s over the whole run (kill and recovery
included); client-measured p50/p99 of a batch request (signed answers, any
status); PostgreSQL transactions per batch request (``pg_stat_database``
``xact_commit + xact_rollback`` of the run's database, before the receivers
start and after they have exited, since a backend flushes its counters lazily
but always at exit; divided by the batch requests answered), of which writing
(transaction ids used); with ``pg_stat_statements`` (preloaded in the throwaway
cluster) the statements a batch runs; the CPU the clients, the receivers and
PostgreSQL used; and how long the boxes took to be answered again after the
kill. The clients, the receivers and PostgreSQL share this machine's cores.

PostgreSQL: ``--db`` (a server where the user may CREATE DATABASE), else
``$PICKEDGE_TEST_PG``, else a throwaway cluster (tests/support/postgres.py,
``fsync`` on) that is removed at the end. Every process started here is
stopped and reaped, on failure and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import math
import os
import random
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402

_pack = msgpack.Packer(use_bin_type=True).pack

UNKNOWN_TYPE = "x_bench_note"
APP_NAME = "pickedge-cloud-receiver"  # the receivers' application_name
CLK_TCK = os.sysconf("SC_CLK_TCK")

# =========================================================================== the boxes
#
# This part runs in the client processes (``--client-worker SPEC``).


@dataclass
class ClientOptions:
    url: str
    boxes: list[tuple[int, str]]  # (index, secret)
    seed: int
    batch_min: int
    batch_max: int
    p_dup: float
    p_reorder: float
    p_lost: float
    p_twin: float
    think_ms: float
    timeout_s: float
    drain_s: float
    result_path: str


class Box:
    """One simulated box: an outbox of generated events, a send window from its
    last known ack, and what it expects the cloud to end up with."""

    SKUS = 12
    LOCATIONS = 8

    def __init__(self, index: int, secret: str, opts: ClientOptions) -> None:
        from cloud_sync.client import SyncClient

        self.index = index
        self.box = f"box-{index:03d}"
        self.secret = secret
        self.opts = opts
        self.rng = random.Random(opts.seed * 100_003 + index)
        self.epoch = f"fleet-{opts.seed}-{index:03d}-{self.rng.getrandbits(40):010x}"
        self.client = SyncClient(opts.url, self.box, secret, timeout_s=opts.timeout_s)
        #: unacked events: seq -> (seq, type, at, msgpack data)
        self.window: dict[int, tuple[int, str, int, bytes]] = {}
        self.generated = 0
        self.acked = 0
        #: the last batch a 200 acked: (first, last, body), for duplicate resends
        self.last_batch: tuple[int, int, bytes] | None = None
        self.chain = hashlib.sha256()
        self.stock: Counter[str] = Counter()  # "sku|location" -> net qty
        self.types: Counter[str] = Counter()
        self.alerts: Counter[str] = Counter()  # "kind|subject|state"
        self.shipments = 0
        self.cartons = 0
        self.tasks = 0
        self.violations: list[str] = []
        self.counts: Counter[str] = Counter()
        #: (start, seconds, status): status 0 = no answer, -1 = unsigned answer
        self.attempts: list[tuple[float, float, int]] = []
        #: (time, events newly acked)
        self.acks: list[tuple[float, int]] = []
        self.deadline = math.inf

    # ------------------------------------------------------------------ events

    def _event(self, seq: int) -> tuple[str, dict[str, Any]]:
        rng, box = self.rng, self.box
        sku = f"SKU-{rng.randrange(self.SKUS):03d}"
        loc = f"L{rng.randrange(self.LOCATIONS):02d}"
        r = rng.random()
        if r < 0.70:
            qty = rng.choice((-5, -4, -3, -2, -1, -1, -1, 1, 2, 3, 4, 5))
            self.stock[f"{sku}|{loc}"] += qty
            return "stock_delta", {
                "sku": sku,
                "location": loc,
                "qty": qty,
                "reason": "pick" if qty < 0 else "receive",
                "ref": f"T-{box}-{seq}" if qty < 0 else None,
                "lot": None,
            }
        if r < 0.82:
            self.tasks += 1
            return "pick_confirmed", {
                "task": f"T-{box}-{seq}",
                "order": f"O-{box}-{seq}",
                "line": "1",
                "sku": sku,
                "location": loc,
                "qty": rng.randint(1, 4),
                "picker": f"p{rng.randrange(20)}",
                "codes": [f"0104000000{seq % 10**6:06d}"],
            }
        if r < 0.90:
            kind = rng.choice(("low_stock", "reader_offline", "printer_jam"))
            subject = f"S{rng.randrange(4)}"
            state = rng.choice(("raised", "cleared"))
            self.alerts[f"{kind}|{subject}|{state}"] += 1
            return "alert", {
                "kind": kind,
                "severity": rng.choice(("info", "warn", "crit")),
                "subject": subject,
                "detail": {"seq": seq},
                "state": state,
            }
        if r < 0.95:
            self.shipments += 1
            n = rng.randint(1, 3)
            self.cartons += n
            return "shipment_confirmed", {
                "shipment": f"SH-{box}-{seq}",
                "orders": [f"O-{box}-{seq}"],
                "cartons": [
                    {
                        "sscc": f"3{self.index:03d}{seq:010d}{c:04d}",
                        "lines": [{"sku": sku, "qty": rng.randint(1, 9)}],
                    }
                    for c in range(n)
                ],
                "by": f"p{rng.randrange(20)}",
            }
        return UNKNOWN_TYPE, {"note": "a type this cloud does not know", "n": seq}

    def generate(self, n: int) -> None:
        """Append ``n`` events to the outbox (and to what the cloud must hold)."""
        at = int(time.time() * 1000)
        for _ in range(n):
            seq = self.generated + 1
            type_, data = self._event(seq)
            payload = _pack(data)
            self.window[seq] = (seq, type_, at, payload)
            # what the receiver stores: msgpack of (type, at, data) as received
            body = b"\x93" + _pack(type_) + _pack(at) + payload
            self.chain.update(struct.pack(">QI", seq, len(body)) + body)
            self.types[type_] += 1
            self.generated = seq

    def body(self, first: int, last: int) -> bytes:
        from cloud_sync.codec import encode_batch_raw

        return encode_batch_raw(
            self.box, self.epoch, [self.window[s] for s in range(first, last + 1)]
        )

    # ------------------------------------------------------------------ protocol

    def violation(self, text: str) -> None:
        self.violations.append(f"{self.box}: {text}")

    async def post(self, first: int, last: int, body: bytes, client: Any = None) -> tuple[int, Any]:
        """One request; (status, doc); status 0 when nothing (or nothing signed) came back."""
        from cloud_sync.client import CloudUnreachableError
        from cloud_sync.codec import answer_echo

        started = time.monotonic()
        try:
            reply = await (client or self.client).post_batch(body)
        except CloudUnreachableError:
            self.attempts.append((started, time.monotonic() - started, 0))
            self.counts["no answer"] += 1
            return 0, None
        self.attempts.append((started, time.monotonic() - started, reply.status))
        if reply.status == 500:  # retried like any 5xx, but a receiver failed: reported
            self.counts["answer 500"] += 1
        if not reply.signed:  # a proxy's, or forged: a transport failure (sync-v1)
            self.counts["unsigned answer"] += 1
            return -1, None
        if reply.status in (200, 409):
            echo = answer_echo(reply.doc)
            if echo is None or (echo.epoch, echo.first, echo.last) != (self.epoch, first, last):
                self.violation(f"answer {reply.status} echoes {echo}, not {first}..{last}")
                return -1, None
        return reply.status, reply.doc

    def take_ack(self, doc: Any) -> bool:
        acked = doc.get("acked") if isinstance(doc, dict) else None
        if not isinstance(acked, int):
            self.violation(f"an answer without an acked mark: {doc!r}")
            return False
        if acked < self.acked:
            self.violation(f"the mark went back from {self.acked} to {acked}")
            return False
        if acked > self.generated:
            self.violation(f"acked {acked}, but only {self.generated} were sent")
            return False
        if acked > self.acked:
            self.acks.append((time.monotonic(), acked - self.acked))
            for seq in range(self.acked + 1, acked + 1):
                del self.window[seq]
            self.acked = acked
        return True

    async def backoff(self, failures: int) -> None:
        await asyncio_sleep(min(1.0, 0.05 * 2 ** min(failures, 5)) * self.rng.uniform(0.5, 1.0))

    async def deliver(self, last: int) -> bool:
        """Send from the last ack through ``last`` until acked, per sync-v1."""
        failures = 0
        while self.acked < last:
            if time.monotonic() > self.deadline:
                self.violation(f"{last - self.acked} events still unacked at the deadline")
                return False
            first = self.acked + 1
            body = self.body(first, last)
            status, doc = await self.post(first, last, body)
            if status == 200:
                if not self.take_ack(doc):
                    return False
                if self.acked < last:
                    self.violation(f"200 to {first}..{last} acked only {self.acked}")
                    return False
                self.last_batch = (first, last, body)
                return True
            if status == 409:
                code = (doc.get("error") or {}).get("code") if isinstance(doc, dict) else None
                # this box sends from its last ack: a gap means the cloud lost acked events
                self.violation(f"409 {code or 'gap'} to {first}..{last} (acked {doc.get('acked')})")
                return False
            if status in (0, -1, 429) or status >= 500:
                self.counts[f"retried {status or 'no answer'}"] += 1
                failures += 1
                await self.backoff(failures)
                continue
            self.violation(f"unexpected {status} to {first}..{last}: {doc!r}")
            return False
        return True

    def size(self) -> int:
        return self.rng.randint(self.opts.batch_min, self.opts.batch_max)

    async def run(self, stop_at: float) -> None:
        o = self.opts
        self.deadline = stop_at + o.drain_s
        try:
            while time.monotonic() < stop_at and not self.violations:
                r = self.rng.random()
                if r < o.p_reorder:
                    ok = await self._reordered()
                elif r < o.p_reorder + o.p_lost:
                    ok = await self._lost_answer()
                elif r < o.p_reorder + o.p_lost + o.p_twin:
                    ok = await self._twins()
                else:
                    self.generate(self.size())
                    ok = await self.deliver(self.generated)
                if not ok:
                    break
                if self.last_batch is not None and self.rng.random() < o.p_dup:
                    await self._duplicate()
                if o.think_ms > 0:
                    await asyncio_sleep(self.rng.expovariate(1000.0 / o.think_ms))
        finally:
            await self.client.close()

    async def _reordered(self) -> bool:
        """k+1 before k: 409 with the mark, then k, then k+1."""
        self.generate(self.size())
        k_last = self.generated
        self.generate(self.size())
        status, doc = await self.post(
            k_last + 1, self.generated, self.body(k_last + 1, self.generated)
        )
        if status == 409:
            if doc.get("acked") != self.acked or "error" in doc:
                self.violation(f"k+1 before k: 409 {doc!r}, expected a gap at {self.acked}")
                return False
            self.counts["reordered: 409 gap"] += 1
        elif refused(status):
            self.violation(f"k+1 before k answered {status} {doc!r}")
            return False
        return await self.deliver(k_last) and await self.deliver(self.generated)

    async def _lost_answer(self) -> bool:
        """A batch whose answer is dropped, resent from the last known ack with more."""
        self.generate(self.size())
        status, _ = await self.post(
            self.acked + 1, self.generated, self.body(self.acked + 1, self.generated)
        )
        if status == 200:
            self.counts["lost answer: applied, resent"] += 1
        self.generate(self.size())
        return await self.deliver(self.generated)

    async def _twins(self) -> bool:
        """The same batch at once on this box's connection and on a new one."""
        import asyncio

        from cloud_sync.client import SyncClient

        self.generate(self.size())
        first, last = self.acked + 1, self.generated
        body = self.body(first, last)
        twin = SyncClient(self.opts.url, self.box, self.secret, timeout_s=self.opts.timeout_s)
        try:
            answers = await asyncio.gather(
                self.post(first, last, body), self.post(first, last, body, twin)
            )
        finally:
            await twin.close()
        for status, doc in answers:
            if status == 200:
                if not self.take_ack(doc) or self.acked < last:
                    self.violation(f"twin 200 to {first}..{last} acked {doc!r}")
                    return False
                self.counts["twins: 200"] += 1
            elif refused(status):
                self.violation(f"twin answered {status} {doc!r}")
                return False
        if self.acked >= last:
            self.last_batch = (first, last, body)
        return await self.deliver(last)

    async def _duplicate(self) -> None:
        assert self.last_batch is not None
        first, last, body = self.last_batch
        status, doc = await self.post(first, last, body)
        if status == 200:
            if doc.get("acked") != self.acked:
                self.violation(f"duplicate {first}..{last}: acked {doc!r}, expected {self.acked}")
            self.counts["duplicate: 200"] += 1
        elif refused(status):
            self.violation(f"duplicate {first}..{last} answered {status} {doc!r}")

    def result(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "box": self.box,
            "epoch": self.epoch,
            "generated": self.generated,
            "acked": self.acked,
            "chain": self.chain.hexdigest(),
            "stock": dict(self.stock),
            "types": dict(self.types),
            "alerts": dict(self.alerts),
            "shipments": self.shipments,
            "cartons": self.cartons,
            "tasks": self.tasks,
            "violations": self.violations,
            "counts": dict(self.counts),
            "attempts": self.attempts,
            "acks": self.acks,
        }


def refused(status: int) -> bool:
    """A signed answer that is neither a success nor one to retry (429, 5xx)."""
    return status > 0 and status != 429 and status < 500


async def asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def client_worker(spec_path: str) -> None:
    """A client process: build the boxes, say ``ready``, wait for ``go STOP_AT``
    on stdin, run every box until STOP_AT (then finish what is in flight), and
    write the results as JSON to the spec's result path."""
    import asyncio

    opts = ClientOptions(**json.loads(Path(spec_path).read_text()))
    opts.boxes = [(int(i), str(s)) for i, s in opts.boxes]
    boxes = [Box(i, secret, opts) for i, secret in opts.boxes]
    print("ready", flush=True)
    line = sys.stdin.readline().split()
    if not line or line[0] != "go":
        return
    stop_at = float(line[1])
    cpu0 = time.process_time()

    async def everything() -> None:
        await asyncio.gather(*(b.run(stop_at) for b in boxes))

    asyncio.run(everything())
    result = {"cpu_s": time.process_time() - cpu0, "boxes": [b.result() for b in boxes]}
    Path(opts.result_path).write_text(json.dumps(result))


# =========================================================================== processes


def _die_with_parent() -> None:
    """``preexec_fn``: SIGTERM when the bench dies, so nothing outlives a SIGKILLed run."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()


def proc_cpu_s(pid: int, *, children: bool = False) -> float:
    """utime + stime of a live process (and of its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def postgres_cpu_s(postmaster: int | None) -> float | None:
    """CPU of the postmaster, its live children and every child it reaped."""
    if postmaster is None:
        return None
    total = proc_cpu_s(postmaster, children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def receiver_command() -> list[str]:
    script = Path(sys.executable).with_name("pickedge")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from edge.cli import main; sys.exit(main())"]


class Receivers:
    """``pickedge cloud-receiver`` processes sharing one sync port."""

    def __init__(self, db_url: str, secrets: Path, logs: Path, threads: int) -> None:
        from tests.support.postgres import free_port

        self.db_url = db_url
        self.secrets = secrets
        self.logs = logs
        self.threads = threads
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dead: list[subprocess.Popen[bytes]] = []
        #: CPU seconds of receivers that are gone (read just before they went)
        self.cpu_gone = 0.0
        self._files: list[IO[bytes]] = []
        self._started = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, n: int) -> None:
        from tests.support.postgres import free_port

        pending = []
        for _ in range(n):
            self._started += 1
            ops = free_port()
            log = (self.logs / f"receiver-{self._started}.log").open("ab")
            self._files.append(log)
            proc = subprocess.Popen(
                [
                    *receiver_command(),
                    "cloud-receiver",
                    *("--db", self.db_url, "--secrets", str(self.secrets)),
                    *("--listen", f"127.0.0.1:{self.port}", "--ops-listen", f"127.0.0.1:{ops}"),
                    *("--threads", str(self.threads), "--reuse-port"),
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the bench, which stops them in order
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only
            )
            self.procs.append(proc)
            pending.append((proc, ops))
        for proc, ops in pending:
            self._wait_ready(proc, ops)

    def _wait_ready(self, proc: subprocess.Popen[bytes], ops: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"a receiver exited with {proc.returncode}:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://127.0.0.1:{ops}/readyz", timeout=2) as resp,
            ):
                if resp.status == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"a receiver was not ready in {timeout_s:.0f} s")
            time.sleep(0.05)

    def cpu_s(self) -> float:
        return self.cpu_gone + sum(proc_cpu_s(p.pid) for p in self.procs)

    def kill_one(self) -> None:
        proc = self.procs.pop(0)
        self.cpu_gone += proc_cpu_s(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.dead.append(proc)

    def stop(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            self.cpu_gone += proc_cpu_s(proc.pid)
            _stop(proc)
            self.dead.append(proc)
        for f in self._files:
            f.close()
        self._files.clear()

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for path in sorted(self.logs.glob("receiver-*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)


# =========================================================================== PostgreSQL


@dataclass
class PgCounters:
    xacts: int  # xact_commit + xact_rollback of the run's database
    xid: int  # the cluster's next transaction id
    statements: dict[str, int] | None  # pg_stat_statements calls by query, run's database


def pg_counters(admin: Any, dbname: str, statements: bool) -> PgCounters:
    admin.execute("SELECT pg_stat_clear_snapshot()")
    row = admin.execute(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (dbname,)
    ).fetchone()
    xid = admin.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    calls = None
    if statements:
        calls = {
            str(q): int(c)
            for q, c in admin.execute(
                "SELECT query, sum(calls) FROM pg_stat_statements s"
                " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s GROUP BY query",
                (dbname,),
            )
        }
    return PgCounters(int(row[0]) if row else 0, int(xid[0]) if xid else 0, calls)


def wait_backends_gone(admin: Any, dbname: str, timeout_s: float = 15.0) -> None:
    """Until the receivers' backends have exited: each flushes its statistics then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (dbname, APP_NAME),
        ).fetchone()
        if row is not None and row[0] == 0:
            break
        time.sleep(0.05)
    previous = None
    for _ in range(20):  # and the counters have settled
        admin.execute("SELECT pg_stat_clear_snapshot()")
        row = admin.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (dbname,),
        ).fetchone()
        if row == previous:
            return
        previous = row
        time.sleep(0.2)


# =========================================================================== verification


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def verify(db_url: str, boxes: list[dict[str, Any]]) -> list[Check]:
    """What PostgreSQL holds, against what the boxes sent."""
    import psycopg

    checks: list[Check] = []

    def check(name: str, problems: list[str], good: str) -> None:
        detail = good if not problems else f"{len(problems)} problem(s): " + "; ".join(problems[:5])
        checks.append(Check(name, not problems, detail))

    expected = {b["box"]: b for b in boxes}
    with psycopg.connect(db_url, autocommit=True) as conn:
        problems = [v for b in boxes for v in b["violations"]]
        problems += [
            f"{b['box']}: acked {b['acked']} of {b['generated']}"
            for b in boxes
            if b["acked"] != b["generated"]
        ]
        problems += [
            f"{b['box']}: {b['counts']['answer 500']} answers 500 (internal error)"
            for b in boxes
            if b["counts"].get("answer 500")
        ]
        check(
            "answers",
            problems,
            "every answer signed, echoed, in order, none 500; every event acked",
        )

        heads: dict[str, list[tuple[str, int]]] = {}
        for box, epoch, acked in conn.execute("SELECT box, epoch, acked FROM heads"):
            heads.setdefault(box, []).append((epoch, int(acked)))
        problems = [f"unexpected box {b}" for b in heads if b not in expected]
        for b in boxes:
            want = [(b["epoch"], b["generated"])]
            if heads.get(b["box"]) != want:
                problems.append(f"{b['box']}: heads {heads.get(b['box'])}, expected {want}")
        check("heads", problems, "every box has one head, acked = the last seq it sent")

        problems = []
        groups = conn.execute(
            "SELECT box, epoch, count(*), min(seq), max(seq) FROM events GROUP BY box, epoch"
        ).fetchall()
        seen = set()
        for box, epoch, count, lo, hi in groups:
            b = expected.get(box)
            seen.add(box)
            if b is None or epoch != b["epoch"]:
                problems.append(f"unexpected ({box}, {epoch}): {count} events")
            elif (int(count), int(lo), int(hi)) != (b["generated"], 1, b["generated"]):
                problems.append(f"{box}: {count} events, seqs {lo}..{hi}, sent 1..{b['generated']}")
        problems += [
            f"{b}: no events" for b in expected if b not in seen and expected[b]["generated"]
        ]
        check(
            "exactly once",
            problems,
            "every (box, epoch, seq) 1..last sent is present once, none other",
        )

        content: list[str] = []
        stock: list[str] = []
        types: list[str] = []
        for b in boxes:
            chain = hashlib.sha256()
            net: Counter[str] = Counter()
            kinds: Counter[str] = Counter()
            bad_digest = 0
            for seq, type_, digest, stored in conn.execute(
                "SELECT seq, type, digest, body FROM events WHERE box = %s AND epoch = %s"
                " ORDER BY seq",
                (b["box"], b["epoch"]),
            ):
                body = bytes(stored)
                chain.update(struct.pack(">QI", int(seq), len(body)) + body)
                if bytes(digest) != hashlib.sha256(body).digest()[:16]:
                    bad_digest += 1
                kinds[type_] += 1
                if type_ == "stock_delta":
                    stored_type, _, data = msgpack.unpackb(body, raw=False)
                    if stored_type != type_:
                        content.append(f"{b['box']} seq {seq}: type {type_} but body {stored_type}")
                    net[f"{data['sku']}|{data['location']}"] += int(data["qty"])
            if chain.hexdigest() != b["chain"]:
                content.append(f"{b['box']}: stored bodies differ from those sent")
            if bad_digest:
                content.append(f"{b['box']}: {bad_digest} digests do not match their bodies")
            if +net != +Counter(b["stock"]):
                stock.append(f"{b['box']}: events table net stock differs")
            if dict(kinds) != b["types"]:
                types.append(f"{b['box']}: types {dict(kinds)}, sent {b['types']}")
        check("content", content, "every stored body and digest is the one the box sent")
        check("types", types, "event counts per type as sent, the unknown type stored too")

        oms: dict[str, Counter[str]] = {}
        for box, sku, loc, qty in conn.execute("SELECT box, sku, location, qty FROM oms_stock"):
            oms.setdefault(box, Counter())[f"{sku}|{loc}"] = int(qty)
        for b in boxes:
            if +oms.get(b["box"], Counter()) != +Counter(b["stock"]):
                stock.append(f"{b['box']}: oms_stock differs from the deltas sent")
        check(
            "net stock",
            stock,
            "per (box, sku, location), summed from events and in oms_stock: what the boxes sent",
        )

        problems = []
        alerts: dict[str, Counter[str]] = {}
        for box, kind, subject, raised, cleared in conn.execute(
            "SELECT box, kind, subject, raised, cleared FROM oms_alerts"
        ):
            c = alerts.setdefault(box, Counter())
            c[f"{kind}|{subject}|raised"] = int(raised)
            c[f"{kind}|{subject}|cleared"] = int(cleared)
        per_box = {
            sql: dict(conn.execute(f"SELECT box, count(*) FROM {sql} GROUP BY box").fetchall())
            for sql in ("oms_shipments", "oms_cartons", "oms_tasks")
        }
        for b in boxes:
            if +alerts.get(b["box"], Counter()) != +Counter(b["alerts"]):
                problems.append(f"{b['box']}: alert counters differ")
            for table, key in (
                ("oms_shipments", "shipments"),
                ("oms_cartons", "cartons"),
                ("oms_tasks", "tasks"),
            ):
                if int(per_box[table].get(b["box"], 0)) != b[key]:
                    problems.append(
                        f"{b['box']}: {table} {per_box[table].get(b['box'], 0)}, sent {b[key]}"
                    )
        check("oms", problems, "alert raised/cleared counters, shipments, cartons, tasks as sent")
    return checks


# =========================================================================== one run


@dataclass
class Run:
    receivers: int
    rep: int
    steady_s: float = 0.0
    steady_events_per_s: float = 0.0
    steady_batches_per_s: float = 0.0
    whole_events_per_s: float = 0.0
    whole_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    events: int = 0
    requests: int = 0
    answered: int = 0
    tx_per_batch: float | None = None
    write_tx_per_batch: float | None = None
    statements_per_batch: float | None = None
    statements: dict[str, float] = field(default_factory=dict)
    cpu_pct: dict[str, float | None] = field(default_factory=dict)
    recovery_s: float | None = None
    restart_s: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def run_once(
    server: Any, cluster_pid: int | None, n: int, rep: int, args: argparse.Namespace
) -> Run:
    run = Run(n, rep)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pickedge-fleet-")))
        db_url = stack.enter_context(server.database("pickedge_fleet"))
        dbname = db_url.rsplit("/", 1)[1].split("?")[0]
        admin = stack.enter_context(server.connect())
        secrets = tmp / "secrets"
        secrets.mkdir(mode=0o700)
        box_secrets = []
        for i in range(args.boxes):
            secret = os.urandom(24).hex()
            path = secrets / f"box-{i:03d}"
            path.write_text(secret + "\n")
            path.chmod(0o600)
            box_secrets.append((i, secret))
        statements = args.statements_ok
        before = pg_counters(admin, dbname, statements)
        receivers = Receivers(db_url, secrets, tmp, args.threads)
        stack.callback(receivers.stop)
        receivers.start(n)

        # the clients: box i goes to process i % client_procs
        workers: list[tuple[subprocess.Popen[str], Path]] = []
        for w in range(args.client_procs):
            result_path = tmp / f"clients-{w}.json"
            spec = ClientOptions(
                url=receivers.url,
                boxes=[b for b in box_secrets if b[0] % args.client_procs == w],
                seed=args.seed + rep * 1000 + n,
                batch_min=args.batch_min,
                batch_max=args.batch_max,
                p_dup=args.p_dup,
                p_reorder=args.p_reorder,
                p_lost=args.p_lost,
                p_twin=args.p_twin,
                think_ms=args.think_ms,
                timeout_s=args.timeout_s,
                drain_s=args.drain_s,
                result_path=str(result_path),
            )
            spec_path = tmp / f"clients-{w}.spec.json"
            spec_path.write_text(json.dumps(spec.__dict__))
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--client-worker", str(spec_path)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl only
            )
            stack.callback(_stop, proc)
            workers.append((proc, result_path))
        for proc, _ in workers:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            if not ready or proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a client process did not start")

        if statements:
            admin.execute("SELECT pg_stat_statements_reset()")
        pg0, rcv0 = postgres_cpu_s(cluster_pid), receivers.cpu_s()
        t0 = time.monotonic()
        stop_at = t0 + args.seconds
        kill_at = t0 + args.seconds * args.kill_at
        for proc, _ in workers:
            assert proc.stdin is not None
            proc.stdin.write(f"go {stop_at}\n")
            proc.stdin.close()
        time.sleep(max(0.0, kill_at - time.monotonic()))
        kill_t = time.monotonic()
        receivers.kill_one()
        if n == 1:  # nobody left: restart it, as a service manager would
            receivers.start(1)
            run.restart_s = time.monotonic() - kill_t
        for proc, _ in workers:
            try:
                proc.wait(args.seconds + args.drain_s + 60)
            except subprocess.TimeoutExpired:
                raise RuntimeError("the clients did not finish") from None
            if proc.returncode != 0:
                raise RuntimeError(f"a client process failed ({proc.returncode})")
        t_end = time.monotonic()
        pg1 = postgres_cpu_s(cluster_pid)
        receivers.stop()
        rcv1 = receivers.cpu_s()
        wait_backends_gone(admin, dbname)
        after = pg_counters(admin, dbname, statements)

        results = [json.loads(p.read_text()) for _, p in workers]
        boxes = sorted((b for r in results for b in r["boxes"]), key=lambda b: b["index"])
        client_cpu = sum(r["cpu_s"] for r in results)
        run.checks = verify(db_url, boxes)
        if not all(c.ok for c in run.checks):
            print(receivers.log_tail(), file=sys.stderr)

    # ------------------------------------------------------------------ figures
    attempts = [a for b in boxes for a in b["attempts"]]
    acks = [a for b in boxes for a in b["acks"]]
    warm = min(args.warmup_s, (kill_t - t0) / 3)
    lo, hi = t0 + warm, kill_t
    run.steady_s = hi - lo
    run.steady_events_per_s = sum(k for t, k in acks if lo <= t < hi) / run.steady_s
    answered = [(s, d, st) for s, d, st in attempts if st > 0]
    run.steady_batches_per_s = sum(1 for s, d, _ in answered if lo <= s + d < hi) / run.steady_s
    steady_lat = [d * 1000 for s, d, _ in answered if lo <= s and s + d < hi]
    run.p50_ms, run.p99_ms = pct(steady_lat, 0.50), pct(steady_lat, 0.99)
    run.events = sum(b["generated"] for b in boxes)
    last_ack = max((t for t, _ in acks), default=t_end)
    run.whole_s = last_ack - t0
    run.whole_events_per_s = run.events / run.whole_s
    run.requests, run.answered = len(attempts), len(answered)
    if run.answered:
        run.tx_per_batch = (after.xacts - before.xacts) / run.answered
        # pg_current_xact_id() itself takes one id per call
        run.write_tx_per_batch = (after.xid - before.xid - 1) / run.answered
        if after.statements is not None:
            run.statements = {
                q: c / run.answered for q, c in after.statements.items() if "pg_stat" not in q
            }
            run.statements_per_batch = sum(run.statements.values())
    wall = t_end - t0
    run.cpu_pct = {
        "clients": 100 * client_cpu / wall,
        "receivers": 100 * (rcv1 - rcv0) / wall,
        "postgres": None if pg0 is None or pg1 is None else 100 * (pg1 - pg0) / wall,
    }
    # per box: from the kill to its first signed answer after a failed attempt
    waits = []
    for b in boxes:
        failed = [s + d for s, d, st in b["attempts"] if st <= 0 and s + d >= kill_t]
        if failed:
            back = [s + d for s, d, st in b["attempts"] if st > 0 and s + d > failed[0]]
            if back:
                waits.append(min(back) - kill_t)
    run.recovery_s = max(waits) if waits else 0.0
    counts: Counter[str] = Counter()
    for b in boxes:
        counts.update(b["counts"])
    counts["requests"] = run.requests
    run.counts = dict(counts)
    return run


# =========================================================================== report


def fmt(value: float | None, spec: str = ",.0f") -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def row(run: Run) -> str:
    cpu = run.cpu_pct
    ok = sum(c.ok for c in run.checks)
    return (
        f"{run.receivers} receiver(s): {fmt(run.steady_events_per_s)} events/s,"
        f" {fmt(run.steady_batches_per_s)} batches/s steady;"
        f" p50 {fmt(run.p50_ms, '.0f')} p99 {fmt(run.p99_ms, '.0f')} ms;"
        f" whole run {fmt(run.whole_events_per_s)} events/s"
        f" ({run.events:,} in {run.whole_s:.1f} s);"
        f" tx/batch {fmt(run.tx_per_batch, '.2f')};"
        f" CPU clients {fmt(cpu['clients'])} % receivers {fmt(cpu['receivers'])} %"
        f" postgres {fmt(cpu['postgres'])} %;"
        f" answered again {fmt(run.recovery_s, '.1f')} s after the kill"
        + (f" (restart {run.restart_s:.1f} s)" if run.restart_s is not None else "")
        + f"; checks {ok}/{len(run.checks)} PASS"
    )


def med(runs: list[Run], key: str) -> float | None:
    values = [getattr(r, key) for r in runs if getattr(r, key) is not None]
    return statistics.median(values) if values else None


def report(runs: list[Run], args: argparse.Namespace, pg_version: str) -> bool:
    counts = sorted({r.receivers for r in runs})
    by = {n: [r for r in runs if r.receivers == n] for n in counts}
    print(
        f"\nmedians of {args.repeat} run(s) of {args.seconds:g} s per receiver count;"
        f" {args.boxes} boxes in {args.client_procs} client process(es), one batch in flight"
        f" each, {args.batch_min}–{args.batch_max} events a batch"
        + (f", {args.think_ms:g} ms think" if args.think_ms else ", flat out")
    )
    print(
        f"clients, receivers and PostgreSQL {pg_version} share this machine's"
        f" {os.cpu_count()} cores (load {os.getloadavg()[0]:.1f} now)\n"
    )
    header = (
        f"{'receivers':>9} {'events/s':>9} {'batches/s':>9} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'whole ev/s':>10} {'tx/batch':>8} {'write tx':>8} {'stmts':>6}"
        f" {'CPU % clients/receivers/postgres':>32} {'back after kill':>15}"
    )
    print(header)
    print("-" * len(header))
    for n in counts:
        rs = by[n]
        cpu_parts = []
        for key in ("clients", "receivers", "postgres"):
            values = [v for r in rs if (v := r.cpu_pct[key]) is not None]
            cpu_parts.append(fmt(statistics.median(values) if values else None))
        cpu = "/".join(cpu_parts)
        print(
            f"{n:>9} {fmt(med(rs, 'steady_events_per_s')):>9}"
            f" {fmt(med(rs, 'steady_batches_per_s')):>9}"
            f" {fmt(med(rs, 'p50_ms')):>7} {fmt(med(rs, 'p99_ms')):>7}"
            f" {fmt(med(rs, 'whole_events_per_s')):>10} {fmt(med(rs, 'tx_per_batch'), '.2f'):>8}"
            f" {fmt(med(rs, 'write_tx_per_batch'), '.2f'):>8}"
            f" {fmt(med(rs, 'statements_per_batch'), '.1f'):>6}"
            f" {cpu:>32} {fmt(med(rs, 'recovery_s'), '.1f') + ' s':>15}"
        )
    base = med(by[counts[0]], "steady_events_per_s") if counts else None
    for n in counts[1:]:
        value = med(by[n], "steady_events_per_s")
        if base and value:
            print(
                f"scaling {counts[0]} → {n} receiver processes:"
                f" × {value / base:.2f} events/s (steady)"
            )
    print(
        "\nsteady: after a warm-up, before the kill (every receiver alive); whole run: to the"
        " last ack, the kill\n(and with one receiver its restart) included. Latency: one"
        " batch request, client-measured, signed\nanswers of any status. tx/batch:"
        " pg_stat_database xact_commit + xact_rollback of the run's database\n(receivers'"
        " start-up included: migrations, readiness probes) / batch requests answered; write tx:"
        "\ntransaction ids used (the cluster's) / batch requests answered."
    )
    last = runs[-1]
    if last.statements:
        top = sorted(last.statements.items(), key=lambda kv: -kv[1])[:12]
        print(
            f"\nstatements per batch request ({last.receivers} receiver(s), last run;"
            " pg_stat_statements):"
        )
        for q, c in top:
            print(f"  {c:6.2f}  {' '.join(q.split())[:100]}")
    mix = Counter[str]()
    for r in runs:
        mix.update(r.counts)
    print(
        "\nrequests and injected faults, all runs: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(mix.items()))
    )
    print()
    ok = True
    scope = (
        f"{len(runs)} run(s), {sum(r.events for r in runs):,} events in all,"
        " one receiver killed -9 in each"
    )
    names = list(dict.fromkeys(c.name for r in runs for c in r.checks))
    for name in names:
        failed = [(r, c) for r in runs for c in r.checks if c.name == name and not c.ok]
        if failed:
            ok = False
            for r, c in failed:
                print(f"FAIL {name} ({r.receivers} receiver(s), run {r.rep + 1}): {c.detail}")
        else:
            detail = next(c.detail for r in runs for c in r.checks if c.name == name)
            print(f"PASS {name} ({scope}): {detail}")
    return ok


# =========================================================================== main


def code_state() -> str:
    """The commit, and whether the receiver's code differs from it (others edit the tree)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "cloud_sync", "edge/cli/cloud_receiver.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n")
    except OSError:
        return "commit unknown"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"commit {head or '?'}" + (f", uncommitted: {', '.join(changed)}" if changed else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, default=200)
    ap.add_argument(
        "--receivers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 4],
        help="receiver process counts, comma-separated (default 1,2,4)",
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="sending time of a run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per receiver count (medians)")
    ap.add_argument("--quick", action="store_true", help="20 boxes, 1 and 2 receivers, 4 s, once")
    ap.add_argument("--client-procs", type=int, default=1, help="client processes")
    ap.add_argument("--threads", type=int, default=8, help="--threads of each receiver")
    ap.add_argument("--batch-min", type=int, default=20)
    ap.add_argument("--batch-max", type=int, default=50)
    ap.add_argument("--p-dup", type=float, default=0.05, help="acked batch resent")
    ap.add_argument("--p-reorder", type=float, default=0.04, help="k+1 sent before k")
    ap.add_argument("--p-lost", type=float, default=0.04, help="answer lost, batch resent")
    ap.add_argument("--p-twin", type=float, default=0.02, help="batch sent twice at once")
    ap.add_argument("--think-ms", type=float, default=0.0, help="mean pause between batches")
    ap.add_argument("--timeout-s", type=float, default=10.0, help="client request timeout")
    ap.add_argument("--kill-at", type=float, default=0.5, help="kill one receiver at this share")
    ap.add_argument("--warmup-s", type=float, default=2.0, help="not counted in the steady rate")
    ap.add_argument("--drain-s", type=float, default=60.0, help="after the sending time")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--db",
        help="a PostgreSQL server (URL or conninfo) where the user may CREATE DATABASE;"
        " default $PICKEDGE_TEST_PG, else a throwaway cluster",
    )
    ap.add_argument(
        "--no-statements",
        action="store_true",
        help="no pg_stat_statements in the throwaway cluster (it costs a little)",
    )
    ap.add_argument("--json", action="store_true", help="also print the runs as JSON at the end")
    ap.add_argument("--client-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client_worker:
        client_worker(args.client_worker)
        return
    if args.quick:
        args.boxes, args.seconds, args.repeat = min(args.boxes, 20), 4.0, 1
        args.receivers = [1, 2]
        args.warmup_s, args.drain_s = 0.5, 30.0

    from tests.support.postgres import (
        ENV_VAR,
        PostgresServer,
        PostgresUnavailable,
        ThrowawayCluster,
        terminate_raises_keyboard_interrupt,
    )

    runs: list[Run] = []
    with terminate_raises_keyboard_interrupt(), contextlib.ExitStack() as stack:
        conninfo = args.db or os.environ.get(ENV_VAR, "").strip()
        cluster_pid = None
        if conninfo:
            server = PostgresServer.from_conninfo(conninfo)
            where = "the given server"
        else:
            settings = {"max_connections": "200"}
            if not args.no_statements:
                settings["shared_preload_libraries"] = "pg_stat_statements"
            cluster = ThrowawayCluster(shared_buffers="128MB", settings=settings)
            try:
                server = stack.enter_context(cluster)
            except PostgresUnavailable as exc:
                sys.exit(f"fleet: {exc}")
            cluster_pid = cluster.pid
            where = "a throwaway cluster (fsync on)"
        with server.connect() as admin:
            pg_version = str(admin.execute("SHOW server_version").fetchone()[0]).split()[0]
            args.statements_ok = False
            with contextlib.suppress(Exception):
                admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                admin.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
                args.statements_ok = True
        print(
            f"PickEdge fleet benchmark — {os.cpu_count()} CPUs, Python {sys.version.split()[0]},"
            f" PostgreSQL {pg_version} ({where}), load {os.getloadavg()[0]:.1f} at start"
        )
        print(
            f"{args.boxes} boxes; receivers {', '.join(map(str, args.receivers))};"
            f" {args.seconds:g} s a run, one receiver killed -9 at {args.kill_at:.0%}"
            f" (restarted when it was the only one); {args.repeat} run(s) each; {code_state()}\n",
            flush=True,
        )
        for rep in range(args.repeat):
            k = rep % len(args.receivers)
            for n in args.receivers[k:] + args.receivers[:k]:
                run = run_once(server, cluster_pid, n, rep, args)
                runs.append(run)
                print(f"  [{rep + 1}/{args.repeat}] {row(run)}", flush=True)
                for c in run.checks:
                    if not c.ok:
                        print(f"    FAIL {c.name}: {c.detail}", flush=True)
    ok = report(runs, args, pg_version)
    if args.json:
        print(json.dumps([{**r.__dict__, "checks": [c.__dict__ for c in r.checks]} for r in runs]))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
