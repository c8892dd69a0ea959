"""The secrets canary (issue 14): no secret and no customer value leaks into the
logs, the metrics, the dashboard or an error answer.

Distinctive canary values are planted as the box's sync secret, the metrics
scrape token, the MQTT password, a picker's badge and name (and a
supervisor's), and every task's postcode; the PDA's device key and the session
tokens the box hands out are canaries as well. The real daemon (``python -m
edge run`` in its own process, logging JSON at DEBUG into a file) then gets a
busy session with errors: logins with wrong badges and wrong device keys,
forged and truncated tokens, malformed bodies (not JSON, nested 3,000 deep, a
lone surrogate, an integer beyond int64, too large), junk scans, a picker on
supervisor routes, a broken HTTP request line, WebSockets with bad tokens, a
cloud answering 401 and 500 (and a wrongly signed answer), an MQTT device whose
broker refuses the password. Then every log line, the ``/metrics`` text, every
HTTP answer body and the dashboard's JSON is searched for every canary (as is,
percent-encoded and base64-encoded).

Two exceptions, by design and explicit: a *successful* login answer returns
the session token and the picker's name to the PDA that logged in — its owner
(:data:`OWN_VALUES`, left out of the search); and a supervisor's own views
(the dashboard, ``/api/v1/supervisor/...``, answered 200 to a supervisor's
token) name the pickers of the active tours — that is what they are for — so
the *names* (never badges, tokens, secrets or postcodes) are allowed there
(:data:`NAMES_SHOWN_TO_SUPERVISORS`). Nothing else is excluded.
:func:`test_the_canary_search_finds_a_planted_leak` shows that the search does
find a leaked value.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from edge.api.auth import enroll_pda
from edge.store import Store
from simulators.broker import MosquittoBroker, find_mosquitto
from simulators.cloud import CloudSimulator, Faults
from simulators.floor import Zone, zone_feed
from tests.support.processes import ProcessReaper

ROOT = Path(__file__).resolve().parents[2]
BOX = "canary-box"

CANARIES = {
    "sync secret": "cnry-sync-secret-Q7v2Lm9xWd",
    "metrics token": "cnry-metrics-token-H4k8Zp3wEe",
    "mqtt password": "cnry-mqtt-password-T6n1Rb5yUu",
    "picker badge": "CNRYBADGE5J8W",
    "picker name": "Cnryname Vexholm",
    "supervisor badge": "CNRYSUPBADGE2K",
    "supervisor name": "Cnrysup Olvendt",
    "postcode": "CN7 4QZX",
}
ZONE = Zone(aisles=4, blocks=1, block_length_m=12.0, slots_per_block=4)

#: answers that legitimately carry the requester's own values: a successful
#: login returns the session token and the picker's name to the PDA that
#: logged in. Nothing else is excluded.
OWN_VALUES = "POST /api/v1/sessions -> 201"
#: a supervisor's views name the pickers (the only canaries allowed there)
NAMES_SHOWN_TO_SUPERVISORS = ("picker name", "supervisor name")
SUPERVISOR_VIEWS = ("supervisor GET /api/v1/dashboard -> 200", "supervisor GET /api/v1/supervisor/")


def forms(value: str) -> set[str]:
    """The shapes a leaked value would take in a log line or an answer."""
    raw = value.encode()
    return {
        value,
        quote(value, safe=""),
        json.dumps(value)[1:-1],
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    }


def leaks(canaries: Mapping[str, str], places: Iterable[tuple[str, str]]) -> list[str]:
    """Every (canary, place) where a canary shows, in any of its forms."""
    found = []
    for where, text in places:
        for name, value in canaries.items():
            if any(form in text for form in forms(value)):
                found.append(f"{name} ({value!r}) in {where}")
    return found


def test_the_canary_search_finds_a_planted_leak() -> None:
    secret = CANARIES["sync secret"]
    planted = [
        ("log", f'{{"msg": "upload failed", "secret": "{secret}"}}'),
        ("answer", "Authorization: Basic " + base64.b64encode(f"u:{secret}".encode()).decode()),
        ("metrics", f'pickedge_x{{postcode="{quote(CANARIES["postcode"], safe="")}"}} 1'),
        ("clean", "nothing to see"),
    ]
    found = leaks(CANARIES, planted)
    assert any("sync secret" in f and "in log" in f for f in found)
    assert any("postcode" in f and "metrics" in f for f in found)
    assert not any("in clean" in f for f in found)
    # base64 of a value inside a longer string: only found when aligned, so the
    # planted value here is found raw as well
    assert leaks({"x": "cnry-x-Zq"}, [("b64", base64.b64encode(b"cnry-x-Zq").decode())])


@dataclass
class Recorder:
    """Every answer the box gave, by request."""

    answers: list[tuple[str, str]] = field(default_factory=list)
    own: list[str] = field(default_factory=list)
    supervisor_views: list[tuple[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def add(self, what: str, status: int, body: str) -> None:
        self.statuses.append(status)
        label = f"{what} -> {status}"
        if label == OWN_VALUES:
            self.own.append(body)
        elif label.startswith(SUPERVISOR_VIEWS) and status == 200:
            self.supervisor_views.append((label, body))
        else:
            self.answers.append((label, body))


@dataclass
class Api:
    http: aiohttp.ClientSession
    base: str
    rec: Recorder

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        who: str = "",
    ) -> tuple[int, str]:
        async with self.http.request(
            method, self.base + path, json=json_body, data=data, headers=dict(headers or {})
        ) as r:
            text = await r.text(errors="replace")
            label = f"{who} {method} {path}".strip()
            self.rec.add(label, r.status, text + "\n" + repr(dict(r.headers)))
            return r.status, text


def _config(work: Path, *, cloud: str, api_port: int, broker: MosquittoBroker) -> Path:
    for name, key in (
        ("box.secret", "sync secret"),
        ("metrics.token", "metrics token"),
        ("mqtt.password", "mqtt password"),
    ):
        (work / name).write_text(CANARIES[key] + "\n")
        (work / name).chmod(0o600)
    path = work / "pickedge.toml"
    path.write_text(
        f"""
[box]
id = "{BOX}"
secret_file = "box.secret"

[cloud]
url = "{cloud}"
timeout_s = 1.0
batch_max_events = 20
backoff_max_s = 1.0
pull_interval_s = 0.3

[store]
path = "box.db"

[api]
host = "127.0.0.1"
port = {api_port}
metrics_token_file = "metrics.token"

[mqtt]
host = "127.0.0.1"
port = {broker.port}
username = "pickedge"
password_file = "mqtt.password"

[layout]
kind = "blocks"
aisles = {ZONE.aisles}
aisle_pitch_m = 3.0
blocks = {ZONE.blocks}
block_length_m = {ZONE.block_length_m}
depot = {{ x = 4.5, y = 0.0 }}

[[devices]]
id = "pack-scanner"
driver = "mqtt-scanner"
role = "pack_station"
topic = "scanners/pack-1"
"""
    )
    return path


def _feed() -> tuple[list[dict[str, Any]], dict[str, str]]:
    feed, gtins = zone_feed(ZONE, items=12, pickers=1, tasks=6, lines=(1, 3))
    for change in feed:
        data = change["data"]
        if change["type"] == "picker":
            data.update(name=CANARIES["picker name"], badge=CANARIES["picker badge"])
        elif change["type"] == "task":
            data["ship_to"]["postcode"] = CANARIES["postcode"]
    feed.append(
        {
            "type": "picker",
            "data": {
                "id": "s1",
                "name": CANARIES["supervisor name"],
                "badge": CANARIES["supervisor badge"],
                "role": "supervisor",
                "active": True,
            },
        }
    )
    return feed, gtins


async def _wait_up(base: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            assert proc.returncode is None, _tail(log)
            try:
                async with http.get(base + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the daemon did not come up: " + _tail(log))


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def _pickers_loaded(db: Path, within_s: float = 20) -> None:
    """Wait until the downloader stored both pickers (failed logins meanwhile
    would count against the device key)."""
    deadline = time.monotonic() + within_s
    while True:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            (count,) = conn.execute("SELECT count(*) FROM pickers").fetchone()
        except sqlite3.OperationalError:
            count = 0
        finally:
            conn.close()
        if count >= 2:
            return
        assert time.monotonic() < deadline, "the pickers never arrived from the cloud"
        await asyncio.sleep(0.1)


async def _login(api: Api, key: str, badge: str) -> str:
    status, text = await api.call(
        "POST", "/api/v1/sessions", json_body={"badge": badge}, headers={"X-Device-Key": key}
    )
    assert status == 201, text
    return str(json.loads(text)["token"])


async def _busy_session(
    api: Api, device_key: str, bad_key: str, gtins: Mapping[str, str]
) -> dict[str, str]:
    """The session with errors; returns the tokens handed out (canaries too).
    The failed logins come from another PDA (``bad_key``): the limiter blocks a
    device key after five failures."""
    dev = {"X-Device-Key": device_key}
    token = await _login(api, device_key, CANARIES["picker badge"])
    auth = {"Authorization": f"Bearer {token}", **dev}
    sup_token = await _login(api, device_key, CANARIES["supervisor badge"])
    sup = {"Authorization": f"Bearer {sup_token}", **dev}
    # logins that fail: unknown badges, a right badge with a wrong or no device key,
    # junk badges
    for badge in ("NOPE-0001", CANARIES["picker badge"] + "X", "", "x" * 300):
        await api.call(
            "POST",
            "/api/v1/sessions",
            json_body={"badge": badge},
            headers={"X-Device-Key": bad_key},
        )
    for headers in ({"X-Device-Key": device_key[:-2] + "zz"}, {}):
        await api.call(
            "POST",
            "/api/v1/sessions",
            json_body={"badge": CANARIES["picker badge"]},
            headers=headers,
        )
    # forged, truncated and missing tokens, everywhere a token is asked for
    for bad in ("junk", token[:-3] + "abc", token + "x", ""):
        for method, path in (("GET", "/api/v1/tour"), ("POST", "/api/v1/scan")):
            await api.call(
                method,
                path,
                json_body={"code": "X", "scan_id": "s"} if method == "POST" else None,
                headers={"Authorization": f"Bearer {bad}", **dev},
            )
    # malformed bodies
    bodies = [
        b"{not json",
        b"[" * 3000 + b"]" * 3000,
        b'{"code": "\\ud800", "scan_id": "s1"}',
        b'{"code": 12, "scan_id": []}',
        b"",
        b'{"code": "' + b"A" * 200_000 + b'"}',
    ]
    for body in bodies:
        await api.call(
            "POST",
            "/api/v1/scan",
            data=body,
            headers={**auth, "Content-Type": "application/json"},
        )
    await api.call(
        "POST",
        "/api/v1/tour/short",
        data=b'{"stop": 99999999999999999999999, "found": 0, "reason": "empty"}',
        headers={**auth, "Content-Type": "application/json"},
    )
    # a tour and scans: junk, wrong items, the right ones
    status, text = await api.call(
        "POST", "/api/v1/scan", json_body={"code": "T00001", "scan_id": "t1"}, headers=auth
    )
    for i, code in enumerate(["JUNK-CODE", "]C1" + "9" * 40, "0" * 14, "A-99-99", "\x00\x01"]):
        await api.call(
            "POST", "/api/v1/scan", json_body={"code": code, "scan_id": f"j{i}"}, headers=auth
        )
    status, text = await api.call("GET", "/api/v1/tour", headers=auth)
    if status == 200:
        tour = json.loads(text)
        for i, stop in enumerate(tour.get("stops", [])[:3]):
            await api.call(
                "POST",
                "/api/v1/scan",
                json_body={"code": stop.get("location", "?"), "scan_id": f"l{i}"},
                headers=auth,
            )
            gtin = gtins.get(stop.get("sku", ""), "0" * 14)
            await api.call(
                "POST", "/api/v1/scan", json_body={"code": gtin, "scan_id": f"g{i}"}, headers=auth
            )
        await api.call(
            "POST",
            "/api/v1/tour/short",
            json_body={"stop": 1, "found": 0, "reason": "empty"},
            headers=auth,
        )
    # a picker on supervisor routes
    for path in ("/api/v1/dashboard", "/api/v1/supervisor/tours", "/api/v1/supervisor/alerts"):
        await api.call("GET", path, headers=auth)
    # unknown routes, wrong methods
    await api.call("GET", "/api/v1/nope", headers=auth)
    await api.call("DELETE", "/api/v1/scan", headers=auth)
    # what a supervisor reads
    for path in (
        "/api/v1/supervisor/tours",
        "/api/v1/supervisor/alerts",
        "/api/v1/supervisor/exceptions",
        "/api/v1/supervisor/counts",
        "/api/v1/put-backs",
    ):
        await api.call("GET", path, headers=sup, who="supervisor")
    await api.call(
        "POST",
        "/api/v1/supervisor/stock/adjust",
        json_body={"sku": "NOPE", "location": "NOPE", "qty": 1, "reason": "x"},
        headers=sup,
        who="supervisor",
    )
    # metrics: the right token, a wrong one, none; health
    await api.call("GET", "/metrics", headers={"Authorization": "Bearer wrong"})
    await api.call("GET", "/metrics")
    for path in ("/healthz", "/livez", "/readyz?verbose=1"):
        await api.call("GET", path)
    # WebSockets: a bad token, then a good one
    for ws_token in ("forged", token):
        async with api.http.ws_connect(api.base + "/api/v1/ws") as ws:
            await ws.send_json({"type": "auth", "token": ws_token})
            with_answer = await ws.receive(timeout=5)
            api.rec.add(f"WS auth {'good' if ws_token == token else 'bad'}", 101, str(with_answer))
    return {"session token": token, "supervisor session token": sup_token}


async def _broken_http(host: str, port: int, rec: Recorder) -> None:
    for raw in (b"GET /\x00\xff HTTP/1.1\r\n\r\n", b"\x16\x03\x01junk\r\n\r\n", b"GARBAGE\r\n\r\n"):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(raw)
        await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(65536), 5)
        except (TimeoutError, ConnectionError):
            answer = b""
        writer.close()
        rec.add(f"raw {raw[:12]!r}", 0, answer.decode(errors="replace"))


@pytest.mark.slow
async def test_no_secret_or_customer_value_leaks(tmp_path: Path, processes: ProcessReaper) -> None:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is required (apt-get install mosquitto)")
    feed, gtins = _feed()
    work = tmp_path / "box"
    work.mkdir()
    # the cloud: the right secret, answering 401, 500 and a wrong signature now and then
    batch_faults = Faults(script=["401", "500", "bad_sig", "401", None, "500"])
    changes_faults = Faults(script=[None, "500", "401", None, "bad_sig"])
    broker = MosquittoBroker(tmp_path / "mosquitto")  # its password is not the canary
    broker.start()
    try:
        async with CloudSimulator(
            CANARIES["sync secret"],
            feed=feed,
            batch_faults=batch_faults,
            changes_faults=changes_faults,
            slow_s=0.2,
        ) as cloud:
            api_port = _free_port()
            config = _config(work, cloud=cloud.url, api_port=api_port, broker=broker)
            with Store.open(work / "box.db", box_id=BOX) as store:
                _, device_key = enroll_pda(store, "canary-pda")
                _, bad_key = enroll_pda(store, "failing-pda")
            log = work / "daemon.log"
            env = {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}
            with log.open("ab") as out:
                proc = await processes.exec(
                    sys.executable, "-m", "edge", "run", "--config", str(config),
                    "--log-format", "json", "--log-level", "debug",
                    cwd=ROOT, env=env, stdout=out, stderr=out,
                )  # fmt: skip
            base = f"http://127.0.0.1:{api_port}"
            await _wait_up(base, proc, log)
            await _pickers_loaded(work / "box.db")
            rec = Recorder()
            async with aiohttp.ClientSession() as http:
                api = Api(http, base, rec)
                tokens = await _busy_session(api, device_key, bad_key, gtins)
                await _broken_http("127.0.0.1", api_port, rec)
                # let the uploader, downloader and device meet their faults
                await asyncio.wait_for(
                    asyncio.gather(
                        batch_faults.script_done.wait(), changes_faults.script_done.wait()
                    ),
                    20,
                )
                status, metrics = await api.call(
                    "GET",
                    "/metrics",
                    headers={"Authorization": f"Bearer {CANARIES['metrics token']}"},
                )
                assert status == 200, metrics
                sup = {"Authorization": f"Bearer {tokens['supervisor session token']}"}
                status, dashboard = await api.call(
                    "GET", "/api/v1/dashboard", headers=sup, who="supervisor"
                )
                assert status == 200, dashboard
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        broker.stop()

    text = log.read_text(errors="replace")
    # the session was busy and met its errors (else the search proves nothing)
    assert batch_faults.drawn["401"] == 2 and batch_faults.drawn["500"] == 2
    assert changes_faults.drawn["401"] == 1
    assert sum(400 <= s < 500 for s in rec.statuses) >= 25, rec.statuses
    assert "pack-scanner" in text and "not authori" in text.lower(), text[-3000:]
    assert "pickedge_api_requests" in metrics or "pickedge_" in metrics
    assert len(rec.own) == 2  # the two successful logins, left out on purpose

    canaries = {**CANARIES, "device key": device_key, "other device key": bad_key, **tokens}
    places = [(f"log line {i}", line) for i, line in enumerate(text.splitlines(), 1)]
    places += [("metrics", metrics)]
    places += [(f"answer {what}", body) for what, body in rec.answers]
    found = leaks(canaries, places)
    assert not found, "\n".join(found[:40])
    # a supervisor's views (the dashboard among them): the pickers' names only
    assert any("dashboard" in what for what, _ in rec.supervisor_views)
    not_names = {k: v for k, v in canaries.items() if k not in NAMES_SHOWN_TO_SUPERVISORS}
    found = leaks(not_names, [(f"answer {w}", body) for w, body in rec.supervisor_views])
    assert not found, "\n".join(found[:40])
    # and the excluded answers hold only their owner's values
    for body in rec.own:
        assert not leaks({k: v for k, v in canaries.items() if "secret" in k}, [("login", body)])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
