#!/usr/bin/env bash
# Publisher test 4: crashes. The worker is SIGKILLed mid-stream (the
# postmaster then restarts the whole cluster), and separately the postmaster
# itself is kill -9'd and started again, each while writers commit small
# transactions with synchronous_commit = off. After recovery nothing
# committed is lost, and nothing reached Kafka from a transaction that
# recovery did not bring back.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:8
set_conf synchronous_commit off
datadir=$(q -c "SHOW data_directory")
sockdir=$(q -c "SHOW unix_socket_directories" | cut -d, -f1)
cluster_up() { q -c "SELECT 1" >/dev/null 2>&1; }
published() { q -c "SELECT published FROM outbox.status"; }

aggregate_writer_script "$TEST_TMP/emit.sql" 200
# Writers until the crash cuts them off (pgbench then exits with an error).
start_writers() {
    pgbench -n -c 4 -j 2 -T 60 -R 1000 -f "$TEST_TMP/emit.sql" >/dev/null 2>&1 &
    WRITERS=$!
}
mid_stream() {                  # published grew by at least 500 since $1
    local before=$1
    poll_until 30 "publishing mid-stream" sql_is "SELECT published >= $before + 500 FROM outbox.status" t
}

start_writers
mid_stream "$(published)"
kill -9 "$(publisher_pid)"
wait $WRITERS 2>/dev/null
check "cluster recovers after the worker's SIGKILL" poll_until 60 "cluster up" cluster_up
check "publisher back" poll_until 60 "publisher" sql_is "SELECT worker_pid IS NOT NULL FROM outbox.status" t

start_writers
mid_stream "$(published)"
pm=$(head -1 "$datadir/postmaster.pid")
children=$(pgrep -d ' ' -P "$pm")
kill -9 "$pm"
wait $WRITERS 2>/dev/null
# The children notice the postmaster's death and exit (re-parented, so wait
# for them by pid); then start it again, removing the lock files a killed
# postmaster leaves behind, as an operator would.
poll_until 60 "old backends gone" bash -c "! kill -0 $children 2>/dev/null"
rm -f "$datadir/postmaster.pid" "$sockdir/.s.PGSQL.$PGPORT.lock"
read -r ver name < <(pg_lsclusters -h | awk '{print $1, $2; exit}')
pg_ctlcluster "$ver" "$name" start
check "cluster starts again after kill -9 of the postmaster" poll_until 60 "cluster up" cluster_up

check "the outbox drains" poll_until 120 "pending = 0" pending_is_zero
echo "# events that survived recovery: $(q -c 'SELECT count(*) FROM outbox.events')"
check_delivery outbox.event.Order "after crashes"
done_testing
