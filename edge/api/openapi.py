"""The OpenAPI 3.1 document of the PDA API, served at ``/api/v1/openapi.json``.

Built from plain dicts so it needs no generator; a test checks that every route
of the application appears here and that every path here is a route.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from edge.picking.model import Feedback, ScanResult

_ERROR_CODES = [
    "bad_json",
    "invalid_request",
    "body_too_large",
    "not_found",
    "method_not_allowed",
    "unauthorized",
    "unknown_device",
    "unknown_badge",
    "too_many_attempts",
    "no_tour",
    "unknown_stop",
    "stop_closed",
    "invalid_short",
    "scan_id_conflict",
    "draining",
    "backlog_full",
    "storage_full",
    "store_error",
    "internal_error",
    "bad_http",
    "too_many_connections",
    "unknown_station",
    "shipping_error",
    "forbidden",
    "unknown_tour",
    "tour_not_active",
    "unknown_picker",
    "picker_busy",
    "unknown_location",
    "unknown_sku",
    "below_reserved",
    "unknown_alert",
    "alert_cleared",
    "pda_exists",
    "unknown_pda",
]

#: every ``result`` an answer of scan, short or skip can carry
SCAN_RESULTS = [str(result) for result in ScanResult]
FEEDBACK = [str(feedback) for feedback in Feedback]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON (`bad_json`) or fields (`invalid_request`)",
        401: "Not logged in (`unauthorized`)",
        403: "The caller's role may not do this (`forbidden`)",
        404: "Not found",
        409: "Conflict with the picker's state",
        413: "Body larger than `api.max_body_bytes` (`body_too_large`)",
        429: "Too many failed logins (`too_many_attempts`)",
        500: "Internal error (`internal_error`), nothing leaked",
        503: "The store refused the write (`backlog_full`, `storage_full`, …) or draining",
    }
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


_COMMON = (400, 401, 413, 500, 503)
_TOUR_PARAM = {"name": "tour", "in": "path", "required": True, "schema": {"type": "integer"}}


@cache
def openapi_document(*, metrics: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the routes served (``/metrics`` only when on)."""
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "examples": _ERROR_CODES},
                        "message": {"type": "string"},
                    },
                }
            },
        },
        "Pda": {
            "type": "object",
            "required": ["id", "name", "enrolled_ms", "revoked_ms", "sessions"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "enrolled_ms": {"type": "integer"},
                "revoked_ms": {"type": ["integer", "null"]},
                "sessions": {"type": "integer", "description": "live sessions"},
            },
        },
        "PackStation": {
            "type": "object",
            "required": ["station", "order"],
            "properties": {
                "station": {"type": "string"},
                "printer": {"type": ["string", "null"]},
                "printer_state": {
                    "type": ["string", "null"],
                    "description": "as the printer last reported: ready, paper out, …",
                },
                "packer": {"type": ["string", "null"]},
                "order": {
                    "type": ["object", "null"],
                    "description": "order, units_left, lines (sku, picked, packed, left), "
                    "cartons (n, state, sscc, printed, lines)",
                },
            },
        },
        "PackAnswer": {
            "type": "object",
            "required": ["result", "feedback", "message", "station"],
            "properties": {
                "result": {
                    "enum": [
                        "order_opened",
                        "unit_packed",
                        "carton_closed",
                        "order_packed",
                        "shipped",
                        "unknown_code",
                        "order_not_picked",
                        "order_shipped",
                        "order_elsewhere",
                        "station_busy",
                        "no_order",
                        "wrong_order",
                        "not_in_order",
                        "all_packed",
                        "carton_empty",
                        "units_left",
                        "nothing_to_print",
                        "no_printer",
                        "sscc_exhausted",
                        "sscc_unavailable",
                        "label_invalid",
                    ]
                },
                "feedback": {"enum": ["success", "warning", "error"]},
                "message": {"type": "string"},
                "printed": {"type": "boolean", "description": "set when labels were sent"},
                "shipped": {
                    "type": "array",
                    "description": "the orders this scan shipped: order, lines, cartons "
                    "(the station is free again)",
                    "items": {"type": "object"},
                },
                "station": _ref("PackStation"),
            },
        },
        "Stop": {
            "type": "object",
            "required": ["stop", "location", "sku", "description", "qty", "picked", "state"],
            "properties": {
                "stop": {"type": "integer"},
                "location": {"type": "string"},
                "sku": {"type": "string"},
                "description": {"type": "string"},
                "qty": {
                    "type": ["integer", "null"],
                    "description": "null on a count tour: a count is blind",
                },
                "picked": {"type": "integer", "description": "on a count tour: units counted"},
                "attempt": {
                    "type": "integer",
                    "description": "count tours: 1, or 2 while counting again after a difference",
                },
                "state": {
                    "enum": ["pending", "location_ok", "to_put", "done", "short", "cancelled"],
                    "description": "to_put (carts): every unit taken, to be put into its tote",
                },
                "lot": {"type": ["string", "null"]},
                "expiry": {"type": ["string", "null"], "format": "date"},
                "task": {"type": "string"},
                "x": {"type": ["number", "null"], "description": "metres, for the map"},
                "y": {"type": ["number", "null"], "description": "metres, for the map"},
                "slot": {"type": "integer", "description": "carts: the slot of the stop's order"},
                "tote": {
                    "type": ["string", "null"],
                    "description": "carts: the tote the units go into (null until bound)",
                },
            },
        },
        "PutBack": {
            "type": "object",
            "required": ["task", "sku", "origin", "lot", "qty", "in_hand"],
            "properties": {
                "task": {"type": "string", "description": "the cancelled task"},
                "sku": {"type": "string"},
                "origin": {"type": "string", "description": "the location it was picked from"},
                "lot": {"type": ["string", "null"]},
                "qty": {"type": "integer", "description": "units still to put back"},
                "in_hand": {"type": "integer", "description": "of those, scanned: location next"},
                "picker": {"type": ["string", "null"], "description": "with all=1"},
            },
        },
        "Cart": {
            "type": "object",
            "required": ["totes", "next_slot"],
            "description": "a cart tour's orders, one tote each (docs/pda.md, Carts)",
            "properties": {
                "totes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["slot", "task", "order", "tote", "units", "picked", "state"],
                        "properties": {
                            "slot": {"type": "integer"},
                            "task": {"type": "string"},
                            "order": {"type": ["string", "null"]},
                            "tote": {"type": ["string", "null"]},
                            "assigned": {
                                "type": ["string", "null"],
                                "description": "the tote the cloud assigned (null: any free)",
                            },
                            "units": {"type": "integer"},
                            "picked": {"type": "integer"},
                            "state": {"enum": ["unbound", "open", "done", "cancelled"]},
                        },
                    },
                },
                "next_slot": {
                    "type": ["integer", "null"],
                    "description": "the slot whose tote is to be scanned next (null: all bound)",
                },
            },
        },
        "Tour": {
            "type": "object",
            "required": ["tour", "state", "stops", "next_stop", "route"],
            "properties": {
                "tour": {"type": "integer"},
                "kind": {"enum": ["pick", "count"]},
                "state": {"enum": ["active", "done", "cancelled"]},
                "stops": {"type": "array", "items": _ref("Stop"), "description": "walk order"},
                "next_stop": {"type": ["integer", "null"]},
                "cart": _ref("Cart"),
                "route": {
                    "type": "object",
                    "required": ["length_m", "waypoints"],
                    "properties": {
                        "length_m": {"type": ["number", "null"]},
                        "waypoints": {
                            "type": "array",
                            "items": {
                                "type": "array",
                                "items": {"type": "number"},
                                "minItems": 2,
                                "maxItems": 2,
                            },
                        },
                        "algorithm": {"type": "string"},
                        "from": {
                            "type": "array",
                            "items": {"type": "number"},
                            "description": "where a re-route started (the picker's position)",
                        },
                    },
                },
            },
        },
        "ScanAnswer": {
            "type": "object",
            "required": ["result", "feedback", "message", "tour"],
            "properties": {
                "result": {"enum": SCAN_RESULTS},
                "feedback": {"enum": FEEDBACK},
                "message": {"type": "string"},
                "tour": {"oneOf": [_ref("Tour"), {"type": "null"}]},
                "put_backs": {
                    "type": "array",
                    "items": _ref("PutBack"),
                    "description": "without a tour: the picker's open put-back lines",
                },
                "exceptions": {
                    "type": "array",
                    "description": "lines the zone cannot fill (sent upstream as pick_exception)",
                    "items": {
                        "type": "object",
                        "properties": {
                            "task": {"type": "string"},
                            "line": {"type": "string"},
                            "sku": {"type": "string"},
                            "missing": {"type": "integer"},
                        },
                    },
                },
            },
        },
        "SupervisorCounts": {
            "type": "object",
            "required": ["open", "recent", "accuracy"],
            "properties": {
                "open": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["task", "priority", "state", "tour", "picker", "lines"],
                        "properties": {
                            "task": {"type": "string"},
                            "priority": {"type": "integer"},
                            "state": {"enum": ["open", "started"]},
                            "received_ms": {"type": "integer"},
                            "tour": {"type": ["integer", "null"]},
                            "picker": {
                                "oneOf": [
                                    {
                                        "type": "object",
                                        "properties": {
                                            "id": {"type": "string"},
                                            "name": {"type": "string"},
                                        },
                                    },
                                    {"type": "null"},
                                ],
                                "description": "who is counting (started)",
                            },
                            "lines": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "sku": {"type": "string"},
                                        "location": {"type": ["string", "null"]},
                                        "state": {
                                            "type": ["string", "null"],
                                            "description": "its stop's state on the tour",
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
                "recent": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "task": {"type": "string"},
                            "location": {"type": "string"},
                            "sku": {"type": "string"},
                            "counted": {"type": "integer"},
                            "expected": {
                                "type": "integer",
                                "description": "on-hand when counting began",
                            },
                            "on_hand": {
                                "type": "integer",
                                "description": "on-hand the final count was compared with",
                            },
                            "matched": {"type": "boolean"},
                            "attempts": {"type": "integer"},
                            "picker": {"type": ["string", "null"]},
                            "at_ms": {"type": "integer"},
                        },
                    },
                },
                "accuracy": {
                    "type": "object",
                    "description": "per window (1d, 30d): locations counted, matched, ratio",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "counted": {"type": "integer"},
                            "matched": {"type": "integer"},
                            "ratio": {"type": ["number", "null"]},
                        },
                    },
                },
            },
        },
        "SupervisorAction": {
            "type": "object",
            "required": ["action"],
            "description": "what the action did: the detail of its supervisor_action event",
            "properties": {
                "action": {"enum": ["release", "reassign", "adjust"]},
                "tour": {"type": "integer"},
                "picker": {"type": "string", "description": "release: whose tour it was"},
                "reason": {"type": "string"},
                "reopened": {"type": "array", "items": {"type": "string"}},
                "put_back": {
                    "type": "array",
                    "description": "release: the units that became put-back work",
                    "items": {"type": "object"},
                },
                "put_backs": {
                    "type": "array",
                    "items": _ref("PutBack"),
                    "description": "release: the supervisor's open put-back lines now",
                },
                "from": {"type": "string"},
                "to": {"type": "string"},
                "tour_view": _ref("Tour"),
                "sku": {"type": "string"},
                "location": {"type": "string"},
                "lot": {"type": ["string", "null"]},
                "before": {"type": "integer"},
                "after": {"type": "integer"},
                "delta": {"type": "integer"},
                "reserved": {"type": "integer"},
                "ref": {"type": ["string", "null"]},
            },
        },
        "ActiveTour": {
            "type": "object",
            "required": ["tour", "picker", "started_ms", "stops", "last_scan_ms", "idle_s"],
            "properties": {
                "tour": {"type": "integer"},
                "picker": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
                },
                "started_ms": {"type": "integer"},
                "cart": {"type": ["string", "null"]},
                "stops": {"type": "integer"},
                "stops_closed": {"type": "integer", "description": "done or short"},
                "stops_short": {"type": "integer"},
                "stops_open": {"type": "integer"},
                "units": {"type": "integer"},
                "picked": {"type": "integer"},
                "last_scan_ms": {"type": ["integer", "null"]},
                "idle_s": {
                    "type": "integer",
                    "description": "seconds since the last scan (or the start)",
                },
            },
        },
        "Layout": {
            "type": "object",
            "description": "the zone's routing-v1 layout (kind blocks)",
            "additionalProperties": True,
        },
        "Alert": {
            "type": "object",
            "required": ["id", "kind", "severity", "subject", "raised_ms"],
            "properties": {
                "id": {"type": "integer"},
                "kind": {"type": "string"},
                "severity": {"enum": ["info", "warn", "crit"]},
                "subject": {"type": "string"},
                "detail": {"description": "the alert's detail (as sent upstream)"},
                "raised_ms": {"type": "integer"},
                "acked_by": {
                    "type": ["string", "null"],
                    "description": "the picker id of who acknowledged it (local only)",
                },
                "acked_ms": {"type": ["integer", "null"]},
            },
        },
        "AlertAck": {
            "type": "object",
            "required": ["id", "acked_by", "acked_ms"],
            "description": "the first acknowledgement stays; the alert stays open",
            "properties": {
                "id": {"type": "integer"},
                "acked_by": {"type": "string"},
                "acked_ms": {"type": "integer"},
            },
        },
        "Dashboard": {
            "type": "object",
            "description": "the overview of edge/ops/overview.py (docs/dashboard.md); "
            "windows are 1d and 30d, ratios null when there is nothing to divide by",
            "required": [
                "box",
                "at_ms",
                "devices",
                "sync",
                "hours",
                "walking",
                "exceptions",
                "accuracy",
                "alerts",
                "tours",
            ],
            "properties": {
                "box": {"type": "string"},
                "at_ms": {"type": "integer", "description": "the box's clock when read"},
                "devices": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "driver": {"type": ["string", "null"]},
                            "role": {"type": ["string", "null"]},
                            "state": {"enum": ["online", "offline", "unknown"]},
                            "detail": {"type": ["string", "null"]},
                            "since_ms": {"type": ["integer", "null"]},
                            "last_seen_ms": {"type": ["integer", "null"]},
                        },
                    },
                },
                "sync": {
                    "type": "object",
                    "properties": {
                        "state": {"enum": ["up_to_date", "sending", "retrying", "never_synced"]},
                        "backlog": {"type": "integer"},
                        "oldest_unacked_ms": {"type": ["integer", "null"]},
                        "oldest_unacked_age_s": {"type": ["number", "null"]},
                        "last_ack_ms": {"type": ["integer", "null"]},
                        "last_ack_age_s": {"type": ["number", "null"]},
                        "last_error": {"type": ["string", "null"]},
                        "last_error_ms": {"type": ["integer", "null"]},
                        "backoff_s": {"type": ["number", "null"]},
                        "retry_at_ms": {"type": ["integer", "null"]},
                        "last_pull_ms": {"type": ["integer", "null"]},
                    },
                },
                "hours": {
                    "type": "array",
                    "description": "the last 24 wall-clock hours, oldest first",
                    "items": {
                        "type": "object",
                        "properties": {
                            "hour_ms": {"type": "integer"},
                            "scans": {"type": "integer"},
                            "scan_p50_ms": {"type": ["number", "null"]},
                            "scan_p99_ms": {
                                "type": ["number", "null"],
                                "description": "upper bound of the histogram bucket",
                            },
                            "picks": {
                                "type": "integer",
                                "description": "pick confirmations (pick_confirmed events)",
                            },
                            "units": {"type": "integer", "description": "units picked"},
                        },
                    },
                },
                "walking": {"type": "object", "additionalProperties": {"type": "object"}},
                "exceptions": {"type": "object", "additionalProperties": {"type": "object"}},
                "accuracy": {"type": "object", "additionalProperties": {"type": "object"}},
                "alerts": {"type": "array", "items": _ref("Alert")},
                "tours": {
                    "type": "array",
                    "description": "active tours (ActiveTour) with remaining stops and the "
                    "picker's last position in layout metres (at: null = not yet, the depot)",
                    "items": {
                        "allOf": [
                            _ref("ActiveTour"),
                            {
                                "type": "object",
                                "properties": {
                                    "remaining": {"type": "array", "items": {"type": "object"}},
                                    "at": {"type": ["object", "null"]},
                                },
                            },
                        ]
                    },
                },
            },
        },
    }
    paths: dict[str, Any] = {
        "/": {
            "get": {
                "summary": "The PDA page (HTML, no build step)",
                "security": [],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            }
        },
        "/dashboard": {
            "get": {
                "summary": "The supervisors' dashboard page (HTML, no build step; it logs in "
                "like the PDA page and reads /api/v1/dashboard)",
                "security": [],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            }
        },
        "/api/v1/dashboard": {
            "get": {
                "summary": "Supervisor: the zone's overview (devices, sync, 24 h per hour, "
                "walking, exceptions, accuracy, open alerts, active tours for the map)",
                "security": bearer,
                "responses": {
                    "200": _json(_ref("Dashboard"), "the overview"),
                    **_errors(401, 403, 500),
                },
            }
        },
        "/api/v1/supervisor/alerts": {
            "get": {
                "summary": "Supervisor: the open alerts, the most severe first",
                "security": bearer,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"alerts": {"type": "array", "items": _ref("Alert")}},
                        },
                        "the open alerts",
                    ),
                    **_errors(401, 403, 500),
                },
            }
        },
        "/api/v1/supervisor/alerts/{alert}/ack": {
            "post": {
                "summary": "Supervisor: acknowledge an open alert",
                "description": "Notes who and when on the box (the first acknowledgement "
                "stays; nothing goes upstream); the alert stays open until its cause clears "
                "it. 404 unknown_alert, 409 alert_cleared.",
                "security": bearer,
                "parameters": [
                    {
                        "name": "alert",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"alert": _ref("AlertAck")}},
                        "acknowledged",
                    ),
                    **_errors(400, 401, 403, 404, 409, 500),
                },
            }
        },
        "/pack": {
            "get": {
                "summary": "The pack station page (HTML, no build step; `?station=` picks it)",
                "security": [],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": [],
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"status": {"const": "ok"}}}, "alive"
                    )
                },
            }
        },
        "/livez": {
            "get": {
                "summary": "Liveness: the process and its event loop answer (text ok)",
                "security": [],
                "responses": {"200": {"description": "alive", "content": {"text/plain": {}}}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the store takes a write, the disk has room "
                "(?verbose lists each check; a cloud outage is a warning, not not-ready)",
                "security": [],
                "parameters": [{"name": "verbose", "in": "query", "required": False, "schema": {}}],
                "responses": {
                    "200": {"description": "ready", "content": {"text/plain": {}}},
                    "503": {"description": "not ready", "content": {"text/plain": {}}},
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (present when a scrape token is configured)",
                "security": [{"scrapeToken": []}],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": bearer,
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"), **_errors(401)},
            }
        },
        "/api/v1/sessions": {
            "post": {
                "summary": "Log a picker in by badge on an enrolled PDA",
                "security": [{"deviceKey": []}],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["badge"],
                        "properties": {"badge": {"type": "string", "maxLength": 256}},
                    }
                ),
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "required": ["token", "picker"],
                            "properties": {
                                "token": {"type": "string"},
                                "picker": {
                                    "type": "object",
                                    "properties": {
                                        "id": {"type": "string"},
                                        "name": {"type": "string"},
                                        "role": {"enum": ["picker", "supervisor", "admin"]},
                                    },
                                },
                            },
                        },
                        "session opened",
                    ),
                    **_errors(400, 401, 413, 429, 500, 503),
                },
            },
            "delete": {
                "summary": "Log out (end this session)",
                "security": bearer,
                "responses": {"204": {"description": "ended"}, **_errors(401, 500, 503)},
            },
        },
        "/api/v1/scan": {
            "post": {
                "summary": "One scan; idempotent by scan_id",
                "security": bearer,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["code", "scan_id"],
                        "properties": {
                            "code": {"type": "string", "maxLength": 4096},
                            "scan_id": {"type": "string", "maxLength": 128},
                        },
                    }
                ),
                "responses": {
                    "200": _json(_ref("ScanAnswer"), "the answer (stored; a retry gets it again)"),
                    **_errors(*_COMMON, 409),
                },
            }
        },
        "/api/v1/tour": {
            "get": {
                "summary": "The picker's active tour",
                "security": bearer,
                "responses": {"200": _json(_ref("Tour"), "the tour"), **_errors(401, 404, 500)},
            }
        },
        "/api/v1/put-backs": {
            "get": {
                "summary": "Open put-back lines: units of cancelled orders to go back",
                "description": "the caller's own; with all=1 (supervisor, admin) everyone's, "
                "each with the picker who holds them",
                "security": bearer,
                "parameters": [
                    {"name": "all", "in": "query", "required": False, "schema": {"enum": ["1"]}}
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["put_backs"],
                            "properties": {
                                "put_backs": {"type": "array", "items": _ref("PutBack")}
                            },
                        },
                        "the open lines, oldest first",
                    ),
                    **_errors(401, 403, 500),
                },
            }
        },
        "/api/v1/tour/count": {
            "post": {
                "summary": "Finish a blind count at a stop with a quantity entered",
                "description": "the stop's location must be scanned first; a quantity that "
                "differs from the box's on-hand asks for one recount (docs/pda.md, Counts)",
                "security": bearer,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["stop", "qty"],
                        "properties": {
                            "stop": {"type": "integer"},
                            "qty": {"type": "integer", "minimum": 0},
                        },
                    }
                ),
                "responses": {
                    "200": _json(_ref("ScanAnswer"), "count_done or recount, with the tour"),
                    **_errors(*_COMMON, 404, 409),
                },
            }
        },
        "/api/v1/tour/short": {
            "post": {
                "summary": "Short pick at a stop; the rest is re-routed from there",
                "security": bearer,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["stop", "found"],
                        "properties": {
                            "stop": {"type": "integer"},
                            "found": {
                                "type": "integer",
                                "description": "units of the stop in hand, scanned ones included",
                            },
                            "reason": {"enum": ["empty", "damaged", "other"]},
                        },
                    }
                ),
                "responses": {
                    "200": _json(
                        _ref("ScanAnswer"), "result rerouted, short_recorded or tour_done"
                    ),
                    **_errors(*_COMMON, 404, 409),
                },
            }
        },
        "/api/v1/tour/skip": {
            "post": {
                "summary": "Move a stop to the end of the walk",
                "security": bearer,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["stop"],
                        "properties": {"stop": {"type": "integer"}},
                    }
                ),
                "responses": {
                    "200": _json(_ref("ScanAnswer"), "result skipped"),
                    **_errors(*_COMMON, 404, 409),
                },
            }
        },
        "/api/v1/pack/scan": {
            "post": {
                "summary": "A scan at a pack station: a tote, a unit, CLOSE, REPRINT, RELEASE",
                "description": "docs/pda.md, pack stations. A retry with the same scan_id gets "
                "the stored answer and changes nothing.",
                "security": bearer,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["station", "code", "scan_id"],
                        "properties": {
                            "station": {"type": "string", "maxLength": 64},
                            "code": {"type": "string", "maxLength": 4096},
                            "scan_id": {"type": "string", "maxLength": 128},
                        },
                    }
                ),
                "responses": {
                    "200": _json(_ref("PackAnswer"), "the answer, refusals included"),
                    **_errors(*_COMMON, 404),
                },
            }
        },
        "/api/v1/pack/stations/{station}": {
            "get": {
                "summary": "A pack station as its page shows it",
                "security": bearer,
                "parameters": [
                    {
                        "name": "station",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json(_ref("PackStation"), "the station"),
                    **_errors(401, 404),
                },
            }
        },
        "/api/v1/layout": {
            "get": {
                "summary": "The zone's layout, to draw the floor map",
                "security": bearer,
                "responses": {"200": _json(_ref("Layout"), "layout"), **_errors(401)},
            }
        },
        "/api/v1/ws": {
            "get": {
                "summary": "WebSocket of pushes: tour_assigned, tour_rerouted, task_cancelled, "
                "tour_withdrawn (a supervisor released or reassigned the tour), message",
                "description": "Authenticate with the Authorization header or a first message "
                '`{"type": "auth", "token": "…"}` (never in the URL). An invalid first message '
                "closes the socket with code 4401.",
                "security": [{"bearer": []}, {}],
                "responses": {"101": {"description": "switching protocols"}, **_errors(401)},
            }
        },
        "/api/v1/supervisor/tours/{tour}/release": {
            "post": {
                "summary": "Supervisor: end an abandoned tour",
                "description": "The tour ends cancelled, its open stops' reservations are "
                "released, its started tasks go back to open whole; the units it picked "
                "become put-back lines of the releasing supervisor. The picker is pushed "
                "tour_withdrawn; supervisor_action goes upstream (docs/pda.md).",
                "security": bearer,
                "parameters": [_TOUR_PARAM],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["reason"],
                        "properties": {"reason": {"type": "string", "maxLength": 200}},
                    }
                ),
                "responses": {
                    "200": _json(_ref("SupervisorAction"), "released"),
                    **_errors(*_COMMON, 403, 404, 409),
                },
            }
        },
        "/api/v1/supervisor/tours/{tour}/reassign": {
            "post": {
                "summary": "Supervisor: hand an active tour to another picker",
                "description": "The picker must be active, without a tour and without "
                "put-back lines (409 picker_busy). The old holder is pushed tour_withdrawn, "
                "the new one tour_assigned.",
                "security": bearer,
                "parameters": [_TOUR_PARAM],
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["picker"],
                        "properties": {"picker": {"type": "string", "maxLength": 64}},
                    }
                ),
                "responses": {
                    "200": _json(_ref("SupervisorAction"), "reassigned (tour_view: the tour)"),
                    **_errors(*_COMMON, 403, 404, 409),
                },
            }
        },
        "/api/v1/supervisor/stock/adjust": {
            "post": {
                "summary": "Supervisor: adjust a location's stock with a reason",
                "description": "qty (a signed change) or set (the new quantity), never below "
                "what open tours reserve (409 below_reserved); stock_delta reason adjust "
                "goes upstream with ref.",
                "security": bearer,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["sku", "location", "reason"],
                        "properties": {
                            "sku": {"type": "string", "maxLength": 64},
                            "location": {"type": "string", "maxLength": 64},
                            "lot": {"type": ["string", "null"], "maxLength": 64},
                            "qty": {"type": "integer", "description": "signed change, not 0"},
                            "set": {"type": "integer", "minimum": 0},
                            "reason": {"type": "string", "maxLength": 200},
                            "ref": {"type": ["string", "null"], "maxLength": 128},
                        },
                    }
                ),
                "responses": {
                    "200": _json(_ref("SupervisorAction"), "adjusted (before, after, delta)"),
                    **_errors(*_COMMON, 403, 404, 409),
                },
            }
        },
        "/api/v1/supervisor/tours": {
            "get": {
                "summary": "Supervisor: the active tours with picker, progress and last scan",
                "security": bearer,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["tours"],
                            "properties": {"tours": {"type": "array", "items": _ref("ActiveTour")}},
                        },
                        "by tour number",
                    ),
                    **_errors(401, 403, 500),
                },
            }
        },
        "/api/v1/supervisor/exceptions": {
            "get": {
                "summary": "Supervisor: recent shorts, unfillable lines, cancels, "
                "supervisor actions, open put-backs and open alerts, newest first",
                "security": bearer,
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    }
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["exceptions"],
                            "properties": {
                                "exceptions": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["kind", "at_ms"],
                                        "properties": {
                                            "kind": {
                                                "enum": [
                                                    "short",
                                                    "unfillable",
                                                    "cancel",
                                                    "supervisor_action",
                                                    "put_back",
                                                    "alert",
                                                ]
                                            },
                                            "at_ms": {"type": ["integer", "null"]},
                                        },
                                        "additionalProperties": True,
                                    },
                                }
                            },
                        },
                        "newest first",
                    ),
                    **_errors(400, 401, 403, 500),
                },
            }
        },
        "/api/v1/supervisor/counts": {
            "get": {
                "summary": "Supervisor: open count tasks, recent finished counts and the "
                "inventory accuracy",
                "description": "open: count tasks open or started (who counts, on which "
                "tour), the most urgent first, never with the quantity the box expects; "
                "recent: the limit latest finished counts, newest first; accuracy: "
                "locations counted and matched over the last day and 30 days.",
                "security": bearer,
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    }
                ],
                "responses": {
                    "200": _json(_ref("SupervisorCounts"), "the counts"),
                    **_errors(400, 401, 403, 500),
                },
            }
        },
        "/api/v1/admin/pdas": {
            "get": {
                "summary": "Admin: every enrolled PDA (never a key)",
                "security": bearer,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"pdas": {"type": "array", "items": _ref("Pda")}},
                        },
                        "the PDAs by name",
                    ),
                    **_errors(401, 403, 500),
                },
            },
            "post": {
                "summary": "Admin: enrol a PDA; its device key is in this answer only",
                "description": "The name is stripped, 1 to 64 printable characters (as "
                "`pickedge pda enroll`). 409 pda_exists when a PDA of that name was ever "
                "enrolled (a revoked one keeps its name).",
                "security": bearer,
                "requestBody": _body(
                    {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string", "minLength": 1}},
                    }
                ),
                "responses": {
                    "201": _json(
                        {
                            "type": "object",
                            "required": ["pda", "id", "key"],
                            "properties": {
                                "pda": {"type": "string", "description": "its name"},
                                "id": {"type": "string"},
                                "key": {
                                    "type": "string",
                                    "description": "the device key, shown once",
                                },
                            },
                        },
                        "enrolled",
                    ),
                    **_errors(*_COMMON, 403, 409),
                },
            },
        },
        "/api/v1/admin/pdas/{pda}/revoke": {
            "post": {
                "summary": "Admin: revoke a PDA by name or id; its sessions end at once",
                "description": "Revoking a revoked PDA again answers 200 (nothing changes).",
                "security": bearer,
                "parameters": [
                    {"name": "pda", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["pda", "revoked", "sessions_ended"],
                            "properties": {
                                "pda": {"type": "string", "description": "its id"},
                                "revoked": {"const": True},
                                "sessions_ended": {"type": "integer"},
                            },
                        },
                        "revoked",
                    ),
                    **_errors(400, 401, 403, 404, 500, 503),
                },
            }
        },
        "/static/{file}": {
            "get": {
                "summary": "Static files of the PDA page",
                "security": [],
                "parameters": [
                    {"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "file"}, **_errors(404)},
            }
        },
    }
    if not metrics:
        del paths["/metrics"]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PickEdge PDA API",
            "version": "1.0.0",
            "description": "contracts/pda-api-v1.md as implemented; see docs/pda.md",
        },
        "servers": [{"url": "/"}],
        "security": bearer,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "deviceKey": {"type": "apiKey", "in": "header", "name": "X-Device-Key"},
                "scrapeToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }
