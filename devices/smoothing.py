"""RFID presence smoothing: raw tag reads in, ``seen`` / ``gone`` events out.

A reader reports every read of every tag on every antenna, many times a second.
:class:`Smoother` turns that storm into presence windows, one per (EPC) or per
(antenna, EPC) of one reader:

- ``seen`` once, on the first read of a tag that is not present;
- repeats suppressed while the tag keeps being read;
- ``gone`` once the tag has been quiet for ``gone_after`` seconds.

**The clock is the reader's.** Windows are measured on ``reader_time``, and the
smoother's clock is the latest reader timestamp it has been shown (tag reads via
:meth:`Smoother.feed`, any other message via :meth:`Smoother.observe`). So a
backlog the reader replays after a broker outage is smoothed exactly as if it had
arrived live: tags present throughout are not announced again, and a redelivered
message (MQTT QoS 1 after a broker restart) is a no-op — including after the tag
went ``gone``, because a gone window is remembered (a *tombstone*) for
``tombstone_horizon`` reader seconds and reads at or before its last read are
ignored.

**Box-clock fallback.** When the last tag leaves a quiet field the reader may
send nothing at all, and its clock never reaches the ``gone`` deadline. So
:meth:`Smoother.tick` (called periodically with the box's monotonic clock)
extrapolates the reader clock once the reader has been silent for
``silence_timeout`` box seconds — ``reader_clock + (box_now − box_at_last_advance)``
— and closes the windows that estimate makes due. The estimate is never kept:
as soon as the reader speaks again its own timestamps are the clock. A silent
reader is ambiguous: the field may be empty, or the reader may have lost the
broker and be queueing a backlog. Closing windows early would make a replay
announce every tag again, so the default ``silence_timeout`` is long (60 s) and
readers should publish heartbeats (Zebra management events, Impinj
``inventoryStatus``), which move the clock through :meth:`Smoother.observe`.
The driver calls :meth:`Smoother.resume` on every (re)connection, so time the
box spends away from the broker never counts as the reader's silence.

Memory is bounded by ``max_tags`` windows (present + tombstones): tombstones are
evicted first, then the least recently read present tag is declared ``gone``.
A reader clock that jumps back by more than ``clock_reset`` seconds (a reboot
with a wrong clock) rebases the windows instead of suppressing every read.

The class is pure: no I/O, no clock reads, no logging; counters say what it did.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from devices.errors import DeviceConfigError
from devices.events import PresenceKind, TagPresenceEvent, TagReadEvent

Key = tuple[int | None, str]  # (antenna or None, EPC hex)


@dataclass(frozen=True, slots=True)
class SmoothingConfig:
    """How one reader's reads are smoothed (driver options of the same names)."""

    gone_after: float = 5.0  # reader seconds without a read before ``gone``
    per_antenna: bool = False  # one window per (antenna, EPC) instead of per EPC
    silence_timeout: float = 60.0  # box seconds of reader silence before the fallback
    max_tags: int = 100_000
    tombstone_horizon: float = 600.0  # reader seconds a gone window is remembered
    clock_reset: float = 3600.0  # a backwards reader-clock jump this large rebases

    def __post_init__(self) -> None:
        if not self.gone_after > 0:
            raise DeviceConfigError(f"gone_after must be > 0 seconds, got {self.gone_after}")
        if not self.silence_timeout > 0:
            raise DeviceConfigError(f"silence_timeout must be > 0, got {self.silence_timeout}")
        if self.max_tags < 1:
            raise DeviceConfigError(f"max_tags must be ≥ 1, got {self.max_tags}")
        if self.tombstone_horizon < 0 or self.clock_reset <= 0:
            raise DeviceConfigError("tombstone_horizon must be ≥ 0 and clock_reset > 0")


class _Window:
    __slots__ = ("first", "last")

    def __init__(self, first: float) -> None:
        self.first = first
        self.last = first


class Smoother:
    """Presence windows of one reader. See the module docstring for semantics."""

    def __init__(self, device_id: str, config: SmoothingConfig | None = None) -> None:
        self.device_id = device_id
        self.config = config or SmoothingConfig()
        # Both dicts are kept in order of last update, so expiry only looks at the
        # front: reads of one reader arrive in (nearly) reader-time order.
        self._present: OrderedDict[Key, _Window] = OrderedDict()
        self._tombs: OrderedDict[Key, float] = OrderedDict()  # key -> last read time
        self._clock: float | None = None  # effective reader clock, never goes back
        self._anchor_clock: float | None = None  # reader clock at the last real advance
        self._anchor_box: float | None = None  # box monotonic time of that advance
        # Counters for the dashboard and tests.
        self.suppressed = 0  # redelivered / stale reads ignored
        self.evicted = 0  # windows dropped or forced gone by max_tags
        self.clock_resets = 0

    @property
    def clock(self) -> float | None:
        """The reader clock the windows are measured against."""
        return self._clock

    @property
    def present(self) -> int:
        return len(self._present)

    def is_present(self, epc_hex: str, antenna: int | None = None) -> bool:
        return self._key(antenna, epc_hex) in self._present

    def _key(self, antenna: int | None, epc_hex: str) -> Key:
        return (antenna if self.config.per_antenna else None, epc_hex)

    def _event(self, key: Key, kind: PresenceKind, at: float) -> TagPresenceEvent:
        return TagPresenceEvent(
            device_id=self.device_id, epc_hex=key[1], kind=kind, antenna=key[0], at=at
        )

    # -- clock ---------------------------------------------------------------

    def _rebase(self, now: float) -> None:
        """The reader clock went back a long way: keep who is present, forget the rest."""
        self.clock_resets += 1
        for window in self._present.values():
            window.first = window.last = now
        self._tombs.clear()
        self._clock = now

    def _advance_real(self, reader_time: float, box_now: float | None) -> list[TagPresenceEvent]:
        clock = self._clock
        if clock is not None and reader_time < clock - self.config.clock_reset:
            self._rebase(reader_time)
            self._anchor_clock, self._anchor_box = reader_time, box_now
            return []
        if self._anchor_clock is None or reader_time > self._anchor_clock:
            self._anchor_clock, self._anchor_box = reader_time, box_now
        return self.advance(reader_time)

    def advance(self, now_reader_time: float) -> list[TagPresenceEvent]:
        """Move the reader clock forward to ``now_reader_time``; the ``gone`` events due."""
        if self._clock is not None and now_reader_time <= self._clock:
            return []
        self._clock = now_reader_time
        return self._expire(now_reader_time)

    def _expire(self, clock: float) -> list[TagPresenceEvent]:
        deadline = clock - self.config.gone_after
        out: list[TagPresenceEvent] = []
        present, tombs = self._present, self._tombs
        while present:
            key, window = next(iter(present.items()))
            if window.last > deadline:
                break
            del present[key]
            tombs[key] = window.last
            out.append(self._event(key, PresenceKind.GONE, window.last))
        # Tombstones age on the reader's own clock only, never on an estimate.
        forget = (self._clock or clock) - self.config.gone_after - self.config.tombstone_horizon
        while tombs:
            key, last = next(iter(tombs.items()))
            if last > forget:
                break
            del tombs[key]
        return out

    def observe(self, reader_time: float, box_now: float) -> list[TagPresenceEvent]:
        """A message without tag reads still tells the reader's time (heartbeats)."""
        return self._advance_real(reader_time, box_now)

    def resume(self, box_now: float) -> None:
        """Connected (again): silence is measured from now, not from before the outage."""
        if self._clock is not None:
            self._anchor_clock, self._anchor_box = self._clock, box_now

    def tick(self, box_now: float) -> list[TagPresenceEvent]:
        """Box-clock fallback: extrapolate a silent reader's clock (see module doc)."""
        if self._anchor_clock is None or self._anchor_box is None:
            return []
        silent_for = box_now - self._anchor_box
        if silent_for < self.config.silence_timeout:
            return []
        return self._expire(self._anchor_clock + silent_for)

    # -- reads ---------------------------------------------------------------

    def feed(self, read: TagReadEvent, box_now: float | None = None) -> list[TagPresenceEvent]:
        """One raw read in; ``gone`` events the read's time made due, then its ``seen``.

        ``box_now`` is the box's monotonic clock for the silence fallback (the
        read's ``received_at`` when omitted).
        """
        t = read.reader_time if read.reader_time is not None else read.received_at
        out = self._advance_real(t, read.received_at if box_now is None else box_now)
        key = self._key(read.antenna, read.epc_hex)
        window = self._present.get(key)
        if window is not None:
            if t > window.last:
                window.last = t
                self._present.move_to_end(key)
            return out
        tomb = self._tombs.get(key)
        if tomb is not None and t <= tomb:
            self.suppressed += 1  # already reported: a redelivery or replay overlap
            return out
        assert self._clock is not None
        if t <= self._clock - self.config.gone_after:
            # A late read, for a window the reader's clock has already closed.
            if tomb is not None and t - tomb < self.config.gone_after:
                self._tombs[key] = t  # more reads of a window already reported
                self._tombs.move_to_end(key)
                return out
            # Still a fact (the tag was there): seen and gone at once.
            self._tombs[key] = t
            self._tombs.move_to_end(key)
            out.append(self._event(key, PresenceKind.SEEN, t))
            out.append(self._event(key, PresenceKind.GONE, t))
            return out
        if tomb is not None:
            del self._tombs[key]
        self._present[key] = _Window(t)
        out.append(self._event(key, PresenceKind.SEEN, t))
        self._bound(out)
        return out

    def _bound(self, out: list[TagPresenceEvent]) -> None:
        limit = self.config.max_tags
        while self._tombs and len(self._present) + len(self._tombs) > limit:
            self._tombs.popitem(last=False)
            self.evicted += 1
        while len(self._present) > limit:
            key, window = self._present.popitem(last=False)
            self.evicted += 1
            out.append(self._event(key, PresenceKind.GONE, window.last))
