"""``pickedge check-config FILE``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from edge.cli.common import config_or_exit
from edge.config import effective_config


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if value else "{}"
    return str(value)


@click.command("check-config")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the effective config as JSON.")
def check_config_command(file: Path, as_json: bool) -> None:
    """Validate FILE and print the effective configuration.

    Every problem is reported with its key path and, for keys from the file,
    its line; the exit code is then 2. On success each value is printed with
    where it came from: default, file:LINE, or env:PICKEDGE__SECTION__KEY.
    Secret files are checked for presence; their content is never printed.

    \b
    Examples:
      pickedge check-config configs/example.toml
      PICKEDGE__API__PORT=8080 pickedge check-config configs/example.toml
      pickedge check-config site.toml --json | jq .api
    """
    cfg = config_or_exit(file)
    rows = effective_config(cfg)
    if as_json:
        doc = {path: {"value": value, "source": source} for path, value, source in rows}
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    width = max(len(path) for path, _, _ in rows)
    click.echo(f"# {file}: ok ({len(cfg.devices)} devices enabled)")
    for path, value, source in rows:
        click.echo(f"{path:<{width}} = {_show(value):<28} # {source}")
