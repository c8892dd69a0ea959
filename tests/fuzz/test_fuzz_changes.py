"""Fuzz the downstream changes of sync-v1 as the box applies them
(edge/masterdata/apply.py) on a real store.

``apply_changes`` raises nothing but
:class:`~edge.masterdata.apply.ChangeError` on any page; a refused page
changes nothing (the store's transaction rolls back and every table reads as
before), within the budget."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.masterdata import apply_changes
from edge.masterdata.apply import ChangeError
from edge.store import Store
from tests.fuzz._harness import (
    EXTREME_FLOATS,
    EXTREME_INTS,
    EXTREME_TEXTS,
    Refused,
    json_mutated,
    json_values,
    scaled,
    within_budget,
)
from tests.support.api_fixtures import seed_zone

_ID = st.one_of(
    st.sampled_from(["SKU-A", "SKU-B", "A-01-05", "T-1", "T-2", "P1", "P9", "O-1", "BADGE-1"]),
    st.text(max_size=8),
    EXTREME_TEXTS,
)


def _int(lo: int, hi: int) -> st.SearchStrategy[object]:
    """A field's integer: mostly in range, sometimes at the edge of any range."""
    return st.integers(lo, hi) | st.integers(lo, hi) | EXTREME_INTS | EXTREME_FLOATS


_CHANGES = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("item"),
            "data": st.fixed_dictionaries(
                {"sku": _ID},
                optional={
                    "description": st.text(max_size=8),
                    "gtins": st.just(["09501101020917"]),
                    "serialized": st.booleans(),
                },
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("location"),
            "data": st.fixed_dictionaries(
                {
                    "code": _ID,
                    "aisle": _int(0, 9),
                    "y": st.floats(0, 50) | EXTREME_FLOATS | EXTREME_INTS,
                },
                optional={"zone": _ID},
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("stock"),
            "data": st.fixed_dictionaries(
                {"sku": _ID, "location": _ID, "qty": _int(0, 99)},
                optional={"epoch": _ID, "acked": _int(0, 9)},
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("task"),
            "data": st.fixed_dictionaries(
                {
                    "task": _ID,
                    "lines": st.lists(
                        st.fixed_dictionaries(
                            {
                                "line": _int(1, 3) | _ID,
                                "sku": _ID,
                                "qty": _int(0, 5),
                                "location": _ID,
                            }
                        ),
                        min_size=1,
                        max_size=3,
                    ),
                },
                optional={
                    "kind": st.sampled_from(["pick", "count"]),
                    "order": _ID,
                    "priority": _int(0, 9),
                    "ship_to": st.fixed_dictionaries(
                        {"postcode": _ID}, optional={"region": _ID, "name": _ID}
                    ),
                    "carrier": _ID,
                },
            ),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("task_cancel"), "data": st.fixed_dictionaries({"task": _ID})}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("picker"),
            "data": st.fixed_dictionaries(
                {"id": _ID, "badge": _ID},
                optional={
                    "name": _ID,
                    "role": st.sampled_from(["picker", "supervisor", "admin"]),
                    "active": st.booleans(),
                },
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("erase"),
            "data": st.fixed_dictionaries({}, optional={"order": _ID, "picker": _ID}),
        }
    ),
    st.fixed_dictionaries({"type": st.just("future_thing"), "data": json_values()}),
)
_PAGES = st.lists(_CHANGES, min_size=1, max_size=4)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("changes") / "box.db"
    with Store.open(path, box_id="box-fuzz") as s:
        seed_zone(s)
        yield s


def _snapshot(store: Store) -> list[str]:
    conn = sqlite3.connect(store.path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _apply(store: Store, page: Any) -> None:
    before = _snapshot(store)

    def run() -> object:
        return store.run(lambda tx: apply_changes(tx, page))

    result = within_budget(run, declared=(ChangeError,))
    if isinstance(result, Refused):
        assert _snapshot(store) == before, "a refused page changed the store"


@scaled(100)
@given(page=_PAGES)
def test_valid_pages(store: Store, page: list[dict[str, Any]]) -> None:
    _apply(store, page)


@scaled(200)
@given(data=st.data())
def test_mutated_pages(store: Store, data: st.DataObject) -> None:
    """Valid pages with wrong types, huge numbers, surrogates, junk fields."""
    _apply(store, data.draw(json_mutated(_PAGES)))


@scaled(100)
@given(page=json_values())
def test_any_document_as_a_page(store: Store, page: Any) -> None:
    _apply(store, page if isinstance(page, list) else [page])
