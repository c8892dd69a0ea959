"""The readers' side of the store: a read-only connection and two helpers.

The store's readers used to be wrapped by sqlite-utils' ``Database``, of which
they used ``conn``, ``execute`` and ``query`` only. sqlite-utils imports
dateutil, pluggy, csv, decimal and — whenever they are installed, as they are
beside the benchmark extras — pandas and numpy: ~47 MB of an idle daemon's
~110 MB (bench/idle.py). :class:`Database` keeps exactly that surface.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any


class Database:
    """A reader's connection: ``conn`` itself, ``execute`` (its cursor) and
    ``query`` (rows as dicts, fetched lazily)."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, parameters)

    def query(self, sql: str, params: Any = ()) -> Iterator[dict[str, Any]]:
        """The rows of ``sql`` as dicts keyed by column name."""
        cursor = self.conn.execute(sql, params)
        if cursor.description is None:
            raise ValueError("query() can only be used with SQL that returns rows")
        keys = [d[0] for d in cursor.description]
        return (dict(zip(keys, row, strict=True)) for row in cursor)
