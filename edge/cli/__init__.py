"""The ``pickedge`` command line.

Commands live in their own modules and are imported only when invoked, so
``pickedge --help`` and ``pickedge route`` stay fast on a small box.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# command name -> "module:attribute" of a click command; imported on first use.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("edge.cli.daemon:run_command", "Run the daemon with a configuration file."),
    "demo": ("edge.cli.demo:demo_command", "Run everything simulated and narrate what happens."),
    "check-config": ("edge.cli.config:check_config_command", "Validate a configuration file."),
    "mosquitto-config": (
        "edge.cli.mosquitto:mosquitto_config_command",
        "Write the broker's config, users and ACLs for the MQTT devices.",
    ),
    "db": ("edge.cli.db:db_group", "Database maintenance: migrate, backup, integrity."),
    "version": ("edge.cli.version:version_command", "Print the version of PickEdge."),
    "route": ("edge.cli.route:route_command", "Compute the shortest pick path of a problem."),
    "batch": ("edge.cli.batch:batch_command", "Batch orders onto carts, each route optimal."),
    "decode": ("edge.cli.decode:decode_command", "Explain what a scanned code or EPC means."),
    "listen": ("edge.cli.listen:listen_command", "Print decoded events of configured devices."),
    "sim": ("edge.cli.sim:sim_group", "Run a device or cloud simulator."),
    "sync": ("edge.cli.sync:sync_group", "Sync with the cloud: status of the outbox."),
    "status": ("edge.cli.status:status_command", "The zone at a glance (the dashboard's figures)."),
    "pda": ("edge.cli.pda:pda_group", "Enrol, list and revoke PDA handhelds."),
    "picker": ("edge.cli.pda:picker_group", "Add a picker or supervisor locally."),
    "cloud-receiver": (
        "edge.cli.cloud_receiver:cloud_receiver_group",
        "Run the cloud side of sync-v1 (SQLite or PostgreSQL).",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, _, attr = entry[0].partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table, so --help does not import every command.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """PickEdge — the edge gateway of a warehouse pick zone.

    \b
    Examples:
      pickedge demo                          everything simulated, narrated
      pickedge check-config configs/example.toml
      pickedge run --config /etc/pickedge/pickedge.toml
      pickedge route problem.json --compare
    """


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="pickedge")
