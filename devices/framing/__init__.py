"""Pure framers: bytes in, frames out, junk counted (see ``devices.framing.base``).

- :mod:`devices.framing.lines` — barcode scanner lines (CR/LF/CRLF, STX…ETX, idle)
- :mod:`devices.framing.a0` — R2000-style ``A0`` UHF RFID protocol
- :mod:`devices.framing.m100` — MagicRF M100 ``BB…7E`` protocol
"""

from devices.framing.a0 import A0Frame, A0Framer
from devices.framing.base import FramerStats
from devices.framing.lines import LineFrame, LineFramer
from devices.framing.m100 import M100Frame, M100Framer

__all__ = [
    "A0Frame",
    "A0Framer",
    "FramerStats",
    "LineFrame",
    "LineFramer",
    "M100Frame",
    "M100Framer",
]
