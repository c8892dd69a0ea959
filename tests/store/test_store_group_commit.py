"""Group commit: writes submitted together share one transaction, each in its
own savepoint; a failing write is undone alone, a failing database fails all."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from cloud_sync.events import StockDelta, StockReason
from edge.store import Store
from edge.store.db import Transaction
from edge.store.group_commit import GroupCommitter


class _Boom(Exception):
    """A unit of work that fails on its own."""


def _item(sku: str, *, fail: BaseException | None = None) -> Callable[[Transaction], str]:
    """A write: one row and one outbox event, then ``fail`` raised when given."""

    def fn(tx: Transaction) -> str:
        tx.execute("INSERT INTO items (sku) VALUES (?)", (sku,))
        tx.append(
            StockDelta(sku=sku, location="L", qty=1, reason=StockReason.COUNT, ref=None, lot=None)
        )
        if fail is not None:
            raise fail
        return sku

    return fn


def _counting(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the store's transactions."""
    calls: list[int] = []
    write = store.write

    async def counted(fn: Callable[[Transaction], Any]) -> Any:
        calls.append(1)
        return await write(fn)

    monkeypatch.setattr(store, "write", counted)
    return calls


def _skus(store: Store) -> list[str]:
    return [r["sku"] for r in store.query("SELECT sku FROM items ORDER BY sku")]


def _seqs(store: Store) -> list[int]:
    return [r["seq"] for r in store.query("SELECT seq FROM outbox ORDER BY seq")]


async def test_writes_submitted_together_share_one_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting(store, monkeypatch)
    group = GroupCommitter(store)
    results = await asyncio.gather(*(group.submit(_item(f"S{n}")) for n in range(10)))
    assert results == [f"S{n}" for n in range(10)]
    assert len(calls) == 1
    assert _skus(store) == sorted(results)
    assert _seqs(store) == list(range(1, 11))
    # committed when it returned: a reader sees it
    assert await group.submit(_item("T")) == "T"
    assert "T" in _skus(store)


async def test_batches_hold_at_most_max_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting(store, monkeypatch)
    group = GroupCommitter(store, max_batch=2)
    await asyncio.gather(*(group.submit(_item(f"S{n}")) for n in range(5)))
    assert len(calls) == 3
    assert len(_skus(store)) == 5


async def test_a_failing_write_is_undone_alone(store: Store) -> None:
    group = GroupCommitter(store)
    results = await asyncio.gather(
        group.submit(_item("A")),
        group.submit(_item("B", fail=_Boom("no"))),
        group.submit(_item("C")),
        return_exceptions=True,
    )
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], _Boom)
    assert _skus(store) == ["A", "C"]
    assert _seqs(store) == [1, 2]  # B's event is gone, and no gap is left


async def test_a_failing_database_fails_the_whole_batch(store: Store) -> None:
    group = GroupCommitter(store)
    results = await asyncio.gather(
        group.submit(_item("A")),
        group.submit(_item("B", fail=sqlite3.OperationalError("disk I/O error"))),
        group.submit(_item("C")),
        return_exceptions=True,
    )
    assert all(isinstance(r, Exception) for r in results)
    assert _skus(store) == []
    assert _seqs(store) == []
    # the committer carries on with the next batch
    assert await group.submit(_item("D")) == "D"
    assert _seqs(store) == [1]


def test_max_batch_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommitter(store, max_batch=0)
