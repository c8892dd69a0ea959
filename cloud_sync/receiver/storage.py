"""The receiver's two storage engines behind one small transaction interface.

- :class:`SqliteDatabase`: one connection, one process (tests, the simulator, a
  small site). ``BEGIN IMMEDIATE`` makes every transaction exclusive, so a row
  lock is implied.
- :class:`PostgresDatabase`: psycopg 3 with its connection pool; any number of
  receiver processes share one database. A transaction runs at READ COMMITTED
  (or REPEATABLE READ when asked, for consistent reads of the change feed); the
  first statement of every batch is an ``UPDATE`` of the box's row, whose row
  lock is what serialises two receivers handling the same box.

Why psycopg 3 and its *synchronous* API (not asyncpg): the receiver's rules and
the OMS hook are one code path for both engines, written as plain functions
over :class:`Tx`, which an OMS team can implement and test without asyncio; the
aiohttp service runs each transaction in a bounded thread pool (libpq releases
the GIL while it waits on the network). psycopg also speaks plain libpq
connection strings and is what most Python OMS code already uses.

SQL is written once with ``?`` placeholders; the PostgreSQL engine rewrites them
to ``%s`` (no statement here contains a literal ``?`` or ``%``). Nothing here
knows the protocol: :mod:`cloud_sync.receiver.core` does.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]


class StorageError(RuntimeError):
    """The database could not be reached or failed a transaction; the batch's
    outcome is unknown to the box, which resends (dedup makes that safe)."""

    code = "storage_unavailable"


class Tx(Protocol):
    """One open transaction."""

    dialect: Dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def insert(
        self,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        *,
        upsert: str = "",
    ) -> None:
        """Insert ``rows`` into ``table``; ``columns`` are (name, PostgreSQL
        type) pairs, ``upsert`` an ``ON CONFLICT …`` clause (then no two rows
        may share a key). One statement on PostgreSQL (``unnest`` of one array
        per column), ``executemany`` on SQLite."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class Database(Protocol):
    dialect: Dialect
    url: str

    def transaction(self, *, snapshot: bool = False) -> contextlib.AbstractContextManager[Tx]:
        """A transaction, committed when the block ends normally and rolled back
        when it raises; ``snapshot`` asks for one consistent view of the data
        for the whole block (reads of the change feed)."""

    def ping(self, timeout_s: float = 1.0) -> bool: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- SQLite


class _SqliteTx:
    dialect: Dialect = "sqlite"

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._db.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def insert(
        self,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        *,
        upsert: str = "",
    ) -> None:
        names = ", ".join(name for name, _ in columns)
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) {upsert}"  # noqa: S608 - the caller's constants
        self._db.executemany(sql, rows)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._db.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()


class SqliteDatabase:
    """One SQLite file (or ``:memory:``) for one process; transactions are
    serialised by a lock, so threads may share it."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | str = ":memory:") -> None:
        self.path = str(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.Lock()
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if self.path != ":memory:":
                db.execute("PRAGMA journal_mode = WAL")
                # FULL: an answer 200 promises the batch is durably applied
                db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.Error as exc:  # a missing directory, a file that is no database
            if db is not None:
                db.close()
            raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from None
        return db

    @contextlib.contextmanager
    def transaction(self, *, snapshot: bool = False) -> Iterator[Tx]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def ping(self, timeout_s: float = 1.0) -> bool:
        with self._lock:
            return bool(self._db.execute("SELECT 1").fetchone() == (1,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --------------------------------------------------------------------------- PostgreSQL


_pg_sql: dict[str, str] = {}


def _pg(sql: str) -> str:
    out = _pg_sql.get(sql)
    if out is None:
        out = _pg_sql[sql] = sql.replace("?", "%s")
    return out


class _PostgresTx:
    dialect: Dialect = "postgresql"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(_pg(sql), params, prepare=True)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(_pg(sql), rows)

    def insert(
        self,
        table: str,
        columns: Sequence[tuple[str, str]],
        rows: Sequence[Sequence[Any]],
        *,
        upsert: str = "",
    ) -> None:
        if not rows:
            return
        names = ", ".join(name for name, _ in columns)
        arrays = ", ".join(f"%s::{kind}[]" for _, kind in columns)
        self._conn.execute(
            f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {upsert}",  # noqa: S608 - the caller's constants
            [list(column) for column in zip(*rows, strict=True)],
            prepare=True,
        )

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(_pg(sql), params, prepare=True).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._conn.execute(_pg(sql), params, prepare=True).fetchall()
        return rows


class PostgresDatabase:
    """A psycopg 3 connection pool on one PostgreSQL database."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self._errors: tuple[type[BaseException], ...] = (psycopg.OperationalError,)
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            # a connection that died with a server restart is replaced, not handed out
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": False, "application_name": "pickedge-cloud-receiver"},
            name="pickedge-receiver",
        )
        try:
            self._pool.open(wait=True, timeout=10)
        except Exception as exc:
            self._pool.close()
            raise StorageError(f"cannot connect to PostgreSQL: {_safe(exc)}") from None

    @contextlib.contextmanager
    def transaction(self, *, snapshot: bool = False) -> Iterator[Tx]:
        import psycopg

        try:
            with self._pool.connection(timeout=10) as conn:
                conn.isolation_level = (
                    psycopg.IsolationLevel.REPEATABLE_READ
                    if snapshot
                    else psycopg.IsolationLevel.READ_COMMITTED
                )
                with conn.transaction():
                    yield _PostgresTx(conn)
        except (psycopg.OperationalError, psycopg.errors.SerializationFailure) as exc:
            raise StorageError(_safe(exc)) from exc
        except psycopg.errors.DeadlockDetected as exc:
            raise StorageError(_safe(exc)) from exc

    def ping(self, timeout_s: float = 1.0) -> bool:
        try:
            with self._pool.connection(timeout=timeout_s) as conn:
                return bool(conn.execute("SELECT 1").fetchone() == (1,))
        except Exception:
            return False

    def close(self) -> None:
        self._pool.close()


def _safe(exc: BaseException) -> str:
    """An error's first line, without a connection string's password."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if "password" not in text.lower() else type(exc).__name__


def open_database(url: str | Path | None, *, pool_size: int = 8) -> Database:
    """``postgresql://…``/``postgres://…`` (or a libpq ``key=value`` string naming
    a ``dbname``) → PostgreSQL; ``sqlite:///relative``, ``sqlite:////absolute``,
    a path or None (``:memory:``) → SQLite."""
    if url is None:
        return SqliteDatabase()
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")) or (
        "=" in text and not isinstance(url, Path) and "dbname" in text
    ):
        return PostgresDatabase(text, max_size=pool_size)
    if text.startswith("sqlite:///"):  # sqlite:///relative or sqlite:////absolute
        text = text.removeprefix("sqlite:///") or ":memory:"
    return SqliteDatabase(text)


__all__ = [
    "Database",
    "Dialect",
    "PostgresDatabase",
    "SqliteDatabase",
    "StorageError",
    "Tx",
    "open_database",
]
