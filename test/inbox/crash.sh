#!/usr/bin/env bash
# Inbox test 2: crashes. The inbox worker is SIGKILLed mid-stream (the
# postmaster restarts the whole cluster), and a test-only fault point makes
# it exit right after a database commit, before the Kafka commit, several
# times. Writers keep emitting meanwhile. In the end every event is applied
# exactly once: 0 doubles, 0 missing.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:4
inbox_handler_setup
cluster_up() { q -c "SELECT 1" >/dev/null 2>&1; }
effects() { q -c "SELECT count(*) FROM inbox_effects"; }
inbox_pid() { q -c "SELECT coalesce(worker_pids[1], 0) FROM outbox.subscriptions WHERE consumer = 'orders'"; }
applied_grew() {                # applied_grew BEFORE: 300 more effects since
    poll_until 60 "applying mid-stream" sql_is "SELECT count(*) >= $1 + 300 FROM inbox_effects" t
}

aggregate_writer_script "$TEST_TMP/emit.sql" 100
writers() { pgbench -n -c 2 -j 2 -t "$1" -R 400 -f "$TEST_TMP/emit.sql" >/dev/null 2>&1; }

# Small batches: many commits, so the kill lands between some of them.
inbox_subscribe orders '{outbox.event.Order}' '{"batch_size": 20}'
check "the inbox worker runs" poll_until 30 "consuming" sql_is \
    "SELECT state FROM outbox.subscriptions WHERE consumer = 'orders'" consuming

writers 1500 &
W=$!
applied_grew 0
kill -9 "$(inbox_pid)"
wait $W 2>/dev/null
check "cluster recovers after the inbox worker's SIGKILL" poll_until 60 "cluster up" cluster_up
check "the inbox worker is back" poll_until 60 "inbox pid" sql_is \
    "SELECT worker_pids[1] > 0 FROM outbox.subscriptions WHERE consumer = 'orders'" t

# The fault point: exit after every 3rd database commit of a worker process.
set_conf outbox.inbox_fault_after_commits 3
writers 1500 &
W=$!
check "the fault point fires repeatedly" poll_until 90 "3 faults" bash -c \
    "[ \$(grep -c 'test fault: exiting after database commit' '$(server_log)') -ge 3 ]"
wait $W
set_conf outbox.inbox_fault_after_commits 0

check "the outbox drains" poll_until 120 "pending = 0" pending_is_zero
total=$(q -c "SELECT count(DISTINCT event_id) FROM outbox.events")
check "every event is applied" poll_until 120 "$total effects" sql_is \
    "SELECT count(DISTINCT event_id) FROM inbox_effects" "$total"
check_exactly_once "after a crash and exits between the two commits" "SELECT DISTINCT event_id FROM outbox.events"
grep -E "outbox_ext (inbox|publisher)" "$(server_log)" | grep -v "changed to" | tail -20
echo "# events: $total; publisher copies in Kafka beyond one per event: $(q -c "SELECT sum(next_offset) - $total FROM outbox.inbox_offsets")"
done_testing
