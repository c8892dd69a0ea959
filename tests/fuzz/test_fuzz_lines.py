"""Fuzz the barcode line framer (devices/framing/lines.py): any bytes, any
split, every suffix mode. It never raises, never holds more than
``max_frame`` bytes, and what it returns is a clean line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from devices.framing.lines import _NOISE, SUFFIXES, LineFrame, LineFramer, encode_line
from tests.fuzz._harness import (
    BUDGET_S,
    FUZZ,
    mutated,
    slowest_feed,
    splits,
    within_budget,
)

_CODES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["0109501101020917\x1d10ABC", "A-01-05", "SKU-A", "]C1" + "01" * 9]),
)
_SYMBOLOGIES = st.sampled_from([None, "]C1", "]E0", "]Q3", "]d2"])


@st.composite
def _line_stream(draw: st.DrawFn, suffix: str) -> bytes:
    """Scanner output for ``suffix``: good lines, then mutated."""
    lines = draw(
        st.lists(
            st.builds(
                lambda code, sym, prefix: encode_line(
                    code,
                    symbology=sym,
                    suffix=suffix,  # type: ignore[arg-type]
                    prefix=prefix,
                ),
                _CODES,
                _SYMBOLOGIES,
                st.sampled_from([b"", b"PFX"]),
            ),
            max_size=6,
        )
    )
    return b"".join(lines)


def _run(suffix: str, max_frame: int, chunks: list[bytes]) -> tuple[LineFramer, list[LineFrame]]:
    framer = LineFramer(suffix=suffix, prefix=b"PFX", max_frame=max_frame)  # type: ignore[arg-type]
    frames: list[LineFrame] = []
    for chunk in chunks:
        frames += framer.feed(chunk)
        assert framer.pending <= max_frame
    last = framer.flush_idle()
    if last is not None:
        frames.append(last)
    assert framer.pending == 0 or suffix == "stx-etx"
    return framer, frames


def _check(frames: list[LineFrame], framer: LineFramer, max_frame: int) -> None:
    assert framer.stats.frames == len(frames)
    for frame in frames:
        assert frame.payload, "an empty line is never a frame"
        assert len(frame.payload) <= max_frame
        assert not any(b in _NOISE for b in frame.payload), frame
        frame.text()  # never fails


@FUZZ
@given(
    suffix=st.sampled_from(SUFFIXES),
    max_frame=st.sampled_from([1, 16, 4096]),
    data=st.binary(max_size=2048),
    cuts=st.lists(st.integers(0, 4096), max_size=8),
)
def test_any_bytes_any_split(suffix: str, max_frame: int, data: bytes, cuts: list[int]) -> None:
    framer, frames = within_budget(lambda: _run(suffix, max_frame, splits(data, cuts)))  # type: ignore[misc]
    _check(frames, framer, max_frame)


@FUZZ
@given(
    data=st.data(),
    suffix=st.sampled_from(SUFFIXES),
    cuts=st.lists(st.integers(0, 4096), max_size=8),
)
def test_mutated_scanner_output(data: st.DataObject, suffix: str, cuts: list[int]) -> None:
    stream = data.draw(mutated(_line_stream(suffix)))
    framer, frames = within_budget(lambda: _run(suffix, 4096, splits(stream, cuts)))  # type: ignore[misc]
    _check(frames, framer, 4096)


@FUZZ
@given(
    suffix=st.sampled_from(SUFFIXES),
    fill=st.sampled_from([b"A", b"\x02", b"\r", b"\xff", b"]C1", b"\x02A\x03"]),
)
def test_a_long_burst_stays_within_the_cap_and_budget(suffix: str, fill: bytes) -> None:
    """128 KiB of one pattern in 4 KiB reads (a serial read returns what the
    driver holds): every feed within the budget, the buffer capped."""
    burst = (fill * (131072 // len(fill)))[:131072]
    chunks = [burst[i : i + 4096] for i in range(0, len(burst), 4096)]
    worst = slowest_feed(lambda: LineFramer(suffix=suffix).feed, chunks)  # type: ignore[arg-type]
    assert worst <= BUDGET_S, f"a 4 KiB feed took {worst * 1000:.1f} ms"
    framer, frames = _run(suffix, 4096, chunks)
    _check(frames, framer, 4096)
