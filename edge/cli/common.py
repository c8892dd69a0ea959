"""What CLI commands share: loading the config and opening the store, with the
project's errors turned into one clear message on stderr and exit code 2.

CLI commands run beside the daemon. The store they open never migrates the
schema (a newer CLI must not change the database under an older running
daemon: it says ``run `pickedge db migrate``` and exits 2, changing nothing)
and never checkpoints the WAL (the daemon's maintenance does, without making
its writer wait). Only ``pickedge db migrate`` asks for a migration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from common.errors import PickEdgeError
from edge.config import Config, load_config
from edge.store import Store


def fail(message: str, code: int = 2) -> click.exceptions.Exit:
    click.echo(message, err=True)
    return click.exceptions.Exit(code)


def load_json_or_exit(path: str) -> Any:
    """A JSON document from ``path`` (``-``: stdin), or exit 2 with one line."""
    try:
        with click.open_file(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise fail(f"error: {path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise fail(f"error: {path}: not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise fail(
            f"error: {path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc


def echo_json_by_key(doc: dict[str, Any]) -> None:
    """``doc`` as JSON, one line per top-level key: long lists stay readable
    and the output stays valid JSON."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()]
    click.echo("{\n" + ",\n".join(lines) + "\n}")


def config_or_exit(path: Path | None, *, read_secrets: bool = True) -> Config:
    try:
        return load_config(path, read_secrets=read_secrets)
    except PickEdgeError as exc:
        raise fail(f"error: {exc}", exc.exit_code) from None


@contextmanager
def store_or_exit(cfg: Config, *, migrate: bool = False) -> Iterator[Store]:
    try:
        store = Store.open(
            cfg.store_path(),
            box_id=cfg.box.id,
            busy_timeout_ms=cfg.store.busy_timeout_ms,
            max_backlog=cfg.store.max_backlog,
            wal_limit_bytes=cfg.store.wal_limit_mb * 1024 * 1024,
            migrate=migrate,
            checkpoints=False,
        )
    except PickEdgeError as exc:
        raise fail(f"error: {exc}", exc.exit_code) from None
    try:
        yield store
    finally:
        store.close()


config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    envvar="PICKEDGE_CONFIG",
    help="Configuration file (TOML). Also from $PICKEDGE_CONFIG.",
)
