"""Fuzz the binary RFID framers and record parsers: ``A0`` (devices/framing/a0.py)
and the M100 ``BB…7E`` frames (devices/framing/m100.py).

A framer never raises and never holds more than its cap; ``parse_record``
raises nothing but :class:`~devices.errors.FrameError`; a good frame between
junk that holds no header byte is always found."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from devices.errors import FrameError
from devices.framing import a0, m100
from devices.framing.base import HeaderFramer
from tests.fuzz._harness import (
    BUDGET_S,
    FUZZ,
    mutated,
    slowest_feed,
    splits,
    within_budget,
)

_EPC = st.binary(max_size=62).map(lambda b: b[: len(b) // 2 * 2])

_A0_FRAMES = st.one_of(
    st.builds(
        lambda addr, epc, ant, rssi: a0.encode_tag_record(addr, epc, antenna=ant, rssi_raw=rssi),
        st.integers(0, 255),
        _EPC,
        st.integers(0, 3),
        st.integers(0, 255),
    ),
    st.builds(
        lambda addr, rate, total: a0.encode_summary(
            addr, antenna=1, read_rate=rate, total_reads=total
        ),
        st.integers(0, 255),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFFFFFF),
    ),
    st.builds(a0.encode_error, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    st.builds(a0.encode_frame, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=252)),
)
_M100_FRAMES = st.one_of(
    st.builds(
        lambda epc, rssi: m100.encode_tag_notification(epc, rssi_dbm=rssi),
        _EPC,
        st.integers(-128, 127),
    ),
    st.builds(m100.encode_error, st.integers(0, 255)),
    st.builds(
        m100.encode_frame,
        st.integers(0, 2),
        st.integers(0, 255),
        st.binary(max_size=m100.MAX_PARAM),
    ),
    st.just(m100.encode_multi_poll()),
)

Kind = tuple[Callable[..., HeaderFramer[Any]], Callable[[Any], Any], st.SearchStrategy[bytes], int]
KINDS: dict[str, Kind] = {
    "a0": (a0.A0Framer, a0.parse_record, _A0_FRAMES, a0.HEADER),
    "m100": (m100.M100Framer, m100.parse_record, _M100_FRAMES, m100.HEADER),
}


def _run(
    kind: str, max_buffer: int, chunks: list[bytes], *, flush: bool
) -> tuple[HeaderFramer[Any], list[Any]]:
    make, parse, _, _ = KINDS[kind]
    framer = make(max_buffer=max_buffer)
    frames: list[Any] = []
    for chunk in chunks:
        frames += framer.feed(chunk)
        assert framer.pending <= max_buffer
    if flush:
        frames += framer.flush_idle()
        assert framer.pending == 0
    for frame in frames:
        with contextlib.suppress(FrameError):
            parse(frame)
    return framer, frames


@FUZZ
@given(
    kind=st.sampled_from(sorted(KINDS)),
    max_buffer=st.sampled_from([1, 64, 8192]),
    data=st.binary(max_size=4096),
    cuts=st.lists(st.integers(0, 8192), max_size=8),
    flush=st.booleans(),
)
def test_any_bytes_any_split(
    kind: str, max_buffer: int, data: bytes, cuts: list[int], flush: bool
) -> None:
    framer, frames = within_budget(lambda: _run(kind, max_buffer, splits(data, cuts), flush=flush))  # type: ignore[misc]
    assert framer.stats.frames == len(frames)


@FUZZ
@given(
    kind=st.sampled_from(sorted(KINDS)),
    data=st.data(),
    cuts=st.lists(st.integers(0, 8192), max_size=8),
    flush=st.booleans(),
)
def test_mutated_reader_output(
    kind: str, data: st.DataObject, cuts: list[int], flush: bool
) -> None:
    valid = KINDS[kind][2]
    stream = data.draw(mutated(st.lists(valid, max_size=5).map(b"".join)))
    within_budget(lambda: _run(kind, 8192, splits(stream, cuts), flush=flush))


@FUZZ
@given(
    kind=st.sampled_from(sorted(KINDS)),
    data=st.data(),
    cuts=st.lists(st.integers(0, 8192), max_size=8),
)
def test_a_good_frame_between_junk_is_found(
    kind: str, data: st.DataObject, cuts: list[int]
) -> None:
    """Junk without a header byte before and after: the frame comes out whole."""
    _, _, valid, header = KINDS[kind]
    frame = data.draw(valid)
    junk = st.binary(max_size=64).map(lambda b: b.replace(bytes([header]), b""))
    before, after = data.draw(junk), data.draw(junk)
    _framer, frames = _run(kind, 8192, splits(before + frame + after, cuts), flush=True)
    encoded = [
        a0.frame_bytes(f) if kind == "a0" else m100.encode_frame(f.type, f.cmd, f.params)
        for f in frames
    ]
    assert frame in encoded


@FUZZ
@given(
    kind=st.sampled_from(sorted(KINDS)),
    fill=st.sampled_from(
        [b"\xa0", b"\xbb", b"\xa0\xff", b"\xbb\x00\x22\x02\x00", b"\xa0\x03\x01\x89"]
    ),
)
def test_a_long_burst_stays_within_the_cap_and_budget(kind: str, fill: bytes) -> None:
    """128 KiB of false headers in 4 KiB reads, then the idle flush."""
    burst = (fill * (131072 // len(fill)))[:131072]
    chunks = [burst[i : i + 4096] for i in range(0, len(burst), 4096)]
    make = KINDS[kind][0]
    worst = slowest_feed(lambda: make().feed, chunks)
    assert worst <= BUDGET_S, f"a 4 KiB feed took {worst * 1000:.1f} ms"
    within_budget(lambda: _run(kind, 8192, chunks[-2:], flush=True))


@FUZZ
@given(
    frame=st.one_of(
        st.builds(a0.A0Frame, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300)),
        st.builds(
            m100.M100Frame, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=600)
        ),
    )
)
def test_parse_record_raises_only_frame_error(frame: a0.A0Frame | m100.M100Frame) -> None:
    parse = a0.parse_record if isinstance(frame, a0.A0Frame) else m100.parse_record
    within_budget(lambda: parse(frame), declared=(FrameError,))  # type: ignore[arg-type]
