"""configs/mosquitto/pickedge.conf is a working Mosquitto configuration:
started for real (paths and port moved to a scratch directory), it refuses
anonymous clients, accepts the password file's users and keeps a persistent
session's queued QoS 1 messages across a restart."""

from __future__ import annotations

import asyncio
import getpass
import os
import re
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from tests.support.mosquitto import MosquittoBroker, find_mosquitto, free_port

CONF = Path(__file__).resolve().parents[2] / "configs" / "mosquitto" / "pickedge.conf"


def box_conf(tmp_path: Path, port: int) -> Path:
    text = CONF.read_text()
    passwd = tmp_path / "pickedge.passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "pickedge", "s3cret"], check=True)
    data = tmp_path / "data"
    data.mkdir()
    text = text.replace("password_file /etc/mosquitto/pickedge.passwd", f"password_file {passwd}")
    text = text.replace("persistence_location /var/lib/mosquitto/", f"persistence_location {data}/")
    text = text.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    text = text.replace("log_dest syslog", f"log_dest file {tmp_path / 'mosquitto.log'}")
    assert str(passwd) in text and str(data) in text and f"listener {port} " in text
    if os.geteuid() == 0:
        text += f"user {getpass.getuser()}\n"
    path = tmp_path / "pickedge.conf"
    path.write_text(text)
    return path


def test_config_has_the_required_settings() -> None:
    text = CONF.read_text()
    active = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert "allow_anonymous false" in active
    assert "persistence true" in active
    assert any(re.fullmatch(r"password_file \S+", line) for line in active)
    assert "listener 1883 127.0.0.1" in active
    assert "#bind_interface eth1" in text  # the floor interface placeholder


async def test_box_config_runs_and_keeps_sessions(tmp_path: Path) -> None:
    assert find_mosquitto() is not None
    port = free_port()
    conf = box_conf(tmp_path, port)
    broker = MosquittoBroker(tmp_path / "unused", port=port)
    broker.config_path = conf  # run the box's configuration, not the test one
    broker.log_path = tmp_path / "mosquitto.log"
    await asyncio.to_thread(broker.start)
    try:
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", port, identifier="anon"):
                pass
        auth = {"username": "pickedge", "password": "s3cret"}
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="box-r1", clean_session=False, **auth
        ) as c:
            await c.subscribe("impinj/r1/events", qos=1)
        async with aiomqtt.Client("127.0.0.1", port, identifier="reader", **auth) as pub:
            await pub.publish("impinj/r1/events", b"queued while away", qos=1)
        await asyncio.to_thread(broker.restart)
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="box-r1", clean_session=False, **auth
        ) as c:
            async with asyncio.timeout(10):
                async for message in c.messages:
                    assert message.payload == b"queued while away"
                    break
    finally:
        await asyncio.to_thread(broker.stop)
