"""Barcode scanners publishing PickEdge's generic JSON over MQTT.

Options (driver ``mqtt-scanner``): ``topic`` (or the device's ``topic``) and
the transport options ``qos``, ``queue_size``, ``keepalive``. The payload format
is :mod:`devices.dialects.scanner_json` (``docs/devices-mqtt.md``). Each scan is
acknowledged to the broker only after ``emit`` returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from devices.dialects import ParseResult, scanner_json
from devices.driver import DeviceSpec, MqttSettings
from devices.drivers.mqtt_common import MqttDriverBase, Parser


def _scan(payload: bytes, device_id: str, received_at: float) -> ParseResult:
    return scanner_json.parse(payload, device_id=device_id, received_at=received_at)


class MqttScannerDriver(MqttDriverBase):
    def __init__(self, spec: DeviceSpec, *, mqtt: MqttSettings) -> None:
        super().__init__(spec, mqtt=mqtt)
        self.topic = self._topic()

    def subscriptions(self) -> Sequence[tuple[str, Parser]]:
        assert self.topic is not None
        return [(self.topic, _scan)]
