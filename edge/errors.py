"""The error tree of the edge application.

Every error the edge raises on purpose derives from :class:`PickEdgeError` and
carries a stable ``code`` (snake_case) that the PDA API, logs and metrics use.
The message is for a person: it names the thing that is wrong and, where there
is one, what to do about it. Builtins are mixed in where they fit so callers can
catch ``ValueError`` or ``OSError`` without knowing the project's tree.
"""

from __future__ import annotations


class PickEdgeError(Exception):
    """Root of the edge's own errors."""

    code = "internal_error"
    #: process exit code when this error ends a CLI command
    exit_code = 1


class ConfigError(PickEdgeError, ValueError):
    """The configuration cannot be used; ``problems`` lists every finding."""

    code = "config_invalid"
    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


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


class ReadOnlyStoreError(StoreError, PermissionError):
    """The database or its directory cannot be written."""

    code = "store_read_only"


class StorageFullError(StoreError):
    """The disk is full: the transaction was rolled back, nothing was confirmed."""

    code = "storage_full"


class BacklogFullError(StoreError):
    """The unsent outbox reached its hard limit: new work is refused, never dropped."""

    code = "backlog_full"
