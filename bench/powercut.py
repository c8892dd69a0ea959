"""The power-cut loop, long form: does a beep that said OK survive the plug?

The real ``pickedge run`` with its whole directory (database, WAL, ``-shm``,
sync mark, configuration, secret) on the power-cut filesystem
(tests/support/powercut_fs.py), three PDAs walking tours, the uploader
against a faulty cloud, the named crash points armed; the power is cut at
random moments and at the crash points (what the daemon had not synced is
dropped), the filesystem mounted again, the daemon restarted
(tests/support/powercut_loop.py). The cuts run in rounds of ``--per-round``
(a fresh box, zone and cloud each: a round's pickers never run out of work);
each round ends with the loop's whole proof.

Printed per mode (``default``: unsynced writes lost; ``torn``: a seeded half
of them lands anyway and the latest page of each file is torn):

- cuts (at random moments / at crash points) and rounds;
- confirmed facts lost: units and shorts a PDA heard confirmed that the file
  after a cut did not hold (checked after every cut);
- files that failed a check after a cut (``integrity_check``, the outbox
  contiguous, a ledger row per ``stock_delta``, picks = ``pick_confirmed``);
- epoch conflicts at the cloud (a seq reused with other content);
- rounds whose end failed (every event at the cloud exactly once; the cloud's
  net stock = the box's ledger = what the PDAs were told);
- what the cuts dropped (pages, directories; in ``torn`` mode what landed and
  what was torn) and the work done (units confirmed, events).

    .venv/bin/python bench/powercut.py                      # 1,000 + 300 cuts (~45 min, 2 cores)
    .venv/bin/python bench/powercut.py --cuts 200 --torn-cuts 200
    .venv/bin/python bench/powercut.py --quick              # one short round per mode

Needs FUSE (``/dev/fuse``, ``fusermount3``, libfuse3: ``./dev.sh`` installs
``fuse3``) and root or a user allowed to mount FUSE.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.e2e import check_exactly_once  # noqa: E402
from tests.support.powercut_fs import fuse_ready  # noqa: E402
from tests.support.powercut_loop import powercut_loop  # noqa: E402


@dataclass
class Tally:
    mode: str
    rounds: int = 0
    cuts: int = 0
    at_random: int = 0
    at_points: collections.Counter[str] = field(default_factory=collections.Counter)
    lost_units: int = 0
    lost_shorts: int = 0
    epoch_conflicts: int = 0
    failed_rounds: list[str] = field(default_factory=list)
    fs: collections.Counter[str] = field(default_factory=collections.Counter)
    units: int = 0
    events: int = 0
    seconds: float = 0.0


async def one_round(tally: Tally, cuts: int, seed: int) -> None:
    started = time.monotonic()
    done = tally.cuts
    with tempfile.TemporaryDirectory(prefix="powercut-bench-") as tmp:
        try:
            async with powercut_loop(
                Path(tmp), cuts=cuts, mode=tally.mode, seed=seed, strict=False
            ) as p:
                box, checks = p.box, p.checks
                tally.cuts += box.cuts
                tally.at_random += box.test_kills
                tally.at_points.update(box.crash_points_fired())
                tally.lost_units += checks.lost_units
                tally.lost_shorts += checks.lost_shorts
                tally.epoch_conflicts += checks.epoch_conflicts
                tally.fs.update(box.totals)
                f = check_exactly_once(p.run)
                tally.units += sum(f.units.values())
                tally.events += len(f.events)
        except AssertionError as exc:
            first = str(exc).splitlines()[0][:300] if str(exc) else repr(exc)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            tally.failed_rounds.append(f"seed {seed}: {first} ({where.name}:{where.lineno})")
            tally.cuts = max(tally.cuts, done + cuts)  # a failed round still spends its cuts
    tally.rounds += 1
    tally.seconds += time.monotonic() - started


def report(t: Tally) -> str:
    fs = t.fs
    points = sum(t.at_points.values())
    lines = [
        f"mode {t.mode}: {t.cuts} power cuts in {t.rounds} rounds "
        f"({t.at_random} at random moments, {points} at crash points {dict(t.at_points)}), "
        f"{t.seconds:.0f} s",
        f"  confirmed facts lost: {t.lost_units} units, {t.lost_shorts} shorts",
        f"  epoch conflicts at the cloud: {t.epoch_conflicts}",
        f"  rounds failed (a check after a cut, or the end's exactly-once): "
        f"{len(t.failed_rounds)} of {t.rounds}",
        f"  work: {t.units} units confirmed to PDAs, {t.events} events at the cloud",
        f"  the cuts dropped {fs['lost_pages']} unsynced pages, {fs['lost_dirs']} unsynced "
        f"directories; {fs['fsyncs']} fsyncs and {fs['fsyncdirs']} directory fsyncs seen",
    ]
    if t.mode == "torn":
        lines.append(
            f"  torn: landed {fs['kept_pages']} unsynced pages, tore {fs['torn_pages']}, "
            f"landed {fs['kept_dirs']} directories and {fs['kept_truncates']} truncates"
        )
    lines += [f"    {f}" for f in t.failed_rounds]
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cuts", type=int, default=1000, help="cuts in default mode")
    parser.add_argument("--torn-cuts", type=int, default=300, help="cuts in torn mode")
    parser.add_argument("--per-round", type=int, default=100, help="cuts per round")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="one round of 6 cuts per mode")
    args = parser.parse_args()
    # files private to the user, as the tests make them: the daemon refuses a
    # secret file others can read (edge/config.py)
    os.umask(0o077)
    problem = fuse_ready()
    if problem is not None:
        print(f"bench/powercut.py needs FUSE: {problem}", file=sys.stderr)
        return 2
    plan = {"default": args.cuts, "torn": args.torn_cuts}
    per_round = args.per_round
    if args.quick:
        plan, per_round = {"default": 6, "torn": 6}, 6
    failed = False
    for mode, total in plan.items():
        tally = Tally(mode)
        seed = args.seed
        while tally.cuts < total:
            await one_round(tally, min(per_round, total - tally.cuts), seed)
            seed += 1
            print(
                f"  [{mode}] round {tally.rounds}: {tally.cuts} cuts so far, "
                f"{tally.lost_units} units lost, {len(tally.failed_rounds)} rounds failed",
                flush=True,
            )
        print(report(tally), flush=True)
        failed |= bool(tally.lost_units or tally.lost_shorts or tally.failed_rounds)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
