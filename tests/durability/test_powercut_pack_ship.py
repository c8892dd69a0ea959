"""SSCCs under power cuts: the pack/ship kill loop (tests/support/pack_ship.py,
its checks in tests/e2e/test_e2e_pack_ship_kills.py) with the box's directory
on the power-cut filesystem, so that every death of the daemon — at random
moments, aimed at labels and at the portal, at the crash points
``after_pack_commit_before_ack`` and ``after_close_before_print`` — drops
what it had not synced, and the restore of a backup copies it onto that
filesystem too. The SSCC allocator's block reservations on the sync mark
(a file outside the database: temporary file, fsync, rename, directory
fsync) are what is tested here: after every cut no SSCC is handed out again
(one carton per SSCC on every label the printer printed, none in two
``shipment_confirmed``), and none after the restore is below the high-water
of before it.

``PICKEDGE_POWERCUT_PACK_CUTS`` sets the number of cuts (default 10).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from tests.support.mosquitto import MosquittoBroker, mosquitto_broker
from tests.support.pack_ship import pack_ship_kill_loop
from tests.support.powercut_fs import PowercutFs
from tests.support.powercut_loop import PowercutPackBox
from tests.support.processes import ProcessReaper

__all__ = ["mosquitto_broker"]

CUTS = int(os.environ.get("PICKEDGE_POWERCUT_PACK_CUTS", "10"))


@pytest.mark.slow
@pytest.mark.timeout(120 + 15 * CUTS)
async def test_powercut_pack_ship_ssccs_never_reused(
    tmp_path: Path, mosquitto_broker: MosquittoBroker, processes: ProcessReaper
) -> None:
    with PowercutFs(tmp_path / "mnt", tmp_path / "disk", log=tmp_path / "fs.log") as fs:
        make = functools.partial(PowercutPackBox, fs=fs)
        box, text = await pack_ship_kill_loop(
            tmp_path,
            mosquitto_broker,
            processes,
            kills=CUTS,
            box_dir=fs.mount_point,
            make_box=make,
            name="power-cut pack/ship loop",
        )
    assert isinstance(box, PowercutPackBox)
    t = box.totals
    print(
        f"{text}\npower cuts: {box.cuts}, dropping {t['lost_pages']} unsynced pages; "
        f"{t['fsyncs']} fsyncs, {t['fsyncdirs']} directory fsyncs"
    )
    assert box.cuts >= CUTS
    assert t["lost_pages"] > 0, "the cuts dropped nothing: nothing was tested"
