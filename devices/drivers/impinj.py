"""Impinj R700/R720 readers over MQTT (IoT Device Interface), smoothed.

Options (``[[devices]]`` of driver ``impinj-iot``): ``topic`` (or the device's
``topic``), ``epc_format`` (``auto`` | ``base64`` | ``hex``), the smoothing
options ``gone_after``, ``per_antenna``, ``silence_timeout``, ``max_tags``,
``tombstone_horizon``, ``emit_reads`` (also emit every raw read), and the
transport options ``qos``, ``queue_size``, ``keepalive``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

from devices.dialects import ParseResult, impinj
from devices.driver import DeviceSpec, MqttSettings
from devices.drivers.mqtt_common import Parser, RfidMqttDriverBase
from devices.errors import DeviceConfigError


class ImpinjDriver(RfidMqttDriverBase):
    OPTIONS: ClassVar[frozenset[str]] = RfidMqttDriverBase.OPTIONS | {"epc_format"}

    def __init__(self, spec: DeviceSpec, *, mqtt: MqttSettings) -> None:
        super().__init__(spec, mqtt=mqtt)
        self.topic = self._topic()
        self.epc_format = cast(impinj.EpcFormat, spec.options.get("epc_format", "auto"))

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        super().check_options(options)
        fmt = options.get("epc_format", "auto")
        if fmt not in impinj.EPC_FORMATS:
            raise DeviceConfigError(
                f"option 'epc_format' must be one of {', '.join(impinj.EPC_FORMATS)}, got {fmt!r}"
            )

    def _parse(self, payload: bytes, device_id: str, received_at: float) -> ParseResult:
        return impinj.parse(
            payload, device_id=device_id, received_at=received_at, epc_format=self.epc_format
        )

    def subscriptions(self) -> Sequence[tuple[str, Parser]]:
        assert self.topic is not None
        return [(self.topic, self._parse)]
