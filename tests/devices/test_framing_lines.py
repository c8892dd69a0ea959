"""Line framer: every suffix mode under arbitrary splits, noise, overflow, idle."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.framing.lines import LineFrame, LineFramer, Suffix, encode_line

GS = "\x1d"
# Printable ASCII plus GS: what scanners put in a code.
code_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just(GS),
    min_size=1,
    max_size=40,
).filter(lambda s: not s.startswith("]"))  # a leading ] would read as an AIM id
aims = st.sampled_from([None, "]C1", "]E0", "]d2", "]Q1"])
# Line noise: control bytes other than GS and the framing bytes, DEL, 0xFF.
noise_bytes = st.binary(max_size=6).map(
    lambda b: bytes(
        x for x in b if (x < 0x20 and x not in (0x02, 0x03, 0x0A, 0x0D, 0x1D)) or x in (0x7F, 0xFF)
    )
)


def feed_in_pieces(framer: LineFramer, data: bytes, cuts: list[int]) -> list[LineFrame]:
    out: list[LineFrame] = []
    points = sorted({c % (len(data) + 1) for c in cuts})
    last = 0
    for p in [*points, len(data)]:
        out += framer.feed(data[last:p])
        last = p
    return out


@pytest.mark.parametrize("suffix", ["cr", "lf", "crlf", "stx-etx"])
@settings(max_examples=150, deadline=None)
@given(
    scans=st.lists(st.tuples(code_text, aims), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
    noise=st.lists(noise_bytes, min_size=13, max_size=13),
    junk_positions=st.lists(st.integers(min_value=0, max_value=500), max_size=5),
)
def test_splits_and_noise_yield_exactly_the_scans(
    suffix: Suffix,
    scans: list[tuple[str, str | None]],
    cuts: list[int],
    noise: list[bytes],
    junk_positions: list[int],
) -> None:
    stream = bytearray()
    for i, (code, aim) in enumerate(scans):
        stream += noise[i] + encode_line(code, symbology=aim, suffix=suffix)
    # Noise may also land inside frames: it is never part of a scan.
    for pos in junk_positions:
        stream[pos % (len(stream) + 1) : pos % (len(stream) + 1)] = b"\x00\xff"
    framer = LineFramer(suffix=suffix)
    frames = feed_in_pieces(framer, bytes(stream), cuts)
    assert [(f.text(), f.symbology) for f in frames] == scans
    assert framer.stats.frames == len(scans)
    assert framer.stats.bad_frames == 0
    assert framer.stats.dropped_bytes == sum(map(len, noise[: len(scans)])) + 2 * len(
        junk_positions
    )
    assert framer.pending == 0


def test_one_byte_at_a_time_crlf_with_prefix() -> None:
    framer = LineFramer(suffix="crlf", prefix=b"#")
    data = encode_line("0109521234543213", symbology="]C1", prefix=b"#") * 3
    frames = [f for b in data for f in framer.feed(bytes([b]))]
    assert [(f.payload, f.symbology, f.by_timeout) for f in frames] == [
        (b"0109521234543213", "]C1", False)
    ] * 3


def test_stx_etx_junk_outside_frames_is_dropped_and_counted() -> None:
    framer = LineFramer(suffix="stx-etx")
    frames = framer.feed(b"garbage" + encode_line("A-01-02", suffix="stx-etx") + b"\r\nxx")
    assert [f.payload for f in frames] == [b"A-01-02"]
    assert framer.stats.dropped_bytes == len(b"garbage") + 4


def test_stx_etx_truncated_frame_is_detected_by_the_next_stx() -> None:
    framer = LineFramer(suffix="stx-etx")
    whole = encode_line("SKU-1", suffix="stx-etx")
    frames = framer.feed(whole[:4] + whole)  # first frame lost its tail
    assert [f.payload for f in frames] == [b"SKU-1"]
    assert framer.stats.bad_frames == 1


def test_idle_timeout_returns_a_line_without_suffix() -> None:
    framer = LineFramer(suffix="none")
    assert framer.feed(b"]E09521234543213") == []
    assert framer.pending == 16
    frame = framer.flush_idle()
    assert frame == LineFrame(b"9521234543213", "]E0", by_timeout=True)
    assert framer.flush_idle() is None


def test_idle_fallback_when_the_suffix_is_lost() -> None:
    framer = LineFramer(suffix="cr")
    assert framer.feed(b"ABC") == []
    assert framer.flush_idle() == LineFrame(b"ABC", None, by_timeout=True)
    assert [f.payload for f in framer.feed(b"DEF\r")] == [b"DEF"]


def test_overlong_line_is_dropped_and_framer_resyncs() -> None:
    framer = LineFramer(suffix="crlf", max_frame=16)
    frames = framer.feed(b"X" * 40 + b"\r\n" + b"OK-1\r\n")
    assert [f.payload for f in frames] == [b"OK-1"]
    assert framer.stats.bad_frames == 1
    assert framer.stats.overflows == 1
    assert framer.stats.dropped_bytes == 40
    assert framer.pending == 0


def test_overlong_line_fed_in_pieces_never_grows_the_buffer() -> None:
    framer = LineFramer(suffix="lf", max_frame=64)
    for _ in range(1000):
        framer.feed(b"Y" * 50)
        assert framer.pending <= 64
    assert [f.payload for f in framer.feed(b"\nZ\n")] == [b"Z"]


def test_aim_split_can_be_disabled_and_bare_aim_is_a_bad_frame() -> None:
    assert LineFramer(aim=False).feed(b"]C1123\r\n")[0].payload == b"]C1123"
    framer = LineFramer()
    assert framer.feed(b"]C1\r\n") == []
    assert framer.stats.bad_frames == 1


def test_utf8_and_latin1_text() -> None:
    frame = LineFramer().feed("Größe-1\r\n".encode())[0]
    assert frame.text() == "Größe-1"
    assert LineFrame(b"\xe9t\xe9").text() == "été"


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="suffix"):
        LineFramer(suffix="tab")  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    scans=st.lists(st.tuples(code_text, aims), min_size=1, max_size=10),
    junk=st.lists(
        st.binary(max_size=12).map(lambda b: b.replace(b"\x02", b"")), min_size=11, max_size=11
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=30),
)
def test_stx_etx_drops_any_junk_between_frames(
    scans: list[tuple[str, str | None]], junk: list[bytes], cuts: list[int]
) -> None:
    # Outside STX…ETX every byte but STX is junk — printable text included.
    stream = b"".join(
        junk[i] + encode_line(c, symbology=a, suffix="stx-etx") for i, (c, a) in enumerate(scans)
    )
    framer = LineFramer(suffix="stx-etx")
    frames = feed_in_pieces(framer, stream + junk[-1], cuts)
    assert [(f.text(), f.symbology) for f in frames] == scans
    assert framer.stats.dropped_bytes == sum(map(len, junk[: len(scans)])) + len(junk[-1])
    assert framer.stats.bad_frames == 0
