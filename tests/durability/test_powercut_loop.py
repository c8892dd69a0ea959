"""The power-cut loop, short form (tests/support/powercut_loop.py).

The real ``pickedge run`` with its whole directory on the power-cut
filesystem, three PDAs walking tours and the uploader against a faulty
cloud; power cut at random moments and at the named crash points, the
filesystem mounted again, the daemon restarted. After every cut: the file
sound and holding everything a PDA was told; at the end: every event at the
cloud exactly once (no epoch conflict), the cloud's net stock = the box's
ledger = what the PDAs were told. The long form is ``python
bench/powercut.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.e2e import check_exactly_once, check_the_loop_worked, nonzero, summary
from tests.support.powercut_loop import cut_summary, powercut_loop

CUTS = 50
TORN_CUTS = 20


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.parametrize(("mode", "cuts"), [("default", CUTS), ("torn", TORN_CUTS)])
async def test_powercut_loop(tmp_path: Path, mode: str, cuts: int) -> None:
    async with powercut_loop(tmp_path, cuts=cuts, mode=mode) as p:
        run = p.run
        f = check_exactly_once(run)
        assert f.pruned == 0
        assert f.on_tours == nonzero(f.units)
        print(summary(f"power-cut loop ({mode})", run, f))
        print(cut_summary("power-cut loop", p))
        check_the_loop_worked(run, f)
        assert p.box.cuts >= cuts
        assert p.checks.checked == p.box.cuts - 1  # all but the first (before the PDAs)
        assert (p.checks.lost_units, p.checks.lost_shorts) == (0, 0)
        assert p.checks.epoch_conflicts == 0
        assert p.box.totals["lost_pages"] > 0, "the cuts dropped nothing: nothing was tested"
        if mode == "torn":
            assert p.box.totals["torn_pages"] > 0
