#!/usr/bin/env bash
# Publisher test 3: the worker is terminated (pg_terminate_backend) five
# times while events stream in. It is restarted each time and nothing is
# lost; pages in flight are sent again (at least once, never lost).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
publisher_setup --topic outbox.event.Order:8

emit_in_background 20000 Order
for i in 1 2 3 4 5; do
    pid=$(publisher_pid)
    poll_until 20 "some events published" sql_is "SELECT published > 0 FROM outbox.status" t
    q -c "SELECT pg_terminate_backend($pid)" >/dev/null
    check "restart $i: a new publisher runs" poll_until 30 "new worker pid" \
        bash -c "p=\$(psql -XAtc 'SELECT coalesce(worker_pid, 0) FROM outbox.status'); [ \"\$p\" != 0 ] && [ \"\$p\" != $pid ]"
done
wait $EMIT_PID
check "the outbox drains" poll_until 120 "pending = 0" pending_is_zero
check_delivery outbox.event.Order "worker terminated 5 times"
check_no_publisher_errors "worker restarts"
check "exactly one publisher" sql_is \
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'outbox_ext publisher'" 1
done_testing
