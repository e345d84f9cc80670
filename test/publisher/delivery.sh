#!/usr/bin/env bash
# Publisher test 1: 8 concurrent sessions emit about 20k events with random
# commit delays, 10% of transactions rolled back. Every committed event
# arrives, no rolled-back one does, per-key order holds (for writers that
# serialize on the aggregate, as applications do), and commits wake the
# publisher (a lone event arrives well before the poll interval would).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:16

set_conf outbox.poll_interval 30s     # only commits can wake it now
# Writers of one aggregate serialize on its row, as applications do: per-key
# order is the order of those transactions (unrelated concurrent writers of
# one key have no order to keep).
q -c "CREATE TABLE aggregates (k int PRIMARY KEY, version int NOT NULL DEFAULT 0)" \
  -c "INSERT INTO aggregates SELECT g FROM generate_series(1, 500) g" >/dev/null
cat > "$TEST_TMP/emit.sql" <<'SQL'
\set k random(1, 500)
\set r random(1, 10)
\set d random(0, 2000)
BEGIN;
UPDATE aggregates SET version = version + 1 WHERE k = :k;
SELECT outbox.emit('Order', 'k' || :k, 'OrderPlaced', '{"n": 1}');
SELECT outbox.emit('Order', 'k' || :k, 'OrderChanged', '{"n": 2}');
\sleep :d us
\if :r = 1
ROLLBACK;
\else
COMMIT;
\endif
SQL
pgbench -n -c 8 -j 2 -t 1250 -f "$TEST_TMP/emit.sql" >"$TEST_TMP/pgbench.log" 2>&1
check "pgbench ran" grep -q "number of failed transactions: 0" "$TEST_TMP/pgbench.log"
committed=$(q -c "SELECT count(*) FROM outbox.events")
echo "# committed events: $committed"
check "some transactions rolled back" test "$committed" -lt 20000
check "about 20k events emitted" test "$committed" -gt 16000

check "the publisher drains the outbox" poll_until 120 "pending = 0" pending_is_zero
check "published count matches" sql_is "SELECT published FROM outbox.status" "$committed"
check_delivery outbox.event.Order "concurrent writers"

# Wake on commit: with a 30 s poll interval, an event arrives within seconds.
id=$(q -c "SELECT outbox.emit('Order', 'lone', 'OrderPlaced', '{}')")
check "a commit wakes the publisher" poll_until 5 "lone event published" \
    sql_is "SELECT outbox.event_status('$id')" published
# A rolled-back emit does not wake it (nothing to see, but nothing breaks).
q -c "BEGIN; SELECT outbox.emit('Order', 'ghost', 'OrderPlaced', '{}'); ROLLBACK;" >/dev/null
check "state is idle again" poll_until 5 "idle" sql_is "SELECT worker_state FROM outbox.status" idle
check_no_publisher_errors "concurrent writers"

done_testing
