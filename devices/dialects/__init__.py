"""MQTT payload dialects: pure parsers from one message's bytes to typed events.

Each dialect is a function ``parse(payload, *, device_id, received_at, ...)``
returning a :class:`ParseResult`, or raising :class:`~devices.errors.FrameError`
when the payload is malformed — in which case *nothing* from that payload is
used (a half-applied batch would be worse than a dropped one). The parsers never
log, never touch the network and never read the clock: the caller passes
``received_at``.

- :mod:`devices.dialects.impinj` — Impinj IoT Device Interface ``ReaderEvent``\\s.
- :mod:`devices.dialects.zebra` — Zebra IoT Connector data and management events.
- :mod:`devices.dialects.scanner_json` — PickEdge's generic JSON for scanners
  publishing over MQTT (see ``docs/devices-mqtt.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.events import DeviceEvent


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What one MQTT message said.

    ``unknown`` names records the dialect recognised as well-formed but does not
    use (an event type PickEdge has no meaning for); the driver counts and logs
    them. ``reader_time`` is the latest reader timestamp in the message, which
    drives the RFID smoother's clock even when the message holds no tag read.
    """

    events: tuple[DeviceEvent, ...]
    unknown: tuple[str, ...] = ()
    reader_time: float | None = None
