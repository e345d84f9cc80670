# Helpers for the script tests in test/ (sourced). They run inside a
# throwaway cluster (pg_virtualenv) with outbox_ext preloaded, against the
# local Kafka of test/kafka_mock. Waits poll with a deadline, never sleep a
# fixed time for an effect.

TEST_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_MOCK="$TEST_ROOT/kafka_mock/kafka_mock"
TESTS_RUN=0
TESTS_FAILED=0

ok() { TESTS_RUN=$((TESTS_RUN + 1)); echo "ok - $*"; }
not_ok() { TESTS_RUN=$((TESTS_RUN + 1)); TESTS_FAILED=$((TESTS_FAILED + 1)); echo "not ok - $*"; }
check() {                       # check "description" command...
    local what=$1; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
done_testing() { [ "$TESTS_FAILED" -eq 0 ]; }

q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

# poll_until SECONDS "description" command... : true once the command succeeds.
poll_until() {
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    while [ $SECONDS -lt $deadline ]; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "# timed out after ${secs}s waiting for: $what" >&2
    return 1
}

sql_is() {                      # sql_is "SQL" expected
    [ "$(q -c "$1" 2>/dev/null)" = "$2" ]
}

# Server settings, applied with a reload.
set_conf() {                    # set_conf name value
    q -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null
}

# ---- local Kafka ---------------------------------------------------------
kafka_start() {                 # kafka_start DIR [serve args...]
    local dir=$1; shift
    mkdir -p "$dir"
    setsid "$KAFKA_MOCK" serve --dir "$dir" "$@" >"$dir/log" 2>&1 < /dev/null &
    poll_until 20 "kafka mock bootstrap file" test -s "$dir/bootstrap"
}
kafka_bootstrap() { cat "$1/bootstrap"; }
kafka_ctl() { local dir=$1; shift; "$KAFKA_MOCK" ctl --dir "$dir" "$@"; }
kafka_stop() {
    local dir=$1
    [ -S "$dir/control" ] && kafka_ctl "$dir" quit >/dev/null 2>&1 || true
    if [ -f "$dir/pid" ]; then kill "$(cat "$dir/pid")" 2>/dev/null || true; fi
}

# All messages of a topic as "partition<TAB>offset<TAB>key<TAB>id" lines.
kafka_dump() {                  # kafka_dump DIR topic
    kcat -b "$(kafka_bootstrap "$1")" -C -t "$2" -e -q -o beginning \
         -X socket.nagle.disable=true -f '%p\t%o\t%k\t%h\n' 2>/dev/null |
        sed -E 's/\t(.*,)?id=([0-9a-f-]{36}).*$/\t\2/'
}

# ---- the publisher -------------------------------------------------------
publisher_state() { q -c "SELECT worker_state FROM outbox.status"; }
publisher_pid() { q -c "SELECT coalesce(worker_pid, 0) FROM outbox.status"; }
pending_is_zero() { sql_is "SELECT pending FROM outbox.status" 0; }

# Load a topic's dump into table kafka_<name>(part, off, key, event_id) for SQL checks.
load_dump() {                   # load_dump DIR topic table
    kafka_dump "$1" "$2" > "$TEST_TMP/$3.tsv"
    q -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS $3" -c "CREATE TABLE $3 (part int, off bigint, key text, event_id uuid)"
    q -c "\\copy $3 FROM '$TEST_TMP/$3.tsv'"
}

# Start the local Kafka and point this database's publisher at it.
publisher_setup() {             # publisher_setup [kafka_mock serve args...]
    TEST_TMP=$(mktemp -d)
    KDIR=$TEST_TMP/kafka
    trap 'kafka_stop "$KDIR"; rm -rf "$TEST_TMP"' EXIT
    kafka_start "$KDIR" --brokers "${KAFKA_BROKERS:-1}" "$@"
    q -c "CREATE EXTENSION IF NOT EXISTS outbox_ext"
    set_conf outbox.poll_interval 200ms
    set_conf outbox.database "$(q -c 'SELECT current_database()')"
    set_conf outbox.brokers "$(kafka_bootstrap "$KDIR")"
    poll_until 30 "publisher idle" sql_is "SELECT worker_state FROM outbox.status" idle
}

# Every committed event arrived once, no rolled-back one did, and per key
# the order in Kafka (offset within the partition) is the order of seq
# (writers of one key must serialize on it, as aggregate_writer_script does).
check_delivery() {              # check_delivery topic label
    local topic=$1 label=$2
    load_dump "$KDIR" "$topic" kafka_got
    echo "# $label: kafka has $(q -c "SELECT count(*) || ' messages, ' || count(DISTINCT event_id) || ' distinct' FROM kafka_got");" \
         "missing: $(q -c "SELECT count(*) || ' (seq ' || coalesce(min(seq)::text, '-') || '..' || coalesce(max(seq)::text, '-') || ')'
                            FROM outbox.events e WHERE e.topic = '$topic'
                             AND NOT EXISTS (SELECT 1 FROM kafka_got k WHERE k.event_id = e.event_id)")"
    check "$label: every committed event arrived" sql_is \
        "SELECT count(*) FROM outbox.events e WHERE e.topic = '$topic'
           AND NOT EXISTS (SELECT 1 FROM kafka_got k WHERE k.event_id = e.event_id)" 0
    check "$label: nothing arrived that was not committed" sql_is \
        "SELECT count(*) FROM kafka_got k
          WHERE NOT EXISTS (SELECT 1 FROM outbox.events e WHERE e.event_id = k.event_id)" 0
    # Redelivered copies (at least once) come later; the first copies keep the order.
    check "$label: per-key order kept" sql_is \
        "SELECT count(*) FROM (
           SELECT e.seq < lag(e.seq) OVER (PARTITION BY f.key ORDER BY f.part, f.off) AS backwards
           FROM (SELECT DISTINCT ON (event_id) * FROM kafka_got ORDER BY event_id, part, off) f
           JOIN outbox.events e USING (event_id)) s WHERE backwards" 0
}

# Emit N events in one background session, one per transaction, keys k1..k50.
emit_in_background() {          # emit_in_background N topic-aggregate  -> sets EMIT_PID
    psql -X -q -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<SQL &
SELECT count(*) FROM generate_series(1, $1) g,
       LATERAL (SELECT outbox.emit('$2', 'k' || (g % 50), 'E', jsonb_build_object('g', g))) e;
SQL
    EMIT_PID=$!
}

# The server log of this cluster (pg_virtualenv's), and a check that the
# publisher logged no error there.
server_log() { pg_lsclusters -h | awk '{print $7; exit}'; }
check_no_publisher_errors() {   # check_no_publisher_errors label
    check "$1: no error in outbox.status" sql_is "SELECT coalesce(last_error, 'none') FROM outbox.status" none
    check "$1: no publisher error in the server log" bash -c \
        "! grep -E 'outbox_ext publisher: |PANIC|was terminated by signal' '$(server_log)' | grep -v 'Kafka settings changed'"
}

# pgbench script: one event per transaction for one of 'keys' aggregates,
# each writer first locking its aggregate's row as applications do, so
# per-key order is defined (see check_delivery).
aggregate_writer_script() {     # aggregate_writer_script FILE KEYS
    q -c "CREATE TABLE IF NOT EXISTS aggregates (k int PRIMARY KEY, version int NOT NULL DEFAULT 0)" \
      -c "INSERT INTO aggregates SELECT g FROM generate_series(1, $2) g ON CONFLICT DO NOTHING" >/dev/null
    cat > "$1" <<SQL
\\set k random(1, $2)
BEGIN;
UPDATE aggregates SET version = version + 1 WHERE k = :k;
SELECT outbox.emit('Order', 'k' || :k, 'OrderPlaced', '{}');
COMMIT;
SQL
}

# ---- the inbox -----------------------------------------------------------
# A service role with a handler that records each call in inbox_effects
# (no unique key: a message applied twice shows as two rows). The handler
# raises for payloads with "fail": true, and while nextval of flaky_seq is
# below the payload's "flaky" count.
# (Other databases: set PGDATABASE around these helpers.)
inbox_handler_setup() {
    q >/dev/null <<'SQL'
DO $$ BEGIN CREATE ROLE inbox_svc; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE inbox_effects (consumer text, event_id uuid, root_id uuid, topic text, part int,
                            off bigint, payload jsonb, by_role text, at timestamptz DEFAULT clock_timestamp());
CREATE SEQUENCE flaky_seq;
GRANT INSERT ON inbox_effects TO inbox_svc;
GRANT USAGE ON SEQUENCE flaky_seq TO inbox_svc;
CREATE FUNCTION inbox_handler(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (event -> 'payload' ->> 'fail')::boolean THEN
        RAISE EXCEPTION 'refusing event %', event ->> 'event_id' USING ERRCODE = 'P0001';
    END IF;
    IF (event -> 'payload' ->> 'flaky')::int > nextval('public.flaky_seq') THEN
        RAISE EXCEPTION 'flaky failure for event %', event ->> 'event_id';
    END IF;
    INSERT INTO public.inbox_effects (consumer, event_id, root_id, topic, part, off, payload, by_role)
    VALUES (current_setting('inbox.consumer', true), (event ->> 'event_id')::uuid, outbox.current_root(),
            event ->> 'topic', (event ->> 'partition')::int, (event ->> 'offset')::bigint,
            event -> 'payload', current_user);
END $$;
GRANT EXECUTE ON FUNCTION inbox_handler(jsonb) TO inbox_svc;
GRANT EXECUTE ON FUNCTION outbox.current_root(), outbox.emit(text, text, text, jsonb, jsonb, text, text)
    TO inbox_svc;
SQL
}

# Subscribe as inbox_svc with test-friendly consumer settings.
inbox_subscribe() {             # inbox_subscribe consumer topics-array-literal [options-json]
    local opts=${3:-'{}'}
    q -c "SELECT outbox.subscribe('$1', '$2', 'public.inbox_handler(jsonb)',
        '{\"run_as\": \"inbox_svc\", \"kafka\": {\"session.timeout.ms\": 6000, \"fetch.wait.max.ms\": 10,
                      \"heartbeat.interval.ms\": 500}}'::jsonb || '$opts'::jsonb)" >/dev/null
}

inbox_state() {                 # inbox_state consumer
    q -c "SELECT state FROM outbox.subscriptions WHERE consumer = '$1'"
}

# Handled exactly the events in "expected" (a query of event ids), once each.
check_exactly_once() {          # check_exactly_once label "SELECT event_id ..."
    local label=$1 expected=$2
    echo "# $label: $(q -c "SELECT count(*) || ' effects, ' || count(DISTINCT event_id) || ' distinct' FROM inbox_effects")," \
         "expected $(q -c "SELECT count(*) FROM ($expected) e")"
    check "$label: no message applied twice" sql_is \
        "SELECT count(*) FROM (SELECT event_id FROM inbox_effects GROUP BY event_id HAVING count(*) > 1) d" 0
    check "$label: none missing" sql_is \
        "SELECT count(*) FROM ($expected) e(event_id)
          WHERE NOT EXISTS (SELECT 1 FROM inbox_effects f WHERE f.event_id = e.event_id)" 0
    check "$label: nothing unexpected" sql_is \
        "SELECT count(*) FROM inbox_effects f
          WHERE NOT EXISTS (SELECT 1 FROM ($expected) e(event_id) WHERE f.event_id = e.event_id)" 0
}
