#!/usr/bin/env bash
# The demo itself; run by scripts/demo inside a throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
val() { psql -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

work=$(mktemp -d)
kafka_pid=
cleanup() {
    [ -n "$kafka_pid" ] && kill "$kafka_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

say "Start a local Kafka (librdkafka's mock cluster) and point the publisher at it"
test/kafka_mock/kafka_mock serve --brokers 1 --dir "$work/kafka" --topic outbox.event.Order:8 \
    >"$work/kafka.log" 2>&1 &
kafka_pid=$!
for _ in $(seq 1 100); do [ -s "$work/kafka/bootstrap" ] && break; sleep 0.1; done
brokers=$(cat "$work/kafka/bootstrap")
echo "Kafka bootstrap: $brokers"
sql -c "ALTER SYSTEM SET outbox.database = '$(val 'SELECT current_database()')'" \
    -c "ALTER SYSTEM SET outbox.brokers = '$brokers'" -c "SELECT pg_reload_conf()" >/dev/null

say "CREATE EXTENSION and an orders table whose changes become events"
sql <<'SQL'
CREATE EXTENSION outbox_ext;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL,
                     total numeric NOT NULL, status text NOT NULL DEFAULT 'new');
SELECT outbox.capture('orders', 'Order');
SELECT * FROM outbox.captured_tables;
SQL
for _ in $(seq 1 100); do [ "$(val 'SELECT worker_state FROM outbox.status')" = idle ] && break; sleep 0.1; done

say "4 sessions place orders for 10 seconds; the publisher relays them as they commit"
cat > "$work/order.sql" <<'SQL'
\set c random(1, 50)
INSERT INTO orders (customer, total) VALUES ('customer-' || :c, round((random() * 100)::numeric, 2));
SQL
pgbench -n -c 4 -j 2 -T 10 -R 2000 -f "$work/order.sql" >"$work/pgbench.log" 2>&1 &
bench=$!
last=0
while kill -0 "$bench" 2>/dev/null || [ "$(val 'SELECT pending FROM outbox.status')" != 0 ]; do
    sleep 1
    read -r orders published pending < <(val "SELECT (SELECT count(*) FROM orders), published, pending FROM outbox.status" | tr '|' ' ')
    printf '  orders %7d   delivered to Kafka %7d   pending %5d   %6d events/s\n' \
        "$orders" "$published" "$pending" "$((published - last))"
    last=$published
done
wait "$bench" || true

say "The events in Kafka (kcat): key, headers, payload"
kcat -b "$brokers" -C -t outbox.event.Order -e -q -o beginning -c 3 \
     -f 'key: %k\nheaders: %h\npayload: %s\n\n' 2>/dev/null
echo "messages in Kafka: $(kcat -b "$brokers" -C -t outbox.event.Order -e -q -o beginning -f '.\n' 2>/dev/null | wc -l)"

say "outbox.status"
sql -x -c "SELECT * FROM outbox.status"

say "A rolled-back order leaves no event behind"
sql <<'SQL'
SELECT count(*) AS events_before FROM outbox.events \gset
BEGIN;
INSERT INTO orders (customer, total) VALUES ('ghost', 1);
ROLLBACK;
SELECT count(*) - :events_before AS events_added FROM outbox.events;
SQL

say "A consumer handles an event exactly once; its reply joins the same process"
sql <<'SQL'
SELECT event_id AS placed FROM outbox.events ORDER BY seq LIMIT 1 \gset
CREATE TABLE invoices (order_event uuid PRIMARY KEY, amount numeric);
BEGIN;
SELECT outbox.try_process('billing', :'placed') AS first_delivery;
INSERT INTO invoices VALUES (:'placed', 42);
SELECT outbox.emit('Order', 'inv-1', 'InvoiceIssued', '{"amount": 42}') IS NOT NULL AS reply_emitted;
COMMIT;
BEGIN;
SELECT outbox.try_process('billing', :'placed') AS redelivery;  -- false: skip the handler
COMMIT;
SELECT count(*) AS invoices FROM invoices;
SQL
for _ in $(seq 1 50); do [ "$(val 'SELECT pending FROM outbox.status')" = 0 ] && break; sleep 0.1; done
sql -c "SELECT depth, event_type, aggregate_id, status, processed_by FROM outbox.trace('$(val 'SELECT event_id FROM outbox.events ORDER BY seq LIMIT 1')')"

say "Done: Kafka and the throwaway cluster are stopped now"
