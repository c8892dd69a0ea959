"""The store's errors: each names the file and what to do, and leaves the file as it was."""

from __future__ import annotations

from common.errors import PickEdgeError


class StoreError(PickEdgeError):
    """The SQLite store cannot do what was asked."""

    code = "store_error"
    exit_code = 2


class CorruptDatabaseError(StoreError):
    """The database file is not a database, or fails its integrity check."""

    code = "database_corrupt"


class SchemaTooNewError(StoreError):
    """The database was written by a newer PickEdge; this one must not touch it."""

    code = "schema_too_new"


class SchemaTooOldError(StoreError):
    """The database's schema is older than this PickEdge's, and this command does
    not migrate (only ``pickedge db migrate`` and the daemon at start do)."""

    code = "schema_too_old"


class ReadOnlyStoreError(StoreError, PermissionError):
    """The database or its directory cannot be written."""

    code = "store_read_only"


class StorageFullError(StoreError):
    """The disk is full: the transaction was rolled back, nothing was confirmed."""

    code = "storage_full"


class BacklogFullError(StoreError):
    """The unsent outbox reached its hard limit: new work is refused, never dropped."""

    code = "backlog_full"
