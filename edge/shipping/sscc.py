"""The box's SSCCs: handed out from its own range, never twice.

An SSCC (GS1 Serial Shipping Container Code, AI 00) is 18 digits: the
extension digit, the site's GS1 company prefix (7–10 digits), a serial
zero-padded to ``16 - len(prefix)`` digits, and the GS1 mod-10 check digit
(:func:`biip.checksums.gs1_standard_check_digit`). The prefix comes from the
site's configuration; the extension digit and the serial range
``sscc_first..sscc_last`` are the box's own (``[shipping]``): no two boxes ever
share a range, so the range is part of the box's identity.

Promises:

- :func:`allocate` hands out the next serial of the range in the caller's
  transaction, so the SSCC and the carton that carries it commit together (the
  ``cartons.sscc`` column is UNIQUE as well); a rolled-back close gives its
  serial back, since nothing outside the box ever saw it.
- **Never reused — not after a crash, not after a restore from backup.** The
  database's ``sscc_range.next_serial`` goes back with a restored backup, so
  the high-water is kept outside the database too, on the sync mark beside it
  (:mod:`edge.store.syncmark`). The rule: *a serial leaves the box only once
  the mark says the box may have handed it out.* :func:`allocate` reserves in
  blocks of :data:`RESERVE_BLOCK`: when the next serial is beyond the mark's
  high-water, the mark is first advanced to the end of a new block (written
  and fsynced, in the allocating transaction, so before it commits and before
  any label prints); at start (:meth:`edge.store.syncmark.SyncMark.reconcile`,
  which the daemon runs before anything serves) the database's
  ``next_serial`` goes past the mark's high-water. A crash then skips what
  was left of the block, a restore everything the backup did not know of:
  skipping is fine, reuse never. Until the mark has been checked for the
  open store, and whenever it cannot be written, nothing is handed out
  (:class:`SsccUnreservedError`).
- A copy whose mark cannot vouch for its serials — no mark beside a database
  that had one, an unreadable mark, another box's — has its range **closed**
  at start (``crit`` ``sscc_range_closed``): it cannot know what it handed
  out, and a card cloned without its mark would hand out the same serials as
  the original. A new range, beyond the old one or under another extension
  digit, reopens it (:func:`configure`).
- A card cloned *with* its mark, run as a second box, is indistinguishable
  from the original: both would hand out the same serials. A clone must get
  its own box id and its own range before it runs (docs/sync.md, "SSCCs and
  the sync mark").
- A range running low raises a ``warn`` ``sscc_range_low`` once per episode;
  its last serial a ``crit`` ``sscc_range_exhausted``; after that closing a
  carton is refused (:class:`SsccExhaustedError`) and nothing changes.

Range changes (:func:`configure`): the next serial is the highest of the new
range's first serial and one past everything the box knows it may have handed
out in that serial space (the database's next serial, the mark's high-water —
unless the database was already caught up with it — and the SSCCs on its
cartons). A change is refused when that leaves nothing of the
new range to hand out again — it would reuse — and accepted otherwise:
extending a range, moving it forward, or switching to another extension digit
or prefix (the mark keeps the old space's high-water, should it come back).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Protocol

from cloud_sync.events import Severity
from common.errors import PickEdgeError
from edge.store import Transaction
from edge.store.outbox import clear_alerts, raise_alert
from edge.store.syncmark import (
    SSCC_CLOSED_ALERT,
    MarkUnavailableError,
    is_reconciled,
    mark_path,
    read_mark,
    reserve_sscc,
    sscc_space,
)

log = logging.getLogger(__name__)

#: serials reserved on the sync mark at a time: one fsync per block, and at
#: most this many skipped at a restart after a crash
RESERVE_BLOCK = 100
#: serials left that raise ``sscc_range_low`` unless the caller says otherwise
DEFAULT_LOW = 1000
LOW_ALERT = "sscc_range_low"
EXHAUSTED_ALERT = "sscc_range_exhausted"
#: every alert a new range ends
RANGE_ALERTS = (LOW_ALERT, EXHAUSTED_ALERT, SSCC_CLOSED_ALERT)

_BODY_DIGITS = 17  # extension + prefix + serial, before the check digit
_SERIAL_SPAN = 16  # prefix + serial


# ---------------------------------------------------------------------- errors


class SsccError(PickEdgeError):
    """No SSCC can be handed out, or the range cannot be configured; nothing
    was changed."""

    code = "sscc_error"
    status = 409


class SsccConfigError(SsccError, ValueError):
    """The ``[shipping]`` SSCC settings cannot make valid SSCCs."""

    code = "sscc_config_invalid"
    exit_code = 2


class SsccRangeChangeError(SsccError):
    """A new range would hand out serials the box may have handed out already."""

    code = "sscc_range_refused"
    exit_code = 2


class SsccNotConfiguredError(SsccError):
    """The box has no SSCC range (no GS1 company prefix configured)."""

    code = "sscc_not_configured"


class SsccExhaustedError(SsccError):
    """Every serial of the range was handed out (or the range was closed after
    a copy): cartons cannot be closed until a new range is configured."""

    code = "sscc_exhausted"


class SsccUnreservedError(SsccError):
    """The sync mark cannot record the serial before it is used: not checked
    since the store was opened, missing, or unwritable."""

    code = "sscc_unreserved"
    status = 503


# ---------------------------------------------------------------------- values


class RangeSettings(Protocol):
    """What :func:`configure` reads: :class:`edge.config.ShippingConfig` fits."""

    @property
    def gs1_prefix(self) -> str: ...
    @property
    def sscc_extension(self) -> int: ...
    @property
    def sscc_first(self) -> int: ...
    @property
    def sscc_last(self) -> int: ...
    @property
    def sscc_low(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SsccRange:
    """The stored range (``sscc_range``) and its next serial."""

    prefix: str
    extension: int
    first: int
    last: int
    next: int

    @property
    def space(self) -> str:
        """Its serial space, as the sync mark keys it."""
        return sscc_space(self.extension, self.prefix)

    @property
    def remaining(self) -> int:
        return self.last - self.next + 1


def check_digit(body: str) -> int:
    """The GS1 mod-10 check digit of the 17 digits before it."""
    if len(body) != _BODY_DIGITS:
        raise ValueError(f"an SSCC body has {_BODY_DIGITS} digits, not {len(body)}: {body!r}")
    # imported on first use: biip's tables cost an idle daemon ~17 MB (bench/idle.py)
    from biip.checksums import gs1_standard_check_digit

    return gs1_standard_check_digit(body)


def format_sscc(extension: int, prefix: str, serial: int) -> str:
    """The 18-digit SSCC of ``serial`` (extension, prefix, padded serial, check)."""
    width = _SERIAL_SPAN - len(prefix)
    if serial < 0 or len(str(serial)) > width:
        raise ValueError(f"serial {serial} does not fit {width} digits after prefix {prefix}")
    body = f"{extension}{prefix}{serial:0{width}d}"
    return body + str(check_digit(body))


def is_valid(sscc: str) -> bool:
    """18 digits whose last is the check digit of the others."""
    return (
        len(sscc) == _BODY_DIGITS + 1
        and sscc.isascii()
        and sscc.isdecimal()
        and check_digit(sscc[:-1]) == int(sscc[-1])
    )


def validate(settings: RangeSettings) -> list[str]:
    """What is wrong with ``settings`` as an SSCC range (empty: nothing). An
    empty prefix is valid: the box then closes no cartons."""
    problems: list[str] = []
    prefix = settings.gs1_prefix
    if not prefix:
        return problems
    if not (prefix.isascii() and prefix.isdecimal() and 7 <= len(prefix) <= 10):
        problems.append(f"shipping.gs1_prefix {prefix!r} is not a GS1 company prefix (7-10 digits)")
        return problems
    if not 0 <= settings.sscc_extension <= 9:
        problems.append(f"shipping.sscc_extension {settings.sscc_extension} is not a digit")
    first, last = settings.sscc_first, settings.sscc_last
    width = _SERIAL_SPAN - len(prefix)
    if first < 0 or first > last:
        problems.append(f"shipping.sscc_first {first} must be 0 or more and at most sscc_last")
    if len(str(last)) > width:
        problems.append(
            f"shipping.sscc_last {last} has more than {width} digits: with a "
            f"{len(prefix)}-digit company prefix an SSCC's serial has {width} "
            f"(at most {10**width - 1})"
        )
    if settings.sscc_low < 0:
        problems.append(f"shipping.sscc_low {settings.sscc_low} must be 0 or more")
    return problems


# ---------------------------------------------------------------------- the range


def current(conn: Transaction | sqlite3.Connection) -> SsccRange | None:
    """The stored range, or None (never configured)."""
    row = conn.execute(
        "SELECT prefix, extension, first_serial, last_serial, next_serial "
        "FROM sscc_range WHERE id = 1"
    ).fetchone()
    if row is None:
        return None
    return SsccRange(str(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]))


def _handed_out(tx: Transaction, space: str) -> int | None:
    """The highest serial of ``space`` the box may have handed out, from what
    it knows: the database's range, the sync mark, the cartons."""
    highs: list[int] = []
    stored = current(tx)
    live = stored is not None and stored.space == space
    if stored is not None and live and stored.next > stored.first:
        highs.append(stored.next - 1)
    # Once the store was caught up with the mark, its own next serial is the
    # truth for its space (what the mark reserves beyond it is unused); else —
    # another space, or configured before the check — the mark counts.
    mark, _ = read_mark(mark_path(tx.store.path))
    if (
        mark is not None
        and mark.box == tx.store.box_id
        and space in mark.sscc
        and not (live and is_reconciled(tx.store))
    ):
        highs.append(mark.sscc[space])
    (top,) = tx.execute(
        "SELECT max(sscc) FROM cartons WHERE length(sscc) = 18 AND substr(sscc, 1, ?) = ?",
        (len(space), space),
    ).fetchone()
    if top is not None and str(top).isdecimal():  # 18 digits: lexical order is numeric
        highs.append(int(str(top)[len(space) : _BODY_DIGITS]))
    return max(highs) if highs else None


def configure(tx: Transaction, settings: RangeSettings) -> SsccRange | None:
    """Store the configured range, or check the stored one still is it.

    Returns the range, or None when no prefix is configured (the box closes no
    cartons; a range stored before stays, as history). The next serial is the
    highest of the range's first serial and one past anything the box may have
    handed out in its serial space (see the module's docstring). Raises
    :class:`SsccConfigError` for settings that make no valid SSCC and
    :class:`SsccRangeChangeError` for a range that would hand a serial out
    again; in both cases nothing changes. A changed range with serials left
    ends the open ``sscc_range_exhausted`` and ``sscc_range_closed``, and
    ``sscc_range_low`` when more than ``sscc_low`` are left."""
    problems = validate(settings)
    if problems:
        raise SsccConfigError("; ".join(problems))
    if not settings.gs1_prefix:
        return None
    prefix, extension = settings.gs1_prefix, settings.sscc_extension
    first, last = settings.sscc_first, settings.sscc_last
    space = sscc_space(extension, prefix)
    stored = current(tx)
    high = _handed_out(tx, space)
    nxt = first if high is None else max(first, high + 1)
    if nxt > last + 1:
        raise SsccRangeChangeError(
            f"SSCC serials up to {high} of {extension}+{prefix} may have been handed out "
            f"already; the range {first}..{last} would hand them out again. Configure "
            f"serials beyond {high} (shipping.sscc_first / sscc_last) or another "
            "extension digit (shipping.sscc_extension); the range was left as it was"
        )
    new = SsccRange(prefix, extension, first, last, nxt)
    if new == stored:
        return new
    tx.execute(
        "INSERT INTO sscc_range (id, prefix, extension, first_serial, last_serial, "
        "next_serial) VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "prefix = excluded.prefix, extension = excluded.extension, "
        "first_serial = excluded.first_serial, last_serial = excluded.last_serial, "
        "next_serial = excluded.next_serial",
        (prefix, extension, first, last, nxt),
    )
    if stored is None:
        log.info("SSCC range %s: serials %d..%d, next %d", space, first, last, nxt)
    else:
        log.warning(
            "SSCC range changed: %s %d..%d (next %d) -> %s %d..%d (next %d)",
            stored.space,
            stored.first,
            stored.last,
            stored.next,
            space,
            first,
            last,
            nxt,
        )
    # a range with serials to hand out ends those episodes; a low one stays low
    if new.remaining > 0:
        clear_alerts(tx, (EXHAUSTED_ALERT, SSCC_CLOSED_ALERT))
    if new.remaining > settings.sscc_low:
        clear_alerts(tx, (LOW_ALERT,))
    else:
        _alert_low(tx, new, low=settings.sscc_low, now=None)
    return new


def allocate(
    tx: Transaction, *, now: int, low: int = DEFAULT_LOW, block: int = RESERVE_BLOCK
) -> str:
    """The next SSCC of the box's range, taken in ``tx``: it is the carton's once
    ``tx`` commits, and free again if ``tx`` rolls back.

    Before the serial is taken, the sync mark must cover it; when it does not,
    the mark is advanced to the end of a block of ``block`` serials (one
    fsync). ``low``: serials left at which ``sscc_range_low`` is raised
    (once per episode); the last serial raises ``sscc_range_exhausted``.
    ``now`` (unix ms) goes into their detail.

    Raises, with nothing changed: :class:`SsccNotConfiguredError`,
    :class:`SsccExhaustedError`, :class:`SsccUnreservedError`.
    """
    if block < 1:
        raise ValueError(f"block must be 1 or more, not {block}")
    store = tx.store
    if not is_reconciled(store):
        raise SsccUnreservedError(
            f"the sync mark beside {store.path} has not been checked since the database "
            "was opened (the daemon does it at start): no SSCC is handed out before"
        )
    rng = current(tx)
    if rng is None:
        raise SsccNotConfiguredError(
            "this box has no SSCC range: configure shipping.gs1_prefix, sscc_extension, "
            "sscc_first and sscc_last"
        )
    if rng.remaining <= 0:
        raise SsccExhaustedError(_exhausted_message(tx, rng))
    serial = rng.next
    try:
        reserve_sscc(mark_path(store.path), rng.space, serial, min(serial + block - 1, rng.last))
    except MarkUnavailableError as exc:
        raise SsccUnreservedError(str(exc)) from exc
    tx.execute("UPDATE sscc_range SET next_serial = ? WHERE id = 1", (serial + 1,))
    taken = SsccRange(rng.prefix, rng.extension, rng.first, rng.last, serial + 1)
    _alert_low(tx, taken, low=low, now=now)
    return format_sscc(rng.extension, rng.prefix, serial)


def _alert_low(tx: Transaction, rng: SsccRange, *, low: int, now: int | None) -> None:
    left = rng.remaining
    if left > low:
        return
    detail: dict[str, object] = {
        "space": rng.space,
        "first": rng.first,
        "last": rng.last,
        "left": left,
    }
    if now is not None:
        detail["at_ms"] = now
    raise_alert(
        tx,
        LOW_ALERT,
        str(Severity.WARN),
        f"SSCC range {rng.extension}+{rng.prefix} {rng.first}..{rng.last}: {left} serials "
        "left; configure a new range for this box before it runs out",
        detail,
    )
    if left == 0:
        raise_alert(
            tx,
            EXHAUSTED_ALERT,
            str(Severity.CRIT),
            f"SSCC range {rng.extension}+{rng.prefix} {rng.first}..{rng.last} is used up: "
            "cartons cannot be closed until a new range is configured",
            detail,
        )


def _exhausted_message(tx: Transaction, rng: SsccRange) -> str:
    closed = tx.execute(
        "SELECT 1 FROM alerts WHERE kind = ? AND cleared_ms IS NULL", (SSCC_CLOSED_ALERT,)
    ).fetchone()
    why = (
        "was closed at start: the database is a copy and no sync mark said which of its "
        "SSCCs the box had handed out"
        if closed
        else "is used up"
    )
    return (
        f"SSCC range {rng.extension}+{rng.prefix} {rng.first}..{rng.last} {why}; "
        "the carton cannot be closed (an SSCC is never reused). Configure a new range "
        f"for this box: serials beyond {rng.last} (shipping.sscc_last) or another "
        "extension digit"
    )


@dataclass(frozen=True, slots=True)
class Allocator:
    """:func:`allocate` as the configuration says: refuses while no prefix is
    configured or the stored range is not the configured one (call
    :func:`configure` at start), raises the low alert at ``sscc_low``."""

    settings: RangeSettings
    block: int = RESERVE_BLOCK

    def __call__(self, tx: Transaction, *, now: int) -> str:
        s = self.settings
        if not s.gs1_prefix:
            raise SsccNotConfiguredError(
                "no GS1 company prefix is configured (shipping.gs1_prefix): cartons "
                "cannot be closed"
            )
        rng = current(tx)
        if rng is None or (rng.prefix, rng.extension, rng.first, rng.last) != (
            s.gs1_prefix,
            s.sscc_extension,
            s.sscc_first,
            s.sscc_last,
        ):
            raise SsccNotConfiguredError(
                "the stored SSCC range is not the configured one: it is taken over "
                "when the daemon starts (edge.shipping.sscc.configure)"
            )
        return allocate(tx, now=now, low=s.sscc_low, block=self.block)


__all__ = [
    "DEFAULT_LOW",
    "EXHAUSTED_ALERT",
    "LOW_ALERT",
    "RANGE_ALERTS",
    "RESERVE_BLOCK",
    "Allocator",
    "RangeSettings",
    "SsccConfigError",
    "SsccError",
    "SsccExhaustedError",
    "SsccNotConfiguredError",
    "SsccRange",
    "SsccRangeChangeError",
    "SsccUnreservedError",
    "allocate",
    "check_digit",
    "configure",
    "current",
    "format_sscc",
    "is_valid",
    "validate",
]
