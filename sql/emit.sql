-- outbox.emit(): one event appended in the caller's transaction.
\pset null '(null)'

SELECT outbox.emit('Order', 'o-1', 'OrderPlaced', '{"total": 42}') AS id1 \gset

-- A UUIDv7: version 7, RFC variant, its timestamp is now.
SELECT substr(:'id1', 15, 1) AS version,
       substr(:'id1', 20, 1) IN ('8', '9', 'a', 'b') AS rfc_variant,
       abs(extract(epoch FROM now()) * 1000
           - ('x' || translate(substr(:'id1', 1, 13), '-', ''))::bit(48)::bigint) < 60000 AS time_ordered;

-- Stored with its top-level xid, a seq, the resolved topic, and as its own root.
SELECT seq, aggregate_type, aggregate_id, event_type, topic, key, payload, own_root, has_cause
FROM ev;
SELECT xid = pg_current_xact_id() AS xid_is_this_txn FROM outbox.events;  -- a new txn: false
SELECT created_at <= now() AS created_at_is_txn_start FROM outbox.events;

-- Ids increase within a session: index locality.
SELECT bool_and(a < b) AS increasing
FROM (SELECT outbox.emit('Order', 'o-2', 'OrderPlaced', '{}') AS a,
             outbox.emit('Order', 'o-2', 'OrderPaid', '{}') AS b) s;

-- Explicit topic and key; user headers; a NULL payload is a tombstone.
SET outbox.allowed_topics = 'outbox.event.*, billing.*';
SELECT outbox.emit('Invoice', 'i-1', 'InvoiceIssued', NULL,
                   headers => '{"tenant": "acme", "x-origin": "test"}',
                   topic => 'billing.invoices', key => 'customer-7') IS NOT NULL AS emitted;
SELECT aggregate_type, topic, key, payload, headers FROM ev WHERE aggregate_type = 'Invoice';

-- Topic template placeholders.
SET outbox.topic_template = 'outbox.event.{aggregate_type}.{event_type}';
SELECT outbox.emit('Order', 'o-3', 'OrderShipped', '{}') IS NOT NULL AS emitted;
SELECT topic FROM ev WHERE event_type = 'OrderShipped';
RESET outbox.topic_template;
SELECT expect_error($$SET outbox.topic_template = 'events.{aggregate}'$$);
SELECT expect_error($$SET outbox.topic_template = 'events/{aggregate_type}'$$);
SELECT expect_error($$SET outbox.allowed_topics = 'a/b'$$);

-- Rolled back with the transaction, or with a savepoint.
SELECT count(*) AS before FROM outbox.events \gset
BEGIN;
SELECT outbox.emit('Order', 'o-4', 'OrderPlaced', '{}') IS NOT NULL AS emitted;
ROLLBACK;
BEGIN;
SELECT outbox.emit('Order', 'o-5', 'OrderPlaced', '{}') IS NOT NULL AS kept;
SAVEPOINT s;
SELECT outbox.emit('Order', 'o-6', 'OrderPlaced', '{}') IS NOT NULL AS undone;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT array_agg(aggregate_id ORDER BY seq) AS kept FROM ev WHERE aggregate_id IN ('o-4', 'o-5', 'o-6');
SELECT count(*) - :before AS added FROM outbox.events;

-- Bad input: a clear error with an errcode, and nothing written.
SELECT count(*) AS before FROM outbox.events \gset
SELECT expect_error($$SELECT outbox.emit(NULL, 'a', 'E', '{}')$$);
SELECT expect_error($$SELECT outbox.emit('', 'a', 'E', '{}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', NULL, 'E', '{}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', '', 'E', '{}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', NULL, '{}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', '', '{}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', key => '')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', topic => '')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', topic => 'outbox.event.bad topic')$$);
SELECT left(expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', topic => 'outbox.event.' || repeat('x', 237))$$), 40);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', topic => '..')$$);
SELECT expect_error($$SELECT outbox.emit('Line Item', 'a', 'E', '{}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', topic => 'payments.refunds')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', headers => '[1, 2]')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', headers => '"text"')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', headers => '{"n": 1}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', headers => '{"n": {"x": "y"}}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', headers => '{"": "y"}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', headers => '{"ce_type": "y"}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', headers => '{"Content-Type": "text/plain"}')$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'a', 'E', '{}', headers => '{"Root_Id": "x"}')$$);
SELECT count(*) - :before AS added_by_bad_calls FROM outbox.events;
SELECT outbox.emit('Order', 'a', 'E', '{}', topic => 'outbox.event.' || repeat('x', 236)) AS longest \gset
SELECT length(topic) AS longest_topic FROM outbox.events WHERE event_id = :'longest';

-- Events larger than outbox.max_message_bytes are refused up front.
SET outbox.max_message_bytes = 4096;
SELECT outbox.emit('Order', 'big', 'E', jsonb_build_object('s', repeat('x', 3000))) IS NOT NULL AS fits;
SELECT expect_error($$SELECT outbox.emit('Order', 'big', 'E', jsonb_build_object('s', repeat('x', 4000)))$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'big', 'E', '{}', headers => jsonb_build_object('h', repeat('x', 4000)))$$);
SELECT expect_error($$SELECT outbox.emit('Order', 'big', 'E', '{}', key => repeat('k', 4000))$$);
-- Escapes count as the JSON text the publisher will send, not jsonb's binary size.
SELECT expect_error($$SELECT outbox.emit('Order', 'big', 'E', jsonb_build_object('s', repeat(E'\u0001', 700)))$$);
RESET outbox.max_message_bytes;
SELECT expect_error($$SET outbox.max_message_bytes = 10$$);

-- Not in a read-only transaction.
BEGIN READ ONLY;
SELECT expect_error($$SELECT outbox.emit('Order', 'ro', 'E', '{}')$$);
ROLLBACK;

-- Allowed topics: '*' matches any run, '?' one character, empty allows nothing.
SET outbox.allowed_topics = 'orders.?u*';
SELECT outbox.emit('Order', 'at', 'E', '{}', topic => 'orders.public') IS NOT NULL AS matches;
SELECT expect_error($$SELECT outbox.emit('Order', 'at', 'E', '{}', topic => 'orders.private')$$);
SET outbox.allowed_topics = '';
SELECT expect_error($$SELECT outbox.emit('Order', 'at', 'E', '{}')$$);
RESET outbox.allowed_topics;

-- W3C traceparent from the session is stored with the event.
BEGIN;
SET LOCAL outbox.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
SELECT outbox.emit('Order', 'tp', 'E', '{}') IS NOT NULL AS emitted;
COMMIT;
SELECT outbox.emit('Order', 'tp2', 'E', '{}') IS NOT NULL AS emitted;
SELECT aggregate_id, traceparent FROM ev WHERE aggregate_id LIKE 'tp%' ORDER BY seq;
SELECT expect_error($$SET outbox.traceparent = 'garbage'$$);
SELECT expect_error($$SET outbox.traceparent = '00-00000000000000000000000000000000-00f067aa0ba902b7-01'$$);
SELECT expect_error($$SET outbox.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'$$);
SELECT expect_error($$SET outbox.traceparent = '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'$$);

-- Only superusers change the routing settings.
SELECT name, context FROM pg_settings WHERE name LIKE 'outbox.%' ORDER BY name;
