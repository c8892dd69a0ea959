"""The OpenAPI document covers every route of the application, and only those."""

from __future__ import annotations

import re

from edge.api.app import route_table
from tests.support.api_fixtures import Zone


async def test_openapi_covers_every_route(zone: Zone) -> None:
    pda = await zone.picker()
    status, doc = await pda.call("GET", "/api/v1/openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    # the router's own table (edge.api.app.route_table), as aiohttp holds it
    served = {
        (method, pattern.replace("{name}", "{file}"))
        for method, pattern in route_table(zone.server.app)
    }
    assert served == documented
    # every $ref resolves
    text = str(doc)
    for ref in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert ref in doc["components"]["schemas"]
    results = doc["components"]["schemas"]["ScanAnswer"]["properties"]["result"]["enum"]
    for code in (
        "tour_started",
        "location_ok",
        "wrong_location",
        "item_ok",
        "stop_done",
        "wrong_item",
        "unknown_code",
        "over_pick",
        "tour_done",
    ):
        assert code in results
    # the answers of a short pick and a skip share the schema: their results too
    for code in ("rerouted", "short_recorded", "skipped"):
        assert code in results


def test_the_pack_answer_lists_every_pack_result() -> None:
    from edge.api.openapi import openapi_document
    from edge.shipping.packing import PackResult

    schema = openapi_document()["components"]["schemas"]["PackAnswer"]
    assert set(schema["properties"]["result"]["enum"]) == {r.value for r in PackResult}


def test_the_document_agrees_with_the_route_roles() -> None:
    """Routes of ROLES need the bearer token in the document, and those not for
    everyone document their 403; the public ones need no session."""
    from edge.api.app import _PUBLIC, EVERYONE, ROLES
    from edge.api.openapi import openapi_document

    paths = openapi_document()["paths"]
    for (method, pattern), roles in ROLES.items():
        op = paths[pattern][method.lower()]
        assert op["security"][0] == {"bearer": []}, (method, pattern)  # ws: or first message
        if roles != EVERYONE:
            assert "403" in op["responses"], (method, pattern)
    for method, pattern in _PUBLIC:
        assert {"bearer": []} not in paths[pattern][method.lower()]["security"], pattern
