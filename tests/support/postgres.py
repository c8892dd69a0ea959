"""A real PostgreSQL for the cloud receiver's tests and benchmarks.

Two sources, chosen by :func:`postgres_server`:

* ``PICKEDGE_TEST_PG`` set: a libpq conninfo or URL of a server where the user
  may ``CREATE DATABASE``; it is used as it is (never started or stopped here).
* otherwise a throwaway cluster (:class:`ThrowawayCluster`): ``initdb`` into a
  fresh directory ``pickedge-pg-*`` under the temp dir (its own ``PGDATA`` and
  its own Unix-socket directory), ``postgres`` on a free loopback port, retried
  on another port when the one picked was taken meanwhile, so several test
  sessions on one machine never collide. The machine's own PostgreSQL (if it
  has one, e.g. on 5432) is never used unless ``PICKEDGE_TEST_PG`` names it.
  The binaries are found on PATH or under ``/usr/lib/postgresql/<version>/bin``
  (highest version); as root (initdb and postgres refuse to run as root) the
  cluster runs as the ``postgres`` system user that Debian's package creates.
  ``fsync`` stays on: the tests are about durability.

The cluster is reaped pass or fail: :meth:`ThrowawayCluster.stop` (immediate
shutdown, SIGQUIT, then SIGKILL, and wait) runs when the ``with`` block or the
session ends, on KeyboardInterrupt too; the ``pg_server`` fixture makes SIGTERM
and SIGHUP raise KeyboardInterrupt for the session (pytest then tears down as on
Ctrl-C), which matters when pytest runs with SIGINT ignored; and the postmaster
gets SIGQUIT from the kernel when the thread that started it dies (a SIGKILLed
test run), its directory then removed by the next cluster's start.

Fixtures (register them in a conftest by importing them): ``pg_server``
(session: one server, a :class:`PostgresServer`) and ``pg_url`` (per test: the
URL of a fresh, empty database, dropped after the test). Outside pytest::

    with postgres_server() as server, server.database() as url:
        ...

The fixtures *fail* (never skip) when PostgreSQL is missing: ``./dev.sh test``
installs Debian's ``postgresql`` package.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = [
    "ENV_VAR",
    "PostgresServer",
    "PostgresUnavailable",
    "ThrowawayCluster",
    "find_postgres_bindir",
    "free_port",
    "pg_server",
    "pg_url",
    "postgres_server",
    "terminate_raises_keyboard_interrupt",
    "throwaway_cluster",
]

ENV_VAR = "PICKEDGE_TEST_PG"
"""A libpq conninfo/URL of a server to use instead of a throwaway cluster."""

SUPERUSER = "postgres"
"""The throwaway cluster's superuser (``initdb -U``); it authenticates by trust."""

DIR_PREFIX = "pickedge-pg-"
TOOLS = ("initdb", "postgres", "pg_ctl")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 5
MISSING_HINT = (
    "PostgreSQL is required for the cloud tests: initdb, postgres and pg_ctl were not found "
    "on PATH or under /usr/lib/postgresql/*/bin; run ./dev.sh test (it installs Debian's "
    f"postgresql package when missing), or set {ENV_VAR} to a server where you may "
    "CREATE DATABASE"
)

_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_PR_SET_PDEATHSIG = 1


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL to test against (binaries or the ``postgres`` user missing)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _version_key(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in path.parent.name.split("."))
    except ValueError:
        return (-1,)


def _has_tools(bindir: Path) -> bool:
    return all(os.access(bindir / tool, os.X_OK) for tool in TOOLS)


def find_postgres_bindir() -> Path | None:
    """The directory with initdb, postgres and pg_ctl: PATH first, else the
    highest ``/usr/lib/postgresql/<version>/bin`` that has all three."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        for candidate in (Path(initdb).parent, Path(initdb).resolve().parent):
            if _has_tools(candidate):
                return candidate
    found = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if _has_tools(d)]
    return max(found, key=_version_key) if found else None


@dataclass(frozen=True)
class PostgresServer:
    """Where a PostgreSQL listens, and who connects: conninfo and URL per database."""

    host: str | None
    port: int | None
    user: str | None
    password: str | None = None
    maintenance_db: str = "postgres"
    """The database administrative connections (CREATE/DROP DATABASE) use."""
    options: Mapping[str, str] = field(default_factory=dict)
    """Other libpq parameters (``sslmode``, ...), passed through."""

    @classmethod
    def from_conninfo(cls, conninfo: str) -> PostgresServer:
        """From a libpq conninfo string or URL (its dbname becomes the maintenance db)."""
        params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
        port = params.pop("port", None)
        return cls(
            host=params.pop("host", None),
            port=int(port) if port else None,
            user=params.pop("user", None),
            password=params.pop("password", None),
            maintenance_db=params.pop("dbname", "") or "postgres",
            options=params,
        )

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq ``key=value`` conninfo for ``dbname`` (default: the maintenance db)."""
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname or self.maintenance_db,
            **self.options,
        }
        return make_conninfo("", **{k: v for k, v in params.items() if v is not None})

    def url(self, dbname: str | None = None) -> str:
        """A ``postgresql://`` URL for ``dbname`` (default: the maintenance db)."""
        query = dict(self.options)
        netloc = ""
        if self.user:
            netloc = quote(self.user, safe="")
            if self.password:
                netloc += ":" + quote(self.password, safe="")
            netloc += "@"
        host = self.host or ""
        if host.startswith("/"):  # a Unix-socket directory goes in the query
            query["host"] = host
            if self.port is not None:
                query["port"] = str(self.port)
        else:
            netloc += f"[{host}]" if ":" in host else host
            if self.port is not None:
                netloc += f":{self.port}"
        suffix = f"?{urlencode(query, quote_via=quote)}" if query else ""
        return f"postgresql://{netloc}/{quote(dbname or self.maintenance_db, safe='')}{suffix}"

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """An autocommit connection to ``dbname`` (default: the maintenance db)."""
        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.conninfo(dbname), **kwargs)

    def databases(self) -> set[str]:
        with self.connect() as conn:
            return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}

    def create_database(self, prefix: str = "pickedge_test") -> str:
        """``CREATE DATABASE`` a fresh, uniquely named, empty database (UTF8, locale C)."""
        if not _NAME.fullmatch(prefix):
            raise ValueError(f"database prefix must match {_NAME.pattern}: {prefix!r}")
        name = f"{prefix}_{secrets.token_hex(6)}"
        with self.connect() as conn:
            conn.execute(
                sql.SQL(
                    "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' "
                    "LC_COLLATE 'C' LC_CTYPE 'C'"
                ).format(sql.Identifier(name))
            )
        return name

    def drop_database(self, name: str) -> None:
        """End the database's connections and drop it (no error when it is gone)."""
        with self.connect() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {}{}").format(sql.Identifier(name), force)
            )

    @contextlib.contextmanager
    def database(self, prefix: str = "pickedge_test") -> Iterator[str]:
        """A fresh database for the block: yields its URL, drops it afterwards."""
        name = self.create_database(prefix)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)


# --------------------------------------------------------------------------- throwaway cluster


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which holds nothing any more, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _sweep_stale(base: Path) -> None:
    """Remove the directories of clusters whose owner and postmaster are both gone
    (a run that was SIGKILLed; its postmaster got SIGQUIT as its parent died)."""
    for workdir in base.glob(DIR_PREFIX + "*"):
        owner = _read_pid(workdir / "owner")
        if owner is None or _alive(owner):
            continue
        postmaster = _read_pid(workdir / "data" / "postmaster.pid")
        if postmaster is not None and _alive(postmaster):
            continue
        shutil.rmtree(workdir, ignore_errors=True)


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """``preexec_fn``: SIGQUIT (PostgreSQL's immediate shutdown) when the starting
    thread dies. Runs after ``Popen(user=...)`` switched users, which clears it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGQUIT))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _check_reachable(path: Path, user: pwd.struct_passwd) -> None:
    """Every ancestor of ``path`` must be searchable by ``user``, or initdb fails obscurely."""
    for parent in path.parents:
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == user.pw_gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            raise PostgresUnavailable(
                f"the {user.pw_name} user cannot reach {path} ({parent} is not searchable "
                "for it): set TMPDIR to a directory it can reach, e.g. /tmp"
            )


class ThrowawayCluster:
    """One PostgreSQL cluster in a fresh temp directory on a free loopback port.

    :meth:`start` returns its :class:`PostgresServer`; :meth:`stop` (idempotent)
    shuts it down immediately, waits for the postmaster and removes the directory.
    Start it from a thread that outlives it (the main thread): the postmaster gets
    SIGQUIT when the thread that started it ends.
    """

    def __init__(
        self,
        *,
        bindir: Path | None = None,
        base_dir: Path | None = None,
        max_connections: int = 200,
        shared_buffers: str = "16MB",
        settings: Mapping[str, str] | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
        pick_port: Callable[[], int] = free_port,
    ) -> None:
        self.bindir = bindir
        self.base_dir = base_dir or Path(tempfile.gettempdir())
        #: ~4 receiver processes x a pool of ~8, plus the tests' own connections
        self.max_connections = max_connections
        self.shared_buffers = shared_buffers
        self.settings = dict(settings or {})
        self.start_timeout_s = start_timeout_s
        self.pick_port = pick_port
        self.workdir: Path | None = None
        self.ports_tried: list[int] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._server: PostgresServer | None = None

    @property
    def server(self) -> PostgresServer:
        if self._server is None:
            raise RuntimeError("the cluster is not running")
        return self._server

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (``None`` before :meth:`start`)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def datadir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "postgres.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ start

    def start(self) -> PostgresServer:
        """initdb, start the postmaster and wait until it answers; on any failure
        (KeyboardInterrupt included) nothing is left running or on disk."""
        if self.workdir is not None:
            raise RuntimeError("the cluster was started already")
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> PostgresServer:
        bindir = self.bindir or find_postgres_bindir()
        if bindir is None:
            raise PostgresUnavailable(MISSING_HINT)
        run_as: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                run_as = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(
                    "running as root, and initdb and postgres refuse to run as root, but "
                    f"there is no {SUPERUSER!r} system user to run them as; Debian's "
                    "postgresql package creates it: run ./dev.sh test"
                ) from None
        _sweep_stale(self.base_dir)
        self.workdir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=self.base_dir))
        (self.workdir / "owner").write_text(f"{os.getpid()}\n")
        sockdir = self.workdir / "socket"
        sockdir.mkdir(mode=0o700)
        self._log = self.log_path.open("ab")
        user_kwargs: dict[str, Any] = {}
        if run_as is not None:
            _check_reachable(self.workdir, run_as)
            for path in (self.workdir, sockdir):
                os.chown(path, run_as.pw_uid, run_as.pw_gid)
            user_kwargs = {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LC_"))}
        env.update(HOME=str(self.workdir), LANG="C", LC_ALL="C")
        if run_as is not None:
            env.update(USER=run_as.pw_name, LOGNAME=run_as.pw_name)
        common: dict[str, Any] = {"cwd": self.workdir, "env": env, **user_kwargs}

        initdb = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **common,
        )
        if initdb.returncode != 0:
            raise RuntimeError(
                f"initdb failed with exit code {initdb.returncode}:\n"
                f"{initdb.stdout[-2000:]}{initdb.stderr[-2000:]}"
            )

        for _ in range(PORT_ATTEMPTS):
            port = self.pick_port()
            self.ports_tried.append(port)
            if self._start_postmaster(bindir, port, sockdir, common):
                self._server = PostgresServer(host="127.0.0.1", port=port, user=SUPERUSER)
                return self._server
        raise RuntimeError(
            f"postgres could not bind a port after {PORT_ATTEMPTS} tries "
            f"({self.ports_tried}):\n{self.log_tail()}"
        )

    def _start_postmaster(
        self, bindir: Path, port: int, sockdir: Path, common: dict[str, Any]
    ) -> bool:
        """Start the postmaster on ``port`` and wait until it answers there: True;
        False when the port was taken (the caller tries another); raises otherwise."""
        assert self._log is not None
        settings = {
            "listen_addresses": "127.0.0.1",
            "fsync": "on",
            "max_connections": str(self.max_connections),
            "shared_buffers": self.shared_buffers,
            "huge_pages": "off",
            "logging_collector": "off",
            **self.settings,
        }
        args = [str(bindir / "postgres"), "-D", str(self.datadir), "-p", str(port)]
        args += ["-k", str(sockdir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        log_start = self._log.tell()
        self._log.write(f"--- pickedge: starting postgres on port {port}\n".encode())
        self._log.flush()
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # its own session: a terminal's Ctrl-C reaches pytest, which stops it in order
            start_new_session=True,
            # prctl and getppid only: no lock a thread could hold at fork
            preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509
            **common,
        )
        deadline = time.monotonic() + self.start_timeout_s
        conninfo = make_conninfo(
            "", host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", connect_timeout=2
        )
        while True:
            returncode = self._proc.poll()
            if returncode is not None:
                self._proc = None
                with self.log_path.open("rb") as log:
                    log.seek(log_start)
                    attempt = log.read().decode(errors="replace")
                if "Address already in use" in attempt:
                    return False
                raise RuntimeError(
                    f"postgres exited with code {returncode} while starting; server log:\n"
                    f"{self.log_tail()}"
                )
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    row = conn.execute("SHOW data_directory").fetchone()
                # another session's server may have taken the port first: ours exits then
                if row is not None and Path(row[0]).resolve() == self.datadir.resolve():
                    return True
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                self._kill_postmaster()
                raise RuntimeError(
                    f"postgres did not accept connections on 127.0.0.1:{port} within "
                    f"{self.start_timeout_s:.0f} s; server log:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    # ------------------------------------------------------------------ stop

    def _kill_postmaster(self) -> None:
        """Immediate shutdown (SIGQUIT), SIGKILL after a grace period, and wait.

        A KeyboardInterrupt while waiting escalates to SIGKILL, waits, then re-raises."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGQUIT)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
            raise
        finally:
            self._proc = None if proc.returncode is not None else proc

    def stop(self) -> None:
        """Stop the postmaster (waiting for it) and remove the cluster's directory."""
        self._server = None
        try:
            self._kill_postmaster()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            if self.workdir is not None and self._proc is None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None


@contextlib.contextmanager
def throwaway_cluster(**kwargs: Any) -> Iterator[PostgresServer]:
    """``with throwaway_cluster() as server:`` — a :class:`ThrowawayCluster`,
    stopped and removed when the block ends, however it ends."""
    with ThrowawayCluster(**kwargs) as server:
        yield server


@contextlib.contextmanager
def postgres_server(**cluster_kwargs: Any) -> Iterator[PostgresServer]:
    """The server named by ``PICKEDGE_TEST_PG``, else a throwaway cluster."""
    conninfo = os.environ.get(ENV_VAR, "").strip()
    if not conninfo:
        with throwaway_cluster(**cluster_kwargs) as server:
            yield server
        return
    server = PostgresServer.from_conninfo(conninfo)
    try:
        with server.connect():
            pass
    except psycopg.OperationalError as exc:
        raise PostgresUnavailable(f"{ENV_VAR} names a server that is unreachable: {exc}") from exc
    yield server


# --------------------------------------------------------------------------- pytest


@contextlib.contextmanager
def terminate_raises_keyboard_interrupt() -> Iterator[None]:
    """Within the block SIGTERM and SIGHUP (where they would kill the process
    outright) raise KeyboardInterrupt, so that a run stopped by them tears down
    as on Ctrl-C — the only way to stop one that runs with SIGINT ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    installed = []
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, interrupt)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            if signal.getsignal(signum) is interrupt:
                signal.signal(signum, signal.SIG_DFL)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session (``PICKEDGE_TEST_PG``, else a throwaway
    cluster); fails the test clearly when there is none."""
    with terminate_raises_keyboard_interrupt(), contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database on ``pg_server``, dropped after the test."""
    with pg_server.database() as url:
        yield url
