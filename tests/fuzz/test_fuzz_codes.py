"""Fuzz the code decoder (devices/codes/decode.py): GS1 element strings and
their HRI, GTINs, SSCCs, EPCs as hex and as URIs, location labels, SKUs.

``decode`` and ``decode_epc`` raise nothing but
:class:`~devices.errors.CodeError`, on any text and any mutation of a valid
code, within the budget; what they return serialises to JSON."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from devices.codes.decode import decode, decode_epc
from devices.errors import CodeError
from tests.fuzz._harness import FUZZ, Refused, mutated, within_budget

GS = "\x1d"
_AIMS = st.sampled_from([None, "]C1", "]E0", "]E4", "]I1", "]d2", "]Q3", "]e0", "]C0", "]A0"])
_VALID = st.sampled_from(
    [
        "0109501101020917" + GS + "10ABC",
        "(01)09501101020917(17)261231(10)LOT-7",
        "00376123450000000019",
        "0109501101020917172612311012345" + GS + "21SERIAL",
        "(00)376123450000000019",
        "(02)09501101020917(37)12(400)PO-1",
        "3074257BF7194E4000001A85",
        "urn:epc:id:sgtin:0614141.812345.6789",
        "epc:3074257BF7194E4000001A85",
        "09501101020917",
        "376123450000000019",
        "A-01-05",
        "LOC:DOCK-3",
        "SKU-A",
        "(8200)http://example.com(99)X",
        "(7003)2612311230(11)261201(13)261200",
    ]
)
_AI_VALUES = st.builds(
    lambda ai, value: f"({ai}){value}",
    st.sampled_from(
        [
            "00",
            "01",
            "02",
            "10",
            "11",
            "13",
            "15",
            "17",
            "21",
            "30",
            "37",
            "310",
            "3103",
            "392",
            "3922",
            "400",
            "410",
            "7003",
            "8200",
            "8020",
            "99",
            "4321",
            "7240",
        ]
    ),
    st.text(alphabet="0123456789ABCXYZ-./", max_size=40),
)


def _decode(code: str, symbology: str | None) -> None:
    result = within_budget(lambda: decode(code, symbology), declared=(CodeError,))
    if not isinstance(result, Refused):
        json.dumps(result.to_json())


@FUZZ
@given(code=st.text(max_size=200), symbology=_AIMS)
def test_any_text(code: str, symbology: str | None) -> None:
    _decode(code, symbology)


@FUZZ
@given(symbology=st.text(max_size=4), code=_VALID)
def test_any_symbology_argument(symbology: str, code: str) -> None:
    _decode(code, symbology)


@FUZZ
@given(data=st.data(), symbology=_AIMS)
def test_mutated_valid_codes(data: st.DataObject, symbology: str | None) -> None:
    raw = data.draw(mutated(_VALID.map(lambda s: s.encode("utf-8"))))
    _decode(raw.decode("latin-1"), symbology)


@FUZZ
@given(
    elements=st.lists(_AI_VALUES, min_size=1, max_size=6),
    form=st.sampled_from(["hri", "gs", "plain"]),
    symbology=_AIMS,
)
def test_element_strings_built_from_ais(
    elements: list[str], form: str, symbology: str | None
) -> None:
    """Structure-aware: real AIs with values of every length and alphabet."""
    if form == "hri":
        code = "".join(elements)
    else:
        sep = GS if form == "gs" else ""
        code = sep.join(e.replace("(", "").replace(")", "") for e in elements)
    _decode(code, symbology)


@FUZZ
@given(
    code=st.one_of(
        st.text(alphabet="0123456789ABCDEFabcdef", min_size=24, max_size=124),
        st.binary(min_size=1, max_size=62).map(lambda b: b.hex()),
        st.builds(
            lambda head, body: head + body,
            st.sampled_from(
                [
                    "30",
                    "31",
                    "32",
                    "33",
                    "34",
                    "35",
                    "36",
                    "37",
                    "38",
                    "39",
                    "3A",
                    "3B",
                    "3C",
                    "3D",
                    "3E",
                    "3F",
                    "2C",
                    "2D",
                    "2E",
                    "2F",
                    "E2",
                ]
            ),
            st.text(alphabet="0123456789ABCDEF", min_size=0, max_size=122),
        ),
        st.text(max_size=40),
    ),
    form=st.sampled_from(["raw", "epc:", "0x", "spaced"]),
)
def test_epc_hex(code: str, form: str) -> None:
    text = {"raw": code, "epc:": "epc:" + code, "0x": "0x" + code, "spaced": " ".join(code)}[form]
    within_budget(lambda: decode_epc(text), declared=(CodeError,))
    _decode(text, None)


@FUZZ
@given(
    scheme=st.sampled_from(
        [
            "sgtin",
            "sscc",
            "sgln",
            "grai",
            "giai",
            "gsrn",
            "gdti",
            "sgcn",
            "gid",
            "cpi",
            "itip",
            "upui",
            "pgln",
            "adi",
            "bic",
            "imovn",
            "foo",
        ]
    ),
    body=st.text(alphabet="0123456789.*-ABC%2F", max_size=60),
)
def test_epc_uris(scheme: str, body: str) -> None:
    _decode(f"urn:epc:id:{scheme}:{body}", None)
