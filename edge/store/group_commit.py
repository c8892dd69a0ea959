"""Group commit: small writes that arrive together share one transaction.

``await GroupCommitter(store).submit(fn)`` runs ``fn(tx)`` on the writer thread
like :meth:`Store.write`, but writes submitted while the writer is busy are
queued and committed together in the next transaction (one ``fsync`` for up to
``max_batch`` of them), each inside its own :meth:`Transaction.savepoint`.

Promises:

- **Durable when it returns.** A submission's result (or exception) is
  released only after the commit that holds it: the same promise as one
  transaction per write.
- **Isolated failures.** ``fn`` raising an ordinary exception rolls back to its
  savepoint — its rows and outbox events, without a seq gap — and that
  exception reaches its own caller only; the others of the batch commit.
- **A failing database fails the batch.** A ``sqlite3.Error`` inside ``fn``,
  or a failing commit, rolls the whole transaction back and every caller of
  the batch gets the error; nothing of it was committed.
- **Order.** Writes run in the order they were submitted.

``fn`` runs on the writer thread and must not await. Nothing here knows what
the writes are.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from edge.store.db import Store, Transaction

T = TypeVar("T")

#: most writes committed together in one transaction
MAX_BATCH = 32

_Pending = tuple[Callable[[Transaction], Any], "asyncio.Future[Any]"]


class GroupCommitter:
    """Batches :meth:`submit` calls of one event loop into shared transactions."""

    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.store = store
        self.max_batch = max_batch
        self._pending: list[_Pending] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, fn: Callable[[Transaction], T]) -> T:
        """Run ``fn(tx)`` in the next group transaction; return once it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((fn, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = loop.create_task(self._flush())
        result: T = await future
        return result

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                self._pending = self._pending[self.max_batch :]
                await self._commit(batch)
        finally:
            self._flushing = False

    async def _commit(self, batch: list[_Pending]) -> None:
        def run(tx: Transaction) -> list[tuple[bool, Any]]:
            results: list[tuple[bool, Any]] = []
            for fn, _ in batch:
                try:
                    with tx.savepoint() as sub:
                        result = fn(sub)
                except sqlite3.Error:
                    raise  # the database failed: the whole batch rolls back
                except Exception as exc:
                    results.append((False, exc))
                else:
                    results.append((True, result))
            return results

        try:
            results = await self.store.write(run)
        except Exception as exc:  # nothing of the batch was committed
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), (ok, value) in zip(batch, results, strict=True):
            if future.done():  # its caller went away (cancelled)
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
