"""Every route the router serves is authenticated, checked from the router's own
table (not from the hand-written OpenAPI document): a route added tomorrow is
tested here without anyone listing it (issue 14).

For each route but the public ones — missing, malformed, forged and expired
tokens all get 401 with the contract's JSON error, and nothing else of the
answer (``/metrics`` and its scrape token: tests/foundation/test_daemon_metrics.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from edge.api.app import _PUBLIC
from tests.support.api_fixtures import Zone

#: a value for each path parameter the routes use
PARAMS = {"station": "P1", "name": "pda.js", "file": "pda.js", "tour": "1", "alert": "1"}


def routes(zone: Zone) -> list[tuple[str, str]]:
    """(method, concrete path) of every route of the application."""
    out = []
    for route in zone.server.app.router.routes():
        if route.method == "HEAD":
            continue
        info: dict[str, Any] = route.resource.get_info() if route.resource else {}
        path = str(info.get("path") or info.get("formatter"))
        out.append((route.method, re.sub(r"\{(\w+)\}", lambda m: PARAMS[m[1]], path)))
    return sorted(set(out))


def protected(zone: Zone) -> list[tuple[str, str]]:
    return [
        (method, path)
        for method, path in routes(zone)
        if (method, path) not in _PUBLIC and not path.startswith("/static/")
    ]


async def call(zone: Zone, method: str, path: str, auth: str | None) -> tuple[int, Any]:
    headers = {"Authorization": auth} if auth is not None else {}
    async with zone.http.request(method, f"{zone.base}{path}", headers=headers, json={}) as answer:
        return answer.status, await answer.json(content_type=None)


def test_the_public_routes_are_routes_and_few(zone: Zone) -> None:
    served = set(routes(zone))
    assert served >= _PUBLIC  # no stale entry that would open a future route
    # the pages are static shells (their data comes from authenticated routes)
    assert {p for _, p in _PUBLIC} == {
        "/",
        "/pack",
        "/dashboard",
        "/healthz",
        "/livez",
        "/readyz",
        "/api/v1/sessions",
    }
    assert len(protected(zone)) >= 9, protected(zone)


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic cGlja2VyOnBhc3N3b3Jk",
        "Bearer forged-token",
        "Bearer " + "A" * 4000,
        "bearer forged-token",
    ],
    ids=["missing", "empty", "no-token", "blank", "basic", "forged", "huge", "lowercase"],
)
async def test_every_protected_route_refuses_a_missing_or_forged_token(
    zone: Zone, auth: str | None
) -> None:
    for method, path in protected(zone):
        if path == "/api/v1/ws" and not auth:
            continue  # the socket authenticates with its first message (test_api_sessions)
        status, body = await call(zone, method, path, auth)
        assert status == 401, (method, path, auth, status, body)
        assert body["error"]["code"] == "unauthorized", (method, path, body)
        assert set(body) == {"error"}


async def test_every_protected_route_refuses_an_expired_session(
    zone: Zone, monkeypatch: pytest.MonkeyPatch
) -> None:
    pda = await zone.picker()
    ttl_ms = zone.cfg.api.token_ttl_s * 1000
    base = zone.store.uptime_ms()
    monkeypatch.setattr(zone.store, "uptime_ms", lambda: base + ttl_ms + 1)
    for method, path in protected(zone):
        status, body = await call(zone, method, path, f"Bearer {pda.token}")
        assert status == 401, (method, path, status, body)
        assert body["error"]["code"] == "unauthorized"
