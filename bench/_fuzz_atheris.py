"""Coverage-guided fuzzing (atheris, libFuzzer) of the decoders where coverage
helps most: the byte framers, whose branches hide behind header bytes, lengths
and checksums, and the GS1/EPC decoder, whose branches hide behind AIs.

    python bench/_fuzz_atheris.py TARGET SECONDS [CORPUS_DIR]

TARGET is one of lines, a0, m100, codes, json-depth. A target fails (libFuzzer
writes the input as ``crash-*``) on an undeclared exception, on one input
taking more than 100 ms or on a framer holding more than its cap. Run by
``bench/fuzz.sh``; every crash becomes a case in tests/fuzz/test_regressions.py.
"""

from __future__ import annotations

import contextlib
import sys
import time

import atheris

with atheris.instrument_imports():
    from devices.codes.decode import decode
    from devices.errors import CodeError, FrameError
    from devices.framing import a0, m100
    from devices.framing.lines import SUFFIXES, LineFramer
    from edge.api.validate import BadInputError, json_object

BUDGET_S = 0.100


def _timed(fn: object) -> None:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    elapsed = time.perf_counter() - start
    if elapsed > BUDGET_S:
        raise AssertionError(f"one input took {elapsed * 1000:.0f} ms")


def _chunks(fdp: atheris.FuzzedDataProvider) -> list[bytes]:
    out = []
    while fdp.remaining_bytes():
        out.append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 512)))
    return out


def lines(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    suffix = SUFFIXES[fdp.ConsumeIntInRange(0, len(SUFFIXES) - 1)]
    max_frame = fdp.ConsumeIntInRange(1, 4096)

    def run() -> None:
        framer = LineFramer(suffix=suffix, max_frame=max_frame)  # type: ignore[arg-type]
        for chunk in _chunks(fdp):
            for frame in framer.feed(chunk):
                assert frame.payload and len(frame.payload) <= max_frame
            assert framer.pending <= max_frame
        framer.flush_idle()

    _timed(run)


def _header(kind: str):  # type: ignore[no-untyped-def]
    framer_cls, parse = (
        (a0.A0Framer, a0.parse_record) if kind == "a0" else (m100.M100Framer, m100.parse_record)
    )

    def target(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        cap = fdp.ConsumeIntInRange(1, 8192)

        def run() -> None:
            framer = framer_cls(max_buffer=cap)
            frames = []
            for chunk in _chunks(fdp):
                frames += framer.feed(chunk)
                assert framer.pending <= cap
            frames += framer.flush_idle()
            assert framer.pending == 0
            for frame in frames:
                with contextlib.suppress(FrameError):
                    parse(frame)

        _timed(run)

    return target


def codes(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    symbology = [None, "]C1", "]E0", "]d2", "]Q3", "]I1"][fdp.ConsumeIntInRange(0, 5)]
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())

    def run() -> None:
        with contextlib.suppress(CodeError):
            decode(text, symbology).to_json()

    _timed(run)


def json_depth(data: bytes) -> None:
    def run() -> None:
        with contextlib.suppress(BadInputError):
            json_object(data)

    _timed(run)


TARGETS = {
    "lines": lines,
    "a0": _header("a0"),
    "m100": _header("m100"),
    "codes": codes,
    "json-depth": json_depth,
}


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} SECONDS [CORPUS_DIR]")
    target, seconds = sys.argv[1], int(sys.argv[2])
    args = [sys.argv[0], f"-max_total_time={seconds}", "-timeout=5", "-rss_limit_mb=1024"]
    args += ["-print_final_stats=1", *sys.argv[3:]]
    # biip loads its GS1 tables on the first parse (~90 ms, once per process:
    # devices/codes/gs1.py); that is start-up, not an input's cost
    decode("(01)09501101020917")
    atheris.Setup(args, TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
