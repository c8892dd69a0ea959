"""What a PDA's scanned string says, before the database is asked.

:func:`interpret` runs :func:`devices.codes.decode` (pure) and keeps what the
picking workflow needs: the data without its AIM id, a GTIN-14 for item codes
(bare GTIN, GS1 element string with AI 01/02, SGTIN EPC), whether it names
one serialised unit (SGTIN EPC, AI 21), the lot (AI 10),
expiry (AI 17, ISO date), a unit count (AI 30 or 37) and a location label. It
never touches the database and never slices the code itself; mapping a GTIN to
a SKU or a label to a location happens in the write transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.codes import CodeKind, decode
from devices.errors import CodeError

#: the scan that asks for the next tasks by priority
START = "START"


@dataclass(frozen=True, slots=True)
class ScannedCode:
    raw: str
    #: the code without AIM id; what order/task/tote/SKU/location look-ups use
    data: str
    kind: str  # a devices.codes.CodeKind value, or "invalid"
    gtin14: str | None = None
    lot: str | None = None
    expiry: str | None = None  # ISO date
    count: int = 1
    location: str | None = None
    #: the code names one physical unit (SGTIN EPC, or AI 21 serial): counted once
    serialised: bool = False
    problem: str | None = None  # why the code is invalid

    @property
    def valid(self) -> bool:
        return self.problem is None

    @property
    def is_start(self) -> bool:
        return self.data.strip().upper() == START


def interpret(raw: str) -> ScannedCode:
    """Decode ``raw`` for picking; an invalid code comes back with ``problem`` set."""
    try:
        decoded = decode(raw)
    except CodeError as exc:
        return ScannedCode(raw, raw.strip("\r\n"), "invalid", problem=str(exc))
    lot: str | None = None
    expiry: str | None = None
    count = 1
    serialised = False
    for element in decoded.elements:
        if element.ai == "21":
            serialised = True
        elif element.ai == "10":
            lot = element.value
        elif element.ai == "17":
            expiry = element.date
        elif element.ai in ("30", "37"):
            try:
                count = int(element.value)
            except ValueError:
                return ScannedCode(raw, decoded.data, "invalid", problem="bad count")
    gtin14 = decoded.gtin14
    if decoded.kind is CodeKind.EPC and decoded.epc is not None:
        scheme = decoded.epc.scheme or ""
        if scheme.startswith("sgtin") and decoded.epc.gs1_key:
            gtin14 = decoded.epc.gs1_key.zfill(14)
            serialised = True
    return ScannedCode(
        raw,
        decoded.data,
        decoded.kind.value,
        gtin14=gtin14,
        lot=lot,
        expiry=expiry,
        count=count,
        location=decoded.location,
        serialised=serialised,
    )
