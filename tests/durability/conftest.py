"""The power-cut filesystem for every durability test: mounted in a process
of its own under the test's directory, always unmounted and reaped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.powercut_fs import PowercutFs


@pytest.fixture
def powercut(tmp_path: Path) -> Iterator[PowercutFs]:
    with PowercutFs(tmp_path / "mnt", tmp_path / "disk") as fs:
        yield fs
