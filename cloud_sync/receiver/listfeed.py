"""The simulator's change feed: one in-memory list served to every box.

:class:`ChangeFeed` is what the cloud simulator (and the many tests built on
it) serve downstream: changes added by a test, the same list for every box,
cursors ``p<n>``. A deployed receiver serves the per-box feed kept in its
database instead (:meth:`cloud_sync.receiver.core.Receiver.page`).
"""

from __future__ import annotations

from typing import Any

from cloud_sync.codec import url_safe
from cloud_sync.receiver.core import Answer, Receiver, stock_change


class ChangeFeed:
    """An append-only list of changes served by ``GET /sync/v1/changes``.

    The cursor is the position after the last change served, as an opaque
    URL-safe string (``p`` and a number). A ``stock`` entry is served as the
    cloud's absolute view *at the time of serving*: its ``base`` plus the box's
    applied deltas, with the ``epoch``/``acked`` those include.
    """

    def __init__(self, receiver: Receiver, changes: list[dict[str, Any]] | None = None) -> None:
        self.receiver = receiver
        self.changes: list[dict[str, Any]] = list(changes or [])

    def add(self, *changes: dict[str, Any]) -> None:
        self.changes.extend(changes)

    def page(self, box: str, cursor: str | None, limit: int) -> Answer:
        try:
            pos = int(cursor[1:]) if cursor else 0
            if cursor and not cursor.startswith("p"):
                raise ValueError(cursor)
        except ValueError:
            return Answer(400, {"error": {"code": "bad_cursor", "message": "unknown cursor"}})
        if pos < 0 or pos > len(self.changes) or limit < 1:
            return Answer(400, {"error": {"code": "bad_cursor", "message": "unknown cursor"}})
        chunk = self.changes[pos : pos + limit]
        out = [self._resolve(box, c) for c in chunk]
        end = pos + len(chunk)
        cursor = f"p{end}"
        assert url_safe(cursor), cursor  # sync-v1: nobody re-encodes a cursor
        return Answer(200, {"cursor": cursor, "more": end < len(self.changes), "changes": out})

    def _resolve(self, box: str, change: dict[str, Any]) -> dict[str, Any]:
        if change["type"] != "stock":
            return change
        d = change["data"]
        return stock_change(d, *self.receiver.stock_view(box, d["sku"], d["location"]))


__all__ = ["ChangeFeed"]
