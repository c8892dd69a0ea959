"""Who may talk to the PDA API: enrolled devices, pickers by badge, sessions.

Promises:

- Device keys and session tokens are random (:func:`secrets.token_urlsafe`,
  256 bits) and only their SHA-256 hashes are stored; neither is ever logged.
  A fast hash is enough because the secrets are long and random (nothing to
  brute-force), and it keeps authentication off the latency path.
- A session needs both a badge and an enrolled, non-revoked PDA (a badge
  alone is a copyable barcode). Revoking a PDA ends its sessions at once.
- :class:`LoginLimiter` answers repeated failed logins from one address with
  429 for a while, so badges cannot be guessed at Wi-Fi speed.

Supervisor functions (:func:`enroll_pda`, :func:`list_pdas`, :func:`revoke_pda`,
:func:`add_picker`) are synchronous: the CLI calls them on an open store.

The SQL is not here: ``pdas`` and ``sessions`` are :mod:`edge.api.auth_tables`,
``pickers`` is master data (:mod:`edge.masterdata.tables`).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from dataclasses import dataclass

from common.errors import PickEdgeError
from edge.api import auth_tables
from edge.masterdata import tables as masterdata_tables
from edge.picking.service import Picker
from edge.store.db import Store, Transaction, now_ms

ROLES = ("picker", "supervisor", "admin")


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
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Session:
    picker: Picker
    pda: str
    expires_up: int  # box uptime (Store.uptime_ms), not the wall clock


# --------------------------------------------------------------------------- supervisors


def enroll_pda(store: Store, name: str) -> tuple[str, str]:
    """Enrol a PDA called ``name``; returns ``(pda id, device key)``. The key is
    shown once: only its hash is kept."""
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise EnrolmentError("a PDA name is 1 to 64 printable characters")
    key = new_secret()
    pda_id = "pda-" + secrets.token_hex(6)

    def fn(tx: Transaction) -> None:
        taken = auth_tables.pda_named(tx, name)
        if taken is not None:
            state = "revoked" if taken[1] is not None else "enrolled"
            raise EnrolmentError(f"a PDA called {name!r} is already {state}; choose another name")
        auth_tables.insert_pda(tx, pda_id, name, hash_secret(key), now_ms())

    store.run(fn)
    return pda_id, key


def list_pdas(store: Store) -> list[auth_tables.PdaRow]:
    return auth_tables.pdas(store, now_up=store.uptime_ms())


def revoke_pda(store: Store, name_or_id: str) -> str:
    """Revoke a PDA by name or id and end its sessions; returns its id."""

    def fn(tx: Transaction) -> str:
        found = auth_tables.pda_by_name_or_id(tx, name_or_id)
        if found is None:
            raise EnrolmentError(f"no PDA called {name_or_id!r} (see `pickedge pda list`)")
        pda_id, revoked_ms = found
        if revoked_ms is None:
            auth_tables.mark_revoked(tx, pda_id, now_ms())
        auth_tables.end_sessions_of(tx, pda_id)
        return pda_id

    return store.run(fn)


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


async def open_session(store: Store, picker: Picker, pda: str, ttl_s: int) -> str:
    """A new session token for ``picker`` on ``pda``; durable when returned."""
    token = new_secret()
    now = store.uptime_ms()

    def fn(tx: Transaction) -> None:
        auth_tables.drop_expired_sessions(tx, now)
        auth_tables.insert_session(tx, hash_secret(token), picker.id, pda, now + ttl_s * 1000)

    await store.write(fn)
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


class LoginLimiter:
    """At most ``max_failures`` failed logins per address within ``window_s``."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None when it may now."""
        now = time.monotonic()
        q = self._recent(key, now)
        if len(q) < self.max_failures:
            if not q:
                self._failures.pop(key, None)
            return None
        return max(0.0, self.window_s - (now - q[0]))

    def failed(self, key: str) -> None:
        now = time.monotonic()
        self._recent(key, now).append(now)
        if len(self._failures) > 10_000:  # bounded: forget the oldest addresses
            for old in list(self._failures)[:1000]:
                del self._failures[old]

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
