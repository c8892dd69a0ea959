"""The kill loop again, with the box's wall clock years off and jumping.

sync-v1 says "no wall clock in correctness": ordering and dedup use ``seq``,
timestamps are informational. This runs the loop of ``test_e2e_kill_loop.py``
(:mod:`tests.support.e2e`) with fewer kills, the daemon under libfaketime
(:class:`tests.support.e2e.WallClock`): every start gets another offset
(years ahead, years back, none, days back, ...) and while it runs its clock
jumps once or twice more, years forwards or backwards. The monotonic clock
stays real, as on a box.

First the test shows that the fake clock took effect: the ``at`` of every event
the cloud received is explained by the offset that held when it was written,
and offsets years ahead and years back (set at a start and by a jump while
running) each stamped events. Then the same final assertions as the plain loop:
the cloud's net stock == the box's ledger == what the PDAs were told, every
(epoch, seq) once and contiguous, ``integrity_check`` ok after every kill.

What the wrong clock may change, and this allows: sessions expire when the
clock jumps past their expiry (the PDA logs in again: counted), acked outbox
rows and finished tours are pruned early (the ones kept must still agree).
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from tests.support.e2e import (
    UNIT_MS,
    WallClock,
    check_exactly_once,
    check_the_loop_worked,
    kill_loop,
    nonzero,
    real_ms,
    summary,
)

KILLS = 30
#: more often than the plain loop's, so that both fire in fewer kills
CRASH_POINTS = "after_commit_before_answer:0.004,after_send_before_ack:0.12"
#: seconds each start runs: some outlive the first maintenance tick (1 s), which
#: runs the retention purge (by box uptime, whatever the wall clock says)
RUN_S = (0.1, 1.5)
#: the offset each start gets, in turn (libfaketime syntax, "y" = 365 days)
STARTS = ("+7y", "-12y", "+0", "-3d", "+30y", "-26y", "+100d", "-1h", "+15y", "-40y")
#: the jumps while the daemon runs, in turn
JUMPS = ("+5y", "-10y", "+20y", "-2y", "+45d", "-30y")
YEAR_MS = UNIT_MS["y"]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_e2e_kill_loop_with_wall_clock_years_off_and_jumping(tmp_path: Path) -> None:
    test_started = real_ms()
    clock = WallClock(tmp_path, STARTS, JUMPS, seed=6)
    async with kill_loop(
        tmp_path, kills=KILLS, clock=clock, crash_points=CRASH_POINTS, run_s=RUN_S
    ) as run:
        f = check_exactly_once(run)

        # The fake clock took effect: each event's `at` (the box's wall clock)
        # is explained by the offset that held when it was written.
        stamped: collections.Counter[int] = collections.Counter()
        unexplained = []
        for e in f.events:
            w = clock.window_of(e["at"])
            if w is None:
                unexplained.append((e["seq"], e["type"], e["at"]))
            else:
                stamped[id(w)] += 1
        assert not unexplained, (unexplained[:5], len(unexplained))
        used = [w for w in clock.windows if stamped[id(w)]]
        by_spec: collections.Counter[str] = collections.Counter()
        for w in used:
            by_spec[w.spec] += stamped[id(w)]
        far = [w for w in used if abs(w.offset_ms) >= YEAR_MS]
        assert any(w.offset_ms >= 5 * YEAR_MS for w in used), by_spec
        assert any(w.offset_ms <= -10 * YEAR_MS for w in used), by_spec
        assert any(w.jump and w.offset_ms > 0 for w in far), "no forward jump stamped events"
        assert any(w.jump and w.offset_ms < 0 for w in far), "no backward jump stamped events"
        assert len({w.spec for w in far}) >= 6, by_spec
        years_off = sum(stamped[id(w)] for w in far)
        assert years_off > len(f.events) // 2, (years_off, len(f.events))
        # and none of it is the test's own clock: the events are not all "now"
        now = real_ms()
        assert sum(test_started <= e["at"] <= now for e in f.events) < len(f.events) // 2

        # Retention runs on the box's uptime (monotonic), so no clock jump purges
        # finished work early: every tour is still there and agrees with the PDAs.
        assert f.tours_kept == f.tours_started
        assert f.on_tours == nonzero(f.units)
        # Sessions expire on uptime too: no jump logs a picker out.
        assert sum(p.unauthorized for p in run.pdas) == 0, "a clock jump ended a session"

        print(summary("e2e kill loop, wall clock off and jumping", run, f))
        jumps = sum(w.jump for w in clock.windows)
        print(
            f"clock: {len(clock.windows) - jumps} start offsets + {jumps} jumps; events "
            f"stamped per offset {dict(by_spec)}; {years_off} of {len(f.events)} events "
            f"stamped years off; {f.pruned} acked outbox rows pruned early; "
            f"{f.tours_kept} tours kept of {f.tours_started} told; "
            f"{clock.shm_cleaned} libfaketime shm files left by kills removed"
        )
        check_the_loop_worked(run, f)
