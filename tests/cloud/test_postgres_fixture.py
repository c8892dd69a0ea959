"""The real-PostgreSQL fixture itself (tests/support/postgres.py).

``pg_url`` gives a working, empty database of its own that keeps what a test
writes until the test ends and is dropped afterwards; a throwaway cluster runs
on its own port and directory (never the machine's PostgreSQL), retries another
port when the one picked is taken, and is gone — postmaster reaped, port closed,
directory removed — when its block or session ends, however it ends: an
exception, Ctrl-C, SIGTERM to a run that ignores SIGINT, SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from tests.support import postgres
from tests.support.postgres import (
    DIR_PREFIX,
    ENV_VAR,
    PostgresServer,
    PostgresUnavailable,
    ThrowawayCluster,
    throwaway_cluster,
)
from tests.support.processes import ProcessReaper, ignoring_sigint

ROOT = Path(__file__).resolve().parents[2]


def port_open(port: int | None) -> bool:
    assert port is not None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    """Running (a zombie left to a parent that is gone holds nothing: not alive)."""
    return postgres._alive(pid)


def user_tables(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A scratch directory that the ``postgres`` user (root runs clusters as it)
    can reach, unlike pytest's private tmp_path."""
    path = Path(tempfile.mkdtemp(prefix="pickedge-pgtest-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def needs_binaries() -> None:
    """Throwaway-cluster tests run even when PICKEDGE_TEST_PG names a server."""
    if postgres.find_postgres_bindir() is None:
        pytest.fail(postgres.MISSING_HINT, pytrace=False)


# --------------------------------------------------------------------------- pg_url / pg_server


def test_pg_url_is_a_working_empty_database(pg_url: str) -> None:
    dbname = conninfo_to_dict(pg_url)["dbname"]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (dbname,)
        assert dbname not in ("postgres", "template0", "template1")
        assert user_tables(conn) == []
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        conn.execute("CREATE TABLE t (k text PRIMARY KEY, v jsonb)")
        conn.execute("INSERT INTO t VALUES ('ü', '{\"a\": 1}')")
        assert conn.execute("SELECT v->>'a' FROM t WHERE k = 'ü'").fetchone() == ("1",)


def test_data_written_survives_until_the_test_ends(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE events (id bigint PRIMARY KEY)")
        conn.execute("INSERT INTO events SELECT generate_series(1, 1000)")
    # committed, the connection closed: a new one sees it all
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1000,)


def test_databases_are_distinct(pg_server: PostgresServer, pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE mine (x int)")
    with pg_server.database() as other_url:
        assert conninfo_to_dict(other_url)["dbname"] != conninfo_to_dict(pg_url)["dbname"]
        with psycopg.connect(other_url) as conn:
            assert user_tables(conn) == []
    names = {pg_server.create_database() for _ in range(3)}
    try:
        assert len(names) == 3
        assert names <= pg_server.databases()
    finally:
        for name in names:
            pg_server.drop_database(name)


def test_a_database_is_dropped_after_its_block_even_with_connections_open(
    pg_server: PostgresServer,
) -> None:
    with pg_server.database() as url:
        name = conninfo_to_dict(url)["dbname"]
        left_open = psycopg.connect(url)
        assert name in pg_server.databases()
    try:
        assert name not in pg_server.databases()
        assert left_open.closed or left_open.broken or _query_fails(left_open)
    finally:
        left_open.close()


def _query_fails(conn: psycopg.Connection[Any]) -> bool:
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False


def test_room_for_four_receivers_with_pools_of_eight(pg_url: str) -> None:
    pools = [ConnectionPool(pg_url, min_size=8, max_size=8, open=False) for _ in range(4)]
    try:
        for pool in pools:
            pool.open(wait=True, timeout=30)
        with psycopg.connect(pg_url) as conn:
            count = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchone()
        assert count is not None and count[0] >= 33
    finally:
        for pool in pools:
            pool.close()


def test_the_session_server(pg_server: PostgresServer) -> None:
    configured = os.environ.get(ENV_VAR, "").strip()
    if configured:  # the server named, as it is
        assert pg_server == PostgresServer.from_conninfo(configured)
        return
    # a throwaway cluster: never the machine's own PostgreSQL
    assert pg_server.host == "127.0.0.1"
    assert pg_server.port != 5432
    with pg_server.connect() as conn:

        def setting(name: str) -> str:
            row = conn.execute("SELECT current_setting(%s)", [name]).fetchone()
            assert row is not None
            return str(row[0])

        datadir = Path(setting("data_directory"))
        assert datadir.parent.name.startswith(DIR_PREFIX)
        assert datadir.is_relative_to(tempfile.gettempdir())
        assert setting("fsync") == "on"
        assert int(setting("max_connections")) >= 200
        assert setting("listen_addresses") == "127.0.0.1"


# --------------------------------------------------------------------------- conninfo and URL


def test_url_and_conninfo_name_the_same_database() -> None:
    server = PostgresServer.from_conninfo(
        "postgresql://rx:p%40ss%20w@db.example:6543/maint?sslmode=require&application_name=t"
    )
    assert (server.host, server.port, server.user, server.password) == (
        "db.example",
        6543,
        "rx",
        "p@ss w",
    )
    assert server.maintenance_db == "maint"
    assert dict(server.options) == {"sslmode": "require", "application_name": "t"}
    expected = {
        "host": "db.example",
        "port": "6543",
        "user": "rx",
        "password": "p@ss w",
        "dbname": "other",
        "sslmode": "require",
        "application_name": "t",
    }
    assert conninfo_to_dict(server.conninfo("other")) == expected
    assert conninfo_to_dict(server.url("other")) == expected
    assert conninfo_to_dict(server.url())["dbname"] == "maint"
    # a key=value conninfo without a dbname: the maintenance db is "postgres"
    assert PostgresServer.from_conninfo("host=h user=u").maintenance_db == "postgres"


def test_url_of_a_unix_socket_server() -> None:
    server = PostgresServer(host="/run/my sockets", port=5433, user="u")
    assert conninfo_to_dict(server.url("d")) == conninfo_to_dict(server.conninfo("d"))
    assert conninfo_to_dict(server.url("d"))["host"] == "/run/my sockets"


# --------------------------------------------------------------------------- throwaway clusters


@pytest.mark.usefixtures("needs_binaries")
def test_cluster_is_gone_after_the_block(reachable_dir: Path) -> None:
    cluster = ThrowawayCluster(base_dir=reachable_dir)
    with cluster as server:
        pid, workdir, port = cluster.pid, cluster.workdir, server.port
        assert pid is not None and workdir is not None
        left_open = server.connect()
        backends = [r[0] for r in left_open.execute("SELECT pid FROM pg_stat_activity")]
        assert len(backends) > 1  # the client's backend and the background processes
        assert alive(pid) and port_open(port)
    with pytest.raises(ProcessLookupError):  # reaped: not even a zombie
        os.kill(pid, 0)
    assert not port_open(port)
    assert not workdir.exists()
    assert not [b for b in backends if alive(b)]
    assert _query_fails(left_open)
    left_open.close()


@pytest.mark.usefixtures("needs_binaries")
def test_cluster_is_gone_when_the_block_raises(reachable_dir: Path) -> None:
    cluster = ThrowawayCluster(base_dir=reachable_dir)
    with pytest.raises(ZeroDivisionError), cluster as server:
        pid, workdir, port = cluster.pid, cluster.workdir, server.port
        _ = 1 / 0
    assert pid is not None and workdir is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not port_open(port)
    assert not workdir.exists()
    assert list(reachable_dir.iterdir()) == []


@pytest.mark.usefixtures("needs_binaries")
def test_two_clusters_at_once_never_collide(reachable_dir: Path) -> None:
    with throwaway_cluster(base_dir=reachable_dir) as a, throwaway_cluster() as b:
        assert a.port != b.port
        dirs = set()
        for server, mark in ((a, "a"), (b, "b")):
            with server.connect() as conn:
                dirs.add(conn.execute("SHOW data_directory").fetchone())
                conn.execute("CREATE TABLE which (m text)")
                conn.execute("INSERT INTO which VALUES (%s)", [mark])
        assert len(dirs) == 2
        for server, mark in ((a, "a"), (b, "b")):
            with server.connect() as conn:
                assert conn.execute("SELECT m FROM which").fetchall() == [(mark,)]


@pytest.mark.usefixtures("needs_binaries")
def test_a_taken_port_is_retried_on_another(reachable_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picks = iter([busy])
        cluster = ThrowawayCluster(
            base_dir=reachable_dir, pick_port=lambda: next(picks, None) or postgres.free_port()
        )
        with cluster as server:
            assert cluster.ports_tried[0] == busy
            assert server.port != busy
            with server.connect() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            assert "Address already in use" in cluster.log_tail(100)


def test_missing_binaries_fail_with_the_way_to_install_them(
    monkeypatch: pytest.MonkeyPatch, reachable_dir: Path
) -> None:
    monkeypatch.setattr(postgres, "find_postgres_bindir", lambda: None)
    with pytest.raises(PostgresUnavailable, match=r"\./dev\.sh test"):
        ThrowawayCluster(base_dir=reachable_dir).start()
    assert list(reachable_dir.iterdir()) == []


@pytest.mark.usefixtures("needs_binaries")
def test_stale_directories_of_dead_runs_are_swept(reachable_dir: Path) -> None:
    exited = subprocess.Popen(["true"])
    exited.wait()
    stale = reachable_dir / f"{DIR_PREFIX}stale"
    stale.mkdir()
    (stale / "owner").write_text(f"{exited.pid}\n")
    live = reachable_dir / f"{DIR_PREFIX}live"
    live.mkdir()
    (live / "owner").write_text(f"{os.getpid()}\n")
    with throwaway_cluster(base_dir=reachable_dir):
        assert not stale.exists()
        assert live.exists()


# --------------------------------------------------------------------------- whole pytest runs

INNER_CONFTEST = """\
import os

import tests.support.postgres as postgres
from tests.support.postgres import pg_server, pg_url

if os.environ.get("PG_NO_BINARIES"):
    postgres.find_postgres_bindir = lambda: None

__all__ = ["pg_server", "pg_url"]
"""

INNER_TESTS = """\
import json
import os
import time
from pathlib import Path

import psycopg


def report(pg_url):
    seen = {}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT current_database(), inet_server_port()").fetchone()
        seen["db"], seen["port"] = row
        if not os.environ.get("PICKEDGE_TEST_PG"):  # a throwaway cluster: where and who
            seen["datadir"] = conn.execute("SHOW data_directory").fetchone()[0]
            pidfile = Path(seen["datadir"]) / "postmaster.pid"
            seen["pid"] = int(pidfile.read_text().split()[0])
    line = json.dumps(seen)
    with open(os.environ["PG_REPORT"], "a") as out:
        out.write(line + "\\n")


def test_writes(pg_url):
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE t (x int)")
    report(pg_url)


def test_fails(pg_url):
    report(pg_url)
    assert False, "fails on purpose"


def test_waits(pg_url):
    report(pg_url)
    time.sleep(120)
"""


def _inner_run(
    processes: ProcessReaper,
    where: Path,
    select: str,
    env: dict[str, str],
    **kwargs: Any,
) -> subprocess.Popen[str]:
    where.mkdir(parents=True, exist_ok=True)
    (where / "conftest.py").write_text(INNER_CONFTEST)
    (where / "test_inner.py").write_text(INNER_TESTS)
    full_env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    full_env.update(PYTHONPATH=str(ROOT), PG_REPORT=str(where / "report.jsonl"), **env)
    return processes.popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", select],
        cwd=where,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _reports(where: Path) -> list[dict[str, Any]]:
    path = where / "report.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def _wait_for_report(proc: subprocess.Popen[str], where: Path) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while not _reports(where):
            assert proc.poll() is None, proc.communicate()[0]
            await asyncio.sleep(0.05)
    return _reports(where)[0]


async def _wait_gone(pid: int, within: float = 15) -> None:
    async with asyncio.timeout(within):
        while alive(pid):  # noqa: ASYNC110 - a pid has nothing to await
            await asyncio.sleep(0.05)


async def test_a_run_uses_the_configured_server_and_drops_its_databases(
    pg_server: PostgresServer, processes: ProcessReaper, tmp_path: Path
) -> None:
    proc = _inner_run(processes, tmp_path / "inner", "writes or fails", {ENV_VAR: pg_server.url()})
    output, _ = await asyncio.to_thread(proc.communicate, timeout=120)
    assert proc.returncode == 1, output  # one test failed on purpose
    assert "1 failed, 1 passed" in output, output
    reports = _reports(tmp_path / "inner")
    assert len(reports) == 2
    assert {r["port"] for r in reports} == {pg_server.port or 5432}
    names = {r["db"] for r in reports}
    assert len(names) == 2
    assert not names & pg_server.databases()  # dropped, after a pass and after a failure


async def test_missing_postgresql_fails_the_run_and_never_skips(
    processes: ProcessReaper, tmp_path: Path
) -> None:
    proc = _inner_run(processes, tmp_path / "inner", "writes", {"PG_NO_BINARIES": "1"})
    output, _ = await asyncio.to_thread(proc.communicate, timeout=120)
    assert proc.returncode == 1, output
    assert "./dev.sh test" in output
    assert "skipped" not in output
    assert "1 error" in output


@pytest.mark.usefixtures("needs_binaries")
@pytest.mark.parametrize(
    ("sigint_ignored", "stop_with"),
    [(False, signal.SIGINT), (True, signal.SIGTERM)],
    ids=["ctrl-c", "sigterm-with-sigint-ignored"],
)
async def test_an_interrupted_run_reaps_its_cluster(
    processes: ProcessReaper, tmp_path: Path, sigint_ignored: bool, stop_with: signal.Signals
) -> None:
    where = tmp_path / "inner"
    proc = _inner_run(
        processes,
        where,
        "waits",
        {},
        preexec_fn=ignoring_sigint if sigint_ignored else None,
    )
    seen = await _wait_for_report(proc, where)
    assert alive(seen["pid"]) and port_open(seen["port"])
    if sigint_ignored:
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.5)
        assert proc.poll() is None  # it really ignores Ctrl-C
    proc.send_signal(stop_with)
    output, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 2, output  # interrupted; teardown ran
    assert "KeyboardInterrupt" in output
    assert not alive(seen["pid"])
    assert not port_open(seen["port"])
    assert not Path(seen["datadir"]).parent.exists()


@pytest.mark.usefixtures("needs_binaries")
async def test_a_sigkilled_run_leaves_no_server_and_its_directory_is_swept(
    processes: ProcessReaper, tmp_path: Path, reachable_dir: Path
) -> None:
    where = tmp_path / "inner"
    proc = _inner_run(processes, where, "waits", {"TMPDIR": str(reachable_dir)})
    seen = await _wait_for_report(proc, where)
    workdir = Path(seen["datadir"]).parent
    assert workdir.parent == reachable_dir
    proc.kill()
    await asyncio.to_thread(proc.communicate, timeout=60)
    # the kernel tells the postmaster its parent died: immediate shutdown
    await _wait_gone(seen["pid"])
    assert not port_open(seen["port"])
    assert workdir.exists()  # nobody was left to remove it...
    started = time.monotonic()
    await asyncio.to_thread(_start_and_stop, reachable_dir)
    assert not workdir.exists()  # ...until the next cluster started there
    assert time.monotonic() - started < 30


def _start_and_stop(base_dir: Path) -> None:
    with throwaway_cluster(base_dir=base_dir) as server, server.connect() as conn:
        conn.execute("SELECT 1")
