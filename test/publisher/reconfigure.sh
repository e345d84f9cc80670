#!/usr/bin/env bash
# Publisher test 6: a SIGHUP with a changed broker list is picked up without
# a restart: the producer is recreated and events go to the new cluster.
# Also: empty brokers pause publishing while events accumulate safely.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:4
KDIR2=$TEST_TMP/kafka2
trap 'kafka_stop "$KDIR"; kafka_stop "$KDIR2"; rm -rf "$TEST_TMP"' EXIT
kafka_start "$KDIR2" --brokers 1 --topic outbox.event.Order:4
pid=$(publisher_pid)

a=$(q -c "SELECT outbox.emit('Order', 'a', 'OrderPlaced', '{}')")
poll_until 10 "a published" sql_is "SELECT outbox.event_status('$a')" published

set_conf outbox.brokers ""
check "empty brokers pause publishing" poll_until 10 "paused" sql_is "SELECT worker_state FROM outbox.status" paused
b=$(q -c "SELECT outbox.emit('Order', 'b', 'OrderPlaced', '{}')")
check "events accumulate while paused" sql_is "SELECT outbox.event_status('$b')" pending

set_conf outbox.brokers "$(kafka_bootstrap "$KDIR2")"
check "publishing resumes on the new brokers" poll_until 20 "b published" \
    sql_is "SELECT outbox.event_status('$b')" published
c=$(q -c "SELECT outbox.emit('Order', 'c', 'OrderPlaced', '{}')")
poll_until 10 "c published" sql_is "SELECT outbox.event_status('$c')" published
check "same worker, no restart" test "$(publisher_pid)" = "$pid"

kafka_dump "$KDIR2" outbox.event.Order > "$TEST_TMP/new.tsv"
kafka_dump "$KDIR" outbox.event.Order > "$TEST_TMP/old.tsv"
check "the new cluster got b and c" bash -c "grep -q $b '$TEST_TMP/new.tsv' && grep -q $c '$TEST_TMP/new.tsv'"
check "the old cluster got a only" bash -c "grep -q $a '$TEST_TMP/old.tsv' && ! grep -q $b '$TEST_TMP/old.tsv'"
done_testing
