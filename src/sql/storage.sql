-- Storage: insert-only, rotating over a fixed set of child tables (PgQ style).
-- Publication never updates a row: progress is one cursor row (outbox._cursor).

CREATE SEQUENCE outbox._event_seq AS bigint;
COMMENT ON SEQUENCE outbox._event_seq IS 'Publication order of events (seq); UUIDv7 ids are identity only.';

-- Column order is fixed: the C writer (src/storage.c) fills it positionally.
CREATE TABLE outbox.events (
    seq             bigint      NOT NULL,
    xid             xid8        NOT NULL,
    created_at      timestamptz NOT NULL,
    event_id        uuid        NOT NULL,
    root_id         uuid        NOT NULL,
    causation_id    uuid,
    slot            smallint    NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    event_type      text        NOT NULL,
    topic           text        NOT NULL,
    key             text,
    payload         jsonb,
    headers         jsonb,
    traceparent     text
) PARTITION BY LIST (slot);
COMMENT ON TABLE outbox.events IS
  'Outbox storage (read-only for applications): write with outbox.emit() or outbox.capture().';
COMMENT ON COLUMN outbox.events.xid IS 'Top-level transaction id of the emitting transaction (pg_current_xact_id()).';
COMMENT ON COLUMN outbox.events.seq IS 'Sequence number: publication order within a batch.';
COMMENT ON COLUMN outbox.events.created_at IS 'Start time of the emitting transaction (now()).';
COMMENT ON COLUMN outbox.events.slot IS 'Which rotating child table holds the row.';
COMMENT ON COLUMN outbox.events.payload IS 'Message value; NULL is a Kafka tombstone.';

CREATE TABLE outbox.events_0 PARTITION OF outbox.events FOR VALUES IN (0);
CREATE TABLE outbox.events_1 PARTITION OF outbox.events FOR VALUES IN (1);
CREATE TABLE outbox.events_2 PARTITION OF outbox.events FOR VALUES IN (2);

-- xid: the publisher's snapshot-difference batches; seq: paging in order;
-- event_id: event_status() and lookups; root_id: trace(), for events that
-- are not their own root (a root is found by its event_id): most events
-- without an ambient context then cost one index insert less.
CREATE INDEX events_xid_idx ON outbox.events (xid);
CREATE INDEX events_seq_idx ON outbox.events (seq);
CREATE INDEX events_event_id_idx ON outbox.events (event_id);
CREATE INDEX events_root_id_idx ON outbox.events (root_id) WHERE root_id <> event_id;

-- Which child receives inserts. Changing it must go through outbox.purge(),
-- which also invalidates every backend's cached slot.
CREATE TABLE outbox._slots (
    slot            smallint    PRIMARY KEY CHECK (slot BETWEEN 0 AND 2),
    is_current      boolean     NOT NULL,
    switched_in_at  timestamptz,
    switched_out_at timestamptz
);
CREATE UNIQUE INDEX _slots_one_current ON outbox._slots (is_current) WHERE is_current;
INSERT INTO outbox._slots VALUES
    (0, true, now(), NULL),
    (1, false, NULL, now()),
    (2, false, NULL, now());
COMMENT ON TABLE outbox._slots IS 'Rotation state of the outbox child tables (internal).';

-- Publication progress. An event is published when its xid is visible in
-- prev_snap, or visible in cur_snap with seq <= page_seq (the pair being
-- drained), or when seq <= fence_seq (rows from before a reset_cursor()).
-- A row belongs to one cluster and database: rows restored from another
-- (pg_dump, pg_upgrade) are detected by system_identifier/datoid and used by
-- reset_cursor() to requeue what was still pending there.
CREATE TABLE outbox._cursor (
    system_identifier bigint      NOT NULL,
    datoid            oid         NOT NULL,
    installed_at      timestamptz NOT NULL DEFAULT now(),
    prev_snap         pg_snapshot NOT NULL,
    cur_snap          pg_snapshot,
    page_seq          bigint,
    fence_seq         bigint      NOT NULL DEFAULT 0,
    published_total   bigint      NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (system_identifier, datoid)
);
-- Which cursor row is this database's: the cluster's system identifier and
-- the database's OID (both change with pg_dump/restore, pg_upgrade, clones).
CREATE FUNCTION outbox._cursor_identity(OUT system_identifier bigint, OUT datoid oid)
RETURNS record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.system_identifier, d.oid
    FROM pg_control_system() s, pg_database d
    WHERE d.datname = current_database()
$$;

-- Starts at "nothing published yet": if this row ever meets restored events
-- (pg_restore --clean into the same database, where the old row cannot be
-- loaded beside it), they are published again rather than taken as sent.
INSERT INTO outbox._cursor (system_identifier, datoid, prev_snap)
SELECT system_identifier, datoid, '3:3:'::pg_snapshot FROM outbox._cursor_identity();
COMMENT ON TABLE outbox._cursor IS 'Publisher progress (internal); see outbox.reset_cursor().';

CREATE TABLE outbox.dead_letters (
    event_id        uuid        PRIMARY KEY,
    seq             bigint      NOT NULL,
    root_id         uuid        NOT NULL,
    causation_id    uuid,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    event_type      text        NOT NULL,
    topic           text        NOT NULL,
    key             text,
    payload         jsonb,
    headers         jsonb,
    traceparent     text,
    created_at      timestamptz NOT NULL,
    error           text        NOT NULL,
    attempts        integer     NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE outbox.dead_letters IS
  'Events the publisher gave up on after outbox.max_attempts; requeue with outbox.retry_dead().';

-- Local helpers over the cursor. _local_cursor() is this database's row (or
-- an empty "nothing published" one); _published() applies the rule above.
CREATE FUNCTION outbox._local_cursor()
RETURNS TABLE (prev_snap pg_snapshot, cur_snap pg_snapshot, page_seq bigint,
               fence_seq bigint, published_total bigint, foreign_rows bigint)
LANGUAGE sql STABLE SECURITY DEFINER ROWS 1 SET search_path = pg_catalog, pg_temp
AS $$
    WITH me AS (SELECT system_identifier AS sysid, datoid FROM outbox._cursor_identity())
    SELECT coalesce(c.prev_snap, '3:3:'::pg_snapshot), c.cur_snap, c.page_seq,
           coalesce(c.fence_seq, 0), coalesce(c.published_total, 0),
           (SELECT count(*) FROM outbox._cursor o, me
             WHERE (o.system_identifier, o.datoid) <> (me.sysid, me.datoid))
    FROM me LEFT JOIN outbox._cursor c
      ON (c.system_identifier, c.datoid) = (me.sysid, me.datoid)
$$;

CREATE FUNCTION outbox._published(xid xid8, seq bigint, prev_snap pg_snapshot,
                                  cur_snap pg_snapshot, page_seq bigint, fence_seq bigint)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT seq <= fence_seq
        OR pg_visible_in_snapshot(xid, prev_snap)
        OR (cur_snap IS NOT NULL AND pg_visible_in_snapshot(xid, cur_snap) AND seq <= page_seq)
$$;

-- pg_dump keeps events, dead letters, processed records and the cursor (see
-- outbox.reset_cursor() for what a restored database needs). The rotation
-- state is recreated by CREATE EXTENSION.
SELECT pg_catalog.pg_extension_config_dump('outbox.events_0', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.events_1', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.events_2', '');
SELECT pg_catalog.pg_extension_config_dump('outbox._event_seq', '');
SELECT pg_catalog.pg_extension_config_dump('outbox._cursor', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.dead_letters', '');
