"""The end-to-end kill loop: the real daemon, real PDAs, a faulty cloud, SIGKILL.

``pickedge run`` runs in its own process with a configuration of its own; the
cloud (the sync-v1 simulator, with its faults and the zone's master data and
tasks) and the pickers' handhelds (:class:`simulators.floor.PdaClient`) run in
the test's event loop, so both outlive every kill of the box.

The loop: start the daemon, let it work for a random 0.1–0.6 s, SIGKILL it —
unless one of the named crash points (:mod:`common.faults`, armed through
``PICKEDGE_CRASH_POINTS``) killed it first, right after a scan committed and
before its answer, or right after a batch was answered and before its ack was
stored — run ``PRAGMA integrity_check`` on the database file, start again. The
handhelds behave like the PDA page: a scan that got no answer is sent again
with the same ``scan_id`` until the box answers, and after a restart the PDA
fetches ``GET /api/v1/tour`` to resume.

Each handheld remembers what the box *told* it: a unit is confirmed by an
answer ``item_ok`` / ``stop_done`` / ``tour_done`` to an item scan, and a short
pick (always of the units the picker scanned, reason ``damaged`` or ``other``,
with plenty of stock at the location) writes off the missing units there.

After the loop (crash points disarmed, faults cleared, the outbox drained):

- per (sku, location): the cloud's net stock delta == the box's ledger == what
  the PDAs were told; the cloud's ``pick_confirmed`` units == the units told;
- the cloud holds every (epoch, seq) of the box exactly once, contiguous from
  1, with the content the box wrote; nothing is left unacked;
- sessions survived every kill (no PDA had to log in again).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common import faults
from tests.support.e2e import (
    ROOT,
    check_exactly_once,
    check_the_loop_worked,
    kill_loop,
    nonzero,
    summary,
)

KILLS = 100


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_e2e_kill_loop_daemon_pdas_faulty_cloud(tmp_path: Path) -> None:
    async with kill_loop(tmp_path, kills=KILLS) as run:
        f = check_exactly_once(run)
        assert f.pruned == 0  # with the above: the cloud's events == the box's outbox
        assert f.on_tours == nonzero(f.units)
        print(summary("e2e kill loop", run, f))
        check_the_loop_worked(run, f)
        assert sum(p.unauthorized for p in run.pdas) == 0, "a kill lost a PDA session"


def test_e2e_crash_points_are_inert_unless_armed() -> None:
    code = "from common.faults import crash_point as c; c('after_send_before_ack'); print('alive')"

    def run(spec: str | None) -> subprocess.CompletedProcess[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICKEDGE")}
        if spec is not None:
            env[faults.ENV] = spec
        return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True)

    for spec in (None, "", "after_commit_before_answer:1", "after_send_before_ack:0"):
        inert = run(spec)
        assert (inert.returncode, inert.stdout) == (0, b"alive\n"), (spec, inert.stderr)
    armed = run("after_commit_before_answer:0, after_send_before_ack:1")
    assert (armed.returncode, armed.stdout) == (-9, b"")
    assert armed.stderr == b"crash point after_send_before_ack: SIGKILL\n"
    typo = run("after_send_before_akc:1")
    assert typo.returncode == 1 and b"unknown crash point" in typo.stderr

    assert faults.parse("after_send_before_ack:0.25,") == {"after_send_before_ack": 0.25}
    for bad in ("after_send_before_ack", "after_send_before_ack:x", "after_send_before_ack:2"):
        with pytest.raises(ValueError, match=faults.ENV):
            faults.parse(bad)
    assert faults.ARMED == {}  # the test process itself is never armed
