"""``pickedge status``: the dashboard's figures in a terminal.

Reads the database read-only (safe while the daemon runs) and prints the
overview of :func:`edge.ops.overview.snapshot` with rich tables: devices,
sync, the floor's figures over a day and 30 days, the hours of the last 24
with scans or picks, open alerts and the tours in progress; ``--json`` gives
the same snapshot as ``GET /api/v1/dashboard``.

What only the running daemon holds is not here: device states before the
daemon writes them to the ``devices`` table (until then: the configured
devices, state unknown), and scan answer times since its last maintenance
tick (picks are counted from the outbox, so they are complete). Ages use this
machine's clock and are for people only.
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
from edge.ops import overview
from edge.store import open_read_only

_SYNC_WORDS = {
    "up_to_date": "[green]up to date[/]",
    "sending": "[blue]sending[/]",
    "retrying": "[yellow]retrying[/]",
    "never_synced": "[blue]never synced[/]",
}


def read_overview(cfg: Config, *, now_ms: int | None = None) -> dict[str, Any]:
    """The overview of the configured database (read-only)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    configured = [overview.ConfiguredDevice(d.id, d.driver, d.role.value) for d in cfg.devices]
    conn = open_read_only(cfg.store_path())
    try:
        return overview.snapshot(
            conn, now=now, pitch_m=cfg.layout.aisle_pitch_m, configured=configured
        )
    finally:
        conn.close()


def _clock(ms: int | None) -> str:
    return "–" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000))


def _span(ms: float) -> str:
    s = max(0, round(ms / 1000))
    if s < 60:
        return f"{s} s"
    m = s // 60
    if m < 60:
        return f"{m} min"
    h = m // 60
    return f"{h} h {m % 60} min" if h < 48 else f"{h // 24} d"


def _pct(ratio: float | None) -> str:
    return "–" if ratio is None else f"{100 * ratio:.1f} %"


def _m(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} m"


def render(snap: dict[str, Any], *, width: int | None = None) -> None:
    """Print ``snap`` as rich tables on stdout."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=width, highlight=False)
    now = int(snap["at_ms"])
    console.print(f"[bold]PickEdge {escape(str(snap['box']))}[/] · {_clock(now)}")

    devices = Table(title="Devices", title_justify="left")
    for column in ("device", "role", "driver", "state", "since"):
        devices.add_column(column)
    for d in snap["devices"]:
        colour = {"online": "green", "offline": "red"}.get(d["state"], "yellow")
        since = d["since_ms"]
        devices.add_row(
            escape(str(d["id"])),
            escape(str(d["role"] or "")),
            escape(str(d["driver"] or "")),
            f"[{colour}]{d['state']}[/]",
            "?" if since is None else f"{_clock(since)} ({_span(now - since)})",
        )
    if not snap["devices"]:
        devices.add_row("none configured", "", "", "", "")
    console.print(devices)

    s = snap["sync"]
    sync = Table(title="Sync", title_justify="left", show_header=False)
    sync.add_column("what")
    sync.add_column("value")
    oldest = s["oldest_unacked_ms"]
    last_ack = s["last_ack_ms"]
    sync.add_row("state", _SYNC_WORDS.get(s["state"], s["state"]))
    sync.add_row("backlog", f"{s['backlog']} events")
    sync.add_row("oldest unsent", "none" if oldest is None else f"{_span(now - oldest)} old")
    sync.add_row(
        "last ack",
        "never" if last_ack is None else f"{_clock(last_ack)} ({_span(now - last_ack)} ago)",
    )
    sync.add_row("last error", escape(str(s["last_error"] or "none")))
    sync.add_row("back-off", f"{s['backoff_s']:.1f} s" if s["backoff_s"] else "none")
    console.print(sync)

    floor = Table(title="Floor", title_justify="left")
    for column in ("figure", "last day", "30 days"):
        floor.add_column(column)
    w, e, a = snap["walking"], snap["exceptions"], snap["accuracy"]
    floor.add_row(
        "walking saved",
        *(f"{_m(w[k]['saved_m'])} ({_pct(w[k]['saved_ratio'])})" for k in ("1d", "30d")),
    )
    floor.add_row(
        "walking per unit",
        *(f"{_m(w[k]['per_unit_m'])} vs {_m(w[k]['single_per_unit_m'])}" for k in ("1d", "30d")),
    )
    floor.add_row(
        "exception rate",
        *(f"{_pct(e[k]['ratio'])} of {e[k]['tasks']} tasks" for k in ("1d", "30d")),
    )
    floor.add_row(
        "inventory accuracy",
        *(f"{_pct(a[k]['ratio'])} of {a[k]['counted']} counted" for k in ("1d", "30d")),
    )
    console.print(floor)

    busy = [h for h in snap["hours"] if h["scans"] or h["picks"]]
    hours = Table(title="Last 24 h (hours with scans or picks)", title_justify="left")
    for column in ("hour", "scans", "scan p99", "picks", "units", ""):
        hours.add_column(column, justify="right" if column else "left")
    top = max([h["units"] for h in busy] + [1])
    for h in busy:
        p99 = h["scan_p99_ms"]
        hours.add_row(
            time.strftime("%H:00", time.localtime(h["hour_ms"] / 1000)),
            str(h["scans"]),
            "–" if p99 is None else f"≤ {p99:g} ms",
            str(h["picks"]),
            str(h["units"]),
            "█" * max(1 if h["units"] else 0, round(20 * h["units"] / top)),
        )
    if not busy:
        hours.add_row("none", "", "", "", "", "")
    console.print(hours)

    alerts = Table(title=f"Open alerts ({len(snap['alerts'])})", title_justify="left")
    for column in ("id", "severity", "kind", "subject", "raised", "acknowledged"):
        alerts.add_column(column)
    for al in snap["alerts"]:
        colour = {"crit": "red", "warn": "yellow"}.get(al["severity"], "")
        acked = "" if al["acked_by"] is None else f"{al['acked_by']} {_clock(al['acked_ms'])}"
        alerts.add_row(
            str(al["id"]),
            f"[{colour}]{al['severity']}[/]" if colour else al["severity"],
            escape(str(al["kind"])),
            escape(str(al["subject"])),
            _clock(al["raised_ms"]),
            escape(acked),
        )
    console.print(alerts)

    tours = Table(title=f"Tours in progress ({len(snap['tours'])})", title_justify="left")
    for column in ("tour", "picker", "stops", "units", "at", "idle"):
        tours.add_column(column)
    for t in snap["tours"]:
        picker = t["picker"]
        tours.add_row(
            str(t["tour"]),
            escape(f"{picker['name'] or picker['id']} ({picker['id']})"),
            f"{t['stops_closed']} of {t['stops']}",
            f"{t['picked']} of {t['units']}",
            escape(t["at"]["location"]) if t["at"] else "depot",
            _span(t["idle_s"] * 1000),
        )
    console.print(tours)


@click.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="The snapshot as JSON (as the dashboard's).")
def status_command(config_path: Path, as_json: bool) -> None:
    """The zone at a glance: devices, sync, the floor's figures, alerts, tours.

    The same figures as the dashboard (/dashboard), read from the database
    read-only: safe while the daemon runs.

    \b
    Examples:
      pickedge status --config site.toml
      pickedge status --config site.toml --json
    """
    cfg = config_or_exit(config_path, read_secrets=False)
    try:
        snap = read_overview(cfg)
    except PickEdgeError as exc:
        raise fail(f"error: {exc}", exc.exit_code) from None
    except sqlite3.Error as exc:
        raise fail(
            f"error: {cfg.store_path()}: {exc} (an older schema? run `pickedge db migrate`)"
        ) from None
    if as_json:
        click.echo(json.dumps(snap, indent=2))
    else:
        render(snap)
