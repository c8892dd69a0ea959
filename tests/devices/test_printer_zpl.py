"""ZPL carton labels: render → parse round trip, refused input, the stream framer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.errors import FrameError, LabelError
from devices.printer.zpl import (
    GS,
    CartonLabel,
    Format,
    HostCommand,
    Junk,
    decode_code128,
    parse_format,
    parse_jobs,
    render,
    render_batch,
    split_stream,
)

SSCC = "376123450000000016"  # GS1 check digit 6
SSCC_2 = "106141411234567897"


def label(**changes: object) -> CartonLabel:
    fields: dict[str, object] = {
        "sscc": SSCC,
        "ship_postcode": "8001",
        "ship_region": "Zürich",
        "order_ref": "SO-4711",
        "carton_no": 2,
        "carton_count": 3,
        "sender": "PickEdge DC Nord",
        "company_prefix_length": 7,
    }
    fields.update(changes)
    return CartonLabel(**fields)  # type: ignore[arg-type]


# --- round trip -------------------------------------------------------------------


def test_render_parses_back_to_exactly_what_the_label_shows() -> None:
    job = render(label())
    assert job.startswith(b"^XA") and job.rstrip().endswith(b"^XZ")
    assert b"^FD>;>800" + SSCC.encode() + b"^FS" in job  # start C, FNC1, AI (00)
    (parsed,) = parse_jobs(job)
    assert parsed.texts == (
        "PickEdge DC Nord",
        "SHIP TO",
        "8001",
        "Zürich",
        "ORDER SO-4711",
        "CARTON 2 OF 3",
        "SSCC",
        "(00) 3 7612345 000000001 6",
    )
    (barcode,) = parsed.barcodes
    assert (barcode.symbology, barcode.data) == ("gs1-128", "00" + SSCC)
    assert parsed.quantity == 1
    assert parsed.raw == job.strip()


def test_optional_fields_are_left_out_and_hri_groups_without_prefix_length() -> None:
    (parsed,) = parse_jobs(render(label(sender="", ship_region="", company_prefix_length=None)))
    assert parsed.texts[:3] == ("SHIP TO", "8001", "ORDER SO-4711")
    assert parsed.texts[-1].replace(" ", "") == "(00)" + SSCC


def test_batch_keeps_order_in_one_job() -> None:
    labels = [label(sscc=s, carton_no=n) for n, s in enumerate((SSCC, SSCC_2, SSCC), start=1)]
    parsed = parse_jobs(render_batch(labels))
    assert [p.barcodes[0].data for p in parsed] == ["00" + SSCC, "00" + SSCC_2, "00" + SSCC]
    assert [p.texts[5] for p in parsed] == [f"CARTON {n} OF 3" for n in (1, 2, 3)]
    with pytest.raises(LabelError):
        render_batch([])


_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn")),
    min_size=1,
    max_size=40,
).filter(str.strip)


@given(region=_TEXT, order=_TEXT, sender=_TEXT)
def test_any_allowed_text_round_trips_and_stays_inside_its_field(
    region: str, order: str, sender: str
) -> None:
    job = render(label(ship_region=region, order_ref=order, sender=sender))
    # whatever the text, the job holds one format and no printer command
    assert job.count(b"^XA") == 1 and job.count(b"^XZ") == 1
    assert b"~" not in job
    (parsed,) = parse_jobs(job)
    assert parsed.texts[0] == sender
    assert parsed.texts[3] == region
    assert parsed.texts[4] == f"ORDER {order}"


# --- refused input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "sscc",
    [
        "376123450000000018",  # wrong check digit
        "37612345000000001",  # 17 digits
        "3761234500000000166",  # 19 digits
        "37612345000000001X",
        "٣76123450000000016",  # an Arabic-Indic 3: a digit, not an ASCII one
        " 376123450000000016",
    ],
)
def test_bad_sscc_is_refused(sscc: str) -> None:
    with pytest.raises(LabelError) as raised:
        label(sscc=sscc)
    assert isinstance(raised.value, ValueError)
    assert raised.value.code == "invalid_label"


@pytest.mark.parametrize(
    "changes",
    [
        {"ship_region": "line\r\nbreak"},
        {"order_ref": "SO\x00"},
        {"sender": "zero\u200bwidth"},  # Cf: invisible
        {"order_ref": "   "},
        {"ship_region": "x" * 41},
        {"ship_postcode": "80^01"},
        {"ship_postcode": ""},
        {"ship_postcode": "8001~JA"},
        {"carton_no": 0},
        {"carton_no": 4},
        {"carton_no": True},
        {"carton_count": 10000},
        {"company_prefix_length": 6},
    ],
)
def test_field_data_that_could_break_the_label_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(LabelError):
        label(**changes)


def test_carets_and_tildes_go_out_hex_escaped() -> None:
    job = render(label(ship_region="A^XZ^XA~JA_", order_ref="~HS"))
    assert b"A_5EXZ_5EXA_7EJA_5F" in job
    assert b"~" not in job
    (parsed,) = parse_jobs(job)
    assert parsed.texts[3] == "A^XZ^XA~JA_"
    assert parsed.texts[4] == "ORDER ~HS"


# --- parsing what other software sends -----------------------------------------------


def test_common_commands_latin1_and_copies() -> None:
    job = (
        b"^XA^PW812^LH0,0^CFA,30^FX a comment^FS\r\n"
        b"^FT50,100^FDCaf\xe9^FS^FO10,10^GB100,100,3^FS"
        b"^BY3^FO50,200^BCN,100,Y,N,N^FD>:SKU-1>52345>6x^FS^PQ3^XZ"
    )
    (parsed,) = parse_jobs(job)
    assert parsed.texts == ("Café",)  # without ^CI28, field data is Latin-1
    (barcode,) = parsed.barcodes
    assert (barcode.symbology, barcode.data, barcode.x) == ("code128", "SKU-12345x", 50)
    assert parsed.quantity == 3


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (">;>80037612345000000001610>6ABC", ("0037612345000000001610ABC", True)),
        (">;>8010950110153000310>6AB>8>52112", (f"010950110153000310AB{GS}2112", True)),
        (">:A><B>=C", ("A>B~C", False)),
        ("plain", ("plain", False)),
        (">9ABC", ("ABC", False)),
    ],
)
def test_code128_invocation_codes(data: str, expected: tuple[str, bool]) -> None:
    assert decode_code128(data) == expected


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (b"^XA^ZZ1^XZ", "unsupported ZPL command ^ZZ"),
        (b"^XA^FO1,1^B3N,N,100^FD123^FS^XZ", "only ^BC"),
        (b"^XA^FO1,1^BCN,100,N,N,N,D^FD(00)1^FS^XZ", "mode 'D'"),
        (b"^XA^FO1,1^BCN^FD>;123^FS^XZ", "digit pairs"),
        (b"^XA^FO1,1^BCN^FD>:a>0^FS^XZ", "invocation >0"),
        (b"^XA^FO1,1^BCN^FD>9abc^FS^XZ", "subset A"),
        (b"^XA^FO1,1^FH^FD_ZZ^FS^XZ", "bad ^FH escape"),
        (b"^XA^FO1,1^FDopen^XZ", "^FD without ^FS"),
        (b"^XA^FOx,1^FDa^FS^XZ", "not a number"),
        (b"^XA^FO1,1^FDa~HS^FS^XZ", "~ command"),
        (b"^XA^CI28^FO1,1^FD\xff^FS^XZ", "not UTF-8"),
        (b"~HS^XA^XZ", "host command ~HS"),
        (b"hello^XA^XZ", "outside any ^XA"),
        (b"^XA^FO1,1^FDcut", "outside any ^XA"),  # an unfinished format is junk at the end
    ],
)
def test_unparseable_jobs_raise_a_clear_error(job: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message.replace("^", r"\^").replace("(", r"\(")):
        parse_jobs(job)


def test_parse_format_needs_the_frame() -> None:
    with pytest.raises(FrameError, match="start with"):
        parse_format(b"^FDx^FS")


# --- the stream as a printer sees it -----------------------------------------------------


def test_split_stream_fed_byte_by_byte_equals_fed_whole() -> None:
    stream = b"\r\n~HS" + render(label()) + b"~PP junk ~SD25\n" + render(label()) + b"~HS"
    whole, used = split_stream(stream, final=True)
    assert used == len(stream)
    fmt = Format(render(label()).strip())
    assert whole == [
        HostCommand("HS"),
        fmt,
        HostCommand("PP"),
        Junk(b"junk "),
        HostCommand("SD", "25"),
        fmt,
        HostCommand("HS"),
    ]
    items: list[object] = []
    buf = b""
    for byte in stream:
        buf += bytes([byte])
        got, used = split_stream(buf)
        items += got
        buf = buf[used:]
    got, _ = split_stream(buf, final=True)
    items += got
    assert [i for i in items if not isinstance(i, Junk)] == [
        i for i in whole if not isinstance(i, Junk)
    ]
    # fed in pieces, junk may come out in pieces; the space after it is whitespace
    assert b"".join(i.data for i in items if isinstance(i, Junk)).strip() == b"junk"


def test_split_stream_holds_an_unfinished_format_and_caps_a_runaway_one() -> None:
    items, used = split_stream(b"^XA^FO1,1^FDhal")
    assert (items, used) == ([], 0)
    items, used = split_stream(b"^X")
    assert (items, used) == ([], 0)
    items, used = split_stream(b"^XA" + b"x" * 100, max_format=50)
    assert items == [Junk(b"^XA" + b"x" * 100)] and used == 103
