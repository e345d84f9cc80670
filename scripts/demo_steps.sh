#!/usr/bin/env bash
# The demo itself, run by scripts/demo inside a throwaway cluster: the
# choreographed order saga across three services, each with its own
# database (orders, stock, payments), talking only through Kafka.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
val() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }
# wait_for SECONDS DESCRIPTION COMMAND...: poll until the command succeeds.
wait_for() {
    local deadline=$((SECONDS + $1)) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "timed out waiting for $what" >&2; return 1; }
        sleep 0.2
    done
}

work=$(mktemp -d)
kafka_pid=
cleanup() {
    [ -n "$kafka_pid" ] && kill "$kafka_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

say "Start a local Kafka (librdkafka's mock cluster)"
test/kafka_mock/kafka_mock serve --brokers 1 --dir "$work/kafka" \
    --topic outbox.event.Order:4 --topic outbox.event.Stock:4 --topic outbox.event.Payment:4 \
    >"$work/kafka.log" 2>&1 &
kafka_pid=$!
wait_for 10 "the local Kafka" test -s "$work/kafka/bootstrap"
brokers=$(cat "$work/kafka/bootstrap")
echo "Kafka bootstrap: $brokers"

say "Three services, three databases: orders, stock, payments (scripts/saga/*.sql)"
for svc in orders stock payments; do
    sql -c "CREATE DATABASE $svc"
    sql -d "$svc" -f "scripts/saga/$svc.sql" >/dev/null
    echo "$svc: $(val -d "$svc" -c "SELECT consumer || ' consumes ' || array_to_string(topics, ', ') || ' into ' || handler || ' as ' || run_as FROM outbox.subscriptions")"
done
sql -c "ALTER SYSTEM SET outbox.database = 'orders,stock,payments'" \
    -c "ALTER SYSTEM SET outbox.brokers = '$brokers'" \
    -c "ALTER SYSTEM SET outbox.poll_interval = '200ms'" -c "SELECT pg_reload_conf()" >/dev/null
for svc in orders stock payments; do
    wait_for 60 "the $svc inbox" bash -c \
        "[ \"\$(psql -XAtd $svc -c \"SELECT state FROM outbox.subscriptions\")\" = consuming ]"
done
echo "publishers and inbox workers are running:"
sql -c "SELECT datname, backend_type, query AS state FROM pg_stat_activity
        WHERE backend_type LIKE 'outbox_ext%' ORDER BY 2, 1"
sql -d stock -c "SELECT product, available FROM stock ORDER BY product"

say "Place 30 orders, each in its own transaction with its OrderCreated event"
echo "(some for out-of-stock products, some paid with a declined card or over the 1000 limit)"
for i in $(seq 1 30); do
    case $((i % 6)) in
        0) args="'gizmo', 1, 40, 'visa'" ;;          # never in stock
        1) args="'widget', 2, 30, 'declined'" ;;     # payment fails: stock comes back
        2) args="'gadget', 2, 1200, 'visa'" ;;       # over the limit
        *) args="'widget', 1, 25, 'visa'" ;;
    esac
    val -d orders -c "SELECT place_order('o$i', $args)" >/dev/null
done
while :; do
    read -r pending completed cancelled < <(val -d orders -c \
        "SELECT count(*) FILTER (WHERE status = 'PENDING'), count(*) FILTER (WHERE status = 'COMPLETED'),
                count(*) FILTER (WHERE status = 'CANCELLED') FROM orders" | tr '|' ' ')
    printf '  pending %3d   completed %3d   cancelled %3d\n' "$pending" "$completed" "$cancelled"
    [ "$pending" = 0 ] && break
    [ $SECONDS -lt 120 ] || { echo "orders still pending after 120 s" >&2; exit 1; }
    sleep 0.5
done

say "Final states"
sql -d orders -c "SELECT status, reason, count(*), string_agg(id, ' ' ORDER BY length(id), id) AS orders
                  FROM orders GROUP BY status, reason ORDER BY status, reason"
sql -d stock -c "SELECT product, available FROM stock ORDER BY product"
sql -d stock -c "SELECT status, count(*), sum(qty) AS qty FROM reservations GROUP BY status ORDER BY status"
sql -d payments -c "SELECT status, count(*), sum(amount) FROM payments GROUP BY status ORDER BY status"

say "The events in Kafka (kcat)"
for t in outbox.event.Order outbox.event.Stock outbox.event.Payment; do
    printf '%-22s %4d messages\n' "$t" \
        "$(kcat -b "$brokers" -C -t "$t" -e -q -o beginning -f '.\n' 2>/dev/null | wc -l)"
done
echo; echo "one of them, with its headers:"
kcat -b "$brokers" -C -t outbox.event.Payment -e -q -o beginning -c 1 \
     -f 'key: %k\nheaders: %h\npayload: %s\n' 2>/dev/null | sed 's/,/, /g'

say "The trace of one compensated order (o1: stock reserved, payment failed, stock given back)"
# Each database knows the events it emitted and the ones it processed; the
# union of the three traces is the whole tree.
root=$(val -d orders -c "SELECT event_id FROM outbox.events WHERE aggregate_id = 'o1' AND event_type = 'OrderCreated'")
for svc in orders stock payments; do
    val -d "$svc" -F $'\t' -c "SELECT '$svc', event_id, coalesce(causation_id::text, ''), event_type, status,
                                      array_to_string(processed_by, ','), created_at
                               FROM outbox.trace('$root')"
done > "$work/trace.tsv"
sql -d orders <<SQL
CREATE TEMP TABLE saga_trace (service text, event_id uuid, causation_id text, event_type text,
                              status text, processed_by text, created_at timestamptz);
\copy saga_trace FROM '$work/trace.tsv'
WITH RECURSIVE
emitted AS (SELECT DISTINCT ON (event_id) * FROM saga_trace ORDER BY event_id, status = 'external'),
seen AS (SELECT event_id, string_agg(DISTINCT processed_by, ',') FILTER (WHERE processed_by <> '') AS by
         FROM saga_trace GROUP BY event_id),
tree AS (SELECT e.*, 0 AS depth, ARRAY[e.created_at] AS path FROM emitted e WHERE e.event_id = '$root'
         UNION ALL
         SELECT e.*, t.depth + 1, t.path || e.created_at
         FROM emitted e JOIN tree t ON e.causation_id = t.event_id::text)
SELECT repeat('   ', t.depth) || t.event_type AS event, t.service AS emitted_by,
       t.status, coalesce(s.by, '') AS processed_by
FROM tree t JOIN seen s USING (event_id) ORDER BY t.path;
SQL

say "outbox.subscriptions of the stock service: offsets stored in its database, lag per partition"
sql -d stock -c "SELECT consumer, group_id, state, processed, dead, coalesce(last_error, '') AS last_error
                 FROM outbox.subscriptions"
sql -d stock -c "SELECT p.* FROM outbox.subscriptions s,
                        jsonb_to_recordset(s.partitions) AS p(topic text, partition int, committed_offset bigint,
                                                              high_watermark bigint, lag bigint)"

say "Done: Kafka and the throwaway cluster are stopped now"
