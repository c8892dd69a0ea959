"""Fixtures of every test: ``processes`` starts subprocesses and reaps them, pass or fail."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.processes import ProcessReaper


@pytest.fixture
async def processes() -> AsyncIterator[ProcessReaper]:
    """A :class:`ProcessReaper`; every child started through it is stopped and waited for."""
    reaper = ProcessReaper()
    try:
        yield reaper
    finally:
        await reaper.reap()
