"""How an OMS applies a box's events inside the receiver's transaction.

An OMS implements :class:`OmsHook`. The receiver calls :meth:`OmsHook.apply`
with the events of a batch that are new — each ``(box, epoch, seq)`` exactly
once, in seq order — in the *same* transaction that records them as applied and
moves the box's high-water mark. If ``apply`` raises, nothing of the batch
commits and the box is answered 5xx and resends; if it returns, its writes
commit with the mark. So exactly-once holds for the OMS's own tables too, with
no dedup of its own. Events of a type this code does not know arrive as
:class:`~cloud_sync.events.UnknownEvent` (sync-v1: stored and acked).

A hook writes only through the :class:`~cloud_sync.receiver.storage.Tx` it is
given, keys its tables by box (to partition with the receiver's), and never
calls out over the network inside ``apply`` (it holds the box's row lock).

:class:`ReferenceOms` is the reference implementation: the picture an OMS
operator wants of the fleet —

- net stock per (box, sku, location): the sum of ``stock_delta.qty``, which is
  also what the ``stock`` changes of the feed are computed from;
- tasks: ``open`` when enqueued to a box, ``picking`` at the first confirmed
  pick, then ``picked`` (with its lines as picked) or ``cancelled`` (with the
  stage; it keeps the lines it was given);
- shipments with their cartons and SSCCs, and each carton's departure (door,
  reader) when a portal saw it leave;
- alerts by (kind, subject), raised or cleared, with severity and detail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from cloud_sync.events import (
    Alert,
    AnyEvent,
    Carton,
    CartonDeparted,
    PickConfirmed,
    ShipmentConfirmed,
    StockDelta,
    TaskCancelled,
    TaskPicked,
)
from cloud_sync.receiver.schema import Migrations
from cloud_sync.receiver.storage import Dialect, Tx


@dataclass(frozen=True, slots=True)
class Applied:
    """One event being applied: its seq in the batch's epoch, the box's
    (informational) clock at confirmation, and the typed event."""

    seq: int
    at_ms: int
    event: AnyEvent


class OmsHook(Protocol):
    @property
    def name(self) -> str:
        """The component its migrations are recorded under."""

    @property
    def migrations(self) -> Migrations:
        """Its own tables, per version and dialect."""

    def apply(self, tx: Tx, box: str, epoch: str, events: Sequence[Applied]) -> None:
        """Apply new events of ``(box, epoch)``, in seq order, in ``tx``."""

    def enqueued(self, tx: Tx, box: str, changes: Sequence[Mapping[str, Any]]) -> None:
        """Changes were enqueued to ``box``'s feed in ``tx`` (a task given, …)."""

    def net_stock(self, tx: Tx, box: str, sku: str, location: str) -> int:
        """The sum of ``box``'s applied stock deltas of (sku, location): what a
        ``stock`` change adds to its ``base``."""


# --------------------------------------------------------------------------- reference


def _tables(dialect: Dialect) -> list[str]:
    return [
        """CREATE TABLE oms_stock (
            box TEXT NOT NULL, sku TEXT NOT NULL, location TEXT NOT NULL,
            qty BIGINT NOT NULL,
            PRIMARY KEY (box, sku, location))""",
        """CREATE TABLE oms_tasks (
            box TEXT NOT NULL, task TEXT NOT NULL,
            order_id TEXT, kind TEXT NOT NULL DEFAULT 'pick',
            state TEXT NOT NULL, picker TEXT, stage TEXT,
            lines TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (box, task))""",
        "CREATE INDEX oms_tasks_state ON oms_tasks (box, state)",
        """CREATE TABLE oms_shipments (
            box TEXT NOT NULL, shipment TEXT NOT NULL,
            orders TEXT NOT NULL, confirmed_by TEXT NOT NULL,
            epoch TEXT NOT NULL, seq BIGINT NOT NULL,
            PRIMARY KEY (box, shipment))""",
        """CREATE TABLE oms_cartons (
            box TEXT NOT NULL, sscc TEXT NOT NULL,
            shipment TEXT, lines TEXT NOT NULL DEFAULT '[]',
            door TEXT, reader TEXT, departed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (box, sscc))""",
        """CREATE TABLE oms_alerts (
            box TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
            severity TEXT NOT NULL, state TEXT NOT NULL, detail TEXT NOT NULL,
            raised INTEGER NOT NULL DEFAULT 0, cleared INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (box, kind, subject))""",
    ]


_TASK_DONE = (
    "INSERT INTO oms_tasks (box, task, order_id, state, picker, stage, lines)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (box, task) DO UPDATE SET"
    " state = excluded.state, picker = COALESCE(excluded.picker, oms_tasks.picker),"
    " stage = excluded.stage, lines = excluded.lines"
)
_TASK_DONE_KEEP_LINES = _TASK_DONE.replace("lines = excluded.lines", "lines = oms_tasks.lines")
_PICKING = (
    "INSERT INTO oms_tasks (box, task, order_id, state, picker) VALUES (?, ?, ?, 'picking', ?)"
    " ON CONFLICT (box, task) DO UPDATE SET state = 'picking',"
    " picker = excluded.picker WHERE oms_tasks.state = 'open'"
)
_SHIPMENT = (
    "INSERT INTO oms_shipments (box, shipment, orders, confirmed_by, epoch, seq)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (box, shipment) DO NOTHING"
)
_CARTON = (
    "INSERT INTO oms_cartons (box, sscc, shipment, lines) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (box, sscc) DO UPDATE SET shipment = excluded.shipment,"
    " lines = excluded.lines"
)
_DEPARTED = (
    "INSERT INTO oms_cartons (box, sscc, shipment, door, reader, departed)"
    " VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (box, sscc) DO UPDATE SET"
    " door = excluded.door, reader = excluded.reader, departed = 1"
)
_ALERT = (
    "INSERT INTO oms_alerts (box, kind, subject, severity, state, detail, raised, cleared)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (box, kind, subject) DO UPDATE SET"
    " severity = excluded.severity, state = excluded.state,"
    " detail = excluded.detail, raised = oms_alerts.raised + excluded.raised,"
    " cleared = oms_alerts.cleared + excluded.cleared"
)


def _carton_lines(carton: Carton) -> str:
    return _json([{"sku": x.sku, "qty": x.qty} for x in carton.lines])


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


class ReferenceOms:
    """Net stock, tasks, shipments with cartons, departures and alerts."""

    name = "oms-reference"
    migrations: ClassVar[Migrations] = {
        1: {"sqlite": _tables("sqlite"), "postgresql": _tables("postgresql")}
    }

    def apply(self, tx: Tx, box: str, epoch: str, events: Sequence[Applied]) -> None:
        # Rows are gathered per statement and written with one executemany
        # each (pipelined on PostgreSQL: one round trip a statement, not an
        # event). Each statement's result does not depend on the order of the
        # others (the upserts below commute across tables and kinds), and
        # within one statement the rows keep the events' seq order.
        moves: dict[tuple[str, str], int] = {}
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for applied in events:
            ev = applied.event
            if isinstance(ev, StockDelta):
                key = (ev.sku, ev.location)
                moves[key] = moves.get(key, 0) + ev.qty
            elif isinstance(ev, PickConfirmed):
                rows.setdefault(_PICKING, []).append((box, ev.task, ev.order, ev.picker))
            elif isinstance(ev, TaskPicked):
                lines = [
                    {"line": ln.line, "sku": ln.sku, "picked": ln.picked, "short": ln.short}
                    for ln in ev.lines
                ]
                rows.setdefault(_TASK_DONE, []).append(
                    (box, ev.task, ev.order, "picked", ev.picker, None, _json(lines))
                )
            elif isinstance(ev, TaskCancelled):
                # the task keeps the lines it was given
                rows.setdefault(_TASK_DONE_KEEP_LINES, []).append(
                    (box, ev.task, ev.order, "cancelled", None, str(ev.at_stage), "[]")
                )
            elif isinstance(ev, ShipmentConfirmed):
                rows.setdefault(_SHIPMENT, []).append(
                    (box, ev.shipment, _json(list(ev.orders)), ev.by, epoch, applied.seq)
                )
                rows.setdefault(_CARTON, []).extend(
                    (box, c.sscc, ev.shipment, _carton_lines(c)) for c in ev.cartons
                )
            elif isinstance(ev, CartonDeparted):
                # a portal may read a carton whose shipment is not here yet
                rows.setdefault(_DEPARTED, []).append(
                    (box, ev.sscc, ev.shipment, ev.door, ev.reader)
                )
            elif isinstance(ev, Alert):
                raised = str(ev.state) == "raised"
                rows.setdefault(_ALERT, []).append(
                    (
                        box,
                        ev.kind,
                        ev.subject,
                        str(ev.severity),
                        str(ev.state),
                        _json(ev.detail),
                        int(raised),
                        int(not raised),
                    )
                )
        for sql, batch in rows.items():
            tx.executemany(sql, batch)
        if moves:
            # one row per key (summed above), so one statement can upsert them all
            tx.insert(
                "oms_stock",
                (("box", "text"), ("sku", "text"), ("location", "text"), ("qty", "bigint")),
                [(box, sku, loc, qty) for (sku, loc), qty in sorted(moves.items())],
                upsert="ON CONFLICT (box, sku, location) DO UPDATE SET"
                " qty = oms_stock.qty + excluded.qty",
            )

    def enqueued(self, tx: Tx, box: str, changes: Sequence[Mapping[str, Any]]) -> None:
        for change in changes:
            data = change.get("data") or {}
            if change.get("type") == "task" and isinstance(data.get("task"), str):
                # an update of a task not yet started keeps it open; a started one
                # is the box's to finish (sync-v1), so its state is left alone
                tx.execute(
                    "INSERT INTO oms_tasks (box, task, order_id, kind, state, lines)"
                    " VALUES (?, ?, ?, ?, 'open', ?) ON CONFLICT (box, task) DO UPDATE SET"
                    " order_id = excluded.order_id, kind = excluded.kind,"
                    " lines = excluded.lines WHERE oms_tasks.state = 'open'",
                    (
                        box,
                        data["task"],
                        data.get("order"),
                        data.get("kind") or "pick",
                        _json(data.get("lines") or []),
                    ),
                )

    def net_stock(self, tx: Tx, box: str, sku: str, location: str) -> int:
        row = tx.one(
            "SELECT qty FROM oms_stock WHERE box = ? AND sku = ? AND location = ?",
            (box, sku, location),
        )
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ the picture

    @staticmethod
    def stock(tx: Tx, box: str) -> dict[tuple[str, str], int]:
        rows = tx.all("SELECT sku, location, qty FROM oms_stock WHERE box = ?", (box,))
        return {(str(s), str(loc)): int(q) for s, loc, q in rows}

    @staticmethod
    def tasks(tx: Tx, box: str, *, state: str | None = None) -> dict[str, dict[str, Any]]:
        sql = (
            "SELECT task, order_id, kind, state, picker, stage, lines FROM oms_tasks WHERE box = ?"
        )
        if state is None:
            rows = tx.all(sql + " ORDER BY task", (box,))
        else:
            rows = tx.all(sql + " AND state = ? ORDER BY task", (box, state))
        return {
            str(t): {
                "order": o,
                "kind": k,
                "state": s,
                "picker": p,
                "stage": st,
                "lines": json.loads(ln),
            }
            for t, o, k, s, p, st, ln in rows
        }

    @staticmethod
    def shipments(tx: Tx, box: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for shipment, orders, by in tx.all(
            "SELECT shipment, orders, confirmed_by FROM oms_shipments WHERE box = ?"
            " ORDER BY shipment",
            (box,),
        ):
            out[str(shipment)] = {"orders": json.loads(orders), "by": by, "cartons": {}}
        for sscc, shipment, lines, door, departed in tx.all(
            "SELECT sscc, shipment, lines, door, departed FROM oms_cartons WHERE box = ?"
            " ORDER BY sscc",
            (box,),
        ):
            entry = out.get(str(shipment)) if shipment is not None else None
            carton = {"lines": json.loads(lines), "door": door, "departed": bool(departed)}
            if entry is not None:
                entry["cartons"][str(sscc)] = carton
            else:  # seen leaving before its shipment arrived
                out.setdefault("", {"orders": [], "by": None, "cartons": {}})["cartons"][
                    str(sscc)
                ] = carton
        return out

    @staticmethod
    def alerts(tx: Tx, box: str) -> dict[tuple[str, str], dict[str, Any]]:
        rows = tx.all(
            "SELECT kind, subject, severity, state, raised, cleared FROM oms_alerts WHERE box = ?",
            (box,),
        )
        return {
            (str(k), str(s)): {"severity": sev, "state": st, "raised": r, "cleared": c}
            for k, s, sev, st, r, c in rows
        }


__all__ = ["Applied", "OmsHook", "ReferenceOms"]
