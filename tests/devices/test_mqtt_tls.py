"""TLS to a remote MQTT broker (issue 14), against a real Mosquitto with a TLS
listener whose certificate comes from a CA the test makes.

A device (its subscription, then a whole driver under the supervisor) trusts
the CA, subscribes over TLS and gets what a scanner publishes; a broker that
requires client certificates takes the box's; a device given the wrong CA is
refused, and the supervisor logs why once — naming the certificate and the
option to fix — while it retries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.backoff import Backoff
from devices.driver import DeviceSpec, MqttSettings
from devices.errors import DeviceConfigError, DeviceDisconnectedError
from devices.events import DeviceRole, ScanEvent
from devices.transport.mqtt import MqttSubscription
from edge.config import load_config
from edge.device_supervisor import DeviceSupervisor
from simulators.broker import BrokerTls
from simulators.rfid_mqtt import MqttScannerSim
from tests.support.mosquitto import Collector, MosquittoBroker, find_mosquitto, until
from tests.support.tls import Issued, ThrowawayCa


@dataclasses.dataclass
class TlsBroker:
    broker: MosquittoBroker
    ca: ThrowawayCa
    client: Issued

    def settings(self, ca_file: Path | None = None, **kw: object) -> MqttSettings:
        assert self.broker.tls_port is not None
        base = self.broker.settings()
        return dataclasses.replace(
            base,
            port=self.broker.tls_port,
            tls=True,
            tls_ca_file=str(ca_file or self.ca.cert),
            **kw,  # type: ignore[arg-type]
        )


def _broker(tmp_path: Path, *, require_certificate: bool) -> Iterator[TlsBroker]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is required for MQTT tests (apt-get install mosquitto)")
    ca = ThrowawayCa(tmp_path / "ca")
    server = ca.issue("broker")
    client = ca.issue("pickedge-box")
    tls = BrokerTls(
        cert_file=str(server.cert),
        key_file=str(server.key),
        ca_file=str(ca.cert),
        require_certificate=require_certificate,
    )
    broker = MosquittoBroker(tmp_path / "mosquitto", tls=tls)
    broker.start()
    try:
        yield TlsBroker(broker, ca, client)
    finally:
        broker.stop()


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    yield from _broker(tmp_path, require_certificate=False)


@pytest.fixture
def mtls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    yield from _broker(tmp_path, require_certificate=True)


async def _receive_one(settings: MqttSettings, plain: MqttSettings, code: str) -> bytes:
    async with MqttSubscription(settings, device_id="tls-dev", topics=["scanners/tls"]) as sub:
        async with MqttScannerSim(plain, scanner_id="pub", topic="scanners/tls") as scanner:
            await scanner.scan(code)
        async with asyncio.timeout(10):
            async for message in sub.messages():
                sub.ack(message)
                return message.payload
    raise AssertionError("no message")


async def test_a_device_subscribes_over_tls_and_gets_a_message(tls_broker: TlsBroker) -> None:
    payload = await _receive_one(tls_broker.settings(), tls_broker.broker.settings(), "OVER-TLS")
    assert b"OVER-TLS" in payload


async def test_a_broker_requiring_client_certificates(mtls_broker: TlsBroker) -> None:
    with_cert = mtls_broker.settings(
        tls_cert_file=str(mtls_broker.client.cert), tls_key_file=str(mtls_broker.client.key)
    )
    payload = await _receive_one(with_cert, mtls_broker.broker.settings(), "MUTUAL")
    assert b"MUTUAL" in payload
    with pytest.raises(DeviceDisconnectedError):
        async with MqttSubscription(
            mtls_broker.settings(), device_id="no-cert", topics=["x"], timeout=5
        ):
            pass


async def test_the_wrong_ca_fails_clearly_and_is_logged_once(
    tls_broker: TlsBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = ThrowawayCa(tmp_path / "other-ca", name="Not the broker's CA")
    wrong = tls_broker.settings(other.cert)
    with pytest.raises(DeviceDisconnectedError, match=r"not trusted.*\[mqtt\] tls_ca_file"):
        async with MqttSubscription(wrong, device_id="wrong", topics=["x"], timeout=5):
            pass
    # the same through the supervisor: one warning however often it retries
    caplog.set_level(logging.DEBUG)
    col = Collector()
    spec = DeviceSpec(
        id="s1", driver="mqtt-scanner", role=DeviceRole.PACK_STATION, topic="scanners/s1"
    )
    sup = DeviceSupervisor(
        [spec], mqtt=wrong, on_event=col.emit, backoff=Backoff(initial_s=0.01, cap_s=0.05)
    )
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: sup.snapshot()["s1"]["retries"] >= 4, within=20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 1, [r.getMessage() for r in loud]
    message = loud[0].getMessage()
    assert "device s1" in message and "not trusted" in message and "tls_ca_file" in message
    assert loud[0].exc_info is None
    assert wrong.password is not None and wrong.password not in caplog.text
    assert not any(isinstance(e, ScanEvent) for e in col.events)


async def test_the_supervised_driver_reads_scans_over_tls(tls_broker: TlsBroker) -> None:
    col = Collector()
    spec = DeviceSpec(
        id="s2", driver="mqtt-scanner", role=DeviceRole.PACK_STATION, topic="scanners/s2"
    )
    sup = DeviceSupervisor([spec], mqtt=tls_broker.settings(), on_event=col.emit)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: bool(sup.snapshot()["s2"]["connected"]))
        sim = MqttScannerSim(tls_broker.broker.settings(), scanner_id="p", topic="scanners/s2")
        async with sim as scanner:
            await scanner.scan("SCAN-OVER-TLS")
        await col.wait(lambda ev: any(isinstance(e, ScanEvent) for e in ev))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    scans = [e for e in col.events if isinstance(e, ScanEvent)]
    assert scans[0].code == "SCAN-OVER-TLS"


def test_mqtt_tls_options_in_the_config(tmp_path: Path) -> None:
    ca = ThrowawayCa(tmp_path / "ca")
    client = ca.issue("box")
    path = tmp_path / "pickedge.toml"

    def write(**mqtt: str | bool) -> Path:
        lines = "".join(
            f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}\n" for k, v in mqtt.items()
        )
        path.write_text(f'[box]\nid = "b"\n[mqtt]\nhost = "broker.example"\nport = 8883\n{lines}')
        return path

    settings = load_config(write(tls_ca_file="ca/ca.pem")).mqtt_settings()
    assert settings.tls and settings.tls_ca_file == str(tmp_path / "ca" / "ca.pem")
    settings = load_config(
        write(tls=True, tls_cert_file=str(client.cert), tls_key_file=str(client.key))
    ).mqtt_settings()
    assert settings.tls and settings.tls_ca_file is None and settings.tls_key_file
    client.key.chmod(0o644)
    with pytest.raises(Exception, match=r"mqtt\.tls_key_file.*readable by others"):
        load_config(write(tls=True, tls_cert_file=str(client.cert), tls_key_file=str(client.key)))
    with pytest.raises(Exception, match="does not exist"):
        load_config(write(tls_ca_file="nope.pem"))
    assert "password=None" in repr(settings) and "tls=True" in repr(settings)


async def test_unusable_tls_files_are_a_config_error() -> None:
    settings = MqttSettings(tls=True, tls_ca_file="/nonexistent/ca.pem")
    with pytest.raises(DeviceConfigError, match="does not exist"):
        async with MqttSubscription(settings, device_id="d", topics=["x"]):
            pass
