"""The receiver's tables and their migrations, for SQLite and PostgreSQL.

Every table but ``schema_migrations`` is keyed by ``box`` first, and every
statement the receiver runs names one box, so the tables partition by box and
run unchanged on Citus with ``box`` as the distribution column (each batch is a
single-shard transaction; see docs/cloud-receiver.md). No sequence or serial
column spans boxes: the per-box counters (epoch ordinal, change-feed position)
live in the box's own ``boxes`` row, under its row lock.

A migration is a list of statements per dialect; :func:`migrate` applies the
missing ones of a *component* (``receiver``, or an OMS's own name) in one
transaction, under an advisory lock on PostgreSQL so that several receiver
processes starting at once migrate once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cloud_sync.receiver.storage import Database, Dialect

#: version -> dialect -> statements
Migrations = Mapping[int, Mapping[Dialect, Sequence[str]]]

_BLOB: dict[Dialect, str] = {"sqlite": "BLOB", "postgresql": "BYTEA"}
#: pg_advisory_xact_lock key of migrations ("Pick" in ASCII)
_MIGRATION_LOCK = 0x5069636B


def _v1(dialect: Dialect) -> list[str]:
    blob = _BLOB[dialect]
    out = [
        # one row per box: the row lock every batch of the box takes, and the
        # box's counters (epochs seen, last change position enqueued)
        """CREATE TABLE boxes (
            box              TEXT PRIMARY KEY,
            site             TEXT,
            epochs           INTEGER NOT NULL DEFAULT 0,
            feed_pos         BIGINT NOT NULL DEFAULT 0,
            first_contact_ms BIGINT,
            last_contact_ms  BIGINT
        )""",
        "CREATE INDEX boxes_site ON boxes (site)",
        # the high-water mark of each (box, epoch); n orders a box's epochs
        """CREATE TABLE heads (
            box         TEXT NOT NULL,
            epoch       TEXT NOT NULL,
            n           INTEGER NOT NULL,
            acked       BIGINT NOT NULL,
            last_at_ms  BIGINT,
            PRIMARY KEY (box, epoch)
        )""",
        # every applied event, any type, with the digest that tells a resend
        # from other content: the dedup key is the primary key
        f"""CREATE TABLE events (
            box     TEXT NOT NULL,
            epoch   TEXT NOT NULL,
            seq     BIGINT NOT NULL,
            type    TEXT NOT NULL,
            digest  {blob} NOT NULL,
            body    {blob} NOT NULL,
            PRIMARY KEY (box, epoch, seq)
        )""",
        # the downstream change feed: pos counts 1, 2, 3… per box
        """CREATE TABLE changes (
            box   TEXT NOT NULL,
            pos   BIGINT NOT NULL,
            type  TEXT NOT NULL,
            data  TEXT NOT NULL,
            PRIMARY KEY (box, pos)
        )""",
        # per-box sync secrets when they come from the database (rotation:
        # insert the new one; the old one is accepted until retire_ms)
        """CREATE TABLE box_secrets (
            box         TEXT NOT NULL,
            created_ms  BIGINT NOT NULL,
            secret      TEXT NOT NULL,
            retire_ms   BIGINT,
            PRIMARY KEY (box, created_ms)
        )""",
    ]
    if dialect == "postgresql":
        # An OMS that writes SQL enqueues with this function; the UPDATE takes
        # the box row's lock, so positions commit in the order they are given.
        out.append(
            """CREATE FUNCTION pickedge_enqueue(p_box TEXT, p_type TEXT, p_data TEXT)
            RETURNS BIGINT LANGUAGE plpgsql AS $$
            DECLARE p BIGINT;
            BEGIN
                INSERT INTO boxes (box) VALUES (p_box) ON CONFLICT (box) DO NOTHING;
                UPDATE boxes SET feed_pos = feed_pos + 1 WHERE box = p_box
                    RETURNING feed_pos INTO p;
                INSERT INTO changes (box, pos, type, data) VALUES (p_box, p, p_type, p_data);
                RETURN p;
            END $$"""
        )
    return out


#: v2: pickedge_enqueue refuses what the feed could not serve (text that is
#: not a JSON object, a stock change without sku, location and an integer
#: base), as Receiver.enqueue does: stored, such a row failed every later
#: page of the box. (No ``%`` or ``?`` in statements: see storage.)
_ENQUEUE_V2 = """CREATE OR REPLACE FUNCTION pickedge_enqueue(p_box TEXT, p_type TEXT, p_data TEXT)
    RETURNS BIGINT LANGUAGE plpgsql AS $$
    DECLARE p BIGINT; d JSONB; base JSONB; whole BOOLEAN;
    BEGIN
        IF p_type IS NULL OR p_type = '' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'pickedge_enqueue: a change has a non-empty type';
        END IF;
        d := p_data::jsonb;  -- text that is not JSON raises here
        IF jsonb_typeof(d) IS DISTINCT FROM 'object' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = 'pickedge_enqueue: change data is a JSON object';
        END IF;
        IF p_type = 'stock' THEN
            base := COALESCE(d -> 'base', d -> 'qty', '0'::jsonb);
            whole := jsonb_typeof(base) = 'number';
            IF whole THEN
                whole := mod(base::text::numeric, 1) = 0;
            END IF;
            IF jsonb_typeof(d -> 'sku') IS DISTINCT FROM 'string'
                OR jsonb_typeof(d -> 'location') IS DISTINCT FROM 'string'
                OR NOT whole THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = 'pickedge_enqueue: a stock change has a str sku, '
                        || 'a str location and an integer base';
            END IF;
        END IF;
        INSERT INTO boxes (box) VALUES (p_box) ON CONFLICT (box) DO NOTHING;
        UPDATE boxes SET feed_pos = feed_pos + 1 WHERE box = p_box RETURNING feed_pos INTO p;
        INSERT INTO changes (box, pos, type, data) VALUES (p_box, p, p_type, p_data);
        RETURN p;
    END $$"""

RECEIVER_MIGRATIONS: Migrations = {
    1: {"sqlite": _v1("sqlite"), "postgresql": _v1("postgresql")},
    2: {"sqlite": [], "postgresql": [_ENQUEUE_V2]},
}


def migrate(db: Database, component: str, migrations: Migrations) -> list[int]:
    """Apply the missing migrations of ``component``; the versions applied."""
    applied: list[int] = []
    with db.transaction() as tx:
        if tx.dialect == "postgresql":
            tx.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " component TEXT NOT NULL, version INTEGER NOT NULL,"
            " PRIMARY KEY (component, version))"
        )
        done = {
            int(v)
            for (v,) in tx.all(
                "SELECT version FROM schema_migrations WHERE component = ?", (component,)
            )
        }
        for version in sorted(migrations):
            if version in done:
                continue
            for statement in migrations[version][tx.dialect]:
                tx.execute(statement)
            tx.execute(
                "INSERT INTO schema_migrations (component, version) VALUES (?, ?)",
                (component, version),
            )
            applied.append(version)
    return applied


__all__ = ["RECEIVER_MIGRATIONS", "Migrations", "migrate"]
