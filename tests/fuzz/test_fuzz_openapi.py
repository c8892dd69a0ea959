"""schemathesis against the OpenAPI document the box serves
(``GET /api/v1/openapi.json``), sent to a real server on loopback with a real
admin's session (the role that may call every route) and an enrolled PDA's
key.

Every generated request, valid or not, gets no 5xx, a status the document
lists for the operation, the content type it lists and a body that conforms
to its schema. ``DELETE /api/v1/sessions`` would end the session the other
cases use, and so would revoking the PDA it came from (``POST
/api/v1/admin/pdas/{pda}/revoke`` with a generated id of 1); ``GET
/api/v1/ws`` is a WebSocket upgrade: these are left out (tests/api covers
them)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from edge.api.openapi import openapi_document
from tests.fuzz._harness import FUZZ, LONG
from tests.fuzz._live import LiveBox, live_box

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBox]:
    with live_box(tmp_path_factory.mktemp("openapi")) as b:
        yield b


def _served(box: LiveBox) -> dict[str, Any]:
    request = urllib.request.Request(
        box.base + "/api/v1/openapi.json",
        headers={"Authorization": f"Bearer {box.supervisor_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        doc: dict[str, Any] = json.load(answer)
    return doc


def _operations(box: LiveBox) -> list[Any]:
    doc = _served(box)
    doc["servers"] = [{"url": box.base}]
    schema = schemathesis.openapi.from_dict(doc)
    return [
        result.ok()
        for result in schema.get_all_operations()
        if (result.ok().method.upper(), result.ok().path) not in SKIPPED
    ]


SKIPPED = {
    ("DELETE", "/api/v1/sessions"),
    ("GET", "/api/v1/ws"),
    ("POST", "/api/v1/admin/pdas/{pda}/revoke"),
}
_PER_OPERATION = min(150 if LONG else 12, FUZZ.max_examples)


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_every_operation_conforms(box: LiveBox, mode: GenerationMode) -> None:
    """Each operation in turn, valid (positive) or invalid (negative) requests.

    schemathesis' own pytest integration (``from_fixture``) does not run under
    pytest 9 (it reads a private ``_nodeid``), so each operation's strategy is
    driven by hypothesis here; the checks are schemathesis'."""
    headers = {
        "Authorization": f"Bearer {box.admin_token}",
        "X-Device-Key": box.device_key,
    }
    failures: list[str] = []
    untestable: list[str] = []
    for operation in _operations(box):

        @settings(FUZZ, max_examples=_PER_OPERATION)
        @given(case=operation.as_strategy(mode))
        def call(case: schemathesis.Case) -> None:
            sent = {**headers, **{k: v for k, v in (case.headers or {}).items()}}
            case.call_and_validate(base_url=box.base, headers=sent, checks=CHECKS, timeout=10)

        try:
            call()
        except (Unsatisfiable, FailedHealthCheck):
            # no invalid request exists (no parameters, no body) or almost none
            assert mode is GenerationMode.NEGATIVE, operation.path
            untestable.append(f"{operation.method.upper()} {operation.path}")
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert len(untestable) <= 6, untestable  # GET /, /dashboard, /pack, /healthz, /livez, /static


def test_the_served_document_is_the_one_in_the_code(box: LiveBox) -> None:
    assert _served(box) == openapi_document()
