"""Every route the router serves is authenticated and role-checked, tested from
the router's own table (not from the hand-written OpenAPI document) and
:data:`edge.api.app.ROLES`: a route added tomorrow is tested here without
anyone listing it (issue 14).

For each route but the public ones — missing, malformed, forged and expired
tokens all get 401 with the contract's JSON error and nothing else of the
answer; a token of each role the route does not allow gets 403 ``forbidden``
and changes nothing in the database; a role it allows is let through to the
handler (which may still refuse the dummy parameters with 400/404).
``/metrics`` and its scrape token: tests/foundation/test_daemon_metrics.py.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from edge.api import app as api_app
from edge.api import auth
from edge.api.app import _PUBLIC, ROLES, create_app, route_table
from edge.picking import PickingService
from tests.support.api_fixtures import Pda, Zone

#: a value for each path parameter the routes use
PARAMS = {
    "station": "P1",
    "name": "pda.js",
    "file": "pda.js",
    "tour": "1",
    "alert": "1",
    "pda": "no-such-pda",
}
#: a picker of each role (P1 and S1 are seeded; the admin is added here)
BADGES = {"picker": "BADGE-1", "supervisor": "BADGE-S", "admin": "BADGE-A"}


def routes(zone: Zone) -> list[tuple[str, str, str]]:
    """(method, path pattern, concrete path) of every route of the application."""
    return sorted(
        (method, pattern, re.sub(r"\{(\w+)\}", lambda m: PARAMS[m[1]], pattern))
        for method, pattern in route_table(zone.server.app)
    )


def protected(zone: Zone) -> list[tuple[str, str, str]]:
    return [
        (method, pattern, path)
        for method, pattern, path in routes(zone)
        if (method, pattern) not in _PUBLIC and not path.startswith("/static/")
    ]


async def call(zone: Zone, method: str, path: str, auth_: str | None) -> tuple[int, Any]:
    headers = {"Authorization": auth_} if auth_ is not None else {}
    async with zone.http.request(method, f"{zone.base}{path}", headers=headers, json={}) as answer:
        return answer.status, await answer.json(content_type=None)


def digest(zone: Zone) -> str:
    """A hash of every row of every table: any write shows."""
    h = hashlib.sha256()
    tables = zone.store.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    for t in tables:
        h.update(t["name"].encode())
        rows = zone.store.query(f'SELECT * FROM "{t["name"]}"')  # some are WITHOUT ROWID
        for row in sorted(repr(sorted(r.items())) for r in rows):
            h.update(row.encode())
    return h.hexdigest()


async def logged_in(zone: Zone) -> dict[str, Pda]:
    auth.add_picker(zone.store, "A1", "Ada", BADGES["admin"], "admin")
    return {role: await zone.picker(badge) for role, badge in BADGES.items()}


def test_the_public_routes_are_routes_and_few(zone: Zone) -> None:
    served = route_table(zone.server.app)
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


def test_every_protected_route_has_its_roles(zone: Zone) -> None:
    for method, pattern, _ in protected(zone):
        assert (method, pattern) in ROLES, (method, pattern)
        assert ROLES[method, pattern] <= set(auth.ROLES)
    assert set(ROLES) <= route_table(zone.server.app)
    # what the issue asks of the supervisor's and the admin's routes
    for (_, pattern), roles in ROLES.items():
        if pattern.startswith(("/api/v1/supervisor/", "/api/v1/dashboard")):
            assert roles == {"supervisor", "admin"}, pattern
        elif pattern.startswith("/api/v1/admin/"):
            assert roles == {"admin"}, pattern
        else:
            assert roles == set(auth.ROLES), pattern


def test_an_app_with_a_route_without_roles_is_refused(
    zone: Zone, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_app, "ROLES", {k: v for k, v in ROLES.items() if k[0] != "DELETE"})
    picking = PickingService(zone.store, zone.cfg.layout_dict())
    with pytest.raises(RuntimeError, match="DELETE"):
        create_app(zone.store, zone.cfg, picking=picking)


@pytest.mark.parametrize(
    "auth_",
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
    zone: Zone, auth_: str | None
) -> None:
    for method, _, path in protected(zone):
        if path == "/api/v1/ws" and not auth_:
            continue  # the socket authenticates with its first message (test_api_sessions)
        status, body = await call(zone, method, path, auth_)
        assert status == 401, (method, path, auth_, status, body)
        assert body["error"]["code"] == "unauthorized", (method, path, body)
        assert set(body) == {"error"}


async def test_every_protected_route_refuses_an_expired_session(
    zone: Zone, monkeypatch: pytest.MonkeyPatch
) -> None:
    pdas = await logged_in(zone)
    ttl_ms = zone.cfg.api.token_ttl_s * 1000
    base = zone.store.uptime_ms()
    monkeypatch.setattr(zone.store, "uptime_ms", lambda: base + ttl_ms + 1)
    for method, _, path in protected(zone):
        for pda in pdas.values():
            status, body = await call(zone, method, path, f"Bearer {pda.token}")
            assert status == 401, (method, path, status, body)
            assert body["error"]["code"] == "unauthorized"


async def test_every_protected_route_refuses_a_role_it_does_not_allow(zone: Zone) -> None:
    pdas = await logged_in(zone)
    refused = 0
    for method, pattern, path in protected(zone):
        for role, pda in pdas.items():
            if role in ROLES[method, pattern]:
                continue
            before = digest(zone)
            status, body = await call(zone, method, path, f"Bearer {pda.token}")
            assert status == 403, (role, method, path, status, body)
            assert body["error"]["code"] == "forbidden", (role, method, path, body)
            assert set(body) == {"error"}
            assert digest(zone) == before, (role, method, path)
            refused += 1
    assert refused >= 12  # pickers on 9 supervisor routes and 3 admin routes, at least


async def test_every_protected_route_lets_a_role_it_allows_through(zone: Zone) -> None:
    pdas = await logged_in(zone)
    for method, pattern, path in protected(zone):
        for role in sorted(ROLES[method, pattern]):
            token = pdas[role].token
            if (method, pattern) == ("DELETE", "/api/v1/sessions"):
                token = (await zone.picker(BADGES[role])).token  # logout ends it
            status, body = await call(zone, method, path, f"Bearer {token}")
            assert status not in (401, 403), (role, method, path, status, body)
            assert status < 500, (role, method, path, status, body)
