"""``pickedge sim …``: every simulator, runnable alone.

The simulators live in ``simulators/``; this group only collects their click
commands, importing a family's module when one of its commands is asked for.
"""

from __future__ import annotations

import importlib

import click

# command -> (module, attribute of a list of commands or of one command)
_SIMULATORS: dict[str, tuple[str, str]] = {
    "scanner": ("simulators.serial_cli", "commands"),
    "rfid-a0": ("simulators.serial_cli", "commands"),
    "rfid-m100": ("simulators.serial_cli", "commands"),
    "impinj": ("simulators.mqtt_cli", "commands"),
    "zebra": ("simulators.mqtt_cli", "commands"),
    "mqtt-scanner": ("simulators.mqtt_cli", "commands"),
    "cloud": ("simulators.cloud_cli", "cloud_command"),
    "printer": ("simulators.printer", "printer_command"),
}

_HELP = {
    "scanner": "A serial barcode scanner on a pty.",
    "rfid-a0": "An R2000-style (A0 protocol) UHF RFID reader on a pty.",
    "rfid-m100": "A MagicRF M100 (BB…7E protocol) UHF RFID module on a pty.",
    "impinj": "An Impinj reader publishing IoT Device Interface events to MQTT.",
    "zebra": "A Zebra reader publishing IoT Connector events to MQTT.",
    "mqtt-scanner": "A scanner publishing generic JSON scans to MQTT.",
    "cloud": "The cloud side of sync-v1, with fault injection.",
    "printer": "A ZPL label printer on raw TCP (port 9100), answering ~HS.",
}


class _SimGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_SIMULATORS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _SIMULATORS.get(cmd_name)
        if entry is None:
            return None
        found = getattr(importlib.import_module(entry[0]), entry[1])
        commands = found if isinstance(found, list) else [found]
        for command in commands:
            if command.name == cmd_name:
                assert isinstance(command, click.Command)
                return command
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Simulators"):
            formatter.write_dl([(name, _HELP[name]) for name in self.list_commands(ctx)])


@click.group("sim", cls=_SimGroup)
def sim_group() -> None:
    """Run a device or cloud simulator on its own.

    Serial simulators open a pty and print its path; point a device's `url`
    at it. MQTT simulators publish to a broker (it must allow their user).

    \b
    Examples:
      pickedge sim scanner --rate 5
      pickedge sim rfid-a0 --tags 50 --fault split
      pickedge sim impinj --help
      pickedge sim cloud --port 8480 --secret-file configs/secrets/demo-box.secret
      pickedge sim printer --port 9100 --out /tmp/labels
    """
