"""The admin API (issue 14): enrolling, listing and revoking PDAs over HTTP,
for the ``admin`` role only, with the same rules and transactions as
``pickedge pda`` (edge.api.auth)."""

from __future__ import annotations

import json
import logging

import pytest

from edge.api import auth
from tests.support.api_fixtures import Pda, Zone

ADMIN_PDAS = "/api/v1/admin/pdas"


async def admin(zone: Zone) -> Pda:
    auth.add_picker(zone.store, "A1", "Ada", "BADGE-A", "admin")
    return await zone.picker("BADGE-A")


async def test_an_enrolled_key_logs_in_and_a_revoke_ends_its_session_and_key(
    zone: Zone, caplog: pytest.LogCaptureFixture
) -> None:
    a = await admin(zone)
    caplog.set_level(logging.INFO)
    status, body = await a.call("POST", ADMIN_PDAS, {"name": "  handheld-07 "})
    assert status == 201, body
    assert body["pda"] == "handheld-07" and body["id"].startswith("pda-")
    key = body["key"]

    pda = Pda(zone.http, zone.base, key)
    await pda.login("BADGE-1")
    assert (await pda.tour())[0] == 404  # a live session: no tour yet

    status, listed = await a.call("GET", ADMIN_PDAS)
    assert status == 200
    row = next(p for p in listed["pdas"] if p["name"] == "handheld-07")
    assert row == {
        "id": body["id"],
        "name": "handheld-07",
        "enrolled_ms": row["enrolled_ms"],
        "revoked_ms": None,
        "sessions": 1,
    }
    assert key not in json.dumps(listed)

    status, done = await a.call("POST", f"{ADMIN_PDAS}/handheld-07/revoke")
    assert (status, done) == (200, {"pda": body["id"], "revoked": True, "sessions_ended": 1})
    status, err = await pda.tour()
    assert (status, err["error"]["code"]) == (401, "unauthorized")
    async with zone.http.post(
        f"{zone.base}/api/v1/sessions", json={"badge": "BADGE-1"}, headers={"X-Device-Key": key}
    ) as answer:
        assert (answer.status, (await answer.json())["error"]["code"]) == (401, "unknown_device")

    status, listed = await a.call("GET", ADMIN_PDAS)
    row = next(p for p in listed["pdas"] if p["name"] == "handheld-07")
    assert row["revoked_ms"] is not None and row["sessions"] == 0
    # revoking again changes nothing; by id works too
    status, again = await a.call("POST", f"{ADMIN_PDAS}/{body['id']}/revoke")
    assert (status, again["sessions_ended"]) == (200, 0)

    # audited: who enrolled and revoked, never the key
    audit = [r for r in caplog.records if r.getMessage() in ("PDA enrolled", "PDA revoked")]
    assert [(r.getMessage(), r.__dict__["picker"]) for r in audit[:2]] == [
        ("PDA enrolled", "A1"),
        ("PDA revoked", "A1"),
    ]
    for r in caplog.records:
        assert key not in r.getMessage() and key not in repr(r.__dict__)


async def test_an_existing_name_is_409_and_an_unknown_pda_404(zone: Zone) -> None:
    a = await admin(zone)
    zone.pda("taken")
    before = len(auth.list_pdas(zone.store))
    status, body = await a.call("POST", ADMIN_PDAS, {"name": "taken"})
    assert (status, body["error"]["code"]) == (409, "pda_exists")
    status, body = await a.call("POST", f"{ADMIN_PDAS}/nobody/revoke")
    assert (status, body["error"]["code"]) == (404, "unknown_pda")
    assert len(auth.list_pdas(zone.store)) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": 7},
        {"name": "x" * 65},
        {"name": "bell\x07"},
        {"name": "\ud800"},
        {"name": None},
    ],
    ids=["missing", "empty", "blank", "int", "long", "control", "surrogate", "null"],
)
async def test_a_bad_name_is_400_and_enrols_nothing(zone: Zone, body: dict[str, object]) -> None:
    a = await admin(zone)
    before = len(auth.list_pdas(zone.store))
    status, answer = await a.call("POST", ADMIN_PDAS, body)
    assert (status, answer["error"]["code"]) == (400, "invalid_request"), answer
    assert len(auth.list_pdas(zone.store)) == before


async def test_a_supervisor_and_a_picker_get_403(zone: Zone) -> None:
    zone.pda("handheld-01")
    for badge in ("BADGE-S", "BADGE-1"):
        who = await zone.picker(badge)
        for method, path, body in (
            ("GET", ADMIN_PDAS, None),
            ("POST", ADMIN_PDAS, {"name": "sneaky"}),
            ("POST", f"{ADMIN_PDAS}/handheld-01/revoke", None),
        ):
            status, answer = await who.call(method, path, body)
            assert (status, answer["error"]["code"]) == (403, "forbidden"), (badge, path)
            assert answer["error"]["message"] == "only an admin may do this"
    names = {p.name: p.revoked_ms for p in auth.list_pdas(zone.store)}
    assert "sneaky" not in names and names["handheld-01"] is None
