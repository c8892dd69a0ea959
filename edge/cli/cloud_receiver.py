"""``pickedge cloud-receiver``: the cloud side of sync-v1, as a service.

Runs :mod:`cloud_sync.receiver.service` on SQLite (one process) or PostgreSQL
(any number of processes on one database). It needs no box code and no box
configuration: the database, the boxes' secrets and two listen addresses.
``enqueue`` appends changes to a box's (or a site's) downstream feed from a
JSON file, as an OMS would through :meth:`Receiver.enqueue` or the SQL
function ``pickedge_enqueue``. docs/cloud-receiver.md is the guide.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from edge.cli.common import fail, load_json_or_exit

FC = TypeVar("FC", bound=Callable[..., Any])

DB_HELP = (
    "postgresql://… (or a libpq key=value string) for PostgreSQL, a file path or "
    "sqlite:///path for SQLite. Also from $PICKEDGE_RECEIVER_DB, which keeps a "
    "password out of the process list."
)


def _db(db: str | None) -> str:
    if not db:
        raise fail("error: --db (or $PICKEDGE_RECEIVER_DB) names the database")
    return db


def overlap_option(help_text: str) -> Callable[[FC], FC]:
    return click.option(
        "--overlap",
        type=click.FloatRange(min=0),
        default=3600.0,
        show_default=True,
        help=help_text,
    )


def _open_receiver(db: str, *, pool_size: int = 2) -> Any:
    from cloud_sync.receiver import Receiver
    from cloud_sync.receiver.storage import StorageError, open_database

    try:
        return Receiver(open_database(db, pool_size=pool_size))
    except StorageError as exc:
        raise fail(f"error: {exc}") from None
    except OSError as exc:
        raise fail(f"error: cannot open {db}: {exc.strerror or exc}") from None


@click.group("cloud-receiver", invoke_without_command=True)
@click.option("--db", envvar="PICKEDGE_RECEIVER_DB", help=DB_HELP)
@click.option(
    "--secrets",
    "secrets_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of box secrets: one file per box id, mode 600.",
)
@click.option(
    "--secrets-table",
    is_flag=True,
    help="Take box secrets from the database's box_secrets table instead.",
)
@click.option("--listen", default="0.0.0.0:8700", show_default=True, help="Sync API HOST:PORT.")
@click.option(
    "--ops-listen",
    default="127.0.0.1:8701",
    show_default=True,
    help="/livez, /readyz and /metrics HOST:PORT ('' for none).",
)
@overlap_option("Seconds a box's previous secret stays accepted after it changes (directory).")
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Database threads (and PostgreSQL connections) of this process.",
)
@click.option(
    "--reuse-port",
    is_flag=True,
    help="Share the sync port with other receiver processes (the kernel spreads connections).",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), help="HTTPS cert.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), help="HTTPS key.")
@click.option(
    "--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True
)
@click.option("--migrate-only", is_flag=True, help="Create or migrate the tables, then exit.")
@click.pass_context
def cloud_receiver_group(  # noqa: PLR0917 - click passes every option
    ctx: click.Context,
    db: str | None,
    secrets_dir: Path | None,
    secrets_table: bool,
    listen: str,
    ops_listen: str,
    overlap: float,
    threads: int,
    reuse_port: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    log_format: str,
    migrate_only: bool,
) -> None:
    """Receive the boxes' batches and serve their change feeds (sync-v1).

    \b
    Examples:
      pickedge cloud-receiver --db postgresql://oms@db/oms --secrets /etc/pickedge/boxes
      pickedge cloud-receiver --db receiver.db --secrets boxes/ --listen 127.0.0.1:8700
      pickedge cloud-receiver --db postgresql://oms@db/oms --migrate-only
      pickedge cloud-receiver --db … enqueue --box zone-a changes.json
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
    if ctx.invoked_subcommand is not None:
        return
    db = _db(db)
    _configure_logging(log_format)
    from cloud_sync.receiver.service import Listen

    try:
        sync_at = Listen.parse(listen)
        ops_at = Listen.parse(ops_listen) if ops_listen else None
    except ValueError as exc:
        raise fail(f"error: {exc}") from None
    receiver = _open_receiver(db, pool_size=threads)
    if migrate_only:
        click.echo(f"migrated: {receiver.db.dialect}")
        receiver.close()
        return
    try:
        secrets = _secrets(receiver, secrets_dir, secrets_table, overlap)
        context = _tls(tls_cert, tls_key)
        _serve(
            receiver,
            secrets,
            sync_at=sync_at,
            ops_at=ops_at,
            threads=threads,
            reuse_port=reuse_port,
            context=context,
        )
    finally:
        receiver.close()


def _configure_logging(fmt: str) -> None:
    from cloud_sync.receiver.service import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _secrets(receiver: Any, secrets_dir: Path | None, table: bool, overlap: float) -> Any:
    from cloud_sync.receiver.secrets import DirectorySecrets, TableSecrets

    if table == (secrets_dir is not None):
        raise fail("error: give exactly one of --secrets DIR and --secrets-table")
    if table:
        return TableSecrets(receiver.db)
    try:
        return DirectorySecrets(secrets_dir or Path(), overlap_s=overlap)
    except FileNotFoundError as exc:
        raise fail(f"error: {exc}") from None


def _tls(cert: Path | None, key: Path | None) -> Any:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise fail("error: --tls-cert and --tls-key go together")
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise fail(f"error: cannot load the TLS certificate: {exc}") from None
    return context


def _serve(
    receiver: Any,
    secrets: Any,
    *,
    sync_at: Any,
    ops_at: Any,
    threads: int,
    reuse_port: bool,
    context: Any,
) -> None:
    from cloud_sync.receiver.service import ReceiverService, serve

    service = ReceiverService(receiver, secrets, threads=threads)
    log = logging.getLogger("pickedge.cloud_receiver")

    def ready(urls: list[str]) -> None:
        log.info("receiver %s on %s (%s)", os.getpid(), " and ".join(urls), receiver.db.dialect)

    try:
        asyncio.run(serve(service, sync_at, ops_at, reuse_port=reuse_port,
                          ssl_context=context, ready=ready))  # fmt: skip
    except OSError as exc:
        raise fail(f"error: cannot listen: {exc.strerror or exc}") from None
    finally:
        service.close()


@cloud_receiver_group.command("enqueue")
@click.option("--box", help="The box whose feed gets the changes.")
@click.option("--site", help="Every box registered to this site gets the changes.")
@click.argument("changes_file", metavar="CHANGES.json")
@click.pass_context
def enqueue_command(
    ctx: click.Context, box: str | None, site: str | None, changes_file: str
) -> None:
    """Append the changes of a JSON list ([{"type": …, "data": {…}}, …]) to a feed."""
    from cloud_sync.receiver import ChangeError

    db = _db(ctx.obj.get("db"))
    if (box is None) == (site is None):
        raise fail("error: give exactly one of --box and --site")
    changes = load_json_or_exit(changes_file)
    if not isinstance(changes, list) or not changes:
        raise fail(f"error: {changes_file}: a non-empty JSON list of changes")
    receiver = _open_receiver(db)
    try:
        if box is not None:
            ends = {box: receiver.enqueue(box, *changes)}
        else:
            ends = receiver.enqueue_site(site, *changes)
    except ChangeError as exc:
        raise fail(f"error: {exc}") from None
    finally:
        receiver.close()
    for name, end in sorted(ends.items()):
        click.echo(f"{name}: {len(changes)} change(s), feed now at {end}")
    if not ends:
        click.echo(f"no box is registered to site {site}", err=True)


@cloud_receiver_group.command("register")
@click.option("--box", required=True, help="The box id (as in its X-Box-Id).")
@click.option("--site", required=True, help="The site it belongs to (for enqueue --site).")
@click.pass_context
def register_command(ctx: click.Context, box: str, site: str) -> None:
    """Record which site a box belongs to."""
    from cloud_sync.receiver.secrets import valid_box_id

    db = _db(ctx.obj.get("db"))
    if not valid_box_id(box):
        raise fail("error: box ids are [A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
    receiver = _open_receiver(db)
    try:
        receiver.register(box, site=site)
    finally:
        receiver.close()
    click.echo(f"{box}: site {site}")


@cloud_receiver_group.command("rotate-secret")
@click.option("--box", required=True, help="The box id.")
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="File holding the new secret (first line).",
)
@overlap_option("Seconds the current secret stays accepted.")
@click.pass_context
def rotate_secret_command(ctx: click.Context, box: str, secret_file: Path, overlap: float) -> None:
    """Give a box a new secret in the box_secrets table (for --secrets-table)."""
    from cloud_sync.receiver.secrets import TableSecrets

    db = _db(ctx.obj.get("db"))
    lines = secret_file.read_text(encoding="utf-8").splitlines()
    secret = lines[0].strip() if lines else ""
    receiver = _open_receiver(db)
    try:
        TableSecrets(receiver.db).rotate(box, secret, overlap_s=overlap)
    except ValueError as exc:
        raise fail(f"error: {exc}") from None
    finally:
        receiver.close()
    click.echo(f"{box}: new secret; the previous one is accepted for {overlap:g} s")
