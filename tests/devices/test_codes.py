"""Code and EPC decoding against vectors published by GS1.

Sources (cited per vector below):
- GS1 General Specifications (GenSpecs) §7.9 "Check digit calculation" example:
  GTIN-13 629104150021 → check digit 3.
- GS1 General Specifications / GS1 DataMatrix Guideline element-string example
  (01)09501101530003(17)140704(10)AB-123.
- GS1 prefix 952 is reserved by GS1 "for demonstrations and examples"
  (GenSpecs §1.4.4); 09521234543213 is GS1's demonstration GTIN.
- GS1 EPC Tag Data Standard (TDS) 2.x: §14.5 / Appendix E SGTIN-96 example
  urn:epc:tag:sgtin-96:3.0614141.812345.6789 ↔ 3074257BF7194E4000001A85;
  §7 examples of GS1 keys ↔ EPC URIs: SSCC (00)106141412345678908 ↔
  urn:epc:id:sscc:0614141.1234567890, SGLN (414)0614141123452 + ext 400 ↔
  urn:epc:id:sgln:0614141.12345.400, GRAI (8003)00614141123452400 ↔
  urn:epc:id:grai:0614141.12345.400, GIAI (8004)061414112345400 ↔
  urn:epc:id:giai:0614141.12345400.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.codes import CodeKind, decode, decode_epc
from devices.errors import CodeError

GS = "\x1d"


# --- GS1 element strings -------------------------------------------------------


def test_gs1_128_with_aim_id_and_gs_separator() -> None:
    # GenSpecs example element string, transmitted as a scanner sends it: AIM id
    # ]C1 instead of FNC1, GS after the variable-length AI (10) (GSCN 16-477).
    d = decode("]C10109501101530003" + "17140704" + "10AB-123")
    assert d.kind is CodeKind.GS1
    assert d.symbology == "]C1"
    assert d.symbology_name == "GS1-128"
    assert [(e.ai, e.value) for e in d.elements] == [
        ("01", "09501101530003"),
        ("17", "140704"),
        ("10", "AB-123"),
    ]
    assert d.elements[1].title == "USE BY or EXPIRY"
    assert d.elements[1].date == "2014-07-04"
    assert d.elements[2].title == "BATCH/LOT"
    assert d.gtin == "09501101530003"
    assert d.hri == "(01)09501101530003(17)140704(10)AB-123"


def test_gs_separates_variable_length_fields() -> None:
    d = decode("0109521234543213" + "10ABC123" + GS + "17261231", "]d2")
    assert d.symbology_name == "GS1 DataMatrix"
    assert [e.ai for e in d.elements] == ["01", "10", "17"]
    assert d.elements[1].value == "ABC123"
    assert d.elements[2].date == "2026-12-31"


def test_hri_with_parentheses_is_accepted() -> None:
    d = decode("(01)09501101530003(17)140704(10)AB-123")
    assert d.kind is CodeKind.GS1
    assert d.gtin == "09501101530003"


def test_wedge_scan_without_aim_is_recognised_as_element_string() -> None:
    d = decode("0109521234543213" + "10ABC")
    assert d.kind is CodeKind.GS1
    assert d.gtin == "09521234543213"


@pytest.mark.parametrize("aim", ["]C1", "]d2", "]Q3", "]e0"])
def test_bad_gtin_check_digit_in_element_string_is_an_error(aim: str) -> None:
    # 09521234543213 is valid (GS1 demo GTIN); last digit changed to 4.
    with pytest.raises(CodeError, match="check digit"):
        decode("0109521234543214", aim)


def test_bad_sscc_check_digit_is_an_error() -> None:
    # TDS SSCC 106141412345678908 with the check digit changed.
    with pytest.raises(CodeError, match="check digit"):
        decode("00106141412345678907", "]C1")
    with pytest.raises(CodeError, match="check digit"):
        decode("106141412345678907")


def test_sscc_from_ai_00() -> None:
    d = decode("]C100106141412345678908")
    assert d.kind is CodeKind.GS1
    assert d.sscc == "106141412345678908"
    assert d.elements[0].title == "SSCC"


def test_bare_sscc_digits() -> None:
    d = decode("106141412345678908")
    assert d.kind is CodeKind.SSCC
    assert d.hri == "(00)106141412345678908"


def test_impossible_date_is_an_error() -> None:
    with pytest.raises(CodeError, match="date"):
        decode("0109521234543213" + "17260231", "]C1")


def test_gs1_symbology_with_non_gs1_data_is_an_error() -> None:
    with pytest.raises(CodeError, match="GS1"):
        decode("HELLO", "]C1")


def test_trailing_gs_is_tolerated() -> None:
    d = decode("0109521234543213" + "10ABC" + GS, "]C1")
    assert d.elements[-1].value == "ABC"


# --- GTINs by symbology -----------------------------------------------------


def test_ean13_genspecs_check_digit_example() -> None:
    # GenSpecs §7.9: 629104150021 → check digit 3.
    d = decode("6291041500213", "]E0")
    assert d.kind is CodeKind.GTIN
    assert d.gtin14 == "06291041500213"
    with pytest.raises(CodeError, match="check digit"):
        decode("6291041500214", "]E0")


def test_bare_gtin_digits_are_checked() -> None:
    assert decode("09521234543213").kind is CodeKind.GTIN
    with pytest.raises(CodeError, match="check digit"):
        decode("09521234543212")


def test_itf14_and_ean8_must_be_digits() -> None:
    assert decode("]I109521234543213").gtin == "09521234543213"
    with pytest.raises(CodeError, match="check digit"):
        decode("]I109521234543214")
    assert decode("]I1123456").kind is CodeKind.SKU  # ITF, but not ITF-14
    with pytest.raises(CodeError):
        decode("ABCDEFGH", "]E4")


def test_explicit_symbology_wins_and_unknown_aim_is_kept() -> None:
    d = decode("ABC-123", "]C0")
    assert (d.kind, d.symbology, d.symbology_name) == (CodeKind.SKU, "]C0", "Code 128")
    d = decode("]X0ABC-123")
    assert (d.symbology, d.symbology_name, d.sku) == ("]X0", None, "ABC-123")


def test_non_gs1_symbology_digits_are_a_sku_not_a_gtin() -> None:
    # Code 128 without FNC1 carries no GS1 semantics.
    d = decode("12345678", "]C0")
    assert d.kind is CodeKind.SKU


# --- EPC ----------------------------------------------------------------------

TDS_EPCS = [
    # (hex, scheme, pure identity URI, filter, GS1 key) — TDS examples, see module doc.
    (
        "3074257BF7194E4000001A85",
        "sgtin-96",
        "urn:epc:id:sgtin:0614141.812345.6789",
        3,
        "80614141123458",
    ),
    (
        "3154257BF4499602D2000000",
        "sscc-96",
        "urn:epc:id:sscc:0614141.1234567890",
        2,
        "106141412345678908",
    ),
    (
        "3234257BF460720000000190",
        "sgln-96",
        "urn:epc:id:sgln:0614141.12345.400",
        1,
        "0614141123452",
    ),
    (
        "3334257BF40C0E4000000190",
        "grai-96",
        "urn:epc:id:grai:0614141.12345.400",
        1,
        "0614141123452400",
    ),
    (
        "3434257BF400000000BC6038",
        "giai-96",
        "urn:epc:id:giai:0614141.12345400",
        1,
        "061414112345400",
    ),
]


@pytest.mark.parametrize(("hex_", "scheme", "uri", "filt", "key"), TDS_EPCS)
def test_tds_epc_vectors(hex_: str, scheme: str, uri: str, filt: int, key: str) -> None:
    d = decode_epc(hex_)
    assert d.kind is CodeKind.EPC
    assert d.epc is not None
    assert d.epc.scheme == scheme
    assert d.epc.uri == uri
    assert d.epc.filter == filt
    assert d.epc.gs1_key == key
    assert d.epc.tag_uri == f"urn:epc:tag:{scheme}:{filt}.{uri.split(':', 4)[4]}"
    # The same EPC typed into `decode` (lower case too) gives the same answer.
    assert decode(hex_.lower()).epc == d.epc


def test_sgtin_tag_uri_matches_tds_example() -> None:
    d = decode_epc("3074257BF7194E4000001A85")
    assert d.epc is not None
    assert d.epc.tag_uri == "urn:epc:tag:sgtin-96:3.0614141.812345.6789"
    assert d.epc.gs1_element_string == "(01)80614141123458(21)6789"


def test_filter_bits_are_read_from_the_hex() -> None:
    # Same SGTIN with filter 1 (point of sale) instead of 3: byte 1 = 001 101 00.
    d = decode_epc("3034257BF7194E4000001A85")
    assert d.epc is not None
    assert d.epc.filter == 1
    assert d.epc.uri == "urn:epc:id:sgtin:0614141.812345.6789"


def test_sscc_epc_matches_printed_sscc() -> None:
    # TDS: the SSCC in the tag equals the SSCC of AI (00) on the label.
    tag = decode_epc("3154257BF4499602D2000000")
    label = decode("]C100106141412345678908")
    assert tag.epc is not None
    assert tag.epc.gs1_key == label.sscc


@pytest.mark.parametrize(
    "hex_", ["E2801160600002054CC2096F", "E200001D8812345678901234", "AD" * 12]
)
def test_non_gs1_epcs_are_opaque_not_errors(hex_: str) -> None:
    d = decode_epc(hex_)
    assert d.kind is CodeKind.OPAQUE_EPC
    assert d.epc is not None
    assert (d.epc.hex, d.epc.scheme, d.epc.uri) == (hex_.upper(), None, None)


def test_invalid_epc_hex_is_an_error() -> None:
    for bad in ["30742G7BF7194E4000001A85", "307", ""]:
        with pytest.raises(CodeError):
            decode_epc(bad)
    # GS1 header with an impossible partition (111).
    with pytest.raises(CodeError, match="partition"):
        decode_epc("30FC257BF7194E4000001A85")
    with pytest.raises(CodeError, match="too short"):
        decode_epc("3074257BF7194E40")


def test_epc_pure_identity_uri() -> None:
    d = decode("urn:epc:id:sgtin:0614141.812345.6789")
    assert d.kind is CodeKind.EPC
    assert d.epc is not None
    assert d.epc.gs1_key == "80614141123458"


# --- SKU, locations, unknown ----------------------------------------------------


@pytest.mark.parametrize("label", ["A-01-02", "AB01-002-1", "ZZZ-99-999-12"])
def test_location_labels_by_default_pattern(label: str) -> None:
    d = decode(label)
    assert (d.kind, d.location) == (CodeKind.LOCATION, label)


def test_location_prefix_and_custom_pattern() -> None:
    assert decode("LOC:DOCK-3").location == "DOCK-3"
    custom = re.compile(r"R\d{3}S\d{2}")
    assert decode("R101S07", location_pattern=custom).kind is CodeKind.LOCATION
    assert decode("R101S07").kind is CodeKind.SKU


def test_sku_unknown_and_invalid() -> None:
    assert decode("SKU-4711").sku == "SKU-4711"
    assert decode("12345").kind is CodeKind.SKU
    assert decode("hello world").kind is CodeKind.UNKNOWN
    assert decode("ABC\r\n").sku == "ABC"
    for bad in ["", "\r\n", "AB\x00C", "AB\x07"]:
        with pytest.raises(CodeError):
            decode(bad)
    with pytest.raises(CodeError, match="GS separator"):
        decode("AB" + GS + "CD", "]C0")
    with pytest.raises(CodeError, match="AIM"):
        decode("ABC", "C1")


def test_to_json_is_json_serialisable() -> None:
    for code in [
        "]C10109521234543213" + "10ABC" + GS + "17261231",
        "A-01-02",
        "3074257BF7194E4000001A85",
    ]:
        blob = json.dumps(decode(code).to_json())
        assert json.loads(blob)["valid"] is True
    assert "<GS>" in json.dumps(decode("0109521234543213" + "10A" + GS + "17261231").to_json())


# --- robustness -----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.sampled_from([None, "]C1", "]E0", "]C0", "]d2"]))
def test_decode_answers_or_raises_code_error_never_anything_else(
    text: str, aim: str | None
) -> None:
    try:
        d = decode(text, aim)
    except CodeError:
        return
    json.dumps(d.to_json())


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=32))
def test_decode_epc_never_crashes(raw: bytes) -> None:
    try:
        d = decode_epc(raw.hex())
    except CodeError:
        return
    assert d.kind in (CodeKind.EPC, CodeKind.OPAQUE_EPC)
