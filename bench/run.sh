#!/usr/bin/env bash
# bench/run.sh: outbox_ext benchmarks (see BENCHMARKS.md for the figures).
#
#   1. emit overhead: business row + outbox.emit() vs business row + a plain
#      INSERT into an equivalent table (pgbench, TPS).
#   2. bulk capture: INSERT/UPDATE/DELETE of BENCH_ROWS rows on a table
#      captured by outbox.capture() vs an identical uncaptured table (ms).
#   3. single-row INSERT: capture()'s statement-level triggers vs a row-level
#      trigger calling the same C function (pgbench, TPS), plus an untriggered
#      reference.
#
# Everything runs in one throwaway cluster (pg_virtualenv -t) against the
# installed extension: run `make install` first. Variants alternate (A B A B
# ...) and every run starts from truncated tables, VACUUM and CHECKPOINT.
#
# Environment:
#   BENCH_SMOKE=1        tiny run (2 s, 1000 rows, 1 repeat) that checks every
#                        step works and judges no goal; for the test suite
#   BENCH_DURATION=30    seconds per pgbench run
#   BENCH_REPEATS=3      runs of each variant (medians are reported)
#   BENCH_ROWS=100000    rows per bulk statement
#   BENCH_CLIENTS=2      pgbench clients (-c); BENCH_JOBS threads (-j, default = clients)
#   BENCH_ONLY="emit bulk single"   which benchmarks to run
#   BENCH_UPDATE_DOC=1   full runs of all three write their results into
#                        BENCHMARKS.md between the bench-results markers
#                        (0: only bench/results.md)
#   BENCH_STRICT=0       1: exit 3 when a goal is missed (never in smoke mode)
#   BENCH_USE_CURRENT_CLUSTER=1   use the cluster the PG* variables point at
#                        (creates and drops database outbox_bench) instead of
#                        a throwaway one
#
# Exit status: 0 on success, non-zero if any step fails (or 3, see BENCH_STRICT).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

SMOKE=${BENCH_SMOKE:-0}
if [[ $SMOKE == 1 ]]; then
    DURATION=${BENCH_DURATION:-2}
    REPEATS=${BENCH_REPEATS:-1}
    ROWS=${BENCH_ROWS:-1000}
else
    DURATION=${BENCH_DURATION:-30}
    REPEATS=${BENCH_REPEATS:-3}
    ROWS=${BENCH_ROWS:-100000}
fi
CLIENTS=${BENCH_CLIENTS:-2}
JOBS=${BENCH_JOBS:-$CLIENTS}
ONLY=${BENCH_ONLY:-emit bulk single}
STRICT=${BENCH_STRICT:-0}

# Server settings of the throwaway cluster. synchronous_commit=off so that
# commit flushes do not hide the difference (pg_virtualenv also sets
# fsync=off); a large max_wal_size/checkpoint_timeout and no autovacuum so
# that no checkpoint or vacuum lands inside one variant's run only (the
# script checkpoints and vacuums between runs itself); no JIT for the bulk
# statements, whose compile time would only add noise.
PG_SETTINGS=(
    synchronous_commit=off
    shared_buffers=512MB
    max_wal_size=8GB
    checkpoint_timeout=1h
    autovacuum=off
    jit=off
)

die() { echo "bench/run.sh: $*" >&2; exit 1; }

for v in $ONLY; do
    case $v in emit|bulk|single) ;; *) die "BENCH_ONLY: unknown benchmark '$v' (emit, bulk, single)";; esac
done
for n in DURATION REPEATS ROWS CLIENTS JOBS; do
    [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$n must be a positive integer, not '${!n}'"
done

PG_CONFIG=${PG_CONFIG:-pg_config}
PG_MAJOR=$("$PG_CONFIG" --version | sed -n 's/^PostgreSQL \([0-9]*\).*/\1/p')
[[ -n $PG_MAJOR ]] || die "cannot read the PostgreSQL version from $PG_CONFIG"
LIBFILE="$("$PG_CONFIG" --pkglibdir)/outbox_ext.so"
[[ -f $LIBFILE ]] || die "$LIBFILE not found: run 'make install' first"

# Outer invocation: start the throwaway cluster and run this script inside it.
if [[ -z ${BENCH_IN_CLUSTER:-} && ${BENCH_USE_CURRENT_CLUSTER:-0} != 1 ]]; then
    opts=()
    for s in "${PG_SETTINGS[@]}"; do opts+=(-o "$s"); done
    export BENCH_IN_CLUSTER=1
    exec pg_virtualenv -t -v "$PG_MAJOR" "${opts[@]}" "$ROOT/bench/run.sh"
fi

# ---------------------------------------------------------------- inside ----

TMP=$(mktemp -d -t outbox_bench.XXXXXX)
DB=outbox_bench
cleanup() {
    local rc=$?
    if [[ ${BENCH_USE_CURRENT_CLUSTER:-0} == 1 ]]; then
        psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

# Session settings as well, for BENCH_USE_CURRENT_CLUSTER=1.
export PGOPTIONS="${PGOPTIONS:-} -c synchronous_commit=off -c jit=off"

psqlq() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

psqlq -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
export PGDATABASE=$DB
psqlq -f bench/sql/setup.sql >/dev/null

lib_sum() { md5sum "$LIBFILE" | cut -d' ' -f1; }
LIB_AT_START=$(lib_sum)
RESULTS=$TMP/results.tsv        # benchmark <tab> variant <tab> run <tab> value
: >"$RESULTS"

# Fresh tables for the next run: truncate the business tables given and the
# outbox children (TRUNCATE of a captured table emits one event, so the
# outbox goes last), then VACUUM ANALYZE and CHECKPOINT.
reset_tables() {
    psqlq -c "TRUNCATE $*" \
          -c "TRUNCATE outbox.events_0, outbox.events_1, outbox.events_2" \
          -c "VACUUM ANALYZE" \
          -c "CHECKPOINT"
}

scalar() { psqlq -c "$1"; }

expect_eq() {   # what, expected, actual
    [[ $2 == "$3" ]] || die "$1: expected $2, got $3"
}

# run_pgbench benchmark variant run script: records TPS, checks the row counts.
run_pgbench() {
    local bench=$1 variant=$2 run=$3 script=$4 log tps txns
    log=$TMP/$bench-$variant-$run.log
    if ! pgbench -n -M prepared -c "$CLIENTS" -j "$JOBS" -T "$DURATION" -f "bench/$script" >"$log" 2>&1; then
        cat "$log" >&2
        die "pgbench bench/$script failed"
    fi
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$log")
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
    [[ -n $tps && -n $txns && $txns -gt 0 ]] || { cat "$log" >&2; die "cannot read pgbench's results for bench/$script"; }
    printf '%s\t%s\t%s\t%s\n' "$bench" "$variant" "$run" "$tps" >>"$RESULTS"
    printf '  %-7s %-8s run %d: %10.1f TPS (%d transactions)\n' "$bench" "$variant" "$run" "$tps" "$txns"
    LAST_TXNS=$txns
}

bench_emit() {
    local r v
    echo "1. emit() vs plain INSERT: pgbench -M prepared -c $CLIENTS -j $JOBS -T $DURATION"
    for ((r = 1; r <= REPEATS; r++)); do
        for v in emit plain; do
            reset_tables bench.orders, bench.plain_events
            run_pgbench emit "$v" "$r" "$v.pgbench"
            expect_eq "orders after $v run" "$LAST_TXNS" "$(scalar 'SELECT count(*) FROM bench.orders')"
            if [[ $v == emit ]]; then
                expect_eq "outbox events after emit run" "$LAST_TXNS" "$(scalar 'SELECT count(*) FROM outbox.events')"
            else
                expect_eq "plain events after plain run" "$LAST_TXNS" "$(scalar 'SELECT count(*) FROM bench.plain_events')"
                expect_eq "outbox events after plain run" 0 "$(scalar 'SELECT count(*) FROM outbox.events')"
            fi
        done
    done
}

bench_bulk() {
    local r v n t
    echo "2. bulk capture: INSERT, UPDATE, DELETE of $ROWS rows (ms)"
    for ((r = 1; r <= REPEATS; r++)); do
        for v in captured plain; do
            reset_tables bench.bulk_captured, bench.bulk_plain
            # INSERT, UPDATE, DELETE times, from psql's \timing lines
            t=($(psql -X -q -v ON_ERROR_STOP=1 -v tbl="bench.bulk_$v" -v rows="$ROWS" \
                      -f bench/sql/bulk.sql | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'))
            [[ ${#t[@]} == 3 ]] || die "cannot read the statement times of bench/sql/bulk.sql for $v"
            printf 'bulk_insert\t%s\t%s\t%s\nbulk_update\t%s\t%s\t%s\nbulk_delete\t%s\t%s\t%s\n' \
                "$v" "$r" "${t[0]}" "$v" "$r" "${t[1]}" "$v" "$r" "${t[2]}" >>"$RESULTS"
            printf '  bulk    %-8s run %d: INSERT %9.1f ms  UPDATE %9.1f ms  DELETE %9.1f ms\n' \
                "$v" "$r" "${t[0]}" "${t[1]}" "${t[2]}"
            n=$(scalar "SELECT count(*) FROM outbox.events")
            if [[ $v == captured ]]; then
                expect_eq "outbox events after the captured statements" $((3 * ROWS)) "$n"
                expect_eq "update events with old and new rows" "$ROWS" \
                    "$(scalar "SELECT count(*) FROM outbox.events WHERE payload ? 'old' AND payload ? 'new'")"
            else
                expect_eq "outbox events after the uncaptured statements" 0 "$n"
            fi
        done
    done
}

bench_single() {
    local r v
    echo "3. single-row INSERT: statement-level capture vs row trigger: pgbench -M prepared -c $CLIENTS -j $JOBS -T $DURATION"
    for ((r = 1; r <= REPEATS; r++)); do
        for v in stmt row none; do
            reset_tables bench.single_stmt, bench.single_row, bench.single_none
            run_pgbench single "$v" "$r" "single_$v.pgbench"
            expect_eq "rows after single_$v run" "$LAST_TXNS" "$(scalar "SELECT count(*) FROM bench.single_$v")"
            if [[ $v == none ]]; then
                expect_eq "outbox events after single_none run" 0 "$(scalar 'SELECT count(*) FROM outbox.events')"
            else
                expect_eq "outbox events after single_$v run" "$LAST_TXNS" "$(scalar 'SELECT count(*) FROM outbox.events')"
            fi
        done
    done
}

START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
for b in $ONLY; do "bench_$b"; done
LIB_AT_END=$(lib_sum)

# ---------------------------------------------------------------- report ----

vals() { awk -F'\t' -v b="$1" -v v="$2" '$1 == b && $2 == v { print $4 }' "$RESULTS"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# "median (run1 / run2 / ...)" with a given number of decimals
cell() {
    local b=$1 v=$2 d=$3 m runs
    m=$(vals "$b" "$v" | median)
    runs=$(vals "$b" "$v" | awk -v d="$d" '{ printf "%s%.*f", (NR > 1 ? " / " : ""), d, $1 }')
    printf "%.*f (%s)" "$d" "$m" "$runs"
}
ratio() { awk -v a="$(vals "$1" "$2" | median)" -v b="$(vals "$1" "$3" | median)" 'BEGIN { printf "%.3f", a / b }'; }
verdict() {     # ratio, operator (>= or <=), goal; runs in $(...), so a miss is noted in a file
    if [[ $SMOKE == 1 ]]; then echo "not judged (smoke)"; return; fi
    if awk -v r="$1" -v g="$3" -v op="$2" 'BEGIN { exit !((op == ">=") ? r >= g : r <= g) }'; then
        echo "yes"
    else
        touch "$TMP/goal_missed"
        echo "**NO**"
    fi
}

REPORT=$TMP/report.md
{
    echo "Generated by \`bench/run.sh\` on $START."
    echo
    cmd="bench/run.sh"
    [[ $SMOKE == 1 ]] && cmd="BENCH_SMOKE=1 $cmd"
    echo "- Command: \`BENCH_DURATION=$DURATION BENCH_REPEATS=$REPEATS BENCH_ROWS=$ROWS BENCH_CLIENTS=$CLIENTS BENCH_JOBS=$JOBS $cmd\`"
    echo "- Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr); load average at start: $LOAD_AT_START"
    echo "- Server: $(scalar 'SELECT version()' | sed 's/ on .*//')"
    echo "- Settings: $(scalar "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'autovacuum', 'jit', 'wal_level', 'full_page_writes')")"
    echo "- Extension: outbox_ext $(scalar "SELECT extversion FROM pg_extension WHERE extname = 'outbox_ext'"), library md5 ${LIB_AT_START:0:12}"
    if [[ $LIB_AT_START != "$LIB_AT_END" ]]; then
        echo "- **WARNING: $LIBFILE was replaced during the run (make install?): the figures may mix two builds.**"
    fi
    echo
    echo "Each cell: median (each run, in run order). Ratio = outbox figure / baseline figure."
    echo
    echo "| Benchmark | Outbox variant | Baseline variant | Ratio | Goal | Met |"
    echo "|---|---|---|---|---|---|"
    if [[ " $ONLY " == *" emit "* ]]; then
        r=$(ratio emit emit plain)
        echo "| 1. order row + event, TPS: \`outbox.emit()\` vs plain INSERT | $(cell emit emit 0) | $(cell emit plain 0) | $r | >= 0.95 | $(verdict "$r" '>=' 0.95) |"
    fi
    if [[ " $ONLY " == *" bulk "* ]]; then
        for s in insert update delete; do
            r=$(ratio "bulk_$s" captured plain)
            echo "| 2. bulk ${s^^} of $ROWS rows, ms: captured vs uncaptured | $(cell "bulk_$s" captured 1) | $(cell "bulk_$s" plain 1) | $r | <= 2.5 | $(verdict "$r" '<=' 2.5) |"
        done
    fi
    if [[ " $ONLY " == *" single "* ]]; then
        r=$(ratio single stmt row)
        echo "| 3. single-row INSERT, TPS: \`capture()\` (statement trigger) vs row trigger | $(cell single stmt 0) | $(cell single row 0) | $r | >= 1.00 | $(verdict "$r" '>=' 1.00) |"
        r=$(ratio single stmt none)
        echo "| 3'. single-row INSERT, TPS: \`capture()\` vs no trigger (reference) | $(cell single stmt 0) | $(cell single none 0) | $r | none | - |"
    fi
} >"$REPORT"

echo
cat "$REPORT"

if [[ $SMOKE != 1 ]]; then
    cp "$REPORT" bench/results.md
    echo
    echo "Written to bench/results.md."
    if [[ ${BENCH_UPDATE_DOC:-1} == 1 && " $ONLY " == *" emit "* && " $ONLY " == *" bulk "* && " $ONLY " == *" single "* ]]; then
        begin='<!-- bench-results:begin -->'
        end='<!-- bench-results:end -->'
        if [[ -f BENCHMARKS.md ]] && grep -qF "$begin" BENCHMARKS.md && grep -qF "$end" BENCHMARKS.md; then
            awk -v f="$REPORT" -v b="$begin" -v e="$end" '
                $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
                $0 == e { skip = 0 }
                !skip { print }' BENCHMARKS.md >"$TMP/BENCHMARKS.md"
            cat "$TMP/BENCHMARKS.md" >BENCHMARKS.md
            echo "Written into BENCHMARKS.md (between the bench-results markers)."
        else
            echo "BENCHMARKS.md has no bench-results markers: not updated." >&2
        fi
    fi
    if [[ $STRICT == 1 && -e $TMP/goal_missed ]]; then
        echo "bench/run.sh: a goal was missed (BENCH_STRICT=1)" >&2
        exit 3
    fi
fi
