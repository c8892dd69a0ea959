"""Fixtures of the PDA API tests: a seeded zone, a real server, PDA clients.

The zone (default layout: 10 aisles 3 m apart, one 20 m block, depot at 0,0):

| sku | GTIN | stock |
| --- | --- | --- |
| SKU-A | GTIN_A | A-01-05 (aisle 1, y 5): 10 |
| SKU-B | GTIN_B | lot L1 exp 2026-12-31 at A-04-10: 5; lot L2 exp 2027-06-30 at A-02-08: 5 |
| SKU-C | GTIN_C | A-06-15: 3; A-08-04: 10 (an alternative for short picks) |
| SKU-D | GTIN_D = the SGTIN of EPC_D | A-03-12: 4 |
| SKU-E | GTIN_E | none (unfillable) |
| SKU-ONE | GTIN_ONE | A-05-05: 1 (two pickers, one unit) |

Pickers P1 (BADGE-1), P2 (BADGE-2), S1 (BADGE-S, supervisor); one enrolled PDA
per test client. Tasks are added by each test with :func:`add_task`.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest
from aiohttp.test_utils import TestServer

from edge.api import auth
from edge.api.app import create_app
from edge.config import Config, load_config
from edge.picking import PickingService
from edge.store.db import Store, Transaction, now_ms


def gtin14(base13: str) -> str:
    """A GTIN-14 with its check digit (GS1 mod-10)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(base13)))
    return base13 + str((10 - total % 10) % 10)


GTIN_A = gtin14("0952123400001")
GTIN_B = gtin14("0952123400002")
GTIN_C = gtin14("0952123400003")
GTIN_E = gtin14("0952123400005")
GTIN_ONE = gtin14("0952123400006")
EPC_D = "3074257BF7194E4000001A85"  # SGTIN-96 of GTIN 80614141123458, serial 6789
GTIN_D = "80614141123458"
GS = "\x1d"

LOCATIONS = {
    "A-01-05": (1, 5.0),
    "A-02-08": (2, 8.0),
    "A-03-12": (3, 12.0),
    "A-04-10": (4, 10.0),
    "A-05-05": (5, 5.0),
    "A-06-15": (6, 15.0),
    "A-08-04": (8, 4.0),
    "A-09-18": (9, 18.0),
}
STOCK: list[tuple[str, str, str, str | None, int]] = [
    ("SKU-A", "A-01-05", "", None, 10),
    ("SKU-B", "A-04-10", "L1", "2026-12-31", 5),
    ("SKU-B", "A-02-08", "L2", "2027-06-30", 5),
    ("SKU-C", "A-06-15", "", None, 3),
    ("SKU-C", "A-08-04", "", None, 10),
    ("SKU-D", "A-03-12", "", None, 4),
    ("SKU-ONE", "A-05-05", "", None, 1),
]
ITEMS = {
    "SKU-A": ("Apple juice 1 l", GTIN_A),
    "SKU-B": ("Yoghurt 500 g", GTIN_B),
    "SKU-C": ("Coffee beans 1 kg", GTIN_C),
    "SKU-D": ("Drill, serialised", GTIN_D),
    "SKU-E": ("Eraser", GTIN_E),
    "SKU-ONE": ("One of a kind", GTIN_ONE),
}
PICKERS = [
    ("P1", "Pia", "BADGE-1", "picker"),
    ("P2", "Per", "BADGE-2", "picker"),
    ("S1", "Sue", "BADGE-S", "supervisor"),
]


def write_config(tmp_path: Path, *, port: int = 0, db: str = "box.db", **api: Any) -> Path:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in api.items())
    path = tmp_path / "pickedge.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [box]
            id = "box-test"

            [store]
            path = "{db}"

            [api]
            host = "127.0.0.1"
            port = {port}
            """
        )
        + extra
    )
    return path


def seed_zone(store: Store) -> None:
    def fn(tx: Transaction) -> None:
        for sku, (description, gtin) in ITEMS.items():
            tx.execute("INSERT INTO items (sku, description) VALUES (?, ?)", (sku, description))
            tx.execute("INSERT INTO item_gtins (gtin, sku) VALUES (?, ?)", (gtin, sku))
        for code, (aisle, y) in LOCATIONS.items():
            tx.execute(
                "INSERT INTO locations (code, aisle, y, zone) VALUES (?, ?, ?, 'Z1')",
                (code, aisle, y),
            )
        tx.executemany(
            "INSERT INTO stock (sku, location, lot, expiry, qty) VALUES (?, ?, ?, ?, ?)", STOCK
        )
        for pid, name, badge, role in PICKERS:
            tx.execute(
                "INSERT INTO pickers (id, name, badge, role) VALUES (?, ?, ?, ?)",
                (pid, name, badge, role),
            )

    store.run(fn)


def add_task(
    store: Store,
    task: str,
    lines: list[tuple[str, int]],
    *,
    order: str | None = None,
    tote: str | None = None,
    priority: int = 0,
) -> None:
    def fn(tx: Transaction) -> None:
        tx.execute(
            "INSERT INTO tasks (task, order_ref, tote, priority, ship_postcode, received_ms) "
            "VALUES (?, ?, ?, ?, '1000', ?)",
            (task, order, tote, priority, now_ms()),
        )
        tx.executemany(
            "INSERT INTO task_lines (task, line, sku, qty) VALUES (?, ?, ?, ?)",
            [(task, str(n), sku, qty) for n, (sku, qty) in enumerate(lines, start=1)],
        )

    store.run(fn)


def events(store: Store, type_: str | None = None) -> list[dict[str, Any]]:
    """Outbox events (decoded), oldest first."""
    rows = store.query("SELECT seq, type, payload FROM outbox ORDER BY seq")
    out = []
    for r in rows:
        if type_ is None or r["type"] == type_:
            out.append({"seq": r["seq"], "type": r["type"], **msgpack.unpackb(r["payload"])})
    return out


def stock(store: Store, sku: str, location: str) -> tuple[int, int]:
    """(qty, reserved) summed over the lots of ``sku`` at ``location``."""
    row = store.query(
        "SELECT COALESCE(SUM(qty), 0) AS q, COALESCE(SUM(reserved), 0) AS r FROM stock "
        "WHERE sku = ? AND location = ?",
        (sku, location),
    )[0]
    return int(row["q"]), int(row["r"])


def delta_sum(store: Store, sku: str, location: str) -> int:
    deltas = events(store, "stock_delta")
    return sum(e["qty"] for e in deltas if e["sku"] == sku and e["location"] == location)


# --------------------------------------------------------------------------- clients


@dataclass
class Pda:
    """One handheld: its device key, an HTTP session, and after login a token."""

    http: aiohttp.ClientSession
    base: str
    device_key: str
    token: str | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def login(self, badge: str) -> dict[str, Any]:
        async with self.http.post(
            f"{self.base}/api/v1/sessions",
            json={"badge": badge},
            headers={"X-Device-Key": self.device_key},
        ) as r:
            body = await r.json()
            assert r.status == 201, body
            self.token = body["token"]
            return dict(body)

    async def call(
        self, method: str, path: str, body: Any = None, **kw: Any
    ) -> tuple[int, dict[str, Any]]:
        headers = {**self._headers(), **kw.pop("headers", {})}
        async with self.http.request(
            method, f"{self.base}{path}", json=body, headers=headers, **kw
        ) as r:
            return r.status, await r.json()

    async def scan(self, code: str, scan_id: str | None = None) -> dict[str, Any]:
        status, body = await self.call(
            "POST", "/api/v1/scan", {"code": code, "scan_id": scan_id or str(uuid.uuid4())}
        )
        assert status == 200, body
        return body

    async def short(self, stop: int, found: int, reason: str = "empty") -> tuple[int, Any]:
        return await self.call(
            "POST", "/api/v1/tour/short", {"stop": stop, "found": found, "reason": reason}
        )

    async def tour(self) -> tuple[int, dict[str, Any]]:
        return await self.call("GET", "/api/v1/tour")


@dataclass
class Zone:
    """A running API over a seeded store."""

    store: Store
    cfg: Config
    picking: PickingService
    server: TestServer
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def pda(self, name: str | None = None) -> Pda:
        _, key = auth.enroll_pda(self.store, name or f"pda-{uuid.uuid4().hex[:8]}")
        return Pda(self.http, self.base, key)

    async def picker(self, badge: str = "BADGE-1") -> Pda:
        pda = self.pda()
        await pda.login(badge)
        return pda


@pytest.fixture
def zone_store(tmp_path: Path) -> Iterator[tuple[Store, Config]]:
    cfg = load_config(write_config(tmp_path))
    store = Store.open(cfg.store_path(), box_id=cfg.box.id)
    seed_zone(store)
    try:
        yield store, cfg
    finally:
        store.close()


@pytest.fixture
async def zone(zone_store: tuple[Store, Config]) -> AsyncIterator[Zone]:
    store, cfg = zone_store
    picking = PickingService(store, cfg.layout_dict())
    app = create_app(store, cfg, picking=picking)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    http = aiohttp.ClientSession()
    try:
        yield Zone(store, cfg, picking, server, http)
    finally:
        await http.close()
        await server.close()


def walk(tour: dict[str, Any]) -> list[dict[str, Any]]:
    """The tour's open stops in walking order (on a cart, a stop whose units
    wait to be put into their tote is still open)."""
    return [s for s in tour["stops"] if s["state"] in ("pending", "location_ok", "to_put")]


async def bind_totes(pda: Pda, answer: dict[str, Any], prefix: str = "TOTE-") -> dict[str, Any]:
    """Scan a tote for every slot of a cart still without one (the tote the
    cloud assigned, else ``prefix`` + slot + a random tail); the last answer."""
    while answer["tour"]["cart"]["next_slot"] is not None:
        slot = answer["tour"]["cart"]["next_slot"]
        tote = next(t for t in answer["tour"]["cart"]["totes"] if t["slot"] == slot)
        label = tote["assigned"] or f"{prefix}{slot}-{uuid.uuid4().hex[:6].upper()}"
        answer = await pda.scan(label)
        assert answer["result"] == "tote_bound", answer
    return answer


ITEM_CODE = {
    "SKU-A": GTIN_A,
    "SKU-B": GTIN_B,
    "SKU-C": GTIN_C,
    "SKU-D": "SKU-D",  # serialised: the same EPC twice is one unit; the SKU label counts
    "SKU-ONE": GTIN_ONE,
}


def item_code(stop: dict[str, Any]) -> str:
    """A code that is right for ``stop``: GS1 with its lot and expiry where it has one."""
    if stop["lot"]:
        expiry = stop["expiry"].replace("-", "")[2:]
        return f"01{ITEMS[stop['sku']][1]}17{expiry}10{stop['lot']}"
    return ITEM_CODE[stop["sku"]]


async def pick_all(pda: Pda, tour: dict[str, Any]) -> dict[str, Any]:
    """Walk a tour to its end with right scans; returns the last answer. On a
    cart: binds its totes first and puts each stop's units into its tote."""
    answer: dict[str, Any] = {"tour": tour}
    if tour.get("cart"):
        answer = await bind_totes(pda, answer)
    while answer["tour"]["next_stop"] is not None:
        current = walk(answer["tour"])[0]
        if current["state"] == "pending":
            answer = await pda.scan(current["location"])
            assert answer["result"] == "location_ok", answer
        for _ in range(current["qty"] - current["picked"]):
            answer = await pda.scan(item_code(current))
            assert answer["result"] in ("item_ok", "stop_done", "tour_done"), answer
        if walk(answer["tour"]) and walk(answer["tour"])[0]["state"] == "to_put":
            answer = await pda.scan(walk(answer["tour"])[0]["tote"])
            assert answer["result"] in ("stop_done", "tour_done"), answer
    return answer
