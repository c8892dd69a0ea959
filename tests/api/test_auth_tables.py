"""The PDA-access tables (``pdas``, ``sessions``) on a real store: which session
is live, and what ``pickedge pda list`` counts."""

from __future__ import annotations

from pathlib import Path

from edge.api import auth_tables
from edge.masterdata import tables as masterdata_tables
from edge.store import Store


def test_a_session_is_live_only_with_its_picker_active_and_pda_enrolled(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a.db", box_id="b") as store:
        with store.transaction() as tx:
            masterdata_tables.upsert_picker(
                tx, "p1", "Ana", "B1", "picker", active=True, source="local"
            )
            auth_tables.insert_pda(tx, "d1", "h1", "keyhash", created_ms=0)
            auth_tables.insert_pda(tx, "d2", "h2", "other", created_ms=0)
            auth_tables.insert_session(tx, "t1", "p1", "d1", expires_up=1000)
            auth_tables.insert_session(tx, "t2", "p1", "d2", expires_up=1000)
        assert auth_tables.live_session(store, "t1", now_up=999) == auth_tables.SessionRow(
            "p1", "Ana", "picker", "d1", 1000
        )
        assert auth_tables.live_session(store, "t1", now_up=1000) is None  # expired
        assert auth_tables.live_session(store, "nope", now_up=0) is None
        assert auth_tables.enrolled_pda_with_key(store, "keyhash") == "d1"
        assert [(p.name, p.sessions) for p in auth_tables.pdas(store, now_up=0)] == [
            ("h1", 1),
            ("h2", 1),
        ]
        with store.transaction() as tx:
            assert auth_tables.pda_by_name_or_id(tx, "h2") == ("d2", None)
            auth_tables.mark_revoked(tx, "d2", revoked_ms=5)
            assert auth_tables.pda_named(tx, "h2") == ("d2", 5)
        assert auth_tables.live_session(store, "t2", now_up=0) is None  # PDA revoked
        assert auth_tables.enrolled_pda_with_key(store, "other") is None
        with store.transaction() as tx:
            masterdata_tables.upsert_picker(
                tx, "p1", "Ana", "B1", "picker", active=False, source="x"
            )
        assert auth_tables.live_session(store, "t1", now_up=0) is None  # picker deactivated
        with store.transaction() as tx:
            assert auth_tables.end_sessions_of(tx, "d2") == 1
            assert auth_tables.drop_expired_sessions(tx, 999) == 0
            assert auth_tables.drop_expired_sessions(tx, 1000) == 1
        assert auth_tables.pdas(store, now_up=0)[0].sessions == 0
