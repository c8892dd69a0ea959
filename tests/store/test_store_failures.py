"""Bad databases and bad disks: one clear error naming the file, nothing changed."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from cloud_sync.events import Alert, Severity
from edge.store import SCHEMA_VERSION, Store, migrations
from edge.store.errors import (
    CorruptDatabaseError,
    SchemaTooNewError,
    StorageFullError,
    StoreError,
)
from edge.store.upkeep import backup_file


def _alert(kind: str) -> Alert:
    return Alert(kind=kind, severity=Severity.INFO, subject="test", detail={})


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_not_a_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not SQLite\x00" * 300)
    before = _digest(path)
    with pytest.raises(CorruptDatabaseError, match=r"junk\.db: the database is corrupt"):
        Store.open(path, box_id="b")
    assert _digest(path) == before
    assert not (tmp_path / "junk.db-wal").exists()


def test_corrupted_pages_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with Store.open(path, box_id="b") as store, store.transaction() as tx:
        for i in range(300):
            tx.execute("INSERT INTO items (sku, description) VALUES (?, ?)", (f"S{i}", "x" * 200))
    raw = bytearray(path.read_bytes())
    raw[4096 * 2 : 4096 * 6] = b"\xa5" * (4096 * 4)  # smash b-tree pages
    path.write_bytes(bytes(raw))
    with Store.open(path, box_id="b") as store, pytest.raises(CorruptDatabaseError):
        store.integrity_check()


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store.open(path, box_id="b").close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = _digest(path)
    with pytest.raises(SchemaTooNewError, match="written by a newer PickEdge"):
        Store.open(path, box_id="b")
    assert _digest(path) == before


def test_database_of_another_box_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    Store.open(path, box_id="zone-a").close()
    with pytest.raises(StoreError, match="belongs to box 'zone-a'"):
        Store.open(path, box_id="zone-b")


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "nope" / "x.db", box_id="b")


def test_failed_migration_leaves_the_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.db"
    Store.open(path, box_id="b").close()
    broken = "CREATE TABLE extra (x INTEGER);\nINSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken))
    monkeypatch.setattr("edge.store.db.MIGRATIONS", migrations.MIGRATIONS)
    monkeypatch.setattr("edge.store.db.SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="no such table"):
        Store.open(path, box_id="b")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'extra'").fetchone() == (
        0,
    )
    conn.close()


def test_full_disk_rolls_back_and_confirms_nothing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "f.db", box_id="b") as store:
        with store.transaction() as tx:
            tx.append(_alert("before"))
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        # SQLite's own page limit produces a real SQLITE_FULL, as a full disk does.
        store._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(StorageFullError, match="disk is full"), store.transaction() as tx:
            for i in range(500):
                tx.execute(
                    "INSERT INTO items (sku, description) VALUES (?, ?)", (f"S{i}", "x" * 500)
                )
            tx.append(_alert("never"))
        store._conn.execute("PRAGMA max_page_count = 1073741823")
        assert store.query("SELECT count(*) AS n FROM items") == [{"n": 0}]
        assert [r["seq"] for r in store.query("SELECT seq FROM outbox")] == [1]
        with store.transaction() as tx:
            assert tx.append(_alert("after")) == 2
        assert store.integrity_check() == ["ok"]


def test_wal_is_truncated_by_checkpoint(tmp_path: Path) -> None:
    with Store.open(tmp_path / "w.db", box_id="b", wal_limit_bytes=1 << 20) as store:
        for i in range(200):
            with store.transaction() as tx:
                tx.execute(
                    "INSERT INTO items (sku, description) VALUES (?, ?)", (f"S{i}", "y" * 2000)
                )
        busy, _, _ = store.checkpoint()
        assert busy == 0
        assert (tmp_path / "w.db-wal").stat().st_size == 0


def test_backup_is_consistent_and_never_overwrites(tmp_path: Path) -> None:
    with Store.open(tmp_path / "live.db", box_id="b") as store:
        with store.transaction() as tx:
            tx.append(_alert("x"))
        backup_file(store.path, tmp_path / "copy.db")
        with pytest.raises(StoreError, match="never overwrite"):
            backup_file(store.path, tmp_path / "copy.db")
    with Store.open(tmp_path / "copy.db", box_id="b") as copy:
        assert copy.query("SELECT seq FROM outbox") == [{"seq": 1}]
        assert copy.integrity_check() == ["ok"]
