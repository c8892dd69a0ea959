"""The power-cut filesystem itself (tests/support/powercut_fs.py): what a cut
keeps and what it loses, by the rules a real disk and kernel follow.

A file written and fsynced survives a cut; one written and not synced does
not; a name (create, rename, unlink) survives only once its directory was
fsynced; truncates are data like writes; in ``torn`` mode half of the
unsynced pages land anyway and the latest one is torn at a sector boundary.
SQLite in WAL mode (``synchronous=FULL``) keeps every committed transaction
across cuts in both modes. And the mount never outlives the test.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.powercut_fs import PAGE, SECTOR, PowercutFs


def write(path: Path, data: bytes, *, sync: bool, flags: int = 0) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def power_cycle(fs: PowercutFs, mode: str = "default", seed: int = 0) -> dict[str, int]:
    stats = fs.cut(mode, seed)
    fs.mount()
    return stats


def test_a_synced_file_survives_and_an_unsynced_write_does_not(powercut: PowercutFs) -> None:
    m = powercut.mount_point
    write(m / "synced", b"kept", sync=True)
    write(m / "later", b"name kept, data not", sync=False)
    sync_dir(m)
    write(m / "synced", b"LOST", sync=False)  # overwrites in place, never synced
    assert (m / "synced").read_bytes() == b"LOST"  # the running program sees its write
    write(m / "unnamed", b"never named", sync=True)  # its name was never synced

    stats = power_cycle(powercut)
    assert (m / "synced").read_bytes() == b"kept"
    assert (m / "later").read_bytes() == b""
    assert not (m / "unnamed").exists()
    assert sorted(os.listdir(m)) == ["later", "synced"]
    assert stats["lost_pages"] >= 2 and stats["lost_dirs"] == 1


def test_fdatasync_is_a_sync_too(powercut: PowercutFs) -> None:
    m = powercut.mount_point
    write(m / "f", b"", sync=False)
    sync_dir(m)
    fd = os.open(m / "f", os.O_WRONLY)
    os.write(fd, b"data")
    os.fdatasync(fd)
    os.close(fd)
    power_cycle(powercut)
    assert (m / "f").read_bytes() == b"data"


def test_a_rename_without_a_directory_sync_is_lost(powercut: PowercutFs) -> None:
    m = powercut.mount_point
    write(m / "mark", b"old", sync=True)
    sync_dir(m)
    # the atomic replace, without the directory fsync at the end
    write(m / "mark.tmp", b"new", sync=True)
    os.replace(m / "mark.tmp", m / "mark")
    assert (m / "mark").read_bytes() == b"new"
    power_cycle(powercut)
    assert (m / "mark").read_bytes() == b"old"
    assert sorted(os.listdir(m)) == ["mark"]

    # ... and with it, the new content is there under the name, the tmp gone
    write(m / "mark.tmp", b"new", sync=True)
    os.replace(m / "mark.tmp", m / "mark")
    sync_dir(m)
    power_cycle(powercut)
    assert (m / "mark").read_bytes() == b"new"
    assert sorted(os.listdir(m)) == ["mark"]


def test_unlink_and_mkdir_wait_for_their_directory_sync(powercut: PowercutFs) -> None:
    m = powercut.mount_point
    write(m / "gone", b"x", sync=True)
    sync_dir(m)
    (m / "gone").unlink()
    (m / "sub").mkdir()
    write(m / "sub" / "inner", b"y", sync=True)
    sync_dir(m / "sub")  # its entries, but "sub" itself is not named yet
    power_cycle(powercut)
    assert sorted(os.listdir(m)) == ["gone"]

    (m / "gone").unlink()
    (m / "sub").mkdir()
    write(m / "sub" / "inner", b"y", sync=True)
    sync_dir(m / "sub")
    sync_dir(m)
    power_cycle(powercut)
    assert sorted(os.listdir(m)) == ["sub"]
    assert (m / "sub" / "inner").read_bytes() == b"y"


def test_truncate_is_data_until_synced(powercut: PowercutFs) -> None:
    m = powercut.mount_point
    body = bytes(range(256)) * 40  # 10,240 bytes: three pages
    write(m / "f", body, sync=True)
    sync_dir(m)
    os.truncate(m / "f", 100)
    os.truncate(m / "f", 9000)  # shrunk then grown: the gap reads as zeros
    assert (m / "f").read_bytes() == body[:100] + bytes(8900)
    power_cycle(powercut)
    assert (m / "f").read_bytes() == body

    os.truncate(m / "f", 100)
    os.truncate(m / "f", 9000)
    fd = os.open(m / "f", os.O_WRONLY)
    os.fsync(fd)
    os.close(fd)
    write(m / "f", b"", sync=False, flags=os.O_TRUNC)  # O_TRUNC, not synced
    assert (m / "f").read_bytes() == b""
    power_cycle(powercut)
    assert (m / "f").read_bytes() == body[:100] + bytes(8900)


def test_after_a_cut_every_call_fails(powercut: PowercutFs) -> None:
    m = powercut.mount_point
    write(m / "f", b"x", sync=True)
    fd = os.open(m / "f", os.O_RDWR)
    try:
        powercut.ask(cmd="cut", mode="default", seed=0)
        with pytest.raises(OSError) as err:
            os.pwrite(fd, b"y", 0)
            os.fsync(fd)
        # EIO while the process lives; once it ended, the aborted connection
        dead = (errno.EIO, errno.ENOTCONN, errno.ECONNABORTED)
        assert err.value.errno in dead, err.value
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    powercut.unmount()
    powercut.mount()
    assert not (m / "f").exists()  # its name was never synced


def test_torn_mode_lands_a_subset_and_tears_the_last_page(powercut: PowercutFs) -> None:
    m = powercut.mount_point
    pages = 8
    kept_any = lost_any = 0
    for seed in range(12):
        write(m / "f", b"a" * PAGE * pages, sync=True)
        sync_dir(m)
        fd = os.open(m / "f", os.O_WRONLY)
        for page in range(pages):  # page 7 is written last
            os.pwrite(fd, bytes([ord("b")]) * PAGE, page * PAGE)
        os.close(fd)
        stats = power_cycle(powercut, "torn", seed)
        got = (m / "f").read_bytes()
        assert len(got) == PAGE * pages
        for page in range(pages - 1):
            chunk = got[page * PAGE : (page + 1) * PAGE]
            assert chunk in (b"a" * PAGE, b"b" * PAGE), (seed, page)
            kept_any += chunk == b"b" * PAGE
            lost_any += chunk == b"a" * PAGE
        last = got[(pages - 1) * PAGE :]
        torn = last.index(b"a")  # some of it always stays old ...
        assert 0 < torn < PAGE and torn % SECTOR == 0, (seed, torn)  # ... at a sector
        assert last == b"b" * torn + b"a" * (PAGE - torn)
        assert stats["torn_pages"] == 1
    assert kept_any and lost_any


def test_torn_mode_may_land_an_unsynced_rename(powercut: PowercutFs) -> None:
    m = powercut.mount_point
    outcomes = set()
    for seed in range(10):
        write(m / "a", b"A", sync=True)
        sync_dir(m)
        os.rename(m / "a", m / "b")
        power_cycle(powercut, "torn", seed)
        names = sorted(os.listdir(m))
        assert names in (["a"], ["b"]), names  # never both, never neither
        outcomes.add(tuple(names))
        for name in names:
            (m / name).unlink()
        sync_dir(m)
    assert outcomes == {("a",), ("b",)}


def test_mmap_shared_writes_are_seen_and_not_durable(powercut: PowercutFs) -> None:
    m = powercut.mount_point
    write(m / "shm", bytes(PAGE * 2), sync=True)
    sync_dir(m)
    fd = os.open(m / "shm", os.O_RDWR)
    try:
        with mmap.mmap(fd, PAGE * 2, mmap.MAP_SHARED) as mem:
            mem[10:15] = b"hello"  # no msync: on FUSE that is an fsync
    finally:
        os.close(fd)  # the kernel writes the dirty page back (a write, no sync)
    assert (m / "shm").read_bytes()[10:15] == b"hello"
    power_cycle(powercut)
    assert (m / "shm").read_bytes() == bytes(PAGE * 2)

    fd = os.open(m / "shm", os.O_RDWR)
    try:
        with mmap.mmap(fd, PAGE * 2, mmap.MAP_SHARED) as mem:
            mem[10:15] = b"hello"
            mem.flush()  # msync(MS_SYNC) reaches the filesystem as fsync
    finally:
        os.close(fd)
    power_cycle(powercut)
    assert (m / "shm").read_bytes()[10:15] == b"hello"


@pytest.mark.parametrize("mode", ["default", "torn"])
def test_sqlite_wal_keeps_every_commit_across_cuts(powercut: PowercutFs, mode: str) -> None:
    m = powercut.mount_point
    committed = 0
    for cut in range(8):
        conn = sqlite3.connect(m / "db.sqlite", isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, pad BLOB)")
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        (have,) = conn.execute("SELECT count(*) FROM t").fetchone()
        assert have == committed, (cut, have, committed)
        for _ in range(40):
            conn.execute("INSERT INTO t (pad) VALUES (randomblob(700))")
            committed += 1
        if cut % 3 == 2:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (pad) VALUES (randomblob(9000))")  # never committed
        power_cycle(powercut, mode, seed=cut)
        conn.close()
    assert committed == 320


def test_the_mount_is_gone_after_a_failing_test(tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    fs = PowercutFs(mount, tmp_path / "disk")
    with pytest.raises(RuntimeError), fs:
        write(mount / "f", b"x", sync=False)
        raise RuntimeError("the test failed here")
    assert not os.path.ismount(mount)
    assert fs.proc is None


def test_the_filesystem_process_ends_with_the_test_process(tmp_path: Path) -> None:
    """A test process killed outright (no cleanup at all) takes the
    filesystem's process with it, which unmounts."""
    code = (
        "import os, sys, time; from pathlib import Path;"
        "from tests.support.powercut_fs import PowercutFs;"
        f"fs = PowercutFs(Path({str(tmp_path / 'mnt')!r}), Path({str(tmp_path / 'disk')!r}));"
        "fs.mount(); print(fs.proc.pid, flush=True); os.kill(os.getpid(), 9)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, timeout=60)
    assert out.returncode == -9, out.stderr
    pid = int(out.stdout.split()[0])
    for _ in range(200):
        if not os.path.exists(f"/proc/{pid}") and not os.path.ismount(tmp_path / "mnt"):
            break
        import time

        time.sleep(0.05)
    else:
        subprocess.run(["fusermount3", "-u", "-z", str(tmp_path / "mnt")], check=False)
        raise AssertionError("the filesystem outlived its test process")
