#!/usr/bin/env bash
# Publisher test 7: bad configuration. An unknown librdkafka property, a
# property that would break the guarantees, a secrets file others can read,
# and unreachable brokers each give a clear error in the log and in
# outbox.status, no crash loop, and no loss once fixed.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:4
pid=$(publisher_pid)
logfile=$(q -c "SELECT pg_current_logfile()" 2>/dev/null)

# Refused at ALTER SYSTEM time: syntax and guarantee-breaking properties.
check "a property that breaks the guarantees is refused" bash -c \
    "! psql -XAtc \"ALTER SYSTEM SET outbox.kafka_config = 'acks=1'\" 2>/dev/null"
check "an unparsable list is refused" bash -c \
    "! psql -XAtc \"ALTER SYSTEM SET outbox.kafka_config = 'linger.ms'\" 2>/dev/null"

# Unknown to librdkafka: only the worker can tell; it says so and waits.
set_conf outbox.kafka_config "no.such.property=1"
check "an unknown property puts the worker in config_error" poll_until 20 "config_error" \
    sql_is "SELECT worker_state FROM outbox.status" config_error
check "the error names the property" sql_is \
    "SELECT last_error LIKE '%no.such.property%' FROM outbox.status" t
e1=$(q -c "SELECT outbox.emit('Order', 'x', 'OrderPlaced', '{}')")
check "events wait meanwhile" sql_is "SELECT outbox.event_status('$e1')" pending
check "no crash loop: same worker" test "$(publisher_pid)" = "$pid"

# A secrets file readable by others is refused.
printf 'linger.ms=2\n' > "$TEST_TMP/secrets.conf"
chmod 644 "$TEST_TMP/secrets.conf"
chown postgres "$TEST_TMP/secrets.conf" 2>/dev/null
chmod 755 "$TEST_TMP"
set_conf outbox.kafka_config ""
set_conf outbox.kafka_config_file "$TEST_TMP/secrets.conf"
check "a group/world-readable secrets file is refused" poll_until 20 "file refused" \
    sql_is "SELECT last_error LIKE '%readable by group or others%' FROM outbox.status" t
chmod 600 "$TEST_TMP/secrets.conf"
q -c "SELECT pg_reload_conf()" >/dev/null
check "fixed: the event goes out" poll_until 20 "e1 published" sql_is "SELECT outbox.event_status('$e1')" published

# Unreachable brokers: events wait, the error shows, and they go once fixed.
set_conf outbox.kafka_config "message.timeout.ms=2000"
set_conf outbox.brokers "127.0.0.1:1"
e2=$(q -c "SELECT outbox.emit('Order', 'y', 'OrderPlaced', '{}')")
check "unreachable brokers show in last_error" poll_until 30 "transport error" \
    sql_is "SELECT last_error ~* '(transport|connect|brokers are down|timed out)' FROM outbox.status" t
check "events wait meanwhile" sql_is "SELECT outbox.event_status('$e2')" pending
set_conf outbox.brokers "$(kafka_bootstrap "$KDIR")"
check "fixed: no loss" poll_until 30 "e2 published" sql_is "SELECT outbox.event_status('$e2')" published
check "still the same worker" test "$(publisher_pid)" = "$pid"
check "nothing parked or dead" sql_is "SELECT parked + dead FROM outbox.status" 0
done_testing
