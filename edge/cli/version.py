"""``pickedge version``."""

from __future__ import annotations

import platform
import sqlite3

import click

from edge import __version__
from edge.store import SCHEMA_VERSION


@click.command("version")
def version_command() -> None:
    """Print the version of PickEdge, its schema and runtime.

    \b
    Example:
      pickedge version
    """
    click.echo(
        f"pickedge {__version__} (schema {SCHEMA_VERSION}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version})"
    )
