"""Who may talk to the PDA API: enrolled devices, pickers by badge, sessions.

Promises:

- Device keys and session tokens are random (:func:`secrets.token_urlsafe`,
  256 bits) and only their SHA-256 hashes are stored; neither is ever logged.
  A fast hash is enough because the secrets are long and random (nothing to
  brute-force), and it keeps authentication off the latency path.
- A session needs both a badge and an enrolled, non-revoked PDA (a badge
  alone is a copyable barcode). Revoking a PDA ends its sessions at once.
- :class:`LoginLimiter` answers repeated failed logins with 429 for a while,
  counted per device key, per badge and per address, so badges cannot be
  guessed at Wi-Fi speed and one bad PDA does not lock out its NAT.
- A picker holds at most :data:`MAX_SESSIONS_PER_PICKER` live sessions and a
  PDA at most :data:`MAX_SESSIONS_PER_DEVICE`; a login beyond ends the oldest.

Supervisor functions (:func:`enroll_pda`, :func:`list_pdas`, :func:`revoke_pda`,
:func:`add_picker`) are synchronous: the CLI calls them on an open store; the
admin API calls :func:`enroll_pda_async` and :func:`revoke_pda_async`, the
same transactions on the store's writer thread.

The SQL is not here: ``pdas`` and ``sessions`` are :mod:`edge.api.auth_tables`,
``pickers`` is master data (:mod:`edge.masterdata.tables`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from common.errors import PickEdgeError
from edge.api import auth_tables
from edge.masterdata import tables as masterdata_tables
from edge.picking.service import Picker
from edge.store.db import Store, Transaction, now_ms

ROLES = ("picker", "supervisor", "admin")
#: live sessions a picker may hold (PDA page, pack station, a spare PDA …)
MAX_SESSIONS_PER_PICKER = 4
#: live sessions one device may hold (pickers sharing a PDA across a shift change)
MAX_SESSIONS_PER_DEVICE = 4

log = logging.getLogger(__name__)


class AuthError(PickEdgeError):
    code = "unauthorized"
    status = 401


class UnknownDeviceError(AuthError):
    code = "unknown_device"


class UnknownBadgeError(AuthError):
    code = "unknown_badge"


class EnrolmentError(PickEdgeError, ValueError):
    code = "enrolment_invalid"
    exit_code = 2


def hash_secret(secret: str) -> str:
    # surrogatepass: a header decoded with surrogateescape hashes (and matches
    # nothing) instead of raising; valid text hashes exactly as UTF-8
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Session:
    picker: Picker
    pda: str
    expires_up: int  # box uptime (Store.uptime_ms), not the wall clock


# --------------------------------------------------------------------------- supervisors


class PdaNameTakenError(EnrolmentError):
    code = "pda_exists"


class UnknownPdaError(EnrolmentError):
    code = "unknown_pda"


MAX_PDA_NAME = 64


def pda_name(name: str) -> str:
    """``name`` as stored: stripped, 1 to 64 printable characters."""
    name = name.strip()
    if not name or len(name) > MAX_PDA_NAME or not name.isprintable():
        raise EnrolmentError("a PDA name is 1 to 64 printable characters")
    return name


def _enrolment(name: str) -> tuple[str, str, Callable[[Transaction], None]]:
    """(pda id, device key, the transaction that stores its hash)."""
    name = pda_name(name)
    key = new_secret()
    pda_id = "pda-" + secrets.token_hex(6)

    def fn(tx: Transaction) -> None:
        taken = auth_tables.pda_named(tx, name)
        if taken is not None:
            state = "revoked" if taken[1] is not None else "enrolled"
            raise PdaNameTakenError(
                f"a PDA called {name!r} is already {state}; choose another name"
            )
        auth_tables.insert_pda(tx, pda_id, name, hash_secret(key), now_ms())

    return pda_id, key, fn


def enroll_pda(store: Store, name: str) -> tuple[str, str]:
    """Enrol a PDA called ``name``; returns ``(pda id, device key)``. The key is
    shown once: only its hash is kept."""
    pda_id, key, fn = _enrolment(name)
    store.run(fn)
    return pda_id, key


async def enroll_pda_async(store: Store, name: str) -> tuple[str, str]:
    """:func:`enroll_pda` on the store's writer thread (the API's)."""
    pda_id, key, fn = _enrolment(name)
    await store.write(fn)
    return pda_id, key


def list_pdas(store: Store) -> list[auth_tables.PdaRow]:
    return auth_tables.pdas(store, now_up=store.uptime_ms())


def _revocation(name_or_id: str) -> Callable[[Transaction], tuple[str, int]]:
    def fn(tx: Transaction) -> tuple[str, int]:
        found = auth_tables.pda_by_name_or_id(tx, name_or_id)
        if found is None:
            raise UnknownPdaError(f"no PDA called {name_or_id!r} (see `pickedge pda list`)")
        pda_id, revoked_ms = found
        if revoked_ms is None:
            auth_tables.mark_revoked(tx, pda_id, now_ms())
        return pda_id, auth_tables.end_sessions_of(tx, pda_id)

    return fn


def revoke_pda(store: Store, name_or_id: str) -> str:
    """Revoke a PDA by name or id and end its sessions; returns its id."""
    return store.run(_revocation(name_or_id))[0]


async def revoke_pda_async(store: Store, name_or_id: str) -> tuple[str, int]:
    """:func:`revoke_pda` on the writer thread; returns (id, sessions ended)."""
    return await store.write(_revocation(name_or_id))


def add_picker(store: Store, picker_id: str, name: str, badge: str, role: str = "picker") -> None:
    """Add (or update) a picker locally; the cloud's master data may later replace it."""
    if role not in ROLES:
        raise EnrolmentError(f"role must be one of {', '.join(ROLES)}")
    for label, value in (("id", picker_id), ("name", name), ("badge", badge)):
        if not value.strip() or len(value) > 128:
            raise EnrolmentError(f"picker {label} must be 1 to 128 characters")

    def fn(tx: Transaction) -> None:
        other = masterdata_tables.badge_holder(tx, badge)
        if other is not None and other != picker_id:
            raise EnrolmentError(f"badge {badge!r} already belongs to picker {other!r}")
        masterdata_tables.upsert_picker(
            tx, picker_id, name, badge, role, active=True, source="local"
        )

    store.run(fn)


# --------------------------------------------------------------------------- sessions


def device_of(store: Store, device_key: str) -> str:
    """The id of the enrolled, non-revoked PDA holding ``device_key``."""
    pda = auth_tables.enrolled_pda_with_key(store, hash_secret(device_key))
    if pda is None:
        raise UnknownDeviceError("this PDA is not enrolled (ask a supervisor: pickedge pda enroll)")
    return pda


def picker_by_badge(store: Store, badge: str) -> Picker:
    row = masterdata_tables.active_picker_by_badge(store, badge)
    if row is None:
        raise UnknownBadgeError("unknown badge")
    return Picker(row.id, row.name, row.role)


async def open_session(
    store: Store,
    picker: Picker,
    pda: str,
    ttl_s: int,
    *,
    max_per_picker: int = MAX_SESSIONS_PER_PICKER,
    max_per_device: int = MAX_SESSIONS_PER_DEVICE,
) -> str:
    """A new session token for ``picker`` on ``pda``; durable when returned.

    Beyond ``max_per_picker`` live sessions of the picker, or ``max_per_device``
    of the PDA, the oldest of them end in the same transaction: logins cannot
    pile up sessions (one row each for the token lifetime)."""
    token = new_secret()
    now = store.uptime_ms()

    def fn(tx: Transaction) -> int:
        auth_tables.drop_expired_sessions(tx, now)
        auth_tables.insert_session(tx, hash_secret(token), picker.id, pda, now + ttl_s * 1000)
        return auth_tables.trim_sessions_of_picker(
            tx, picker.id, keep=max_per_picker
        ) + auth_tables.trim_sessions_of_pda(tx, pda, keep=max_per_device)

    ended = await store.write(fn)
    if ended:
        log.info(
            "older sessions ended by a new login",
            extra={"picker": picker.id, "pda": pda, "ended": ended},
        )
    return token


async def close_session(store: Store, token: str) -> None:
    def fn(tx: Transaction) -> None:
        auth_tables.delete_session(tx, hash_secret(token))

    await store.write(fn)


def session_of(store: Store, token: str) -> Session | None:
    """The live session of ``token``: picker active, PDA not revoked, not expired."""
    row = auth_tables.live_session(store, hash_secret(token), now_up=store.uptime_ms())
    if row is None:
        return None
    return Session(Picker(row.picker, row.name, row.role), row.pda, row.expires_up)


class FailureTable:
    """Failed logins per key within a sliding window, for at most ``capacity`` keys.

    A key is *blocked* while it has ``limit`` failures within ``window_s``. Each
    key keeps its last ``limit`` failure times only (a fixed size per key), and
    a success removes nothing: failures age out of the window, never out of
    the table by good behaviour. When the table is full, the least recently
    failed key that is *not* blocked makes room; when every key is blocked, a
    new key is refused (fail closed) until the first of them unblocks — so no
    flood of other keys can ever unblock a blocked one.
    """

    def __init__(self, *, limit: int, window_s: float, capacity: int) -> None:
        if limit < 1 or capacity < 1:
            raise ValueError("limit and capacity must be at least 1")
        self.limit = limit
        self.window_s = window_s
        self.capacity = capacity
        # least recently failed first
        self._keys: OrderedDict[str, deque[float]] = OrderedDict()
        #: while the table is full of blocked keys: when the first one unblocks
        self._saturated_until = 0.0

    def __len__(self) -> int:
        return len(self._keys)

    def _wait(self, q: deque[float], now: float) -> float | None:
        if len(q) < self.limit or now - q[0] >= self.window_s:
            return None
        return self.window_s - (now - q[0])

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until ``key`` may try again, or None when it may now."""
        q = self._keys.get(key)
        if q is not None:
            return self._wait(q, now)
        if len(self._keys) >= self.capacity and not self._make_room(now):
            return max(0.0, self._saturated_until - now)
        return None

    def failed(self, key: str, now: float) -> None:
        q = self._keys.get(key)
        if q is None:
            if len(self._keys) >= self.capacity and not self._make_room(now):
                return  # full of blocked keys; retry_after() refuses this key meanwhile
            q = self._keys[key] = deque(maxlen=self.limit)
        else:
            self._keys.move_to_end(key)
        q.append(now)

    def _make_room(self, now: float) -> bool:
        """Forget the least recently failed unblocked key; False when all are blocked."""
        if now < self._saturated_until:
            return False
        for key, q in self._keys.items():
            if self._wait(q, now) is None:
                del self._keys[key]
                return True
        # A blocked key gets no further failures (it is refused first), so the
        # earliest unblocking is fixed until then: no rescans before it.
        self._saturated_until = min(q[0] for q in self._keys.values()) + self.window_s
        return False


def address_key(remote: str | None) -> str:
    """The unit an address is limited by: an IPv4 address, or an IPv6 /64 (one
    host owns a whole /64, so counting single IPv6 addresses would be no limit)."""
    if not remote:
        return "?"
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginLimiter:
    """Failed logins counted per device key, per badge and per address.

    - A device key or a badge is blocked after ``per_device`` / ``per_badge``
      failures within ``window_s``; an address only after ``per_address``, far
      more: one bad PDA behind a NAT is stopped by its key while the honest
      PDAs sharing the address log in.
    - A badge is counted only when it was refused itself (unknown, or not a
      valid string), never for a failure of the device key: a copied badge sent
      with forged keys must not lock its picker out (and a 256-bit key is not
      guessable, so nothing is lost).
    - Successes clear nothing: four wrong badges and one right one, repeated,
      reach the limit like five wrong ones.
    - Keys and badges are held as hashes; each table is a :class:`FailureTable`
      of bounded size that never forgets a blocked key to make room.
    - A request refused with 429 is not counted again, so blocked retries do not
      push a NAT's address over its limit.
    """

    def __init__(
        self,
        *,
        per_device: int = 5,
        per_badge: int = 5,
        per_address: int = 50,
        window_s: float = 60.0,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._tables = {
            "device": FailureTable(limit=per_device, window_s=window_s, capacity=capacity),
            "badge": FailureTable(limit=per_badge, window_s=window_s, capacity=capacity),
            "address": FailureTable(limit=per_address, window_s=window_s, capacity=capacity),
        }

    @staticmethod
    def _keys(
        address: str | None, device_key: str | None, badge: str | None
    ) -> list[tuple[str, str]]:
        keys = [("address", address_key(address))]
        if device_key:
            keys.append(("device", hash_secret(device_key)[:32]))
        if badge:
            keys.append(("badge", hash_secret(badge)[:32]))
        return keys

    def retry_after(
        self, address: str | None, *, device_key: str | None = None, badge: str | None = None
    ) -> float | None:
        """Seconds until this login may be tried, or None when it may now."""
        now = self._clock()
        waits = [
            wait
            for table, key in self._keys(address, device_key, badge)
            if (wait := self._tables[table].retry_after(key, now)) is not None
        ]
        return max(waits) if waits else None

    def failed(
        self, address: str | None, *, device_key: str | None = None, badge: str | None = None
    ) -> None:
        now = self._clock()
        for table, key in self._keys(address, device_key, badge):
            self._tables[table].failed(key, now)

    def tracked(self) -> dict[str, int]:
        """How many keys each table holds (for tests and metrics)."""
        return {name: len(table) for name, table in self._tables.items()}
