"""Upkeep statements of the store: the stored uptime only grows, and the
integrity check of a file writes nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge.store import SCHEMA_VERSION, Store, upkeep
from edge.store.errors import CorruptDatabaseError, StoreError


def test_stored_uptime_never_moves_back(store: Store) -> None:
    with store.transaction() as tx:
        upkeep.advance_uptime(tx, 5000)
        upkeep.advance_uptime(tx, 4000)  # a smaller figure (e.g. a stale writer)
    assert store.query("SELECT uptime_ms FROM box") == [{"uptime_ms": 5000}]


def test_check_file_reads_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    Store.open(path, box_id="b").close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    check = upkeep.check_file(path)
    assert check.ok and check.problems == ["ok"] and check.version == SCHEMA_VERSION
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_check_file_of_no_database_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such database"):
        upkeep.check_file(tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not SQLite at all\x00" * 300)
    with pytest.raises(CorruptDatabaseError):
        upkeep.check_file(junk)
