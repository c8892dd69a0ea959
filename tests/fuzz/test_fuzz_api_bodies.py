"""Fuzz what a PDA sends: the body checks (edge/api/validate.py) on their own,
and every route that takes a body through a real server on loopback.

``json_object``, ``text``, ``integer`` and ``path_text`` raise nothing but
:class:`~edge.api.validate.BadInputError`; a route answers any body with a
documented status, a 4xx with the contract's JSON error and never a 5xx, and
the server logs no ERROR; every call within the budget."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.api import validate
from edge.api.validate import BadInputError
from tests.fuzz._harness import (
    FUZZ,
    Refused,
    json_mutated,
    json_values,
    mutated,
    nested,
    scaled,
    within_budget,
)
from tests.fuzz._live import LiveBox, live_box


@FUZZ
@given(raw=st.one_of(st.binary(max_size=512), json_values().map(lambda d: json.dumps(d).encode())))
def test_json_object_any_body(raw: bytes) -> None:
    body = within_budget(lambda: validate.json_object(raw), declared=(BadInputError,))
    if not isinstance(body, Refused):
        assert isinstance(body, dict)


@FUZZ
@given(
    depth=st.sampled_from([31, 32, 33, 1000, 100_000]),
    filler=st.sampled_from(['"', '\\"', '"\\', "[", "{", '"[', "x"]),
    count=st.sampled_from([1, 1000, 300_000]),
)
def test_json_object_hostile_shapes(depth: int, filler: str, count: int) -> None:
    """Deep nesting and bodies of quotes, escapes and brackets up to ~1 MiB."""
    for raw in (nested(depth), "{" * 40 + filler * count, filler * count + nested(depth)):
        within_budget(lambda: validate.json_object(raw.encode()), declared=(BadInputError,))  # noqa: B023


@FUZZ
@given(value=json_values(), limit=st.sampled_from([1, 64, 4096]))
def test_field_checks_any_value(value: Any, limit: int) -> None:
    body = {"f": value}
    within_budget(lambda: validate.text(body, "f", limit), declared=(BadInputError,))
    within_budget(lambda: validate.integer(body, "f"), declared=(BadInputError,))
    if isinstance(value, str):
        within_budget(lambda: validate.path_text(value, "f", limit), declared=(BadInputError,))


# --------------------------------------------------------------------------- a real server

#: (path, bearer role, a valid body): every route that reads a body
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("/api/v1/sessions", "device", {"badge": "BADGE-2"}),
    ("/api/v1/scan", "picker", {"code": "T-1", "scan_id": "s-1"}),
    ("/api/v1/tour/short", "picker", {"stop": 1, "found": 0, "reason": "empty"}),
    ("/api/v1/tour/skip", "picker", {"stop": 1}),
    ("/api/v1/tour/count", "picker", {"stop": 1, "counted": 3}),
    ("/api/v1/pack/scan", "picker", {"station": "P1", "code": "T-1", "scan_id": "p-1"}),
    ("/api/v1/supervisor/tours/1/release", "supervisor", {"reason": "break"}),
    ("/api/v1/supervisor/tours/1/reassign", "supervisor", {"picker": "P2", "reason": "x"}),
    (
        "/api/v1/supervisor/stock/adjust",
        "supervisor",
        {"sku": "SKU-A", "location": "A-01-05", "qty": 1, "reason": "found"},
    ),
    ("/api/v1/supervisor/alerts/1/ack", "supervisor", {}),
]
_ROUTE = st.sampled_from(range(len(ROUTES)))


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBox]:
    with live_box(tmp_path_factory.mktemp("api-bodies")) as b:
        yield b


def _post(box: LiveBox, index: int, raw: bytes) -> tuple[int, Any]:
    path, role, _ = ROUTES[index]
    headers = {"Content-Type": "application/json"}
    if role == "device":
        headers["X-Device-Key"] = box.device_key
    else:
        token = box.picker_token if role == "picker" else box.supervisor_token
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(box.base + path, data=raw, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _check(box: LiveBox, index: int, raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    status, answer = within_budget(lambda: _post(box, index, raw))  # type: ignore[misc]
    assert status < 500, (ROUTES[index][0], status, answer)
    if status >= 400:
        assert isinstance(answer, dict) and set(answer) == {"error"}, answer
        assert set(answer["error"]) == {"code", "message"}, answer
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not loud, loud


@scaled(60)
@given(index=_ROUTE, data=st.data())
def test_routes_mutated_bodies(
    box: LiveBox, caplog: pytest.LogCaptureFixture, index: int, data: st.DataObject
) -> None:
    body = data.draw(json_mutated(st.just(ROUTES[index][2]).map(dict)))
    _check(box, index, json.dumps(body).encode(), caplog)


@scaled(60)
@given(index=_ROUTE, data=st.data())
def test_routes_mutated_bytes(
    box: LiveBox, caplog: pytest.LogCaptureFixture, index: int, data: st.DataObject
) -> None:
    raw = data.draw(mutated(st.just(json.dumps(ROUTES[index][2]).encode())))
    _check(box, index, raw, caplog)


@scaled(30)
@given(index=_ROUTE, raw=st.binary(max_size=256))
def test_routes_any_bytes(
    box: LiveBox, caplog: pytest.LogCaptureFixture, index: int, raw: bytes
) -> None:
    _check(box, index, raw, caplog)
