-- outbox_ext install script, assembled from src/sql/*.sql by the Makefile.
\echo Use "CREATE EXTENSION outbox_ext" to load this file. \quit

COMMENT ON SCHEMA outbox IS 'outbox_ext: transactional outbox, idempotent consumers, saga trace';
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
-- Emitting events and the ambient process context.

CREATE FUNCTION outbox.emit(aggregate_type text, aggregate_id text, event_type text,
                            payload jsonb, headers jsonb DEFAULT NULL,
                            topic text DEFAULT NULL, key text DEFAULT NULL)
RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_emit';
COMMENT ON FUNCTION outbox.emit(text, text, text, jsonb, jsonb, text, text) IS
  'Append one event in the current transaction; returns its UUIDv7 event id. NULL payload = tombstone.';

CREATE FUNCTION outbox.set_context(root_id uuid, causation_id uuid DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_set_context';
COMMENT ON FUNCTION outbox.set_context(uuid, uuid) IS
  'Stamp events emitted later in this transaction with this root id and causation id.';

CREATE FUNCTION outbox.current_root()
RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_current_root';
COMMENT ON FUNCTION outbox.current_root() IS
  'Root id of the ambient context of this transaction, or NULL when none is set.';
-- Change capture: statement-level triggers with transition tables.

CREATE FUNCTION outbox._capture_trigger()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'outbox_capture_trigger';
COMMENT ON FUNCTION outbox._capture_trigger() IS
  'Trigger installed by outbox.capture(); args: aggregate type, id column(s).';

CREATE FUNCTION outbox._resolve_topic(aggregate_type text, event_type text)
RETURNS text
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'outbox_resolve_topic_sql';
COMMENT ON FUNCTION outbox._resolve_topic(text, text) IS
  'Topic outbox.emit() would use for this aggregate and event type; raises if it is not valid or allowed.';

CREATE FUNCTION outbox.capture(tbl regclass, aggregate_type text DEFAULT NULL,
                               id_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel         record;
    agg         text;
    cols        name[];
    args        text;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'tbl must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT c.relname, c.relkind, c.relowner, c.relispartition,
           EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) AS is_child
      INTO rel FROM pg_class c WHERE c.oid = tbl;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '42809',
            HINT = 'Only ordinary and partitioned tables can be captured.';
    END IF;
    IF NOT pg_has_role(current_user, rel.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = '42501',
            HINT = 'Run outbox.capture() as the table''s owner.';
    END IF;
    IF rel.is_child THEN
        RAISE EXCEPTION 'table % is a partition or inheritance child', tbl USING ERRCODE = '0A000',
            HINT = 'Capture the parent table: statements that target the parent do not fire a child''s statement triggers, so changes would be missed.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger t
               WHERE t.tgrelid = tbl AND t.tgfoid = 'outbox._capture_trigger()'::regprocedure) THEN
        RAISE EXCEPTION 'table % is already captured', tbl USING ERRCODE = '42710',
            HINT = 'Run outbox.uncapture() first to change its settings.';
    END IF;

    agg := coalesce(aggregate_type, rel.relname);
    IF agg = '' THEN
        RAISE EXCEPTION 'aggregate_type must not be empty' USING ERRCODE = '22023';
    END IF;

    IF id_column IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = tbl AND a.attname = id_column
                         AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of table % does not exist', id_column, tbl
                USING ERRCODE = '42703';
        END IF;
        cols := ARRAY[id_column];
    ELSE
        SELECT array_agg(a.attname ORDER BY k.ord) INTO cols
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = tbl AND i.indisprimary;
        IF cols IS NULL THEN
            RAISE EXCEPTION 'table % has no primary key', tbl USING ERRCODE = '42P10',
                HINT = 'Pass id_column => the column that identifies the aggregate.';
        END IF;
    END IF;

    -- Refuse now, not at the first write, an aggregate type that gives a bad topic.
    PERFORM outbox._resolve_topic(agg, agg || s) FROM unnest(ARRAY['Created','Updated','Deleted','Truncated']) s;

    SELECT string_agg(quote_literal(x), ', ') INTO args FROM unnest(agg || cols::text[]) x;
    EXECUTE format('CREATE TRIGGER outbox_capture_insert AFTER INSERT ON %s '
                   'REFERENCING NEW TABLE AS outbox_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION outbox._capture_trigger(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER outbox_capture_update AFTER UPDATE ON %s '
                   'REFERENCING OLD TABLE AS outbox_old NEW TABLE AS outbox_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION outbox._capture_trigger(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER outbox_capture_delete AFTER DELETE ON %s '
                   'REFERENCING OLD TABLE AS outbox_old FOR EACH STATEMENT '
                   'EXECUTE FUNCTION outbox._capture_trigger(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER outbox_capture_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION outbox._capture_trigger(%s)', tbl, args);
END
$$;
COMMENT ON FUNCTION outbox.capture(regclass, text, name) IS
  'Emit <aggregate_type>Created/Updated/Deleted/Truncated events for every change of the table (owner only).';

CREATE FUNCTION outbox.uncapture(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t name;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'tbl must not be null' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger g
                   WHERE g.tgrelid = tbl AND g.tgfoid = 'outbox._capture_trigger()'::regprocedure) THEN
        RAISE EXCEPTION 'table % is not captured', tbl USING ERRCODE = '42704';
    END IF;
    FOR t IN SELECT g.tgname FROM pg_trigger g
             WHERE g.tgrelid = tbl AND g.tgfoid = 'outbox._capture_trigger()'::regprocedure
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, tbl);
    END LOOP;
END
$$;
COMMENT ON FUNCTION outbox.uncapture(regclass) IS 'Stop capturing changes of the table.';

-- Derived from the triggers themselves: no second copy of the settings to drift.
CREATE VIEW outbox.captured_tables AS
SELECT t.tgrelid::regclass AS tbl,
       a.args[1] AS aggregate_type,
       a.args[2:array_length(a.args, 1)]::name[] AS id_columns
FROM pg_trigger t
CROSS JOIN LATERAL (
    -- tgargs is NUL-separated bytea; each part is unescaped back to text.
    SELECT array_agg(convert_from(decode(part, 'escape'), current_setting('server_encoding'))
                     ORDER BY n) AS args
    FROM unnest(string_to_array(encode(t.tgargs, 'escape'), '\000')) WITH ORDINALITY AS p(part, n)
    WHERE part <> ''
) a
WHERE t.tgfoid = 'outbox._capture_trigger()'::regprocedure
  AND t.tgname = 'outbox_capture_insert';
COMMENT ON VIEW outbox.captured_tables IS 'Tables captured by outbox.capture(), with their settings.';
-- Idempotent consumers: one record per (consumer, event) and per (consumer, root).

CREATE TABLE outbox.processed_messages (
    consumer      text        NOT NULL CHECK (consumer <> ''),
    event_id      uuid        NOT NULL,
    root_id       uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_messages_root_id_idx ON outbox.processed_messages (root_id);
-- Rows arrive in processed_at order: a BRIN index makes retention cheap to find.
CREATE INDEX processed_messages_processed_at_idx ON outbox.processed_messages USING brin (processed_at);
COMMENT ON TABLE outbox.processed_messages IS
  'Messages each consumer has processed; written by outbox.try_process(). Kept for outbox.processed_retention.';

CREATE TABLE outbox.processed_roots (
    consumer      text        NOT NULL CHECK (consumer <> ''),
    root_id       uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, root_id)
);
CREATE INDEX processed_roots_processed_at_idx ON outbox.processed_roots USING brin (processed_at);
COMMENT ON TABLE outbox.processed_roots IS
  'Process roots each consumer has handled; written by outbox.try_process_root().';

SELECT pg_catalog.pg_extension_config_dump('outbox.processed_messages', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.processed_roots', '');

CREATE FUNCTION outbox.try_process(consumer text, event_id uuid, root_id uuid DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_try_process';
COMMENT ON FUNCTION outbox.try_process(text, uuid, uuid) IS
  'True the first time this consumer sees the event (and sets the ambient context), false afterwards.';

CREATE FUNCTION outbox.try_process_root(consumer text, root_id uuid)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_try_process_root';
COMMENT ON FUNCTION outbox.try_process_root(text, uuid) IS
  'True the first time this consumer sees the process root, false afterwards.';
-- Publisher support: cursor moves and the worker's state from shared memory.

-- Called by the publisher once every message of a page is acknowledged.
CREATE FUNCTION outbox._advance_cursor(prev pg_snapshot, cur pg_snapshot, page_seq bigint, published bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO outbox._cursor AS c (system_identifier, datoid, prev_snap, cur_snap, page_seq, published_total)
    SELECT i.system_identifier, i.datoid, prev, cur, page_seq, published
    FROM outbox._cursor_identity() i
    ON CONFLICT (system_identifier, datoid) DO UPDATE
       SET prev_snap = excluded.prev_snap, cur_snap = excluded.cur_snap,
           page_seq = excluded.page_seq,
           published_total = c.published_total + excluded.published_total,
           updated_at = now()
$$;

CREATE FUNCTION outbox._worker_info(OUT pid integer, OUT state text, OUT last_error text,
                                    OUT last_error_at timestamptz)
RETURNS record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'outbox_worker_info';
COMMENT ON FUNCTION outbox._worker_info() IS
  'The publisher worker of this database as shared memory knows it (internal).';

-- Parked events: Kafka refused them permanently (e.g. topic authorization
-- failed). The cursor moves past them; they wait here, holding back the later
-- events of their key (topic + key), and are retried with backoff until
-- outbox.max_attempts, then become dead letters and release their key.
CREATE TABLE outbox._parked (
    seq             bigint      PRIMARY KEY,
    event_id        uuid        NOT NULL,
    topic           text        NOT NULL,
    key             text        NOT NULL,
    attempts        integer     NOT NULL,
    next_attempt_at timestamptz NOT NULL,  -- 'infinity': waiting behind an earlier event of its key
    last_error      text,
    parked_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX _parked_key_idx ON outbox._parked (topic, key, seq);
CREATE INDEX _parked_due_idx ON outbox._parked (next_attempt_at);
COMMENT ON TABLE outbox._parked IS 'Events Kafka refused, retried with backoff (internal).';
SELECT pg_catalog.pg_extension_config_dump('outbox._parked', '');

-- Delay after n attempts: 1 s after the first, then 2 s, 4 s ... at most 5 minutes.
CREATE FUNCTION outbox._backoff(attempts integer)
RETURNS interval
LANGUAGE sql IMMUTABLE
AS $$ SELECT least(power(2, greatest(attempts - 1, 0)), 300) * interval '1 second' $$;

-- Park one event: the head of its key is retried after a backoff; one
-- behind another parked event of its key waits until that one is resolved.
-- An event refused as often as outbox.max_attempts allows goes straight to
-- the dead letters (through _parked_failed, so its key is released in order).
CREATE FUNCTION outbox._park(p_seq bigint, p_event_id uuid, p_topic text, p_key text,
                             p_attempts integer, p_error text, p_max_attempts integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO outbox._parked (seq, event_id, topic, key, attempts, next_attempt_at, last_error)
    VALUES (p_seq, p_event_id, p_topic, p_key, p_attempts,
            CASE WHEN EXISTS (SELECT 1 FROM outbox._parked k
                              WHERE k.topic = p_topic AND k.key = p_key AND k.seq < p_seq)
                 THEN 'infinity'::timestamptz
                 ELSE now() + outbox._backoff(p_attempts) END,
            p_error)
    ON CONFLICT (seq) DO NOTHING;
    IF p_attempts > 0 AND p_attempts >= p_max_attempts THEN
        -- Counted already: record it as dead without another attempt.
        UPDATE outbox._parked SET attempts = attempts - 1 WHERE seq = p_seq;
        PERFORM outbox._parked_failed(p_seq, p_error, true, p_max_attempts);
    END IF;
END
$$;

-- The next parked event of a key becomes due once the one before it is gone.
CREATE FUNCTION outbox._release_key(p_topic text, p_key text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE outbox._parked SET next_attempt_at = now()
    WHERE seq = (SELECT min(seq) FROM outbox._parked WHERE topic = p_topic AND key = p_key)
      AND next_attempt_at = 'infinity'
$$;

-- A parked event was delivered.
CREATE FUNCTION outbox._parked_delivered(p_seq bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p outbox._parked;
BEGIN
    DELETE FROM outbox._parked WHERE seq = p_seq RETURNING * INTO p;
    IF FOUND THEN
        UPDATE outbox._cursor SET published_total = published_total + 1
        WHERE (system_identifier, datoid) =
              (SELECT i.system_identifier, i.datoid FROM outbox._cursor_identity() i);
        PERFORM outbox._release_key(p.topic, p.key);
    END IF;
END
$$;

-- A parked event was refused again (permanent = counts as an attempt).
-- Returns true when it became a dead letter.
CREATE FUNCTION outbox._parked_failed(p_seq bigint, p_error text, p_permanent boolean,
                                      p_max_attempts integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p outbox._parked;
BEGIN
    UPDATE outbox._parked
       SET attempts = attempts + CASE WHEN p_permanent THEN 1 ELSE 0 END,
           last_error = p_error,
           next_attempt_at = now() + CASE WHEN p_permanent THEN outbox._backoff(attempts + 1)
                                          ELSE interval '1 second' END
     WHERE seq = p_seq RETURNING * INTO p;
    IF NOT FOUND OR p.attempts < p_max_attempts THEN
        RETURN false;
    END IF;
    INSERT INTO outbox.dead_letters (event_id, seq, root_id, causation_id, aggregate_type,
                                     aggregate_id, event_type, topic, key, payload, headers,
                                     traceparent, created_at, error, attempts, failed_at)
    SELECT e.event_id, e.seq, e.root_id, e.causation_id, e.aggregate_type, e.aggregate_id,
           e.event_type, e.topic, e.key, e.payload, e.headers, e.traceparent, e.created_at,
           p.last_error, p.attempts, now()
    FROM outbox.events e WHERE e.seq = p_seq
    ON CONFLICT (event_id) DO UPDATE
       SET seq = excluded.seq, error = excluded.error, attempts = excluded.attempts,
           failed_at = excluded.failed_at;
    DELETE FROM outbox._parked WHERE seq = p_seq;
    PERFORM outbox._release_key(p.topic, p.key);
    RETURN true;
END
$$;
-- Status: what is pending, published and dead, and the publisher worker.

CREATE VIEW outbox.status AS
SELECT
    (SELECT count(*) FROM outbox.events e
      WHERE e.xid >= pg_snapshot_xmin(c.prev_snap)
        AND NOT outbox._published(e.xid, e.seq, c.prev_snap, c.cur_snap, c.page_seq, c.fence_seq)
    )::bigint + (SELECT count(*) FROM outbox._parked) AS pending,
    (SELECT now() - min(e.created_at) FROM outbox.events e
      WHERE e.xid >= pg_snapshot_xmin(c.prev_snap)
        AND NOT outbox._published(e.xid, e.seq, c.prev_snap, c.cur_snap, c.page_seq, c.fence_seq)
    ) AS oldest_pending_age,
    c.published_total AS published,
    (SELECT count(*) FROM outbox.dead_letters)::bigint AS dead,
    w.pid AS worker_pid,
    w.state AS worker_state,
    CASE WHEN c.foreign_rows > 0
         THEN 'outbox data was restored from another cluster or database: run outbox.reset_cursor()'
         ELSE w.last_error
    END AS last_error,
    w.last_error_at,
    (SELECT s.slot FROM outbox._slots s WHERE s.is_current) AS current_slot,
    (SELECT count(*) FROM outbox._parked)::bigint AS parked,
    c.foreign_rows = 0 AS cursor_ok
FROM outbox._local_cursor() c, outbox._worker_info() w;
COMMENT ON VIEW outbox.status IS 'One row: the outbox of this database at a glance.';

CREATE FUNCTION outbox.event_status(event_id uuid)
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM outbox.dead_letters d WHERE d.event_id = $1) THEN 'dead'
        WHEN e.seq IS NULL THEN 'unknown'
        WHEN EXISTS (SELECT 1 FROM outbox._parked p WHERE p.seq = e.seq) THEN 'pending'
        WHEN outbox._published(e.xid, e.seq, c.prev_snap, c.cur_snap, c.page_seq, c.fence_seq)
            THEN 'published'
        ELSE 'pending'
    END
    FROM outbox._local_cursor() c
    LEFT JOIN LATERAL (
        -- The newest copy counts: retry_dead() and reset_cursor() requeue under the same id.
        SELECT e.seq, e.xid FROM outbox.events e
        WHERE e.event_id = $1 ORDER BY e.seq DESC LIMIT 1
    ) e ON true
$$;
COMMENT ON FUNCTION outbox.event_status(uuid) IS
  'pending | published | dead | unknown (never emitted, rolled back, or purged).';
-- Saga trace: the tree of events of one process root.

CREATE FUNCTION outbox.trace(root_id uuid)
RETURNS TABLE (event_id uuid, causation_id uuid, depth integer, event_type text,
               aggregate_type text, aggregate_id text, status text,
               created_at timestamptz, processed_by text[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE
    cur AS (SELECT * FROM outbox._local_cursor()),
    -- Events emitted here (the newest copy of each id) ...
    local_events AS (
        SELECT DISTINCT ON (e.event_id)
               e.event_id, e.causation_id, e.event_type, e.aggregate_type, e.aggregate_id,
               CASE WHEN EXISTS (SELECT 1 FROM outbox.dead_letters d WHERE d.event_id = e.event_id)
                        THEN 'dead'
                    WHEN EXISTS (SELECT 1 FROM outbox._parked p WHERE p.seq = e.seq)
                        THEN 'pending'
                    WHEN outbox._published(e.xid, e.seq, c.prev_snap, c.cur_snap, c.page_seq, c.fence_seq)
                        THEN 'published'
                    ELSE 'pending' END AS status,
               e.created_at, e.seq
        FROM (SELECT * FROM outbox.events x             -- by the partial root_id index
              WHERE x.root_id = $1 AND x.root_id <> x.event_id
              UNION ALL
              SELECT * FROM outbox.events x             -- the root itself, by event_id
              WHERE x.event_id = $1 AND x.root_id = x.event_id) e, cur c
        ORDER BY e.event_id, e.seq DESC),
    -- ... and events of this process emitted elsewhere but processed here.
    nodes AS (
        SELECT * FROM local_events
        UNION ALL
        SELECT p.event_id, NULL, NULL, NULL, NULL, 'external', min(p.processed_at), NULL
        FROM outbox.processed_messages p
        WHERE p.root_id = $1
          AND NOT EXISTS (SELECT 1 FROM local_events l WHERE l.event_id = p.event_id)
        GROUP BY p.event_id),
    -- Siblings in time order; seq breaks ties between events of one transaction.
    keyed AS (
        SELECT n.*, to_char(n.created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS')
                    || lpad(coalesce(n.seq, 0)::text, 20, '0') AS sort_key
        FROM nodes n),
    tree AS (
        SELECT n.*, 0 AS depth, ARRAY[n.event_id] AS path, ARRAY[n.sort_key] AS sort_path
        FROM keyed n
        WHERE n.causation_id IS NULL
           OR NOT EXISTS (SELECT 1 FROM keyed p WHERE p.event_id = n.causation_id)
        UNION ALL
        SELECT n.*, t.depth + 1, t.path || n.event_id, t.sort_path || n.sort_key
        FROM keyed n JOIN tree t ON n.causation_id = t.event_id
        WHERE n.event_id <> ALL (t.path))
    SELECT t.event_id, t.causation_id, t.depth, t.event_type, t.aggregate_type, t.aggregate_id,
           t.status, t.created_at,
           coalesce((SELECT array_agg(p.consumer ORDER BY p.consumer)
                     FROM outbox.processed_messages p
                     WHERE p.root_id = $1 AND p.event_id = t.event_id), '{}')
    FROM tree t
    ORDER BY t.sort_path
$$;
COMMENT ON FUNCTION outbox.trace(uuid) IS
  'Event tree of one process root, parents before children, with who processed each event.';
-- Maintenance: retention by rotation, dead-letter requeue, cursor reset.

CREATE FUNCTION outbox._invalidate_slot_cache()
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'outbox_invalidate_slot_cache';
COMMENT ON FUNCTION outbox._invalidate_slot_cache() IS
  'Make every backend re-read the current slot after this transaction commits (internal).';

-- Truncate one non-current child if that is safe now; returns rows removed
-- or NULL when it is not (yet) safe. Safe means: the lock was free (no
-- transaction that wrote to it is still open, and none can write while we
-- hold it), and every row in it is published.
CREATE FUNCTION outbox._truncate_slot(s smallint, older_than interval)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tbl     text := format('outbox.events_%s', s);
    c       record;
    max_xid xid8;
    max_seq bigint;
    n       bigint;
    parked  boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM outbox._slots
                   WHERE slot = s AND NOT is_current
                     AND switched_out_at <= now() - older_than) THEN
        RETURN NULL;
    END IF;
    BEGIN
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', tbl);
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;            -- a writer or reader is busy with it: try next time
    END;
    -- With the lock held, a fresh statement snapshot sees every row the child holds.
    EXECUTE format('SELECT max(xid), max(seq), count(*) FROM %s', tbl) INTO max_xid, max_seq, n;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    SELECT * INTO c FROM outbox._local_cursor();
    IF c.foreign_rows > 0 THEN
        RETURN NULL;            -- restored data: nothing is known to be published
    END IF;
    IF NOT (max_seq <= c.fence_seq OR max_xid < pg_snapshot_xmin(c.prev_snap)) THEN
        RETURN NULL;            -- something in it is not published yet
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM outbox._parked p JOIN %s e ON e.seq = p.seq)', tbl)
       INTO parked;
    IF parked THEN
        RETURN NULL;            -- a parked event still needs its row
    END IF;
    EXECUTE format('TRUNCATE %s', tbl);
    RETURN n;
END
$$;

CREATE FUNCTION outbox.purge(older_than interval DEFAULT NULL)
RETURNS TABLE (events bigint, processed bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev_keep   interval;
    pr_keep   interval;
    cur       smallint;
    nxt       smallint;
    removed   bigint := 0;
    r         bigint;
    s         smallint;
    pass      integer;
BEGIN
    -- Calling into the library loads it, and with it the outbox.* settings.
    PERFORM outbox.current_root();
    ev_keep := coalesce(older_than, current_setting('outbox.retention')::interval);
    pr_keep := coalesce(older_than, current_setting('outbox.processed_retention')::interval);
    IF ev_keep < interval '0' OR pr_keep < interval '0' THEN
        RAISE EXCEPTION 'retention must not be negative' USING ERRCODE = '22023';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'outbox.purge() must run at READ COMMITTED isolation'
            USING ERRCODE = '25000',
                  HINT = 'It decides what is safe to remove from fresh snapshots taken under locks.';
    END IF;
    -- One purge at a time; emits only read _slots and are not blocked.
    LOCK TABLE outbox._slots IN EXCLUSIVE MODE;

    -- Pass 1 truncates old children; between the passes the current child is
    -- rotated out when it is old enough and the next one is empty; pass 2
    -- lets a zero retention remove what was just rotated out.
    FOR pass IN 1..2 LOOP
        FOR s IN SELECT slot FROM outbox._slots WHERE NOT is_current ORDER BY switched_out_at LOOP
            r := outbox._truncate_slot(s, ev_keep);
            removed := removed + coalesce(r, 0);
        END LOOP;
        EXIT WHEN pass = 2;

        SELECT slot INTO cur FROM outbox._slots WHERE is_current;
        nxt := (cur + 1) % 3;
        IF (SELECT switched_in_at <= now() - ev_keep / 2 FROM outbox._slots WHERE slot = cur)
           AND EXISTS (SELECT 1 FROM outbox.events WHERE slot = cur)
           AND NOT EXISTS (SELECT 1 FROM outbox.events WHERE slot = nxt) THEN
            UPDATE outbox._slots SET is_current = false, switched_out_at = now()
             WHERE slot = cur;
            UPDATE outbox._slots SET is_current = true, switched_in_at = now(), switched_out_at = NULL
             WHERE slot = nxt;
            PERFORM outbox._invalidate_slot_cache();
        ELSE
            EXIT;
        END IF;
    END LOOP;

    events := removed;
    DELETE FROM outbox.processed_messages p WHERE p.processed_at < now() - pr_keep;
    GET DIAGNOSTICS processed = ROW_COUNT;
    DELETE FROM outbox.processed_roots p WHERE p.processed_at < now() - pr_keep;
    GET DIAGNOSTICS r = ROW_COUNT;
    processed := processed + r;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION outbox.purge(interval) IS
  'Remove published events (by truncating rotated child tables) and processed records older than the retention.';

-- Requeue as a new event row with the same id and contents, published after
-- the events that overtook it while it was dead.
CREATE FUNCTION outbox._requeue(d outbox.dead_letters)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO outbox.events (seq, xid, created_at, event_id, root_id, causation_id, slot,
                               aggregate_type, aggregate_id, event_type, topic, key,
                               payload, headers, traceparent)
    SELECT nextval('outbox._event_seq'), pg_current_xact_id(), d.created_at, d.event_id,
           d.root_id, d.causation_id, s.slot, d.aggregate_type, d.aggregate_id, d.event_type,
           d.topic, d.key, d.payload, d.headers, d.traceparent
    FROM outbox._slots s WHERE s.is_current
$$;

CREATE FUNCTION outbox.retry_dead(event_id uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d outbox.dead_letters;
    n bigint := 0;
BEGIN
    -- In their original order, so events of one key keep theirs.
    FOR d IN SELECT * FROM outbox.dead_letters x
             WHERE retry_dead.event_id IS NULL OR x.event_id = retry_dead.event_id
             ORDER BY x.seq FOR UPDATE
    LOOP
        DELETE FROM outbox.dead_letters x WHERE x.event_id = d.event_id;
        PERFORM outbox._requeue(d);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION outbox.retry_dead(uuid) IS
  'Requeue one dead letter (or all with NULL); returns how many. They publish after newer events of their key.';

-- The current snapshot, but with this transaction counted as still running,
-- so the rows it writes are not taken as published by a cursor set to it.
CREATE FUNCTION outbox._snapshot_with_self_running()
RETURNS pg_snapshot
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS (SELECT pg_current_snapshot() AS snap, pg_current_xact_id_if_assigned() AS me)
    SELECT CASE
        WHEN s.me IS NULL OR s.me >= pg_snapshot_xmax(s.snap) THEN s.snap
        ELSE (least(pg_snapshot_xmin(s.snap), s.me)::text || ':' || pg_snapshot_xmax(s.snap)::text || ':'
              || (SELECT string_agg(x::text, ',' ORDER BY x)
                  FROM (SELECT pg_snapshot_xip(s.snap) AS x UNION SELECT s.me) u))::pg_snapshot
    END
    FROM s
$$;

CREATE FUNCTION outbox.reset_cursor(requeue_pending boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me_sysid  bigint;
    me_dat    oid;
    old       outbox._cursor;
    have_old  boolean;
    fence     bigint;
    n         bigint := 0;
BEGIN
    SELECT i.system_identifier, i.datoid INTO me_sysid, me_dat FROM outbox._cursor_identity() i;
    -- No emit may run while the fence is drawn.
    LOCK TABLE outbox.events IN EXCLUSIVE MODE;
    LOCK TABLE outbox._cursor IN EXCLUSIVE MODE;

    -- The cursor the rows were written under: a restored one if any, else ours.
    SELECT * INTO old FROM outbox._cursor
    ORDER BY (system_identifier, datoid) = (me_sysid, me_dat), updated_at DESC LIMIT 1;
    have_old := FOUND;
    SELECT coalesce(max(seq), 0) INTO fence FROM outbox.events;

    IF requeue_pending AND have_old THEN
        -- Pending under the old cursor, or written here after the restore
        -- (their xids belong to this cluster, not to the old cursor).
        INSERT INTO outbox.events (seq, xid, created_at, event_id, root_id, causation_id, slot,
                                   aggregate_type, aggregate_id, event_type, topic, key,
                                   payload, headers, traceparent)
        SELECT nextval('outbox._event_seq'), pg_current_xact_id(), e.created_at, e.event_id,
               e.root_id, e.causation_id, s.slot, e.aggregate_type, e.aggregate_id, e.event_type,
               e.topic, e.key, e.payload, e.headers, e.traceparent
        FROM (SELECT DISTINCT ON (e.event_id) e.* FROM outbox.events e
              WHERE e.seq <= fence ORDER BY e.event_id, e.seq DESC) e,
             outbox._slots s
        WHERE s.is_current
          AND NOT EXISTS (SELECT 1 FROM outbox.dead_letters dl WHERE dl.event_id = e.event_id)
          AND (e.created_at >= (SELECT c.installed_at FROM outbox._cursor c
                                 WHERE (c.system_identifier, c.datoid) = (me_sysid, me_dat))
                               AND (old.system_identifier, old.datoid) <> (me_sysid, me_dat)
               OR NOT outbox._published(e.xid, e.seq, old.prev_snap, old.cur_snap,
                                        old.page_seq, old.fence_seq))
        ORDER BY e.seq;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;

    DELETE FROM outbox._cursor WHERE (system_identifier, datoid) <> (me_sysid, me_dat);
    INSERT INTO outbox._cursor AS c (system_identifier, datoid, prev_snap, fence_seq)
    VALUES (me_sysid, me_dat, outbox._snapshot_with_self_running(), fence)
    ON CONFLICT (system_identifier, datoid) DO UPDATE
       SET prev_snap = excluded.prev_snap, cur_snap = NULL, page_seq = NULL,
           fence_seq = excluded.fence_seq, updated_at = now();
    RETURN n;
END
$$;
COMMENT ON FUNCTION outbox.reset_cursor(boolean) IS
  'After pg_dump/restore, pg_upgrade or a clone: start publishing afresh; requeues events that were pending (returns how many).';
-- Privileges: nothing for PUBLIC but the schema's name. Application roles get
-- EXECUTE on what they call (doc/privileges.md); nobody but the owner may
-- write the storage or the processed records directly.

REVOKE ALL ON ALL TABLES IN SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA outbox FROM PUBLIC;
GRANT USAGE ON SCHEMA outbox TO PUBLIC;

-- Harmless helpers that views and functions evaluate as the caller.
GRANT EXECUTE ON FUNCTION outbox._published(xid8, bigint, pg_snapshot, pg_snapshot, bigint, bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION outbox.current_root() TO PUBLIC;
-- Views evaluate functions with the caller's EXECUTE right; this one only reports progress.
GRANT EXECUTE ON FUNCTION outbox._local_cursor() TO PUBLIC;
GRANT EXECUTE ON FUNCTION outbox._worker_info() TO PUBLIC;
