"""Serial ingest benchmark: scans through a real pty into SerialScannerDriver.

What it measures: latency from the write of a scan on the pty master (in a
separate writer process, so the writer and the driver do not share a core or an
event loop) to the moment the driver hands the ScanEvent to ``emit``; and the
highest scan rate the driver sustains. Each scan carries its own send time
(``time.perf_counter_ns``, CLOCK_MONOTONIC, shared by processes on Linux), so
nothing is matched afterwards.

Target (issue 4): ≥ 2,000 scans/s with p99 < 5 ms.

    .venv/bin/python bench/ingest_serial.py            # 20,000 paced + 50,000 burst
    .venv/bin/python bench/ingest_serial.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import time
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices.driver import DeviceSpec, MqttSettings
from devices.drivers.serial_scanner import SerialScannerDriver
from devices.events import DeviceEvent, DeviceRole, ScanEvent
from simulators.serial_scanner import Pty


def _writer(fd: int, count: int, rate: float, go: MpEvent) -> None:
    """Child process: write ``count`` scans at ``rate`` per second (0: as fast as possible)."""
    os.set_blocking(fd, True)  # block when the pty is full: back-pressure, no loss
    go.wait()
    period_ns = int(1e9 / rate) if rate > 0 else 0
    start = time.perf_counter_ns()
    for seq in range(count):
        if period_ns:
            due = start + seq * period_ns
            while True:
                ahead = due - time.perf_counter_ns()
                if ahead <= 0:
                    break
                if ahead > 200_000:
                    time.sleep((ahead - 100_000) / 1e9)
        line = b"]C0B%07d-%d\r\n" % (seq, time.perf_counter_ns())
        os.write(fd, line)


async def run_phase(count: int, rate: float) -> dict[str, float | int]:
    pty = Pty()
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    writer = ctx.Process(target=_writer, args=(pty.master, count, rate, go), daemon=True)
    latencies: list[int] = []
    first_recv = last_recv = 0
    done = asyncio.Event()
    connected = asyncio.Event()
    seen: set[int] = set()

    async def emit(event: DeviceEvent) -> None:
        nonlocal first_recv, last_recv
        if not isinstance(event, ScanEvent):
            connected.set()
            return
        now = time.perf_counter_ns()
        seq_s, _, sent_s = event.code[1:].partition("-")
        seq = int(seq_s)
        if seq in seen:
            raise AssertionError(f"duplicate scan {seq}")
        seen.add(seq)
        latencies.append(now - int(sent_s))
        if not first_recv:
            first_recv = now
        last_recv = now
        if len(latencies) >= count:
            done.set()

    spec = DeviceSpec(
        id="bench-scanner",
        driver="serial-scanner",
        role=DeviceRole.PACK_STATION,
        url=pty.path,
        options={"baudrate": 115200, "suffix": "crlf"},
    )
    driver = SerialScannerDriver(spec, mqtt=MqttSettings())
    task = asyncio.create_task(driver.run(emit))
    try:
        await asyncio.wait_for(connected.wait(), 10)
        writer.start()
        t0 = time.perf_counter_ns()
        go.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), max(30.0, 5 * count / max(rate, 1000)))
        t1 = last_recv or time.perf_counter_ns()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        writer.join(5)
        pty.close()
    lat_ms = sorted(x / 1e6 for x in latencies)

    def pct(p: float) -> float:
        if not lat_ms:
            return float("nan")
        return lat_ms[min(len(lat_ms) - 1, int(p / 100 * len(lat_ms)))]

    elapsed = (t1 - t0) / 1e9
    return {
        "sent": count,
        "received": len(latencies),
        "lost": count - len(latencies),
        "target_rate": rate,
        "rate": len(latencies) / elapsed if elapsed > 0 else float("nan"),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": lat_ms[-1] if lat_ms else float("nan"),
        "mean_ms": statistics.fmean(lat_ms) if lat_ms else float("nan"),
        "bad_frames": driver.stats.bad_frames,
        "dropped_bytes": driver.stats.dropped_bytes,
    }


def _print(name: str, r: dict[str, float | int]) -> None:
    print(
        f"{name:<7} sent {r['sent']:>6}  received {r['received']:>6}  lost {r['lost']}  "
        f"rate {r['rate']:>8.0f} scans/s  latency p50 {r['p50_ms']:.3f} ms  "
        f"p95 {r['p95_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  max {r['max_ms']:.3f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small run (a few seconds)")
    parser.add_argument("--rate", type=float, default=2500.0, help="paced scans/s (default 2500)")
    parser.add_argument("--count", type=int, default=None, help="scans in the paced phase")
    parser.add_argument("--burst", type=int, default=None, help="scans in the unpaced phase")
    parser.add_argument("--json", action="store_true", help="print figures as JSON too")
    args = parser.parse_args(argv)
    paced_n = args.count or (5000 if args.quick else 20000)
    burst_n = args.burst or (10000 if args.quick else 50000)

    async def both() -> tuple[dict[str, float | int], dict[str, float | int]]:
        return await run_phase(paced_n, args.rate), await run_phase(burst_n, 0)

    print(f"serial ingest through a pty, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    paced, burst = asyncio.run(both())
    _print("paced", paced)
    _print("burst", burst)
    ok = (
        paced["lost"] == 0
        and burst["lost"] == 0
        and paced["rate"] >= 2000
        and burst["rate"] >= 2000
        and paced["p99_ms"] < 5.0
    )
    print(
        f"target ≥ 2,000 scans/s with p99 < 5 ms at {args.rate:.0f}/s: "
        + ("met" if ok else "NOT met")
    )
    if args.json:
        print(json.dumps({"paced": paced, "burst": burst, "target_met": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
