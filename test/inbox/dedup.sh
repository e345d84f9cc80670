#!/usr/bin/env bash
# Inbox test 1: the publisher of this database publishes events; the inbox
# consumes them into a handler. The same events published again (same ids,
# through dead_letters + retry_dead) are not handled again. A message from
# another producer (no id header) is handled once, under its UUIDv5 id.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:4 --topic foreign.topic:2
inbox_handler_setup

q -c "SELECT count(*) FROM generate_series(1, 2000) g,
      LATERAL (SELECT outbox.emit('Order', 'k' || (g % 100), 'OrderPlaced', jsonb_build_object('g', g))) e" >/dev/null
inbox_subscribe orders '{outbox.event.Order,foreign.topic}' '{"batch_size": 200}'
check "the inbox worker starts" poll_until 30 "consuming" sql_is \
    "SELECT state FROM outbox.subscriptions WHERE consumer = 'orders'" consuming
check "all 2000 handled" poll_until 60 "2000 effects" sql_is "SELECT count(*) FROM inbox_effects" 2000
check_exactly_once "first delivery" "SELECT event_id FROM outbox.events"
check "handler ran as the subscribing role" sql_is "SELECT string_agg(DISTINCT by_role, ',') FROM inbox_effects" inbox_svc
check "handler saw the root id" sql_is "SELECT count(*) FROM inbox_effects f JOIN outbox.events e USING (event_id) WHERE f.root_id <> e.root_id" 0
check "offsets stored per partition" sql_is \
    "SELECT sum(next_offset) FROM outbox.inbox_offsets WHERE consumer = 'orders' AND topic = 'outbox.event.Order'" 2000
check "processed count in the view" sql_is "SELECT processed FROM outbox.subscriptions WHERE consumer = 'orders'" 2000

# Publish every event again under the same id.
q -c "INSERT INTO outbox.dead_letters (event_id, seq, root_id, causation_id, aggregate_type, aggregate_id, event_type,
                                      topic, key, payload, headers, traceparent, created_at, error, attempts, failed_at)
      SELECT event_id, seq, root_id, causation_id, aggregate_type, aggregate_id, event_type,
             topic, key, payload, headers, traceparent, created_at, 'test', 1, now() FROM outbox.events" \
  -c "SELECT outbox.retry_dead()" >/dev/null
check "the copies are published" poll_until 60 "pending = 0" pending_is_zero
check "the inbox reads the copies" poll_until 60 "4000 offsets" sql_is \
    "SELECT sum(next_offset) FROM outbox.inbox_offsets WHERE consumer = 'orders' AND topic = 'outbox.event.Order'" 4000
check_exactly_once "after the same events twice" "SELECT DISTINCT event_id FROM outbox.events"

# A foreign producer: no id header, so topic/partition/offset make the id.
printf 'not json at all\n{"plain": true}\n' | kcat -b "$(kafka_bootstrap "$KDIR")" -P -t foreign.topic -p 1 -X socket.nagle.disable=true
check "foreign messages handled" poll_until 30 "2 foreign" sql_is \
    "SELECT count(*) FROM inbox_effects WHERE topic = 'foreign.topic'" 2
check "their ids are outbox.inbox_message_id()" sql_is \
    "SELECT count(*) FROM inbox_effects WHERE topic = 'foreign.topic' AND event_id = outbox.inbox_message_id(topic, part, off)" 2
check "a non-JSON payload arrives as a JSON string" sql_is \
    "SELECT payload #>> '{}' FROM inbox_effects WHERE topic = 'foreign.topic' AND off = 0" "not json at all"
check "a JSON payload arrives as JSON" sql_is \
    "SELECT payload ->> 'plain' FROM inbox_effects WHERE topic = 'foreign.topic' AND off = 1" true
check "no inbox error" sql_is "SELECT coalesce(last_error, 'none') FROM outbox.subscriptions WHERE consumer = 'orders'" none

# unsubscribe stops the worker.
q -c "SELECT outbox.unsubscribe('orders')" >/dev/null
check "the worker stops" poll_until 30 "no inbox worker" sql_is \
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'outbox_ext inbox'" 0

# So does DROP EXTENSION, which takes the subscriptions with it.
inbox_subscribe again '{outbox.event.Order}'
check "a new subscription runs" poll_until 30 "consuming" sql_is \
    "SELECT state FROM outbox.subscriptions WHERE consumer = 'again'" consuming
q -c "DROP EXTENSION outbox_ext" >/dev/null
check "DROP EXTENSION stops the inbox workers" poll_until 30 "no inbox worker" sql_is \
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'outbox_ext inbox'" 0
done_testing
