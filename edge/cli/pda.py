"""``pickedge pda enroll|list|revoke`` and ``pickedge pda picker add``: supervisors
manage handhelds and local pickers.

``enroll`` prints the new device key alone on stdout (so a script can capture
it); the key is shown once, only its hash is stored. Everything else a command
says goes to stderr. Errors print one line and exit 2.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from common.errors import PickEdgeError
from edge.api import auth
from edge.cli.common import config_option, config_or_exit, fail, store_or_exit


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M")


@click.group("pda")
def pda_group() -> None:
    """Enrol, list and revoke PDA handhelds; add pickers locally.

    \b
    Examples:
      pickedge pda enroll handheld-07 --config site.toml > key.txt
      pickedge pda list --config site.toml
      pickedge pda revoke handheld-07 --config site.toml
      pickedge pda picker add P-17 "Ana Lima" BADGE-0017 --config site.toml
    """


@pda_group.command("enroll")
@click.argument("name")
@config_option
def enroll_command(name: str, config_path: Path) -> None:
    """Enrol a PDA called NAME and print its device key (once) on stdout.

    Enter the key on the PDA page once (scan it as a barcode or type it); the
    PDA then sends it with every login. Lost keys are not recoverable: revoke
    the PDA and enrol it again under another name.

    \b
    Example:
      pickedge pda enroll handheld-07 --config site.toml > handheld-07.key
    """
    cfg = config_or_exit(config_path, read_secrets=False)
    with store_or_exit(cfg) as store:
        try:
            pda_id, key = auth.enroll_pda(store, name)
        except PickEdgeError as exc:
            raise fail(f"error: {exc}", 2) from None
    click.echo(f"enrolled {name} as {pda_id}; the key below is shown only once", err=True)
    click.echo(key)


@pda_group.command("list")
@config_option
def list_command(config_path: Path) -> None:
    """List enrolled PDAs: id, name, enrolled, revoked, live sessions.

    \b
    Example:
      pickedge pda list --config site.toml
    """
    cfg = config_or_exit(config_path, read_secrets=False)
    with store_or_exit(cfg) as store:
        rows = auth.list_pdas(store)
    if not rows:
        click.echo("no PDAs enrolled (pickedge pda enroll NAME --config FILE)", err=True)
        return
    click.echo(f"{'ID':<18} {'NAME':<20} {'ENROLLED':<17} {'REVOKED':<17} SESSIONS")
    for r in rows:
        click.echo(
            f"{r.id:<18} {r.name:<20} {_when(r.created_ms):<17} "
            f"{_when(r.revoked_ms):<17} {r.sessions}"
        )


@pda_group.command("revoke")
@click.argument("name_or_id")
@config_option
def revoke_command(name_or_id: str, config_path: Path) -> None:
    """Revoke a PDA by name or id; its sessions end at once.

    \b
    Example:
      pickedge pda revoke handheld-07 --config site.toml
    """
    cfg = config_or_exit(config_path, read_secrets=False)
    with store_or_exit(cfg) as store:
        try:
            pda_id = auth.revoke_pda(store, name_or_id)
        except PickEdgeError as exc:
            raise fail(f"error: {exc}", 2) from None
    click.echo(f"revoked {pda_id}", err=True)


@click.group("picker")
def picker_group() -> None:
    """Pickers added on the box (the cloud's master data may replace them).

    \b
    Example:
      pickedge picker add P-17 "Ana Lima" BADGE-0017 --role supervisor --config site.toml
    """


@picker_group.command("add")
@click.argument("picker_id")
@click.argument("name")
@click.argument("badge")
@click.option(
    "--role",
    type=click.Choice(list(auth.ROLES)),
    default="picker",
    show_default=True,
    help="What the person may do.",
)
@config_option
def picker_add_command(picker_id: str, name: str, badge: str, role: str, config_path: Path) -> None:
    """Add or update picker PICKER_ID called NAME with the badge code BADGE.

    \b
    Example:
      pickedge picker add P-17 "Ana Lima" BADGE-0017 --config site.toml
    """
    cfg = config_or_exit(config_path, read_secrets=False)
    with store_or_exit(cfg) as store:
        try:
            auth.add_picker(store, picker_id, name, badge, role)
        except PickEdgeError as exc:
            raise fail(f"error: {exc}", 2) from None
    click.echo(f"picker {picker_id} ({role}) can log in with badge {badge}", err=True)


pda_group.add_command(picker_group)
