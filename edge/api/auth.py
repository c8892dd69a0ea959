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
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from common.errors import PickEdgeError
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
        taken = tx.execute("SELECT revoked_ms FROM pdas WHERE name = ?", (name,)).fetchone()
        if taken is not None:
            state = "revoked" if taken[0] is not None else "enrolled"
            raise EnrolmentError(f"a PDA called {name!r} is already {state}; choose another name")
        tx.execute(
            "INSERT INTO pdas (id, name, key_hash, created_ms) VALUES (?, ?, ?, ?)",
            (pda_id, name, hash_secret(key), now_ms()),
        )

    store.run(fn)
    return pda_id, key


def list_pdas(store: Store) -> list[dict[str, Any]]:
    return store.query(
        "SELECT id, name, created_ms, revoked_ms, "
        "(SELECT COUNT(*) FROM sessions s WHERE s.pda = p.id AND s.expires_up > ?) AS sessions "
        "FROM pdas p ORDER BY name",
        (store.uptime_ms(),),
    )


def revoke_pda(store: Store, name_or_id: str) -> str:
    """Revoke a PDA by name or id and end its sessions; returns its id."""

    def fn(tx: Transaction) -> str:
        row = tx.execute(
            "SELECT id, revoked_ms FROM pdas WHERE id = ?1 OR name = ?1", (name_or_id,)
        ).fetchone()
        if row is None:
            raise EnrolmentError(f"no PDA called {name_or_id!r} (see `pickedge pda list`)")
        if row[1] is None:
            tx.execute("UPDATE pdas SET revoked_ms = ? WHERE id = ?", (now_ms(), row[0]))
        tx.execute("DELETE FROM sessions WHERE pda = ?", (row[0],))
        return str(row[0])

    return store.run(fn)


def add_picker(store: Store, picker_id: str, name: str, badge: str, role: str = "picker") -> None:
    """Add (or update) a picker locally; the cloud's master data may later replace it."""
    if role not in ROLES:
        raise EnrolmentError(f"role must be one of {', '.join(ROLES)}")
    for label, value in (("id", picker_id), ("name", name), ("badge", badge)):
        if not value.strip() or len(value) > 128:
            raise EnrolmentError(f"picker {label} must be 1 to 128 characters")

    def fn(tx: Transaction) -> None:
        other = tx.execute("SELECT id FROM pickers WHERE badge = ?", (badge,)).fetchone()
        if other is not None and other[0] != picker_id:
            raise EnrolmentError(f"badge {badge!r} already belongs to picker {other[0]!r}")
        tx.execute(
            "INSERT INTO pickers (id, name, badge, role, active, source) "
            "VALUES (?, ?, ?, ?, 1, 'local') ON CONFLICT (id) DO UPDATE SET "
            "name = excluded.name, badge = excluded.badge, role = excluded.role, active = 1",
            (picker_id, name, badge, role),
        )

    store.run(fn)


# --------------------------------------------------------------------------- sessions


def device_of(store: Store, device_key: str) -> str:
    """The id of the enrolled, non-revoked PDA holding ``device_key``."""
    rows = store.query(
        "SELECT id FROM pdas WHERE key_hash = ? AND revoked_ms IS NULL",
        (hash_secret(device_key),),
    )
    if not rows:
        raise UnknownDeviceError("this PDA is not enrolled (ask a supervisor: pickedge pda enroll)")
    return str(rows[0]["id"])


def picker_by_badge(store: Store, badge: str) -> Picker:
    rows = store.query(
        "SELECT id, name, role FROM pickers WHERE badge = ? AND active = 1", (badge,)
    )
    if not rows:
        raise UnknownBadgeError("unknown badge")
    row = rows[0]
    return Picker(str(row["id"]), str(row["name"]), str(row["role"]))


async def open_session(store: Store, picker: Picker, pda: str, ttl_s: int) -> str:
    """A new session token for ``picker`` on ``pda``; durable when returned."""
    token = new_secret()
    now = store.uptime_ms()

    def fn(tx: Transaction) -> None:
        tx.execute("DELETE FROM sessions WHERE expires_up <= ?", (now,))
        tx.execute(
            "INSERT INTO sessions (token_hash, picker, pda, expires_up) VALUES (?, ?, ?, ?)",
            (hash_secret(token), picker.id, pda, now + ttl_s * 1000),
        )

    await store.write(fn)
    return token


async def close_session(store: Store, token: str) -> None:
    def fn(tx: Transaction) -> None:
        tx.execute("DELETE FROM sessions WHERE token_hash = ?", (hash_secret(token),))

    await store.write(fn)


def session_of(store: Store, token: str) -> Session | None:
    """The live session of ``token``: picker active, PDA not revoked, not expired."""
    rows = store.query(
        "SELECT p.id, p.name, p.role, s.pda, s.expires_up FROM sessions s "
        "JOIN pickers p ON p.id = s.picker JOIN pdas d ON d.id = s.pda "
        "WHERE s.token_hash = ? AND s.expires_up > ? AND p.active = 1 "
        "AND d.revoked_ms IS NULL",
        (hash_secret(token), store.uptime_ms()),
    )
    if not rows:
        return None
    r = rows[0]
    return Session(
        Picker(str(r["id"]), str(r["name"]), str(r["role"])), str(r["pda"]), int(r["expires_up"])
    )


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
