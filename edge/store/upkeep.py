"""Upkeep statements on the store's own tables and files, for
:mod:`edge.maintenance` and ``pickedge db``.

:func:`advance_uptime` stores the box's uptime (retention and session expiry
are measured on it); :func:`check_file` runs SQLite's integrity check on a
database file through a read-only connection, writing nothing. WAL checkpoints
and backups are :class:`~edge.store.Store` methods; the outbox's own upkeep
(acks, pruning, alerts) is :mod:`edge.store.outbox`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.store.db import Transaction, open_read_only


def advance_uptime(tx: Transaction, up: int) -> None:
    """Store uptime ``up`` (ms); a smaller figure never moves it back."""
    tx.execute("UPDATE box SET uptime_ms = max(uptime_ms, ?) WHERE id = 1", (up,))


@dataclass(frozen=True, slots=True)
class FileCheck:
    """``problems`` is ``["ok"]`` when the file is sound; ``version`` its schema."""

    problems: list[str]
    version: int

    @property
    def ok(self) -> bool:
        return self.problems == ["ok"]


def check_file(path: Path) -> FileCheck:
    """``PRAGMA integrity_check`` of the database at ``path``, read-only.

    Raises :class:`~edge.store.errors.StoreError` when the file cannot be
    opened as a database, and ``sqlite3.Error`` when the check itself cannot
    run (corrupt pages surface there).
    """
    conn = open_read_only(path)
    try:
        problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()
    return FileCheck(problems, version)
