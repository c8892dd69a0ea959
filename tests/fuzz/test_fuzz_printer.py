"""Fuzz what comes back from and goes to a ZPL printer: the ``~HS`` host
status answer (devices/printer/status.py, what the box reads from a printer)
and the ZPL stream splitter and job parser (devices/printer/zpl.py, what the
printer simulator and the label tests read).

``answer_length`` never raises; ``parse_hs`` and ``parse_jobs`` raise nothing
but :class:`~devices.errors.FrameError`; ``split_stream`` never raises and
accounts for every byte; all within the budget."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from devices.errors import FrameError, LabelError
from devices.printer import zpl
from devices.printer.status import MAX_ANSWER, PrinterStatus, answer_length, encode_hs, parse_hs
from tests.fuzz._harness import FUZZ, Refused, mutated, within_budget

_STATUS = st.builds(
    PrinterStatus,
    paper_out=st.booleans(),
    paused=st.booleans(),
    head_open=st.booleans(),
    ribbon_out=st.booleans(),
    buffer_full=st.booleans(),
    formats_in_buffer=st.integers(0, 999),
    labels_remaining=st.integers(0, 99_999_999),
    label_length_dots=st.integers(0, 9999),
    partial_format=st.booleans(),
    thermal_transfer=st.booleans(),
)
_HS = _STATUS.map(encode_hs)


def _read_answer(data: bytes) -> PrinterStatus | Refused:
    """What PrinterLink._read_answer does with what arrives: wait for the
    third string (giving up past MAX_ANSWER), then parse it."""
    end = answer_length(data)
    if end is None:
        return Refused(FrameError("incomplete"))
    return parse_hs(data[:end])


@FUZZ
@given(data=st.binary(max_size=MAX_ANSWER + 64))
def test_hs_any_bytes(data: bytes) -> None:
    within_budget(lambda: _read_answer(data), declared=(FrameError,))


@FUZZ
@given(data=st.data())
def test_hs_mutated_answers(data: st.DataObject) -> None:
    answer = data.draw(mutated(_HS))
    result = within_budget(lambda: _read_answer(answer), declared=(FrameError,))
    if isinstance(result, PrinterStatus):
        assert isinstance(result.ready, bool)


@FUZZ
@given(status=_STATUS)
def test_hs_round_trip(status: PrinterStatus) -> None:
    assert parse_hs(encode_hs(status)) == status


_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="^~_\\,ABC 0123456789é€", max_size=40),
    st.sampled_from(["^XZ^XA", "~JA", "_5E", "^FS^FO0,0^FDx", "\x1d", "\ud800"]),
)
_SAFE = st.text(alphabet="^~_\\,ABC 0123456789é€", max_size=40).map(str.strip)
_LABELS = st.builds(
    lambda region, order, sender: zpl.CartonLabel(
        sscc="376123450000000016",
        ship_postcode="1000",
        ship_region=region,
        order_ref=order,
        carton_no=1,
        carton_count=2,
        sender=sender,
    ),
    _SAFE,
    _SAFE.map(lambda t: t or "O-1"),
    _SAFE,
)
_LABEL = _LABELS.map(zpl.render)


_ZPL = st.one_of(
    st.binary(max_size=1024),
    st.lists(
        st.sampled_from(
            [
                b"^XA",
                b"^XZ",
                b"~HS",
                b"~JA",
                b"~SD25",
                b"^FO10,10",
                b"^FDabc",
                b"^FS",
                b"^FH_",
                b"^FD_7E_5E",
                b"^BCN,100",
                b"^PQ2",
                b"\r\n",
                b"^xa",
                b"^",
            ]
        ),
        max_size=40,
    ).map(b"".join),
)


def _split_all(data: bytes, final: bool) -> None:
    _, consumed = zpl.split_stream(data, final=final)
    assert 0 <= consumed <= len(data)
    if final:
        assert consumed == len(data)


@FUZZ
@given(data=_ZPL, final=st.booleans())
def test_split_stream_any_bytes(data: bytes, final: bool) -> None:
    within_budget(lambda: _split_all(data, final))
    within_budget(lambda: zpl.parse_jobs(data), declared=(FrameError,))


@FUZZ
@given(data=st.data())
def test_mutated_label_jobs(data: st.DataObject) -> None:
    job = data.draw(mutated(_LABEL))
    within_budget(lambda: _split_all(job, True))
    within_budget(lambda: zpl.parse_jobs(job), declared=(FrameError,))


@FUZZ
@given(region=_TEXT, order=_TEXT, sender=_TEXT)
def test_label_text_cannot_break_the_format(region: str, order: str, sender: str) -> None:
    """Any text is refused (LabelError) or printed exactly, in one format."""

    def build() -> zpl.CartonLabel:
        return zpl.CartonLabel(
            sscc="376123450000000016",
            ship_postcode="1000",
            ship_region=region,
            order_ref=order,
            carton_no=1,
            carton_count=2,
            sender=sender,
        )

    label = within_budget(build, declared=(LabelError,))
    if isinstance(label, Refused):
        return
    (parsed,) = zpl.parse_jobs(zpl.render(label))
    assert f"ORDER {order}" in parsed.texts
    if sender:
        assert sender in parsed.texts
    if region:
        assert region in parsed.texts
