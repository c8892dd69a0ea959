"""ZPL II carton labels: render them, and read back what was rendered.

Promises: :func:`render` turns a valid :class:`CartonLabel` into one ZPL
``^XA … ^XZ`` format — a GS1-128 barcode of the SSCC as AI (00) (Code 128,
start C then FNC1), its human-readable line, the ship-to postcode and region
(no names, no street: the label carries as little customer data as it can),
the order reference and "carton n of m". A label that could break the format
(an SSCC without a valid GS1 check digit, control characters, out-of-range
counts) cannot even be built: :class:`~devices.errors.LabelError`. Carets,
tildes and underscores in text go out hex-escaped under ``^FH``, so no field
data can end a field or issue a printer command.

:func:`split_stream` frames a byte stream as a printer sees it (formats,
``~`` host commands, junk), feed-style: it returns the items and how many
bytes it consumed, the caller keeps the tail. :func:`parse_jobs` parses whole
jobs back into fields, the barcode data of ``^BC`` decoded to the GS1 element
string (FNC1 after the first as GS, 0x1D). It is an honest parser of what
:func:`render` writes plus the common layout commands; anything else — an
unknown command, another barcode type, an undecodable ``^BC`` — raises
:class:`~devices.errors.FrameError` naming it.

Pure: no I/O, nothing about orders beyond the strings it is given.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from devices.errors import FrameError, LabelError

GS = "\x1d"
MAX_FORMAT = 256 * 1024  # one format larger than this is junk, not a label
MAX_TEXT = 40
_POSTCODE_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z -]{0,11}")
_SSCC_RE = re.compile(r"[0-9]{18}")
_FH = "_"  # ^FH's default hex indicator
_ESCAPED = {ord(c): f"{_FH}{ord(c):02X}" for c in "^~" + _FH}


# -- the label -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CartonLabel:
    """What one carton's label shows; validated on construction (``LabelError``).

    ``company_prefix_length`` (7–10) groups the human-readable SSCC as
    ``3 7612345 000000001 6``; without it the grouping is biip's best guess.
    """

    sscc: str
    ship_postcode: str
    ship_region: str
    order_ref: str
    carton_no: int
    carton_count: int
    sender: str = ""
    company_prefix_length: int | None = None

    def __post_init__(self) -> None:
        _check_sscc(self.sscc)
        if not _POSTCODE_RE.fullmatch(self.ship_postcode):
            raise LabelError(f"ship_postcode {self.ship_postcode!r}: letters, digits, space, -")
        _check_text("ship_region", self.ship_region, required=False)
        _check_text("order_ref", self.order_ref, required=True)
        _check_text("sender", self.sender, required=False)
        for name in ("carton_no", "carton_count"):
            if type(getattr(self, name)) is not int:
                raise LabelError(f"{name} must be an int, got {getattr(self, name)!r}")
        if not 1 <= self.carton_count <= 9999:
            raise LabelError(f"carton_count {self.carton_count} is not within 1–9999")
        if not 1 <= self.carton_no <= self.carton_count:
            raise LabelError(f"carton_no {self.carton_no} is not within 1–{self.carton_count}")
        gcp = self.company_prefix_length
        if gcp is not None and not 7 <= gcp <= 10:
            raise LabelError(f"company_prefix_length {gcp} is not within 7–10")

    @property
    def element_string(self) -> str:
        """The GS1 element string the barcode carries: AI (00) and the SSCC."""
        return "00" + self.sscc

    @property
    def hri(self) -> str:
        """The human-readable line under the barcode, ``(00) 3 7612345 000000001 6``."""
        from biip.sscc import Sscc  # on first use: biip's tables are large (devices.codes.gs1)

        grouped = Sscc.parse(self.sscc).as_hri(company_prefix_length=self.company_prefix_length)
        return f"(00) {grouped}"


def _check_sscc(sscc: str) -> None:
    if not isinstance(sscc, str) or not _SSCC_RE.fullmatch(sscc):
        raise LabelError(f"SSCC {sscc!r} is not 18 digits")
    from biip.checksums import gs1_standard_check_digit  # on first use (devices.codes.gs1)

    expected = gs1_standard_check_digit(sscc[:17])
    if int(sscc[17]) != expected:
        raise LabelError(f"SSCC {sscc}: check digit should be {expected}, not {sscc[17]}")


def _check_text(name: str, value: str, *, required: bool) -> None:
    if not isinstance(value, str):
        raise LabelError(f"{name} must be a string, got {value!r}")
    if required and not value.strip():
        raise LabelError(f"{name} is empty")
    if len(value) > MAX_TEXT:
        raise LabelError(f"{name} is longer than {MAX_TEXT} characters")
    for char in value:
        # Cc (controls), Cf (invisible format chars), Cs/Co/Cn: nothing a label shows
        if unicodedata.category(char).startswith("C"):
            raise LabelError(f"{name} holds control character U+{ord(char):04X}")


# -- rendering -----------------------------------------------------------------------

# 4 x 6 in at 203 dpi (8 dots/mm). ^BY4: a 0.5 mm module, within GS1's range for
# logistics labels; 156 modules of AI (00) + 40 quiet dots each side fit 812 dots.
_WIDTH, _LENGTH = 812, 1218


def _text(x: int, y: int, height: int, text: str) -> str:
    return f"^FO{x},{y}^A0N,{height},{height}^FH^FD{text.translate(_ESCAPED)}^FS"


def render(label: CartonLabel) -> bytes:
    """One ZPL II format (UTF-8, ``^CI28``) for one carton."""
    lines = ["^XA", "^CI28", f"^PW{_WIDTH}", f"^LL{_LENGTH}", "^LH0,0"]
    if label.sender:
        lines.append(_text(40, 40, 28, label.sender))
    lines += [_text(40, 100, 28, "SHIP TO"), _text(40, 140, 90, label.ship_postcode)]
    if label.ship_region:
        lines.append(_text(40, 250, 50, label.ship_region))
    lines += [
        f"^FO40,330^GB{_WIDTH - 80},3,3^FS",
        _text(40, 360, 36, f"ORDER {label.order_ref}"),
        _text(40, 410, 36, f"CARTON {label.carton_no} OF {label.carton_count}"),
        f"^FO40,480^GB{_WIDTH - 80},3,3^FS",
        _text(40, 510, 28, "SSCC"),
        # >; start code C, >8 FNC1: a GS1-128 symbol; digits go in pairs
        f"^FO94,560^BY4^BCN,280,N,N,N,N^FD>;>8{label.element_string}^FS",
        _text(40, 870, 44, label.hri),
        "^XZ",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


#: the fields :func:`render` writes the ship-to postcode and region into (up to
#: their data, then the data): what :func:`redact_ship_to` blanks
_SHIP_TO_FIELDS = tuple(
    re.compile(b"(" + re.escape(_text(40, y, h, "")[: -len("^FS")].encode()) + rb")[^^]*(\^FS)")
    for y, h in ((140, 90), (250, 50))
)
#: what a redacted ship-to field shows instead of its text
REDACTED = "ERASED"


def redact_ship_to(job: bytes, ssccs: Iterable[str]) -> bytes:
    """``job`` with the ship-to postcode and region of the labels of ``ssccs``
    replaced by :data:`REDACTED` (an erasure: the rest of each label, and the
    other labels of the job, stay byte for byte)."""
    marks = [f">;>800{sscc}^FS".encode() for sscc in ssccs]
    formats = job.split(b"^XZ")
    for i, fmt in enumerate(formats):
        if any(mark in fmt for mark in marks):
            redacted = fmt
            for field in _SHIP_TO_FIELDS:
                redacted = field.sub(rb"\g<1>" + REDACTED.encode() + rb"\g<2>", redacted)
            formats[i] = redacted
    return b"^XZ".join(formats)


def render_batch(labels: Iterable[CartonLabel]) -> bytes:
    """Several labels in one job, in order; an empty batch is a ``LabelError``."""
    job = b"".join(render(label) for label in labels)
    if not job:
        raise LabelError("a print job needs at least one label")
    return job


# -- the stream as a printer sees it -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Format:
    """One ``^XA … ^XZ`` format, bytes as received."""

    data: bytes


@dataclass(frozen=True, slots=True)
class HostCommand:
    """A ``~`` command outside any format, e.g. ``~HS`` (name ``"HS"``)."""

    name: str
    params: str = ""


@dataclass(frozen=True, slots=True)
class Junk:
    """Bytes that are neither (a printer ignores them; they are worth counting)."""

    data: bytes


StreamItem = Format | HostCommand | Junk

# ~ commands that take no parameters: they end right after their name
NO_PARAMS = frozenset({"HS", "HI", "HM", "JA", "JR", "PP", "PS", "WC"})
_XA = re.compile(rb"\^XA", re.IGNORECASE)
_XZ = re.compile(rb"\^XZ", re.IGNORECASE)
_RESYNC = re.compile(rb"\^XA|~", re.IGNORECASE)
_PARAM_END = re.compile(rb"[\^~\r\n]")
_WHITESPACE = b" \t\r\n"


def split_stream(
    buf: bytes, *, final: bool = False, max_format: int = MAX_FORMAT
) -> tuple[list[StreamItem], int]:
    """Items complete in ``buf`` and the number of bytes they took.

    The caller keeps ``buf[consumed:]`` and feeds it again with more data; with
    ``final`` (end of stream) nothing is held back: an unfinished format is junk.
    """
    items: list[StreamItem] = []
    i, n = 0, len(buf)
    while i < n:
        if buf[i] in _WHITESPACE:
            i += 1
        elif buf[i] == ord("~"):
            if n - i < 3 and not final:
                break
            name = buf[i + 1 : i + 3].decode("latin-1").upper()
            if name in NO_PARAMS:
                items.append(HostCommand(name))
                i += 3
                continue
            found = _PARAM_END.search(buf, i + 3)
            if found is None and not final:
                break
            end = found.start() if found else n
            items.append(HostCommand(name, buf[i + 3 : end].decode("latin-1")))
            i = end
        elif _XA.match(buf, i):
            closed = _XZ.search(buf, i + 3)
            if closed is None and n - i <= max_format and not final:
                break
            end = closed.end() if closed else n
            piece = buf[i:end]
            items.append(Format(piece) if closed and len(piece) <= max_format else Junk(piece))
            i = end
        else:
            if n - i < 3 and not final and b"^XA".startswith(buf[i:].upper()):
                break  # the start of a ^XA still on its way
            found = _RESYNC.search(buf, i + 1)
            if found:
                end = found.start()
            elif final:
                end = n
            else:  # hold back a tail that may be the start of a ^XA
                tail = 2 if buf[-2:].upper() == b"^X" else int(buf[-1:] == b"^")
                end = max(i + 1, n - tail)
            items.append(Junk(buf[i:end]))
            i = end
    return items, i


# -- parsing formats back ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedField:
    """One field with data: its origin, its text (for a barcode: what it encodes).

    ``symbology`` is ``None`` for text, ``"code128"`` or ``"gs1-128"`` (a Code
    128 symbol starting with FNC1) for ``^BC``; for GS1-128, ``data`` is the
    element string with GS (0x1D) where an FNC1 separates elements.
    """

    x: int
    y: int
    data: str
    symbology: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedLabel:
    """One format: its fields in order and how many copies ``^PQ`` asks for."""

    fields: tuple[ParsedField, ...]
    quantity: int
    raw: bytes

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(f.data for f in self.fields if f.symbology is None)

    @property
    def barcodes(self) -> tuple[ParsedField, ...]:
        return tuple(f for f in self.fields if f.symbology is not None)


# Layout commands that change how a label looks, not what it says.
_LAYOUT = frozenset(
    {
        "BY", "CF", "FB", "FR", "FW", "FX", "GB", "GC", "GD", "GE", "JM", "LH", "LL",
        "LR", "LS", "LT", "MD", "MM", "MN", "MT", "PM", "PO", "PR", "PW",
    }
)  # fmt: skip


@dataclass(slots=True)
class _Field:
    x: int = 0
    y: int = 0
    hex_indicator: str | None = None
    barcode: bool = False
    data: str | None = None


def parse_jobs(data: bytes) -> list[ParsedLabel]:
    """Every format of a complete job, in order; ``FrameError`` on anything else."""
    labels: list[ParsedLabel] = []
    items, _ = split_stream(data, final=True)
    for item in items:
        if isinstance(item, Format):
            labels.append(parse_format(item.data))
        elif isinstance(item, HostCommand):
            raise FrameError(f"host command ~{item.name} in a print job")
        else:
            raise FrameError(f"bytes outside any ^XA…^XZ format: {item.data[:40]!r}")
    return labels


def parse_format(data: bytes) -> ParsedLabel:
    """One ``^XA … ^XZ`` format into its fields (see the module docstring)."""
    text = data.decode("latin-1")  # one char per byte; field data is decoded per field
    if not (text[:3].upper() == "^XA" and text[-3:].upper() == "^XZ"):
        raise FrameError("a format must start with ^XA and end with ^XZ")
    body = text[3:-3]
    fields: list[ParsedField] = []
    field = _Field()
    quantity, utf8 = 1, False
    i = 0
    while i < len(body):
        char = body[i]
        if char in " \t\r\n":
            i += 1
            continue
        if char != "^":
            what = "a ~ command" if char == "~" else repr(char)
            raise FrameError(f"{what} at offset {i + 3} of a format")
        name = body[i + 1 : i + 3].upper()
        end = body.find("^", i + 3)
        end = len(body) if end < 0 else end
        params = body[i + 3 : end]
        i = end
        if name == "FD":
            if "~" in params:  # a printer would run it as a command, mid-field
                raise FrameError(f"a ~ command inside the field data at offset {i + 3}")
            field.data = params
            continue
        params = params.strip()
        if name in ("FO", "FT"):
            field.x, field.y = _origin(name, params)
        elif name == "FH":
            field.hex_indicator = params[:1] or _FH
        elif name == "BC":
            _check_bc(params)
            field.barcode = True
        elif name == "FS":
            if field.data is not None:
                fields.append(_finish(field, utf8))
            field = _Field()
        elif name == "PQ":
            quantity = _int("^PQ", params.split(",")[0] or "1")
        elif name == "CI":
            utf8 = params.split(",")[0] == "28"
        elif name[:1] == "A" or name in _LAYOUT:
            pass  # fonts and layout: they shape the next field, they carry no data
        elif name[:1] == "B":
            raise FrameError(f"barcode ^{name} is not supported (only ^BC, Code 128)")
        else:
            raise FrameError(f"unsupported ZPL command ^{name}")
    if field.data is not None:
        raise FrameError("^FD without ^FS at the end of a format")
    return ParsedLabel(tuple(fields), quantity, data)


def _int(what: str, value: str) -> int:
    if not value.isdigit():  # also refuses signs and spaces
        raise FrameError(f"{what}: {value!r} is not a number")
    return int(value)


def _origin(name: str, params: str) -> tuple[int, int]:
    parts = [*params.split(","), "0", "0"]
    return _int(f"^{name} x", parts[0] or "0"), _int(f"^{name} y", parts[1] or "0")


def _check_bc(params: str) -> None:
    parts = params.split(",")
    mode = parts[5].upper() if len(parts) > 5 else "N"
    if mode not in ("", "N"):
        raise FrameError(f"^BC mode {mode!r} is not supported (only N, with invocation codes)")


def _finish(field: _Field, utf8: bool) -> ParsedField:
    assert field.data is not None
    raw = field.data.encode("latin-1")
    if field.hex_indicator is not None:
        raw = _unhex(raw, field.hex_indicator.encode("latin-1"))
    try:
        data = raw.decode("utf-8" if utf8 else "latin-1")
    except UnicodeDecodeError as exc:
        raise FrameError(f"field data at {field.x},{field.y} is not UTF-8") from exc
    if not field.barcode:
        return ParsedField(field.x, field.y, data)
    value, gs1 = decode_code128(data)
    return ParsedField(field.x, field.y, value, "gs1-128" if gs1 else "code128")


def _unhex(raw: bytes, indicator: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i : i + 1] == indicator:
            pair = raw[i + 1 : i + 3]
            try:
                out.append(int(pair, 16))
            except ValueError:
                raise FrameError(f"bad ^FH escape {raw[i : i + 3]!r}") from None
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


_STARTS = {"9": "A", ":": "B", ";": "C"}
_SWITCHES = {"5": "C", "6": "B", "7": "A"}
_LITERALS = {"<": ">", "=": "~"}  # >< and >= stand for the two prefix characters


def decode_code128(data: str) -> tuple[str, bool]:
    """The text a ``^BC`` field in mode N encodes, and whether it is GS1-128.

    Invocation codes: ``>9 >: >;`` start in subset A/B/C, ``>5 >6 >7`` switch
    to C/B/A, ``>8`` is FNC1 (first symbol: GS1-128; later: GS), ``><`` and
    ``>=`` are a literal ``>`` and ``~``. Others raise ``FrameError``.
    """
    subset, i = "B", 0
    if data[:1] == ">" and data[1:2] in _STARTS:
        subset, i = _STARTS[data[1]], 2
    out: list[str] = []
    gs1 = False
    first = True
    while i < len(data):
        if data[i] == ">":
            code = data[i + 1 : i + 2]
            i += 2
            if code == "8":
                if first:
                    gs1 = True
                else:
                    out.append(GS)
            elif code in _SWITCHES:
                subset = _SWITCHES[code]
            elif code in _LITERALS and subset != "C":
                out.append(_LITERALS[code])
            else:
                raise FrameError(f"Code 128 invocation >{code} is not supported here")
        elif subset == "C":
            pair = data[i : i + 2]
            if not (len(pair) == 2 and pair.isascii() and pair.isdigit()):
                raise FrameError(f"Code 128 subset C needs digit pairs, got {pair!r}")
            out.append(pair)
            i += 2
        else:
            char = data[i]
            if not 32 <= ord(char) <= (126 if subset == "B" else 95):
                raise FrameError(f"{char!r} cannot be encoded in Code 128 subset {subset}")
            out.append(char)
            i += 1
        first = False
    return "".join(out), gs1
