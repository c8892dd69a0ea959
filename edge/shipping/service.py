"""The pack station workflow as a service: scans from PDAs and fixed scanners,
one transaction each, labels printed after the commit.

Promises:

- **One transaction per scan** — the station, the cartons, the SSCC handed out,
  the print job and ``shipment_confirmed`` commit together
  (:mod:`edge.shipping.packing`), through the same group commit as picking
  scans. A refused scan changes nothing but its stored answer.
- **Once.** A PDA's ``scan_id`` keys its stored answer (the ``scans`` table, as
  for picking): a retry gets the same answer and changes nothing. A fixed
  device's message carries a key (:mod:`edge.shipping.inbox`); it is recorded
  in ``device_inbox`` in the scan's transaction, so a message redelivered
  after a crash between the commit and its acknowledgement confirms nothing
  twice.
- **Nothing shipped that did not print** when the site requires labels: the
  shipment is confirmed in the transaction that records the job printed.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.faults import crash_point
from devices.errors import LabelError
from edge.picking.codes import ScannedCode, interpret
from edge.picking.queries import Reads
from edge.shipping import labels, pack_apply, pack_load, packing, sscc
from edge.shipping.errors import UnknownStationError
from edge.shipping.pack_apply import Allocate
from edge.shipping.packing import PackDecision, PackResult
from edge.store.db import Store, Transaction, now_ms
from edge.store.group_commit import GroupCommitter

log = logging.getLogger(__name__)

#: listener(packer, message): station views pushed to the packer's PDA
Listener = Callable[[str, dict[str, Any]], None]


@dataclass(slots=True)
class PackOutcome:
    body: bytes
    replayed: bool = False
    events: int = 0
    job: labels.Job | None = None
    packer: str | None = None

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass(frozen=True, slots=True)
class Station:
    id: str
    printer: str | None = None


@dataclass
class PackingService:
    """Pack stations of one box. ``stations``: station id → its printer device
    (or None); ``allocate`` hands out SSCCs; ``door_of`` maps a carrier to its
    dock door, ``default_door`` the rest."""

    store: Store
    allocate: Allocate
    printers: labels.PrinterPort | None
    stations: Mapping[str, Station]
    box_id: str
    label_required: bool = True
    #: a cart's orders print their labels together, in one job
    cart_labels: bool = True
    door_of: Mapping[str, str] = field(default_factory=dict)
    default_door: str | None = None
    on_commit: Callable[[], None] | None = None
    #: the last state a printer reported (``ready``, ``paper out``, …), by device
    printer_state: Callable[[str], str | None] = lambda printer: None
    _listeners: list[Listener] = field(default_factory=list)
    _commits: GroupCommitter | None = None

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # ------------------------------------------------------------------ scans

    async def scan(
        self,
        station: str,
        code: str,
        *,
        packer: str,
        scan_id: str | None = None,
        message: tuple[str, str] | None = None,
    ) -> PackOutcome:
        """Apply one scan at ``station``: ``scan_id`` for a PDA (its stored answer
        on a retry), ``message`` = (device, key) for a fixed device's message."""
        if station not in self.stations:
            raise UnknownStationError(f"no pack station {station!r} on this box")
        scanned = interpret(code)
        st = self.stations[station]

        def fn(tx: Transaction) -> PackOutcome:
            if scan_id is not None:
                row = tx.execute(
                    "SELECT picker, answer FROM scans WHERE scan_id = ?", (scan_id,)
                ).fetchone()
                if row is not None:
                    return PackOutcome(zlib.decompress(row[1]), replayed=True)
            if message is not None:
                seen = tx.execute(
                    "INSERT INTO device_inbox (device, key, at_ms) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (message[0], message[1], tx.store.uptime_ms()),
                )
                if seen.rowcount == 0:
                    return PackOutcome(b"{}", replayed=True)
            return self._scan_tx(tx, st, scanned, packer, scan_id)

        if self._commits is None:
            self._commits = GroupCommitter(self.store)
        try:
            outcome = await self._commits.submit(fn)
        except LabelError as exc:
            # labels.py cleans what the cloud sent; should a label still not
            # render, the close rolls back and is answered (never a stuck
            # scanner redelivering the same message, never a 500)
            log.error("pack station %s: the labels cannot be made: %s", station, exc)
            return PackOutcome(
                _answer(
                    PackDecision(PackResult.LABEL_INVALID, f"the labels cannot be made: {exc}"),
                    self.view(station),
                )
            )
        except sscc.SsccError as exc:
            # the close rolled back whole (its savepoint): answered, not stored
            result = (
                PackResult.SSCC_EXHAUSTED
                if isinstance(exc, sscc.SsccExhaustedError)
                else PackResult.SSCC_UNAVAILABLE
            )
            log.warning("pack station %s cannot close a carton: %s", station, exc)
            return PackOutcome(_answer(PackDecision(result, str(exc)), self.view(station)))
        self._after_commit(outcome)
        if outcome.job is not None:
            crash_point("after_close_before_print")  # tests only: inert unless armed
            outcome = await self._print(st, outcome, scan_id)
        return outcome

    def _scan_tx(
        self,
        tx: Transaction,
        st: Station,
        scanned: ScannedCode,
        packer: str,
        scan_id: str | None,
    ) -> PackOutcome:
        now = now_ms()
        state = pack_load.load(
            tx,
            st.id,
            scanned,
            has_printer=st.printer is not None and self.printers is not None,
            label_required=self.label_required,
            cart_labels=self.cart_labels,
        )
        decision = packing.decide(state, scanned)
        pack_apply.apply(
            tx,
            state,
            decision,
            allocate=self.allocate,
            packer=packer,
            door_of=self.door_of,
            default_door=self.default_door,
            now=now,
        )
        job = None
        if decision.print_labels and st.printer is not None and decision.order is not None:
            job = labels.make_job(
                tx, (decision.order, *decision.cart), st.printer, sender=self.box_id, now=now
            )
        shipped = [order_view(tx, decision.order)] if decision.ship and decision.order else None
        body = _answer(decision, self._view(tx, st), shipped=shipped)
        if scan_id is not None:
            tx.execute(
                "INSERT INTO scans (scan_id, picker, tour, code, result, answer, at_ms) "
                "VALUES (?, ?, NULL, ?, ?, ?, ?)",
                (scan_id, packer, scanned.raw, decision.result.value, zlib.compress(body, 1), now),
            )
        return PackOutcome(body, events=len(tx.events), job=job, packer=packer)

    async def _print(self, st: Station, outcome: PackOutcome, scan_id: str | None) -> PackOutcome:
        """Send the job made by the scan; record how it went (and ship the
        order once its labels printed, when labels are required)."""
        job = outcome.job
        assert job is not None and self.printers is not None
        reason = await labels.send(self.printers, job)

        def fn(tx: Transaction) -> PackOutcome:
            now = now_ms()
            names = ", ".join(job.orders)
            shipped = None
            if reason is None:
                labels.printed(tx, job, now=now)
                for order in job.orders:
                    if tx.execute(
                        "SELECT 1 FROM shipments WHERE order_ref = ?", (order,)
                    ).fetchone():
                        continue  # a reprint of labels already shipped
                    door = self._door(tx, order)
                    pack_apply.ship(tx, order, by=outcome.packer or st.id, door=door, now=now)
                decision = PackDecision(
                    PackResult.SHIPPED, f"order {names}: labels printed, shipment confirmed"
                )
                shipped = [order_view(tx, order) for order in job.orders]
            else:
                labels.failed(tx, job, reason, now=now)
                log.warning("labels of order %s not printed on %s: %s", names, st.printer, reason)
                decision = PackDecision(
                    PackResult.ORDER_PACKED,
                    f"labels of order {names} not printed: {reason}; fix the printer, "
                    "then scan REPRINT",
                )
            body = _answer(decision, self._view(tx, st), printed=reason is None, shipped=shipped)
            if scan_id is not None:
                tx.execute(
                    "UPDATE scans SET answer = ? WHERE scan_id = ?",
                    (zlib.compress(body, 1), scan_id),
                )
            return PackOutcome(body, events=len(tx.events), packer=outcome.packer)

        final = await self.store.write(fn)
        self._after_commit(final)
        return final

    def _view(self, db: Reads, st: Station) -> dict[str, Any]:
        return station_view(db, st.id, printer=st.printer, state=self.printer_state)

    def _door(self, tx: Transaction, order: str) -> str | None:
        row = tx.execute(
            "SELECT carrier FROM tasks WHERE kind = 'pick' AND COALESCE(order_ref, task) = ? "
            "LIMIT 1",
            (order,),
        ).fetchone()
        return self.door_of.get((row[0] if row else None) or "", self.default_door)

    def _after_commit(self, outcome: PackOutcome) -> None:
        if outcome.events and self.on_commit is not None:
            try:
                self.on_commit()
            except Exception:  # the uploader's trouble must never fail a packed unit
                log.exception("on_commit hook failed")
        if outcome.packer and not outcome.replayed and self._listeners:
            message = {"type": "station", **outcome.json()}
            for listener in self._listeners:
                try:
                    listener(outcome.packer, message)
                except Exception:
                    log.exception("push listener failed")

    # ------------------------------------------------------------------ reads

    def view(self, station: str) -> dict[str, Any]:
        if station not in self.stations:
            raise UnknownStationError(f"no pack station {station!r} on this box")
        return self._view(self.store.reader().conn, self.stations[station])


#: how long a device message's key is kept (box uptime): far longer than a
#: broker takes to redeliver, far shorter than 65,535 scans of one device
MESSAGE_KEY_TTL_MS = 3_600_000


def forget_message_keys(tx: Transaction, up: int, *, ttl_ms: int = MESSAGE_KEY_TTL_MS) -> int:
    """Drop device message keys recorded more than ``ttl_ms`` of uptime before ``up``."""
    cur = tx.execute("DELETE FROM device_inbox WHERE at_ms <= ?", (up - ttl_ms,))
    return int(cur.rowcount)


def _answer(
    decision: PackDecision,
    view: dict[str, Any],
    *,
    printed: bool | None = None,
    shipped: list[dict[str, Any]] | None = None,
) -> bytes:
    doc: dict[str, Any] = {
        "result": decision.result.value,
        "feedback": decision.feedback.value,
        "message": decision.message,
        "station": view,
    }
    if printed is not None:
        doc["printed"] = printed
    if shipped:
        # the station is free again: the orders it just shipped, with their
        # cartons' SSCCs (what the packer checks the labels against)
        doc["shipped"] = shipped
    return json.dumps(doc, separators=(",", ":")).encode()


def order_view(db: Reads, order_ref: str) -> dict[str, Any]:
    """An order as the station page shows it: lines and cartons."""
    order = pack_load.load_order(db, order_ref)
    return {
        "order": order.order,
        "units_left": order.units_left,
        "lines": [
            {"sku": sku, "picked": n, "packed": order.packed.get(sku, 0), "left": order.left(sku)}
            for sku, n in sorted(order.picked.items())
        ],
        "cartons": [
            {
                "n": c.n,
                "state": c.state,
                "sscc": c.sscc,
                "printed": c.printed,
                "lines": [{"sku": s, "qty": q} for s, q in sorted(c.lines.items())],
            }
            for c in order.cartons
        ],
    }


def station_view(
    db: Reads,
    station: str,
    *,
    printer: str | None,
    state: Callable[[str], str | None] = lambda printer: None,
) -> dict[str, Any]:
    """The station as its page shows it: the order, what is left, the cartons,
    and the printer's state as it last reported it (``~HS``)."""
    row = db.execute(
        "SELECT order_ref, packer FROM pack_stations WHERE station = ?", (station,)
    ).fetchone()
    view: dict[str, Any] = {
        "station": station,
        "printer": printer,
        "printer_state": state(printer) if printer else None,
        "order": None,
    }
    if row is None or row[0] is None:
        return view
    view["packer"] = row[1]
    view["order"] = order_view(db, str(row[0]))
    return view
