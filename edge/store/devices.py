"""The ``devices`` table: each configured device as the device supervisor last
knew it — its state, since when, and when it was last heard from.

Written by :class:`edge.device_supervisor.DeviceSupervisor` through the
store's writer, only when something changes: a state change (``connecting``
at start, ``connected``, ``disconnected``, ``unavailable`` — never connected
since the start —, ``stopped`` when the daemon stops) and ``last_seen_ms`` at
most every few seconds, never per frame. Read by the dashboard after a
restart. Times are the box's wall clock in ms: informational, never used for
a decision (DESIGN.md decision 5). This module owns the table's SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from edge.store.db import Transaction

#: the states the supervisor writes
STATES = ("connecting", "connected", "disconnected", "unavailable", "stopped")


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    driver: str
    role: str
    state: str
    state_since_ms: int | None
    last_seen_ms: int | None


def configure(tx: Transaction, devices: Iterable[tuple[str, str, str]], now_ms: int) -> None:
    """At start: every configured (id, driver, role) is ``connecting`` since
    ``now_ms`` (its last_seen kept); rows of devices no longer configured go."""
    devices = list(devices)
    ids = [d[0] for d in devices]
    marks = ", ".join("?" * len(ids))
    tx.execute(f"DELETE FROM devices WHERE id NOT IN ({marks})", ids)  # noqa: S608 - placeholders
    tx.executemany(
        "INSERT INTO devices (id, driver, role, state, state_since_ms) "
        "VALUES (?, ?, ?, 'connecting', ?) ON CONFLICT (id) DO UPDATE SET "
        "driver = excluded.driver, role = excluded.role, state = 'connecting', "
        "state_since_ms = excluded.state_since_ms",
        [(i, driver, role, now_ms) for i, driver, role in devices],
    )


def set_state(
    tx: Transaction, device: str, state: str, since_ms: int, last_seen_ms: int | None
) -> None:
    """``device`` is in ``state`` since ``since_ms`` (last heard at ``last_seen_ms``)."""
    if state not in STATES:
        raise ValueError(f"unknown device state {state!r}")
    tx.execute(
        "UPDATE devices SET state = ?, state_since_ms = ?, "
        "last_seen_ms = COALESCE(?, last_seen_ms) WHERE id = ?",
        (state, since_ms, last_seen_ms, device),
    )


def set_last_seen(tx: Transaction, seen: Iterable[tuple[str, int]]) -> None:
    """(device, last_seen_ms) of the devices heard from since the last write."""
    tx.executemany(
        "UPDATE devices SET last_seen_ms = ? WHERE id = ? "
        "AND (last_seen_ms IS NULL OR last_seen_ms < ?)",
        [(ms, device, ms) for device, ms in seen],
    )


def devices(db: Transaction | sqlite3.Connection) -> list[DeviceRow]:
    """Every row, by id, through ``db`` (a transaction or a reader)."""
    rows = db.execute(
        "SELECT id, driver, role, state, state_since_ms, last_seen_ms FROM devices ORDER BY id"
    ).fetchall()
    return [
        DeviceRow(
            str(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            None if r[4] is None else int(r[4]),
            None if r[5] is None else int(r[5]),
        )
        for r in rows
    ]
