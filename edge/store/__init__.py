"""The SQLite store of the box (see :mod:`edge.store.db` for its promises)."""

from cloud_sync.codec import OutboxEvent
from edge.store.db import (
    Store,
    Transaction,
    now_ms,
    open_read_only,
)
from edge.store.migrations import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "OutboxEvent",
    "Store",
    "Transaction",
    "now_ms",
    "open_read_only",
]
