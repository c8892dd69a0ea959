"""The power-cut loop: the end-to-end kill loop with the box's files on the
power-cut filesystem (tests/support/powercut_fs.py), so that every death of
the daemon is a power cut, not just a SIGKILL.

It is :func:`tests.support.e2e.kill_loop` — the real ``pickedge run``, three
PDAs walking tours, the uploader against a faulty cloud, the named crash
points armed — with three changes:

- the box's directory (configuration, secret, database, WAL, ``-shm``, the
  sync mark beside the database: everything the daemon writes) is the mount;
  the cloud's database and the daemon's log stay on the real disk;
- every death (the test's SIGKILL at a random moment, or a crash point's)
  is followed, before anything else looks at the files, by a **cut**: what
  the daemon had not synced is dropped (``torn``: half of it lands, the
  latest page of each file torn), the filesystem is unmounted and mounted
  again over what the "disk" kept. A dead process issues no sync, so the
  SIGKILL coming first is the same as the two happening at one instant;
- after every cut (:class:`CutChecks`), on the file the next daemon will
  open: ``integrity_check`` ok; each epoch's outbox contiguous, a ledger row
  per ``stock_delta`` event, the units on tours = the ``pick_confirmed``
  events (:func:`tests.support.e2e.check_backup`); and nothing a PDA was told
  is missing: per (sku, location) the units picked on the box's tours ≥ the
  units the PDAs heard confirmed, the ledger's movement ≥ what they heard
  picked and written off, and the ``pick_exception`` events ≥ the shorts
  they heard confirmed.

The cloud's answers are watched for ``epoch_conflict`` (other content under
a seq the cloud holds: a seq the box reused after a cut lost the event it
had sent); the end is kill_loop's: exactly once at the cloud, the cloud's net
stock = the box's ledger = what the PDAs were told.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.cloud import CloudSimulator
from tests.support.e2e import (
    PICKED_ON_TOURS,
    Box,
    Hooks,
    Key,
    LoopRun,
    Told,
    check_backup,
    kill_loop,
    ledger_sums,
    read_ro,
)
from tests.support.pack_ship import PackBox
from tests.support.powercut_fs import PowercutFs


@dataclass
class PowercutBox(Box):
    """A :class:`~tests.support.e2e.Box` whose files are on the power-cut
    filesystem: every death of the daemon cuts the power."""

    fs: PowercutFs | None = None
    mode: str = "default"
    seed: int = 0
    cuts: int = 0
    cut_s: float = 0.0
    totals: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        # What the installer wrote (configuration, secret) is on the disk
        # before the box ever runs, as `sync` at the end of an install makes it.
        assert self.fs is not None
        self.fs.sync()

    def after_death(self) -> None:
        assert self.fs is not None
        started = time.monotonic()
        self.totals.update(self.fs.cut(self.mode, seed=self.seed * 100_003 + self.cuts))
        self.cuts += 1
        self.fs.mount()
        self.cut_s += time.monotonic() - started


@dataclass
class PowercutPackBox(PackBox, PowercutBox):
    """The pack/ship loop's box (tests/support/pack_ship.py) on the power-cut
    filesystem: started through the test's reaper, every death a cut.

    A ``pickedge db backup`` running as the power is cut dies with the box
    (its reads fail on the cut mount); the operator runs it again, and so
    does :meth:`backup` — only for that failure."""

    async def backup(self, dest: Path) -> None:
        for attempt in range(50):
            cuts = self.cuts
            try:
                await super().backup(dest)
                return
            except AssertionError:
                # only a backup that a cut met (its reads failed, or the mount
                # was down between the cut and the next mount) is run again
                if attempt == 49 or self.cuts == cuts:
                    raise
                self.backups_cut += 1
                _remove_copy(dest)
                await asyncio.sleep(0.2)

    backups_cut: int = 0


def _remove_copy(dest: Path) -> None:
    for path in (dest, dest.with_name(dest.name + "-journal"), dest.with_name(dest.name + "-wal")):
        path.unlink(missing_ok=True)


@dataclass
class CutChecks(Hooks):
    """After every cut, before the next start: the file is sound and holds
    everything a PDA was told (see the module's docstring)."""

    told: list[Told]
    checked: int = 0
    lost_units: int = 0  # units a PDA heard confirmed that the box lost
    lost_shorts: int = 0
    epoch_conflicts: int = 0
    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    strict: bool = True  # fail at the first loss (the test); else count it (the bench)
    check_s: float = 0.0

    async def begin(self, box: Box, cloud: CloudSimulator) -> None:
        receiver = cloud.receiver
        receive = receiver.receive

        def watched(box_id: str, body: bytes) -> Any:
            answer = receive(box_id, body)
            self.answers[answer.outcome or str(answer.status)] += 1
            if answer.outcome == "conflict":
                self.epoch_conflicts += 1
            return answer

        receiver.receive = watched  # type: ignore[method-assign]

    async def down(self, box: Box) -> None:
        started = time.monotonic()
        check_backup(box.db)  # integrity, contiguous outbox, ledger = events
        conn = read_ro(box.db)
        try:
            on_tours: dict[Key, int] = {
                (sku, loc): n for sku, loc, n in conn.execute(PICKED_ON_TOURS)
            }
            ledger = ledger_sums(conn)
            (shorts,) = conn.execute(
                "SELECT count(*) FROM outbox WHERE type = 'pick_exception'"
            ).fetchone()
        finally:
            conn.close()
        units: collections.Counter[Key] = collections.Counter()
        moved: collections.Counter[Key] = collections.Counter()
        for t in self.told:
            units.update(t.units)
            moved.update(t.units)
            moved.update(t.written_off)
        lost_units = sum(max(0, n - on_tours.get(k, 0)) for k, n in units.items())
        lost_moves = sum(max(0, n + ledger.get(k, 0)) for k, n in moved.items())
        lost_shorts = max(0, sum(t.shorts for t in self.told) - shorts)
        self.checked += 1
        self.lost_units += max(lost_units, lost_moves)
        self.lost_shorts += lost_shorts
        self.check_s += time.monotonic() - started
        if self.strict:
            assert (lost_units, lost_moves, lost_shorts) == (0, 0, 0), (
                f"cut {self.checked}: a power cut lost what a PDA was told: "
                f"{lost_units} units confirmed, {lost_moves} units of stock movement, "
                f"{lost_shorts} shorts"
            )


@dataclass
class PowercutRun:
    run: LoopRun
    box: PowercutBox
    checks: CutChecks
    fs: PowercutFs


@contextlib.asynccontextmanager
async def powercut_loop(
    tmp_path: Path,
    *,
    cuts: int,
    mode: str = "default",
    seed: int = 1,
    run_s: tuple[float, float] = (0.3, 1.2),
    strict: bool = True,
    **kill_loop_args: Any,
) -> AsyncIterator[PowercutRun]:
    """Run the loop with ``cuts`` power cuts in ``mode``; yields with the
    cloud up, the outbox drained and the filesystem still mounted."""
    told: list[Told] = []
    checks = CutChecks(told, strict=strict)
    with PowercutFs(tmp_path / "mnt", tmp_path / "disk", log=tmp_path / "fs.log") as fs:
        make = functools.partial(PowercutBox, fs=fs, mode=mode, seed=seed)
        async with kill_loop(
            tmp_path,
            kills=cuts,
            run_s=run_s,
            hooks=checks,
            box_dir=fs.mount_point,
            make_box=make,
            told=told,
            **kill_loop_args,
        ) as run:
            assert isinstance(run.box, PowercutBox)
            yield PowercutRun(run, run.box, checks, fs)


def cut_summary(name: str, p: PowercutRun) -> str:
    box, c, t = p.box, p.checks, p.box.totals
    return (
        f"{name} ({box.mode}): {box.cuts} power cuts "
        f"({box.test_kills} at random moments, {box.self_kills} at crash points "
        f"{dict(box.crash_points_fired())}); {c.checked} checks after a cut: "
        f"{c.lost_units} confirmed units lost, {c.lost_shorts} confirmed shorts lost; "
        f"{c.epoch_conflicts} epoch conflicts; the cuts dropped {t['lost_pages']} "
        f"unsynced pages and {t['lost_dirs']} unsynced directories"
        + (
            f", landed {t['kept_pages']} pages, tore {t['torn_pages']}, "
            f"landed {t['kept_dirs']} directories and {t['kept_truncates']} truncates"
            if box.mode == "torn"
            else ""
        )
        + f"; {t['fsyncs']} fsyncs, {t['fsyncdirs']} directory fsyncs; "
        f"cutting and mounting {box.cut_s:.1f} s, checks {c.check_s:.1f} s"
    )
