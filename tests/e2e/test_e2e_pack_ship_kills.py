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

import asyncio
import collections
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from edge.store import Store
from simulators.cloud import CloudSimulator, Faults
from simulators.printer import PrinterSimulator
from simulators.rfid_mqtt import ImpinjReaderSim, MqttScannerSim
from tests.support.e2e import BOX, SECRET, free_port, outbox_epochs, read_ro
from tests.support.mosquitto import MosquittoBroker, mosquitto_broker
from tests.support.pack_ship import (
    READER,
    READER_TOPIC,
    SCANNER,
    SCANNER_TOPIC,
    Live,
    PackBox,
    Packer,
    cloud_events,
    drained,
    label_of,
    make_orders,
    seed_orders,
    serial_body,
    ssccs_in,
    write_config,
)
from tests.support.processes import ProcessReaper

__all__ = ["mosquitto_broker"]

KILLS = int(os.environ.get("PICKEDGE_E2E_PACK_KILLS", "16"))
CRASH_POINTS = "after_pack_commit_before_ack:0.025,after_close_before_print:0.1"
BATCH_FAULTS = {"fail_after": 0.05, "drop_after": 0.05, "503": 0.03}
ORDERS = 200 + 12 * KILLS  # more than the loop packs: work never runs out


async def _ended(proc: asyncio.subprocess.Process, event: asyncio.Event, within: float) -> bool:
    """Wait for ``event`` (True) or the process's end or ``within`` seconds (False)."""
    waiter = asyncio.ensure_future(event.wait())
    dead = asyncio.ensure_future(proc.wait())
    try:
        done, _ = await asyncio.wait({waiter, dead}, timeout=within, return_when="FIRST_COMPLETED")
    finally:
        waiter.cancel()
        dead.cancel()
    return waiter in done


async def _subscribed(broker: MosquittoBroker, within: float = 30.0) -> None:
    """Until the daemon's MQTT devices hold their persistent sessions."""
    deadline = time.monotonic() + within
    while not all(f"packship-{d}" in broker.logs() for d in (SCANNER, READER)):
        assert time.monotonic() < deadline, broker.logs()
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.timeout(120 + 15 * KILLS)
async def test_e2e_pack_ship_kills(
    tmp_path: Path, mosquitto_broker: MosquittoBroker, processes: ProcessReaper
) -> None:
    started = time.monotonic()
    rng = random.Random(20261204)
    orders = make_orders(ORDERS, rng)
    live = Live()
    cloud = CloudSimulator(
        SECRET, db_path=tmp_path / "cloud.db", batch_faults=Faults(BATCH_FAULTS, seed=5)
    )
    printer = PrinterSimulator(on_printed=lambda _n, _label: live.label_printed())
    settings = mosquitto_broker.settings("packship-sim")
    async with (
        cloud,
        printer,
        MqttScannerSim(settings, scanner_id=SCANNER, topic=SCANNER_TOPIC) as scanner,
        ImpinjReaderSim(settings, reader_id=READER, topic=READER_TOPIC, tags=1, rate=0) as reader,
    ):
        port = free_port(rng)
        box = PackBox(
            write_config(
                tmp_path,
                cloud_url=cloud.url,
                api_port=port,
                broker=mosquitto_broker,
                printer_url=printer.url,
            ),
            tmp_path / "box.db",
            port,
            tmp_path / "daemon.log",
            crash_points=CRASH_POINTS,
            reaper=processes,
        )
        with Store.open(box.db, box_id=BOX) as store:
            seed_orders(store, orders)
        packer = Packer(
            box,
            scanner,
            reader,
            printer,
            orders,
            live,
            backup_path=tmp_path / "backup.db",
            backup_after_kills=KILLS // 3,
        )

        # First start, unarmed: the devices' sessions exist before anything is scanned.
        proc = await box.start(armed=False)
        assert await box.up(proc)
        await _subscribed(mosquitto_broker)
        await box.kill(proc)

        work = asyncio.create_task(packer.run())
        kills_in: collections.Counter[str] = collections.Counter()
        plans: collections.Counter[str] = collections.Counter()
        restore: dict[str, int] = {}
        armed_points = [p.split(":")[0] for p in CRASH_POINTS.split(",")]
        loop_started = time.monotonic()

        def still_short() -> bool:
            fired = box.crash_points_fired()
            return (
                any(fired[p] == 0 for p in armed_points)
                or not restore
                # during printing: the packer waiting for its labels, or a
                # kill fired from inside the printer as a label came out
                or kills_in["printing"] + plans["at_label_fired"] == 0
                or kills_in["portal"] == 0
            )

        def killed() -> int:
            return box.test_kills + box.self_kills

        while killed() < KILLS or (box.starts < 3 * KILLS and still_short()):
            if (
                not restore
                and killed() >= 2 * KILLS // 3
                and packer.backup_at is not None
                and len(packer.shipped) - packer.backup_at >= 2
            ):
                restore = await _restore(box, cloud, packer, live)
                continue
            proc = await box.start(armed=True)
            at_label_kills = 0
            if await box.up(proc):
                live.answered()
                r, budget = rng.random(), rng.uniform(0.3, 2.0)
                if r < 0.15:
                    # as the printer takes the job: before its status answer
                    plans["at_label"] += 1
                    acted = live.label_acts
                    live.at_next_label = proc.kill
                    await _ended(proc, live.printed, budget)
                    live.at_next_label = None
                    if live.label_acts > acted:  # it fired: the test's kill
                        at_label_kills += 1
                        await proc.wait()
                elif r < 0.3:
                    plans["after_label"] += 1  # around the commit of "printed"
                    if await _ended(proc, live.printed, budget):
                        await asyncio.sleep(rng.uniform(0, 0.03))
                elif r < 0.45:
                    plans["portal"] += 1  # while the portal reads cartons
                    if await _ended(proc, live.portal, budget):
                        await asyncio.sleep(rng.uniform(0, 0.1))
                else:
                    plans["random"] += 1
                    await _ended(proc, asyncio.Event(), budget)
            live.up_since = None
            await box.kill(proc)
            if at_label_kills:  # box.kill found it dead: count it as the test's
                box.self_kills -= at_label_kills
                box.test_kills += at_label_kills
                plans["at_label_fired"] += at_label_kills
                at_label_kills = 0
            kills_in[packer.phase] += 1
            if work.done():
                work.result()  # the packer's failure fails the test here
                raise AssertionError("the packer stopped during the loop")
        loop_s = time.monotonic() - loop_started

        # The end: no crash points; the packer finishes its order; the outbox drains.
        live.finish.set()
        proc = await box.start(armed=False)
        assert await box.up(proc)
        live.answered()
        await asyncio.wait_for(work, 90)
        await asyncio.sleep(0.5)  # the portal's last reads
        await drained(box, cloud)
        proc.terminate()
        assert await proc.wait() == 0, box.tail()
        box.check_integrity()

        # ---------------------------------------------------------------- checks
        shipped = {s.order.ref: s for s in packer.shipped}
        assert len(shipped) == len(packer.shipped)

        # The printer: one SSCC per carton, one carton per SSCC.
        cartons_of: dict[str, set[tuple[str, int]]] = collections.defaultdict(set)
        ssccs_of: dict[tuple[str, int], set[str]] = collections.defaultdict(set)
        for label in printer.printed:
            order, n, _m, sscc = label_of(label)
            cartons_of[sscc].add((order, n))
            ssccs_of[order, n].add(sscc)
        assert all(len(c) == 1 for c in cartons_of.values()), "an SSCC on two cartons"
        assert all(len(s) == 1 for s in ssccs_of.values()), "a carton under two SSCCs"
        assert {o for o, _ in ssccs_of} == set(shipped), "labels of an order never shipped"
        printed = set(cartons_of)
        assert printed == {x for s in packer.shipped for x in s.ssccs}

        # The cloud: one shipment_confirmed per shipped order, with its labels' SSCCs.
        confirmed = cloud_events(cloud, {"shipment_confirmed"})
        by_order = collections.Counter(o for e in confirmed for o in e["data"]["orders"])
        assert by_order == collections.Counter(set(shipped)), "a shipment confirmed twice or lost"
        units: collections.Counter[str] = collections.Counter()
        for e in confirmed:
            (order,) = e["data"]["orders"]
            assert [c["sscc"] for c in e["data"]["cartons"]] == shipped[order].ssccs, e
            lines: collections.Counter[str] = collections.Counter()
            for c in e["data"]["cartons"]:
                lines.update({x["sku"]: x["qty"] for x in c["lines"]})
            assert lines == shipped[order].order.lines, e
            units.update(lines)
        # A redelivered scan packs nothing: every unit packed is a unit the
        # packer scanned (a scan sent again may be refused: all packed).
        assert sum(units.values()) <= packer.scans["unit"]
        if not packer.resent["unit"]:
            assert sum(units.values()) == packer.scans["unit"]
        at_cloud = [c["sscc"] for e in confirmed for c in e["data"]["cartons"]]
        assert len(at_cloud) == len(set(at_cloud)) == len(printed), "an SSCC confirmed twice"

        # Departures: once per carton through the portal, none for the others.
        departed = collections.Counter(
            e["data"]["sscc"] for e in cloud_events(cloud, {"carton_departed"})
        )
        through = [x for s in packer.shipped if s.order.leaves for x in s.ssccs]
        assert departed == collections.Counter(through), "a departure lost or doubled"

        # The restore: nothing handed out after it was handed out before it.
        after = [x for s in packer.shipped if s.era == 1 for x in s.ssccs]
        assert after, "nothing was packed after the restore"
        assert min(map(serial_body, after)) > restore["max_before"], (after, restore)
        assert not set(after) & ssccs_in(tmp_path / "backup.db")
        assert ssccs_in(box.db) <= printed  # nothing the box holds was never printed

        # The cloud holds each epoch once and in order, as the box wrote it.
        conn = read_ro(box.db)
        try:
            epochs = outbox_epochs(conn)
        finally:
            conn.close()
        assert len(epochs) == 2, "the restore started one new epoch"
        for ep in epochs:
            held = cloud.receiver.events(BOX, ep.epoch)
            assert [x["seq"] for x in held[: ep.last]] == list(range(1, ep.last + 1))
            kept = {r["seq"] for r in ep.rows}
            assert ep.rows == [x for x in held[: ep.last] if x["seq"] in kept]
        assert len(cloud.receiver.events(BOX, epochs[-1].epoch)) == epochs[-1].last

        fired = box.crash_points_fired()
        print(
            f"\ne2e pack/ship kill loop: {box.test_kills} SIGKILLs by the test "
            f"(aimed {dict(plans)}) + {box.self_kills} by crash points {dict(fired)}; "
            f"kills found the packer {dict(kills_in)}; {box.starts} starts, "
            f"{box.integrity_checks} integrity checks ({box.hot_wals} on a hot WAL); "
            f"{len(shipped)} orders shipped in {len(printed)} cartons "
            f"({len(after)} after the restore), {len(printer.printed)} labels printed "
            f"({len(printer.printed) - len(printed)} again), "
            f"{packer.reprints} REPRINTs; scans {dict(packer.scans)}, "
            f"re-sent {dict(packer.resent)}; {sum(departed.values())} departures in "
            f"{packer.portal_passes} portal passes; restore: {restore}, backup "
            f"{packer.backup_took_s:.2f} s; cloud faults {dict(cloud.batch_faults.drawn)}; "
            f"loop {loop_s:.0f} s, total {time.monotonic() - started:.0f} s"
        )
        assert killed() >= KILLS
        # (a crash point that fires as the test kills is counted as the test's)
        assert sum(fired.values()) >= box.self_kills
        # a job the point stopped is printed only by a REPRINT
        assert packer.reprints >= fired["after_close_before_print"] >= 1
        assert not still_short(), (fired, dict(kills_in), restore)
        assert len(shipped) >= KILLS // 2, "the packer got real work done"


async def _restore(
    box: PackBox, cloud: CloudSimulator, packer: Packer, live: Live
) -> dict[str, int]:
    """At an order's end: drain, kill, copy the backup over the database."""
    live.pause.set()
    proc = await box.start(armed=False)
    assert await box.up(proc)
    live.answered()
    await asyncio.wait_for(live.paused.wait(), 60)
    live.paused.clear()
    await asyncio.sleep(0.5)  # the portal's last reads
    await drained(box, cloud)
    live.up_since = None
    await box.kill(proc)
    before = ssccs_in(box.db) | {x for s in packer.shipped for x in s.ssccs}
    in_backup = ssccs_in(packer.backup_path)
    assert in_backup < before, "orders were shipped between the backup and the restore"
    shutil.copyfile(packer.backup_path, box.db)
    for suffix in ("-wal", "-shm"):
        box.db.with_name(box.db.name + suffix).unlink(missing_ok=True)
    packer.era += 1
    live.resume.set()
    return {
        "max_before": max(map(serial_body, before)),
        "handed_out_before": len(before),
        "in_backup": len(in_backup),
    }
