"""Upkeep statements on the store's own tables and files, for
:mod:`edge.maintenance` and ``pickedge db``.

:func:`advance_uptime` stores the box's uptime (retention and session expiry
are measured on it); :func:`check_file` runs SQLite's integrity check on a
database file and :func:`backup_file` copies one, each through a read-only
connection: they write nothing to the database, never checkpoint its WAL and
work on any schema version (a backup before ``pickedge db migrate`` is the
first thing to make). WAL checkpoints are :class:`~edge.store.Store` methods;
the outbox's own upkeep (acks, pruning, alerts) is :mod:`edge.store.outbox`.
:func:`stamp_cleared_alerts` and :func:`purge_alerts` are the retention of
cleared alerts (box uptime, like every purge).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from edge.store.db import Transaction, open_read_only, sync_dir, translate_error
from edge.store.errors import StoreError


def advance_uptime(tx: Transaction, up: int) -> None:
    """Store uptime ``up`` (ms); a smaller figure never moves it back."""
    tx.execute("UPDATE box SET uptime_ms = max(uptime_ms, ?) WHERE id = 1", (up,))


def stamp_cleared_alerts(tx: Transaction, purge_at_up: int) -> None:
    """Cleared alerts not yet stamped go at box uptime ``purge_at_up``."""
    tx.execute(
        "UPDATE alerts SET purge_at_up = ? WHERE cleared_ms IS NOT NULL AND purge_at_up IS NULL",
        (purge_at_up,),
    )


def purge_alerts(tx: Transaction, up: int) -> int:
    """Delete the cleared alerts due by uptime ``up`` (an open one never goes);
    returns how many went. What went upstream stays in the outbox's own
    retention."""
    cur = tx.execute("DELETE FROM alerts WHERE cleared_ms IS NOT NULL AND purge_at_up <= ?", (up,))
    return int(cur.rowcount)


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


def backup_file(path: Path, dest: Path) -> int:
    """A consistent copy of the database at ``path`` in ``dest`` (which must not
    exist), through a read-only connection; returns the copy's schema version.

    Safe while the daemon runs: the copy is one read snapshot, which never
    blocks the daemon's writer, and its checkpoints leave it be (they wait for
    it only a bounded moment). The copy is a single file (rollback journal, no
    WAL), synced to disk before this returns. Raises
    :class:`~edge.store.errors.StoreError` and leaves no partial ``dest``.
    """
    if dest.exists():
        raise StoreError(f"{dest}: exists already; backups never overwrite")
    source = open_read_only(path)
    try:
        try:
            target = sqlite3.connect(dest)
        except sqlite3.Error as exc:
            raise translate_error(exc, dest) from exc
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode = DELETE")
            version = int(target.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            target.close()
            dest.unlink(missing_ok=True)
            raise translate_error(exc, path) from exc
        target.close()
    finally:
        source.close()
    # SQLite synced the copy, but its commit deleted the rollback journal and
    # nothing synced the directory: after a power cut the journal would be
    # back beside the copy (hot, rolled back at the next open) and a new
    # copy's own name may be gone. This makes the copy what was reported.
    sync_dir(dest.parent)
    return version
