"""Fixtures of the cloud receiver's tests: a real PostgreSQL (tests/support/postgres.py).

``pg_server`` is one server for the session — ``PICKEDGE_TEST_PG`` when set,
else a throwaway cluster on a free port — and ``pg_url`` a fresh, empty
database on it per test, dropped afterwards. They fail, never skip, when
PostgreSQL is missing: ``./dev.sh test`` installs it.
"""

from tests.support.postgres import pg_server, pg_url

__all__ = ["pg_server", "pg_url"]
