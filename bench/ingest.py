"""Ingest benchmark over loopback MQTT: decode + smoothing throughput, publish →
smoothed-event latency, and a reader backlog replay.

Starts a real Mosquitto (tests.support.mosquitto: own config, password, free
port), runs 4 simulated readers × 4 antennas (2 Impinj, 2 Zebra) in a separate
process, and the box side — DeviceSupervisor + MQTT drivers + smoothing, with
manual acks after emit — in this one. Phases:

1. sustained: readers publish at ``--rate`` reads/s each for ``--seconds``, with
   tag churn so that new tags keep arriving; figures: offered and decoded reads
   per second, p50/p99 from a new tag's first read (published at once) to its
   smoothed ``seen`` event.
2. replay: every reader loses the broker, queues ``--replay`` messages in total
   (66,000 by default, Zebra's documented queue), reconnects and replays; figures:
   drain time and any ``seen`` announced again (must be 0: the tags never left).

Usage::

    .venv/bin/python bench/ingest.py            # 20 s sustained + 66,000 replay
    .venv/bin/python bench/ingest.py --quick    # 5 s + 20,000
    .venv/bin/python bench/ingest.py --serial   # then bench/ingest_serial.py, if present

The emit here is in memory (no SQLite), so the figures are the device path's.
Goals: ≥ 10,000 reads/s with p99 < 100 ms; replay drained < 15 s, 0 duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devices.driver import DeviceSpec, MqttSettings  # noqa: E402
from devices.events import DeviceEvent, DeviceRole, PresenceKind, TagPresenceEvent  # noqa: E402

READERS = [
    ("impinj-1", "impinj-iot"),
    ("impinj-2", "impinj-iot"),
    ("zebra-1", "zebra-iotc"),
    ("zebra-2", "zebra-iotc"),
]


def topic_of(reader_id: str) -> str:
    return (
        f"impinj/{reader_id}/events"
        if reader_id.startswith("impinj")
        else f"zebra/{reader_id}/data"
    )


# --------------------------------------------------------------------------- publisher process


def publisher_main(settings: MqttSettings, plan: dict[str, Any], inbox: Any, outbox: Any) -> None:
    asyncio.run(_publisher(settings, plan, inbox, outbox))


async def _publisher(settings: MqttSettings, plan: dict[str, Any], inbox: Any, outbox: Any) -> None:
    from simulators.rfid_mqtt import ImpinjReaderSim, ReaderSim, ZebraReaderSim, make_epcs

    sims: list[ReaderSim] = []
    for i, (reader_id, driver) in enumerate(READERS):
        cls = ImpinjReaderSim if driver == "impinj-iot" else ZebraReaderSim
        sims.append(
            cls(
                settings,
                reader_id=reader_id,
                topic=topic_of(reader_id),
                tags=make_epcs(plan["tags_per_reader"], seed=100 + i),
                antennas=4,
                rate=0,
                batch=plan["impinj_batch"] if driver == "impinj-iot" else plan["zebra_batch"],
                seed=100 + i,
                max_backlog=plan["replay"],
            )
        )
    for sim in sims:
        await sim.__aenter__()
    loop = asyncio.get_running_loop()
    # Phase 1: sustained publishing with churn.
    for sim in sims:
        sim.rate = plan["rate"]
        sim.churn = plan["churn"]
        sim._task = asyncio.create_task(sim._generate())
    await asyncio.sleep(plan["seconds"])
    # The readers keep reading (a real reader never stops), without churn from
    # now on, so that every tag stays present through the outage and replay.
    for sim in sims:
        sim.churn = 0.0
        sim.rate = plan["replay_live_rate"]  # and at a nominal rate, to give the replay room
    outbox.put(("live", sum(s.reads_published for s in sims), sum(s.published for s in sims)))
    outbox.put(("population", sorted(epc for s in sims for epc in s.population)))
    first_sent = {epc: t for s in sims for epc, t in s.first_sent.items()}
    outbox.put(("first_sent", first_sent))
    # Phase 2: wait for the go, then lose the broker, queue, replay.
    await loop.run_in_executor(None, inbox.get)
    per_reader = plan["replay"] // len(sims)
    for sim in sims:
        sim.disconnect()
        sim.fill_backlog(per_reader, batch=1)  # a reader queues one tag report per message
    started = time.time()
    outbox.put(("replay_start", started, per_reader * len(sims)))
    counts = await asyncio.gather(*(sim.reconnect() for sim in sims))
    published_in = time.time() - started
    for sim in sims:
        await sim.stop()
    outbox.put(("replay_published", published_in, sum(counts), sum(s.published for s in sims)))
    await loop.run_in_executor(None, inbox.get)
    for sim in sims:
        await sim.__aexit__(None, None, None)


# --------------------------------------------------------------------------- box side


async def box_side(settings: MqttSettings, plan: dict[str, Any]) -> dict[str, Any]:
    from common.backoff import Backoff
    from edge.device_supervisor import DeviceSupervisor

    specs = [
        DeviceSpec(
            id=reader_id,
            driver=driver,
            role=DeviceRole.PICK_ZONE,
            topic=topic_of(reader_id),
            options={"gone_after": plan["gone_after"]},
        )
        for reader_id, driver in READERS
    ]
    seen_at: dict[str, float] = {}  # box wall clock of each tag's first seen
    seen_by_phase = {"live": 0, "replay": 0}
    gone_by_phase = {"live": 0, "replay": 0}
    ever_seen: set[str] = set()
    seen_again: list[str] = []  # replay-phase seen of a tag announced before
    gone_in_replay: list[str] = []
    phase = "live"

    async def on_event(event: DeviceEvent) -> None:
        if isinstance(event, TagPresenceEvent):
            if event.kind is PresenceKind.SEEN:
                seen_by_phase[phase] += 1
                if phase == "live":
                    seen_at[event.epc_hex] = time.time()
                elif event.epc_hex in ever_seen:
                    seen_again.append(event.epc_hex)
                ever_seen.add(event.epc_hex)
            else:
                gone_by_phase[phase] += 1
                if phase == "replay":
                    gone_in_replay.append(event.epc_hex)
                    if os.environ.get("BENCH_DEBUG") and len(gone_in_replay) < 4:
                        drv: Any = sup.drivers[event.device_id]
                        print("gone in replay:", event, "clock", drv.smoother.clock, time.time())

    sup = DeviceSupervisor(specs, mqtt=settings, on_event=on_event, backoff=Backoff(0.1, 1.0))
    drivers: list[Any] = list(sup.drivers.values())
    runner = asyncio.create_task(sup.run())
    while not all(d.stats.connected for d in drivers):  # noqa: ASYNC110
        await asyncio.sleep(0.05)

    ctx = mp.get_context("spawn")
    inbox, outbox = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=publisher_main, args=(settings, plan, inbox, outbox), daemon=True)
    proc.start()
    loop = asyncio.get_running_loop()

    def reads() -> int:
        return sum(d.reads for d in drivers)

    def frames() -> int:
        return sum(d.stats.frames for d in drivers)

    # Phase 1: count decoded reads over the steady part of the run.
    await asyncio.sleep(plan["warmup"])
    r0, t0 = reads(), time.monotonic()
    kind, offered_reads, offered_msgs = await loop.run_in_executor(None, outbox.get)
    assert kind == "live"
    kind, population = await loop.run_in_executor(None, outbox.get)
    present = set(population)
    kind, first_sent = await loop.run_in_executor(None, outbox.get)
    # publish → seen, for tags that entered the field after the warm-up (churn):
    # from the moment the message with a tag's first read was handed to the
    # MQTT client to the moment its smoothed seen event reached the consumer.
    start_sent = min(first_sent.values()) + plan["warmup"]
    latencies = [
        seen_at[epc] - sent
        for epc, sent in first_sent.items()
        if sent > start_sent and epc in seen_at
    ]
    r1, t1 = reads(), time.monotonic()
    settle = time.monotonic()
    while reads() < offered_reads and time.monotonic() - settle < 10:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    backlog_after_live = max(0, offered_reads - reads())
    live = {
        "offered_reads_per_s": offered_reads / plan["seconds"],
        "decoded_reads_per_s": (r1 - r0) / (t1 - t0),
        "messages": offered_msgs,
        "unprocessed_after_live": backlog_after_live,
        "seen": seen_by_phase["live"],
        "gone": gone_by_phase["live"],
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * statistics.quantiles(latencies, n=100)[98]
        if len(latencies) >= 100
        else float("nan"),
        "samples": len(latencies),
    }

    # Phase 2: replay. First let the windows of churned-out tags close.
    await asyncio.sleep(plan["gone_after"] + 1.0)
    phase = "replay"
    inbox.put("go")
    kind, started, expected = await loop.run_in_executor(None, outbox.get)
    kind, published_in, replayed, total_published = await loop.run_in_executor(None, outbox.get)
    deadline = time.monotonic() + 120
    while frames() < total_published and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    drained = time.time() - started
    replay = {
        "messages": expected,
        "replayed": replayed,
        "received_all": frames() == total_published,
        "drain_s": drained,
        "published_in_s": published_in,
        "duplicate_seen": len(seen_again),
        "new_seen": seen_by_phase["replay"] - len(seen_again),
        "gone": gone_by_phase["replay"],
        "gone_present": sum(epc in present for epc in gone_in_replay),
        "bad_frames": sum(d.stats.bad_frames for d in drivers),
        "reconnects": sum(d.stats.reconnects for d in drivers),
    }
    inbox.put("bye")
    await loop.run_in_executor(None, proc.join, 10)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    return {"live": live, "replay": replay}


def print_table(plan: dict[str, Any], result: dict[str, Any]) -> bool:
    live, replay = result["live"], result["replay"]
    ok_rate = live["decoded_reads_per_s"] >= 10_000 and live["unprocessed_after_live"] <= 0
    ok_p99 = live["p99_ms"] < 100
    ok_drain = replay["drain_s"] < 15 and replay["received_all"]
    ok_dup = replay["duplicate_seen"] == 0 and replay["gone_present"] == 0
    rows = [
        ("readers × antennas, tags", f"4 × 4, {4 * plan['tags_per_reader']}", ""),
        (
            "reads per message (Impinj / Zebra)",
            f"{plan['impinj_batch']} / {plan['zebra_batch']}",
            "",
        ),
        ("offered reads/s", f"{live['offered_reads_per_s']:,.0f}", ""),
        (
            "decoded + smoothed reads/s",
            f"{live['decoded_reads_per_s']:,.0f}",
            "≥ 10,000 " + ("ok" if ok_rate else "MISSED"),
        ),
        ("unprocessed after the run", f"{live['unprocessed_after_live']:,}", ""),
        ("seen / gone events (churn)", f"{live['seen']:,} / {live['gone']:,}", ""),
        ("publish → seen p50", f"{live['p50_ms']:.1f} ms", ""),
        (
            "publish → seen p99",
            f"{live['p99_ms']:.1f} ms ({live['samples']} samples)",
            "< 100 ms " + ("ok" if ok_p99 else "MISSED"),
        ),
        ("replay burst", f"{replay['messages']:,} messages", ""),
        (
            "replay drained in",
            f"{replay['drain_s']:.2f} s (published in {replay['published_in_s']:.2f} s)",
            "< 15 s " + ("ok" if ok_drain else "MISSED"),
        ),
        (
            "replay: seen announced again",
            f"{replay['duplicate_seen']}",
            "0 " + ("ok" if ok_dup else "MISSED"),
        ),
        (
            "replay: gone (of tags in the field) / bad",
            f"{replay['gone']} ({replay['gone_present']}) / {replay['bad_frames']}",
            "",
        ),
        ("reconnects during the run", f"{replay['reconnects']}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    cpus = os.cpu_count()
    print(f"\nPickEdge ingest over loopback MQTT ({cpus} CPUs, Mosquitto, QoS 1, manual acks)")
    for name, value, goal in rows:
        print(f"  {name:<{width}}  {value:>{vwidth}}  {goal}")
    return ok_rate and ok_p99 and ok_drain and ok_dup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s sustained, 20,000-message replay")
    parser.add_argument("--seconds", type=float, help="sustained phase length (default 20)")
    parser.add_argument(
        "--rate", type=float, default=3000.0, help="reads/s per reader (default 3000)"
    )
    parser.add_argument("--tags", type=int, default=500, help="tag population, all readers")
    parser.add_argument("--replay", type=int, help="replayed messages in total (default 66000)")
    parser.add_argument(
        "--impinj-batch", type=int, default=10, help="ReaderEvents per Impinj message"
    )
    parser.add_argument("--zebra-batch", type=int, default=20, help="records per Zebra message")
    parser.add_argument(
        "--serial", action="store_true", help="run bench/ingest_serial.py afterwards"
    )
    args = parser.parse_args(argv)
    plan = {
        "seconds": args.seconds or (5.0 if args.quick else 20.0),
        "warmup": 1.0,
        "rate": args.rate,
        "tags_per_reader": max(1, args.tags // 4),
        "churn": 10.0,  # tags leaving/entering per second per reader
        "replay": args.replay or (20_000 if args.quick else 66_000),
        "impinj_batch": args.impinj_batch,
        "zebra_batch": args.zebra_batch,
        "gone_after": 2.0,
        "replay_live_rate": 1000.0,
    }
    from simulators.broker import MosquittoBroker

    with (
        tempfile.TemporaryDirectory(prefix="pickedge-bench-") as tmp,
        MosquittoBroker(Path(tmp)) as broker,
    ):
        result = asyncio.run(box_side(broker.settings(prefix="bench"), plan))
    ok = print_table(plan, result)
    if args.serial:
        serial_bench = ROOT / "bench" / "ingest_serial.py"
        if serial_bench.exists():
            import importlib.util

            spec = importlib.util.spec_from_file_location("ingest_serial", serial_bench)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            serial_ok = module.main(["--quick"] if args.quick else [])
            ok = ok and not serial_ok  # its main() returns an exit status
        else:
            print("bench/ingest_serial.py not found: serial part skipped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
