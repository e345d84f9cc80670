#!/usr/bin/env bash
# Publisher test 5: a poison row. Its topic fails with
# TOPIC_AUTHORIZATION_FAILED: it is retried alone, parked with its key,
# retried with backoff and dead-lettered after outbox.max_attempts with a
# clear error; later events of its key wait behind it (and, refused too,
# become dead letters in their turn); all other keys keep flowing. Once the
# topic is fixed, retry_dead() publishes them in their original order. An
# oversized event never gets in: emit refuses it.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
KAFKA_BROKERS=4 publisher_setup --topic outbox.event.Order:4 --topic outbox.event.Poison:4
set_conf outbox.max_attempts 3
kafka_ctl "$KDIR" reject_topic outbox.event.Poison TOPIC_AUTHORIZATION_FAILED >/dev/null
status_of() { q -c "SELECT outbox.event_status('$1')"; }

p1=$(q -c "SELECT outbox.emit('Poison', 'k1', 'Refused', '{\"n\": 1}')")
orders=$(q -c "SELECT string_agg(quote_literal(outbox.emit('Order', 'o' || g, 'OrderPlaced', '{}')), ',') FROM generate_series(1, 50) g")
p2=$(q -c "SELECT outbox.emit('Poison', 'k1', 'Refused', '{\"n\": 2}')")
p3=$(q -c "SELECT outbox.emit('Poison', 'k2', 'Refused', '{\"n\": 3}')")
more=$(q -c "SELECT string_agg(quote_literal(outbox.emit('Order', 'o' || g, 'OrderShipped', '{}')), ',') FROM generate_series(1, 50) g")

check "other keys flow past the poison row" poll_until 30 "orders published" sql_is \
    "SELECT bool_and(outbox.event_status(x) = 'published') FROM unnest(ARRAY[$orders,$more]::uuid[]) x" t
check "the poison row is parked, not published" poll_until 30 "p1 parked" sql_is \
    "SELECT count(*) FROM outbox._parked WHERE event_id = '$p1' AND attempts >= 2" 1
check "it counts as pending" test "$(status_of "$p1")" = pending
check "its key's later event waits behind it" sql_is \
    "SELECT next_attempt_at = 'infinity' FROM outbox._parked WHERE event_id = '$p2'" t
check "status names the error" sql_is \
    "SELECT last_error ILIKE '%authoriz%' FROM outbox.status" t

check "dead-lettered after outbox.max_attempts" poll_until 60 "p1 dead" sql_is \
    "SELECT attempts FROM outbox.dead_letters WHERE event_id = '$p1'" 3
check "with a clear error" sql_is \
    "SELECT error ILIKE '%authoriz%' FROM outbox.dead_letters WHERE event_id = '$p1'" t
check "then its key's next event gets its own attempts, and dies too" poll_until 60 "p2 dead" \
    sql_is "SELECT outbox.event_status('$p2')" dead
check "the other poison key too" poll_until 60 "p3 dead" sql_is "SELECT outbox.event_status('$p3')" dead
check "nothing left parked" sql_is "SELECT parked FROM outbox.status" 0

# Fixed topic: retry_dead() requeues them, in their original order.
kafka_ctl "$KDIR" accept_topic outbox.event.Poison >/dev/null
check "retry_dead requeues all three" sql_is "SELECT outbox.retry_dead()" 3
check "requeued events are published" poll_until 30 "poison published" sql_is \
    "SELECT bool_and(outbox.event_status(x) = 'published') FROM unnest(ARRAY['$p1','$p2','$p3']::uuid[]) x" t
load_dump "$KDIR" outbox.event.Poison poison
check "key k1 arrived as p1 then p2" sql_is \
    "SELECT string_agg(event_id::text, ',' ORDER BY part, off) FROM poison WHERE key = 'k1'" "$p1,$p2"
check_delivery outbox.event.Order "beside a poison row"

# Too big to ever be published: refused at emit, nothing stored.
check "an oversized event is refused at emit" bash -c \
    "psql -XAt -c \"SET outbox.max_message_bytes = 2048\" \
          -c \"SELECT outbox.emit('Order', 'big', 'E', jsonb_build_object('s', repeat('x', 5000)))\" 2>&1 |
     grep -q 'too large for Kafka'"
check "and not stored" sql_is "SELECT count(*) FROM outbox.events WHERE aggregate_id = 'big'" 0
done_testing
