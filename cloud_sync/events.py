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
from typing import Any, ClassVar, Literal, NamedTuple, TypeVar, Union, get_args, get_origin


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
    #: the tote the units went into (cart picking; None: no tote) — an
    #: extension within v1, see docs/sync.md
    tote: str | None = None


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


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorAction(UpstreamEvent):
    """A supervisor's action on the floor (release, reassign, adjust): who did
    what to which subject — a type added within v1 (docs/sync.md)."""

    TYPE: ClassVar[str] = "supervisor_action"
    action: str
    by: str
    subject: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event of a type this code does not know: kept as received."""

    type: str
    data: dict[str, Any]

    def to_data(self) -> dict[str, Any]:
        return dict(self.data)


#: what a received ``(type, data)`` decodes to
AnyEvent = UpstreamEvent | UnknownEvent

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
        SupervisorAction,
    )
}
#: the sync-v1 event types this code knows
EVENT_TYPES = frozenset(EVENT_CLASSES)


def decode_event(type_: str, data: Mapping[str, Any]) -> AnyEvent:
    """The event of a received ``(type, data)``; :class:`EventError` when ``data``
    does not fit a known type. Keys the class does not know are ignored (a newer
    box may add fields); a missing key without a default is an error."""
    cls = EVENT_CLASSES.get(type_)
    if cls is None:
        return UnknownEvent(type_, dict(data))
    try:
        return _decode_fields(cls, data)
    except _Misfit as misfit:
        raise EventError(f"{type_}{misfit.path} {misfit.reason}") from None


# ---------------------------------------------------------------------- the machinery
#
# Field specs are derived once from the annotations: str, int, bool, the
# StrEnums, ``X | None``, ``tuple[X, ...]`` and ``dict[str, Any]``. Encoding
# walks the same specs, so the two directions cannot drift apart.
#
# Decoding is on the receiver's hot path (every event of every batch), so a
# check builds no text unless it fails: it raises :class:`_Misfit` with the
# reason, and each enclosing level prefixes its part of the path on the way up.

_T = TypeVar("_T")
_MISSING: Any = object()


class _Misfit(Exception):
    """A value that does not fit; ``path`` grows as the error leaves nested parts."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path

    def within(self, step: str) -> _Misfit:
        return _Misfit(self.reason, step + self.path)


_Check = Callable[[Any], Any]


class _Field(NamedTuple):
    name: str
    #: ``str`` or ``int`` (or None): a value of exactly this class (or None
    #: when ``nullable``) passes without calling ``check``, the common case
    exact: type | None
    nullable: bool
    check: _Check
    encode: Callable[[Any], Any]
    #: sets the slot of a new instance (the class is frozen; see _decode_fields)
    assign: Callable[[Any, Any], None]
    default: Any  # _MISSING: required


_specs: dict[type, tuple[_Field, ...]] = {}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _converter(hint: Any) -> tuple[_Check, Callable[[Any], Any]]:
    """(decode-and-check, encode) for one annotation."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        check, enc = _converter(args[0])

        def opt(value: Any) -> Any:
            return None if value is None else check(value)

        return opt, lambda v: None if v is None else enc(v)
    if origin is tuple:
        item = get_args(hint)[0]
        check, enc = _converter(item)
        exact = item if item in (str, int) else None

        def seq(value: Any) -> Any:
            if not isinstance(value, list | tuple):
                raise _Misfit("must be a list")
            if exact is not None and all(v.__class__ is exact for v in value):
                return tuple(value)  # the common case: plain strings or ints
            out = []
            for i, v in enumerate(value):
                try:
                    out.append(check(v))
                except _Misfit as misfit:
                    raise misfit.within(f"[{i}]") from None
            return tuple(out)

        return seq, lambda v: [enc(x) for x in v]
    if origin is dict:

        def mapping(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Misfit("must be a map")
            return dict(value)

        return mapping, dict
    if origin is Literal:
        allowed = get_args(hint)

        def literal(value: Any) -> Any:
            if value not in allowed:
                raise _Misfit(f"must be one of {', '.join(map(str, allowed))}")
            return value

        return literal, lambda v: v
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        members = {m.value: m for m in hint}
        names = ", ".join(members)

        def member(value: Any) -> Any:
            found = members.get(value) if isinstance(value, str) else None
            if found is None:
                raise _Misfit(f"must be one of {names}")
            return found

        return member, str
    if hint is str:

        def text(value: Any) -> Any:
            if not isinstance(value, str):
                raise _Misfit("must be a string")
            return value

        return text, lambda v: v
    if hint is int:

        def integer(value: Any) -> Any:
            if not _is_int(value):
                raise _Misfit("must be an integer")
            return value

        return integer, lambda v: v
    if hint is bool:

        def boolean(value: Any) -> Any:
            if not isinstance(value, bool):
                raise _Misfit("must be true or false")
            return value

        return boolean, lambda v: v
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        part = hint

        def nested(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Misfit("must be a map")
            return _decode_fields(part, value)

        return nested, _encode_fields
    raise TypeError(f"no event codec for {hint!r}")


def _spec(cls: type) -> tuple[_Field, ...]:
    spec = _specs.get(cls)
    if spec is None:
        if hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__}: event classes are decoded without __init__")
        hints = typing.get_type_hints(cls)
        fields = []
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if f.default_factory is not dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}.{f.name}: no default_factory in events")
            check, enc = _converter(hint)
            args = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
            nullable = type(None) in args
            plain = [a for a in args if a is not type(None)]
            exact = plain[0] if len(plain) == 1 and plain[0] in (str, int) else None
            default = _MISSING if f.default is dataclasses.MISSING else f.default
            assign = getattr(cls, f.name).__set__  # the slot's own descriptor
            fields.append(_Field(f.name, exact, nullable, check, enc, assign, default))
        spec = _specs[cls] = tuple(fields)
    return spec


def _decode_fields(cls: type[_T], data: Mapping[str, Any]) -> _T:
    decode = _decoders.get(cls)
    if decode is None:
        decode = _decoders[cls] = _compile_decoder(cls)
    result: _T = decode(data)
    return result


_decoders: dict[type, Callable[[Mapping[str, Any]], Any]] = {}


def _compile_decoder(cls: type) -> Callable[[Mapping[str, Any]], Any]:
    """The decoder of ``cls``, written out field by field and compiled once, the
    way :mod:`dataclasses` writes ``__init__``: the receiver decodes every event
    of every batch, and a loop over the field table costs twice as much.

    For each field: take it from ``data`` (missing: its default, or the error);
    a ``str``/``int`` of exactly that class (or None where allowed) is taken as
    it is, anything else goes through the field's ``check``; then the value is
    set on the slot. Every field is checked before it is set, so the instance
    is built without calling the frozen dataclass's ``__init__`` (a third of
    the cost); :func:`_spec` refuses classes with a ``__post_init__`` that
    this would skip.
    """
    env: dict[str, Any] = {"new": object.__new__, "cls": cls, "MISSING": _MISSING}
    env["Misfit"] = _Misfit
    lines = ["def decode(data):", "    obj = new(cls)"]
    for i, f in enumerate(_spec(cls)):
        env[f"check{i}"], env[f"assign{i}"], env[f"default{i}"] = f.check, f.assign, f.default
        where = repr("." + f.name)
        lines += [f"    v = data.get({f.name!r}, MISSING)", "    if v is MISSING:"]
        if f.default is _MISSING:
            lines.append(f"        raise Misfit('is missing', {where})")
        else:
            lines.append(f"        v = default{i}")
        passes = []
        if f.exact is not None:
            env[f"exact{i}"] = f.exact
            passes.append(f"v.__class__ is not exact{i}")
        if f.nullable:
            passes.append("v is not None")
        lines += [
            f"    elif {' and '.join(passes) or 'True'}:",
            "        try:",
            f"            v = check{i}(v)",
            "        except Misfit as misfit:",
            f"            raise misfit.within({where}) from None",
            f"    assign{i}(obj, v)",
        ]
    lines.append("    return obj")
    exec("\n".join(lines), env)  # noqa: S102 - source built above from field names
    decode: Callable[[Mapping[str, Any]], Any] = env["decode"]
    return decode


def _encode_fields(obj: Any) -> dict[str, Any]:
    return {f.name: f.encode(getattr(obj, f.name)) for f in _spec(type(obj))}


for _cls in (*EVENT_CLASSES.values(), Carton, CartonLine, PickedLine, PutBack):
    # fail at import, not on the first event, if a field has no codec
    _decoders[_cls] = _compile_decoder(_cls)
