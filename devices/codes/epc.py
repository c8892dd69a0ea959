"""EPC (RFID tag identity) decoding through epcpy, with the filter bits read here;
SSCC-96 encoding for carton tags.

Promises: :func:`decode_epc_info` turns the hex of an EPC bank's EPC into an
:class:`EpcInfo` — GS1 schemes (SGTIN-96, SSCC-96, SGLN-96, GRAI-96, GIAI-96 and
what else epcpy knows) with pure-identity URI, tag URI, filter value and GS1 key;
anything whose header is not a GS1 EPC header (e.g. ``E2…`` TIDs written as EPCs,
vendor serials) comes back ``opaque`` with its hex, never as an error. Raises
:class:`~devices.errors.CodeError` only for text that is not hex or a GS1 header
whose body cannot be decoded (e.g. an impossible partition value).
Never performs I/O.

epcpy drops the 3-bit filter value when decoding from hex (GS1 TDS §14.5), so
it is read from bits 8–10 here.

:func:`encode_sscc96` is the inverse for logistic units: an 18-digit SSCC (as
printed on the carton label) to the 24 hex digits written to its tag, with the
filter value a portal's reader can select on; ``decode_epc_info`` of the result
gives back the SSCC and the filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from devices.codes.gs1 import parse_sscc
from devices.errors import CodeError

# Header byte -> binary scheme name (GS1 EPC Tag Data Standard, table 14-1) for
# the schemes whose 3 bits after the header are a filter value.
_FILTERED_HEADERS: dict[int, str] = {
    0x30: "sgtin-96",
    0x31: "sscc-96",
    0x32: "sgln-96",
    0x33: "grai-96",
    0x34: "giai-96",
    0x36: "sgtin-198",
    0x37: "grai-170",
    0x38: "giai-202",
    0x39: "sgln-195",
}
# Other GS1 headers epcpy can decode (no filter, or a differently sized one).
_OTHER_HEADERS: dict[int, str] = {0x35: "gid-96"}

_HEX_RE = re.compile(r"[0-9A-Fa-f]+")

# SSCC filter values (GS1 EPC Tag Data Standard, the SSCC filter value table;
# 1, 3, 4, 5 and 7 are reserved). A carton leaving at a dock door is a "full
# case for transport" (the TDS's own SSCC-96 example, 3154257BF4499602D2000000,
# carries 2); a pallet is a "unit load".
SSCC_FILTER_ALL_OTHERS = 0
SSCC_FILTER_FULL_CASE = 2
SSCC_FILTER_UNIT_LOAD = 6


@dataclass(frozen=True, slots=True)
class EpcInfo:
    """What an EPC says. ``scheme`` is ``None`` for opaque (non-GS1) EPCs."""

    hex: str | None  # upper case; None when decoded from a URI
    scheme: str | None  # "sgtin-96"
    uri: str | None  # pure identity, "urn:epc:id:sgtin:0614141.812345.6789"
    tag_uri: str | None  # "urn:epc:tag:sgtin-96:3.0614141.812345.6789"
    filter: int | None
    gs1_element_string: str | None  # HRI, "(01)80614141123458(21)6789"
    gs1_key: str | None  # GTIN-14 for SGTIN, SSCC for SSCC, GLN, GRAI, GIAI

    @property
    def opaque(self) -> bool:
        return self.scheme is None

    def to_json(self) -> dict[str, Any]:
        return {
            "hex": self.hex,
            "scheme": self.scheme,
            "uri": self.uri,
            "tag_uri": self.tag_uri,
            "filter": self.filter,
            "gs1_element_string": self.gs1_element_string,
            "gs1_key": self.gs1_key,
        }


def normalise_hex(text: str) -> str:
    """Upper-case hex without spaces or a ``0x`` prefix; ``CodeError`` when not hex."""
    cleaned = text.strip().replace(" ", "").replace(":", "")
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    if not cleaned or _HEX_RE.fullmatch(cleaned) is None:
        raise CodeError(f"EPC {text!r} is not hexadecimal")
    if len(cleaned) % 2:
        raise CodeError(f"EPC {text!r} has an odd number of hex digits")
    return cleaned.upper()


def is_gs1_header(hex_str: str) -> bool:
    if len(hex_str) < 2:
        return False
    header = int(hex_str[:2], 16)
    return header in _FILTERED_HEADERS or header in _OTHER_HEADERS


def decode_epc_info(hex_str: str) -> EpcInfo:
    """Decode one EPC given as hex (see the module docstring for the promises)."""
    h = normalise_hex(hex_str)
    header = int(h[:2], 16)
    scheme = _FILTERED_HEADERS.get(header) or _OTHER_HEADERS.get(header)
    if scheme is None:
        return EpcInfo(h, None, None, None, None, None, None)
    bits = int(scheme.rsplit("-", 1)[1])
    if len(h) * 4 < bits:
        raise CodeError(f"EPC {h} is too short for {scheme} ({len(h) * 4} of {bits} bits)")
    # epcpy wants exactly the scheme's bits; a 96-bit EPC arrives as 12 bytes, a
    # 198-bit one is padded to a 16-bit word boundary by the tag.
    try:
        words = -(-bits // 16) * 4  # hex digits up to the scheme's last 16-bit word
        tag = _epcpy_from_hex(h[:words] if bits == 96 else h)
        uri = str(tag.epc_uri)
    except Exception as exc:  # epcpy raises bare Exception subclasses and ValueError
        raise CodeError(f"EPC {h} has a GS1 header ({scheme}) but does not decode: {exc}") from exc
    filter_value: int | None = None
    tag_uri: str | None = None
    if header in _FILTERED_HEADERS:
        filter_value = (int(h[2:4], 16) >> 5) & 0x7
        body = uri.split(":", 4)[4]
        tag_uri = f"urn:epc:tag:{scheme}:{filter_value}.{body}"
    element_string = _call_str(tag, "gs1_element_string")
    key = _call_str(tag, "gs1_key")
    return EpcInfo(h, scheme, uri, tag_uri, filter_value, element_string, key)


def encode_sscc96(
    sscc: str, *, company_prefix_digits: int, filter_value: int = SSCC_FILTER_FULL_CASE
) -> str:
    """The SSCC-96 EPC of ``sscc`` (18 digits, check digit included): 24 upper-case
    hex digits.

    ``company_prefix_digits`` (6–12) is the length of the GS1 company prefix
    inside the SSCC: the binary form stores prefix and serial reference in two
    fields split by it (the TDS partition table), which the 18 digits alone do
    not tell. ``filter_value`` defaults to a full case for transport. Raises
    :class:`~devices.errors.CodeError` for a malformed SSCC, a wrong check
    digit, a prefix length or filter value out of range.
    """
    digits = parse_sscc(sscc)
    if not 6 <= company_prefix_digits <= 12:
        raise CodeError(f"company prefix length {company_prefix_digits} is not 6 to 12 digits")
    if not 0 <= filter_value <= 7:
        raise CodeError(f"filter value {filter_value} is not 0 to 7")
    # The serial reference is the extension digit followed by the serial (TDS §7).
    prefix = digits[1 : 1 + company_prefix_digits]
    serial_ref = digits[0] + digits[1 + company_prefix_digits : 17]
    try:
        from epcpy.epc_schemes.sscc import SSCC, SSCCFilterValue

        tag: Any = SSCC(f"urn:epc:id:sscc:{prefix}.{serial_ref}")
        hex_str = str(tag.hex(filter_value=SSCCFilterValue(str(filter_value))))
    except Exception as exc:  # epcpy raises bare Exception subclasses
        raise CodeError(f"SSCC {digits} does not encode as SSCC-96: {exc}") from exc
    return hex_str.upper().zfill(24)


def _epcpy_from_hex(h: str) -> Any:
    from epcpy.utils.parsers import hex_to_tag_encodable

    tag: Any = hex_to_tag_encodable(h)
    return tag


def _call_str(obj: Any, name: str) -> str | None:
    method = getattr(obj, name, None)
    if method is None:
        return None
    try:
        value = method()
    except Exception:  # GID has no GS1 key: epcpy raises rather than returning None
        return None
    return str(value)
