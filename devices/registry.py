"""The driver registry: a plain dict from the configured ``driver`` name to the
class that implements it, imported lazily so that a box without serial ports
never imports pyserial's platform code, and a box without MQTT devices never
imports paho."""

from __future__ import annotations

import importlib
from typing import Any

from devices.driver import DeviceSpec, Driver, MqttSettings
from devices.errors import DeviceConfigError

DRIVERS: dict[str, str] = {
    # serial
    "serial-scanner": "devices.drivers.serial_scanner:SerialScannerDriver",
    "rfid-a0": "devices.drivers.rfid_a0:A0ReaderDriver",
    "rfid-m100": "devices.drivers.rfid_m100:M100ReaderDriver",
    "zpl-printer": "devices.drivers.zpl_printer:ZplPrinterDriver",
    # MQTT
    "impinj-iot": "devices.drivers.impinj:ImpinjDriver",
    "zebra-iotc": "devices.drivers.zebra:ZebraDriver",
    "mqtt-scanner": "devices.drivers.mqtt_scanner:MqttScannerDriver",
}

MQTT_DRIVERS = frozenset({"impinj-iot", "zebra-iotc", "mqtt-scanner"})


def driver_class(name: str) -> Any:
    """The class registered under ``name``; ``DeviceConfigError`` when unknown."""
    try:
        target = DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise DeviceConfigError(f"unknown driver {name!r} (known: {known})") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_driver(spec: DeviceSpec, *, mqtt: MqttSettings) -> Driver:
    """Build the driver for one configured device.

    Every driver class takes ``(spec, *, mqtt)``; serial drivers ignore ``mqtt``.
    """
    cls = driver_class(spec.driver)
    driver: Driver = cls(spec, mqtt=mqtt)
    return driver
