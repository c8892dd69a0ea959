"""The ``~HS`` host status answer: real strings, faults, framing and the encode round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.errors import FrameError
from devices.printer.status import PrinterStatus, answer_length, encode_hs, parse_hs


def answer(one: str, two: str, three: str = "1234,0") -> bytes:
    """Three strings framed as the ZPL II Programming Guide gives them."""
    return b"".join(b"\x02" + s.encode() + b"\x03\r\n" for s in (one, two, three))


# A ready printer as logged from a real one in public driver code (9600 baud,
# 156-dot labels; direct thermal, tear-off, print width mode 6).
READY = answer("014,0,0,0156,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000000,1,000")


def test_a_ready_printer() -> None:
    status = parse_hs(READY)
    assert status.ready and status.problem is None and status.problems == ()
    assert status.label_length_dots == 156
    assert status.thermal_transfer  # q = 1 in that answer
    assert status.raw == READY


@pytest.mark.parametrize(
    ("one", "two", "problems"),
    [
        ("014,1,0,0156,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000000,1,000", ("paper out",)),
        ("014,0,1,0156,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000000,1,000", ("paused",)),
        ("014,0,0,0156,000,0,0,0,000,0,0,0", "001,0,1,0,1,2,6,0,00000000,1,000", ("head open",)),
        # ribbon out in thermal transfer mode is a fault ...
        ("014,0,0,0156,000,0,0,0,000,0,0,0", "001,0,0,1,1,2,6,0,00000000,1,000", ("ribbon out",)),
        # ... and means nothing to a direct thermal printer (q = 0)
        ("014,0,0,0156,000,0,0,0,000,0,0,0", "001,0,0,1,0,2,6,0,00000000,1,000", ()),
        (
            "014,1,1,0156,003,1,0,1,000,0,0,1",
            "001,0,1,0,1,2,6,0,00000007,1,000",
            ("head open", "paper out", "paused", "buffer full", "over temperature"),
        ),
    ],
)
def test_faults_most_physical_first(one: str, two: str, problems: tuple[str, ...]) -> None:
    status = parse_hs(answer(one, two))
    assert status.problems == problems
    assert status.problem == (problems[0] if problems else None)
    assert status.ready is (not problems)


def test_counters() -> None:
    one, two = "030,1,0,1218,003,0,0,1,000,0,0,0", "000,0,0,0,0,2,6,0,00000012,1,000"
    status = parse_hs(answer(one, two))
    assert status.formats_in_buffer == 3 and status.labels_remaining == 12
    assert status.partial_format and status.label_length_dots == 1218


@given(
    flags=st.lists(st.booleans(), min_size=9, max_size=9),
    formats=st.integers(0, 999),
    labels=st.integers(0, 99_999_999),
    length=st.integers(0, 9999),
)
def test_encode_parse_round_trip(flags: list[bool], formats: int, labels: int, length: int) -> None:
    status = PrinterStatus(
        *flags[:5],
        formats_in_buffer=formats,
        labels_remaining=labels,
        label_length_dots=length,
        partial_format=flags[5],
        under_temperature=flags[6],
        over_temperature=flags[7],
        thermal_transfer=flags[8],
    )
    encoded = encode_hs(status)
    assert answer_length(encoded) == len(encoded)
    back = parse_hs(encoded)
    assert back == status and back.raw == encoded


def test_encode_writes_the_manual_layout() -> None:
    encoded = encode_hs(PrinterStatus(paper_out=True, labels_remaining=3))
    one, two, three = encoded.split(b"\r\n")[:3]
    assert one == b"\x02030,1,0,0000,000,0,0,0,000,0,0,0\x03"
    assert two == b"\x02000,0,0,0,0,2,6,0,00000003,1,000\x03"
    assert three == b"\x021234,0\x03"


def test_answer_length_waits_for_the_third_string() -> None:
    assert answer_length(b"") is None
    assert answer_length(READY[:-3]) is None  # third ETX not yet there
    assert answer_length(READY[:-2]) == len(READY) - 2  # CR LF may follow later
    assert answer_length(READY + b"\x02next") == len(READY)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (READY.split(b"\r\n", 1)[1], "2 strings"),
        (answer("014,0,0,0156,000,0,0,0,000,0,0", "001,0,0,0,1,2,6,0,00000000,1,000"), "fields"),
        (answer("014,2,0,0156,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000000,1,000"), "'2'"),
        (answer("014,0,0,01x6,000,0,0,0,000,0,0,0", "001,0,0,0,1,2,6,0,00000000,1,000"), "number"),
        (b"junk" + READY, "expected STX"),
        (READY.replace(b"1234", b"\xe9\xe9"), "not ASCII"),
        (READY[:-3], "without ETX"),
        (READY * 20, "too long"),
    ],
)
def test_garbled_answers_raise(data: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse_hs(data)
