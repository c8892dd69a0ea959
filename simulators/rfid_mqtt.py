"""Simulated MQTT RFID readers (Impinj IoT Device Interface, Zebra IoT Connector)
and an MQTT barcode scanner speaking PickEdge's generic JSON.

Each simulator is an async context manager that connects to a broker and, while
``rate`` > 0, publishes reads of a tag population over its antennas in the
vendor's format, byte for byte as ``shared/reference/device-formats.md`` and the
dialect modules describe. Readers can be *disconnected*: they keep reading and
queue the messages (bounded like a real reader's queue — Zebra documents 66,000),
and on :meth:`ReaderSim.reconnect` replay the backlog as fast as the broker takes
it, then go live again. Fault modes inject malformed JSON, truncated payloads,
unknown event types and bursts, by probability or on demand.

Python API (tests, benchmarks)::

    async with ImpinjReaderSim(settings, reader_id="r1", topic="impinj/r1/events",
                               tags=50, antennas=4, rate=200) as reader:
        reader.disconnect(); reader.fill_backlog(66_000); await reader.reconnect()
        await reader.pass_portal(["106141412345678908"], company_prefix_digits=7)

``pickedge sim impinj|zebra|mqtt-scanner`` wraps them (:mod:`simulators.mqtt_cli`).
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from types import TracebackType

import aiomqtt

from devices.codes.epc import SSCC_FILTER_FULL_CASE, encode_sscc96
from devices.driver import MqttSettings

log = logging.getLogger(__name__)

FAULT_KINDS = ("malformed", "truncate", "unknown")
ZEBRA_BACKLOG = 66_000  # messages a Zebra IoT Connector reader queues offline


@dataclass(frozen=True, slots=True)
class SimRead:
    """One simulated tag read."""

    epc_hex: str
    antenna: int
    rssi_dbm: float
    at: float  # the reader's clock, unix seconds


def make_epcs(count: int, *, seed: int = 0, start: int = 0) -> list[str]:
    """Distinct SGTIN-96-looking EPCs (header 0x30), deterministic per seed."""
    rng = random.Random(seed)
    company = rng.randrange(1 << 20)
    return [f"3034{company:06X}{(start + i):014X}" for i in range(count)]


def portal_pass(
    epcs: Sequence[str],
    *,
    start: float,
    rng: random.Random,
    antennas: int = 4,
    gap: float = 0.4,
    dwell: float = 1.5,
    reads_per_antenna: int = 3,
) -> list[SimRead]:
    """The reads of tags carried through a dock door portal, in time order.

    Tag *i* enters the field at ``start + i * gap`` and stays ``dwell`` seconds;
    each of the ``antennas`` reads it 1 to ``2 * reads_per_antenna - 1`` times
    at random moments meanwhile (a portal's antennas face each other across the
    door, so all of them see a passing carton, repeatedly). Timestamps are
    strictly increasing: smoothing keys on the reader's time.
    """
    reads: list[SimRead] = []
    for i, epc in enumerate(epcs):
        entry = start + i * gap
        for antenna in range(1, antennas + 1):
            for _ in range(rng.randint(1, max(1, 2 * reads_per_antenna - 1))):
                at = entry + rng.uniform(0.0, dwell)
                rssi = round(rng.uniform(-70.0, -45.0), 1)
                reads.append(SimRead(epc_hex=epc, antenna=antenna, rssi_dbm=rssi, at=at))
    reads.sort(key=lambda r: r.at)
    last = start - 1e-6
    for k, read in enumerate(reads):
        last = max(read.at, last + 1e-6)
        reads[k] = SimRead(read.epc_hex, read.antenna, read.rssi_dbm, last)
    return reads


def iso_impinj(at: float) -> str:
    """Impinj's timestamp: UTC, nine fractional digits, ``Z``."""
    ns = round(at * 1_000_000_000)
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"


def iso_zebra(at: float, offset_minutes: int = 0) -> str:
    """Zebra's timestamp: milliseconds and a colon-less offset (``+0000``, ``-0600``)."""
    tz = timezone(timedelta(minutes=offset_minutes))
    ms = round(at * 1000)
    moment = datetime.fromtimestamp(ms // 1000, tz)
    sign = "-" if offset_minutes < 0 else "+"
    hh, mm = divmod(abs(offset_minutes), 60)
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{ms % 1000:03d}{sign}{hh:02d}{mm:02d}"


class _MqttPublisher:
    """A plain (clean-session) publishing client shared by the simulators."""

    def __init__(self, settings: MqttSettings, client_id: str, qos: int) -> None:
        self.settings = settings
        self.client_id = client_id
        self.qos = qos
        self.client: aiomqtt.Client | None = None

    async def open(self) -> None:
        self.client = aiomqtt.Client(
            self.settings.host,
            self.settings.port,
            username=self.settings.username,
            password=self.settings.password,
            identifier=self.client_id,
            max_inflight_messages=1000,
            timeout=30,
        )
        # A simulated reader pipelines thousands of QoS 1 publishes on purpose.
        self.client.pending_calls_threshold = 1 << 30
        await self.client.__aenter__()

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await client.__aexit__(None, None, None)

    async def publish(self, topic: str, payload: bytes) -> None:
        if self.client is None:
            raise ConnectionError(f"simulator {self.client_id} is not connected")
        await self.client.publish(topic, payload, qos=self.qos)

    async def publish_many(self, items: Iterable[tuple[str, bytes]]) -> int:
        """Pipeline many publishes straight into paho (a replaying reader sends as
        fast as the broker takes them), then wait for every PUBACK."""
        if self.client is None:
            raise ConnectionError(f"simulator {self.client_id} is not connected")
        paho_client = self.client._client
        infos = [paho_client.publish(topic, payload, qos=self.qos) for topic, payload in items]
        for info in infos:
            while not info.is_published():
                if info.rc != 0:
                    raise ConnectionError(f"publish failed: rc {info.rc}")
                await asyncio.sleep(0.002)
        return len(infos)


class ReaderSim(abc.ABC):
    """Base of the RFID reader simulators; subclasses format payloads."""

    default_batch = 1

    def __init__(
        self,
        settings: MqttSettings,
        *,
        reader_id: str,
        topic: str,
        tags: int | Sequence[str] = 50,
        antennas: int = 4,
        rate: float = 200.0,
        batch: int | None = None,
        qos: int = 1,
        seed: int = 0,
        churn: float = 0.0,
        faults: Mapping[str, float] | None = None,
        max_backlog: int = ZEBRA_BACKLOG,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for kind in faults or {}:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
        self.settings = settings
        self.reader_id = reader_id
        self.topic = topic
        self.antennas = antennas
        self.rate = rate
        self.batch = batch or self.default_batch
        self.churn = churn
        self.faults = dict(faults or {})
        self.clock = clock
        self.rng = random.Random(seed)
        self.population = list(tags) if not isinstance(tags, int) else make_epcs(tags, seed=seed)
        self._next_tag = len(self.population)
        self._seed = seed
        self.max_backlog = max_backlog
        self.backlog: deque[tuple[str, bytes]] = deque()
        self.dropped = 0  # messages lost because the offline queue was full
        self.connected = True
        self.published = 0  # messages handed to the broker
        self.reads_published = 0
        self.faults_published = 0
        self._last_at = 0.0
        # When the first read of each tag was handed to the client (wall clock):
        # latency references for benchmarks, independent of reader timestamps.
        self.first_sent: dict[str, float] = {}
        self._ever_read: set[str] = set()
        self._pub = _MqttPublisher(settings, f"sim-{reader_id}-{seed}", qos)
        self._task: asyncio.Task[None] | None = None

    # -- formats (subclasses) ------------------------------------------------

    @abc.abstractmethod
    def payload(self, reads: Sequence[SimRead]) -> bytes:
        """One message carrying ``reads`` in the reader's format."""

    @abc.abstractmethod
    def unknown_payload(self, at: float) -> bytes:
        """A well-formed message of an event type the box does not know."""

    # -- lifecycle -----------------------------------------------------------

    async def __aenter__(self) -> ReaderSim:
        await self._pub.open()
        if self.rate > 0:
            self._task = asyncio.create_task(self._generate(), name=f"sim-{self.reader_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        await self._pub.close()

    async def stop(self) -> None:
        """Stop generating reads (the connection stays)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- reads ---------------------------------------------------------------

    def now(self) -> float:
        # The reader's clock never repeats a timestamp: smoothing keys on it.
        at = max(self.clock(), self._last_at + 1e-6)
        self._last_at = at
        return at

    def read(
        self, epc_hex: str | None = None, antenna: int | None = None, *, at: float | None = None
    ) -> SimRead:
        if at is None:
            at = self.now()
        else:
            self._last_at = max(self._last_at, at)
        return SimRead(
            epc_hex=epc_hex or self.rng.choice(self.population),
            antenna=antenna or self.rng.randint(1, self.antennas),
            rssi_dbm=round(self.rng.uniform(-75.0, -40.0), 1),
            at=at,
        )

    async def pass_portal(
        self,
        ssccs: Sequence[str],
        *,
        company_prefix_digits: int,
        filter_value: int = SSCC_FILTER_FULL_CASE,
        gap: float = 0.4,
        dwell: float = 1.5,
        reads_per_antenna: int = 3,
    ) -> list[SimRead]:
        """Carry cartons with these SSCCs through the portal: their SSCC-96 tags
        are read as :func:`portal_pass` describes, from now on the reader's
        clock, and published at once in messages of ``batch`` reads (queued
        while disconnected). Returns the reads."""
        epcs = [
            encode_sscc96(s, company_prefix_digits=company_prefix_digits, filter_value=filter_value)
            for s in ssccs
        ]
        reads = portal_pass(
            epcs,
            start=self.now(),
            rng=self.rng,
            antennas=self.antennas,
            gap=gap,
            dwell=dwell,
            reads_per_antenna=reads_per_antenna,
        )
        if reads:
            self._last_at = max(self._last_at, reads[-1].at)
        for k in range(0, len(reads), self.batch):
            await self.publish_reads(reads[k : k + self.batch])
        return reads

    def churn_one(self) -> tuple[str, str]:
        """One tag leaves the field and a new one enters; (gone, new) EPCs."""
        index = self.rng.randrange(len(self.population))
        old = self.population[index]
        (new,) = make_epcs(1, seed=self._seed, start=self._next_tag)
        self._next_tag += 1
        self.population[index] = new
        return old, new

    async def publish_reads(self, reads: Sequence[SimRead], topic: str | None = None) -> None:
        """Publish (or queue while disconnected) one message holding ``reads``."""
        await self.send(self.payload(reads), topic=topic, reads=len(reads))

    async def send(self, payload: bytes, *, topic: str | None = None, reads: int = 0) -> None:
        target = topic or self.topic
        if not self.connected:
            if len(self.backlog) >= self.max_backlog:
                self.backlog.popleft()  # the reader's queue is full: oldest lost
                self.dropped += 1
            self.backlog.append((target, payload))
            return
        await self._pub.publish(target, payload)
        self.published += 1
        self.reads_published += reads

    async def publish_fault(self, kind: str) -> bytes:
        """Publish one faulty message of ``kind`` (see ``FAULT_KINDS``); returns it."""
        at = self.now()
        if kind == "malformed":
            payload = b'{"timestamp": "' + iso_impinj(at).encode() + b'", oops'
        elif kind == "truncate":
            full = self.payload([self.read()])
            payload = full[: max(1, len(full) // 2)]
        elif kind == "unknown":
            payload = self.unknown_payload(at)
        else:
            raise ValueError(f"unknown fault {kind!r}")
        await self.send(payload)
        self.faults_published += 1
        return payload

    async def burst(self, messages: int) -> None:
        """Publish ``messages`` messages of ``batch`` reads back to back."""
        await self._publish_many(
            (self.payload([self.read() for _ in range(self.batch)]) for _ in range(messages)),
            reads_each=self.batch,
        )

    async def _publish_many(self, payloads: Iterable[bytes], *, reads_each: int) -> None:
        pending: set[asyncio.Task[None]] = set()
        for payload in payloads:
            if not self.connected:
                await self.send(payload, reads=reads_each)
                continue
            pending.add(asyncio.create_task(self._pub.publish(self.topic, payload)))
            self.published += 1
            self.reads_published += reads_each
            if len(pending) >= 500:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.gather(*pending)

    async def _generate(self) -> None:
        interval = 0.01
        owed = 0.0
        churn_owed = 0.0
        last = time.monotonic()
        last_wall = self.clock()
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            wall = self.clock()
            owed += (now - last) * self.rate
            churn_owed += (now - last) * self.churn
            last = now
            while churn_owed >= 1.0:
                churn_owed -= 1.0
                self.churn_one()
            count = int(owed // self.batch)
            owed -= count * self.batch
            # A reader reads continuously: spread the reads owed since the last
            # tick over that interval, so a stalled simulator (a busy CPU) does
            # not leave a gap in the reader's clock that smoothing would take
            # for every tag leaving the field.
            total = count * self.batch
            messages: list[bytes] = []
            first: list[str] = []
            k = 0
            for _ in range(count):
                reads = []
                for _ in range(self.batch):
                    k += 1
                    at = last_wall + (wall - last_wall) * k / total
                    read = self.read(at=max(at, self._last_at + 1e-6))
                    if read.epc_hex not in self._ever_read:
                        self._ever_read.add(read.epc_hex)
                        first.append(read.epc_hex)
                    reads.append(read)
                messages.append(self._maybe_fault(reads))
            last_wall = wall
            if messages:
                sent = time.time()
                for epc in first:
                    self.first_sent[epc] = sent
                await self._publish_many(messages, reads_each=self.batch)

    def _maybe_fault(self, reads: Sequence[SimRead]) -> bytes:
        payload = self.payload(reads)
        for kind, probability in self.faults.items():
            if probability and self.rng.random() < probability:
                self.faults_published += 1
                if kind == "malformed":
                    return payload.replace(b'"', b"'", 3)
                if kind == "truncate":
                    return payload[: max(1, len(payload) // 2)]
                return self.unknown_payload(reads[0].at)
        return payload

    # -- offline queue and replay ---------------------------------------------

    def disconnect(self) -> None:
        """Lose the broker: keep reading, queue messages (bounded), publish nothing."""
        self.connected = False

    def fill_backlog(self, messages: int, *, batch: int | None = None) -> None:
        """Queue ``messages`` messages of ``batch`` reads, as if read while offline.

        Their reader timestamps run evenly from the last read before the outage
        to now, as a reader that kept reading would have stamped them.
        """
        per_message = batch or self.batch
        total = messages * per_message
        start = self._last_at or self.clock()
        end = max(self.clock(), start + total * 1e-6)
        k = 0
        for _ in range(messages):
            reads = []
            for _ in range(per_message):
                k += 1
                reads.append(self.read(at=start + (end - start) * k / total))
            if len(self.backlog) >= self.max_backlog:
                self.backlog.popleft()
                self.dropped += 1
            self.backlog.append((self.topic, self.payload(reads)))

    async def reconnect(self, *, reopen: bool = False) -> int:
        """Broker back: replay the backlog in order as fast as it is taken; go live.

        ``reopen`` makes a new connection first (after the broker itself
        restarted). Returns the number of messages replayed.
        """
        if reopen:
            await self._pub.close()
            await self._pub.open()
        replayed = 0
        # Until empty: a reader that keeps reading while it replays queues more
        # behind the backlog, and that goes out too, in order.
        while self.backlog:
            chunk = [self.backlog.popleft() for _ in range(min(len(self.backlog), 5000))]
            replayed += await self._pub.publish_many(chunk)
        self.published += replayed
        self.connected = True
        return replayed


class ImpinjReaderSim(ReaderSim):
    """Impinj R700 with the IoT Device Interface: ``ReaderEvent`` JSON.

    ``batch`` = 1 sends one ``ReaderEvent`` object per message (the reader's
    default); more sends a JSON array of them. ``epc_hex=True`` adds ``epcHex``
    as when that option is enabled on the reader.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        hostname: str | None = None,
        epc_hex: bool = False,
        **kw: object,
    ) -> None:
        super().__init__(settings, **kw)  # type: ignore[arg-type]
        if hostname is None:
            octets = "-".join(f"{self.rng.randrange(256):02x}" for _ in range(3))
            hostname = f"impinj-{octets}"
        self.hostname = hostname
        self.epc_hex = epc_hex

    def event(self, read: SimRead) -> dict[str, object]:
        body: dict[str, object] = {
            "epc": base64.b64encode(bytes.fromhex(read.epc_hex)).decode(),
            "antennaPort": read.antenna,
            "antennaName": "",
            "peakRssiCdbm": round(read.rssi_dbm * 100),
            "frequency": 920250 + 500 * self.rng.randrange(8),
            "transmitPowerCdbm": 3000,
        }
        if self.epc_hex:
            body["epcHex"] = read.epc_hex
        return {
            "timestamp": iso_impinj(read.at),
            "hostname": self.hostname,
            "eventType": "tagInventory",
            "tagInventoryEvent": body,
        }

    def payload(self, reads: Sequence[SimRead]) -> bytes:
        events = [self.event(r) for r in reads]
        doc: object = events[0] if len(events) == 1 else events
        return json.dumps(doc, separators=(",", ":")).encode()

    def state_payload(self, event_type: str, body: Mapping[str, object]) -> bytes:
        """An ``inventoryStatus`` / ``antennaConnected`` / ``overflow`` … event."""
        doc = {
            "timestamp": iso_impinj(self.now()),
            "hostname": self.hostname,
            "eventType": event_type,
            f"{event_type}Event": dict(body),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def unknown_payload(self, at: float) -> bytes:
        doc = {
            "timestamp": iso_impinj(at),
            "hostname": self.hostname,
            "eventType": "gpiTransition",
            "gpiTransitionEvent": {"gpi": 1, "transition": "high-to-low"},
        }
        return json.dumps(doc, separators=(",", ":")).encode()


class ZebraReaderSim(ReaderSim):
    """Zebra FX9600 with the IoT Connector: ``{"data","timestamp","type"}`` records.

    Messages are JSON arrays of ``batch`` records (one object when ``batch`` is 1);
    management events go to ``events_topic``.
    """

    default_batch = 10

    def __init__(
        self,
        settings: MqttSettings,
        *,
        events_topic: str | None = None,
        mode: str = "SIMPLE",
        utc_offset_minutes: int = 0,
        **kw: object,
    ) -> None:
        super().__init__(settings, **kw)  # type: ignore[arg-type]
        self.events_topic = events_topic
        self.mode = mode
        self.utc_offset_minutes = utc_offset_minutes
        self.event_num = 0

    def record(self, read: SimRead) -> dict[str, object]:
        self.event_num += 1
        return {
            "data": {
                "eventNum": self.event_num,
                "format": "epc",
                "idHex": read.epc_hex.lower(),
                "antenna": read.antenna,
                "peakRssi": round(read.rssi_dbm),
                "reads": 1,
            },
            "timestamp": iso_zebra(read.at, self.utc_offset_minutes),
            "type": self.mode,
        }

    def payload(self, reads: Sequence[SimRead]) -> bytes:
        records = [self.record(r) for r in reads]
        doc: object = records[0] if len(records) == 1 else records
        return json.dumps(doc, separators=(",", ":")).encode()

    def heartbeat_payload(self) -> bytes:
        doc = {
            "data": {"radioConnection": "connected", "temperature": 41, "ntp": {"offset": 0}},
            "timestamp": iso_zebra(self.now(), self.utc_offset_minutes),
            "type": "heartbeat",
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def unknown_payload(self, at: float) -> bytes:
        doc = {
            "data": {"eventNum": 0, "format": "epc", "idHex": "e200"},
            "timestamp": iso_zebra(at, self.utc_offset_minutes),
            "type": "LOCATIONING",
        }
        return json.dumps(doc, separators=(",", ":")).encode()


class MqttScannerSim:
    """A fixed scanner publishing PickEdge's generic JSON (one scan per message)."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        scanner_id: str,
        topic: str,
        qos: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topic = topic
        self.clock = clock
        self.published = 0
        self._pub = _MqttPublisher(settings, f"sim-{scanner_id}", qos)

    async def __aenter__(self) -> MqttScannerSim:
        await self._pub.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._pub.close()

    @staticmethod
    def payload(code: str, symbology: str | None = None, ts: float | None = None) -> bytes:
        doc: dict[str, object] = {"code": code}
        if symbology is not None:
            doc["symbology"] = symbology
        if ts is not None:
            doc["ts"] = ts
        return json.dumps(doc, separators=(",", ":")).encode()

    async def scan(self, code: str, symbology: str | None = None) -> None:
        await self._pub.publish(self.topic, self.payload(code, symbology, round(self.clock(), 3)))
        self.published += 1

    async def send_raw(self, payload: bytes, topic: str | None = None) -> None:
        await self._pub.publish(topic or self.topic, payload)
