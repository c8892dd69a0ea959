"""Every error of the PDA API: stable code, JSON body, counted, nothing leaked."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from edge.api.app import PICKING
from edge.store.outbox import mark_acked
from tests.support.api_fixtures import Zone, add_task


def _count(code: str) -> float:
    value = REGISTRY.get_sample_value("pickedge_api_bad_requests_total", {"code": code})
    return value or 0.0


async def test_healthz_says_only_ok(zone: Zone) -> None:
    async with zone.http.get(f"{zone.base}/healthz") as r:
        assert r.status == 200
        assert await r.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/scan"),
        ("GET", "/api/v1/tour"),
        ("POST", "/api/v1/tour/short"),
        ("POST", "/api/v1/tour/skip"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/layout"),
        ("DELETE", "/api/v1/sessions"),
    ],
)
async def test_routes_need_a_session(zone: Zone, method: str, path: str) -> None:
    before = _count("unauthorized")
    async with zone.http.request(method, zone.base + path, json={}) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorized"
    async with zone.http.request(
        method, zone.base + path, json={}, headers={"Authorization": "Bearer forged"}
    ) as r:
        assert r.status == 401
    assert _count("unauthorized") == before + 2


async def test_malformed_json_is_bad_json(zone: Zone) -> None:
    pda = await zone.picker()
    before = _count("bad_json")
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        async with zone.http.post(
            f"{zone.base}/api/v1/scan",
            data=body,
            headers={"Authorization": f"Bearer {pda.token}", "Content-Type": "application/json"},
        ) as r:
            assert r.status == 400
            assert (await r.json())["error"]["code"] == "bad_json"
    assert _count("bad_json") == before + 3


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"code": "X"},
        {"scan_id": "1"},
        {"code": "", "scan_id": "1"},
        {"code": 5, "scan_id": "1"},
    ],
)
async def test_missing_fields_are_invalid_request(zone: Zone, body: dict[str, object]) -> None:
    pda = await zone.picker()
    status, answer = await pda.call("POST", "/api/v1/scan", body)
    assert (status, answer["error"]["code"]) == (400, "invalid_request")


async def test_oversized_body_is_413(zone: Zone) -> None:
    pda = await zone.picker()
    before = _count("body_too_large")
    big = {"code": "X" * (zone.cfg.api.max_body_bytes + 10), "scan_id": "1"}
    status, answer = await pda.call("POST", "/api/v1/scan", big)
    assert (status, answer["error"]["code"]) == (413, "body_too_large")

    # chunked, without a Content-Length: still refused
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 8192

    async with zone.http.post(
        f"{zone.base}/api/v1/scan", data=chunks(), headers={"Authorization": f"Bearer {pda.token}"}
    ) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "body_too_large"
    assert _count("body_too_large") == before + 2


async def test_unknown_route_and_wrong_method(zone: Zone) -> None:
    async with zone.http.get(f"{zone.base}/api/v1/nothing-here") as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "not_found"
    async with zone.http.get(f"{zone.base}/static/missing.js") as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "not_found"
    async with zone.http.get(f"{zone.base}/api/v1/scan") as r:
        assert r.status == 405
        assert (await r.json())["error"]["code"] == "method_not_allowed"
        assert "POST" in r.headers["Allow"]


async def test_internal_error_leaks_no_traceback(
    zone: Zone, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pda = await zone.picker()

    async def boom(*args: object) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(zone.server.app[PICKING], "scan", boom)
    before = _count("internal_error")
    with caplog.at_level(logging.ERROR, logger="edge.api.app"):
        status, body = await pda.call("POST", "/api/v1/scan", {"code": "X", "scan_id": "1"})
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert "secret" not in body["error"]["message"] and "Traceback" not in str(body)
    assert _count("internal_error") == before + 1
    logged = [r for r in caplog.records if r.name == "edge.api.app"]
    assert len(logged) == 1 and logged[0].exc_info is not None


async def test_bad_requests_are_logged_once_with_context(
    zone: Zone, caplog: pytest.LogCaptureFixture
) -> None:
    pda = await zone.picker()
    with caplog.at_level(logging.WARNING, logger="edge.api.app"):
        await pda.call("POST", "/api/v1/tour/short", {"stop": "x", "found": 0})
    (record,) = [r for r in caplog.records if r.name == "edge.api.app"]
    assert record.__dict__["path"] == "/api/v1/tour/short"
    assert record.__dict__["picker"] == "P1"
    assert pda.token not in record.getMessage()


async def test_tour_errors(zone: Zone) -> None:
    pda = await zone.picker()
    status, body = await pda.tour()
    assert (status, body["error"]["code"]) == (404, "no_tour")
    status, body = await pda.short(1, 0)
    assert (status, body["error"]["code"]) == (404, "no_tour")
    add_task(zone.store, "T-1", [("SKU-A", 2)])
    await pda.scan("T-1")
    status, body = await pda.short(99, 0)
    assert (status, body["error"]["code"]) == (404, "unknown_stop")
    status, body = await pda.short(1, 5)
    assert (status, body["error"]["code"]) == (400, "invalid_short")
    status, body = await pda.short(1, 0, reason="lunch")
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    status, body = await pda.call("POST", "/api/v1/tour/skip", {"stop": 42})
    assert (status, body["error"]["code"]) == (404, "unknown_stop")


async def test_a_full_backlog_refuses_the_unit_and_changes_nothing(tmp_path: object) -> None:
    """At the outbox's hard limit the scan is refused with 503 backlog_full:
    the unit is not counted, nothing is half-written, the retry works later."""
    from pathlib import Path

    import aiohttp
    from aiohttp.test_utils import TestServer

    from edge.api import auth, create_app
    from edge.config import load_config
    from edge.picking import PickingService
    from edge.store.db import Store
    from tests.support.api_fixtures import GTIN_A, Pda, seed_zone, write_config

    assert isinstance(tmp_path, Path)
    cfg = load_config(write_config(tmp_path))
    store = Store.open(cfg.store_path(), box_id=cfg.box.id, max_backlog=2)
    seed_zone(store)
    add_task(store, "T-1", [("SKU-A", 3)])
    _, key = auth.enroll_pda(store, "h")
    server = TestServer(create_app(store, cfg, picking=PickingService(store, cfg.layout_dict())))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            pda = Pda(http, str(server.make_url("")).rstrip("/"), key)
            await pda.login("BADGE-1")
            await pda.scan("T-1")
            await pda.scan("A-01-05")
            assert (await pda.scan(GTIN_A, scan_id="u1"))["result"] == "item_ok"  # seq 1, 2
            before = _count("backlog_full")
            status, body = await pda.call("POST", "/api/v1/scan", {"code": GTIN_A, "scan_id": "u2"})
            assert (status, body["error"]["code"]) == (503, "backlog_full")
            assert _count("backlog_full") == before + 1
            assert store.query("SELECT picked FROM tour_stops") == [{"picked": 1}]
            assert store.query("SELECT COUNT(*) AS n FROM scans WHERE scan_id = 'u2'") == [{"n": 0}]
            # the cloud acks: the same scan_id goes through
            store.run(lambda tx: mark_acked(tx, store.epoch, 2))
            assert (await pda.scan(GTIN_A, scan_id="u2"))["result"] == "item_ok"
    finally:
        await server.close()
        store.close()


async def test_requests_while_draining_are_told_to_come_back(zone: Zone) -> None:
    from edge.api.app import STATE

    pda = await zone.picker()
    zone.server.app[STATE].draining = True
    status, body = await pda.call("POST", "/api/v1/scan", {"code": "START", "scan_id": "d1"})
    assert (status, body["error"]["code"]) == (503, "draining")
    assert zone.store.query("SELECT COUNT(*) AS n FROM scans") == [{"n": 0}]
