"""Scripted floor scenarios: a zone's master data and simulated PDA pickers.

:func:`zone_feed` builds the cloud's initial load for a conventional layout —
items with GTINs, locations spread over every aisle and block (labels such as
``C-02-05``: aisle C, block 2, slot 5), stock (some SKUs in two locations,
some lot-controlled with expiry dates), pickers with badges, and pick tasks.

:class:`PdaClient` speaks pda-api-v1 over HTTP like a handheld does: it logs in
with its device key and a badge, sends every scan with a fresh ``scan_id``, and
retries a scan with the *same* ``scan_id`` when the answer is lost.
:func:`walk_tour` plays a picker through a tour stop by stop.

Used by ``pickedge demo``; small enough to read as an example PDA client.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from simulators.cloud import gtin14


@dataclass(frozen=True, slots=True)
class Zone:
    aisles: int
    blocks: int
    block_length_m: float
    slots_per_block: int


def location_code(aisle: int, block: int, slot: int) -> str:
    return f"{chr(ord('A') + aisle)}-{block + 1:02d}-{slot + 1:02d}"


def zone_feed(
    zone: Zone,
    *,
    seed: int = 7,
    items: int = 60,
    pickers: int = 3,
    tasks: int = 12,
    lines: tuple[int, int] = (3, 8),
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The initial load for ``zone`` and the GTIN of every SKU."""
    rng = random.Random(seed)
    feed: list[dict[str, Any]] = []
    gtins: dict[str, str] = {}
    skus = [f"SKU-{i:04d}" for i in range(1, items + 1)]
    for i, sku in enumerate(skus, start=1):
        gtins[sku] = gtin14(i)
        feed.append(
            {
                "type": "item",
                "data": {
                    "sku": sku,
                    "gtins": [gtins[sku]],
                    "description": f"Item {i}",
                    "uom": "EA",
                    "serialized": False,
                },
            }
        )
    slot_m = zone.block_length_m / zone.slots_per_block
    codes: list[str] = []
    for aisle in range(zone.aisles):
        for block in range(zone.blocks):
            for slot in range(zone.slots_per_block):
                code = location_code(aisle, block, slot)
                codes.append(code)
                y = block * zone.block_length_m + (slot + 0.5) * slot_m
                feed.append(
                    {
                        "type": "location",
                        "data": {"code": code, "aisle": aisle, "y": round(y, 3), "zone": "A"},
                    }
                )
    shuffled = rng.sample(codes, k=len(codes))
    for i, sku in enumerate(skus):
        homes = [shuffled[i % len(shuffled)]]
        if i % 4 == 0:  # scattered storage: a second location for every fourth SKU
            homes.append(shuffled[(i + len(skus)) % len(shuffled)])
        for home in homes:
            feed.append({"type": "stock", "data": {"sku": sku, "location": home, "base": 40}})
    for p in range(1, pickers + 1):
        feed.append(
            {
                "type": "picker",
                "data": {
                    "id": f"p{p}",
                    "name": f"Picker {p}",
                    "badge": f"BADGE{p:04d}",
                    "role": "picker",
                    "active": True,
                },
            }
        )
    for t in range(1, tasks + 1):
        chosen = rng.sample(skus, k=rng.randint(*lines))
        feed.append(
            {
                "type": "task",
                "data": {
                    "task": f"T{t:05d}",
                    "kind": "pick",
                    "order": f"O{t:05d}",
                    "priority": rng.randint(0, 3),
                    "lines": [
                        {"line": n, "sku": sku, "qty": rng.randint(1, 3)}
                        for n, sku in enumerate(chosen, start=1)
                    ],
                    "ship_to": {"postcode": f"{rng.randint(10000, 99999)}", "region": "north"},
                    "carrier": "dhl",
                },
            }
        )
    return feed, gtins


class ApiAnswerError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.code = str(error.get("code", status))
        super().__init__(f"{status} {self.code}: {error.get('message', '')}")


@dataclass
class PdaClient:
    """One handheld: ``async with PdaClient(url, device_key) as pda``."""

    base_url: str
    device_key: str
    token: str | None = None
    #: seconds a picker takes before each scan (0: as fast as the box answers)
    pace_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PdaClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self._session is not None
        headers = {"X-Device-Key": self.device_key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with self._session.request(
            method, self.base_url + path, json=body, headers=headers
        ) as resp:
            doc = await resp.json()
            if resp.status >= 400:
                raise ApiAnswerError(resp.status, doc)
            return doc

    async def login(self, badge: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._call("POST", "/api/v1/sessions", {"badge": badge})
        self.token = doc["token"]
        return doc

    async def scan(self, code: str, *, retries: int = 3) -> dict[str, Any]:
        """One scan; a lost answer is retried with the same ``scan_id``."""
        scan_id = str(uuid.uuid4())
        if self.pace_s:
            await asyncio.sleep(self.pace_s)
        for attempt in range(retries + 1):
            started = time.perf_counter()
            try:
                doc: dict[str, Any] = await self._call(
                    "POST", "/api/v1/scan", {"code": code, "scan_id": scan_id}
                )
            except (aiohttp.ClientConnectionError, TimeoutError):
                if attempt == retries:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            self.latencies_ms.append((time.perf_counter() - started) * 1000)
            return doc
        raise AssertionError("unreachable")

    async def short(self, stop: int, found: int, reason: str = "empty") -> dict[str, Any]:
        doc: dict[str, Any] = await self._call(
            "POST", "/api/v1/tour/short", {"stop": stop, "found": found, "reason": reason}
        )
        return doc

    async def tour(self) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = await self._call("GET", "/api/v1/tour")
        except ApiAnswerError as exc:
            if exc.code == "no_tour":
                return None
            raise
        return doc


Say = Callable[[str, dict[str, Any]], Awaitable[None] | None]


async def walk_tour(
    pda: PdaClient,
    tour: dict[str, Any],
    gtins: dict[str, str],
    *,
    say: Say,
    short_stop: int | None = None,
    wrong_location: str | None = None,
) -> dict[str, Any]:
    """Play one tour to its end: location label, then the item for each unit.

    On a cart, a tote label is scanned for each order first (``TOTE-`` and
    the picker's own tail), and each stop's units are put into their tote by
    scanning it. ``short_stop`` finds one unit less than asked there (or none
    when one was asked); ``wrong_location`` is scanned once first, to show
    the error.
    """
    if tour.get("cart"):
        tour = await bind_totes(pda, tour, say=say)
    if wrong_location is not None:
        answer = await pda.scan(wrong_location)
        await _said(say, "scan", {"code": wrong_location, **answer})
    while tour.get("next_stop") is not None:
        number = tour["next_stop"]
        stop = next(s for s in tour["stops"] if s["stop"] == number)
        answer = await pda.scan(stop["location"])
        await _said(say, "scan", {"code": stop["location"], **answer})
        tour = answer["tour"]
        left = stop["qty"] - stop["picked"]
        if number == short_stop:
            found = max(0, left - 1)
            for _ in range(found):
                answer = await pda.scan(gtins[stop["sku"]])
                if answer["feedback"] == "error":
                    raise RuntimeError(f"stop {number}: item scan refused: {answer}")
                tour = answer["tour"]
            answer = await pda.short(number, found=stop["picked"] + found, reason="empty")
            await _said(say, "short", {"stop": stop, "found": found, **answer})
            tour = answer["tour"]
            continue
        for _ in range(left):
            answer = await pda.scan(gtins[stop["sku"]])
            if answer["feedback"] == "error":
                raise RuntimeError(f"stop {number}: item scan refused: {answer}")
            tour = answer["tour"]
        now = next(s for s in tour["stops"] if s["stop"] == number)
        if now["state"] == "to_put":
            answer = await pda.scan(now["tote"])
            if answer["feedback"] == "error":
                raise RuntimeError(f"stop {number}: put refused: {answer}")
            tour = answer["tour"]
        await _said(say, "scan", {"code": gtins[stop["sku"]], "stop": stop, **answer})
    return tour


async def bind_totes(pda: PdaClient, tour: dict[str, Any], *, say: Say) -> dict[str, Any]:
    """Scan a tote for every slot of a cart still without one (the tote the
    cloud assigned, else a new label); the tour as it then is."""
    while tour["cart"]["next_slot"] is not None:
        slot = tour["cart"]["next_slot"]
        tote = next(t for t in tour["cart"]["totes"] if t["slot"] == slot)
        label = tote["assigned"] or f"TOTE-{uuid.uuid4().hex[:8].upper()}"
        answer = await pda.scan(label)
        if answer["result"] != "tote_bound":
            raise RuntimeError(f"slot {slot}: tote {label} refused: {answer}")
        await _said(say, "tote", {"code": label, "slot": slot, "order": tote["order"], **answer})
        tour = answer["tour"]
    return tour


async def _said(say: Say, kind: str, detail: dict[str, Any]) -> None:
    result = say(kind, detail)
    if result is not None:
        await result
