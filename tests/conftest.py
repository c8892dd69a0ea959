"""Fixtures of every test: ``processes`` starts subprocesses and reaps them, pass or fail."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from tests.support.processes import ProcessReaper

# Files the tests write are private to the user running them, as an operator's
# secret files must be: the daemon refuses a secret file others can read
# (edge/config.py). Tests that need another mode set it themselves.
os.umask(0o077)


@pytest.fixture
async def processes() -> AsyncIterator[ProcessReaper]:
    """A :class:`ProcessReaper`; every child started through it is stopped and waited for."""
    reaper = ProcessReaper()
    try:
        yield reaper
    finally:
        await reaper.reap()
