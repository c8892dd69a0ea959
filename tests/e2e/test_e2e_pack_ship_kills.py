"""Pack and ship under SIGKILL (issue 10's kill proof).

The real daemon (``python -m edge run``) packs picked orders at station
``P1`` and ships them through dock door ``D1`` while the test SIGKILLs it,
again and again: at random moments; aimed at labels — from inside the
printer simulator as it prints a label, so after the job went out and before
the daemon heard the printer's status and recorded it printed, or 0-30 ms
after a label came out (around that commit); aimed at cartons entering the
portal; and from inside, at two named crash points (:mod:`common.faults`):
``after_pack_commit_before_ack`` (a pack scan committed, its MQTT message not
acknowledged: the broker redelivers it) and ``after_close_before_print`` (the
scan that packed the order committed its SSCCs and print job, nothing sent to
the printer yet). After every kill the database passes ``PRAGMA
integrity_check``.

Around the daemon, in the test's event loop so that they outlive every kill
(:mod:`tests.support.pack_ship`): a real Mosquitto, the printer simulator on
a free port (the station's ``zpl-printer``), the sync-v1 cloud simulator with
a few faults, the station's fixed scanner publishing generic JSON at QoS 1 and
the door's Impinj portal. The orders are seeded into the database before the
first start as picking leaves them (one task each, done, lines picked).

The packer (:class:`~tests.support.pack_ship.Packer`) does what a person at the
station does, from what the station shows (the box's database, read-only):
scans the tote, each unit left, ``CLOSE`` (two cartons for some orders, the
first closed part-way) and waits for the labels; when the order stays packed
and unshipped — its labels never came: a kill between the SSCCs and the
printer — it scans ``REPRINT`` once another daemon runs (or after 1.5 s of
this one's uptime). A scan the box shows no effect of after 1.5 s of its
uptime is scanned again (counted; with QoS 1 and the daemon's persistent
session the broker keeps or redelivers every scan, so it should not happen).
Once the order is shipped the packer reads the cartons' SSCCs off the labels
*the printer printed* (parsed from the ZPL it received) and carries them
through the portal (85 % of orders; the rest stay at the dock); every carton
must then show departed within 6 s of the daemon's uptime — a departure is
never carried through again.

Backup and restore: once a third of the kills are done, at an order's end,
``pickedge db backup`` (the real CLI) copies the database while the daemon
runs, is dead or starting. At two thirds, at an order's end, the outbox is
drained to the cloud (what a box wrote after its backup and never sent is
lost with it, docs/sync.md: draining first keeps the cloud's record whole, so
that exactly-once can be checked across the restore), the daemon killed, the
backup copied over the database (its ``-wal`` and ``-shm`` removed) and the
loop goes on from the older copy, the sync mark left as it was.

Checked after the loop (the daemon restarted without crash points, the last
order finished, the outbox drained, a clean stop):

- every SSCC the printer printed is on one carton (order, n) only, and each
  carton's labels carry one SSCC, however often they were printed;
- one ``shipment_confirmed`` per shipped order at the cloud, none for other
  orders, with the SSCCs its labels carry; no SSCC in two of them;
- one ``carton_departed`` per carton carried through the portal, none for the
  cartons kept at the dock;
- after the restore, every SSCC handed out is beyond every SSCC handed out
  before it (the sync mark's high-water), none in the backup's copy;
- every unit in the confirmed cartons is a unit the packer scanned (a
  redelivered scan packs nothing), the order's lines exactly;
- every job the ``after_close_before_print`` point stopped was printed by a
  ``REPRINT``;
- the cloud holds each epoch's events once and in order, the box's as it
  wrote them, and acked all of them.

The loop runs on (up to three times the starts) until each crash point fired,
the restore was done and kills found the packer printing and at the portal.

``PICKEDGE_E2E_PACK_KILLS`` sets the number of kills: default 16 (~45 s on a
2-core box); the long form is ``PICKEDGE_E2E_PACK_KILLS=60`` (or more).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.mosquitto import MosquittoBroker, mosquitto_broker
from tests.support.pack_ship import pack_ship_kill_loop
from tests.support.processes import ProcessReaper

__all__ = ["mosquitto_broker"]

KILLS = int(os.environ.get("PICKEDGE_E2E_PACK_KILLS", "16"))


@pytest.mark.slow
@pytest.mark.timeout(120 + 15 * KILLS)
async def test_e2e_pack_ship_kills(
    tmp_path: Path, mosquitto_broker: MosquittoBroker, processes: ProcessReaper
) -> None:
    _, text = await pack_ship_kill_loop(tmp_path, mosquitto_broker, processes, kills=KILLS)
    print(text)
