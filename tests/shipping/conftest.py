"""Fixtures of the shipping tests: a real store (SQLite) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "pickedge.db", box_id="test-box") as s:
        yield s
