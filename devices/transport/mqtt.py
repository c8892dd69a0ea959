"""MQTT transport: one persistent-session subscription per device, acknowledged
by hand after the consumer took each message.

:class:`MqttSubscription` is an async context manager over an aiomqtt 2.x
client (paho-mqtt 2.x underneath). It promises:

- **QoS 1** subscriptions and a **persistent session** (MQTT 3.1.1
  ``clean_session=False``) under a stable client id ``f"{prefix}-{device_id}"``,
  so messages published while the box is away wait in the broker;
- **manual acknowledgement**: a message's PUBACK is sent only when the caller
  calls :meth:`MqttSubscription.ack`, which drivers do after ``emit`` returned
  (after the consumer's SQLite commit). A crash before that makes the broker
  redeliver — at least once, never lost. aiomqtt 2.5 has no public switch for
  this, so the wrapper turns on paho's own ``manual_ack`` on the client aiomqtt
  wraps and sends acks through paho's ``ack(mid, qos)``;
- a **bounded** incoming queue with **back-pressure**: when ``queue_size``
  messages wait, the wrapper stops reading the socket until half have been
  consumed, so TCP flow control holds the broker back and nothing is dropped.
  (Mosquitto 2.0's ``max_inflight_messages`` does not bound what it sends to a
  subscriber that keeps acknowledging — measured: 3,000 unacknowledged
  messages in flight with a limit of 100 — so the broker cannot be relied on
  for this.) Should the queue overflow anyway, the subscription fails with
  :class:`~devices.errors.DeviceDisconnectedError` so that the reconnect makes
  the broker redeliver what aiomqtt had to drop;
- broker loss, refused credentials or a failed subscription surface as
  :class:`~devices.errors.DeviceDisconnectedError` raised ``from`` the MQTT
  error; it never reconnects by itself (the supervisor does);
- **TLS** when ``settings.tls``: the broker's certificate and host name are
  always verified (``tls_ca_file``, else the system's CAs; TLS 1.2 or newer),
  a client certificate is presented when configured; an untrusted broker
  fails the connect with a message that says so. Unusable TLS files are a
  :class:`~devices.errors.DeviceConfigError`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from common.tls import TlsConfigError, client_context, describe_verify_error
from devices.driver import MqttSettings
from devices.errors import DeviceConfigError, DeviceDisconnectedError

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000
READ_BUDGET = 256  # packets read per readable-socket callback


@dataclass(frozen=True, slots=True)
class MqttMessage:
    """One received message; pass it back to :meth:`MqttSubscription.ack`."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool
    received_at: float  # box wall clock, informational
    received_mono: float  # box monotonic clock, for latency and silence


def client_id(settings: MqttSettings, device_id: str) -> str:
    """The stable client id that keeps one device's persistent session."""
    return f"{settings.client_id_prefix}-{device_id}"


class _OverflowQueue(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's bounded queue: pauses the socket when full, remembers drops."""

    overflowed = False
    on_full: Callable[[], None] | None = None

    def put_nowait(self, item: aiomqtt.Message) -> None:
        try:
            super().put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            raise
        if self.full() and self.on_full is not None:
            self.on_full()


class MqttSubscription:
    """Connect, subscribe with QoS 1 on a persistent session, iterate, ack by hand."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        device_id: str,
        topics: Sequence[str],
        qos: int = 1,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        keepalive: int = 30,
        timeout: float = 10.0,
    ) -> None:
        if not topics:
            raise DeviceConfigError(f"device {device_id!r}: no MQTT topic configured")
        if qos not in (0, 1):
            raise DeviceConfigError(f"device {device_id!r}: qos must be 0 or 1, got {qos}")
        if queue_size < 1:
            raise DeviceConfigError(f"device {device_id!r}: queue_size must be ≥ 1")
        self.settings = settings
        self.device_id = device_id
        self.client_id = client_id(settings, device_id)
        self.topics = tuple(topics)
        self.qos = qos
        self.queue_size = queue_size
        self.keepalive = keepalive
        self.timeout = timeout
        self._client: aiomqtt.Client | None = None
        self._queue: _OverflowQueue | None = None
        self._reader: tuple[int, Callable[[], None]] | None = None
        self._paused = False
        self.pauses = 0  # times the socket was paused for back-pressure

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port} as {self.client_id}"

    async def __aenter__(self) -> MqttSubscription:
        queue_size = self.queue_size
        created: list[_OverflowQueue] = []

        def make_queue(maxsize: int = 0) -> _OverflowQueue:
            queue = _OverflowQueue(maxsize=queue_size)
            queue.on_full = self._pause
            created.append(queue)
            return queue

        client = aiomqtt.Client(
            self.settings.host,
            self.settings.port,
            tls_context=self._tls_context(),
            username=self.settings.username,
            password=self.settings.password,
            identifier=self.client_id,
            clean_session=False,
            keepalive=self.keepalive,
            timeout=self.timeout,
            queue_type=make_queue,  # type: ignore[arg-type]  # a factory with Queue's signature
            max_queued_incoming_messages=queue_size,
            logger=logging.getLogger("devices.transport.mqtt.paho"),
        )
        # aiomqtt 2.5 exposes no manual-ack switch; paho (which it wraps) has one.
        # With it on, paho sends no PUBACK until ack(mid, qos) is called.
        client._client.manual_ack_set(True)
        if not log.isEnabledFor(logging.DEBUG):
            # paho's per-packet debug logging costs ~5 % of a message; errors
            # still surface as exceptions.
            client._client.disable_logger()
        # Our own socket reader (instead of aiomqtt's) so that it can be paused.
        client._client.on_socket_open = self._socket_opened(client)
        # aiomqtt registers the writer through call_soon_threadsafe on every
        # queued packet, i.e. a self-pipe write per PUBACK; on the loop's own
        # thread, register it directly (measured: ~30 % of the per-message cost).
        client._client.on_socket_register_write = self._writer_registrar(client)
        try:
            await client.__aenter__()
        except (aiomqtt.MqttError, OSError) as exc:
            # aiomqtt raises its own error "from None"; the ssl error is its context
            untrusted = describe_verify_error(exc)
            why = f"{untrusted}; check [mqtt] tls_ca_file" if untrusted else str(exc)
            raise DeviceDisconnectedError(f"MQTT connect to {self._where()} failed: {why}") from exc
        self._client = client
        self._queue = created[0] if created else None
        try:
            for topic in self.topics:
                granted = await client.subscribe(topic, qos=self.qos)
                if any(g.is_failure if isinstance(g, ReasonCode) else g >= 0x80 for g in granted):
                    raise DeviceDisconnectedError(
                        f"broker refused subscription to {topic!r} for {self.client_id}"
                    )
        except aiomqtt.MqttError as exc:
            await self._close()
            raise DeviceDisconnectedError(
                f"MQTT subscribe on {self._where()} failed: {exc}"
            ) from exc
        except BaseException:
            await self._close()
            raise
        return self

    def _tls_context(self) -> ssl.SSLContext | None:
        """Built on each connect, so renewed certificates are picked up."""
        s = self.settings
        if not s.tls:
            return None
        try:
            return client_context(s.tls_ca_file, cert_file=s.tls_cert_file, key_file=s.tls_key_file)
        except TlsConfigError as exc:
            raise DeviceConfigError(f"MQTT TLS for {self.client_id}: {exc}") from exc

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.__aexit__(None, None, None)
        except (aiomqtt.MqttError, OSError) as exc:
            # Closing a connection the broker already dropped: nothing to save.
            log.debug("closing MQTT client %s: %s", self.client_id, exc)

    def _socket_opened(self, client: aiomqtt.Client) -> Callable[[paho.Client, Any, Any], None]:
        """paho's on_socket_open, as aiomqtt 2.5 implements it, with a pausable reader."""
        loop = client._loop

        def opened(paho_client: paho.Client, userdata: Any, sock: Any) -> None:
            def readable() -> None:
                # paho's loop_read() takes one packet per call, i.e. one event
                # loop round per message; read what the socket holds, up to a
                # budget, and stop as soon as back-pressure pauses us.
                try:
                    for _ in range(READ_BUDGET):
                        if self._paused:
                            break
                        rc = paho_client._packet_read()
                        if rc == paho.MQTT_ERR_AGAIN:
                            break
                        if rc > 0:
                            paho_client._loop_rc_handle(rc)
                            break
                except Exception as exc:  # a broken pipe: the connection is gone
                    if not client._disconnected.done():
                        client._disconnected.set_exception(exc)

            def start_misc() -> None:
                client._misc_task = loop.create_task(client._misc_loop())

            self._reader = (sock.fileno(), readable)
            self._paused = False
            # paho calls this from the executor thread that runs connect().
            loop.call_soon_threadsafe(loop.add_reader, sock.fileno(), readable)
            loop.call_soon_threadsafe(start_misc)

        return opened

    def _writer_registrar(self, client: aiomqtt.Client) -> Callable[[paho.Client, Any, Any], None]:
        loop = client._loop
        loop_thread = threading.get_ident()  # __aenter__ runs on the loop's thread

        def register(paho_client: paho.Client, userdata: Any, sock: Any) -> None:
            def writable() -> None:
                try:
                    paho_client.loop_write()
                except Exception as exc:  # a broken pipe: the connection is gone
                    if not client._disconnected.done():
                        client._disconnected.set_exception(exc)

            if threading.get_ident() == loop_thread:
                loop.add_writer(sock.fileno(), writable)
            else:  # paho's connect() runs in an executor thread
                loop.call_soon_threadsafe(loop.add_writer, sock.fileno(), writable)

        return register

    def _pause(self) -> None:
        """The queue is full: stop reading the socket (TCP holds the broker back)."""
        if self._reader is not None and not self._paused and self._client is not None:
            self._client._loop.remove_reader(self._reader[0])
            self._paused = True
            self.pauses += 1

    def _maybe_resume(self) -> None:
        queue = self._queue
        if not self._paused or queue is None or self._client is None or self._reader is None:
            return
        if queue.qsize() <= self.queue_size // 2:
            self._paused = False
            self._client._loop.add_reader(*self._reader)
            # TLS may hold decrypted bytes the socket no longer signals
            self._client._loop.call_soon(self._reader[1])

    async def messages(self) -> AsyncIterator[MqttMessage]:
        """Received messages, in order; raises ``DeviceDisconnectedError`` on loss."""
        client = self._client
        if client is None:
            raise DeviceDisconnectedError(f"MQTT subscription {self.client_id} is not open")
        queue = self._queue
        assert queue is not None
        disconnected = client._disconnected
        while True:
            if queue.overflowed:
                raise DeviceDisconnectedError(
                    f"incoming queue of {self.client_id} overflowed ({self.queue_size}); "
                    "reconnecting so that the broker redelivers"
                )
            if disconnected.done():
                # Stop at once: what is still queued is unacknowledged and will
                # be redelivered on the next connection.
                raise DeviceDisconnectedError(
                    f"lost MQTT broker {self.settings.host}:{self.settings.port}"
                ) from disconnected.exception()
            if queue.empty():
                getter = asyncio.ensure_future(queue.get())
                either: set[asyncio.Future[Any]] = {getter, disconnected}
                try:
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    getter.cancel()
                    raise
                if not getter.done():
                    getter.cancel()
                    continue
                message = getter.result()
            else:
                message = queue.get_nowait()  # a burst: no task, no loop round
            self._maybe_resume()
            payload = message.payload
            yield MqttMessage(
                topic=message.topic.value,
                payload=payload if isinstance(payload, bytes) else _as_bytes(payload),
                qos=message.qos,
                mid=message.mid,
                retain=message.retain,
                received_at=time.time(),
                received_mono=time.monotonic(),
            )

    def ack(self, message: MqttMessage) -> None:
        """Acknowledge one message to the broker (after the consumer committed it)."""
        client = self._client
        if client is None or message.qos == 0:
            return
        rc = client._client.ack(message.mid, message.qos)
        if rc != paho.MQTT_ERR_SUCCESS:
            # The connection is gone; the broker will redeliver on reconnect.
            log.debug("PUBACK of mid %d for %s not sent: %s", message.mid, self.client_id, rc)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Publish on the same connection (used by simulators and tests)."""
        client = self._client
        if client is None:
            raise DeviceDisconnectedError(f"MQTT subscription {self.client_id} is not open")
        try:
            await client.publish(topic, payload, qos=qos)
        except aiomqtt.MqttError as exc:
            raise DeviceDisconnectedError(f"MQTT publish failed: {exc}") from exc


def _as_bytes(payload: Any) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, bytearray):
        return bytes(payload)
    return str(payload).encode()
