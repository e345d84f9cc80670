#!/usr/bin/env bash
# Inbox test 4: two services, two databases. A's outbox publishes
# OrderCreated; B's inbox handles it and emits StockReserved from its
# handler; A's inbox handles that reply. outbox.trace(root) in each database
# shows the causal chain, with who processed what.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
TEST_TMP=$(mktemp -d)
KDIR=$TEST_TMP/kafka
trap 'kafka_stop "$KDIR"; rm -rf "$TEST_TMP"' EXIT
kafka_start "$KDIR" --topic outbox.event.Order:4 --topic outbox.event.Stock:4

for db in orders stock; do
    q -c "CREATE DATABASE $db" >/dev/null
    PGDATABASE=$db q -c "CREATE EXTENSION outbox_ext" >/dev/null
    PGDATABASE=$db inbox_handler_setup
done
# B's handler reserves stock and replies; A's records the reply on the order.
PGDATABASE=stock q >/dev/null <<'SQL'
CREATE FUNCTION reserve_stock(event jsonb) RETURNS void LANGUAGE sql AS $$
    SELECT outbox.emit('Stock', event ->> 'aggregate_id', 'StockReserved',
                       jsonb_build_object('order', event ->> 'aggregate_id'))
$$;
GRANT EXECUTE ON FUNCTION reserve_stock(jsonb) TO inbox_svc;
SELECT outbox.subscribe('stock', '{outbox.event.Order}', 'reserve_stock(jsonb)',
  '{"run_as": "inbox_svc", "kafka": {"session.timeout.ms": 6000, "fetch.wait.max.ms": 10}}');
SQL
PGDATABASE=orders q >/dev/null <<'SQL'
CREATE TABLE orders (id text PRIMARY KEY, status text NOT NULL);
GRANT UPDATE, SELECT ON orders TO inbox_svc;
CREATE FUNCTION on_stock(event jsonb) RETURNS void LANGUAGE sql AS $$
    UPDATE public.orders SET status = 'reserved' WHERE id = event -> 'payload' ->> 'order'
$$;
GRANT EXECUTE ON FUNCTION on_stock(jsonb) TO inbox_svc;
SELECT outbox.subscribe('orders', '{outbox.event.Stock}', 'on_stock(jsonb)',
  '{"run_as": "inbox_svc", "kafka": {"session.timeout.ms": 6000, "fetch.wait.max.ms": 10}}');
SQL
set_conf outbox.poll_interval 200ms
set_conf outbox.database "orders,stock"
set_conf outbox.brokers "$(kafka_bootstrap "$KDIR")"

PGDATABASE=orders q -c "INSERT INTO orders SELECT 'o' || g, 'new' FROM generate_series(1, 20) g" \
    -c "SELECT count(outbox.emit('Order', id, 'OrderCreated', jsonb_build_object('id', id))) FROM orders" >/dev/null
export PGDATABASE=orders
check "every order gets its reply" poll_until 60 "20 reserved" sql_is \
    "SELECT count(*) FROM orders WHERE status = 'reserved'" 20
root=$(q -c "SELECT event_id FROM outbox.events WHERE aggregate_id = 'o7'")

check "trace in A: the order, then B's reply processed here" sql_is \
    "SELECT string_agg(depth || ':' || event_type || ':' || status || ':' || array_to_string(processed_by, '+'), ' ' ORDER BY depth)
     FROM outbox.trace('$root')" "0:OrderCreated:published: 1:StockReserved:external:orders"
PGDATABASE=stock check "trace in B: A's order processed here, then the reply emitted here" sql_is \
    "SELECT string_agg(depth || ':' || event_type || ':' || status || ':' || array_to_string(processed_by, '+'), ' ' ORDER BY depth)
     FROM outbox.trace('$root')" "0:OrderCreated:external:stock 1:StockReserved:published:"
PGDATABASE=stock check "B's reply carries the order as root and cause" sql_is \
    "SELECT count(*) FROM outbox.events WHERE root_id = '$root' AND causation_id = '$root'" 1
echo "# trace in orders:"; q -c "SELECT depth, event_type, status, processed_by FROM outbox.trace('$root')" | sed 's/^/#   /'
check "no inbox errors in A" sql_is "SELECT count(last_error) FROM outbox.subscriptions" 0
PGDATABASE=stock check "no inbox errors in B" sql_is "SELECT count(last_error) FROM outbox.subscriptions" 0
done_testing
