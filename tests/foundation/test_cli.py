"""The command line as an operator uses it: real processes, exit codes, and
files left untouched when the answer is no."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import ProcessReaper

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "configs" / "example.toml"


def pickedge(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_secrets(tmp_path: Path, mode: int = 0o600) -> None:
    """The example's secrets, private as an operator keeps them (a clone gets
    them 0644, which the daemon refuses)."""
    shutil.copytree(ROOT / "configs" / "secrets", tmp_path / "secrets")
    for secret in (tmp_path / "secrets").iterdir():
        secret.chmod(mode)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the example configuration with its store in tmp_path."""
    copy_secrets(tmp_path)
    text = EXAMPLE.read_text().replace('path = "../var/pickedge.db"', 'path = "pickedge.db"')
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_every_command_has_help_with_examples() -> None:
    top = pickedge("--help")
    assert top.returncode == 0
    for command in ("run", "check-config", "db", "demo", "version"):
        assert command in top.stdout
    for args in (
        ["run"],
        ["check-config"],
        ["db"],
        ["db", "migrate"],
        ["db", "backup"],
        ["db", "integrity"],
        ["version"],
        ["demo"],
        ["route"],
        ["decode"],
        ["listen"],
        ["sync", "status"],
        ["pda", "enroll"],
        ["pda", "list"],
        ["pda", "revoke"],
        ["picker", "add"],
        *(
            ["sim", name]
            for name in (
                "scanner",
                "rfid-a0",
                "rfid-m100",
                "impinj",
                "zebra",
                "mqtt-scanner",
                "printer",
                "cloud",
            )
        ),
    ):
        result = pickedge(*args, "--help")
        assert result.returncode == 0, result.stderr
        assert "Example" in result.stdout, args


def test_version() -> None:
    result = pickedge("version")
    assert result.returncode == 0
    assert result.stdout.startswith("pickedge ")


def test_example_config_is_valid(site: Path) -> None:
    result = pickedge("check-config", str(site), env={"PICKEDGE__API__PORT": "8080"})
    assert result.returncode == 0, result.stderr
    assert "# file:" in result.stdout
    port_line = next(line for line in result.stdout.splitlines() if line.startswith("api.port "))
    assert "8080" in port_line and "env:PICKEDGE__API__PORT" in port_line
    secret = (ROOT / "configs" / "secrets" / "demo-box.secret").read_text().strip()
    assert secret not in result.stdout + result.stderr


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path) -> None:
    copy_secrets(tmp_path, mode=0o644)
    site = tmp_path / "site.toml"
    site.write_text(EXAMPLE.read_text())
    for command in (["check-config", str(site)], ["run", "--config", str(site)]):
        result = pickedge(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "box.secret_file: secret file" in result.stderr
        assert "is readable by others (mode 0644): chmod 600 it" in result.stderr
        secret = (tmp_path / "secrets" / "demo-box.secret").read_text().strip()
        assert secret not in result.stdout + result.stderr


def test_broken_copy_names_the_key(tmp_path: Path) -> None:
    copy_secrets(tmp_path)
    text = (
        EXAMPLE.read_text()
        .replace("port = 8470", 'port = "8470"')
        .replace("busy_timeout_ms", "busy_timeuot_ms")
    )
    broken = tmp_path / "broken.toml"
    broken.write_text(text)
    result = pickedge("check-config", str(broken))
    assert result.returncode == 2
    assert "api.port: must be an integer" in result.stderr
    assert "store.busy_timeuot_ms: unknown key (did you mean 'busy_timeout_ms'?)" in result.stderr
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith('port = "8470"'))
    assert f"broken.toml:{line}: api.port" in result.stderr
    assert result.stdout == ""


def test_db_commands_round_trip(site: Path, tmp_path: Path) -> None:
    assert pickedge("db", "migrate", "--config", str(site)).returncode == 0
    ok = pickedge("db", "integrity", "--config", str(site))
    assert ok.returncode == 0 and ": ok (schema" in ok.stdout
    backup = tmp_path / "backup.db"
    done = pickedge("db", "backup", str(backup), "--config", str(site))
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(backup)
    assert conn.execute("SELECT box_id FROM box").fetchone() == ("zone-a-01",)
    conn.close()
    again = pickedge("db", "backup", str(backup), "--config", str(site))
    assert again.returncode == 2 and "never overwrite" in again.stderr
    nowhere = pickedge("db", "backup", str(tmp_path / "no" / "b.db"), "--config", str(site))
    assert nowhere.returncode == 2 and "Traceback" not in nowhere.stderr, nowhere.stderr


def test_corrupt_database_exits_2_and_is_untouched(site: Path) -> None:
    db = site.parent / "pickedge.db"
    db.write_bytes(os.urandom(8192))
    before = _digest(db)
    for args in (["db", "migrate"], ["db", "integrity"], ["run"]):
        result = pickedge(*args, "--config", str(site))
        assert result.returncode == 2, (args, result.stderr)
        assert "pickedge.db" in result.stderr and "corrupt" in result.stderr
        assert "Traceback" not in result.stderr
    assert _digest(db) == before


def test_newer_schema_exits_2_and_is_untouched(site: Path) -> None:
    assert pickedge("db", "migrate", "--config", str(site)).returncode == 0
    db = site.parent / "pickedge.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    before = _digest(db)
    result = pickedge("run", "--config", str(site))
    assert result.returncode == 2
    assert "schema version 999 was written by a newer PickEdge" in result.stderr
    assert _digest(db) == before


def test_read_only_disk_exits_2_and_is_untouched(site: Path) -> None:
    assert pickedge("db", "migrate", "--config", str(site)).returncode == 0
    # A fresh migration has nothing to write; make the daemon need to write.
    db = site.parent / "pickedge.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = DELETE")  # opening must switch it back to WAL
    conn.close()
    before = _digest(db)
    if os.geteuid() == 0:
        # root ignores file modes: mount the directory read-only in a private
        # mount namespace, as a disk remounted read-only after errors would be.
        script = (
            f"mount --bind {site.parent} {site.parent} && "
            f"mount -o remount,bind,ro {site.parent} && "
            f"exec {sys.executable} -m edge run --config {site}"
        )
        cmd = ["unshare", "-m", "sh", "-c", script]
    else:
        site.parent.chmod(0o555)
        db.chmod(0o444)
        cmd = [sys.executable, "-m", "edge", "run", "--config", str(site)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    finally:
        site.parent.chmod(0o755)
        db.chmod(0o644)
    assert result.returncode == 2, result.stderr
    assert "cannot be written" in result.stderr or "cannot open" in result.stderr
    assert "Traceback" not in result.stderr
    assert _digest(db) == before


def test_run_stops_cleanly_on_sigterm(site: Path, processes: ProcessReaper) -> None:
    env = {**os.environ, "PICKEDGE__CLOUD__URL": "", "PICKEDGE__API__PORT": "0"}
    proc = processes.popen(
        [sys.executable, "-m", "edge", "run", "--config", str(site), "--log-format", "json"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if '"msg":"ready' in line:
            break
    assert any('"msg":"pickedge' in line for line in lines), lines
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert time.monotonic() - started < 10
    assert proc.returncode == 0, err
    assert '"msg":"stopped"' in err
    wal = site.parent / "pickedge.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed on the way out


# ---------------------------------------------------------------- schema and WAL
# CLI commands run beside the daemon: they never migrate the schema (a newer
# CLI must not change the database under an older running daemon) and never
# checkpoint the WAL (that waited on the daemon's readers with the write lock
# held). `pickedge db migrate` migrates; `pickedge run` migrates at start.


def _older_schema(db: Path, box_id: str) -> int:
    """A database at the schema before this one: the first one, with its box row
    (or, while there is only one, a database file with no schema yet)."""
    from edge.store.migrations import MIGRATIONS, SCHEMA_VERSION

    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        if SCHEMA_VERSION < 2:
            conn.execute("PRAGMA user_version = 0")
            return 0
        conn.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nPRAGMA user_version = 1;\nCOMMIT;")
        conn.execute(
            "INSERT INTO box (id, box_id, epoch, next_seq, created_ms) VALUES (1, ?, 'e0', 1, 0)",
            (box_id,),
        )
        conn.execute("INSERT INTO epochs (epoch, started_ms) VALUES ('e0', 0)")
        conn.execute("UPDATE sync_state SET acked_epoch = 'e0'")
        return 1
    finally:
        conn.close()


def _version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _files(db: Path) -> dict[str, str | None]:
    """Digest of the database and its WAL (None when absent or empty: a
    read-only connection may leave an empty one)."""
    out: dict[str, str | None] = {}
    for suffix in ("", "-wal"):
        path = db.with_name(db.name + suffix)
        has = path.exists() and path.stat().st_size > 0
        out[suffix or "db"] = _digest(path) if has else None
    return out


def test_cli_commands_refuse_an_older_schema_and_change_nothing(site: Path, tmp_path: Path) -> None:
    from edge.store import SCHEMA_VERSION

    db = site.parent / "pickedge.db"
    old = _older_schema(db, "zone-a-01")
    before = _files(db)
    for args in (
        ["pda", "enroll", "handheld-1"],
        ["pda", "list"],
        ["pda", "revoke", "handheld-1"],
        ["picker", "add", "P1", "Ana", "BADGE-1"],
    ):
        result = pickedge(*args, "--config", str(site))
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert f"schema version {old}" in result.stderr, result.stderr
        assert "run `pickedge db migrate`" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""
        assert _files(db) == before, args
    # A backup before migrating is what an operator makes first: it works
    # on the older schema and changes nothing either.
    backup = tmp_path / "before-migrate.db"
    saved = pickedge("db", "backup", str(backup), "--config", str(site))
    assert saved.returncode == 0, saved.stderr
    assert _version(backup) == old and _files(db) == before
    migrated = pickedge("db", "migrate", "--config", str(site))
    assert migrated.returncode == 0, migrated.stderr
    assert _version(db) == SCHEMA_VERSION
    enrolled = pickedge("pda", "enroll", "handheld-1", "--config", str(site))
    assert enrolled.returncode == 0, enrolled.stderr


def test_cli_commands_do_not_create_a_missing_database(site: Path) -> None:
    db = site.parent / "pickedge.db"
    for args in (["pda", "enroll", "handheld-1"], ["pda", "list"]):
        result = pickedge(*args, "--config", str(site))
        assert result.returncode == 2, (args, result.stderr)
        assert "pickedge db migrate" in result.stderr and "Traceback" not in result.stderr
        assert not db.exists()


def _written(path: Path) -> tuple[int, int]:
    """When and how big: read with stat, never by opening the file, which
    would drop this process's SQLite locks on it (POSIX locks die with any
    close of the file)."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def test_cli_commands_do_not_checkpoint_beside_the_daemon(site: Path, tmp_path: Path) -> None:
    from edge.store import Store

    db = site.parent / "pickedge.db"
    assert pickedge("db", "migrate", "--config", str(site)).returncode == 0
    # The running daemon: its connection keeps the WAL alive, its commits are
    # in the WAL and not yet in the database file.
    with Store.open(db, box_id="zone-a-01") as daemon:
        for n in range(20):
            with daemon.transaction() as tx:
                tx.execute("INSERT INTO items (sku) VALUES (?)", (f"S{n}",))
        main_file = _written(db)
        wal = db.with_name(db.name + "-wal")
        size = wal.stat().st_size
        assert size > 0
        for args in (
            ["pda", "enroll", "handheld-1"],
            ["picker", "add", "P1", "Ana", "BADGE-1"],
            ["pda", "list"],
            ["pda", "revoke", "handheld-1"],
            ["db", "backup", str(tmp_path / "b.db")],
        ):
            result = pickedge(*args, "--config", str(site))
            assert result.returncode == 0, (args, result.stderr)
            # nothing was copied from the WAL into the database, nor truncated
            assert _written(db) == main_file, args
            assert wal.stat().st_size >= size, args
            size = wal.stat().st_size
        assert daemon.query("SELECT count(*) AS n FROM pdas") == [{"n": 1}]


def test_run_migrates_an_older_schema_at_start(site: Path, processes: ProcessReaper) -> None:
    from edge.store import SCHEMA_VERSION

    db = site.parent / "pickedge.db"
    _older_schema(db, "zone-a-01")
    env = {**os.environ, "PICKEDGE__CLOUD__URL": "", "PICKEDGE__API__PORT": "0"}
    proc = processes.popen(
        [sys.executable, "-m", "edge", "run", "--config", str(site), "--log-format", "json"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if '"msg":"ready' in line or not line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert _version(db) == SCHEMA_VERSION
