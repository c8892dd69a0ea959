"""RFID presence smoothing on the reader's clock: windows, replays, bounds."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import DeviceConfigError
from devices.events import PresenceKind, TagPresenceEvent, TagReadEvent
from devices.smoothing import Smoother, SmoothingConfig

SEEN, GONE = PresenceKind.SEEN, PresenceKind.GONE


def read(epc: str, t: float, antenna: int | None = 1, box: float | None = None) -> TagReadEvent:
    return TagReadEvent("r1", epc, antenna, -50.0, t, box if box is not None else t)


def kinds(events: list[TagPresenceEvent]) -> list[tuple[str, str, float]]:
    return [(e.kind.value, e.epc_hex, e.at) for e in events]


def test_seen_once_repeats_suppressed_gone_after_quiet_time() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=2.0))
    assert kinds(s.feed(read("A", 10.0))) == [("seen", "A", 10.0)]
    for t in (10.5, 11.0, 11.9):
        assert s.feed(read("A", t)) == []
    assert s.advance(13.8) == []  # 11.9 + 2 not reached
    assert kinds(s.advance(13.9)) == [("gone", "A", 11.9)]
    assert s.advance(20.0) == []


def test_gone_is_driven_by_other_tags_reads() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=1.0))
    s.feed(read("A", 0.0))
    s.feed(read("B", 0.5))
    out = s.feed(read("B", 1.2))
    assert kinds(out) == [("gone", "A", 0.0)]


def test_tag_coming_back_after_window_is_seen_again() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=1.0))
    s.feed(read("A", 0.0))
    assert kinds(s.feed(read("A", 5.0))) == [("gone", "A", 0.0), ("seen", "A", 5.0)]


def test_per_antenna_windows() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=1.0, per_antenna=True))
    assert [(e.kind, e.antenna) for e in s.feed(read("A", 0.0, antenna=1))] == [(SEEN, 1)]
    assert [(e.kind, e.antenna) for e in s.feed(read("A", 0.1, antenna=2))] == [(SEEN, 2)]
    s.feed(read("A", 0.9, antenna=2))
    assert [(e.kind, e.antenna) for e in s.advance(1.5)] == [(GONE, 1)]
    merged = Smoother("r1", SmoothingConfig(gone_after=1.0))
    merged.feed(read("A", 0.0, antenna=1))
    assert merged.feed(read("A", 0.1, antenna=2)) == []


def test_redelivered_reads_after_gone_are_not_reannounced() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=1.0))
    history = [read("A", t / 10) for t in range(10)]
    for r in history:
        s.feed(r)
    assert kinds(s.advance(5.0)) == [("gone", "A", 0.9)]
    # A broker restart redelivers unacknowledged messages: nothing new.
    for r in history:
        assert s.feed(r) == []
    assert s.suppressed == len(history)


def test_replayed_backlog_after_outage_does_not_reannounce_present_tags() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=2.0))
    events: list[TagPresenceEvent] = []
    for i in range(10):  # live
        events += s.feed(read("A", 100 + i * 0.5, box=1000 + i * 0.5))
    # The box is disconnected from the broker for 300 s: no ticks count (resume).
    s.resume(box_now=1300.0)
    for i in range(600):  # the reader's 5-minute backlog, delivered in a burst
        events += s.feed(read("A", 105 + i * 0.5, box=1300.0 + i * 0.0001))
    assert kinds(events) == [("seen", "A", 100.0)]


def test_box_clock_fallback_when_reader_goes_silent() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=2.0, silence_timeout=2.0))
    s.feed(read("A", 50.0, box=1000.0))
    assert s.tick(1001.9) == []
    assert kinds(s.tick(1002.0)) == [("gone", "A", 50.0)]


def test_silence_timeout_longer_than_window() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=2.0, silence_timeout=30.0))
    s.feed(read("A", 50.0, box=1000.0))
    assert s.tick(1029.0) == []
    assert kinds(s.tick(1030.0)) == [("gone", "A", 50.0)]


def test_resume_restarts_silence_measurement() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=2.0, silence_timeout=2.0))
    s.feed(read("A", 50.0, box=1000.0))
    s.resume(box_now=1100.0)  # we were away from the broker for 100 s
    assert s.tick(1101.0) == []
    assert kinds(s.tick(1102.0)) == [("gone", "A", 50.0)]


def test_observe_moves_clock_without_reads() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=2.0))
    s.feed(read("A", 50.0))
    assert kinds(s.observe(53.0, box_now=1.0)) == [("gone", "A", 50.0)]


def test_late_read_older_than_window_is_seen_and_gone_at_once() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=1.0))
    s.feed(read("A", 10.0))
    assert kinds(s.feed(read("B", 2.0))) == [("seen", "B", 2.0), ("gone", "B", 2.0)]
    assert s.feed(read("B", 2.0)) == []
    # More late reads of the same closed window: nothing (no seen/gone storm).
    for t in (2.5, 2.9, 3.6, 4.2):
        assert s.feed(read("B", t)) == []
    # A late read after a gap longer than the window: another window, reported once.
    assert kinds(s.feed(read("B", 6.0))) == [("seen", "B", 6.0), ("gone", "B", 6.0)]


def test_fallback_estimate_is_dropped_when_the_reader_speaks_again() -> None:
    """Gone by the fallback, then the reader's own clock: no late-read storm."""
    s = Smoother("r1", SmoothingConfig(gone_after=2.0, silence_timeout=5.0))
    s.feed(read("A", 100.0, box=1000.0))
    assert kinds(s.tick(1010.0)) == [("gone", "A", 100.0)]  # estimate: reader at 110
    assert s.clock == 100.0
    out: list[TagPresenceEvent] = []
    for i in range(20):  # the reader was queueing all along: a backlog from 100.5 on
        out += s.feed(read("A", 100.5 + i * 0.5, box=1010.0))
    assert kinds(out) == [("seen", "A", 100.5)]


def test_reader_time_missing_uses_arrival_time() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=1.0))
    out = s.feed(TagReadEvent("r1", "A", 1, None, None, 77.0))
    assert kinds(out) == [("seen", "A", 77.0)]


def test_clock_reset_rebases_instead_of_suppressing() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=5.0, clock_reset=60.0))
    s.feed(read("A", 1_000_000.0))
    # The reader rebooted with its clock at 1970 + a bit: A is still there.
    assert s.feed(read("A", 10.0)) == []
    assert kinds(s.feed(read("B", 11.0))) == [("seen", "B", 11.0)]
    assert s.clock_resets == 1
    assert kinds(s.advance(15.0)) == [("gone", "A", 10.0)]


def test_memory_bound() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=1000.0, max_tags=100))
    out: list[TagPresenceEvent] = []
    for i in range(1000):
        out += s.feed(read(f"{i:04X}", float(i) / 1000))
    assert s.present == 100
    assert sum(e.kind is SEEN for e in out) == 1000
    assert sum(e.kind is GONE for e in out) == 900  # oldest forced out, each reported
    assert s.evicted == 900


def test_tombstones_expire_after_horizon() -> None:
    s = Smoother("r1", SmoothingConfig(gone_after=1.0, tombstone_horizon=10.0))
    s.feed(read("A", 0.0))
    s.advance(2.0)
    s.advance(20.0)
    # Beyond the horizon a very old read is news again (seen and gone at once).
    assert [e.kind for e in s.feed(read("A", 0.0))] == [SEEN, GONE]


def test_config_validation() -> None:
    with pytest.raises(DeviceConfigError):
        SmoothingConfig(gone_after=0)
    with pytest.raises(DeviceConfigError):
        SmoothingConfig(max_tags=0)
    with pytest.raises(DeviceConfigError):
        SmoothingConfig(silence_timeout=-1)
    assert SmoothingConfig().silence_timeout == 60.0


# --- properties ---------------------------------------------------------------

reads_strategy = st.lists(
    st.tuples(st.sampled_from("ABCDE"), st.integers(1, 4), st.floats(0.0, 3.0)),
    min_size=1,
    max_size=200,
)


def run_in_order(seq: list[tuple[str, int, float]], cfg: SmoothingConfig) -> list[TagPresenceEvent]:
    s = Smoother("r1", cfg)
    t = 0.0
    out: list[TagPresenceEvent] = []
    for epc, antenna, gap in seq:
        t += gap
        out += s.feed(read(epc, t, antenna))
    return out + s.advance(t + 10_000)


@settings(max_examples=200, deadline=None)
@given(reads_strategy, st.booleans())
def test_windows_alternate_and_close(seq: list[tuple[str, int, float]], per_antenna: bool) -> None:
    out = run_in_order(seq, SmoothingConfig(gone_after=1.0, per_antenna=per_antenna))
    by_key: dict[tuple[int | None, str], list[PresenceKind]] = {}
    for e in out:
        by_key.setdefault((e.antenna, e.epc_hex), []).append(e.kind)
    for seq_kinds in by_key.values():
        assert seq_kinds[0] is SEEN
        assert all(a is not b for a, b in itertools.pairwise(seq_kinds))
        assert seq_kinds[-1] is GONE  # everything closes once the clock runs on


@settings(max_examples=200, deadline=None)
@given(reads_strategy, st.integers(0, 199))
def test_redelivery_of_any_prefix_changes_nothing(
    seq: list[tuple[str, int, float]], cut: int
) -> None:
    cfg = SmoothingConfig(gone_after=1.0)
    s = Smoother("r1", cfg)
    t = 0.0
    reads: list[TagReadEvent] = []
    for epc, antenna, gap in seq:
        t += gap
        reads.append(read(epc, t, antenna))
    expected: list[TagPresenceEvent] = []
    ref = Smoother("r1", cfg)
    for r in reads:
        expected += ref.feed(r)
    got: list[TagPresenceEvent] = []
    cut = min(cut, len(reads))
    for r in reads[:cut]:
        got += s.feed(r)
    for r in reads[:cut]:  # QoS 1 redelivery after a broker restart
        got += s.feed(r)
    for r in reads[cut:]:
        got += s.feed(r)
    assert got == expected
