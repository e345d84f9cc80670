#!/usr/bin/env bash
# Publisher test 2: the broker goes down for 10 s while events are being
# emitted. Nothing is lost, nothing counts as a failed attempt, and
# publishing resumes by itself once the broker is back.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:8

aggregate_writer_script "$TEST_TMP/emit.sql" 100
pgbench -n -c 2 -j 2 -T 20 -R 200 -f "$TEST_TMP/emit.sql" >"$TEST_TMP/pgbench.log" 2>&1 &
writers=$!
poll_until 10 "first events published" sql_is "SELECT published > 0 FROM outbox.status" t

kafka_ctl "$KDIR" broker_down 1 >/dev/null
check "events wait while the broker is down" poll_until 10 "pending grows" \
    sql_is "SELECT pending > 100 FROM outbox.status" t
sleep 10                          # the outage itself: its length is the scenario
kafka_ctl "$KDIR" broker_up 1 >/dev/null
wait $writers

check "publishing resumes by itself" poll_until 120 "pending = 0" pending_is_zero
check "no event parked or dead" sql_is "SELECT parked + dead FROM outbox.status" 0
check_delivery outbox.event.Order "broker outage"
done_testing
