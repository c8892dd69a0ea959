"""What the power-cut filesystem found outside the loop, each fixed, each
proved here on that filesystem (a cut right after the operation):

- a database copied into place (a restore) and opened by the store: WAL
  commits synced on top of a main file still in the page cache; the cut took
  the file back to its older pages under them — malformed. ``Store.open``
  now fsyncs the file (and its directory) before it writes anything;
- ``pickedge db backup``: SQLite synced the copy, but its commit (deleting
  the rollback journal) was not: after the cut the journal was back beside
  the copy. ``backup_file`` now fsyncs the directory;
- ``pickedge mosquitto-config``: the passwords it creates, the broker's
  password file, ACL and configuration were renamed into place without a
  directory fsync: a cut lost them. Each new name is now synced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

from edge.api.auth import enroll_pda
from edge.store import Store
from edge.store.upkeep import backup_file
from tests.support.mosquitto_config import generate, write_config
from tests.support.powercut_fs import PowercutFs

DEVICES = """
[[devices]]
id = "dock-1-portal"
driver = "impinj-iot"
topic = "impinj/dock-1/events"
role = "dock_door"
bound_to = "D1"
"""


def pdas(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return sorted(name for (name,) in conn.execute("SELECT name FROM pdas"))
    finally:
        conn.close()


def test_a_restored_copy_is_on_disk_before_the_store_writes_on_it(
    powercut: PowercutFs, tmp_path: Path
) -> None:
    m = powercut.mount_point
    db, copy = m / "box.db", tmp_path / "copy.db"
    with Store.open(db, box_id="b1") as store:
        enroll_pda(store, "pda-1")
    shutil.copyfile(db, copy)  # the box stopped: a whole copy of the file
    with Store.open(db, box_id="b1") as store:  # then it went on for a while
        for n in range(2, 400):
            enroll_pda(store, f"pda-{n}")
    powercut.sync()

    # the restore: the copy over the database, its -wal and -shm removed
    shutil.copyfile(copy, db)
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    store = Store.open(db, box_id="b1")
    enroll_pda(store, "pda-after")  # committed: on disk, says the store
    powercut.cut()
    with contextlib.suppress(Exception):
        store.close()
    powercut.mount()
    assert pdas(db) == ["pda-1", "pda-after"]


def test_a_backup_is_whole_after_a_cut(powercut: PowercutFs) -> None:
    m = powercut.mount_point
    with Store.open(m / "box.db", box_id="b1") as store:
        for n in range(1, 30):
            enroll_pda(store, f"pda-{n}")
    powercut.sync()
    backup_file(m / "box.db", m / "backup.db")  # "synced to disk before this returns"
    powercut.cut()
    powercut.mount()
    assert "backup.db-journal" not in os.listdir(m)  # no journal came back
    header = (m / "backup.db").read_bytes()[:100]
    assert (header[18], header[19]) == (1, 1)  # a rollback-journal file, as made
    assert len(pdas(m / "backup.db")) == 29


def test_mosquitto_config_survives_a_cut(powercut: PowercutFs, tmp_path: Path) -> None:
    config = write_config(tmp_path, 1883, devices=DEVICES)  # on the real disk
    out = powercut.mount_point / "etc" / "broker"
    done = generate(config, out)
    assert done.returncode == 0, done.stderr

    def files() -> dict[str, bytes]:
        return {
            str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
        }

    before = files()
    assert {"passwd", "acl", "mosquitto.conf", "passwords/dock-1-portal"} <= set(before)
    powercut.cut()
    powercut.mount()
    assert out.is_dir(), "the configuration's directory is gone"
    assert files() == before
