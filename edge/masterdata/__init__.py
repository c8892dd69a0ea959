"""Master data from the cloud: items, locations, stock figures, tasks, pickers.

:func:`apply_changes` (in :mod:`edge.masterdata.apply`) applies sync-v1's
downstream changes inside the caller's transaction; :mod:`edge.masterdata.tables`
holds the SQL of the tables it feeds, and is where other parts of the box read
or write those tables.
"""

from edge.masterdata.apply import (
    DROPPED_FIELDS,
    ERASURES,
    UNKNOWN_CHANGES,
    ChangeError,
    Notice,
    StockAheadError,
    apply_changes,
)

__all__ = [
    "DROPPED_FIELDS",
    "ERASURES",
    "UNKNOWN_CHANGES",
    "ChangeError",
    "Notice",
    "StockAheadError",
    "apply_changes",
]
