"""Test support for ``pickedge mosquitto-config``: a PickEdge configuration with
MQTT devices, the broker files the command generates from it, and a real
Mosquitto started on those files (not on :class:`MosquittoBroker`'s own)."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

from tests.support.mosquitto import MosquittoBroker

__all__ = [
    "DAEMON_PASSWORD",
    "DAEMON_USER",
    "DEVICES",
    "ROOT",
    "generate",
    "start_generated",
    "write_config",
]

ROOT = Path(__file__).resolve().parents[2]
DAEMON_USER = "pickedge"
DAEMON_PASSWORD = "the-daemons-own-password"

#: two dock portals (Impinj, Zebra with its events topic), a pack station's
#: MQTT and serial scanners, and a disabled reader (no MQTT user)
DEVICES = """
[[devices]]
id = "dock-1-portal"
driver = "impinj-iot"
role = "dock_door"
topic = "impinj/dock-1/events"
bound_to = "dock-1"

[[devices]]
id = "dock-2-portal"
driver = "zebra-iotc"
role = "dock_door"
topic = "zebra/fx9600-2/data"
bound_to = "dock-2"
options = { events_topic = "zebra/fx9600-2/events" }

[[devices]]
id = "pack-1-mqtt"
driver = "mqtt-scanner"
role = "pack_station"
topic = "scanners/pack-1"
bound_to = "pack-1"

[[devices]]
id = "pack-1-serial"
driver = "serial-scanner"
role = "pack_station"
url = "/dev/ttyACM0"
bound_to = "pack-1"

[[devices]]
id = "old-reader"
driver = "impinj-iot"
topic = "impinj/old/events"
enabled = false
"""


def write_config(tmp_path: Path, port: int, *, devices: str) -> Path:
    """``pickedge.toml`` in ``tmp_path``: the broker on 127.0.0.1:``port``, the
    daemon's user ``pickedge`` with its password in a file, then ``devices``."""
    secret = tmp_path / "mqtt.password"
    secret.write_text(DAEMON_PASSWORD + "\n")
    secret.chmod(0o600)
    config = tmp_path / "pickedge.toml"
    config.write_text(
        f"""
[box]
id = "mq-box"
[store]
path = "box.db"
[mqtt]
host = "127.0.0.1"
port = {port}
username = "{DAEMON_USER}"
password_file = "mqtt.password"
{devices}"""
    )
    return config


def generate(config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """Run ``pickedge mosquitto-config`` (persistence in ``out/data``)."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "edge", "mosquitto-config", "--config", str(config)),
            *("--out", str(out), "--persistence-dir", str(out / "data")),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")},
    )


def start_generated(tmp_path: Path, out: Path, port: int, *, extra: str = "") -> MosquittoBroker:
    """Start a real Mosquitto on the generated ``out/mosquitto.conf`` (plus a log
    file, ``extra`` and, as root, a ``user`` line). The caller stops it
    (:meth:`MosquittoBroker.stop`, in a ``finally``)."""
    conf = out / "mosquitto.conf"
    log = tmp_path / "mosquitto.log"
    extra = f"log_dest file {log}\n{extra}"
    if os.geteuid() == 0:  # as root mosquitto drops to user mosquitto: stay as us
        extra += f"user {getpass.getuser()}\n"
    conf.write_text(conf.read_text() + extra)
    (out / "data").mkdir(exist_ok=True)
    broker = MosquittoBroker(tmp_path / "unused", port=port)
    broker.config_path = conf  # the generated configuration, not the test one
    broker.log_path = log
    broker.start()
    return broker
