"""The sync-v1 wire formats: upstream batches (msgpack) and answers.

Promises:

- :func:`encode_batch_raw` builds a batch body from outbox rows whose ``data``
  is *already* msgpack (as the outbox stores it), by writing the envelope and
  each event map's header by hand and splicing the stored bytes in: no decode
  and re-encode per event. The result is an ordinary msgpack map that any
  msgpack library reads (keys ``v, box, epoch, first, last, events``; each
  event ``seq, type, at, data``). :func:`encode_batch` is the same for typed
  events (:mod:`cloud_sync.events`) or decoded rows (:class:`OutboxEvent`).
- :func:`decode_batch` accepts only a well-formed batch: the size limit, ``v``
  1, ``box`` equal to the authenticated box, a non-empty ``epoch``, ``first`` ≥ 1,
  ``events`` exactly ``first..last`` in order, every event a map with an int
  ``seq``, str ``type``, int ``at`` and map ``data``, and the ``data`` of a
  known type fitting its event class field by field
  (:func:`cloud_sync.events.decode_event`). Anything else raises
  :class:`BatchError` with a stable ``code`` (the message names the event and
  the field), which the receiver answers as 400 (or 413 for size). Unknown
  event *types* are accepted as :class:`~cloud_sync.events.UnknownEvent`: a
  newer edge may send more than an older cloud knows (the contract adds, never
  changes).
- A decoded :class:`Batch` keeps each event's map as it arrived beside its
  typed form, so what a receiver stores and digests is what the box sent.
- Answers are JSON unless the request's ``Accept`` asks for msgpack. A 200 or
  409 to a batch echoes the batch's ``epoch``, ``first`` and ``last``
  (:func:`batch_answer`, :func:`epoch_conflict_answer`), which binds a signed
  answer to its request; :func:`answer_echo` reads the echo back and
  :func:`conflict_at` the first differing seq of an ``epoch_conflict``.
- Cursors are URL-safe (``A-Z a-z 0-9 - _ .``, :func:`url_safe`), so neither
  side ever re-encodes one between signing and sending.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from cloud_sync.events import AnyEvent, EventError, UnknownEvent, decode_event

VERSION = 1
#: sync-v1 caps a batch body at 1 MiB (config ``cloud.batch_max_bytes`` ≤ this)
MAX_BATCH_BYTES = 1_048_576
MSGPACK = "application/msgpack"
JSON = "application/json"

#: one stored outbox row: (seq, type, at_ms, msgpack-encoded data)
RawEvent = tuple[int, str, int, bytes]


class BatchError(ValueError):
    """A batch that breaks sync-v1; ``code`` is stable, the message is for a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One outbox row, decoded: the unit of the upstream protocol."""

    epoch: str
    seq: int
    type: str
    at_ms: int
    data: dict[str, Any]

    @classmethod
    def of(cls, epoch: str, seq: int, event: AnyEvent, *, at_ms: int = 0) -> OutboxEvent:
        """The row of a typed event."""
        type_ = event.type if isinstance(event, UnknownEvent) else event.TYPE
        return cls(epoch, seq, type_, at_ms, event.to_data())

    def event(self) -> AnyEvent:
        """The typed event; :class:`~cloud_sync.events.EventError` when ``data``
        does not fit its type."""
        return decode_event(self.type, self.data)


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded batch: ``events[i]`` is the typed event of seq ``first + i``,
    and ``raw[i]`` its map exactly as received (``seq``, ``type``, ``at``,
    ``data``), which is what a receiver stores and digests, so a resend of the
    same bytes always matches."""

    box: str
    epoch: str
    first: int
    last: int
    events: list[AnyEvent]
    raw: list[dict[str, Any]]


_pack = msgpack.Packer(use_bin_type=True).pack
_EVENT_SEQ = b"\x84" + _pack("seq")  # fixmap of 4 keys, then the first key
_EVENT_TYPE = _pack("type")
_EVENT_AT = _pack("at")
_EVENT_DATA = _pack("data")
_type_cache: dict[str, bytes] = {}


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def batch_header(box: str, epoch: str, first: int, last: int) -> bytes:
    """The bytes of a batch map up to (and including) the ``events`` array header."""
    return b"".join(
        (
            b"\x86",  # fixmap of 6 keys
            _pack("v"),
            _pack(VERSION),
            _pack("box"),
            _pack(box),
            _pack("epoch"),
            _pack(epoch),
            _pack("first"),
            _pack(first),
            _pack("last"),
            _pack(last),
            _pack("events"),
            _array_header(last - first + 1),
        )
    )


def raw_event_size(event: RawEvent) -> int:
    """Upper bound of the bytes one event adds to a batch (for size limits)."""
    return len(event[3]) + len(event[1]) + 40


def encode_event_raw(event: RawEvent) -> bytes:
    seq, type_, at_ms, payload = event
    tb = _type_cache.get(type_)
    if tb is None:
        tb = _type_cache.setdefault(type_, _pack(type_))
    return b"".join(
        (_EVENT_SEQ, _pack(seq), _EVENT_TYPE, tb, _EVENT_AT, _pack(at_ms), _EVENT_DATA, payload)
    )


def encode_batch_raw(box: str, epoch: str, events: Sequence[RawEvent]) -> bytes:
    """A batch body from contiguous stored rows (``data`` already msgpack)."""
    if not events:
        raise ValueError("a batch holds at least one event")
    first, last = events[0][0], events[-1][0]
    if last - first + 1 != len(events):
        raise ValueError(f"events {first}..{last} are not contiguous ({len(events)} rows)")
    parts = [batch_header(box, epoch, first, last)]
    parts.extend(map(encode_event_raw, events))
    return b"".join(parts)


def encode_batch(
    box: str,
    epoch: str,
    events: Iterable[OutboxEvent | AnyEvent],
    *,
    first: int = 1,
    at_ms: int = 0,
) -> bytes:
    """A batch body from rows or typed events (same bytes as the raw path).

    An :class:`OutboxEvent` keeps its own ``seq`` and ``at_ms``; a typed event
    takes the seq after the one before it (``first`` for the first) and ``at_ms``.
    """
    rows: list[RawEvent] = []
    for e in events:
        seq = rows[-1][0] + 1 if rows else first
        if isinstance(e, OutboxEvent):
            rows.append((e.seq, e.type, e.at_ms, _pack(e.data)))
        elif isinstance(e, UnknownEvent):
            rows.append((seq, e.type, at_ms, _pack(e.to_data())))
        else:
            rows.append((seq, e.TYPE, at_ms, _pack(e.to_data())))
    return encode_batch_raw(box, epoch, rows)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_batch(body: bytes, *, box: str, max_bytes: int = MAX_BATCH_BYTES) -> Batch:
    """Parse and validate a batch body sent by ``box``; raise :class:`BatchError`."""
    if len(body) > max_bytes:
        raise BatchError("batch_too_large", f"{len(body)} bytes, the limit is {max_bytes}")
    try:
        doc = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types on junk
        raise BatchError("malformed", f"not a msgpack document: {exc}") from None
    if not isinstance(doc, dict):
        raise BatchError("malformed", "the batch is not a map")
    if doc.get("v") != VERSION:
        raise BatchError("unsupported_version", f"v must be {VERSION}, not {doc.get('v')!r}")
    if doc.get("box") != box:
        raise BatchError("box_mismatch", "box differs from X-Box-Id")
    epoch: Any = doc.get("epoch")
    first: Any = doc.get("first")
    last: Any = doc.get("last")
    events: Any = doc.get("events")
    if not isinstance(epoch, str) or not epoch:
        raise BatchError("malformed", "epoch must be a non-empty string")
    if not (_int(first) and _int(last)) or first < 1 or last < first:
        raise BatchError("malformed", "first and last must be ints with 1 <= first <= last")
    if not isinstance(events, list) or len(events) != last - first + 1:
        raise BatchError("not_contiguous", f"events must hold exactly seqs {first}..{last}")
    typed: list[AnyEvent] = []
    # A broken envelope anywhere outranks a data map that does not fit its type,
    # so the first misfit is held until every envelope has been checked.
    misfit: BatchError | None = None
    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            raise BatchError("malformed", f"event {i} is not a map")
        seq: Any = ev.get("seq")
        if seq != first + i or not _int(seq):
            raise BatchError("not_contiguous", f"event {i} has seq {seq!r}, expected {first + i}")
        type_: Any = ev.get("type")
        data: Any = ev.get("data")
        if not (isinstance(type_, str) and _int(ev.get("at")) and isinstance(data, dict)):
            raise BatchError("malformed", f"event seq {seq}: needs str type, int at, map data")
        if misfit is None:
            try:
                typed.append(decode_event(type_, data))
            except EventError as exc:
                misfit = BatchError("malformed", f"event seq {seq}: {exc}")
    if misfit is not None:
        raise misfit
    return Batch(box=box, epoch=epoch, first=first, last=last, events=typed, raw=events)


# --------------------------------------------------------------------------- answers


def wants_msgpack(accept: str | None) -> bool:
    """True when ``Accept`` names msgpack before (or without) JSON."""
    if not accept:
        return False
    best: tuple[float, str] | None = None
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        media = media.strip().lower()
        if media in (MSGPACK, JSON) and (best is None or q > best[0]):
            best = (q, media)
    return best is not None and best[1] == MSGPACK and best[0] > 0


def encode_answer(doc: Any, accept: str | None) -> tuple[bytes, str]:
    """Body and content type of an answer, by the request's ``Accept``."""
    if wants_msgpack(accept):
        return _pack(doc), MSGPACK
    return json.dumps(doc, separators=(",", ":")).encode(), JSON


def decode_answer(body: bytes, content_type: str | None) -> Any:
    """The document of an answer; raises ``ValueError`` on junk."""
    if not body:
        return None
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == MSGPACK:
        try:
            return msgpack.unpackb(body, raw=False)
        except Exception as exc:
            raise ValueError(f"answer is not msgpack: {exc}") from None
    try:
        return json.loads(body)
    except RecursionError:  # nested deeper than the parser recurses: junk, like any other
        raise ValueError("answer is JSON nested too deeply") from None


def batch_answer(acked: int, epoch: str, first: int, last: int) -> dict[str, Any]:
    """The document of a 200 or gap 409: the cloud's mark for ``(box, epoch)``
    and the echo of the batch it answers."""
    return {"acked": acked, "epoch": epoch, "first": first, "last": last}


def epoch_conflict_answer(
    acked: int, epoch: str, first: int, last: int, *, conflict_at: int, message: str
) -> dict[str, Any]:
    """The document of a 409 ``epoch_conflict``: ``conflict_at`` is the first seq
    of the batch whose content differs from what the cloud holds."""
    return {
        "error": {"code": "epoch_conflict", "message": message},
        **batch_answer(acked, epoch, first, last),
        "conflict_at": conflict_at,
    }


@dataclass(frozen=True, slots=True)
class Echo:
    """The batch an answer says it answers."""

    epoch: str
    first: int
    last: int


def answer_echo(doc: Any) -> Echo | None:
    """The ``epoch``/``first``/``last`` a 200 or 409 echoes; None when any of them
    is missing or mistyped (an answer that cannot be bound to a request)."""
    if not isinstance(doc, dict):
        return None
    epoch, first, last = doc.get("epoch"), doc.get("first"), doc.get("last")
    if not (isinstance(epoch, str) and isinstance(first, int) and isinstance(last, int)):
        return None
    if isinstance(first, bool) or isinstance(last, bool):
        return None
    return Echo(epoch, first, last)


def conflict_at(doc: Any) -> int | None:
    """The ``conflict_at`` of an ``epoch_conflict`` answer, None when absent or
    not an int."""
    value = doc.get("conflict_at") if isinstance(doc, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_URL_SAFE = re.compile(r"[A-Za-z0-9_.\-]*")


def url_safe(cursor: str) -> bool:
    """True when ``cursor`` holds only ``A-Z a-z 0-9 - _ .``: what sync-v1
    allows a cursor to be, so it goes into a query string as it is."""
    return _URL_SAFE.fullmatch(cursor) is not None
