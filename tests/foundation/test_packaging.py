"""Packaging (issue 13): the systemd unit passes ``systemd-analyze verify``, and
``pickedge mosquitto-config`` makes a broker configuration that a real
Mosquitto runs: no anonymous clients, one user per device publishing to its own
topics only, the daemon's user reading them all, no password ever printed."""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from tests.support.mosquitto import find_mosquitto, free_port
from tests.support.mosquitto_config import DEVICES, generate, start_generated
from tests.support.mosquitto_config import write_config as support_write_config

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "configs" / "pickedge.service"
INSTALLED = "/opt/pickedge/.venv/bin/pickedge"


# --------------------------------------------------------------------------- systemd


def analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail(
            "systemd-analyze is required to verify configs/pickedge.service; "
            "install Debian's systemd package (./dev.sh test does)",
            pytrace=False,
        )
    return found


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze(), "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )


def installable(tmp_path: Path, text: str, name: str = "pickedge.service") -> Path:
    """The unit with its executable moved to this checkout's (verify checks that
    every Exec* command exists); every other line as shipped."""
    here = Path(sys.prefix) / "bin" / "pickedge"
    assert here.exists(), here
    unit = tmp_path / name
    unit.write_text(text.replace(INSTALLED, str(here)))
    return unit


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert text.count(INSTALLED) == 2  # ExecStartPre and ExecStart, nothing else moved
    done = verify(installable(tmp_path, text))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # warnings (unknown keys, bad values) too


def test_the_verification_can_fail(tmp_path: Path) -> None:
    # systemd-analyze warns about what it ignores and still exits 0: the check
    # above reads stderr, and here it must see a misspelt key and a bad value.
    text = UNIT.read_text().replace("WatchdogSec=30", "WatchdogSecs=30")
    text = text.replace("DeviceAllow=char-ttyUSB rw", "DeviceAllow=char-ttyUSB rwz")
    done = verify(installable(tmp_path, text, "broken.service"))
    assert "Unknown key" in done.stderr and "WatchdogSecs" in done.stderr
    assert "rwz" in done.stderr


def test_the_unit_says_what_the_box_needs() -> None:
    d = directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert int(d["WatchdogSec"][0]) >= 10
    assert d["Restart"] == ["always"] and d["StateDirectory"] == ["pickedge"]
    assert d["ExecStartPre"] == [f"{INSTALLED} check-config /etc/pickedge/pickedge.toml"]
    assert d["ExecStart"][0].startswith(f"{INSTALLED} run --config /etc/pickedge/pickedge.toml")
    assert d["SupplementaryGroups"] == ["dialout"]
    assert {"char-ttyUSB rw", "char-ttyACM rw"} <= set(d["DeviceAllow"])
    assert d["DevicePolicy"] == ["closed"] and "PrivateDevices" not in d  # would hide ttys
    families = d["RestrictAddressFamilies"][0].split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)  # sd_notify, API, printers
    assert "IPAddressDeny" not in d  # printers on the floor network (TCP 9100)
    assert d["ProtectSystem"] == ["strict"] and d["ReadWritePaths"] == ["/var/lib/pickedge"]
    assert d["NoNewPrivileges"] == ["true"]


# --------------------------------------------------------------------------- Mosquitto


def write_config(tmp_path: Path, port: int, *, devices: str = DEVICES) -> Path:
    return support_write_config(tmp_path, port, devices=devices)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_files_it_writes(tmp_path: Path) -> None:
    out = tmp_path / "broker"
    done = generate(write_config(tmp_path, 1883), out)
    assert done.returncode == 0, done.stderr
    passwords = {p.name: p.read_text().strip() for p in (out / "passwords").iterdir()}
    assert set(passwords) == {"dock-1-portal", "dock-2-portal", "pack-1-mqtt"}
    for secret in [*passwords.values(), "the-daemons-own-password"]:
        assert secret not in done.stdout + done.stderr
        assert secret not in (out / "passwd").read_text()  # hashed only
    assert mode(out / "passwd") == 0o600 and mode(out / "acl") == 0o640
    assert mode(out / "mosquitto.conf") == 0o640 and mode(out / "passwords") == 0o700
    assert all(mode(p) == 0o600 for p in (out / "passwords").iterdir())
    users = [line.split(":")[0] for line in (out / "passwd").read_text().splitlines()]
    assert users == ["pickedge", "dock-1-portal", "dock-2-portal", "pack-1-mqtt"]
    assert all(":$7$101$" in line for line in (out / "passwd").read_text().splitlines())
    conf = (out / "mosquitto.conf").read_text().splitlines()
    for line in ("allow_anonymous false", "persistence true", "listener 1883 127.0.0.1"):
        assert line in conf
    acl = (out / "acl").read_text()
    assert "user dock-2-portal\ntopic write zebra/fx9600-2/data\ntopic write zebra/" in acl
    assert "topic read impinj/old/events" not in acl  # disabled devices get no user

    # again, with one device fewer: the others keep their passwords, it loses its user
    config = write_config(
        tmp_path, 1883, devices=DEVICES.split('[[devices]]\nid = "pack-1-mqtt', 1)[0]
    )
    assert generate(config, out).returncode == 0
    again = {p.name: p.read_text().strip() for p in (out / "passwords").iterdir()}
    assert again == {k: v for k, v in passwords.items() if k != "pack-1-mqtt"}
    assert "pack-1-mqtt" not in (out / "passwd").read_text() + (out / "acl").read_text()


def test_a_bad_user_name_is_refused(tmp_path: Path) -> None:
    devices = DEVICES.replace('id = "pack-1-mqtt"', 'id = "pack 1:mqtt"')
    done = generate(write_config(tmp_path, 1883, devices=devices), tmp_path / "out")
    assert done.returncode == 2 and "pack 1:mqtt" in done.stderr
    assert not (tmp_path / "out" / "passwd").exists()


async def next_message(client: aiomqtt.Client, within: float = 10.0) -> aiomqtt.Message:
    async with asyncio.timeout(within):
        async for message in client.messages:
            return message
    raise AssertionError("no message")


async def test_a_real_mosquitto_runs_the_generated_config(tmp_path: Path) -> None:
    assert find_mosquitto() is not None
    port = free_port()
    out = tmp_path / "broker"
    done = await asyncio.to_thread(generate, write_config(tmp_path, port), out)
    assert done.returncode == 0, done.stderr
    broker = await asyncio.to_thread(start_generated, tmp_path, out, port)

    def password(user: str) -> str:
        return (out / "passwords" / user).read_text().strip()

    def client(user: str | None, secret: str | None = None) -> aiomqtt.Client:
        auth = {} if user is None else {"username": user, "password": secret or password(user)}
        return aiomqtt.Client("127.0.0.1", port, identifier=f"t-{user}", **auth)

    try:
        with pytest.raises(aiomqtt.MqttError):  # anonymous
            async with client(None):
                pass
        with pytest.raises(aiomqtt.MqttError):  # a wrong password
            async with client("dock-1-portal", "guess"):
                pass
        daemon = client("pickedge", "the-daemons-own-password")
        async with daemon, client("dock-1-portal") as dock1, client("pack-1-mqtt") as pack1:
            for topic in ("impinj/dock-1/events", "zebra/fx9600-2/events", "scanners/pack-1"):
                await daemon.subscribe(topic, qos=1)
            # a device may not publish on another device's topic (the broker
            # drops it), then publishes on its own: the daemon gets that only
            await dock1.publish("scanners/pack-1", b"forged scan", qos=1)
            await dock1.publish("zebra/fx9600-2/events", b"forged event", qos=1)
            await dock1.publish("impinj/dock-1/events", b"dock-1 read", qos=1)
            got = await next_message(daemon)
            assert (str(got.topic), got.payload) == ("impinj/dock-1/events", b"dock-1 read")
            # the daemon publishes nothing: its message never reaches itself
            await daemon.publish("scanners/pack-1", b"from the daemon", qos=1)
            await pack1.publish("scanners/pack-1", b"pack-1 scan", qos=1)
            got = await next_message(daemon)
            assert (str(got.topic), got.payload) == ("scanners/pack-1", b"pack-1 scan")
            # and a device reads nothing, not even its own topic
            await pack1.subscribe("scanners/pack-1", qos=1)
            await pack1.publish("scanners/pack-1", b"second scan", qos=1)
            got = await next_message(daemon)
            assert got.payload == b"second scan"
            with pytest.raises(TimeoutError):
                await next_message(pack1, within=0.5)
    finally:
        await asyncio.to_thread(broker.stop)


def test_systemd_analyze_verify_accepts_the_cloud_receiver_template(tmp_path: Path) -> None:
    template = ROOT / "configs" / "pickedge-cloud-receiver@.service"
    text = template.read_text()
    assert text.count(INSTALLED) == 1
    found = directives(text)
    # the database URL (and its password) comes from a file, never the command line
    assert found["EnvironmentFile"] == ["/etc/pickedge-cloud/receiver.env"]
    assert "--db" not in found["ExecStart"][0] and "--reuse-port" in found["ExecStart"][0]
    done = verify(installable(tmp_path, text, "pickedge-cloud-receiver@1.service"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr
