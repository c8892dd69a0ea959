"""Login by badge on an enrolled PDA, rate limiting, revocation, logout, WebSocket auth."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from edge.api import auth
from tests.support.api_fixtures import Zone, add_task


async def _login(zone: Zone, key: str | None, badge: str) -> tuple[int, dict[str, object]]:
    headers = {"X-Device-Key": key} if key is not None else {}
    async with zone.http.post(
        f"{zone.base}/api/v1/sessions", json={"badge": badge}, headers=headers
    ) as r:
        return r.status, await r.json()


async def test_login_gives_a_token_and_stores_only_its_hash(zone: Zone) -> None:
    pda = zone.pda()
    body = await pda.login("BADGE-S")
    assert body["picker"] == {"id": "S1", "name": "Sue", "role": "supervisor"}
    token = body["token"]
    assert isinstance(token, str) and len(token) >= 40
    rows = zone.store.query("SELECT token_hash FROM sessions")
    assert rows == [{"token_hash": auth.hash_secret(token)}]
    keys = zone.store.query("SELECT key_hash FROM pdas")
    assert pda.device_key not in str(keys)


async def test_unknown_badge_and_unknown_device(zone: Zone) -> None:
    pda = zone.pda()
    status, body = await _login(zone, pda.device_key, "NOBODY")
    assert (status, body["error"]["code"]) == (401, "unknown_badge")
    status, body = await _login(zone, "not-a-key", "BADGE-1")
    assert (status, body["error"]["code"]) == (401, "unknown_device")
    status, body = await _login(zone, None, "BADGE-1")
    assert (status, body["error"]["code"]) == (401, "unknown_device")


async def test_repeated_failures_are_rate_limited(zone: Zone) -> None:
    pda = zone.pda()
    codes = [(await _login(zone, pda.device_key, f"GUESS-{i}"))[0] for i in range(5)]
    assert codes == [401] * 5
    async with zone.http.post(
        f"{zone.base}/api/v1/sessions",
        json={"badge": "BADGE-1"},
        headers={"X-Device-Key": pda.device_key},
    ) as r:
        assert r.status == 429
        assert (await r.json())["error"]["code"] == "too_many_attempts"
        assert int(r.headers["Retry-After"]) >= 1


async def test_revoking_a_pda_ends_its_sessions(zone: Zone) -> None:
    name = "revoke-me"
    _, key = auth.enroll_pda(zone.store, name)
    from tests.support.api_fixtures import Pda

    pda = Pda(zone.http, zone.base, key)
    await pda.login("BADGE-1")
    assert (await pda.tour())[0] == 404  # authenticated, no tour
    auth.revoke_pda(zone.store, name)
    status, body = await pda.tour()
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    status, body = await _login(zone, key, "BADGE-1")
    assert (status, body["error"]["code"]) == (401, "unknown_device")


async def test_logout_ends_the_session(zone: Zone) -> None:
    pda = await zone.picker()
    async with zone.http.delete(
        f"{zone.base}/api/v1/sessions", headers={"Authorization": f"Bearer {pda.token}"}
    ) as r:
        assert r.status == 204
    assert (await pda.tour())[0] == 401


async def test_websocket_first_message_auth_and_tour_push(zone: Zone) -> None:
    pda = await zone.picker()
    async with zone.http.ws_connect(f"{zone.base}/api/v1/ws") as ws:
        await ws.send_json({"type": "auth", "token": pda.token})
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "message"
        add_task(zone.store, "T-1", [("SKU-A", 1)])
        answer = await pda.scan("T-1")
        pushed = await ws.receive_json(timeout=5)
        assert pushed == {"type": "tour_assigned", "tour": answer["tour"]}


async def test_websocket_header_auth_and_task_cancelled(zone: Zone) -> None:
    pda = await zone.picker()
    async with zone.http.ws_connect(
        f"{zone.base}/api/v1/ws", headers={"Authorization": f"Bearer {pda.token}"}
    ) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "message"
        from edge.api.app import HUB

        class Notice:
            picker = "P1"
            task = "T-9"
            message = None

        zone.server.app[HUB].deliver([Notice()])
        pushed = await ws.receive_json(timeout=5)
        assert pushed["type"] == "task_cancelled" and pushed["task"] == "T-9"


async def test_websocket_bad_first_message_is_closed(zone: Zone) -> None:
    async with zone.http.ws_connect(f"{zone.base}/api/v1/ws") as ws:
        await ws.send_json({"type": "auth", "token": "forged"})
        err = await ws.receive_json(timeout=5)
        assert err["error"]["code"] == "unauthorized"
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4401
    # a wrong header is refused before the upgrade
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with zone.http.ws_connect(
            f"{zone.base}/api/v1/ws", headers={"Authorization": "Bearer forged"}
        ):
            pass
    assert refused.value.status == 401


async def test_concurrent_logins_are_independent(zone: Zone) -> None:
    pdas = [zone.pda() for _ in range(5)]
    bodies = await asyncio.gather(*(p.login("BADGE-1") for p in pdas))
    assert len({b["token"] for b in bodies}) == 5


async def test_sessions_expire_on_box_uptime_not_the_wall_clock(
    zone: Zone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A box boots with a wrong clock and NTP jumps it forward by years: the
    pickers stay logged in; their sessions end after the token lifetime of
    *uptime*."""
    import time as time_module

    pda = await zone.picker()
    real = time_module.time_ns
    monkeypatch.setattr(time_module, "time_ns", lambda: real() + 10 * 365 * 86_400 * 10**9)
    monkeypatch.setattr(time_module, "time", lambda: real() / 1e9 + 10 * 365 * 86_400)
    status, _ = await pda.call("GET", "/api/v1/tour")
    assert status in (200, 404)  # logged in: a tour or no_tour, never 401
    ttl_ms = zone.cfg.api.token_ttl_s * 1000
    base = zone.store.uptime_ms()
    monkeypatch.setattr(zone.store, "uptime_ms", lambda: base + ttl_ms + 1)
    status, doc = await pda.call("GET", "/api/v1/tour")
    assert status == 401 and doc["error"]["code"] == "unauthorized"
