-- Inbox: Kafka topics consumed into SQL handlers, once in effect. Written by
-- the inbox workers (src/inbox_*.c); subscriptions are managed through
-- subscribe()/unsubscribe(), which check the caller's rights in C. Names are
-- compared byte-wise (COLLATE "C"): they are identifiers, and the workers
-- look them up on every batch.

CREATE TABLE outbox._subscriptions (
    consumer    text        COLLATE "C" PRIMARY KEY
                CHECK (consumer ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'),
    topics      text[]      NOT NULL CHECK (cardinality(topics) > 0),
    -- Fully qualified text, not regprocedure: pg_upgrade refuses reg* columns other
    -- than regclass/regrole/regtype, and a re-created function keeps working.
    handler     text        NOT NULL,
    run_as      regrole     NOT NULL,
    group_id    text        NOT NULL CHECK (group_id <> ''),
    options     jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE outbox._subscriptions IS
  'Inbox subscriptions; managed by outbox.subscribe() and outbox.unsubscribe().';

-- The next offset to consume, per partition: the truth. Kafka's committed
-- offsets are written after it, for information only.
CREATE TABLE outbox.inbox_offsets (
    consumer    text        COLLATE "C" NOT NULL,
    topic       text        COLLATE "C" NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    processed   bigint      NOT NULL DEFAULT 0,    -- handler calls committed for this partition
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition)
);
COMMENT ON TABLE outbox.inbox_offsets IS
  'Next offset each inbox consumer reads per partition, stored in the transaction that handled the messages before it.';

CREATE TABLE outbox.inbox_dead_letters (
    consumer    text        COLLATE "C" NOT NULL,
    topic       text        COLLATE "C" NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    event_id    uuid        NOT NULL,
    event       jsonb       NOT NULL,
    error       text        NOT NULL,
    sqlstate    text,
    attempts    integer     NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, topic, partition, "offset")
);
CREATE INDEX inbox_dead_letters_event_id_idx ON outbox.inbox_dead_letters (consumer, event_id);
COMMENT ON TABLE outbox.inbox_dead_letters IS
  'Messages whose handler kept failing; outbox.retry_inbox_dead() runs the handler on them again.';

SELECT pg_catalog.pg_extension_config_dump('outbox._subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.inbox_offsets', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.inbox_dead_letters', '');

CREATE FUNCTION outbox.subscribe(consumer text, topics text[], handler regprocedure,
                                 options jsonb DEFAULT '{}')
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_subscribe';
COMMENT ON FUNCTION outbox.subscribe(text, text[], regprocedure, jsonb) IS
  'Consume these Kafka topics into handler(event jsonb), once per message, as the calling role.';

CREATE FUNCTION outbox.unsubscribe(consumer text, forget boolean DEFAULT false)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_unsubscribe';
COMMENT ON FUNCTION outbox.unsubscribe(text, boolean) IS
  'Stop a subscription; forget => also drop its stored offsets and dead letters.';

CREATE FUNCTION outbox.retry_inbox_dead(consumer text, event_id uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_retry_inbox_dead';
COMMENT ON FUNCTION outbox.retry_inbox_dead(text, uuid) IS
  'Run the handler again on one or all dead-lettered messages of a consumer, in the caller''s transaction.';

CREATE FUNCTION outbox.inbox_message_id(topic text, "partition" integer, "offset" bigint)
RETURNS uuid
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
AS 'MODULE_PATHNAME', 'outbox_inbox_message_id';
COMMENT ON FUNCTION outbox.inbox_message_id(text, integer, bigint) IS
  'The dedup id of a message without an id header: UUIDv5 (URL namespace) of kafka:///<topic>/<partition>/<offset>.';

CREATE FUNCTION outbox._inbox_workers(OUT consumer text, OUT worker integer, OUT pid integer,
                                      OUT state text, OUT partitions jsonb, OUT processed bigint,
                                      OUT last_error text, OUT last_error_at timestamptz)
RETURNS SETOF record
LANGUAGE c VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'outbox_inbox_workers';
COMMENT ON FUNCTION outbox._inbox_workers() IS
  'The inbox workers of this database as shared memory knows them, for outbox.subscriptions.';

CREATE VIEW outbox.subscriptions AS
SELECT s.consumer,
       s.topics,
       s.handler,
       s.run_as,
       s.group_id,
       s.options,
       coalesce((SELECT string_agg(DISTINCT w.state, ',') FROM outbox._inbox_workers() w
                 WHERE w.consumer = s.consumer), 'not_running') AS state,
       (SELECT array_agg(w.pid ORDER BY w.worker) FROM outbox._inbox_workers() w
         WHERE w.consumer = s.consumer AND w.pid IS NOT NULL) AS worker_pids,
       -- Per partition: the committed next offset (the database's), and the lag
       -- behind the high watermark the assigned worker last saw.
       (SELECT jsonb_agg(jsonb_build_object(
                   'topic', o.topic, 'partition', o.partition,
                   'committed_offset', o.next_offset,
                   'assigned', l.p IS NOT NULL,
                   'high_watermark', (l.p ->> 'high_watermark')::bigint,
                   'lag', greatest((l.p ->> 'high_watermark')::bigint - o.next_offset, 0))
                   ORDER BY o.topic, o.partition)
          FROM outbox.inbox_offsets o
          LEFT JOIN (SELECT p FROM outbox._inbox_workers() w, jsonb_array_elements(w.partitions) p
                      WHERE w.consumer = s.consumer) l
                 ON l.p ->> 'topic' = o.topic AND (l.p ->> 'partition')::int = o.partition
         WHERE o.consumer = s.consumer) AS partitions,
       (SELECT coalesce(sum(o.processed), 0) FROM outbox.inbox_offsets o
         WHERE o.consumer = s.consumer)::bigint AS processed,
       (SELECT count(*) FROM outbox.inbox_dead_letters d WHERE d.consumer = s.consumer)::bigint
           AS dead,
       w.last_error,
       w.last_error_at
FROM outbox._subscriptions s
LEFT JOIN LATERAL (SELECT w.last_error, w.last_error_at FROM outbox._inbox_workers() w
                    WHERE w.consumer = s.consumer AND w.last_error IS NOT NULL
                    ORDER BY w.last_error_at DESC LIMIT 1) w ON true;
COMMENT ON VIEW outbox.subscriptions IS
  'Inbox subscriptions: topics, group, workers, per-partition offsets and lag, processed and dead counts, last error.';
