#!/usr/bin/env bash
# Inbox test 3: a handler that fails. A poison message is retried with
# backoff while its partition is paused (the rest of the topic flows), then
# moved to outbox.inbox_dead_letters; its partition moves on in order. A
# flaky one succeeds on a retry and is applied once. retry_inbox_dead()
# applies the poison once the handler is fixed.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:2
inbox_handler_setup

# 400 events over 2 partitions; #100 is poison, #200 fails twice then works.
q -c "SELECT count(*) FROM generate_series(1, 400) g,
      LATERAL (SELECT outbox.emit('Order', 'k' || (g % 20), 'OrderPlaced',
               CASE g WHEN 100 THEN '{\"fail\": true}' WHEN 200 THEN '{\"flaky\": 3}'
                      ELSE jsonb_build_object('g', g) END)) e" >/dev/null
poison=$(q -c "SELECT event_id FROM outbox.events WHERE payload ->> 'fail' = 'true'")
flaky=$(q -c "SELECT event_id FROM outbox.events WHERE payload ? 'flaky'")
inbox_subscribe orders '{outbox.event.Order}' '{"batch_size": 50, "max_attempts": 3, "retry_backoff_ms": 200}'

check "everything but the poison is applied" poll_until 60 "399 effects" sql_is "SELECT count(*) FROM inbox_effects" 399
check_exactly_once "with a failing handler" "SELECT event_id FROM outbox.events WHERE event_id <> '$poison'"
check "the flaky message was applied once" sql_is "SELECT count(*) FROM inbox_effects WHERE event_id = '$flaky'" 1
check "the poison is a dead letter after 3 attempts" poll_until 30 "dead letter" sql_is \
    "SELECT attempts || ' ' || sqlstate || ' ' || (error LIKE 'refusing event%')::text || ' ' || (event ->> 'event_id')
     FROM outbox.inbox_dead_letters WHERE consumer = 'orders'" "3 P0001 true $poison"
check "its partition moved on past it" poll_until 30 "offsets at the end" sql_is \
    "SELECT sum(next_offset) FROM outbox.inbox_offsets WHERE consumer = 'orders'" 400
check "per partition, messages were applied in offset order" sql_is \
    "SELECT count(*) FROM (SELECT off < lag(off) OVER (PARTITION BY part ORDER BY at) AS back
                          FROM inbox_effects) s WHERE back" 0
check "the view counts the dead letter and names it" sql_is \
    "SELECT dead || ' ' || (last_error LIKE '%moved to outbox.inbox_dead_letters after 3 attempts%')::text
     FROM outbox.subscriptions WHERE consumer = 'orders'" "1 true"
check "the worker is consuming again" poll_until 10 "consuming" sql_is \
    "SELECT state FROM outbox.subscriptions WHERE consumer = 'orders'" consuming

# Fix the handler, then replay the dead letter (as the subscription's role).
q -c "CREATE OR REPLACE FUNCTION inbox_handler(event jsonb) RETURNS void LANGUAGE sql AS \$\$
        INSERT INTO public.inbox_effects (event_id, root_id, topic, part, off, payload, by_role)
        VALUES ((event ->> 'event_id')::uuid, outbox.current_root(), event ->> 'topic',
                (event ->> 'partition')::int, (event ->> 'offset')::bigint, event -> 'payload', current_user) \$\$" >/dev/null
check "retry_inbox_dead applies it" sql_is "SELECT outbox.retry_inbox_dead('orders')" 1
check_exactly_once "after the replay" "SELECT event_id FROM outbox.events"
check "replayed as the subscription's role" sql_is "SELECT by_role FROM inbox_effects WHERE event_id = '$poison'" inbox_svc
check "no dead letters left" sql_is "SELECT count(*) FROM outbox.inbox_dead_letters" 0
done_testing
