#!/usr/bin/env bash
# A real pg_dump / pg_restore round trip of a database using outbox_ext:
# events, processed records and captures survive; the restored outbox knows
# it is foreign (status.cursor_ok = false) and nothing is truncated until
# outbox.reset_cursor(), which requeues exactly the events still pending at
# dump time. Runs inside pg_virtualenv (PG* variables point at a cluster).
set -euo pipefail

fail() { echo "not ok - $*"; exit 1; }
q() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

dump=$(mktemp)
trap 'rm -f "$dump"; dropdb --if-exists outbox_dump_src; dropdb --if-exists outbox_dump_dst' EXIT
dropdb --if-exists outbox_dump_src 2>/dev/null
dropdb --if-exists outbox_dump_dst 2>/dev/null
createdb outbox_dump_src

q outbox_dump_src "CREATE EXTENSION outbox_ext"
q outbox_dump_src "CREATE TABLE orders (id int PRIMARY KEY, total int)"
q outbox_dump_src "SELECT outbox.capture('orders', 'Order')"
q outbox_dump_src "INSERT INTO orders SELECT g, g FROM generate_series(1, 5) g"
# Simulate the publisher having sent those five.
q outbox_dump_src "UPDATE outbox._cursor SET prev_snap = pg_current_snapshot(), published_total = 5"
q outbox_dump_src "INSERT INTO orders SELECT g, g FROM generate_series(6, 8) g"
q outbox_dump_src "SELECT outbox.try_process('billing', gen_random_uuid())" >/dev/null
pending_src=$(q outbox_dump_src "SELECT pending FROM outbox.status")
[ "$pending_src" = 3 ] || fail "source: expected 3 pending, got $pending_src"

pg_dump -Fc -f "$dump" outbox_dump_src
createdb outbox_dump_dst
pg_restore -d outbox_dump_dst --exit-on-error "$dump"

[ "$(q outbox_dump_dst "SELECT count(*) FROM outbox.events")" = 8 ] || fail "events not restored"
[ "$(q outbox_dump_dst "SELECT count(*) FROM outbox.processed_messages")" = 1 ] || fail "processed records not restored"
[ "$(q outbox_dump_dst "SELECT count(*) FROM outbox.captured_tables")" = 1 ] || fail "capture not restored"
[ "$(q outbox_dump_dst "SELECT cursor_ok FROM outbox.status")" = f ] || fail "restored outbox not detected"
[ "$(q outbox_dump_dst "SELECT events FROM outbox.purge('0')")" = 0 ] || fail "purge removed events before reset_cursor()"

requeued=$(q outbox_dump_dst "SELECT outbox.reset_cursor()")
[ "$requeued" = 3 ] || fail "reset_cursor requeued $requeued, expected the 3 pending at dump time"
[ "$(q outbox_dump_dst "SELECT cursor_ok FROM outbox.status")" = t ] || fail "cursor still foreign after reset"
[ "$(q outbox_dump_dst "SELECT pending FROM outbox.status")" = 3 ] || fail "wrong pending count after reset"

# New writes in the restored database are captured and pending.
q outbox_dump_dst "INSERT INTO orders VALUES (9, 9)"
[ "$(q outbox_dump_dst "SELECT pending FROM outbox.status")" = 4 ] || fail "new event not pending"
# The restored sequence continues: no seq collides with a restored one.
[ "$(q outbox_dump_dst "SELECT count(DISTINCT seq) = count(*) FROM outbox.events")" = t ] || fail "seq reused"

echo "ok - pg_dump/pg_restore round trip"
