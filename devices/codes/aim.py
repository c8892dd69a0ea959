"""AIM symbology identifiers (ISO/IEC 15424): split them off a scan and name them.

Promises: :func:`split_aim` recognises a leading ``]`` + letter + modifier and
returns it apart from the data; :func:`describe` names the common ones and says
whether they carry GS1 data. Never guesses a symbology from the data itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Symbology:
    aim: str  # "]C1"
    name: str  # "GS1-128"
    gs1: bool  # data is a GS1 element string (FNC1 in first position)
    gtin_only: bool = False  # the symbology itself carries exactly one GTIN (EAN/UPC, ITF-14)


# The ones seen on warehouse floors (device-formats.md); others are still split
# and reported by their raw identifier.
SYMBOLOGIES: dict[str, Symbology] = {
    s.aim: s
    for s in (
        Symbology("]C1", "GS1-128", gs1=True),
        Symbology("]C0", "Code 128", gs1=False),
        Symbology("]d2", "GS1 DataMatrix", gs1=True),
        Symbology("]d1", "Data Matrix", gs1=False),
        Symbology("]Q3", "GS1 QR Code", gs1=True),
        Symbology("]Q1", "QR Code", gs1=False),
        Symbology("]e0", "GS1 DataBar", gs1=True),
        Symbology("]E0", "EAN-13 / UPC-A", gs1=False, gtin_only=True),
        Symbology("]E4", "EAN-8", gs1=False, gtin_only=True),
        Symbology("]I1", "ITF-14", gs1=False, gtin_only=True),
        Symbology("]A0", "Code 39", gs1=False),
        Symbology("]L0", "PDF417", gs1=False),
    )
}

_AIM_RE = re.compile(r"\][A-Za-z][0-9A-Za-z]")


def split_aim(data: str) -> tuple[str | None, str]:
    """``("]C1", "0109...")`` when ``data`` starts with an AIM id, else ``(None, data)``."""
    if len(data) >= 3 and _AIM_RE.match(data):
        return data[:3], data[3:]
    return None, data


def is_aim(text: str) -> bool:
    return len(text) == 3 and _AIM_RE.fullmatch(text) is not None


def describe(aim: str | None) -> Symbology | None:
    """The known symbology for ``aim``, or ``None`` when unknown or absent."""
    if aim is None:
        return None
    return SYMBOLOGIES.get(aim)
