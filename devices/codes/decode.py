"""One entry point that says what a scanned code or an EPC means.

Promises: :func:`decode` is pure (no I/O, no clock) and either returns a
:class:`DecodedCode` or raises :class:`~devices.errors.CodeError` saying why the
code is invalid. It never maps a code to a warehouse location or an item — the
edge does that with its own tables.

Rules, in order (documented in docs/devices-serial.md):

1. An AIM id at the start of the code (``]C1…``) is split off; an explicit
   ``symbology`` argument wins over it.
2. GS1 symbologies (``]C1 ]d2 ]Q3 ]e0``) must hold a valid GS1 element string.
   ``]E0 ]E4 ]I1`` must hold one GTIN with a valid check digit.
3. Without a GS1 symbology: ``urn:epc:`` / ``epc:`` prefixes and 24+ hex digits
   with a letter or a GS1 EPC header decode as EPCs; HRI text ``(01)…`` and text
   with a GS decode as GS1; 8/12/13/14 digits are a GTIN and 18 digits an SSCC
   (check digits enforced); text starting with AI (00) + 18 digits or (01)/(02)
   + 14 digits is an element string. Digits that match none of these are a SKU.
4. Location labels: ``LOC:<label>`` or the pattern ``DEFAULT_LOCATION_PATTERN``
   (zone letters, aisle, bay, optional level: ``A-01-02``, ``AB01-002-1``); a
   deployment can pass its own compiled pattern.
5. ``sku``: letters, digits and ``. _ - /``, up to 48 characters. Anything else
   printable is ``unknown`` (not an error); control characters other than GS and
   empty codes are errors.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from devices.codes.aim import describe, is_aim, split_aim
from devices.codes.epc import EpcInfo, decode_epc_info, is_gs1_header, normalise_hex
from devices.codes.gs1 import (
    GS,
    GS1Element,
    looks_like_hri,
    parse_element_string,
    parse_gtin,
    parse_sscc,
)
from devices.errors import CodeError

DEFAULT_LOCATION_PATTERN = re.compile(r"[A-Z]{1,3}-?\d{2}-\d{2,3}(?:-\d{1,2})?")
LOCATION_PREFIX = "LOC:"
_SKU_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/]{0,47}")
_EPC_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{4}){6,31}")  # 96..496 bits, whole 16-bit words
# An SSCC or GTIN AI with its full fixed-length value: keyboard-wedge scanners
# that send no AIM id still deliver these element strings.
_GS1_START_RE = re.compile(r"(?:00\d{18}|0[12]\d{14})")
_CONTROL_RE = re.compile(r"[\x00-\x1c\x1e\x1f\x7f]")
_MAX_CODE = 4096  # longest 2D symbol payloads are ~3 kB; more is not a scan


class CodeKind(enum.StrEnum):
    GS1 = "gs1"  # a GS1 element string (one or more AIs)
    GTIN = "gtin"  # a bare GTIN (EAN/UPC/ITF-14 or typed digits)
    SSCC = "sscc"  # a bare 18-digit SSCC
    EPC = "epc"  # a GS1-encoded EPC
    OPAQUE_EPC = "opaque_epc"  # an EPC that is not GS1-encoded, kept as hex
    LOCATION = "location"
    SKU = "sku"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DecodedCode:
    """What a code means. Only the fields of its ``kind`` are set."""

    kind: CodeKind
    data: str  # the code without AIM id (GS kept)
    symbology: str | None = None  # AIM id, "]C1"
    symbology_name: str | None = None
    elements: tuple[GS1Element, ...] = ()
    gtin: str | None = None  # as encoded (8, 12, 13 or 14 digits)
    sscc: str | None = None
    hri: str | None = None  # "(01)09521234543213(10)ABC"
    epc: EpcInfo | None = None
    location: str | None = None
    sku: str | None = None

    @property
    def gtin14(self) -> str | None:
        return self.gtin.zfill(14) if self.gtin is not None else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; GS is written as ``<GS>`` so it stays readable."""
        out: dict[str, Any] = {
            "valid": True,
            "kind": self.kind.value,
            "data": self.data.replace(GS, "<GS>"),
            "symbology": self.symbology,
            "symbology_name": self.symbology_name,
        }
        if self.elements:
            out["elements"] = [e.to_json() for e in self.elements]
        if self.hri is not None:
            out["hri"] = self.hri
        if self.gtin is not None:
            out["gtin"] = self.gtin
            out["gtin14"] = self.gtin14
        if self.sscc is not None:
            out["sscc"] = self.sscc
        if self.epc is not None:
            out["epc"] = self.epc.to_json()
        if self.location is not None:
            out["location"] = self.location
        if self.sku is not None:
            out["sku"] = self.sku
        return out


def decode_epc(hex_str: str) -> DecodedCode:
    """An EPC from a tag read: ``epc`` when GS1-encoded, ``opaque_epc`` otherwise."""
    info = decode_epc_info(hex_str)
    kind = CodeKind.OPAQUE_EPC if info.opaque else CodeKind.EPC
    return DecodedCode(kind=kind, data=info.hex or hex_str, epc=info)


def decode(
    code: str,
    symbology: str | None = None,
    *,
    location_pattern: re.Pattern[str] | None = None,
) -> DecodedCode:
    """Say what ``code`` means (rules in the module docstring); ``CodeError`` if invalid."""
    if symbology is not None and not is_aim(symbology):
        raise CodeError(f"symbology {symbology!r} is not an AIM identifier like ']C1'")
    # Scanners end lines with CR/LF; a label is never meant to include them.
    text = code.strip("\r\n")
    if len(text) > _MAX_CODE:
        raise CodeError(f"code is {len(text)} characters long (at most {_MAX_CODE})")
    embedded, data = split_aim(text)
    aim = symbology if symbology is not None else embedded
    if embedded is not None and symbology is not None and embedded != symbology:
        # Both given and different: the embedded one is data, not an id.
        data = text
    if not data:
        raise CodeError("empty code")
    bad = _CONTROL_RE.search(data)
    if bad is not None:
        raise CodeError(f"control character 0x{ord(bad.group()):02X} at offset {bad.start()}")
    known = describe(aim)
    name = known.name if known is not None else None

    if known is not None and known.gs1:
        return _gs1(data, aim, name)
    # ITF also carries non-GTIN numbers; only ITF-14 length means a GTIN.
    if known is not None and known.gtin_only and not (aim == "]I1" and len(data) != 14):
        if not data.isdigit():
            raise CodeError(f"{known.name} data must be digits, got {data!r}")
        gtin = parse_gtin(data)
        return DecodedCode(CodeKind.GTIN, data, aim, name, gtin=gtin, hri=f"(01){gtin.zfill(14)}")

    epc = _maybe_epc(data)
    if epc is not None:
        return DecodedCode(
            CodeKind.OPAQUE_EPC if epc.opaque else CodeKind.EPC, data, aim, name, epc=epc
        )
    if aim is None:
        if GS in data or looks_like_hri(data):
            return _gs1(data, aim, name)
        if data.isdigit():
            if len(data) in (8, 12, 13, 14):
                gtin = parse_gtin(data)
                return DecodedCode(CodeKind.GTIN, data, gtin=gtin, hri=f"(01){gtin.zfill(14)}")
            if len(data) == 18:
                sscc = parse_sscc(data)
                return DecodedCode(CodeKind.SSCC, data, sscc=sscc, hri=f"(00){sscc}")
        if _GS1_START_RE.match(data):
            return _gs1(data, aim, name)
    if GS in data:
        raise CodeError(f"GS separator in a non-GS1 symbology ({aim})")

    if data.startswith(LOCATION_PREFIX) and len(data) > len(LOCATION_PREFIX):
        return DecodedCode(
            CodeKind.LOCATION, data, aim, name, location=data[len(LOCATION_PREFIX) :]
        )
    pattern = location_pattern if location_pattern is not None else DEFAULT_LOCATION_PATTERN
    if pattern.fullmatch(data):
        return DecodedCode(CodeKind.LOCATION, data, aim, name, location=data)
    if _SKU_RE.fullmatch(data):
        return DecodedCode(CodeKind.SKU, data, aim, name, sku=data)
    return DecodedCode(CodeKind.UNKNOWN, data, aim, name)


def _gs1(data: str, aim: str | None, name: str | None) -> DecodedCode:
    parsed = parse_element_string(data)
    return DecodedCode(
        CodeKind.GS1,
        data,
        aim,
        name,
        elements=parsed.elements,
        gtin=parsed.gtin,
        sscc=parsed.sscc,
        hri=parsed.hri,
    )


def _maybe_epc(data: str) -> EpcInfo | None:
    lowered = data.lower()
    if lowered.startswith("urn:epc:id:"):
        return _epc_from_uri(data)
    if lowered.startswith("epc:"):
        return decode_epc_info(data[4:])
    if _EPC_HEX_RE.fullmatch(data) and (not data.isdigit() or is_gs1_header(normalise_hex(data))):
        # All-digit strings go to the GS1 rules unless they start with a GS1 EPC
        # header; letters A–F in a 24+ digit hex string cannot be GS1 data.
        if data.isdigit():
            return None
        return decode_epc_info(data)
    return None


def _epc_from_uri(uri: str) -> EpcInfo:
    from epcpy.utils.parsers import epc_pure_identity_to_tag_encodable

    try:
        tag: Any = epc_pure_identity_to_tag_encodable(uri)
        pure = str(tag.epc_uri)
        element_string = str(tag.gs1_element_string())
        key = str(tag.gs1_key())
    except Exception as exc:  # epcpy's ConvertException derives from Exception
        raise CodeError(f"not a valid EPC pure identity URI: {exc}") from exc
    scheme = pure.split(":")[3]
    return EpcInfo(None, scheme, pure, None, None, element_string, key)
