#!/usr/bin/env bash
# The demo itself; run by scripts/demo inside a throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }

say "CREATE EXTENSION and an orders table whose changes become events"
sql <<'SQL'
CREATE EXTENSION outbox_ext;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL,
                     total numeric NOT NULL, status text NOT NULL DEFAULT 'new');
SELECT outbox.capture('orders', 'Order');
SELECT * FROM outbox.captured_tables;
SQL

say "4 sessions place orders for 5 seconds (pgbench); each order is one transaction"
cat > /tmp/outbox_demo_order.sql <<'SQL'
\set c random(1, 50)
INSERT INTO orders (customer, total) VALUES ('customer-' || :c, round((random() * 100)::numeric, 2));
SQL
pgbench -n -c 4 -j 2 -T 5 -f /tmp/outbox_demo_order.sql 2>&1 | grep -E 'number of transactions actually processed|tps'
rm -f /tmp/outbox_demo_order.sql

say "The outbox: one event per order, written in the same transaction"
sql <<'SQL'
SELECT count(*) AS orders FROM orders;
SELECT count(*) AS events FROM outbox.events;
SELECT seq, event_type, topic, aggregate_id AS key, payload
FROM outbox.events ORDER BY seq LIMIT 5;
SQL

say "A rolled-back order leaves no event behind"
sql <<'SQL'
SELECT count(*) AS events_before FROM outbox.events \gset
BEGIN;
INSERT INTO orders (customer, total) VALUES ('ghost', 1);
ROLLBACK;
SELECT count(*) - :events_before AS events_added FROM outbox.events;
SQL

say "A consumer handles an event exactly once, and its reply joins the same process"
sql <<'SQL'
SELECT event_id AS placed FROM outbox.events ORDER BY seq LIMIT 1 \gset
CREATE TABLE invoices (order_event uuid PRIMARY KEY, amount numeric);
BEGIN;
SELECT outbox.try_process('billing', :'placed') AS first_delivery;
INSERT INTO invoices VALUES (:'placed', 42);
SELECT outbox.emit('Invoice', 'inv-1', 'InvoiceIssued', '{"amount": 42}');
COMMIT;
BEGIN;
SELECT outbox.try_process('billing', :'placed') AS redelivery;  -- false: skip the handler
COMMIT;
SELECT count(*) AS invoices FROM invoices;
SELECT depth, event_type, aggregate_id, status, processed_by FROM outbox.trace(:'placed');
SQL

say "Status (no publisher runs yet, so every event is pending)"
sql -x -c "SELECT * FROM outbox.status"

say "Retention: published events go a whole child table at a time"
sql <<'SQL'
-- Pretend a publisher sent everything (the publisher worker does this).
UPDATE outbox._cursor SET prev_snap = pg_current_snapshot();
SELECT * FROM outbox.purge('0');
SELECT count(*) AS events_left FROM outbox.events;
SQL

say "Done: the throwaway cluster is removed now"
