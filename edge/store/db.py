"""The box's SQLite store: one writer, many readers, the outbox in every write.

Promises:

- **One writer.** All writes go through :meth:`Store.transaction`, which takes a
  lock and opens ``BEGIN IMMEDIATE`` on the single writer connection (stdlib
  ``sqlite3``), so a write never fails half-way on a busy snapshot, as deferred
  transactions can. ``await store.write(fn)`` runs ``fn(tx)`` in one transaction
  on a dedicated writer thread, so the event loop never blocks on ``fsync``.
- **Durable when it returns.** WAL with ``synchronous=FULL``: a transaction that
  has returned is on disk, which is the promise a PDA's "OK" beep makes.
- **The outbox rule.** :meth:`Transaction.append` is the only way to add
  an outbox event (a typed :mod:`cloud_sync.events` event); its ``seq`` is
  taken inside the caller's transaction, so a rolled-back change leaves
  neither an event nor a gap.
- **Bounded files, no stalls.** ``journal_size_limit`` and periodic
  :meth:`Store.checkpoint` keep the WAL from growing without limit: PASSIVE
  ones that never wait, and a TRUNCATE when idle that waits for readers a
  bounded moment at most (a reader's snapshot never stalls the writer).
- **What it opens is on disk before it builds on it.** :meth:`Store.open`
  fsyncs the database file (and a ``-wal`` beside it) and their directory
  before anything is written: a file an operator just copied into place (a
  restored backup) may still be only in the page cache, and WAL commits
  synced on top of a main file that a power cut then takes back to older
  pages make a malformed database (docs/durability.md).
- **Clear failures.** A corrupt file, a schema from a newer PickEdge, a
  read-only disk, a full disk: each raises its own :class:`StoreError` subclass
  with a message that names the file, and the file is left as it was.

Readers use separate read-only connections (:mod:`edge.store.readers`) and never
take the write lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgpack

from cloud_sync.events import EVENT_CLASSES, StockDelta, UpstreamEvent, decode_event
from edge.store.errors import (
    BacklogFullError,
    CorruptDatabaseError,
    ReadOnlyStoreError,
    SchemaTooNewError,
    SchemaTooOldError,
    StorageFullError,
    StoreError,
)
from edge.store.migrations import MIGRATIONS, SCHEMA_VERSION
from edge.store.readers import Database

log = logging.getLogger(__name__)

T = TypeVar("T")

CheckpointMode = Literal["PASSIVE", "TRUNCATE"]
#: how long a TRUNCATE checkpoint waits for readers' snapshots (the writer is
#: paused meanwhile); then it gives up and is tried again later
TRUNCATE_WAIT_MS = 50
#: the same on close, the daemon's last act
CLOSE_WAIT_MS = 500


# SQLite primary result codes (sqlite3.Error.sqlite_errorcode & 0xFF)
_SQLITE_READONLY = 8
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26


def now_ms() -> int:
    """Wall clock in unix ms: informational only (DESIGN.md decision 5)."""
    return time.time_ns() // 1_000_000


def translate_error(exc: sqlite3.Error, path: Path) -> StoreError:
    """Map a sqlite3 error to the project's error with a message for a person."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "not a database" in text:
        return CorruptDatabaseError(
            f"{path}: the database is corrupt ({text}); restore it from a backup "
            "(pickedge db backup) or move it aside to start empty"
        )
    if primary == _SQLITE_FULL:
        return StorageFullError(
            f"{path}: the disk is full; the change was rolled back and not confirmed"
        )
    if primary == _SQLITE_READONLY or "readonly" in text:
        return ReadOnlyStoreError(
            f"{path}: the database cannot be written ({text}); check the disk is mounted "
            "read-write and the file and its directory belong to this user"
        )
    if primary == _SQLITE_CANTOPEN:
        return ReadOnlyStoreError(
            f"{path}: cannot open the database ({text}); check the directory exists "
            "and is writable by this user"
        )
    return StoreError(f"{path}: {text}")


class Transaction:
    """An open ``BEGIN IMMEDIATE`` transaction on the writer connection."""

    __slots__ = ("_backlog_checked", "_epoch", "_next_seq", "_store", "conn", "events")

    def __init__(self, store: Store, conn: sqlite3.Connection) -> None:
        self._store = store
        self.conn = conn
        self._epoch: str | None = None
        self._next_seq = 0
        self._backlog_checked = False
        #: seqs appended in this transaction (for callers and tests)
        self.events: list[int] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        return self.conn.executemany(sql, rows)

    def append(self, event: UpstreamEvent, *, at_ms: int | None = None) -> int:
        """Append one outbox event in this transaction and return its ``seq``.

        The seq is contiguous within the epoch because it is taken and advanced
        under the write lock of this transaction: roll the transaction back and
        both the event and its seq are gone. A :class:`StockDelta` also enters
        the ``stock_ledger`` (the sync-v1 ``stock`` rule reads it).

        New work is refused at the backlog limit (:class:`BacklogFullError`,
        checked once per transaction); the box's own bookkeeping — alerts,
        epoch changes — goes through :meth:`append_bookkeeping` and never is.
        """
        return self._append(event, at_ms=at_ms, limited=True)

    def append_bookkeeping(self, event: UpstreamEvent, *, at_ms: int | None = None) -> int:
        """:meth:`append` without the backlog limit: for the box's own alerts and
        sync bookkeeping, which must never be blocked by the backlog they report."""
        return self._append(event, at_ms=at_ms, limited=False)

    def _append(self, event: UpstreamEvent, *, at_ms: int | None, limited: bool) -> int:
        kind = getattr(event, "TYPE", None)
        if not isinstance(kind, str) or EVENT_CLASSES.get(kind) is not type(event):
            raise TypeError(f"not a sync-v1 event: {event!r:.120}")
        data = event.to_data()
        # What the cloud would refuse must never enter the outbox (a refused
        # batch stops the whole stream): check the map as the receiver will.
        decode_event(kind, data)
        if self._epoch is None:
            epoch, next_seq = self.conn.execute(
                "SELECT epoch, next_seq FROM box WHERE id = 1"
            ).fetchone()
            self._epoch, self._next_seq = epoch, next_seq
        if limited and not self._backlog_checked:
            self._check_backlog(self._epoch, self._next_seq)
            self._backlog_checked = True
        seq = self._next_seq
        payload = msgpack.packb(data, use_bin_type=True)
        self.conn.execute(
            "INSERT INTO outbox (epoch, seq, type, at_ms, payload) VALUES (?, ?, ?, ?, ?)",
            (self._epoch, seq, kind, now_ms() if at_ms is None else at_ms, payload),
        )
        if isinstance(event, StockDelta):
            self.conn.execute(
                "INSERT INTO stock_ledger (epoch, seq, sku, location, qty) VALUES (?, ?, ?, ?, ?)",
                (self._epoch, seq, event.sku, event.location, event.qty),
            )
        self._next_seq = seq + 1
        self.conn.execute("UPDATE box SET next_seq = ? WHERE id = 1", (self._next_seq,))
        self.events.append(seq)
        return seq

    @contextmanager
    def savepoint(self) -> Iterator[Transaction]:
        """A nested unit inside this transaction (SQL ``SAVEPOINT``).

        An exception inside rolls back only what the savepoint did — its rows
        and its outbox events, leaving no seq gap — and propagates; a
        ``sqlite3.Error`` is left to roll back the whole transaction, since
        the database itself failed. Group commit uses one per scan.
        """
        self.conn.execute("SAVEPOINT unit")
        # A fresh view of the outbox counters: the savepoint may roll back.
        self._epoch = None
        sub = Transaction(self._store, self.conn)
        try:
            yield sub
        except sqlite3.Error:
            raise
        except BaseException:
            self.conn.execute("ROLLBACK TO unit")
            self.conn.execute("RELEASE unit")
            raise
        self.conn.execute("RELEASE unit")
        self.events.extend(sub.events)

    @property
    def store(self) -> Store:
        """The store this transaction writes to."""
        return self._store

    def _check_backlog(self, epoch: str, next_seq: int) -> None:
        limit = self._store.max_backlog
        if limit is None:
            return
        # Every unacked event counts: the current epoch's and those of sealed
        # epochs still draining (a restored box resends its old tail first).
        row = self.conn.execute(
            "SELECT COALESCE(SUM(COALESCE(last_seq, ?) - acked), 0) FROM epochs "
            "WHERE last_seq IS NULL OR acked < last_seq",
            (next_seq - 1,),
        ).fetchone()
        if int(row[0]) >= limit:
            raise BacklogFullError(
                f"{limit} events wait for the cloud; new work is refused until sync "
                "catches up (nothing already confirmed is dropped)"
            )


class Store:
    """The database of one box. Open with :meth:`Store.open`."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        *,
        max_backlog: int | None,
        wal_limit_bytes: int,
        checkpoints: bool = True,
    ) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()
        self._open_key: str | None = str(path.resolve())
        with _OPEN_LOCK:
            _OPEN_STORES[self._open_key] = _OPEN_STORES.get(self._open_key, 0) + 1
        #: False: this store never checkpoints (CLI commands beside the daemon)
        self.checkpoints = checkpoints
        # Checkpoints run on a connection of their own: a PASSIVE one then never
        # holds the writer, and its data_version tells whether anyone committed.
        self._ckpt_conn: sqlite3.Connection | None = None
        self._ckpt_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self.max_backlog = max_backlog
        self.wal_limit_bytes = wal_limit_bytes
        row = conn.execute("SELECT box_id, epoch, uptime_ms FROM box WHERE id = 1").fetchone()
        self.box_id: str = row[0]
        self._uptime_base = int(row[2])
        self._mono_base = time.monotonic()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        box_id: str,
        busy_timeout_ms: int = 5000,
        max_backlog: int | None = None,
        wal_limit_bytes: int = 64 * 1024 * 1024,
        migrate: bool = True,
        checkpoints: bool = True,
    ) -> Store:
        """Open (creating when new) and migrate the database of box ``box_id``.

        ``migrate=False`` (CLI commands): a missing database or one with an
        older schema is refused with :class:`SchemaTooOldError` and left as it
        was — never created, never migrated under a running daemon.
        ``checkpoints=False`` (CLI commands beside the daemon): this store
        never checkpoints the WAL, neither after a commit nor on close; the
        daemon's maintenance does.

        Raises ``CorruptDatabaseError``, ``SchemaTooNewError``,
        ``SchemaTooOldError``, ``ReadOnlyStoreError`` or ``StoreError``; in
        each case the file is left as it was (the version is read before
        anything is written).
        """
        path = Path(path)
        if not path.parent.exists():
            raise ReadOnlyStoreError(f"{path}: the directory {path.parent} does not exist")
        if not migrate and not path.exists():
            raise SchemaTooOldError(
                f"{path}: no database here; run `pickedge db migrate` to create it "
                "(the daemon creates it too when it starts)"
            )
        key = str(path.resolve())
        with _OPEN_LOCK:
            # Before SQLite opens it, and only when no store of this process
            # has it open: closing a descriptor of the file drops every POSIX
            # lock this process holds on it, SQLite's locks included.
            if not _OPEN_STORES.get(key):
                sync_database_files(path)
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
            )
            version = cls._read_version(conn, path)
            if version > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{path}: schema version {version} was written by a newer PickEdge "
                    f"(this one knows up to {SCHEMA_VERSION}); upgrade PickEdge, "
                    "or restore a backup made by this version"
                )
            if version < SCHEMA_VERSION and not migrate:
                raise SchemaTooOldError(
                    f"{path}: schema version {version} is older than this PickEdge's "
                    f"({SCHEMA_VERSION}); nothing was changed. Stop the daemon and run "
                    "`pickedge db migrate`, or start the new daemon, which migrates"
                )
            cls._configure(conn, busy_timeout_ms, wal_limit_bytes, checkpoints=checkpoints)
            cls._migrate(conn, version)
            cls._ensure_box(conn, path, box_id)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise translate_error(exc, path) from exc
        except StoreError:
            if conn is not None:
                conn.close()
            raise
        return cls(
            path,
            conn,
            max_backlog=max_backlog,
            wal_limit_bytes=wal_limit_bytes,
            checkpoints=checkpoints,
        )

    @staticmethod
    def _read_version(conn: sqlite3.Connection, path: Path) -> int:
        # Reading the schema forces SQLite to parse the header: a file that is
        # not a database fails here, before anything is written.
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version

    @staticmethod
    def _configure(
        conn: sqlite3.Connection, busy_timeout_ms: int, wal_limit: int, *, checkpoints: bool
    ) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot switch the database to WAL (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Deleted or overwritten content is zeroed in the page, not left in free
        # space: a purged postcode or an erased name must leave the file (the
        # WAL is truncated after purges and erasures: edge.maintenance).
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute(f"PRAGMA journal_size_limit = {int(wal_limit)}")
        # SQLite's own checkpoint after a commit is PASSIVE: it never waits.
        conn.execute(f"PRAGMA wal_autocheckpoint = {1000 if checkpoints else 0}")

    @staticmethod
    def _migrate(conn: sqlite3.Connection, version: int) -> None:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            script = MIGRATIONS[target - 1]
            log.info("migrating database schema %d -> %d", target - 1, target)
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {target};\nCOMMIT;"
                )
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _ensure_box(conn: sqlite3.Connection, path: Path, box_id: str) -> None:
        row = conn.execute("SELECT box_id FROM box WHERE id = 1").fetchone()
        if row is None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                epoch = new_epoch()
                conn.execute(
                    "INSERT INTO box (id, box_id, epoch, next_seq, created_ms, db_id) "
                    "VALUES (1, ?, ?, 1, ?, ?)",
                    (box_id, epoch, now_ms(), new_db_id()),
                )
                conn.execute(
                    "INSERT INTO epochs (epoch, started_ms) VALUES (?, ?)", (epoch, now_ms())
                )
                conn.execute("UPDATE sync_state SET acked_epoch = (SELECT epoch FROM box)")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        elif row[0] != box_id:
            raise StoreError(
                f"{path}: this database belongs to box {row[0]!r}, but the configuration "
                f"says {box_id!r}; a database is never shared between boxes"
            )

    # ------------------------------------------------------------------ writing

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` on the writer; rollback on any error.

        Thread-safe (one writer at a time). Raises ``StorageFullError`` and the
        other ``StoreError`` subclasses with the transaction rolled back.
        """
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate_error(exc, self.path) from exc
            tx = Transaction(self, conn)
            try:
                yield tx
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:  # pragma: no cover - rollback after I/O error
                        log.exception("rollback failed on %s", self.path)
                if isinstance(exc, sqlite3.Error):
                    raise translate_error(exc, self.path) from exc
                raise

    def run(self, fn: Callable[[Transaction], T]) -> T:
        """Run ``fn`` in one transaction, synchronously."""
        with self.transaction() as tx:
            return fn(tx)

    async def write(self, fn: Callable[[Transaction], T]) -> T:
        """Run ``fn(tx)`` in one transaction on the writer thread.

        When this returns, the transaction is committed and on disk. ``fn`` must
        not await; it runs on another thread.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run, fn)

    # ------------------------------------------------------------------ reading

    def reader(self) -> Database:
        """A read-only connection of this thread (:class:`edge.store.readers.Database`)."""
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, timeout=5
            )
            conn.execute("PRAGMA busy_timeout = 5000")
            with self._readers_lock:
                self._readers.append(conn)
            db = Database(conn)
            self._local.db = db
        return db

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts."""
        return list(self.reader().query(sql, params))

    # ------------------------------------------------------------------ maintenance

    def uptime_ms(self) -> int:
        """The box's uptime: what the daemon has run in all, from the stored
        figure plus the monotonic clock since this store was opened.

        Expiries and retention are measured on it, never on the wall clock,
        which boots wrong and jumps when NTP corrects it (DESIGN.md decision
        5). Maintenance stores it periodically; a crash loses at most that
        period, so deadlines come later, never earlier.
        """
        return self._uptime_base + int((time.monotonic() - self._mono_base) * 1000)

    @property
    def epoch(self) -> str:
        with self._lock:
            row = self._conn.execute("SELECT epoch FROM box WHERE id = 1").fetchone()
        return str(row[0])

    def checkpoint(
        self, mode: CheckpointMode = "TRUNCATE", *, wait_ms: int = TRUNCATE_WAIT_MS
    ) -> tuple[int, int, int]:
        """Checkpoint the WAL; returns (busy, frames in the WAL, frames checkpointed).

        ``PASSIVE`` copies into the database what no reader still needs,
        waiting for no one and never pausing the writer: safe at any time, the
        busiest included. ``busy`` is 1 when a reader's snapshot or another
        checkpoint kept it from copying everything.

        ``TRUNCATE`` also resets the WAL file to zero bytes. It pauses this
        store's writer while it runs and waits at most ``wait_ms`` for readers
        holding an older snapshot (``pickedge db backup`` copying the file, a
        long read); then it gives up with ``busy`` 1, having done what PASSIVE
        would — try again later. For when the box is idle
        (:mod:`edge.maintenance`), never for the scan path.

        Both run on a connection of their own, never on the writer's: its busy
        timeout is the long one scans wait on. Explicit calls work on a store
        opened with ``checkpoints=False`` too (asked for, not automatic).
        """
        if mode not in ("PASSIVE", "TRUNCATE"):
            raise ValueError(f"unknown checkpoint mode {mode!r}")
        try:
            if mode == "PASSIVE":
                with self._ckpt_lock:
                    row = self._side().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            else:
                with self._lock, self._ckpt_lock:
                    side = self._side()
                    side.execute(f"PRAGMA busy_timeout = {max(0, int(wait_ms))}")
                    row = side.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path) from exc
        return int(row[0]), int(row[1]), int(row[2])

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version`` on the checkpoint connection: it
        changes whenever another connection — this store's writer, a CLI
        command — commits, so an unchanged figure means nobody wrote."""
        try:
            with self._ckpt_lock:
                row = self._side().execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            raise translate_error(exc, self.path) from exc
        return int(row[0])

    def _side(self) -> sqlite3.Connection:
        """The checkpoint connection (call with ``_ckpt_lock`` held)."""
        if self._ckpt_conn is None:
            self._ckpt_conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
        return self._ckpt_conn

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check``: ``["ok"]`` when the file is sound, else the
        problems found; ``CorruptDatabaseError`` when the check cannot even run."""
        with self._lock:
            try:
                rows = self._conn.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.Error as exc:
                raise translate_error(exc, self.path) from exc
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        if self._open_key is not None:
            with _OPEN_LOCK:
                left = _OPEN_STORES.get(self._open_key, 1) - 1
                if left > 0:
                    _OPEN_STORES[self._open_key] = left
                else:
                    _OPEN_STORES.pop(self._open_key, None)
            self._open_key = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._lock:
            if self.checkpoints:
                # Bounded like any TRUNCATE: a reader's snapshot (a backup still
                # copying) only leaves the WAL to the next start, which
                # recovers it; it never holds the shutdown.
                try:
                    busy, frames, _ = self.checkpoint("TRUNCATE", wait_ms=CLOSE_WAIT_MS)
                    if busy:
                        log.info(
                            "WAL of %s left with %d frames: a reader holds a snapshot",
                            self.path,
                            frames,
                        )
                except StoreError:
                    log.warning("final WAL checkpoint of %s failed", self.path)
            with self._ckpt_lock:
                if self._ckpt_conn is not None:
                    self._ckpt_conn.close()
                    self._ckpt_conn = None
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: stores of this process open per resolved path (see Store.open)
_OPEN_STORES: dict[str, int] = {}
_OPEN_LOCK = threading.Lock()


def sync_dir(path: Path) -> None:
    """``fsync`` the directory ``path``: the names created, renamed or removed
    in it survive a power cut (a file's own ``fsync`` does not cover its name)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_database_files(path: Path) -> None:
    """``fsync`` the database at ``path``, its ``-wal`` if there is one, and
    their directory (see the module's promises: a copied-in file is on disk
    before the store writes anything on top of it)."""
    for name in (path, path.with_name(path.name + "-wal")):
        try:
            fd = os.open(name, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    sync_dir(path.parent)


def new_epoch() -> str:
    """A fresh outbox epoch id: random, never derived from the clock."""
    return secrets.token_hex(8)


def new_db_id() -> str:
    """A fresh identity for a database's line of history (``box.db_id``)."""
    return secrets.token_hex(8)


def open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection for inspection commands; writes nothing."""
    if not path.exists():
        raise StoreError(f"{path}: no such database")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.Error as exc:
        raise translate_error(exc, path) from exc
    return conn
