#!/usr/bin/env bash
# bench/profile.sh: where the time of a benchmark variant goes, with perf.
#
#   bench/profile.sh TARGET...
#
# TARGET: emit, plain, single_stmt, single_row, single_none (a pgbench script
# of bench/run.sh, profiled for BENCH_PROFILE_SECONDS), or bulk_insert,
# bulk_update, bulk_delete (one statement of bench/sql/bulk.sql on the
# captured table, BENCH_ROWS rows). Needs root (or perf rights on the server's
# processes) and perf (Debian: apt-get install linux-perf).
#
# For each target it writes to BENCH_PROFILE_DIR (default bench/profile/):
# TARGET.perf.data and TARGET.txt (the functions with the most self time, and
# the inclusive time of the extension's functions and of the executor steps
# they call). The server's own static functions show as addresses unless
# its debug symbols are installed.
#
# Environment: BENCH_PROFILE_SECONDS=10, BENCH_CLIENTS=1, BENCH_ROWS=100000,
# BENCH_PROFILE_DIR=bench/profile, BENCH_PERF_FREQ=999 (samples/s).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER_RUN=${BENCH_PROFILE_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-1}
ROWS=${BENCH_ROWS:-100000}
OUT=${BENCH_PROFILE_DIR:-bench/profile}
FREQ=${BENCH_PERF_FREQ:-999}

die() { echo "bench/profile.sh: $*" >&2; exit 1; }

# Helper modes, called from psql's \! in bench/sql/profile_bulk.sql: start
# perf on this psql session's backend ($BPID), and stop it.
case ${1:-} in
    --perf-start)
        perf record -q -F "$FREQ" --call-graph dwarf,16384 -p "$BPID" -o "$OUT/$2.perf.data" \
            2>"$OUT/$2.perf.log" &
        echo $! >"$OUT/perf.pid"
        exit 0;;
    --perf-stop)
        pid=$(cat "$OUT/perf.pid")
        kill -INT "$pid"
        deadline=$((SECONDS + 120))
        while kill -0 "$pid" 2>/dev/null; do      # perf writes its file, then exits
            ((SECONDS < deadline)) || die "perf did not exit"
            sleep 0.1
        done
        exit 0;;
esac

[[ $# -gt 0 ]] || die "usage: bench/profile.sh TARGET... (emit plain single_stmt single_row single_none bulk_insert bulk_update bulk_delete)"
for t in "$@"; do
    case $t in emit|plain|single_stmt|single_row|single_none|bulk_insert|bulk_update|bulk_delete) ;;
        *) die "unknown target '$t'";; esac
done
command -v perf >/dev/null || die "perf is missing (Debian: apt-get install linux-perf)"

if [[ -z ${BENCH_IN_CLUSTER:-} ]]; then
    PG_MAJOR=$("${PG_CONFIG:-pg_config}" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
    export BENCH_IN_CLUSTER=1
    # A socket directory of our own (see bench/run.sh).
    SOCK=$(mktemp -d -t outbox_bench_sock.XXXXXX)
    trap 'rm -rf "$SOCK"' EXIT
    chmod 1777 "$SOCK"
    pg_virtualenv -t -v "$PG_MAJOR" -o synchronous_commit=off -o shared_buffers=512MB \
        -o max_wal_size=8GB -o checkpoint_timeout=1h -o autovacuum=off -o jit=off \
        -o "unix_socket_directories=$SOCK" "$ROOT/bench/profile.sh" "$@"
    exit 0
fi

# ---------------------------------------------------------------- inside ----

mkdir -p "$OUT"
export OUT FREQ
export BENCH_PROFILE_SELF="$ROOT/bench/profile.sh"
export PGOPTIONS="${PGOPTIONS:-} -c synchronous_commit=off -c jit=off"
psqlq() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
psqlq -d postgres -c "CREATE DATABASE outbox_bench" >/dev/null
export PGDATABASE=outbox_bench
psqlq -f bench/sql/setup.sql >/dev/null

reset_tables() {
    psqlq -c "TRUNCATE bench.orders, bench.bulk_captured, bench.single_stmt, bench.single_row, bench.single_none" \
          -c "TRUNCATE bench.plain_events, outbox.events_0, outbox.events_1, outbox.events_2" \
          -c "VACUUM ANALYZE" -c "CHECKPOINT"
}

# The report: most self time, then the inclusive time of selected functions.
report() {
    local t=$1 f="$OUT/$1.txt"
    {
        set +o pipefail     # head closes the pipe early
        echo "# bench/profile.sh $t: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        echo "## Self time (top 30)"
        perf report -i "$OUT/$t.perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -30
        echo
        echo "## Inclusive time of the extension's functions and what they call"
        perf report -i "$OUT/$t.perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
            grep -v '^#' | grep -v '^$' |
            grep -E '\] (outbox_|capture_|emit_one|row_to_jsonb|old_new_payload|aggregate_id_of|to_jsonb|ExecInsertIndexTuples|btinsert|heap_insert|heap_multi_insert|pg_strong_random|nextval_internal|tuplestore_|AfterTrigger|ExecutorRun|standard_ExecutorRun|standard_ExecutorFinish|ExecInitNode|ExecutorStart|standard_ExecutorStart|InitPlan|XLogInsert|CommitTransaction|exec_execute_message|exec_bind_message|PortalRun|qsort_arg|pushJsonbValue|JsonbValueToJsonb|table_open|index_open|ExecOpenIndices|ExecCloseIndices|CreateExecutorState|FreeExecutorState|fmgr_internal_function|fmgr_info|getTypeOutputInfo|MakeTransitionCaptureState|GetAfterTriggersTableData|AfterTriggerSaveEvent|ExecARInsertTriggers|ExecASInsertTriggers|resolve_key_columns|setup_to_jsonb|capture_statement|ExecCallTriggerFunc|AllocSetContextCreateInternal|MemoryContextDelete|psprintf)' |
            head -60
        set -o pipefail
    } >"$f"
    echo "  $f"
}

profile_pgbench() {
    local t=$1 script pids deadline pg perf_pid
    script=bench/${t}.pgbench
    reset_tables
    pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$SECONDS_PER_RUN" -f "$script" >"$OUT/$t.pgbench.log" 2>&1 &
    pg=$!
    # Poll (with a deadline) until every client's backend is connected.
    deadline=$((SECONDS + 30))
    while :; do
        pids=$(psqlq -c "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE application_name = 'pgbench' HAVING count(*) = $CLIENTS")
        [[ -n $pids ]] && break
        kill -0 "$pg" 2>/dev/null || { cat "$OUT/$t.pgbench.log" >&2; die "pgbench $script ended early"; }
        ((SECONDS < deadline)) || die "pgbench's backends did not connect"
        sleep 0.05
    done
    perf record -q -F "$FREQ" --call-graph dwarf,16384 -p "$pids" -o "$OUT/$t.perf.data" 2>"$OUT/$t.perf.log" &
    perf_pid=$!
    wait "$pg" || { cat "$OUT/$t.pgbench.log" >&2; die "pgbench $script failed"; }
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" || true
    grep '^tps' "$OUT/$t.pgbench.log" | sed 's/^/  /'
}

profile_bulk() {
    local t=$1
    reset_tables
    psql -X -q -v ON_ERROR_STOP=1 -v rows="$ROWS" -v stmt="${t#bulk_}" -v target="$t" \
        -f bench/sql/profile_bulk.sql
}

echo "Profiles in $OUT/:"
for t in "$@"; do
    rm -f "$OUT/$t.perf.data" "$OUT/$t.perf.data.old"
    case $t in
        bulk_*) profile_bulk "$t";;
        *) profile_pgbench "$t";;
    esac
    report "$t"
done
