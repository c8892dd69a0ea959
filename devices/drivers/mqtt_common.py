"""What the MQTT drivers share: option checking, the receive → parse → emit → ack
loop, per-device counters, log-once for bad input, and RFID smoothing.

A driver subclass names its options and routes a message's topic to one of its
dialect parsers. The loop here guarantees, per message: it is counted in
``stats.frames``; a malformed payload, an unknown topic or an unknown event type
is counted in ``stats.bad_frames`` and logged at WARNING once per device and
kind (later ones at DEBUG) — never raised; every event it yields is ``emit``-ed,
and only then is the message acknowledged to the broker.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from aiomqtt import Topic

from devices.dialects import ParseResult
from devices.driver import DeviceSpec, DeviceStats, Emit, MqttSettings
from devices.errors import DeviceConfigError, DeviceDisconnectedError, FrameError
from devices.events import (
    DeviceEvent,
    DeviceState,
    DeviceStateEvent,
    ScanEvent,
    TagReadEvent,
)
from devices.smoothing import Smoother, SmoothingConfig
from devices.transport.mqtt import DEFAULT_QUEUE_SIZE, MqttMessage, MqttSubscription

log = logging.getLogger(__name__)

Parser = Callable[[bytes, str, float], ParseResult]
_MISSING = object()


def _number(name: str, value: object, *, minimum: float = 0.0, integer: bool = False) -> float:
    ok_types: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types) or value <= minimum:  # type: ignore[operator]
        kind = "an integer" if integer else "a number"
        raise DeviceConfigError(f"option {name!r} must be {kind} > {minimum:g}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def message_key(message: MqttMessage, index: int) -> str:
    """The identity of the ``index``-th scan of ``message`` across a redelivery.

    A QoS 1 message the broker sends again (the box crashed after committing
    what it said and before acknowledging it) comes with the same packet id
    and the same payload; the broker hands out packet ids in sequence per
    session (Mosquitto increments them, wrapping at 65,535) and reuses one only
    after the earlier message with it was acknowledged. So (packet id, payload
    digest, index) names one message among the recent ones: the same barcode
    scanned again arrives under another packet id. The consumer keeps keys for
    a bounded time (an hour of uptime, far below 65,535 scans of one device)
    so a wrapped id cannot collide. QoS 0 messages are never redelivered: no key.
    """
    digest = hashlib.blake2b(message.payload, digest_size=8).hexdigest()
    return f"mqtt:{message.mid}:{digest}:{index}"


def _keyed(event: DeviceEvent, message: MqttMessage, index: int) -> DeviceEvent:
    if isinstance(event, ScanEvent) and message.qos > 0:
        return dataclasses.replace(event, key=message_key(message, index))
    return event


class MqttDriverBase(abc.ABC):
    """Base of the MQTT drivers; subclasses set ``OPTIONS`` and ``route``."""

    COMMON_OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {"topic", "qos", "queue_size", "keepalive"}
    )
    OPTIONS: ClassVar[frozenset[str]] = frozenset()

    spec: DeviceSpec
    stats: DeviceStats

    def __init__(self, spec: DeviceSpec, *, mqtt: MqttSettings) -> None:
        self.check_options(spec.options)
        self.spec = spec
        self.stats = DeviceStats()
        self.mqtt = mqtt
        self._logged: set[str] = set()
        self._lock = asyncio.Lock()
        opts = spec.options
        self._routes: list[tuple[Topic, Parser]] | None = None
        self._route_cache: dict[str, object] = {}
        self.qos = int(opts.get("qos", 1))
        self.queue_size = int(opts.get("queue_size", DEFAULT_QUEUE_SIZE))
        self.keepalive = int(opts.get("keepalive", 30))

    # -- configuration ---------------------------------------------------------

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        allowed = cls.COMMON_OPTIONS | cls.OPTIONS
        for name in options:
            if name not in allowed:
                known = ", ".join(sorted(allowed))
                raise DeviceConfigError(f"unknown option {name!r} (known: {known})")
        for name in ("topic", *(n for n in cls.OPTIONS if n.endswith("_topic"))):
            value = options.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                raise DeviceConfigError(f"option {name!r} must be a non-empty MQTT topic filter")
        if "qos" in options and options["qos"] not in (0, 1):
            raise DeviceConfigError(f"option 'qos' must be 0 or 1, got {options['qos']!r}")
        if "queue_size" in options:
            _number("queue_size", options["queue_size"], integer=True)
        if "keepalive" in options:
            _number("keepalive", options["keepalive"], integer=True, minimum=4)

    def _topic(self, option: str = "topic", *, required: bool = True) -> str | None:
        value = self.spec.options.get(option)
        if option == "topic" and value is None:
            value = self.spec.topic
        if value is None and required:
            raise DeviceConfigError(
                f"device {self.spec.id!r}: driver {self.spec.driver!r} needs a topic"
            )
        return str(value) if value is not None else None

    @abc.abstractmethod
    def subscriptions(self) -> Sequence[tuple[str, Parser]]:
        """(topic filter, parser) pairs; the first matching filter wins."""

    # -- bad input -------------------------------------------------------------

    def _bad(self, kind: str, detail: str, message: MqttMessage) -> None:
        self.stats.bad_frames += 1
        self.stats.last_error = f"{kind}: {detail}"
        snippet = message.payload[:60]
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning(
                "device %s: %s on topic %r: %s (payload %d bytes, starts %r); "
                "further %s messages of this device are counted, not logged",
                self.spec.id,
                kind,
                message.topic,
                detail,
                len(message.payload),
                snippet,
                kind,
            )
        else:
            log.debug("device %s: %s on %r: %s", self.spec.id, kind, message.topic, detail)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("device %s payload hex: %s", self.spec.id, message.payload[:512].hex())

    # -- the loop --------------------------------------------------------------

    def route(self, topic: str) -> Parser | None:
        """The parser of the first configured filter matching ``topic``."""
        cached = self._route_cache.get(topic, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        routes = self._routes
        if routes is None:
            routes = self._routes = [(Topic(f), p) for f, p in self.subscriptions()]
        found: Parser | None = None
        for topic_filter, parser in routes:
            if topic_filter.matches(topic):
                found = parser
                break
        if len(self._route_cache) >= 1024:  # bounded: topics may carry ids
            self._route_cache.clear()
        self._route_cache[topic] = found
        return found

    def decode(self, message: MqttMessage) -> list[DeviceEvent]:
        """The events one message yields; counts and logs bad input, never raises."""
        self.stats.frames += 1
        self.stats.last_seen = message.received_at
        parser = self.route(message.topic)
        if parser is None:
            self._bad("unknown topic", "no configured topic filter matches", message)
            return []
        try:
            result = parser(message.payload, self.spec.id, message.received_at)
        except FrameError as exc:
            self._bad("malformed payload", str(exc), message)
            return []
        if result.unknown:
            self._bad("unknown event type", ", ".join(sorted(set(result.unknown))), message)
        return [_keyed(e, message, i) for i, e in enumerate(self.post_process(result, message))]

    def post_process(self, result: ParseResult, message: MqttMessage) -> list[DeviceEvent]:
        return list(result.events)

    def on_connected(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Hook: the subscription is (re)established."""

    async def background(self, emit: Emit) -> None:  # noqa: B027 - an optional hook
        """Hook: runs beside the receive loop while connected (RFID ticks)."""

    async def run(self, emit: Emit) -> None:
        subscription = MqttSubscription(
            self.mqtt,
            device_id=self.spec.id,
            topics=[f for f, _ in self.subscriptions()],
            qos=self.qos,
            queue_size=self.queue_size,
            keepalive=self.keepalive,
        )
        try:
            async with subscription as sub:
                self.stats.connected = True
                self.on_connected()
                receive = asyncio.create_task(self._receive(sub, emit))
                ticker = asyncio.create_task(self.background(emit))
                waiting = {receive, ticker}
                try:
                    # Whichever fails first (the broker, the consumer) ends the run.
                    while True:
                        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                        for task in done:
                            task.result()
                        if receive in done:
                            break
                        waiting = {receive}  # the background hook had nothing to do
                finally:
                    for task in (receive, ticker):
                        task.cancel()
                    await asyncio.gather(receive, ticker, return_exceptions=True)
        except DeviceDisconnectedError as exc:
            self.stats.last_error = str(exc)
            raise
        finally:
            self.stats.connected = False
        raise DeviceDisconnectedError(f"MQTT message stream of {self.spec.id} ended")

    async def _receive(self, sub: MqttSubscription, emit: Emit) -> None:
        async for message in sub.messages():
            async with self._lock:
                events = self.decode(message)
                for event in events:
                    await emit(event)
                self.stats.events += len(events)
            # Only now: the consumer has taken (committed) every event.
            sub.ack(message)


class RfidMqttDriverBase(MqttDriverBase):
    """An MQTT RFID reader: raw reads smoothed into ``seen`` / ``gone``."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "gone_after",
            "per_antenna",
            "silence_timeout",
            "max_tags",
            "tombstone_horizon",
            "emit_reads",
        }
    )

    def __init__(self, spec: DeviceSpec, *, mqtt: MqttSettings) -> None:
        super().__init__(spec, mqtt=mqtt)
        opts = spec.options
        self.smoothing = self.smoothing_config(opts)
        # One smoother for the driver's lifetime, across reconnects: a replay or a
        # redelivery after a reconnect must meet the windows it belongs to.
        self.smoother = Smoother(spec.id, self.smoothing)
        self.emit_reads = bool(opts.get("emit_reads", False))
        self.reads = 0  # raw tag reads decoded (a Zebra report may stand for several)

    @classmethod
    def smoothing_config(cls, options: Mapping[str, Any]) -> SmoothingConfig:
        kwargs: dict[str, Any] = {}
        for name in ("gone_after", "silence_timeout", "tombstone_horizon"):
            if name in options:
                kwargs[name] = _number(name, options[name])
        if "max_tags" in options:
            kwargs["max_tags"] = int(_number("max_tags", options["max_tags"], integer=True))
        for name in ("per_antenna",):
            if name in options:
                if not isinstance(options[name], bool):
                    raise DeviceConfigError(f"option {name!r} must be true or false")
                kwargs[name] = options[name]
        return SmoothingConfig(**kwargs)

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        super().check_options(options)
        cls.smoothing_config(options)
        if "emit_reads" in options and not isinstance(options["emit_reads"], bool):
            raise DeviceConfigError("option 'emit_reads' must be true or false")

    def post_process(self, result: ParseResult, message: MqttMessage) -> list[DeviceEvent]:
        out: list[DeviceEvent] = []
        smoother = self.smoother
        had_reads = False
        for event in result.events:
            if isinstance(event, TagReadEvent):
                had_reads = True
                self.reads += event.reads
                if self.emit_reads:
                    out.append(event)
                out.extend(smoother.feed(event, box_now=message.received_mono))
            else:
                if isinstance(event, DeviceStateEvent) and event.state is DeviceState.OVERFLOW:
                    # Reads were lost on the reader: worth a line every time.
                    log.warning("device %s: %s", self.spec.id, event.detail)
                out.append(event)
        if not had_reads and result.reader_time is not None:
            out.extend(smoother.observe(result.reader_time, message.received_mono))
        return out

    def on_connected(self) -> None:
        self.smoother.resume(time.monotonic())

    async def background(self, emit: Emit) -> None:
        period = min(1.0, self.smoothing.silence_timeout / 4)
        while True:
            await asyncio.sleep(period)
            async with self._lock:
                gone = self.smoother.tick(time.monotonic())
                for event in gone:
                    await emit(event)
                self.stats.events += len(gone)
