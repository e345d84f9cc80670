#!/usr/bin/env bash
# Publisher lifecycle: workers follow outbox.database (a database created
# later gets one; a database without the extension gets an idle worker in
# state no_extension); DROP EXTENSION and CREATE EXTENSION while it runs;
# a library/SQL version mismatch is detected; DROP DATABASE of a served
# database works; too few max_worker_processes shows in outbox.status.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:4
worker_activity() {             # worker_activity DB -> its pg_stat_activity line
    q -c "SELECT query FROM pg_stat_activity WHERE backend_type = 'outbox_ext publisher' AND datname = '$1'"
}

# A database named before it exists gets a worker once created; without
# the extension the worker idles in state no_extension.
set_conf outbox.database "postgres, later"
createdb later
check "a database created later gets a worker" poll_until 20 "worker in later" \
    bash -c "psql -XAtc \"SELECT 1 FROM pg_stat_activity WHERE backend_type = 'outbox_ext publisher' AND datname = 'later'\" | grep -q 1"
check "without the extension it idles in state no_extension" poll_until 20 "no_extension" \
    bash -c "psql -XAtc \"SELECT query FROM pg_stat_activity WHERE backend_type = 'outbox_ext publisher' AND datname = 'later'\" | grep -q no_extension"
psql -X -q -d later -c "CREATE EXTENSION outbox_ext"
check "after CREATE EXTENSION it publishes" poll_until 20 "later idle" \
    bash -c "[ \"\$(psql -XAt -d later -c 'SELECT worker_state FROM outbox.status')\" = idle ]"
e=$(psql -XAt -d later -c "SELECT outbox.emit('Order', 'l1', 'OrderPlaced', '{}')")
check "an event of the second database arrives" poll_until 20 "published" \
    bash -c "[ \"\$(psql -XAt -d later -c \"SELECT outbox.event_status('$e')\")\" = published ]"

# DROP EXTENSION while the worker runs: it waits, idles, and comes back.
pid=$(publisher_pid)
check "DROP EXTENSION succeeds while the worker runs" q -c "DROP EXTENSION outbox_ext"
check "the worker idles in no_extension" poll_until 20 "no_extension" \
    bash -c "psql -XAtc \"SELECT query FROM pg_stat_activity WHERE backend_type = 'outbox_ext publisher' AND datname = 'postgres'\" | grep -q no_extension"
q -c "CREATE EXTENSION outbox_ext"
check "CREATE EXTENSION again: publishing resumes" poll_until 20 "idle" sql_is "SELECT worker_state FROM outbox.status" idle
check "same worker throughout" test "$(publisher_pid)" = "$pid"
e=$(q -c "SELECT outbox.emit('Order', 'p1', 'OrderPlaced', '{}')")
check "and events flow" poll_until 20 "published" sql_is "SELECT outbox.event_status('$e')" published

# The installed SQL and the loaded library disagree (as after ALTER
# EXTENSION UPDATE without the new library): detected, nothing published.
q -c "UPDATE pg_extension SET extversion = '99.0' WHERE extname = 'outbox_ext'" >/dev/null
e=$(q -c "SELECT outbox.emit('Order', 'v1', 'OrderPlaced', '{}')")
check "a version mismatch is detected" poll_until 20 "version_mismatch" \
    sql_is "SELECT worker_state FROM outbox.status" version_mismatch
check "and explained" sql_is "SELECT last_error LIKE '%ALTER EXTENSION outbox_ext UPDATE%' FROM outbox.status" t
check "nothing is published meanwhile" sql_is "SELECT outbox.event_status('$e')" pending
q -c "UPDATE pg_extension SET extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'outbox_ext') WHERE extname = 'outbox_ext'" >/dev/null
check "matching again: it publishes" poll_until 20 "published" sql_is "SELECT outbox.event_status('$e')" published

# DROP DATABASE of a served database: the worker steps aside.
check "DROP DATABASE of a served database succeeds" bash -c "dropdb later 2>&1"
check "its worker is gone" poll_until 20 "no worker in later" \
    bash -c "! psql -XAtc \"SELECT 1 FROM pg_stat_activity WHERE backend_type = 'outbox_ext publisher' AND datname = 'later'\" | grep -q 1"
check "the other database's worker is untouched" test "$(publisher_pid)" = "$pid"

# Not enough background worker slots: the failure shows in outbox.status.
for db in d1 d2 d3; do createdb $db; psql -X -q -d $db -c "CREATE EXTENSION outbox_ext"; done
q -c "ALTER SYSTEM SET max_worker_processes = 4" >/dev/null
read -r ver name < <(pg_lsclusters -h | awk '{print $1, $2; exit}')
pg_ctlcluster "$ver" "$name" restart
set_conf outbox.database "postgres,d1,d2,d3"
check "a database that got no worker says why" poll_until 30 "registration_failed" bash -c \
    "for db in d1 d2 d3; do psql -XAt -d \$db -c 'SELECT worker_state, last_error FROM outbox.status'; done | grep -q 'registration_failed|.*max_worker_processes'"
done_testing
