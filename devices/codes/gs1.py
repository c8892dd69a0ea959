"""GS1 element strings, GTINs and SSCCs through biip, with check digits enforced.

Promises: every function returns fully validated values or raises
:class:`~devices.errors.CodeError` — a wrong GTIN/SSCC/GLN check digit, an
impossible date, an unknown AI or leftover characters are errors, never a silent
pass (biip itself reports check-digit failures in ``*_error`` fields while still
returning a result; they are read here). Never performs I/O.

biip is imported on the first parse, not with this module: its tables cost an
idle daemon ~17 MB (bench/idle.py), and a box that never decodes never needs them;
the daemon imports it in the background at the first PDA login (:func:`warm_up`).

Limitation inherited from the format (device-formats.md): a missing GS after a
variable-length AI cannot be detected; the two values silently run together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from devices.errors import CodeError

GS = "\x1d"
_HRI_RE = re.compile(r"^\(\d{2,4}\)")


@dataclass(frozen=True, slots=True)
class GS1Element:
    """One AI and its value, e.g. ``(17) 261231`` → title ``USE BY or EXPIRY``."""

    ai: str
    title: str  # GS1 data title, "BATCH/LOT"
    description: str  # "Batch or lot number"
    value: str
    date: str | None = None  # ISO date for date AIs (day 00 = last day of month)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ai": self.ai,
            "title": self.title,
            "description": self.description,
            "value": self.value,
        }
        if self.date is not None:
            out["date"] = self.date
        return out


@dataclass(frozen=True, slots=True)
class GS1Parsed:
    elements: tuple[GS1Element, ...]
    gtin: str | None  # GTIN-14 from AI (01) or (02)
    sscc: str | None  # from AI (00)
    hri: str  # "(01)09521234543213(10)ABC"


def warm_up() -> None:
    """Import biip now (≈ 90 ms on a small box) rather than on the first parse.
    The daemon calls it off the event loop once a PDA logs in, so the first
    GS1 scan of the day does not wait for it. Idempotent."""
    import biip.gs1_messages
    import biip.gtin
    import biip.sscc  # noqa: F401


def looks_like_hri(text: str) -> bool:
    """``(01)09521…`` — the human-readable interpretation printed under barcodes."""
    return _HRI_RE.match(text) is not None


def parse_element_string(data: str) -> GS1Parsed:
    """Parse a GS1 element string (FNC1 not sent, GS between fields) or its HRI."""
    if not data:
        raise CodeError("empty GS1 element string")
    from biip import ParseError
    from biip.gs1_messages import GS1Message

    try:
        if looks_like_hri(data):
            message = GS1Message.parse_hri(data)
        else:
            # A trailing GS is sent by some scanners after the last variable field.
            message = GS1Message.parse(data.rstrip(GS))
    except ParseError as exc:
        raise CodeError(f"not a valid GS1 element string: {exc}") from exc
    elements: list[GS1Element] = []
    gtin: str | None = None
    sscc: str | None = None
    for es in message.element_strings:
        for error in (es.gtin_error, es.sscc_error, es.gln_error):
            if error:
                raise CodeError(f"AI ({es.ai.ai}): {error}")
        date = es.date.isoformat() if es.date is not None else None
        if es.datetime is not None and date is None:
            date = es.datetime.isoformat()
        elements.append(
            GS1Element(
                ai=es.ai.ai,
                title=es.ai.data_title,
                description=es.ai.description,
                value=es.value,
                date=date,
            )
        )
        if es.gtin is not None and gtin is None:
            gtin = es.gtin.value
        if es.sscc is not None and sscc is None:
            sscc = es.sscc.value
    if not elements:
        raise CodeError("GS1 element string holds no element")
    hri = "".join(f"({e.ai}){e.value}" for e in elements)
    return GS1Parsed(tuple(elements), gtin, sscc, hri)


def parse_gtin(data: str) -> str:
    """A GTIN-8/12/13/14 with a valid check digit, returned as given."""
    from biip import ParseError
    from biip.gtin import Gtin

    try:
        return Gtin.parse(data).value
    except ParseError as exc:
        raise CodeError(str(exc)) from exc


def parse_sscc(data: str) -> str:
    """An 18-digit SSCC with a valid check digit."""
    from biip import ParseError
    from biip.sscc import Sscc

    try:
        return Sscc.parse(data).value
    except ParseError as exc:
        raise CodeError(str(exc)) from exc


def gtin14(gtin: str) -> str:
    return gtin.zfill(14)
