"""The SQL of the PDA-access tables: ``pdas`` (enrolled handhelds) and
``sessions`` (logins, by the hash of their token).

Only hashes are passed in and stored; secrets never reach this module. Writers
take the caller's :class:`~edge.store.Transaction`; readers take the
:class:`~edge.store.Store` and use a read-only connection. Times: ``*_ms`` is
the wall clock (informational), ``*_up`` the box uptime
(:meth:`~edge.store.Store.uptime_ms`), on which sessions expire. The checks
and decisions are in :mod:`edge.api.auth`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.store import Store, Transaction


@dataclass(frozen=True, slots=True)
class PdaRow:
    """An enrolled PDA as ``pickedge pda list`` shows it."""

    id: str
    name: str
    created_ms: int
    revoked_ms: int | None
    sessions: int  # live ones


@dataclass(frozen=True, slots=True)
class SessionRow:
    picker: str
    name: str
    role: str
    pda: str
    expires_up: int


# --------------------------------------------------------------------------- pdas


def pda_named(tx: Transaction, name: str) -> tuple[str, int | None] | None:
    """(id, revoked_ms) of the PDA called ``name``, or None."""
    row = tx.execute("SELECT id, revoked_ms FROM pdas WHERE name = ?", (name,)).fetchone()
    return None if row is None else (str(row[0]), row[1])


def pda_by_name_or_id(tx: Transaction, name_or_id: str) -> tuple[str, int | None] | None:
    """(id, revoked_ms) of the PDA with that id or name, or None."""
    row = tx.execute(
        "SELECT id, revoked_ms FROM pdas WHERE id = ?1 OR name = ?1", (name_or_id,)
    ).fetchone()
    return None if row is None else (str(row[0]), row[1])


def insert_pda(tx: Transaction, pda: str, name: str, key_hash: str, created_ms: int) -> None:
    tx.execute(
        "INSERT INTO pdas (id, name, key_hash, created_ms) VALUES (?, ?, ?, ?)",
        (pda, name, key_hash, created_ms),
    )


def mark_revoked(tx: Transaction, pda: str, revoked_ms: int) -> None:
    tx.execute("UPDATE pdas SET revoked_ms = ? WHERE id = ?", (revoked_ms, pda))


def pdas(store: Store, *, now_up: int) -> list[PdaRow]:
    """Every PDA by name, with its sessions still live at uptime ``now_up``."""
    rows = store.query(
        "SELECT id, name, created_ms, revoked_ms, "
        "(SELECT COUNT(*) FROM sessions s WHERE s.pda = p.id AND s.expires_up > ?) AS sessions "
        "FROM pdas p ORDER BY name",
        (now_up,),
    )
    return [
        PdaRow(r["id"], r["name"], r["created_ms"], r["revoked_ms"], r["sessions"]) for r in rows
    ]


def enrolled_pda_with_key(store: Store, key_hash: str) -> str | None:
    """The id of the non-revoked PDA whose device key hashes to ``key_hash``."""
    rows = store.query("SELECT id FROM pdas WHERE key_hash = ? AND revoked_ms IS NULL", (key_hash,))
    return str(rows[0]["id"]) if rows else None


# --------------------------------------------------------------------------- sessions


def insert_session(
    tx: Transaction, token_hash: str, picker: str, pda: str, expires_up: int
) -> None:
    tx.execute(
        "INSERT INTO sessions (token_hash, picker, pda, expires_up) VALUES (?, ?, ?, ?)",
        (token_hash, picker, pda, expires_up),
    )


def delete_session(tx: Transaction, token_hash: str) -> None:
    tx.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))


def end_sessions_of(tx: Transaction, pda: str) -> int:
    """End every session on ``pda``; returns how many."""
    return int(tx.execute("DELETE FROM sessions WHERE pda = ?", (pda,)).rowcount)


def trim_sessions_of_picker(tx: Transaction, picker: str, *, keep: int) -> int:
    """End all but the ``keep`` newest sessions of ``picker``; returns how many ended."""
    return int(tx.execute(_TRIM_PICKER, (picker, max(0, keep))).rowcount)


def trim_sessions_of_pda(tx: Transaction, pda: str, *, keep: int) -> int:
    """End all but the ``keep`` newest sessions on ``pda``; returns how many ended."""
    return int(tx.execute(_TRIM_PDA, (pda, max(0, keep))).rowcount)


# Every session has the same lifetime, so the newest expires last; rowid breaks
# ties between logins of one millisecond.
_TRIM_PICKER = (
    "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE picker = ? "
    "ORDER BY expires_up DESC, rowid DESC LIMIT -1 OFFSET ?)"
)
_TRIM_PDA = (
    "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE pda = ? "
    "ORDER BY expires_up DESC, rowid DESC LIMIT -1 OFFSET ?)"
)


def drop_expired_sessions(tx: Transaction, up: int) -> int:
    """Delete sessions that ended by box uptime ``up``; returns how many."""
    return int(tx.execute("DELETE FROM sessions WHERE expires_up <= ?", (up,)).rowcount)


def live_session(store: Store, token_hash: str, *, now_up: int) -> SessionRow | None:
    """The session of ``token_hash`` if it is live at uptime ``now_up``: not
    expired, its picker active and its PDA not revoked."""
    rows = store.query(
        "SELECT p.id, p.name, p.role, s.pda, s.expires_up FROM sessions s "
        "JOIN pickers p ON p.id = s.picker JOIN pdas d ON d.id = s.pda "
        "WHERE s.token_hash = ? AND s.expires_up > ? AND p.active = 1 "
        "AND d.revoked_ms IS NULL",
        (token_hash, now_up),
    )
    if not rows:
        return None
    r = rows[0]
    return SessionRow(
        str(r["id"]), str(r["name"]), str(r["role"]), str(r["pda"]), int(r["expires_up"])
    )
