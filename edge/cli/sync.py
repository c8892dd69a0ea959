"""``pickedge sync status``: how far the box is behind the cloud, and why.

Reads the database read-only (safe while the daemon runs) and prints the
backlog, the age of the oldest unsent event, the last ack, the last error,
the uploader's current back-off, the downstream cursor and open sync alerts.
Ages use this machine's clock and are for people only.

``pickedge sync drain`` follows the running daemon's uploader as it works the
backlog off (after an outage, before a planned shutdown or an upgrade): a
progress bar of the events acked since it started, the rate and the time
left, until nothing is unacked (exit 0) or ``--timeout`` passes (exit 1). It
only reads; the daemon sends.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import click

from common.errors import PickEdgeError
from edge.cli.common import config_option, config_or_exit, fail
from edge.config import Config
from edge.store import open_read_only
from edge.store.sync_state import read_status


@click.group("sync")
def sync_group() -> None:
    """Sync with the cloud OMS (sync-v1).

    \b
    Examples:
      pickedge sync status --config site.toml
      pickedge sync status --config site.toml --json
      pickedge sync drain --config site.toml --timeout 300
    """


@sync_group.command("drain")
@config_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=600.0,
    show_default=True,
    help="Give up (exit 1) after this many seconds.",
)
@click.option(
    "--interval", type=click.FloatRange(0.05, 60), default=0.5, show_default=True, hidden=True
)
def drain_command(config_path: Path, timeout: float, interval: float) -> None:
    """Follow the daemon's uploader until the backlog is empty, with a progress bar.

    Reads the database read-only while the daemon runs; exit 0 once every event
    is acked by the cloud, 1 if some are still unacked after --timeout (the
    last error and back-off are printed: see `pickedge sync status`).

    \b
    Example:
      pickedge sync drain --config site.toml --timeout 300
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cfg = config_or_exit(config_path, read_secrets=False)
    st = _read(cfg)
    total = st["backlog"]  # events to drain: those unacked now, and any written meanwhile
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("draining the outbox"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events acked"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        bar = progress.add_task("drain", total=max(total, 1), completed=0)
        while st["backlog"] > 0 and time.monotonic() < deadline:
            time.sleep(interval)
            before, st = st, _read(cfg)
            if st["epoch"] == before["epoch"]:
                total += max(0, st["last_seq"] - before["last_seq"])
            else:  # a new epoch (a restore, a conflict): its tail is counted anew
                total = max(total, total - before["backlog"] + st["backlog"])
            progress.update(bar, completed=max(0, total - st["backlog"]), total=max(total, 1))
    if st["backlog"]:
        click.echo(render(st), err=True)
        raise fail(f"{st['backlog']} events still unacked after {timeout:.0f} s", 1)
    click.echo(f"outbox drained: nothing unacked (acked {st['acked_seq']} of {st['last_seq']})")


def _read(cfg: Config) -> dict[str, Any]:
    """The status from the configured database, opened read-only for one read;
    a clear error (exit 2) when it cannot be read."""
    try:
        conn = open_read_only(cfg.store_path())
        try:
            return sync_status(conn)
        finally:
            conn.close()
    except PickEdgeError as exc:
        raise fail(f"error: {exc}", exc.exit_code) from None
    except sqlite3.Error as exc:
        raise fail(f"error: {cfg.store_path()}: {exc}") from None


def sync_status(conn: sqlite3.Connection, *, now_ms: int | None = None) -> dict[str, Any]:
    """The figures of ``pickedge sync status`` from an open database."""
    return read_status(conn, now=int(time.time() * 1000) if now_ms is None else now_ms)


def _when(ms: int | None, age_s: float | None) -> str:
    if ms is None:
        return "never"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))
    return f"{stamp} ({age_s:.0f} s ago)" if age_s is not None else stamp


def render(st: dict[str, Any]) -> str:
    """The status as aligned lines for a person."""
    now = int(time.time() * 1000)
    oldest = (
        "none"
        if st["oldest_unacked_ms"] is None
        else _when(st["oldest_unacked_ms"], st["oldest_unacked_age_s"])
    )
    backoff = "none (sending normally)"
    if st["backoff_s"]:
        retry = st["retry_at_ms"]
        left = f", next try in {max(0.0, (retry - now) / 1000):.0f} s" if retry else ""
        backoff = f"{st['backoff_s']:.1f} s{left}"
    error = "none"
    if st["last_error"]:
        error = f"{st['last_error']} at {_when(st['last_error_ms'], None)}"
    rows = [
        ("box", f"{st['box']} (epoch {st['epoch']})"),
        (
            "backlog",
            f"{st['backlog']} events unacked (acked {st['acked_seq']} of {st['last_seq']})",
        ),
        ("oldest unsent", oldest),
        ("last ack", _when(st["last_ack_ms"], st["last_ack_age_s"])),
        ("last error", error),
        ("back-off", backoff),
        (
            "downstream",
            f"cursor {st['cursor'] or '(start)'}, last pull {_when(st['last_pull_ms'], None)}",
        ),
        ("open alerts", str(len(st["open_alerts"])) if st["open_alerts"] else "none"),
    ]
    lines = [f"{k:<14} {v}" for k, v in rows]
    lines += [f"  {a['severity']:<5} {a['kind']}: {a['subject']}" for a in st["open_alerts"]]
    return "\n".join(lines)


@sync_group.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def status_command(config_path: Path, as_json: bool) -> None:
    """Backlog, oldest unsent event, last ack, last error and back-off.

    \b
    Example:
      pickedge sync status --config site.toml
    """
    st = _read(config_or_exit(config_path, read_secrets=False))
    click.echo(json.dumps(st, indent=2) if as_json else render(st))
