"""Every upstream event of sync-v1, as a frozen dataclass: one definition, both ends.

The box builds these and appends them to its outbox (``Transaction.append``);
the batch codec and the receiver decode a batch's ``data`` maps back into the
same classes. A class's fields are the contract's keys, in the contract's
types; :meth:`UpstreamEvent.to_data` gives the ``data`` map, :func:`decode_event`
checks a received map field by field and builds the event, or raises
:class:`EventError` naming the field.

A type the contract adds later decodes to :class:`UnknownEvent` (a cloud stores
and acks what it does not know; sync-v1 adds types, never changes them).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin


class EventError(ValueError):
    """A ``data`` map that does not fit its event type; the message names the field."""


class Severity(enum.StrEnum):
    INFO = "info"
    WARN = "warn"
    CRIT = "crit"


class AlertState(enum.StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


class StockReason(enum.StrEnum):
    PICK = "pick"
    SHORT = "short"
    COUNT = "count"
    ADJUST = "adjust"
    RECEIVE = "receive"
    RETURN = "return"


class CancelStage(enum.StrEnum):
    OPEN = "open"
    PICKING = "picking"
    PICKED = "picked"


class UpstreamEvent:
    """Base of the event classes: ``TYPE`` is the contract's type string."""

    __slots__ = ()
    TYPE: ClassVar[str]

    def to_data(self) -> dict[str, Any]:
        """The event's ``data`` map, in the contract's keys and plain types."""
        return _encode_fields(self)


# ---------------------------------------------------------------------- nested parts


@dataclass(frozen=True, slots=True, kw_only=True)
class CartonLine:
    sku: str
    qty: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Carton:
    sscc: str
    lines: tuple[CartonLine, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PickedLine:
    line: str
    sku: str
    picked: int
    short: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PutBack:
    sku: str
    location: str
    qty: int


# ---------------------------------------------------------------------- the events


@dataclass(frozen=True, slots=True, kw_only=True)
class StockDelta(UpstreamEvent):
    TYPE: ClassVar[str] = "stock_delta"
    sku: str
    location: str
    qty: int
    reason: StockReason
    ref: str | None
    lot: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PickConfirmed(UpstreamEvent):
    TYPE: ClassVar[str] = "pick_confirmed"
    task: str
    order: str | None
    line: str
    sku: str
    location: str
    qty: int
    picker: str
    codes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PickException(UpstreamEvent):
    TYPE: ClassVar[str] = "pick_exception"
    task: str
    line: str
    sku: str
    location: str | None
    expected: int
    picked: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ShipmentConfirmed(UpstreamEvent):
    TYPE: ClassVar[str] = "shipment_confirmed"
    shipment: str
    orders: tuple[str, ...]
    cartons: tuple[Carton, ...]
    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert(UpstreamEvent):
    TYPE: ClassVar[str] = "alert"
    kind: str
    severity: Severity
    subject: str
    detail: dict[str, Any]
    state: AlertState = AlertState.RAISED


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskPicked(UpstreamEvent):
    TYPE: ClassVar[str] = "task_picked"
    task: str
    order: str | None
    tour: int
    picker: str
    lines: tuple[PickedLine, ...]
    totes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCancelled(UpstreamEvent):
    TYPE: ClassVar[str] = "task_cancelled"
    task: str
    order: str | None
    at_stage: CancelStage
    put_back: tuple[PutBack, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CountResult(UpstreamEvent):
    TYPE: ClassVar[str] = "count_result"
    task: str
    location: str
    sku: str
    counted: int
    expected: int
    picker: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CartonDeparted(UpstreamEvent):
    TYPE: ClassVar[str] = "carton_departed"
    sscc: str
    shipment: str | None
    door: str
    reader: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Erased(UpstreamEvent):
    TYPE: ClassVar[str] = "erased"
    order: str | None = None
    picker: str | None = None
    rows: int


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event of a type this code does not know: kept as received."""

    type: str
    data: dict[str, Any]

    def to_data(self) -> dict[str, Any]:
        return dict(self.data)


EVENT_CLASSES: dict[str, type[UpstreamEvent]] = {
    cls.TYPE: cls
    for cls in (
        StockDelta,
        PickConfirmed,
        PickException,
        ShipmentConfirmed,
        Alert,
        TaskPicked,
        TaskCancelled,
        CountResult,
        CartonDeparted,
        Erased,
    )
}
#: the sync-v1 event types this code knows
EVENT_TYPES = frozenset(EVENT_CLASSES)


def decode_event(type_: str, data: Mapping[str, Any]) -> UpstreamEvent | UnknownEvent:
    """The event of a received ``(type, data)``; :class:`EventError` when ``data``
    does not fit a known type. Keys the class does not know are ignored (a newer
    box may add fields); a missing key without a default is an error."""
    cls = EVENT_CLASSES.get(type_)
    if cls is None:
        return UnknownEvent(type_, dict(data))
    return _decode_dataclass(cls, data, type_)


# ---------------------------------------------------------------------- the machinery
#
# Field specs are derived once from the annotations: str, int, bool, the
# StrEnums, ``X | None``, ``tuple[X, ...]`` and ``dict[str, Any]``. Encoding
# walks the same specs, so the two directions cannot drift apart.

_T = TypeVar("_T")
_Check = Callable[[Any, str], Any]
_specs: dict[type, list[tuple[str, _Check, Callable[[Any], Any], bool]]] = {}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _converter(hint: Any) -> tuple[_Check, Callable[[Any], Any]]:
    """(decode-and-check, encode) for one annotation."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        check, enc = _converter(args[0])

        def opt(value: Any, where: str) -> Any:
            return None if value is None else check(value, where)

        return opt, lambda v: None if v is None else enc(v)
    if origin is tuple:
        check, enc = _converter(get_args(hint)[0])

        def seq(value: Any, where: str) -> Any:
            if not isinstance(value, list | tuple):
                raise EventError(f"{where} must be a list")
            return tuple(check(v, f"{where}[{i}]") for i, v in enumerate(value))

        return seq, lambda v: [enc(x) for x in v]
    if origin is dict:

        def mapping(value: Any, where: str) -> Any:
            if not isinstance(value, dict):
                raise EventError(f"{where} must be a map")
            return dict(value)

        return mapping, dict
    if origin is Literal:
        allowed = get_args(hint)

        def literal(value: Any, where: str) -> Any:
            if value not in allowed:
                raise EventError(f"{where} must be one of {', '.join(map(str, allowed))}")
            return value

        return literal, lambda v: v
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        enum_cls = hint

        def member(value: Any, where: str) -> Any:
            try:
                return enum_cls(value)
            except ValueError:
                names = ", ".join(m.value for m in enum_cls)
                raise EventError(f"{where} must be one of {names}") from None

        return member, str
    if hint is str:

        def text(value: Any, where: str) -> Any:
            if not isinstance(value, str):
                raise EventError(f"{where} must be a string")
            return value

        return text, lambda v: v
    if hint is int:

        def integer(value: Any, where: str) -> Any:
            if not _is_int(value):
                raise EventError(f"{where} must be an integer")
            return value

        return integer, lambda v: v
    if hint is bool:

        def boolean(value: Any, where: str) -> Any:
            if not isinstance(value, bool):
                raise EventError(f"{where} must be true or false")
            return value

        return boolean, lambda v: v
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        part = hint

        def nested(value: Any, where: str) -> Any:
            if not isinstance(value, dict):
                raise EventError(f"{where} must be a map")
            return _decode_dataclass(part, value, where)

        return nested, _encode_fields
    raise TypeError(f"no event codec for {hint!r}")


def _spec(cls: type) -> list[tuple[str, _Check, Callable[[Any], Any], bool]]:
    spec = _specs.get(cls)
    if spec is None:
        hints = typing.get_type_hints(cls)
        spec = []
        for f in dataclasses.fields(cls):
            check, enc = _converter(hints[f.name])
            required = f.default is dataclasses.MISSING
            spec.append((f.name, check, enc, required))
        _specs[cls] = spec
    return spec


def _decode_dataclass(cls: type[_T], data: Mapping[str, Any], where: str) -> _T:
    values: dict[str, Any] = {}
    for name, check, _, required in _spec(cls):
        if name in data:
            values[name] = check(data[name], f"{where}.{name}")
        elif required:
            raise EventError(f"{where}.{name} is missing")
    return cls(**values)


def _encode_fields(obj: Any) -> dict[str, Any]:
    return {name: enc(getattr(obj, name)) for name, _, enc, _ in _spec(type(obj))}


for _cls in (*EVENT_CLASSES.values(), Carton, CartonLine, PickedLine, PutBack):
    _spec(_cls)  # fail at import, not on the first event, if a field has no codec
