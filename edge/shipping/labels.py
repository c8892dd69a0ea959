"""Carton labels: print jobs made in the transaction that packs an order, sent
to the station's printer after it, re-printable when they fail.

A job is a row of ``print_jobs`` (the ZPL of every carton of one order, ``n of
m``, in one job) made in the same transaction as the carton closes that
finished the order, so a crash between the commit and the printer loses no
label: the job is still ``queued`` and the station can print it again. After
the commit :func:`send` asks the printer for its state and sends the job;
:func:`printed` or :func:`failed` record the outcome in a transaction of its
own. Labels carry no customer data beyond the ship-to postcode and region;
:func:`redact_order` blanks those in the stored jobs of an order the cloud
asks to erase (sync-v1 ``erase``).

"Printed" is as far as a raw-9100 printer can say: it accepted the bytes and
reported no fault in its host status (``~HS``) before and after. A label
jammed inside a printer that says nothing is a packer's call (``REPRINT``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from devices.printer.zpl import MAX_TEXT, CartonLabel, redact_ship_to, render_batch
from edge.store.db import Transaction


class PrinterPort(Protocol):
    """The box's label printers, by device id."""

    async def send(self, printer: str, job: bytes) -> None:
        """Send ``job``; raises :class:`PrintError` (with the packer-facing
        reason) when the printer is absent, faulted or does not answer."""
        ...


class PrintError(Exception):
    """A label job that did not print; ``str()`` is the reason for the packer."""


@dataclass(frozen=True, slots=True)
class Job:
    job: int
    printer: str
    zpl: bytes
    #: the orders whose labels it holds (several: a cart's, in one job)
    orders: tuple[str, ...]


def _labels(tx: Transaction, order: str, sender: str) -> list[CartonLabel]:
    task = tx.execute(
        "SELECT ship_postcode, ship_region FROM tasks WHERE kind = 'pick' "
        "AND COALESCE(order_ref, task) = ? ORDER BY received_ms LIMIT 1",
        (order,),
    ).fetchone()
    postcode, region = (task[0], task[1]) if task else (None, None)
    cartons = tx.execute(
        "SELECT carton, sscc FROM cartons WHERE order_ref = ? AND sscc IS NOT NULL ORDER BY carton",
        (order,),
    ).fetchall()
    return [
        CartonLabel(
            sscc=str(sscc),
            ship_postcode=label_postcode(postcode),
            ship_region=label_text(region),
            order_ref=label_text(order) or "-",
            carton_no=n,
            carton_count=len(cartons),
            sender=label_text(sender),
        )
        for n, (_, sscc) in enumerate(cartons, start=1)
    ]


def label_postcode(raw: str | None) -> str:
    """A postcode as a label can print it (letters, digits, space and ``-``, up
    to 12, starting with a letter or digit): what the cloud sent, cleaned;
    ``UNKNOWN`` when nothing printable is left. A task's data never stops a
    station from closing its cartons."""
    kept = re.sub(r"[^0-9A-Za-z -]+", "", raw or "").strip(" -")[:12].strip()
    return kept if kept else "UNKNOWN"


def label_text(raw: str | None) -> str:
    """A text field as a label can print it: no control or format characters,
    at most :data:`MAX_TEXT` characters (longer ones end in ``…``)."""
    text = "".join(c for c in (raw or "") if not unicodedata.category(c).startswith("C"))
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def make_job(tx: Transaction, orders: Sequence[str], printer: str, *, sender: str, now: int) -> Job:
    """A print job with the labels of every closed carton of ``orders``, in order."""
    labels = [label for order in orders for label in _labels(tx, order, sender)]
    zpl = render_batch(labels)
    ssccs = ",".join(label.sscc for label in labels)
    # an earlier job of these labels that never reached the printer (a crash
    # before it was sent) is superseded: the new one prints them
    tx.execute(
        "UPDATE print_jobs SET state = 'failed', error = 'superseded by a reprint', "
        "done_ms = ? WHERE state = 'queued' AND cartons = ?",
        (now, ssccs),
    )
    (job,) = tx.execute(
        "INSERT INTO print_jobs (printer, zpl, cartons, made_ms) VALUES (?, ?, ?, ?) RETURNING job",
        (printer, zpl, ssccs, now),
    ).fetchone()
    return Job(int(job), printer, zpl, tuple(orders))


def printed(tx: Transaction, job: Job, *, now: int) -> None:
    tx.execute(
        "UPDATE print_jobs SET state = 'printed', error = NULL, done_ms = ? WHERE job = ?",
        (now, job.job),
    )
    for order in job.orders:
        tx.execute(
            "UPDATE cartons SET printed_ms = COALESCE(printed_ms, ?) "
            "WHERE order_ref = ? AND sscc IS NOT NULL",
            (now, order),
        )


def failed(tx: Transaction, job: Job, reason: str, *, now: int) -> None:
    tx.execute(
        "UPDATE print_jobs SET state = 'failed', error = ?, done_ms = ? WHERE job = ?",
        (reason[:200], now, job.job),
    )


async def send(port: PrinterPort, job: Job) -> str | None:
    """Send ``job``; None when it printed, else the reason it did not."""
    try:
        await port.send(job.printer, job.zpl)
    except PrintError as exc:
        return str(exc) or "the printer did not take the job"
    return None


def redact_order(tx: Transaction, order: str) -> int:
    """Blank the ship-to texts of ``order``'s labels in every stored print job
    (the other labels of a cart's job are left as they are); returns how many
    jobs changed. A reprint renders from the tasks, whose ship-to the erasure
    blanks too."""
    ssccs = [
        str(r[0])
        for r in tx.execute(
            "SELECT sscc FROM cartons WHERE order_ref = ? AND sscc IS NOT NULL", (order,)
        ).fetchall()
    ]
    changed = 0
    for sscc in ssccs:
        rows = tx.execute(
            "SELECT job, zpl FROM print_jobs WHERE instr(',' || cartons || ',', ?) > 0",
            (f",{sscc},",),
        ).fetchall()
        for job, zpl in rows:
            redacted = redact_ship_to(bytes(zpl), ssccs)
            if redacted != bytes(zpl):
                tx.execute("UPDATE print_jobs SET zpl = ? WHERE job = ?", (redacted, job))
                changed += 1
    return changed
