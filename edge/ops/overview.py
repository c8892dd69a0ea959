"""The overview a site engineer trusts: one snapshot of the zone's health, the
same for the dashboard (``GET /api/v1/dashboard``) and ``pickedge status``.

:func:`snapshot` reads, in one WAL snapshot of a read-only connection:

- **devices**: from the ``devices`` table when it has rows (the device
  supervisor writes it), otherwise from what the caller passes (the running
  supervisor's :meth:`~edge.device_supervisor.DeviceSupervisor.snapshot`, or
  the configured devices with their state unknown); each online, offline or
  unknown, with since when where known;
- **sync**: the outbox backlog, the age of the oldest unsent event, the last
  ack and error, the back-off (:func:`edge.store.sync_state.read_status`) and a
  one-word state;
- **hours**: scans, scan p50/p99, pick confirmations and units per hour over the last
  24 hours (:func:`edge.ops.hours.live_hours`);
- **walking**, **exceptions**, **accuracy** over the last day and 30 days
  (:mod:`edge.picking.stats`);
- **alerts**: the open ones, with who acknowledged them;
- **tours**: the active tours (:func:`edge.picking.supervise.active_tours`)
  with their remaining stops and the picker's last position (the last stop
  taken from) in layout metres, for the zone map.

This module owns its SQL (the alerts' acknowledgement, the devices table,
the tours' map points). Wall-clock ``now`` serves only the windows and ages
people read; nothing here decides an expiry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from edge.ops import hours as hours_table
from edge.ops.hours import HourFigures
from edge.picking import stats
from edge.picking.queries import Reads
from edge.picking.queries import snapshot as read_snapshot
from edge.picking.supervise import SupervisorError, accuracy, active_tours
from edge.store.db import Transaction
from edge.store.sync_state import read_status

#: the windows of the figures over time (as the metrics and the supervisor view)
WINDOWS = (("1d", 1), ("30d", 30))
_SEVERITY_RANK = {"crit": 0, "warn": 1, "info": 2}
#: a stop still to walk to; one whose units are in hand (to_put) is where the picker is
_AHEAD = ("pending", "location_ok")
_TAKEN = ("done", "short", "to_put")


@dataclass(frozen=True, slots=True)
class ConfiguredDevice:
    """A device of the configuration, for when nothing else knows its state."""

    id: str
    driver: str
    role: str


# ---------------------------------------------------------------------- alerts


class UnknownAlertError(SupervisorError):
    code = "unknown_alert"
    status = 404


class AlertClearedError(SupervisorError):
    code = "alert_cleared"
    status = 409


def _alert_detail(stored: bytes) -> Any:
    try:
        return msgpack.unpackb(stored, raw=False)
    except (ValueError, msgpack.UnpackException):
        return None


def open_alerts(db: Reads) -> list[dict[str, Any]]:
    """The alerts not cleared, the most severe first, then the newest."""
    rows = db.execute(
        "SELECT id, kind, severity, subject, detail, raised_ms, acked_by, acked_ms "
        "FROM alerts WHERE cleared_ms IS NULL ORDER BY id DESC"
    ).fetchall()
    out = [
        {
            "id": alert,
            "kind": kind,
            "severity": severity,
            "subject": subject,
            "detail": _alert_detail(detail),
            "raised_ms": raised,
            "acked_by": by,
            "acked_ms": acked,
        }
        for alert, kind, severity, subject, detail, raised, by, acked in rows
    ]
    out.sort(key=lambda a: _SEVERITY_RANK.get(str(a["severity"]), 3))
    return out


def acknowledge(tx: Transaction, alert: int, by: str, now: int) -> dict[str, Any]:
    """``by`` has seen open ``alert``: noted with when (the first
    acknowledgement stays). It stays open until its cause clears it; nothing
    goes upstream. Raises :class:`UnknownAlertError` or :class:`AlertClearedError`."""
    row = tx.execute(
        "SELECT cleared_ms, acked_by, acked_ms FROM alerts WHERE id = ?", (alert,)
    ).fetchone()
    if row is None:
        raise UnknownAlertError(f"no alert {alert}")
    if row[0] is not None:
        raise AlertClearedError(f"alert {alert} was cleared already")
    if row[1] is None:
        tx.execute("UPDATE alerts SET acked_by = ?, acked_ms = ? WHERE id = ?", (by, now, alert))
        return {"id": alert, "acked_by": by, "acked_ms": now}
    return {"id": alert, "acked_by": row[1], "acked_ms": row[2]}


# ---------------------------------------------------------------------- devices


def _stored_devices(db: Reads) -> list[dict[str, Any]]:
    """The ``devices`` table's rows (SELECT *: columns added later are read
    when there)."""
    cur = db.execute("SELECT * FROM devices ORDER BY id")
    names = [d[0] for d in cur.description]
    out = []
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        state = str(row.get("state") or "unknown")
        out.append(
            {
                "id": row["id"],
                "driver": row.get("driver"),
                "role": row.get("role"),
                "state": _online(state),
                "detail": state,
                "since_ms": row.get("state_since_ms"),
                "last_seen_ms": row.get("last_seen_ms"),
            }
        )
    return out


def _online(state: str) -> str:
    if state in ("connected", "online", "up", "available"):
        return "online"
    if state in ("disconnected", "offline", "down", "failed", "unavailable"):
        return "offline"
    return "unknown"


def _live_devices(live: Mapping[str, Mapping[str, Any]], now: int) -> list[dict[str, Any]]:
    """Devices from a running supervisor's snapshot."""
    out = []
    for device, info in sorted(live.items()):
        online = bool(info.get("available"))
        down = info.get("down_for_s")
        since = info.get("since_ms")
        if since is None and not online and down is not None:
            since = now - int(float(down) * 1000)
        seen = info.get("last_seen")
        out.append(
            {
                "id": device,
                "driver": info.get("driver"),
                "role": info.get("role"),
                "state": "online" if online else "offline",
                "detail": info.get("last_error") or ("connected" if online else "disconnected"),
                "since_ms": since,
                "last_seen_ms": int(float(seen) * 1000) if seen else None,
            }
        )
    return out


def devices(
    db: Reads,
    now: int,
    live: Mapping[str, Mapping[str, Any]] | None,
    configured: Sequence[ConfiguredDevice],
) -> list[dict[str, Any]]:
    stored = _stored_devices(db)
    if stored:
        return stored
    if live:
        return _live_devices(live, now)
    return [
        {
            "id": d.id,
            "driver": d.driver,
            "role": d.role,
            "state": "unknown",
            "detail": "the daemon has not reported it",
            "since_ms": None,
            "last_seen_ms": None,
        }
        for d in configured
    ]


# ---------------------------------------------------------------------- tours on the map


def tours_on_map(db: Reads, now: int, pitch_m: float) -> list[dict[str, Any]]:
    """The active tours, each with its remaining stops and where its picker
    last took something (None: not yet, at the depot), in layout metres."""
    tours = active_tours(db, now)
    points: dict[int, list[tuple[Any, ...]]] = {}
    for row in db.execute(
        "SELECT s.tour, s.stop, s.location, s.sku, s.state, l.aisle, l.y "
        "FROM tour_stops s JOIN tours t ON t.tour = s.tour "
        "LEFT JOIN locations l ON l.code = s.location "
        "WHERE t.state = 'active' ORDER BY s.tour, s.ord, s.stop"
    ):
        points.setdefault(int(row[0]), []).append(row[1:])
    for tour in tours:
        remaining, at = [], None
        for stop, location, sku, state, aisle, y in points.get(int(tour["tour"]), []):
            where = (
                {"x": round(float(aisle) * pitch_m, 3), "y": float(y)}
                if aisle is not None
                else {"x": None, "y": None}
            )
            if state in _AHEAD:
                remaining.append({"stop": stop, "location": location, "sku": sku, **where})
            if state in _TAKEN:
                at = {"location": location, **where}
        tour["remaining"] = remaining
        tour["at"] = at
    return tours


# ---------------------------------------------------------------------- figures


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def walking(db: Reads, now: int) -> dict[str, dict[str, Any]]:
    out = {}
    for window, days in WINDOWS:
        planned, single, units = stats.walking(db, now - days * stats.DAY_MS)
        out[window] = {
            "planned_m": round(planned, 1),
            "single_s_shape_m": round(single, 1),
            "saved_m": round(single - planned, 1),
            "saved_ratio": _ratio(single - planned, single),
            "units": units,
            "per_unit_m": _ratio(planned, units),
            "single_per_unit_m": _ratio(single, units),
        }
    return out


def exceptions(db: Reads, now: int) -> dict[str, dict[str, Any]]:
    out = {}
    for window, days in WINDOWS:
        tasks, needed = stats.exceptions(db, now - days * stats.DAY_MS)
        out[window] = {"tasks": tasks, "exceptions": needed, "ratio": _ratio(needed, tasks)}
    return out


def sync_state(conn: sqlite3.Connection, now: int) -> dict[str, Any]:
    """The sync figures of :func:`read_status` and a one-word state:
    ``up_to_date`` (nothing waits), ``sending``, ``retrying`` (backing off
    after a failure) or ``never_synced`` (events wait and nothing was ever acked)."""
    factory = conn.row_factory
    try:
        st = read_status(conn, now=now)
    finally:
        conn.row_factory = factory  # read_status sets sqlite3.Row
    if st.get("backoff_s"):
        state = "retrying"
    elif st["backlog"] == 0:
        state = "up_to_date"
    elif st["last_ack_ms"] is None:
        state = "never_synced"
    else:
        state = "sending"
    keys = (
        "backlog",
        "oldest_unacked_ms",
        "oldest_unacked_age_s",
        "last_ack_ms",
        "last_ack_age_s",
        "last_error",
        "last_error_ms",
        "backoff_s",
        "retry_at_ms",
        "last_pull_ms",
    )
    return {"box": st["box"], "state": state, **{k: st.get(k) for k in keys}}


def snapshot(
    conn: sqlite3.Connection,
    *,
    now: int,
    pitch_m: float,
    live_devices: Mapping[str, Mapping[str, Any]] | None = None,
    configured: Sequence[ConfiguredDevice] = (),
    pending: Mapping[int, HourFigures] | None = None,
) -> dict[str, Any]:
    """The overview from one WAL snapshot of ``conn`` (read-only is enough).
    ``now`` is unix ms; ``pitch_m`` the layout's aisle pitch (map x)."""
    with read_snapshot(conn) as db:
        sync = sync_state(db, now)
        return {
            "box": sync.pop("box"),
            "at_ms": now,
            "devices": devices(db, now, live_devices, configured),
            "sync": sync,
            "hours": [h.as_dict() for h in hours_table.live_hours(db, now, pending=pending)],
            "walking": walking(db, now),
            "exceptions": exceptions(db, now),
            "accuracy": accuracy(db, now),
            "alerts": open_alerts(db),
            "tours": tours_on_map(db, now, pitch_m),
        }
