"""Schema migrations, keyed on ``PRAGMA user_version``.

``MIGRATIONS[i]`` takes the schema from version ``i`` to ``i + 1``. Each runs in
one transaction together with the ``user_version`` bump, so a crash leaves the
database at the old version or the new one, never between. Migrations are only
ever appended; a released one is never edited.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    -- The box's identity. One row. epoch names the outbox's sequence space
    -- (sync-v1); next_seq is the seq the next event gets in that epoch.
    -- uptime_ms: how long the daemon has run, summed from the monotonic clock
    -- across restarts. Retention is measured on it, never on the wall clock,
    -- which can be years off or jump (DESIGN.md decision 5).
    CREATE TABLE box (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        box_id      TEXT NOT NULL,
        epoch       TEXT NOT NULL,
        next_seq    INTEGER NOT NULL CHECK (next_seq >= 1),
        created_ms  INTEGER NOT NULL,
        uptime_ms   INTEGER NOT NULL DEFAULT 0
    ) STRICT;

    -- Master data from the cloud.
    CREATE TABLE items (
        sku          TEXT PRIMARY KEY,
        description  TEXT NOT NULL DEFAULT '',
        uom          TEXT NOT NULL DEFAULT 'EA',
        serialized   INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE item_gtins (
        gtin  TEXT PRIMARY KEY CHECK (length(gtin) = 14),
        sku   TEXT NOT NULL REFERENCES items(sku) ON DELETE CASCADE
    ) STRICT;
    CREATE INDEX item_gtins_sku ON item_gtins(sku);

    -- Locations in routing-v1 terms: an aisle index and a depth y in metres.
    CREATE TABLE locations (
        code   TEXT PRIMARY KEY,
        aisle  INTEGER NOT NULL CHECK (aisle >= 0),
        y      REAL NOT NULL CHECK (y >= 0),
        zone   TEXT NOT NULL DEFAULT ''
    ) STRICT;

    -- On-hand stock per (sku, location, lot); lot '' when not lot-controlled.
    -- reserved: units promised to open tours, so two pickers are never sent for
    -- the same units.
    CREATE TABLE stock (
        sku       TEXT NOT NULL,
        location  TEXT NOT NULL,
        lot       TEXT NOT NULL DEFAULT '',
        expiry    TEXT,
        qty       INTEGER NOT NULL,
        reserved  INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
        PRIMARY KEY (sku, location, lot)
    ) STRICT;
    CREATE INDEX stock_location ON stock(location);

    -- Work from the cloud. Customer data is minimal: postcode and region only.
    CREATE TABLE tasks (
        task           TEXT PRIMARY KEY,
        kind           TEXT NOT NULL DEFAULT 'pick' CHECK (kind IN ('pick', 'count')),
        order_ref      TEXT,
        priority       INTEGER NOT NULL DEFAULT 0,
        state          TEXT NOT NULL DEFAULT 'open'
                       CHECK (state IN ('open', 'started', 'done', 'cancelled')),
        ship_postcode  TEXT,
        ship_region    TEXT,
        carrier        TEXT,
        -- the tote barcode the task travels in, when the cloud assigns one (a
        -- picker may start the task by scanning it)
        tote           TEXT,
        received_ms    INTEGER NOT NULL,
        finished_ms    INTEGER,
        -- box uptime after which a finished task is purged (set by maintenance)
        purge_at_up    INTEGER
    ) STRICT;
    CREATE INDEX tasks_open ON tasks(state, priority DESC);
    CREATE INDEX tasks_purge ON tasks(purge_at_up);
    -- Ids of purged tasks: the cloud re-sending one never makes it pickable again.
    CREATE TABLE task_tombstones (
        task         TEXT PRIMARY KEY,
        purge_at_up  INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX tasks_order ON tasks(order_ref);
    CREATE INDEX tasks_tote ON tasks(tote);
    CREATE TABLE task_lines (
        task      TEXT NOT NULL REFERENCES tasks(task) ON DELETE CASCADE,
        line      TEXT NOT NULL,
        sku       TEXT NOT NULL,
        qty       INTEGER NOT NULL CHECK (qty >= 0),
        location  TEXT,
        picked    INTEGER NOT NULL DEFAULT 0,
        state     TEXT NOT NULL DEFAULT 'open',
        PRIMARY KEY (task, line)
    ) STRICT;

    -- People and handhelds.
    CREATE TABLE pickers (
        id      TEXT PRIMARY KEY,
        name    TEXT NOT NULL,
        badge   TEXT NOT NULL UNIQUE,
        role    TEXT NOT NULL CHECK (role IN ('picker', 'supervisor', 'admin')),
        active  INTEGER NOT NULL DEFAULT 1,
        source  TEXT NOT NULL DEFAULT 'cloud'
    ) STRICT;
    CREATE TABLE pdas (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        key_hash    TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        revoked_ms  INTEGER
    ) STRICT;
    CREATE TABLE sessions (
        token_hash  TEXT PRIMARY KEY,
        picker      TEXT NOT NULL REFERENCES pickers(id),
        pda         TEXT NOT NULL REFERENCES pdas(id),
        -- box uptime (Store.uptime_ms) at which the session ends: a wall clock
        -- corrected by NTP must not log every picker out mid-shift
        expires_up  INTEGER NOT NULL
    ) STRICT;

    -- Tours: the walk a picker is on, and its stops in route order.
    CREATE TABLE tours (
        tour        INTEGER PRIMARY KEY AUTOINCREMENT,
        picker      TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'active'
                    CHECK (state IN ('active', 'done', 'cancelled')),
        route       BLOB,
        length_m    REAL,
        started_ms  INTEGER NOT NULL,
        ended_ms    INTEGER,
        purge_at_up INTEGER
    ) STRICT;
    CREATE INDEX tours_picker ON tours(picker, state);
    CREATE INDEX tours_purge ON tours(purge_at_up);
    CREATE TABLE tour_stops (
        tour      INTEGER NOT NULL REFERENCES tours(tour) ON DELETE CASCADE,
        stop      INTEGER NOT NULL,
        task      TEXT NOT NULL,
        line      TEXT NOT NULL,
        sku       TEXT NOT NULL,
        location  TEXT NOT NULL,
        lot       TEXT NOT NULL DEFAULT '',
        expiry    TEXT,
        qty       INTEGER NOT NULL,
        picked    INTEGER NOT NULL DEFAULT 0,
        state     TEXT NOT NULL DEFAULT 'pending',
        -- position in the walk; stop numbers stay fixed when a re-route reorders
        ord       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tour, stop)
    ) STRICT;

    -- Every applied scan, by the PDA's scan_id, with the answer it got: a retry
    -- returns the stored answer and changes nothing.
    CREATE TABLE scans (
        scan_id   TEXT PRIMARY KEY,
        picker    TEXT NOT NULL,
        tour      INTEGER,
        code      TEXT NOT NULL,
        result    TEXT NOT NULL,
        answer    BLOB NOT NULL,
        at_ms     INTEGER NOT NULL,
        -- scans outside a tour are purged on their own (those of a tour go with it)
        purge_at_up INTEGER
    ) STRICT;
    -- a serialised unit (EPC, AI 21) is counted once per tour: looked up by code
    CREATE INDEX scans_tour ON scans(tour, code);

    -- The append-only outbox (sync-v1). seq is contiguous per epoch; rows are
    -- only ever inserted, marked acked, and pruned once acked and old.
    CREATE TABLE outbox (
        epoch    TEXT NOT NULL,
        seq      INTEGER NOT NULL CHECK (seq >= 1),
        type     TEXT NOT NULL,
        at_ms    INTEGER NOT NULL,
        payload  BLOB NOT NULL,
        acked    INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (epoch, seq)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX outbox_unacked ON outbox(acked, epoch, seq);

    -- The box's own stock movements, one row per stock_delta event, written by
    -- Transaction.append_event. The downstream `stock` rule of sync-v1 (on-hand
    -- = the cloud's qty + this box's deltas after `acked`) is a SUM over it.
    CREATE TABLE stock_ledger (
        epoch     TEXT NOT NULL,
        seq       INTEGER NOT NULL,
        sku       TEXT NOT NULL,
        location  TEXT NOT NULL,
        qty       INTEGER NOT NULL,
        PRIMARY KEY (epoch, seq)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX stock_ledger_item ON stock_ledger(sku, location);

    -- The epochs of this box in the order they were started, so "deltas after
    -- seq N of epoch E" also counts every later epoch.
    CREATE TABLE epochs (
        n           INTEGER PRIMARY KEY AUTOINCREMENT,
        epoch       TEXT NOT NULL UNIQUE,
        started_ms  INTEGER NOT NULL
    ) STRICT;

    -- Sync progress: upstream ack per epoch, downstream cursor.
    CREATE TABLE sync_state (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        acked_epoch     TEXT,
        acked_seq       INTEGER NOT NULL DEFAULT 0,
        cursor          TEXT,
        last_ack_ms     INTEGER,
        last_error      TEXT,
        last_error_ms   INTEGER,
        -- the uploader's current retry pause (0 when sending normally) and when
        -- it retries next; the downloader's last successful pull
        backoff_s       REAL NOT NULL DEFAULT 0,
        retry_at_ms     INTEGER,
        last_pull_ms    INTEGER
    ) STRICT;
    INSERT INTO sync_state (id) VALUES (1);

    -- Devices as last seen, for the dashboard after a restart.
    CREATE TABLE devices (
        id          TEXT PRIMARY KEY,
        driver      TEXT NOT NULL,
        role        TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'unknown',
        last_seen_ms INTEGER
    ) STRICT;

    -- Alerts raised on the box (also sent upstream as alert events).
    CREATE TABLE alerts (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        kind         TEXT NOT NULL,
        severity     TEXT NOT NULL CHECK (severity IN ('info', 'warn', 'crit')),
        subject      TEXT NOT NULL,
        detail       BLOB NOT NULL,
        raised_ms    INTEGER NOT NULL,
        cleared_ms   INTEGER
    ) STRICT;
    CREATE INDEX alerts_open ON alerts(cleared_ms, severity);
    """,
    # 2: restores and clones (issue 17): per-epoch ack marks and sealed epochs,
    # the database's identity and its sync mark, acks stamped with box uptime
    """
    -- db_id: a random id of this database's line of history; a copy found
    -- without its mark gets a new one. marked: a sync mark (a file beside the
    -- database, edge/store/syncmark.py) has been written for this database, so
    -- finding none means the file was copied or restored elsewhere.
    ALTER TABLE box ADD COLUMN db_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE box ADD COLUMN marked INTEGER NOT NULL DEFAULT 0;
    UPDATE box SET db_id = lower(hex(randomblob(8)));

    -- Per-epoch ack marks. last_seq is NULL for the current epoch (it still
    -- grows); a sealed epoch holds exactly seqs 1..last_seq and never gets
    -- another. The uploader drains epochs in n order: the oldest with
    -- acked < its last seq first.
    ALTER TABLE epochs ADD COLUMN acked INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE epochs ADD COLUMN last_seq INTEGER;
    -- Before this version an older epoch kept only acked rows (its unacked
    -- ones moved to the next epoch): sealed, fully acked.
    UPDATE epochs SET
        last_seq = (SELECT COALESCE(MAX(o.seq), 0) FROM outbox o WHERE o.epoch = epochs.epoch),
        acked = (SELECT COALESCE(MAX(o.seq), 0) FROM outbox o WHERE o.epoch = epochs.epoch)
    WHERE epoch <> (SELECT epoch FROM box WHERE id = 1);
    UPDATE epochs SET acked = (
        SELECT s.acked_seq FROM sync_state s WHERE s.id = 1 AND s.acked_epoch = epochs.epoch
    )
    WHERE epoch = (SELECT epoch FROM box WHERE id = 1)
      AND EXISTS (SELECT 1 FROM sync_state s WHERE s.id = 1 AND s.acked_epoch = epochs.epoch);

    -- acked_up: the box's uptime (Store.uptime_ms) when the row was acked;
    -- acked rows are pruned on it, never on the wall clock. Rows acked before
    -- this version count from the uptime stored now.
    ALTER TABLE outbox ADD COLUMN acked_up INTEGER;
    UPDATE outbox SET acked_up = (SELECT uptime_ms FROM box WHERE id = 1) WHERE acked = 1;
    CREATE INDEX outbox_acked_up ON outbox(acked_up) WHERE acked_up IS NOT NULL;
    """,
    # 3: a bounded stock ledger (issue 17)
    """
    -- The ledger's folded past: per (sku, location) the sum of every ledger row
    -- up to (epoch, seq), rows that can no longer be asked about (acked, and
    -- older than the outbox retention). stock_ledger keeps the rest.
    CREATE TABLE stock_ledger_base (
        sku       TEXT NOT NULL,
        location  TEXT NOT NULL,
        qty       INTEGER NOT NULL,
        epoch     TEXT NOT NULL,
        seq       INTEGER NOT NULL,
        PRIMARY KEY (sku, location)
    ) STRICT, WITHOUT ROWID;
    """,
    # 4: epoch changes without a write stall (issue 17)
    """
    -- An epoch change still moving rows (edge/store/outbox.py): the rows of
    -- `source` with seq in (after, upto] go to `target`, renumbered from
    -- to_seq on, a chunk per transaction; `after` and `to_seq` advance with
    -- each chunk and the row goes when the range is empty. Nothing of a
    -- target is read for sending while a move into it is pending.
    CREATE TABLE epoch_moves (
        n       INTEGER PRIMARY KEY,
        target  TEXT NOT NULL,
        source  TEXT NOT NULL,
        after   INTEGER NOT NULL,
        upto    INTEGER NOT NULL,
        to_seq  INTEGER NOT NULL,
        CHECK (after <= upto AND to_seq >= 1)
    ) STRICT;
    -- Acks an epoch change recorded in its epoch's mark (epochs.acked) whose
    -- rows are still to be stamped (outbox.acked, acked_up: what pruning
    -- reads), a chunk per transaction like the moves.
    CREATE TABLE ack_stamps (
        n       INTEGER PRIMARY KEY,
        epoch   TEXT NOT NULL,
        after   INTEGER NOT NULL,
        upto    INTEGER NOT NULL,
        up      INTEGER NOT NULL,
        CHECK (after <= upto)
    ) STRICT;
    """,
    # 5: pack and ship (issue 10): SSCCs, cartons, shipments, portal reads,
    # print jobs, and the dedup record of device messages
    """
    -- The box's SSCC range (config: GS1 company prefix, extension digit, serial
    -- range) and the next serial to hand out. One row; the serial only grows
    -- (edge/shipping/sscc.py; a restored database catches up from the sync
    -- mark, which records the high-water before a serial is used).
    CREATE TABLE sscc_range (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        prefix       TEXT NOT NULL,
        extension    INTEGER NOT NULL CHECK (extension BETWEEN 0 AND 9),
        first_serial INTEGER NOT NULL,
        last_serial  INTEGER NOT NULL,
        next_serial  INTEGER NOT NULL,
        CHECK (first_serial <= next_serial AND next_serial <= last_serial + 1)
    ) STRICT;

    -- Where an order is packed: a station works on one order at a time.
    CREATE TABLE pack_stations (
        station     TEXT PRIMARY KEY,
        order_ref   TEXT,
        -- the carton the next unit goes into (NULL: none open)
        carton      INTEGER,
        packer      TEXT,
        since_ms    INTEGER
    ) STRICT;

    -- Cartons: opened at a station for an order, closed with an SSCC from the
    -- box's range (UNIQUE: an SSCC is never on two cartons), shipped with the
    -- order's shipment, departed when a dock portal saw it leave.
    CREATE TABLE cartons (
        carton       INTEGER PRIMARY KEY AUTOINCREMENT,
        order_ref    TEXT NOT NULL,
        station      TEXT NOT NULL,
        state        TEXT NOT NULL DEFAULT 'open'
                     CHECK (state IN ('open', 'closed', 'shipped')),
        sscc         TEXT UNIQUE,
        shipment     TEXT,
        door         TEXT,
        opened_ms    INTEGER NOT NULL,
        closed_ms    INTEGER,
        printed_ms   INTEGER,
        departed_ms  INTEGER,
        departed_by  TEXT,
        purge_at_up  INTEGER
    ) STRICT;
    CREATE INDEX cartons_order ON cartons(order_ref, state);
    CREATE INDEX cartons_shipment ON cartons(shipment);
    CREATE TABLE carton_lines (
        carton  INTEGER NOT NULL REFERENCES cartons(carton) ON DELETE CASCADE,
        sku     TEXT NOT NULL,
        qty     INTEGER NOT NULL CHECK (qty > 0),
        PRIMARY KEY (carton, sku)
    ) STRICT, WITHOUT ROWID;

    -- A confirmed shipment (shipment_confirmed went upstream in the same
    -- transaction); door: where its cartons are expected to leave.
    CREATE TABLE shipments (
        shipment      TEXT PRIMARY KEY,
        order_ref     TEXT NOT NULL UNIQUE,
        door          TEXT,
        confirmed_ms  INTEGER NOT NULL,
        first_seen_ms INTEGER,
        departed_ms   INTEGER,
        purge_at_up   INTEGER
    ) STRICT;

    -- Label print jobs: what was sent to which printer, and whether it went
    -- out; a failed job is re-printable from here.
    CREATE TABLE print_jobs (
        job        INTEGER PRIMARY KEY AUTOINCREMENT,
        printer    TEXT NOT NULL,
        zpl        BLOB NOT NULL,
        cartons    TEXT NOT NULL,
        state      TEXT NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'printed', 'failed')),
        error      TEXT,
        made_ms    INTEGER NOT NULL,
        done_ms    INTEGER
    ) STRICT;

    -- Device messages already confirmed, by the key the message carries
    -- (devices/drivers/mqtt_common.py: packet id, payload digest, index): a
    -- redelivered message is recognised and confirms nothing twice
    -- (edge/shipping/inbox.py). at_ms: box uptime; kept an hour of it.
    CREATE TABLE device_inbox (
        device  TEXT NOT NULL,
        key     TEXT NOT NULL,
        at_ms   INTEGER NOT NULL,
        PRIMARY KEY (device, key)
    ) STRICT, WITHOUT ROWID;
    """,
    # 6: cancels with put-back (issue 12)
    """
    -- Units picked for a task the cloud then cancelled: in the picker's hands
    -- (or tote) until put back into a location. One row per (sku, origin
    -- location, lot); put_back counts what went back so far.
    CREATE TABLE put_backs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        task        TEXT NOT NULL,
        picker      TEXT,
        sku         TEXT NOT NULL,
        origin      TEXT NOT NULL,
        lot         TEXT NOT NULL DEFAULT '',
        qty         INTEGER NOT NULL CHECK (qty > 0),
        put_back    INTEGER NOT NULL DEFAULT 0 CHECK (put_back BETWEEN 0 AND qty),
        created_ms  INTEGER NOT NULL,
        created_up  INTEGER NOT NULL,
        closed_ms   INTEGER
    ) STRICT;
    CREATE INDEX put_backs_open ON put_backs(closed_ms, picker);
    """,
    # 7: cart picking (issue 11): several orders on one tour, one tote each
    """
    -- The orders of a cart tour: each task's slot on the cart and the tote
    -- label bound to it at cart start (NULL until scanned). A tote is bound
    -- to one task of one active tour at a time (checked when it is scanned).
    CREATE TABLE tour_totes (
        tour      INTEGER NOT NULL REFERENCES tours(tour) ON DELETE CASCADE,
        task      TEXT NOT NULL,
        slot      INTEGER NOT NULL CHECK (slot >= 1),
        tote      TEXT,
        bound_ms  INTEGER,
        PRIMARY KEY (tour, task),
        UNIQUE (tour, slot)
    ) STRICT;
    CREATE UNIQUE INDEX tour_totes_label ON tour_totes(tour, tote) WHERE tote IS NOT NULL;
    CREATE INDEX tour_totes_tote ON tour_totes(tote) WHERE tote IS NOT NULL;
    -- the cart label scanned to start the tour (NULL: START, an order or a task)
    ALTER TABLE tours ADD COLUMN cart TEXT;
    """,
    # 8: put-back on the floor (issue 12): units scanned, their location not yet
    """
    ALTER TABLE put_backs ADD COLUMN in_hand INTEGER NOT NULL DEFAULT 0 CHECK (in_hand >= 0);
    """,
    # 9: blind cycle counts (issue 12)
    """
    -- pick (the default) or count: a count tour's stops are locations to count
    ALTER TABLE tours ADD COLUMN kind TEXT NOT NULL DEFAULT 'pick';
    -- A count tour's stop as it is counted: the box's on-hand when counting of
    -- the location began (never shown to the PDA), the units counted so far,
    -- and which attempt this is (a count that differs is counted once more).
    CREATE TABLE count_stops (
        tour      INTEGER NOT NULL REFERENCES tours(tour) ON DELETE CASCADE,
        stop      INTEGER NOT NULL,
        expected  INTEGER,
        counted   INTEGER NOT NULL DEFAULT 0,
        attempt   INTEGER NOT NULL DEFAULT 1,
        -- the last scans rowid before this attempt began: a serialised unit
        -- counts once per attempt (a recount counts it again)
        since_scan INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tour, stop)
    ) STRICT;
    -- Every finished count: inventory accuracy is the share that matched.
    CREATE TABLE count_results (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        task      TEXT NOT NULL,
        location  TEXT NOT NULL,
        sku       TEXT NOT NULL,
        counted   INTEGER NOT NULL,
        expected  INTEGER NOT NULL,
        on_hand   INTEGER NOT NULL,
        attempts  INTEGER NOT NULL,
        matched   INTEGER NOT NULL,
        picker    TEXT,
        at_ms     INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX count_results_at ON count_results(at_ms);
    """,
    # 10: supervisor actions (issue 12): who released, reassigned or adjusted what
    """
    -- Every supervisor action, as it went upstream (supervisor_action): the
    -- action, the supervisor's picker id (ids only, no names: an erasure of a
    -- picker has nothing to remove here), its subject and its detail (JSON).
    CREATE TABLE supervisor_actions (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        action      TEXT NOT NULL,
        by_picker   TEXT NOT NULL,
        subject     TEXT NOT NULL,
        detail      TEXT NOT NULL,
        at_ms       INTEGER NOT NULL,
        at_up       INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX supervisor_actions_at ON supervisor_actions(at_ms);
    """,
    # 11: the exception rate (issue 12): which tasks needed a short, a skip, a
    # cancel or a supervisor's action
    """
    CREATE TABLE task_exceptions (
        task   TEXT NOT NULL,
        kind   TEXT NOT NULL CHECK (kind IN ('short', 'skip', 'cancel', 'supervisor')),
        at_ms  INTEGER NOT NULL,
        PRIMARY KEY (task, kind)
    ) STRICT, WITHOUT ROWID;
    """,
    # 12: walking per unit (issue 11): what a tour was planned to walk, and
    # what its orders would walk picked one per tour on S-shape routes
    """
    ALTER TABLE tours ADD COLUMN planned_m REAL;
    ALTER TABLE tours ADD COLUMN single_s_shape_m REAL;
    ALTER TABLE tours ADD COLUMN planned_units INTEGER;
    """,
    # 13: the devices table written by the device supervisor (issue 13): since
    # when each device is in its state (box wall clock, informational)
    """
    ALTER TABLE devices ADD COLUMN state_since_ms INTEGER;
    """,
    # 14: the dashboard (issue 13): the floor's figures per hour, and who
    # acknowledged an open alert
    """
    -- Per wall-clock hour (hour_ms: its start; figures for people, never for
    -- expiry): scans answered by the PDA API and a histogram of their answer
    -- times (counts per bucket of edge/ops/hours.py SCAN_BUCKETS_MS, JSON),
    -- pick lines confirmed and their units (from the outbox's pick_confirmed).
    -- Filled from memory by the maintenance tick, never per scan; rows more
    -- than 48 h older than the newest are purged.
    CREATE TABLE floor_hours (
        hour_ms    INTEGER PRIMARY KEY,
        scans      INTEGER NOT NULL DEFAULT 0,
        scan_hist  TEXT NOT NULL DEFAULT '[]',
        picks      INTEGER NOT NULL DEFAULT 0,
        units      INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    -- How far the outbox's pick_confirmed events were counted into floor_hours
    -- (one row): the epoch and the last seq read. Events before this schema
    -- are not counted.
    CREATE TABLE floor_hours_mark (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        epoch  TEXT NOT NULL,
        seq    INTEGER NOT NULL
    ) STRICT;
    INSERT INTO floor_hours_mark (id, epoch, seq) SELECT 1, epoch, next_seq - 1 FROM box;
    -- acknowledged on the box (local only: the alert stays open until cleared)
    ALTER TABLE alerts ADD COLUMN acked_by TEXT;
    ALTER TABLE alerts ADD COLUMN acked_ms INTEGER;
    """,
    # 15: retention (issue 13): the box uptime at which an inactive picker and a
    # cleared alert go (edge.maintenance; print jobs go with their cartons)
    """
    ALTER TABLE pickers ADD COLUMN purge_at_up INTEGER;
    ALTER TABLE alerts ADD COLUMN purge_at_up INTEGER;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
