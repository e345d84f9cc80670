-- bench/sql/bulk_manual.sql: reference for benchmark 2, not a goal: the same
-- statements on an uncaptured table, each writing its events by hand in the
-- same statement (a data-modifying CTE feeding an INSERT into
-- bench.plain_events), with the payloads capture() writes (the row as JSON;
-- {"old": ..., "new": ...} for updates). It shows what the events cost when
-- written with plain SQL. psql variables: rows, cpu (see bulk.sql).
\set ON_ERROR_STOP on
\ir cpu.sql

:cpu_now \gset before_
\timing on
WITH changed AS (
    INSERT INTO bench.bulk_manual (id, customer_id, status, amount, currency, items, note, created_at, updated_at)
    SELECT g, g % 5000, 'new', (g % 100000) / 100.0, 'EUR', 1 + g % 7,
           'order ' || g, now() - make_interval(secs => g), now()
    FROM generate_series(1, :rows) AS g
    RETURNING *),
ev AS (SELECT gen_random_uuid() AS u, c.id, to_jsonb(c) AS payload FROM changed c)
INSERT INTO bench.plain_events (seq, xid, created_at, event_id, root_id, causation_id, slot,
                                aggregate_type, aggregate_id, event_type, topic, key,
                                payload, headers, traceparent)
SELECT nextval('bench.plain_events_seq'), pg_current_xact_id(), now(), u, u, NULL, 0,
       'order', id::text, 'orderCreated', 'outbox.event.order', NULL, payload, NULL, NULL
FROM ev;
\timing off
:cpu_now \gset after_
\echo cpu_ns :before_ns :after_ns

:cpu_now \gset before_
\timing on
WITH changed AS (
    UPDATE bench.bulk_manual t SET status = 'paid', updated_at = now()
    FROM bench.bulk_manual o WHERE o.id = t.id
    RETURNING t.id, o AS old_row, t AS new_row),
ev AS (SELECT gen_random_uuid() AS u, c.id,
              jsonb_build_object('old', to_jsonb(c.old_row), 'new', to_jsonb(c.new_row)) AS payload
       FROM changed c)
INSERT INTO bench.plain_events (seq, xid, created_at, event_id, root_id, causation_id, slot,
                                aggregate_type, aggregate_id, event_type, topic, key,
                                payload, headers, traceparent)
SELECT nextval('bench.plain_events_seq'), pg_current_xact_id(), now(), u, u, NULL, 0,
       'order', id::text, 'orderUpdated', 'outbox.event.order', NULL, payload, NULL, NULL
FROM ev;
\timing off
:cpu_now \gset after_
\echo cpu_ns :before_ns :after_ns

:cpu_now \gset before_
\timing on
WITH changed AS (DELETE FROM bench.bulk_manual RETURNING *),
ev AS (SELECT gen_random_uuid() AS u, c.id, to_jsonb(c) AS payload FROM changed c)
INSERT INTO bench.plain_events (seq, xid, created_at, event_id, root_id, causation_id, slot,
                                aggregate_type, aggregate_id, event_type, topic, key,
                                payload, headers, traceparent)
SELECT nextval('bench.plain_events_seq'), pg_current_xact_id(), now(), u, u, NULL, 0,
       'order', id::text, 'orderDeleted', 'outbox.event.order', NULL, payload, NULL, NULL
FROM ev;
\timing off
:cpu_now \gset after_
\echo cpu_ns :before_ns :after_ns
