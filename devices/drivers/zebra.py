"""Zebra FX7500/FX9600/ATR7000 readers over MQTT (IoT Connector), smoothed.

Options (driver ``zebra-iotc``): ``topic`` (or the device's ``topic``) is the
tag-data topic, e.g. ``zebra/fx9600-1/data``; ``events_topic`` (optional) the
management-events topic, e.g. ``zebra/fx9600-1/events``; plus the smoothing and
transport options of :mod:`devices.drivers.impinj`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from devices.dialects import ParseResult, zebra
from devices.driver import DeviceSpec, MqttSettings
from devices.drivers.mqtt_common import Parser, RfidMqttDriverBase


def _data(payload: bytes, device_id: str, received_at: float) -> ParseResult:
    return zebra.parse_data(payload, device_id=device_id, received_at=received_at)


def _event(payload: bytes, device_id: str, received_at: float) -> ParseResult:
    return zebra.parse_event(payload, device_id=device_id, received_at=received_at)


class ZebraDriver(RfidMqttDriverBase):
    OPTIONS: ClassVar[frozenset[str]] = RfidMqttDriverBase.OPTIONS | {"events_topic"}

    def __init__(self, spec: DeviceSpec, *, mqtt: MqttSettings) -> None:
        super().__init__(spec, mqtt=mqtt)
        self.data_topic = self._topic()
        self.events_topic = self._topic("events_topic", required=False)

    def subscriptions(self) -> Sequence[tuple[str, Parser]]:
        assert self.data_topic is not None
        routes: list[tuple[str, Parser]] = [(self.data_topic, _data)]
        if self.events_topic:
            routes.append((self.events_topic, _event))
        return routes
