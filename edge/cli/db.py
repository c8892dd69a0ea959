"""``pickedge db migrate|backup|integrity``."""

from __future__ import annotations

from pathlib import Path

import click

from common.errors import PickEdgeError
from edge.cli.common import config_option, config_or_exit, fail, store_or_exit
from edge.store import SCHEMA_VERSION
from edge.store.upkeep import backup_file, check_file


@click.group("db")
def db_group() -> None:
    """Database maintenance.

    \b
    Examples:
      pickedge db migrate --config /etc/pickedge/pickedge.toml
      pickedge db backup /var/backups/pickedge-$(date +%F).db --config site.toml
      pickedge db integrity --config site.toml
    """


@db_group.command("migrate")
@config_option
def migrate_command(config_path: Path) -> None:
    """Create the database or bring its schema up to this version.

    Each migration runs in one transaction. A database written by a newer
    PickEdge is refused and left untouched. Other commands never migrate: run
    this with the old daemon stopped (or start the new daemon, which migrates
    at start), after `pickedge db backup`.

    \b
    Example:
      pickedge db migrate --config site.toml
    """
    cfg = config_or_exit(config_path, read_secrets=False)
    with store_or_exit(cfg, migrate=True) as store:
        click.echo(f"{store.path}: schema {SCHEMA_VERSION}, box {store.box_id}")


@db_group.command("backup")
@click.argument("dest", type=click.Path(path_type=Path, dir_okay=False))
@config_option
def backup_command(dest: Path, config_path: Path) -> None:
    """Write a consistent copy of the live database to DEST.

    Safe while the daemon runs (SQLite online backup through a read-only
    connection: the daemon's writer never waits for it, and nothing in the
    database changes). Works on a database of an older schema too: make one
    before `pickedge db migrate`. DEST must not exist.
    The sync mark beside the database (DB.syncmark) is not copied, and must
    never be restored: it is how the box tells, when it starts on a restored
    or copied database, that the cloud may hold more than the copy. It then
    resends what the copy holds as it is (the cloud counts it once) and
    writes new events under a new epoch, with a crit alert
    sync_restore_detected. To restore: stop the daemon, copy the backup over
    the database (and remove the old one's -wal and -shm files), start the
    daemon. Events the box wrote after the backup and never sent are lost
    with the old card; see docs/sync.md, "Restores and clones".

    \b
    Example:
      pickedge db backup /var/backups/pickedge.db --config site.toml
    """
    cfg = config_or_exit(config_path, read_secrets=False)
    try:
        version = backup_file(cfg.store_path(), dest)
    except PickEdgeError as exc:
        raise fail(f"error: {exc}", exc.exit_code) from None
    click.echo(f"backup written to {dest} (schema {version})")


@db_group.command("integrity")
@config_option
def integrity_command(config_path: Path) -> None:
    """Run SQLite's integrity check without writing anything; exit 2 if it fails.

    \b
    Example:
      pickedge db integrity --config site.toml
    """
    cfg = config_or_exit(config_path, read_secrets=False)
    path = cfg.store_path()
    try:
        check = check_file(path)
    except PickEdgeError as exc:
        raise fail(f"error: {exc}", exc.exit_code) from None
    except Exception as exc:  # corrupt pages surface here
        raise fail(f"error: {path}: integrity check could not run: {exc}") from None
    if not check.ok:
        raise fail(f"{path}: integrity check FAILED:\n" + "\n".join(check.problems))
    click.echo(f"{path}: ok (schema {check.version})")
