#!/usr/bin/env bash
# Inbox test 5: rebalances. While writers emit, a second worker joins the
# subscription's consumer group (workers 1 -> 2, taking effect without a
# restart), then one worker is terminated and comes back. Partitions move
# between them; every event is applied exactly once.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:8
inbox_handler_setup

aggregate_writer_script "$TEST_TMP/emit.sql" 100
pgbench -n -c 2 -j 2 -T 30 -R 300 -f "$TEST_TMP/emit.sql" >/dev/null 2>&1 &
W=$!
inbox_subscribe orders '{outbox.event.Order}' '{"batch_size": 50}'
check "one worker takes all 8 partitions" poll_until 30 "8 partitions" sql_is \
    "SELECT sum(jsonb_array_length(partitions)) FROM outbox._inbox_workers() WHERE consumer = 'orders'" 8
poll_until 30 "some applied" sql_is "SELECT count(*) > 200 FROM inbox_effects" t

# Same subscription, two workers: the change commits and the second joins.
q -c "BEGIN" \
  -c "SELECT outbox.unsubscribe('orders')" \
  -c "SELECT outbox.subscribe('orders', '{outbox.event.Order}', 'public.inbox_handler(jsonb)',
        '{\"run_as\": \"inbox_svc\", \"workers\": 2, \"batch_size\": 50,
          \"kafka\": {\"session.timeout.ms\": 6000, \"fetch.wait.max.ms\": 10, \"heartbeat.interval.ms\": 500}}')" \
  -c "COMMIT" >/dev/null
check "a second worker joins and the partitions are split" poll_until 60 "2 workers with partitions" \
    sql_is "SELECT count(*) FROM outbox._inbox_workers() WHERE consumer = 'orders' AND jsonb_array_length(partitions) > 0" 2
echo "# assignment: $(q -c "SELECT string_agg(worker || ':' || jsonb_array_length(partitions), ' ') FROM outbox._inbox_workers() WHERE consumer = 'orders'")"

# One worker leaves (its partitions move to the other) and is started again.
before=$(q -c "SELECT count(*) FROM inbox_effects")
q -c "SELECT pg_terminate_backend(pid) FROM outbox._inbox_workers() WHERE consumer = 'orders' AND worker = 1" >/dev/null
check "work goes on after a worker left" poll_until 60 "more applied" sql_is \
    "SELECT count(*) > $before + 200 FROM inbox_effects" t
check "the worker comes back and takes partitions again" poll_until 60 "2 workers with partitions" \
    sql_is "SELECT count(*) FROM outbox._inbox_workers() WHERE consumer = 'orders' AND jsonb_array_length(partitions) > 0" 2
wait $W

check "the outbox drains" poll_until 120 "pending = 0" pending_is_zero
total=$(q -c "SELECT count(DISTINCT event_id) FROM outbox.events")
check "every event is applied" poll_until 120 "$total effects" sql_is \
    "SELECT count(DISTINCT event_id) FROM inbox_effects" "$total"
check_exactly_once "across rebalances" "SELECT DISTINCT event_id FROM outbox.events"
check "no inbox error" sql_is "SELECT coalesce(last_error, 'none') FROM outbox.subscriptions WHERE consumer = 'orders'" none
done_testing
