-- outbox.capture(): change capture by statement-level triggers.
\pset null '(null)'

CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric, note text);
SELECT outbox.capture('orders', 'Order');
SELECT * FROM outbox.captured_tables;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'orders'::regclass ORDER BY 1;

SELECT coalesce(max(seq), 0) AS mark FROM outbox.events \gset

INSERT INTO orders VALUES (1, 'ann', 10, NULL), (2, 'bob', 20, 'gift'), (3, 'cy', 30, NULL);
-- One UPDATE that also changes a key: old and new rows stay paired.
UPDATE orders SET id = id + 100, total = total + 1 WHERE id IN (1, 2);
DELETE FROM orders WHERE id = 3;
SELECT aggregate_type, aggregate_id, event_type, topic, payload FROM ev WHERE seq > :mark ORDER BY seq;

-- Nothing for a statement that changes no row, nothing after a rollback.
SELECT coalesce(max(seq), 0) AS mark FROM outbox.events \gset
UPDATE orders SET total = 0 WHERE id = -1;
BEGIN;
INSERT INTO orders VALUES (4, 'dee', 40, NULL);
ROLLBACK;
SELECT count(*) AS after_noop_and_rollback FROM outbox.events WHERE seq > :mark;

-- Bulk: one event per row, in row order, from one trigger call per statement.
INSERT INTO orders SELECT g, 'bulk', g, NULL FROM generate_series(1000, 10999) g;
SELECT count(*) AS created, min(aggregate_id::int) AS lo, max(aggregate_id::int) AS hi,
       bool_and(event_type = 'OrderCreated') AS all_created
FROM outbox.events WHERE seq > :mark;
SELECT count(*) AS out_of_order
FROM (SELECT aggregate_id::int - lag(aggregate_id::int) OVER (ORDER BY seq) AS d
      FROM outbox.events WHERE seq > :mark) s WHERE d <> 1;
SELECT coalesce(max(seq), 0) AS mark FROM outbox.events \gset
UPDATE orders SET total = total * 2 WHERE customer = 'bulk';
SELECT count(*) AS updated,
       bool_and((payload->'new'->>'total')::numeric = 2 * (payload->'old'->>'total')::numeric) AS paired
FROM outbox.events WHERE seq > :mark;
DELETE FROM orders WHERE customer = 'bulk';
SELECT count(*) FILTER (WHERE event_type = 'OrderDeleted') AS deleted FROM outbox.events WHERE seq > :mark;

-- Events carry the ambient context.
BEGIN;
SELECT outbox.set_context('01890000-0000-7000-8000-000000000c0f');
INSERT INTO orders VALUES (5, 'eve', 50, NULL);
SELECT root_id FROM outbox.events ORDER BY seq DESC LIMIT 1;
COMMIT;

-- TRUNCATE emits one <Type>Truncated event keyed by the table.
SELECT coalesce(max(seq), 0) AS mark FROM outbox.events \gset
TRUNCATE orders;
SELECT aggregate_id, event_type, payload FROM ev WHERE seq > :mark;

-- Defaults: aggregate type = table name; composite keys give a JSON array.
CREATE TABLE line_items (order_id bigint, line int, sku text, qty int, PRIMARY KEY (order_id, line));
SELECT outbox.capture('line_items');
SELECT coalesce(max(seq), 0) AS mark FROM outbox.events \gset
INSERT INTO line_items VALUES (7, 1, 'A-1', 2);
SELECT aggregate_type, aggregate_id, event_type, topic FROM ev WHERE seq > :mark;

-- An explicit id column.
CREATE TABLE customers (cid int PRIMARY KEY, email text UNIQUE, name text);
SELECT outbox.capture('customers', 'Customer', 'email');
SELECT coalesce(max(seq), 0) AS mark FROM outbox.events \gset
INSERT INTO customers VALUES (1, 'a@example.com', 'A');
SELECT aggregate_id, event_type FROM ev WHERE seq > :mark;
SELECT expect_error($$INSERT INTO customers VALUES (2, NULL, 'no email')$$);
SELECT count(*) AS no_row_without_event FROM customers WHERE cid = 2;

-- Partitioned tables are captured at the parent.
CREATE TABLE payments (id int, region text, amount int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE payments_eu PARTITION OF payments FOR VALUES IN ('eu');
SELECT outbox.capture('payments', 'Payment');
SELECT coalesce(max(seq), 0) AS mark FROM outbox.events \gset
INSERT INTO payments VALUES (1, 'eu', 5);
SELECT aggregate_id, event_type FROM ev WHERE seq > :mark;
SELECT expect_error($$SELECT outbox.capture('payments_eu')$$);

-- Uncapture.
SELECT outbox.uncapture('customers');
SELECT coalesce(max(seq), 0) AS mark FROM outbox.events \gset
INSERT INTO customers VALUES (3, 'c@example.com', 'C');
SELECT count(*) AS after_uncapture FROM outbox.events WHERE seq > :mark;
SELECT tbl FROM outbox.captured_tables ORDER BY tbl::text;

-- Bad input.
CREATE TABLE no_pk (a int, b text);
CREATE VIEW a_view AS SELECT 1 AS x;
SELECT expect_error($$SELECT outbox.capture('no_pk')$$);
SELECT expect_error($$SELECT outbox.capture('no_pk', 'X', 'nope')$$);
SELECT expect_error($$SELECT outbox.capture('orders')$$);
SELECT expect_error($$SELECT outbox.capture('a_view')$$);
SELECT expect_error($$SELECT outbox.capture(NULL)$$);
SELECT expect_error($$SELECT outbox.capture('no_pk', '', 'a')$$);
SELECT expect_error($$SELECT outbox.capture('no_pk', 'Bad Type', 'a')$$);
SELECT expect_error($$SELECT outbox.uncapture('no_pk')$$);
SELECT expect_error($$SELECT outbox.capture('does_not_exist')$$);
SELECT count(*) AS triggers_on_no_pk FROM pg_trigger WHERE tgrelid = 'no_pk'::regclass;

-- Renaming the id column away breaks capture loudly, not silently.
CREATE TABLE renamed (k int PRIMARY KEY);
SELECT outbox.capture('renamed');
ALTER TABLE renamed RENAME COLUMN k TO k2;
SELECT expect_error($$INSERT INTO renamed VALUES (1)$$);

-- The trigger function is only a trigger.
SELECT expect_error($$SELECT outbox._capture_trigger()$$);
CREATE TABLE before_trig (id int PRIMARY KEY);
CREATE TRIGGER t BEFORE INSERT ON before_trig FOR EACH ROW EXECUTE FUNCTION outbox._capture_trigger('X', 'id');
SELECT expect_error($$INSERT INTO before_trig VALUES (1)$$);

-- The same function as a row-level trigger gives the same events.
CREATE TABLE row_level (id int PRIMARY KEY, v text);
CREATE TRIGGER t AFTER INSERT OR UPDATE OR DELETE ON row_level
    FOR EACH ROW EXECUTE FUNCTION outbox._capture_trigger('Row', 'id');
SELECT coalesce(max(seq), 0) AS mark FROM outbox.events \gset
INSERT INTO row_level VALUES (1, 'a'), (2, 'b');
UPDATE row_level SET v = 'c' WHERE id = 1;
DELETE FROM row_level WHERE id = 2;
SELECT aggregate_id, event_type, payload FROM ev WHERE seq > :mark ORDER BY seq;

DROP TABLE orders, line_items, customers, payments, no_pk, renamed, before_trig, row_level;
DROP VIEW a_view;
SELECT count(*) AS captured_after_drop FROM outbox.captured_tables;

-- Keys print as in the payload's JSON, whatever the session's DateStyle.
CREATE TABLE readings (taken_at timestamptz PRIMARY KEY, v int);
SELECT outbox.capture('readings', 'Reading');
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'UTC';
SELECT coalesce(max(seq), 0) AS mark FROM outbox.events \gset
INSERT INTO readings VALUES ('2024-02-01 03:04:05+00', 1);
SELECT aggregate_id FROM ev WHERE seq > :mark;
RESET DateStyle;
RESET TimeZone;

-- A statement that changes nothing resolves no topic: a later change of
-- outbox.allowed_topics does not break no-op writes.
SET outbox.allowed_topics = 'billing.*';
UPDATE readings SET v = 2 WHERE v = -1;
SELECT expect_error($$UPDATE readings SET v = 2$$);
RESET outbox.allowed_topics;
DROP TABLE readings;
