"""``pickedge mosquitto-config``: the box's Mosquitto configuration from its devices.

From the enabled MQTT devices of a PickEdge configuration (drivers
``impinj-iot``, ``zebra-iotc``, ``mqtt-scanner``) it writes into ``--out``:

- ``mosquitto.conf`` (0640): a listener on ``[mqtt] host``/``port``, no
  anonymous clients, the password and ACL files below, persistence on (the
  daemon's QoS 1 persistent sessions survive a broker restart) with the queue
  sizes a reader's replayed backlog needs;
- ``passwd`` (0600): one user per device (its id) and the daemon's user
  (``[mqtt] username``), each a PBKDF2-SHA512 ``$7$`` hash as
  ``mosquitto_passwd`` writes them — made here, so no password is ever on a
  command line;
- ``acl`` (0640): each device may publish only to its own topics (the filters
  its driver subscribes to) and read nothing; the daemon's user may read every
  device topic and publish nothing;
- ``passwords/DEVICE`` (0600): each device's password, to enter in the
  reader's or scanner's MQTT settings. Kept when it exists (running the command
  again after adding a device changes no other device's password); a device
  no longer configured loses its user.

The daemon's password is the content of ``[mqtt] password_file`` when set
(the file is never written); otherwise one is made and written to
``passwords/DAEMON_USER``, to name as ``password_file``. No password is ever
printed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import click

from devices.driver import MqttSettings
from devices.drivers.mqtt_common import MqttDriverBase
from devices.registry import MQTT_DRIVERS, create_driver
from edge.cli.common import config_option, config_or_exit, fail
from edge.config import Config
from edge.store.db import sync_dir

#: mosquitto_passwd's PBKDF2-SHA512 parameters (mosquitto 2.x)
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12


@dataclass(frozen=True, slots=True)
class MqttDevice:
    id: str
    driver: str
    topics: tuple[str, ...]


def mqtt_devices(cfg: Config) -> list[MqttDevice]:
    """The enabled MQTT devices and the topic filters their drivers subscribe to."""
    found = []
    for spec in cfg.devices:
        if spec.driver not in MQTT_DRIVERS:
            continue
        driver = create_driver(spec, mqtt=MqttSettings())
        assert isinstance(driver, MqttDriverBase)
        topics = tuple(dict.fromkeys(f for f, _ in driver.subscriptions()))
        found.append(MqttDevice(spec.id, spec.driver, topics))
    return found


def password_line(user: str, password: str, *, salt: bytes | None = None) -> str:
    """One line of a Mosquitto password file, as ``mosquitto_passwd`` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"{user}:$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}\n"


def _valid_user(name: str) -> bool:
    # the password and ACL files are line-based: no ':' (password file), no
    # whitespace or control characters, no wildcards
    return bool(name) and name.isprintable() and not any(c in name for c in ": \t#+")


def _write(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` with ``mode`` from the start (never readable by
    others in between), replacing the file atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_dir(path.parent)  # the new name survives a power cut (docs/durability.md)


def _password(path: Path) -> str:
    """The password kept in ``path``, or a new one written there (0600)."""
    if path.exists():
        kept = path.read_text().strip()
        if kept:
            return kept
    made = secrets.token_urlsafe(24)
    _write(path, made + "\n", 0o600)
    return made


def render_conf(
    cfg: Config, out: Path, *, persistence_dir: Path | None, devices: list[MqttDevice]
) -> str:
    host, port = cfg.mqtt.host, cfg.mqtt.port
    lines = [
        "# Mosquitto on the PickEdge box, made by `pickedge mosquitto-config` from",
        f"# {cfg.path or 'the configuration'}: {len(devices)} MQTT device(s). Do not edit:",
        "# run the command again after changing [[devices]] (docs/operations.md).",
        "per_listener_settings false",
        f"listener {port} {host}",
        "allow_anonymous false",
        f"password_file {out / 'passwd'}",
        f"acl_file {out / 'acl'}",
        "",
        "# the daemon's QoS 1 persistent sessions and their queued messages",
        "# survive a broker restart or a power cut (up to autosave_interval s)",
        "persistence true",
    ]
    if persistence_dir is not None:
        lines += [f"persistence_location {persistence_dir}/", "persistence_file pickedge.db"]
    lines += [
        "autosave_interval 10",
        "# a reader replays its whole offline queue on reconnect (Zebra: 66,000)",
        "max_queued_messages 200000",
        "max_queued_bytes 0",
        "max_inflight_messages 100",
        "persistent_client_expiration 14d",
        "connection_messages true",
    ]
    return "\n".join(lines) + "\n"


def render_acl(daemon_user: str, devices: list[MqttDevice]) -> str:
    lines = [
        "# Made by `pickedge mosquitto-config`. Each device publishes to its own",
        "# topics only; the daemon reads them all and publishes nothing.",
        f"user {daemon_user}",
    ]
    lines += [f"topic read {t}" for d in devices for t in d.topics]
    for d in devices:
        lines += ["", f"# {d.driver}", f"user {d.id}", *(f"topic write {t}" for t in d.topics)]
    return "\n".join(lines) + "\n"


@click.command("mosquitto-config")
@config_option
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Directory to write mosquitto.conf, passwd, acl and passwords/ into.",
)
@click.option(
    "--persistence-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="persistence_location (default: the broker's own, /var/lib/mosquitto on Debian).",
)
def mosquitto_config_command(config_path: Path, out: Path, persistence_dir: Path | None) -> None:
    """Write the box's Mosquitto configuration for its MQTT devices.

    One broker user per MQTT device (its id) allowed to publish to its own
    topics only, the daemon's user reading them all, no anonymous clients,
    persistence on. Device passwords are kept in OUT/passwords/ (0600) and
    reused when the command runs again; none is printed.

    \b
    Examples:
      pickedge mosquitto-config --config /etc/pickedge/pickedge.toml --out /etc/mosquitto/pickedge
      echo 'include_dir /etc/mosquitto/pickedge' ...   see docs/operations.md, "Mosquitto"
    """
    cfg = config_or_exit(config_path)
    devices = mqtt_devices(cfg)
    daemon_user = cfg.mqtt.username
    users = [daemon_user, *(d.id for d in devices)]
    bad = [u for u in users if not _valid_user(u)]
    if bad:
        raise fail(f"error: not usable as a broker user name (':', '#', '+', spaces): {bad}")
    if len(set(users)) != len(users):
        raise fail(f"error: a device id equals the daemon's [mqtt] username {daemon_user!r}")
    out = out.resolve()
    keep = out / "passwords"
    new_dirs = [p for p in (out.parent, out, keep) if not p.exists()]
    keep.mkdir(parents=True, exist_ok=True)
    os.chmod(keep, 0o700)
    for new_dir in new_dirs:  # a new directory's name is its parent's to sync
        sync_dir(new_dir.parent)
    secret = cfg.secrets.get("mqtt.password_file")
    daemon_password = secret.reveal() if secret is not None else _password(keep / daemon_user)
    passwd = [password_line(daemon_user, daemon_password)]
    passwd += [password_line(d.id, _password(keep / d.id)) for d in devices]
    configured = {d.id for d in devices} | {daemon_user}
    for stale in keep.iterdir():
        if stale.name not in configured and not stale.name.startswith("."):
            stale.unlink()
    sync_dir(keep)
    _write(out / "passwd", "".join(passwd), 0o600)
    _write(out / "acl", render_acl(daemon_user, devices), 0o640)
    conf = render_conf(cfg, out, persistence_dir=persistence_dir, devices=devices)
    _write(out / "mosquitto.conf", conf, 0o640)
    click.echo(f"wrote {out}/mosquitto.conf, passwd, acl ({len(devices)} MQTT devices)")
    for d in devices:
        click.echo(f"  {d.id} ({d.driver}): publishes {', '.join(d.topics)}")
    click.echo(f"  {daemon_user} (the daemon): reads all of them")
    click.echo(f"device passwords: {keep}/DEVICE (0600; enter each in its device)")
    if secret is None:
        click.echo(f"the daemon's password: set [mqtt] password_file = {keep / daemon_user!s}")
