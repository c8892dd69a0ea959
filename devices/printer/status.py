"""The Zebra ``~HS`` host status answer: parse it, and write it (for the simulator).

A printer answers ``~HS`` with three strings, each ``<STX>…<ETX><CR><LF>``
(ZPL II Programming Guide, ``~HS``)::

    1  aaa,b,c,dddd,eee,f,g,h,iii,j,k,l   b paper out, c paused, dddd label length
                                          (dots), eee formats in the receive buffer,
                                          f buffer full, h partial format,
                                          k under / l over temperature
    2  mmm,n,o,p,q,r,s,t,uuuuuuuu,v,www   o head up (open), p ribbon out,
                                          q thermal transfer mode, uuuuuuuu labels
                                          remaining in the batch
    3  xxxx,y                             password, static RAM

Promises: :func:`parse_hs` returns a :class:`PrinterStatus` or raises
:class:`~devices.errors.FrameError` — wrong string count, field count or a
flag that is not 0/1 is an error, never a guessed "ready". :func:`answer_length`
tells a reader when the three strings are complete. :func:`encode_hs` writes
an answer that :func:`parse_hs` reads back to the same status. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from devices.errors import FrameError

HS_REQUEST = b"~HS"
STX, ETX = 0x02, 0x03
MAX_ANSWER = 1024  # a real answer is about 90 bytes


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What a printer says about itself; ``raw`` is the answer it came from."""

    paper_out: bool = False
    paused: bool = False
    head_open: bool = False
    ribbon_out: bool = False
    buffer_full: bool = False
    formats_in_buffer: int = 0
    labels_remaining: int = 0
    label_length_dots: int = 0
    partial_format: bool = False
    under_temperature: bool = False
    over_temperature: bool = False
    thermal_transfer: bool = False
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def problems(self) -> tuple[str, ...]:
        """Every condition that stops printing, most physical first."""
        found = (
            (self.head_open, "head open"),
            (self.paper_out, "paper out"),
            # the ribbon flag means nothing to a direct thermal printer
            (self.ribbon_out and self.thermal_transfer, "ribbon out"),
            (self.paused, "paused"),
            (self.buffer_full, "buffer full"),
            (self.over_temperature, "over temperature"),
            (self.under_temperature, "under temperature"),
        )
        return tuple(name for on, name in found if on)

    @property
    def problem(self) -> str | None:
        """The first of :attr:`problems`, or ``None`` when the printer can print."""
        problems = self.problems
        return problems[0] if problems else None

    @property
    def ready(self) -> bool:
        return not self.problems


def answer_length(buf: bytes) -> int | None:
    """Bytes of ``buf`` that hold the whole answer (with a trailing CR LF if
    present), or ``None`` while the third string is still on its way."""
    end = -1
    for _ in range(3):
        end = buf.find(ETX, end + 1)
        if end < 0:
            return None
    end += 1
    for expected in b"\r\n":
        if end < len(buf) and buf[end] == expected:
            end += 1
    return end


def parse_hs(data: bytes) -> PrinterStatus:
    """The status in one complete ``~HS`` answer."""
    strings = _strings(data)
    if len(strings) != 3:
        raise FrameError(f"~HS answer holds {len(strings)} strings, not 3")
    one, two = strings[0].split(","), strings[1].split(",")
    if len(one) != 12 or len(two) != 11:
        raise FrameError(f"~HS strings hold {len(one)} and {len(two)} fields, not 12 and 11")
    return PrinterStatus(
        paper_out=_flag(one[1], "paper out"),
        paused=_flag(one[2], "pause"),
        label_length_dots=_number(one[3], "label length"),
        formats_in_buffer=_number(one[4], "formats in buffer"),
        buffer_full=_flag(one[5], "buffer full"),
        partial_format=_flag(one[7], "partial format"),
        under_temperature=_flag(one[10], "under temperature"),
        over_temperature=_flag(one[11], "over temperature"),
        head_open=_flag(two[2], "head up"),
        ribbon_out=_flag(two[3], "ribbon out"),
        thermal_transfer=_flag(two[4], "thermal transfer"),
        labels_remaining=_number(two[8], "labels remaining"),
        raw=bytes(data),
    )


def encode_hs(status: PrinterStatus) -> bytes:
    """An answer a Zebra in this state would send (settings fields: 9600 8N1,
    tear-off mode, no password)."""

    def b(flag: bool) -> int:
        return int(flag)

    s = status
    strings = (
        f"030,{b(s.paper_out)},{b(s.paused)},{s.label_length_dots:04d},"
        f"{s.formats_in_buffer:03d},{b(s.buffer_full)},0,{b(s.partial_format)},000,0,"
        f"{b(s.under_temperature)},{b(s.over_temperature)}",
        f"000,0,{b(s.head_open)},{b(s.ribbon_out)},{b(s.thermal_transfer)},2,6,0,"
        f"{s.labels_remaining:08d},1,000",
        "1234,0",
    )
    return b"".join(b"\x02" + text.encode("ascii") + b"\x03\r\n" for text in strings)


def _strings(data: bytes) -> list[str]:
    if len(data) > MAX_ANSWER:
        raise FrameError(f"~HS answer of {len(data)} bytes is too long")
    out: list[str] = []
    i = 0
    while i < len(data):
        if data[i] in b"\r\n":
            i += 1
            continue
        if data[i] != STX:
            raise FrameError(f"~HS answer: expected STX at byte {i}, got {data[i : i + 8]!r}")
        end = data.find(ETX, i + 1)
        if end < 0:
            raise FrameError("~HS answer: a string without ETX")
        try:
            out.append(data[i + 1 : end].decode("ascii").strip())
        except UnicodeDecodeError:
            raise FrameError("~HS answer is not ASCII") from None
        i = end + 1
    return out


def _flag(value: str, name: str) -> bool:
    value = value.strip()
    if value not in ("0", "1"):
        raise FrameError(f"~HS {name} flag is {value!r}, not 0 or 1")
    return value == "1"


def _number(value: str, name: str) -> int:
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        raise FrameError(f"~HS {name} is {value!r}, not a number")
    return int(value)
