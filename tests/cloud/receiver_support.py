"""What the receiver's proof tests share: the real service on loopback, signed
raw requests, the box's real client with resends injected, an in-memory
outbox, a story of every event type and the OMS picture it must leave, and a
snapshot of the receiver's tables.

The service is :class:`~cloud_sync.receiver.service.ReceiverService` as
``pickedge cloud-receiver`` runs it (its sync and ops applications, each on an
aiohttp ``AppRunner``/``TCPSite`` on 127.0.0.1), on SQLite (a file) or
PostgreSQL (``pg_url``), with secrets from a directory of mode-600 files.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest
from aiohttp import web

from cloud_sync.client import BATCHES_PATH, CloudUnreachableError, Reply, SyncClient
from cloud_sync.codec import MAX_BATCH_BYTES, MSGPACK, RawEvent, decode_answer, encode_batch
from cloud_sync.events import (
    Alert,
    AlertState,
    AnyEvent,
    CancelStage,
    Carton,
    CartonDeparted,
    CartonLine,
    PickConfirmed,
    PickedLine,
    PutBack,
    Severity,
    ShipmentConfirmed,
    StockDelta,
    StockReason,
    TaskCancelled,
    TaskPicked,
    UnknownEvent,
)
from cloud_sync.ports import EpochChange, SendState
from cloud_sync.receiver import Receiver
from cloud_sync.receiver.oms import Applied, OmsHook, ReferenceOms
from cloud_sync.receiver.secrets import DirectorySecrets, SecretSource
from cloud_sync.receiver.service import ReceiverService
from cloud_sync.receiver.storage import Tx
from cloud_sync.signing import BOX_HEADER, HEADER, Signer

BOX = "zone-a"
SECRET = "conformance-secret-5f0c2a"
EPOCH = "e1"
#: the box clock of the story's events (informational, never used for order)
AT_MS = 1_700_000_000_000

BACKENDS = ["sqlite", "postgresql"]


# --------------------------------------------------------------------------- databases


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The receiver's database: a SQLite file in tmp_path, or a fresh PostgreSQL
    database (``pg_url``)."""
    if request.param == "sqlite":
        return str(tmp_path / "receiver.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """A secrets directory holding :data:`BOX`'s secret, mode 600."""
    path = tmp_path / "secrets"
    path.mkdir(mode=0o700)
    write_secret(path, BOX, SECRET)
    return path


def write_secret(directory: Path, box: str, secret: str, mode: int = 0o600) -> Path:
    path = directory / box
    path.write_text(secret + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


#: what :func:`snapshot` reads of each table (last contact changes on every
#: batch the receiver reads, applied or not, and is left out)
SNAPSHOT_TABLES = {
    "boxes": "box, site, epochs, feed_pos",
    "heads": "box, epoch, n, acked",
    "events": "box, epoch, seq, type, digest, body",
    "changes": "box, pos, type, data",
    "oms_stock": "box, sku, location, qty",
    "oms_tasks": "box, task, order_id, kind, state, picker, stage, lines",
    "oms_shipments": "box, shipment, orders, confirmed_by, epoch, seq",
    "oms_cartons": "box, sscc, shipment, lines, door, reader, departed",
    "oms_alerts": "box, kind, subject, severity, state, detail, raised, cleared",
}


def snapshot(receiver: Receiver) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the receiver's and the reference OMS's tables, sorted."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with receiver.db.transaction(snapshot=True) as tx:
        for table, columns in SNAPSHOT_TABLES.items():
            rows = tx.all(f"SELECT {columns} FROM {table}")
            plain = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]
            out[table] = sorted(plain, key=repr)
    return out


def picture(receiver: Receiver, box: str = BOX) -> dict[str, Any]:
    """The reference OMS's picture of ``box``: stock, tasks, shipments, alerts."""
    with receiver.db.transaction(snapshot=True) as tx:
        return {
            "stock": {k: v for k, v in ReferenceOms.stock(tx, box).items() if v},
            "tasks": ReferenceOms.tasks(tx, box),
            "shipments": ReferenceOms.shipments(tx, box),
            "alerts": ReferenceOms.alerts(tx, box),
        }


def nonzero(stock: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    return {k: v for k, v in stock.items() if v}


def seqs(receiver: Receiver, box: str = BOX, epoch: str = EPOCH) -> list[int]:
    return [e["seq"] for e in receiver.events(box, epoch)]


# --------------------------------------------------------------------------- events


def delta(qty: int, sku: str = "SKU-1", location: str = "A01-01", **kw: Any) -> StockDelta:
    kw.setdefault("reason", StockReason.PICK if qty < 0 else StockReason.RECEIVE)
    return StockDelta(sku=sku, location=location, qty=qty, ref=kw.pop("ref", None), lot=None, **kw)


def batch(
    events: Sequence[AnyEvent],
    *,
    first: int = 1,
    epoch: str = EPOCH,
    box: str = BOX,
    at_ms: int = AT_MS,
) -> bytes:
    return encode_batch(box, epoch, events, first=first, at_ms=at_ms)


SSCC_1 = "003012345600000017"
SSCC_2 = "003012345600000024"
SSCC_ORPHAN = "003012345600000031"


def task_change(task: str, order: str, lines: list[tuple[str, str, int]]) -> dict[str, Any]:
    return {
        "type": "task",
        "data": {
            "task": task,
            "kind": "pick",
            "order": order,
            "priority": 1,
            "lines": [
                {"line": str(n), "sku": sku, "qty": qty, "location": loc}
                for n, (sku, loc, qty) in enumerate(lines, start=1)
            ],
            "ship_to": {"postcode": "10115", "region": "north"},
            "carrier": "dhl",
        },
    }


#: the OMS gives the box four tasks (each ``open`` in the OMS picture)
STORY_TASKS = [
    task_change("T1", "O1", [("SKU-1", "A01-01", 2), ("SKU-2", "A01-02", 1)]),
    task_change("T2", "O2", [("SKU-3", "A01-03", 1)]),
    task_change("T3", "O3", [("SKU-1", "A01-01", 1)]),
    task_change("T4", "O4", [("SKU-2", "A01-02", 5)]),
]


def _pick(task: str, order: str, line: str, sku: str, loc: str, qty: int) -> PickConfirmed:
    return PickConfirmed(
        task=task,
        order=order,
        line=line,
        sku=sku,
        location=loc,
        qty=qty,
        picker="p1",
        codes=(f"{sku}-code",),
    )


def _alert(kind: str, subject: str, severity: Severity, state: AlertState) -> Alert:
    return Alert(kind=kind, severity=severity, subject=subject, detail={"n": 1}, state=state)


#: a shift of the box in 20 events, every type sync-v1 names and one it does not
STORY: list[AnyEvent] = [
    delta(-2, "SKU-1", "A01-01", ref="T1"),
    _pick("T1", "O1", "1", "SKU-1", "A01-01", 2),
    delta(-1, "SKU-2", "A01-02", ref="T1"),
    _pick("T1", "O1", "2", "SKU-2", "A01-02", 1),
    TaskPicked(
        task="T1",
        order="O1",
        tour=1,
        picker="p1",
        lines=(
            PickedLine(line="1", sku="SKU-1", picked=2, short=0),
            PickedLine(line="2", sku="SKU-2", picked=1, short=0),
        ),
        totes=("TOTE-1",),
    ),
    _pick("T2", "O2", "1", "SKU-3", "A01-03", 1),
    delta(-1, "SKU-3", "A01-03", ref="T2"),
    TaskCancelled(
        task="T2",
        order="O2",
        at_stage=CancelStage.PICKING,
        put_back=(PutBack(sku="SKU-3", location="A01-03", qty=1),),
    ),
    delta(+1, "SKU-3", "A01-03", ref="T2", reason=StockReason.RETURN),
    ShipmentConfirmed(
        shipment="S1",
        orders=("O1",),
        cartons=(
            Carton(sscc=SSCC_1, lines=(CartonLine(sku="SKU-1", qty=2),)),
            Carton(sscc=SSCC_2, lines=(CartonLine(sku="SKU-2", qty=1),)),
        ),
        by="p1",
    ),
    CartonDeparted(sscc=SSCC_1, shipment="S1", door="D1", reader="R1"),
    # a portal read a carton whose shipment is not here (yet)
    CartonDeparted(sscc=SSCC_ORPHAN, shipment="S9", door="D2", reader="R2"),
    _alert("printer_offline", "printer 1", Severity.WARN, AlertState.RAISED),
    _alert("printer_offline", "printer 1", Severity.WARN, AlertState.CLEARED),
    _alert("printer_offline", "printer 1", Severity.WARN, AlertState.RAISED),
    _alert("disk_full", "/var", Severity.CRIT, AlertState.RAISED),
    UnknownEvent("robot_docked", {"robot": "R2", "dock": 3, "nested": {"ok": True}}),
    delta(+10, "SKU-1", "A01-01", reason=StockReason.RECEIVE),
    _pick("T3", "O3", "1", "SKU-1", "A01-01", 1),
    delta(-1, "SKU-1", "A01-01", ref="T3"),
]

STORY_STOCK = {("SKU-1", "A01-01"): 7, ("SKU-2", "A01-02"): -1}


def story_picture() -> dict[str, Any]:
    """What the reference OMS must show after the box's tasks were enqueued and
    every event of :data:`STORY` applied once."""
    t1_lines = [
        {"line": "1", "sku": "SKU-1", "picked": 2, "short": 0},
        {"line": "2", "sku": "SKU-2", "picked": 1, "short": 0},
    ]
    t4_lines = STORY_TASKS[3]["data"]["lines"]

    def task(order: str, state: str, picker: Any, stage: Any, lines: Any) -> dict[str, Any]:
        return {
            "order": order,
            "kind": "pick",
            "state": state,
            "picker": picker,
            "stage": stage,
            "lines": lines,
        }

    t3 = STORY_TASKS[2]["data"]["lines"]
    return {
        "stock": STORY_STOCK,
        "tasks": {
            "T1": task("O1", "picked", "p1", None, t1_lines),
            "T2": task("O2", "cancelled", "p1", "picking", STORY_TASKS[1]["data"]["lines"]),
            "T3": task("O3", "picking", "p1", None, t3),
            "T4": task("O4", "open", None, None, t4_lines),
        },
        "shipments": {
            "S1": {
                "orders": ["O1"],
                "by": "p1",
                "cartons": {
                    SSCC_1: {
                        "lines": [{"sku": "SKU-1", "qty": 2}],
                        "door": "D1",
                        "departed": True,
                    },
                    SSCC_2: {
                        "lines": [{"sku": "SKU-2", "qty": 1}],
                        "door": None,
                        "departed": False,
                    },
                },
            },
            "": {
                "orders": [],
                "by": None,
                "cartons": {SSCC_ORPHAN: {"lines": [], "door": "D2", "departed": True}},
            },
        },
        "alerts": {
            ("printer_offline", "printer 1"): {
                "severity": "warn",
                "state": "raised",
                "raised": 2,
                "cleared": 1,
            },
            ("disk_full", "/var"): {
                "severity": "crit",
                "state": "raised",
                "raised": 1,
                "cleared": 0,
            },
        },
    }


def raw_rows(events: Sequence[AnyEvent], *, at_ms: int = AT_MS) -> list[RawEvent]:
    """Outbox rows of ``events`` from seq 1, as the box stores them."""
    out: list[RawEvent] = []
    for seq, ev in enumerate(events, start=1):
        type_ = ev.type if isinstance(ev, UnknownEvent) else ev.TYPE
        out.append((seq, type_, at_ms + seq, msgpack.packb(ev.to_data(), use_bin_type=True)))
    return out


def rows_as_events(rows: Iterable[RawEvent]) -> list[dict[str, Any]]:
    """Outbox rows in the shape of :meth:`Receiver.events`."""
    return [
        {"seq": s, "type": t, "at": at, "data": msgpack.unpackb(p, raw=False)}
        for s, t, at, p in rows
    ]


# --------------------------------------------------------------------------- the service


class FailingOms(ReferenceOms):
    """The reference OMS, failing at a shipment after writing the batch's
    earlier rows (a bug, or its own table refusing a row) while ``failing``."""

    failing = True

    def apply(self, tx: Tx, box: str, epoch: str, events: Sequence[Applied]) -> None:
        for n, applied in enumerate(events):
            if self.failing and isinstance(applied.event, ShipmentConfirmed):
                super().apply(tx, box, epoch, events[:n])  # written, in this transaction
                raise RuntimeError("the OMS refused a shipment")
        super().apply(tx, box, epoch, events)


@dataclass
class LiveReceiver:
    """A :class:`ReceiverService` serving on loopback: ``url`` (sync) and
    ``ops_url`` (/livez, /readyz, /metrics)."""

    receiver: Receiver
    service: ReceiverService
    url: str
    ops_url: str
    runners: list[web.AppRunner]

    async def stop(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()
        self.runners = []
        self.service.close()
        self.receiver.close()


async def start_receiver(
    db: str,
    secrets: SecretSource | Path,
    *,
    oms: OmsHook | None = None,
    max_batch_bytes: int = MAX_BATCH_BYTES,
    threads: int = 4,
    receiver: Receiver | None = None,
) -> LiveReceiver:
    if receiver is None:
        receiver = Receiver(db, oms=oms, max_batch_bytes=max_batch_bytes)
    source = DirectorySecrets(secrets) if isinstance(secrets, Path) else secrets
    service = ReceiverService(receiver, source, threads=threads, max_batch_bytes=max_batch_bytes)
    runners: list[web.AppRunner] = []
    urls: list[str] = []
    try:
        for app in (service.sync_app(), service.ops_app()):
            runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        service.close()
        receiver.close()
        raise
    return LiveReceiver(receiver, service, urls[0], urls[1], runners)


@asynccontextmanager
async def live_receiver(
    db: str, secrets: SecretSource | Path, **kw: Any
) -> AsyncIterator[LiveReceiver]:
    live = await start_receiver(db, secrets, **kw)
    try:
        yield live
    finally:
        await live.stop()


# --------------------------------------------------------------------------- raw requests


@dataclass(frozen=True)
class Raw:
    """An answer as it came: status, body bytes, signature header, decoded doc."""

    status: int
    payload: bytes
    signature: str | None
    doc: Any
    path: str

    def signed_by(self, secret: str) -> bool:
        """The answer's signature verifies with ``secret`` (sync-v1)."""
        return Signer(secret).verify_answer(self.signature, self.status, self.path, self.payload)

    @property
    def code(self) -> str | None:
        error = self.doc.get("error") if isinstance(self.doc, dict) else None
        return error.get("code") if isinstance(error, dict) else None


async def raw_request(
    url: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    headers: dict[str, str] | None = None,
    box: str | None = BOX,
    secret: str | None = SECRET,
    signed_path: str | None = None,
    accept: str | None = None,
) -> Raw:
    """One request as a box (or anyone) sends it: ``X-Box-Id`` = ``box`` and
    ``X-Signature`` with ``secret`` over ``signed_path`` (default: ``path``)
    unless None; ``headers`` added last (they may override both)."""
    sent: dict[str, str] = {}
    if body:
        sent["Content-Type"] = MSGPACK
    if accept is not None:
        sent["Accept"] = accept
    if box is not None:
        sent[BOX_HEADER] = box
    if secret is not None:
        sent[HEADER] = Signer(secret).request(method, signed_path or path, body)
    sent.update(headers or {})
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, url + path, data=body or None, headers=sent, skip_auto_headers=["Content-Type"]
        ) as resp,
    ):
        payload = await resp.read()
        try:
            doc = decode_answer(payload, resp.headers.get("Content-Type"))
        except ValueError:
            doc = None
        return Raw(resp.status, payload, resp.headers.get(HEADER), doc, path)


async def post_raw(url: str, body: bytes, **kw: Any) -> Raw:
    return await raw_request(url, "POST", BATCHES_PATH, body, **kw)


def echo(acked: int, first: int, last: int, epoch: str = EPOCH) -> dict[str, Any]:
    """sync-v1's 200 / gap 409 document."""
    return {"acked": acked, "epoch": epoch, "first": first, "last": last}


# --------------------------------------------------------------------------- the box side


class ResendingClient(SyncClient):
    """The box's real :class:`SyncClient`, with what a network does to its
    requests injected, one action per ``post_batch`` from ``script``:

    - ``None``: delivered, answered;
    - ``"lost"``: delivered and applied, the answer lost (the box resends);
    - ``"twice"``: delivered twice in a row (a retry racing the original);
    - ``"replay"``: the last three batches delivered earlier arrive again
      first (late duplicates, out of order), then this one;
    - ``"refused"``: never delivered (connection refused).

    ``side`` holds the replies of the injected extra deliveries: each must be
    a signed 200 that applied nothing.
    """

    def __init__(self, *args: Any, script: Iterable[str | None] = (), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.script: deque[str | None] = deque(script)
        self.delivered: list[bytes] = []
        self.side: list[Reply] = []

    async def post_batch(self, body: bytes) -> Reply:
        action = self.script.popleft() if self.script else None
        if action == "refused":
            raise CloudUnreachableError("injected: connection refused")
        if action == "replay":
            for old in self.delivered[-3:]:
                self.side.append(await super().post_batch(old))
        reply = await super().post_batch(body)
        self.delivered.append(body)
        if action == "twice":
            self.side.append(reply)
            reply = await super().post_batch(body)
        if action == "lost":
            raise CloudUnreachableError("injected: the answer was lost")
        return reply


class MemoryOutbox:
    """An in-memory :class:`cloud_sync.ports.Outbox` of one epoch: what a cloud
    team's own test of the uploader would write. Alerts and errors are kept."""

    def __init__(self, box_id: str, epoch: str, rows: list[RawEvent], *, acked: int = 0) -> None:
        self.box_id = box_id
        self.epoch = epoch
        self.rows = rows
        self.acked = acked
        self.errors: list[str] = []
        self.alerts: list[Alert] = []

    def send_state(self) -> SendState:
        return SendState(self.epoch, self.acked, len(self.rows) + 1)

    def read_raw(self, epoch: str, *, after_seq: int, limit: int) -> list[RawEvent]:
        assert epoch == self.epoch
        return self.rows[after_seq : after_seq + limit]

    def open_alerts(self, kinds: Iterable[str]) -> set[str]:
        return set()

    def will_send(self, epoch: str, last: int) -> None:
        return None

    async def check_copy(self) -> None:
        return None

    async def settle_ack(self, epoch: str, upto: int, *, clear: Iterable[str]) -> int:
        if upto > len(self.rows):
            raise ValueError(f"ack {upto} beyond the last event {len(self.rows)}")
        self.acked = max(self.acked, upto)
        return self.acked

    async def record_error(self, message: str, *, backoff_s: float, alert: Alert | None) -> None:
        self.errors.append(message)
        if alert is not None:
            self.alerts.append(alert)

    async def raise_alert(self, alert: Alert) -> bool:
        self.alerts.append(alert)
        return True

    async def start_new_epoch(self, *args: Any, **kw: Any) -> EpochChange:
        raise AssertionError("no epoch conflict expected")

    async def prune_acked(self, *, max_age_ms: int) -> int:
        return 0


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as JSON (each must parse)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
