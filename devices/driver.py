"""What every device driver promises, and the per-device counters.

A driver owns one connection to one device for as long as ``run`` runs. It does
not reconnect: when the transport fails, ``run`` raises
:class:`~devices.errors.DeviceDisconnectedError` and the supervisor in ``edge``
decides when to call ``run`` again (capped back-off with jitter). Events go out
through ``emit``; ``run`` awaits it, so when ``emit`` returns, the consumer has
taken the event (for MQTT, the message is acknowledged to the broker only after
that, so a confirmed fact is committed before the broker forgets the message).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from devices.events import DeviceEvent, DeviceRole

Emit = Callable[[DeviceEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One ``[[devices]]`` entry of the configuration, already validated by ``edge``.

    ``url`` is a pyserial URL or path for serial devices (``/dev/ttyUSB0``,
    ``socket://host:port``, ``loop://``, a pty path); ``topic`` is the MQTT topic
    filter for MQTT devices. ``options`` holds driver-specific settings (baud
    rate, suffix, smoothing windows...); each driver validates its own.
    """

    id: str
    driver: str
    role: DeviceRole
    url: str | None = None
    topic: str | None = None
    bound_to: str | None = None  # e.g. the pack station or dock door it serves
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DeviceStats:
    """Counters one device exposes to the dashboard and to /metrics."""

    frames: int = 0
    bad_frames: int = 0
    dropped_bytes: int = 0
    events: int = 0
    reconnects: int = 0
    connected: bool = False
    last_seen: float | None = None  # box wall clock, informational
    last_error: str | None = None

    def seen(self) -> None:
        self.last_seen = time.time()


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How MQTT drivers reach the broker on the box (from ``[mqtt]``)."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None  # read from a secret file by edge, never logged
    client_id_prefix: str = "pickedge"
    #: TLS to the broker (a remote one): verified against ``tls_ca_file``, else
    #: the system's CAs; a client certificate when both its files are set
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None

    def __repr__(self) -> str:  # the password stays out of every log and traceback
        return (
            f"MqttSettings(host={self.host!r}, port={self.port}, username={self.username!r}, "
            f"password={'***' if self.password else None}, tls={self.tls})"
        )


class Driver(Protocol):
    """One small class per device family.

    Constructed as ``cls(spec, *, mqtt=MqttSettings(...))``. The class method
    ``check_options(options)`` validates ``spec.options`` at configuration time
    (raising ``DeviceConfigError`` naming the option), so a bad device option is
    reported by ``pickedge check-config`` before anything starts.
    """

    spec: DeviceSpec
    stats: DeviceStats

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None: ...

    async def run(self, emit: Emit) -> None:
        """Connect, read and emit until cancelled or the transport fails.

        Raises ``DeviceDisconnectedError`` on transport loss and
        ``DeviceConfigError`` when the spec cannot work.
        """
        ...
