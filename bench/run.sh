#!/usr/bin/env bash
# bench/run.sh: outbox_ext benchmarks (the figures and their analysis are in
# BENCHMARKS.md).
#
#   1. emit overhead: business row + outbox.emit() vs business row + a plain
#      INSERT into an equivalent table (pgbench, TPS), plus a reference whose
#      plain INSERT uses a time-ordered, non-random event id.
#   2. bulk capture: INSERT/UPDATE/DELETE of BENCH_ROWS rows on a table
#      captured by outbox.capture() vs an identical uncaptured table (ms),
#      plus a reference that writes the same events by hand in SQL.
#   3. single-row INSERT: capture()'s statement-level triggers vs a row-level
#      trigger calling the same C function (pgbench, TPS), plus an untriggered
#      reference.
#
# Everything runs in one throwaway cluster (pg_virtualenv -t) against the
# installed extension: run `make install` first. Variants alternate (A B A B
# ...) and every run starts from truncated tables, VACUUM and CHECKPOINT.
# Besides wall-clock figures, the backends' CPU time is measured (postmaster's
# reaped-children times for pgbench runs, /proc/self/schedstat for bulk
# statements): it is much less disturbed by other load on the machine.
#
# Environment:
#   BENCH_SMOKE=1        tiny run (2 s, 1000 rows, 1 repeat) that checks every
#                        step works and judges no goal; for the test suite
#   BENCH_DURATION=30    seconds per pgbench run
#   BENCH_REPEATS=3      runs of each variant (medians are reported)
#   BENCH_ROWS=100000    rows per bulk statement
#   BENCH_CLIENTS=2      pgbench clients (-c); BENCH_JOBS threads (-j, default = clients)
#   BENCH_ONLY="emit bulk single"   which benchmarks to run
#   BENCH_UPDATE_DOC=1   a full run of all three writes its results into
#                        BENCHMARKS.md between the bench-results markers
#                        (0: only bench/results.md)
#   BENCH_STRICT=0       1: exit 3 when a goal is missed (never in smoke mode)
#   BENCH_USE_CURRENT_CLUSTER=1   use the cluster the PG* variables point at
#                        (creates and drops database outbox_bench) instead of
#                        a throwaway one; needs a superuser
#
# Exit status: 0 on success, non-zero if any step fails (3: see BENCH_STRICT).
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

for b in $ONLY; do
    case $b in emit|bulk|single) ;; *) die "BENCH_ONLY: unknown benchmark '$b' (emit, bulk, single)";; esac
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
    # Where the server supports Debian's extension_destdir, it loads a copy
    # of the installed extension taken now, so that a `make install` during
    # the run cannot mix two builds into the figures.
    SNAP=$(mktemp -d -t outbox_bench_ext.XXXXXX)
    trap 'rm -rf "$SNAP"' EXIT
    if grep -q '^#extension_destdir' "$("$PG_CONFIG" --sharedir)/postgresql.conf.sample" 2>/dev/null; then
        libdir=$("$PG_CONFIG" --pkglibdir)
        extdir="$("$PG_CONFIG" --sharedir)/extension"
        mkdir -p "$SNAP$libdir" "$SNAP$extdir"
        cp "$LIBFILE" "$SNAP$libdir/"
        cp "$extdir"/outbox_ext.control "$extdir"/outbox_ext--*.sql "$SNAP$extdir/"
        chmod -R go+rX "$SNAP"     # the server runs as another user
        opts+=(-o "extension_destdir=$SNAP")
        export BENCH_LIBFILE="$SNAP$libdir/outbox_ext.so"
    fi
    # A socket directory of our own: concurrent throwaway clusters of other
    # test runs share /var/run/postgresql, and pg_ctlcluster refuses a port
    # whose socket file exists there. Clients connect over TCP (PGHOST).
    mkdir -m 1777 "$SNAP/sock"
    opts+=(-o "unix_socket_directories=$SNAP/sock")
    export BENCH_IN_CLUSTER=1
    # Creating the cluster can still lose a race for a port: try again then,
    # but only if this script never started inside the cluster.
    export BENCH_STARTED="$SNAP/started"
    for attempt in 1 2 3; do
        rc=0
        pg_virtualenv -t -v "$PG_MAJOR" "${opts[@]}" "$ROOT/bench/run.sh" || rc=$?
        if [[ $rc == 0 || -e $BENCH_STARTED ]]; then exit "$rc"; fi
        echo "bench/run.sh: pg_virtualenv failed before the benchmark started (attempt $attempt)" >&2
    done
    exit "$rc"
fi

# ---------------------------------------------------------------- inside ----

if [[ -n ${BENCH_STARTED:-} ]]; then touch "$BENCH_STARTED"; fi
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
scalar() { psqlq -c "$1"; }
expect_eq() { [[ $2 == "$3" ]] || die "$1: expected $2, got $3"; }   # what, expected, actual

psqlq -d postgres -c "SET client_min_messages = warning" \
      -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
export PGDATABASE=$DB
psqlq -f bench/sql/setup.sql >/dev/null

# The library the backends load: the snapshot (see above), else the installed one.
LIBFILE=${BENCH_LIBFILE:-$LIBFILE}
if [[ -n ${BENCH_LIBFILE:-} ]]; then
    expect_eq "backend loads the snapshot of the extension" t \
        "$(psqlq -c 'SELECT outbox.current_root()' -c "SELECT strpos(pg_read_file('/proc/self/maps'), '$LIBFILE') > 0" | tail -1)"
fi
lib_sum() { md5sum "$LIBFILE" | cut -d' ' -f1; }
LIB_AT_START=$(lib_sum)
if [[ -f outbox_ext.so ]]; then
    if cmp -s outbox_ext.so "$LIBFILE"; then LIB_ORIGIN="the same as ./outbox_ext.so"; else LIB_ORIGIN="differs from ./outbox_ext.so"; fi
else
    LIB_ORIGIN="no ./outbox_ext.so to compare"
fi
LIB_ORIGIN="$LIB_ORIGIN; source at commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if [[ -n $(git status --porcelain -- src Makefile outbox_ext.control 2>/dev/null) ]]; then
    LIB_ORIGIN="$LIB_ORIGIN with uncommitted changes in src/"
fi
if [[ -n ${BENCH_LIBFILE:-} ]]; then
    LIB_ORIGIN="a snapshot of the installed library taken at start; $LIB_ORIGIN"
fi
RESULTS=$TMP/results.tsv        # benchmark, variant, run, metric, value (tab-separated)
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

# CPU time of the pgbench backends: when the postmaster reaps a backend, the
# kernel adds its CPU time to the postmaster's cutime/cstime. Available in the
# throwaway cluster (no other sessions) when this script can read the
# postmaster's pid and /proc (as root, or as the server's user); otherwise
# only wall-clock figures are reported.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
PM_PID=""
if [[ -n ${BENCH_IN_CLUSTER:-} ]]; then
    PM_PID=$(head -1 "$(scalar 'SHOW data_directory')/postmaster.pid" 2>/dev/null || true)
fi
CPU=0
if [[ -n $PM_PID && -r /proc/$PM_PID/stat ]] &&
   [[ $(scalar "SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint > 0" 2>/dev/null) == t ]]; then
    CPU=1
    # The postmaster's long-lived children: everything else is a backend.
    AUX_PIDS=" $(scalar "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity WHERE backend_type <> 'client backend'") "
fi
pm_child_ticks() { awk '{ print $16 + $17 }' "/proc/$PM_PID/stat"; }
# Wait (polling, with a deadline) until every backend has exited and been reaped.
wait_backends_reaped() {
    local deadline=$((SECONDS + 60)) p busy
    while :; do
        busy=0
        for p in $(ps -o pid= --ppid "$PM_PID"); do
            [[ $AUX_PIDS == *" $p "* ]] || { busy=1; break; }
        done
        ((busy)) || return 0
        ((SECONDS < deadline)) || die "backends of the previous run did not exit within 60 s"
        sleep 0.05
    done
}

# Fresh tables for the next run: truncate the business tables given and the
# outbox children (TRUNCATE of a captured table emits one event, so the
# outbox goes last), then VACUUM ANALYZE and CHECKPOINT.
reset_tables() {
    psqlq -c "TRUNCATE $*" \
          -c "TRUNCATE bench.plain_events, outbox.events_0, outbox.events_1, outbox.events_2" \
          -c "VACUUM ANALYZE" \
          -c "CHECKPOINT"
}

# run_pgbench benchmark variant run script: records TPS (and backend CPU per
# transaction); LAST_TXNS is the number of transactions, for the checks.
run_pgbench() {
    local bench=$1 variant=$2 run=$3 script=$4 log tps t0=0 t1=0 cpu=""
    log=$TMP/$bench-$variant-$run.log
    if ((CPU)); then wait_backends_reaped; t0=$(pm_child_ticks); fi
    if ! pgbench -n -M prepared -c "$CLIENTS" -j "$JOBS" -T "$DURATION" -f "bench/$script" >"$log" 2>&1; then
        cat "$log" >&2
        die "pgbench bench/$script failed"
    fi
    if ((CPU)); then wait_backends_reaped; t1=$(pm_child_ticks); fi
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$log")
    LAST_TXNS=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
    [[ -n $tps && -n $LAST_TXNS && $LAST_TXNS -gt 0 ]] || { cat "$log" >&2; die "cannot read pgbench's results for bench/$script"; }
    record "$bench" "$variant" "$run" tps "$tps"
    if ((CPU)); then
        cpu=$(awk -v t=$((t1 - t0)) -v us="$TICK_US" -v n="$LAST_TXNS" 'BEGIN { printf "%.1f", t * us / n }')
        record "$bench" "$variant" "$run" cpu_us "$cpu"
        cpu=", backend CPU $cpu us/transaction"
    fi
    printf '  %-6s %-6s run %d: %9.1f TPS (%d transactions%s)\n' "$bench" "$variant" "$run" "$tps" "$LAST_TXNS" "$cpu"
}

bench_emit() {
    local r v
    echo "1. emit() vs plain INSERT: pgbench -M prepared -c $CLIENTS -j $JOBS -T $DURATION"
    for ((r = 1; r <= REPEATS; r++)); do
        for v in emit plain ordered; do
            reset_tables bench.orders
            if [[ $v == ordered ]]; then
                run_pgbench emit "$v" "$r" plain_ordered.pgbench
            else
                run_pgbench emit "$v" "$r" "$v.pgbench"
            fi
            expect_eq "orders after the $v run" "$LAST_TXNS" "$(scalar 'SELECT count(*) FROM bench.orders')"
            if [[ $v == emit ]]; then
                expect_eq "outbox events after the emit run" "$LAST_TXNS" "$(scalar 'SELECT count(*) FROM outbox.events')"
            else
                expect_eq "plain events after the $v run" "$LAST_TXNS" "$(scalar 'SELECT count(*) FROM bench.plain_events')"
                expect_eq "outbox events after the $v run" 0 "$(scalar 'SELECT count(*) FROM outbox.events')"
            fi
        done
    done
}

bench_bulk() {
    local r v i n out ms cpu kinds=(insert update delete)
    echo "2. bulk capture: INSERT, UPDATE, DELETE of $ROWS rows"
    for ((r = 1; r <= REPEATS; r++)); do
        for v in captured plain manual; do
            reset_tables bench.bulk_captured, bench.bulk_plain, bench.bulk_manual
            if [[ $v == manual ]]; then
                out=$(psql -X -q -v ON_ERROR_STOP=1 -v cpu="$CPU" -v rows="$ROWS" -f bench/sql/bulk_manual.sql)
            else
                out=$(psql -X -q -v ON_ERROR_STOP=1 -v cpu="$CPU" -v rows="$ROWS" -v tbl="bench.bulk_$v" -f bench/sql/bulk.sql)
            fi
            ms=($(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out"))
            cpu=($(awk '/^cpu_ns / { printf "%.1f\n", ($3 - $2) / 1e6 }' <<<"$out"))
            [[ ${#ms[@]} == 3 && ${#cpu[@]} == 3 ]] || { echo "$out" >&2; die "cannot read the statement times for bulk $v"; }
            for i in 0 1 2; do
                record "bulk_${kinds[i]}" "$v" "$r" ms "${ms[i]}"
                if ((CPU)); then record "bulk_${kinds[i]}" "$v" "$r" cpu_ms "${cpu[i]}"; fi
            done
            printf '  bulk   %-8s run %d: INSERT %8.1f ms  UPDATE %8.1f ms  DELETE %8.1f ms' "$v" "$r" "${ms[@]}"
            if ((CPU)); then printf '  (backend CPU %.1f / %.1f / %.1f ms)' "${cpu[@]}"; fi
            echo
            n=$(scalar "SELECT count(*) FROM outbox.events")
            case $v in
                captured)
                    expect_eq "outbox events after the captured statements" $((3 * ROWS)) "$n"
                    expect_eq "update events with old and new rows" "$ROWS" \
                        "$(scalar "SELECT count(*) FROM outbox.events WHERE payload ? 'old' AND payload ? 'new'")";;
                plain)
                    expect_eq "outbox events after the uncaptured statements" 0 "$n";;
                manual)
                    expect_eq "outbox events after the hand-written statements" 0 "$n"
                    expect_eq "hand-written events" $((3 * ROWS)) "$(scalar 'SELECT count(*) FROM bench.plain_events')";;
            esac
        done
    done
}

bench_single() {
    local r v
    echo "3. single-row INSERT, statement-level capture vs row trigger: pgbench -M prepared -c $CLIENTS -j $JOBS -T $DURATION"
    for ((r = 1; r <= REPEATS; r++)); do
        for v in stmt row none; do
            reset_tables bench.single_stmt, bench.single_row, bench.single_none
            run_pgbench single "$v" "$r" "single_$v.pgbench"
            expect_eq "rows after the single_$v run" "$LAST_TXNS" "$(scalar "SELECT count(*) FROM bench.single_$v")"
            if [[ $v == none ]]; then
                expect_eq "outbox events after the single_none run" 0 "$(scalar 'SELECT count(*) FROM outbox.events')"
            else
                expect_eq "outbox events after the single_$v run" "$LAST_TXNS" "$(scalar 'SELECT count(*) FROM outbox.events')"
            fi
        done
    done
}

START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
for b in $ONLY; do "bench_$b"; done
LIB_AT_END=$(lib_sum)
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report ----

vals() { awk -F'\t' -v b="$1" -v v="$2" -v m="$3" '$1 == b && $2 == v && $4 == m { print $5 }' "$RESULTS"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { vals "$@" | median; }
# cell benchmark variant metric decimals: "median (run 1 / run 2 / ...)"
cell() {
    local runs
    runs=$(vals "$1" "$2" "$3" | awk -v d="$4" '{ printf "%s%.*f", (NR > 1 ? " / " : ""), d, $1 }')
    printf "%.*f (%s)" "$4" "$(med "$1" "$2" "$3")" "$runs"
}
# ratio benchmark metric numerator-variant denominator-variant
ratio() { awk -v a="$(med "$1" "$3" "$2")" -v b="$(med "$1" "$4" "$2")" 'BEGIN { printf "%.2f", a / b }'; }
# verdict ratio op goal; runs in $(...), so a miss is noted in a file
verdict() {
    if [[ $SMOKE == 1 ]]; then echo "not judged (smoke)"; return; fi
    if awk -v r="$1" -v g="$3" -v op="$2" 'BEGIN { exit !((op == ">=") ? r >= g : r <= g) }'; then
        echo "yes"
    else
        touch "$TMP/goal_missed"
        echo "**NO**"
    fi
}
has() { [[ " $ONLY " == *" $1 "* ]]; }

REPORT=$TMP/report.md
{
    cmd="bench/run.sh"
    [[ $SMOKE == 1 ]] && cmd="BENCH_SMOKE=1 $cmd"
    echo "Generated by \`bench/run.sh\`, $START."
    echo
    echo "- Command: \`BENCH_DURATION=$DURATION BENCH_REPEATS=$REPEATS BENCH_ROWS=$ROWS BENCH_CLIENTS=$CLIENTS BENCH_JOBS=$JOBS $cmd\`"
    echo "- Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr); load average (1/5/15 min) at start $LOAD_AT_START, at end $LOAD_AT_END"
    echo "- Server: $(scalar 'SELECT version()' | sed 's/ on .*//'); $(scalar "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'full_page_writes', 'shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'autovacuum', 'jit')")"
    echo "- Extension: outbox_ext $(scalar "SELECT extversion FROM pg_extension WHERE extname = 'outbox_ext'"), library md5 ${LIB_AT_START:0:12} ($LIB_ORIGIN)"
    echo "- Event table indexes (outbox.events_0, copied by bench.plain_events): $(scalar "SELECT string_agg(regexp_replace(pg_get_indexdef(indexrelid), '^.* USING ', ''), ', ' ORDER BY indexrelid) FROM pg_index WHERE indrelid = 'outbox.events_0'::regclass")"
    if [[ $LIB_AT_START != "$LIB_AT_END" ]]; then
        echo "- **WARNING: $LIBFILE was replaced during the run (make install?): the figures may mix two builds.**"
    fi
    echo
    echo "Each cell: median (each run, in run order). Ratio = outbox variant / baseline, from the medians."
    echo
    echo "| Benchmark | Outbox variant | Baseline | Ratio | Goal | Met |"
    echo "|---|---|---|---|---|---|"
    if has emit; then
        r=$(ratio emit tps emit plain)
        echo "| 1. order + event per transaction, TPS: \`emit()\` vs plain INSERT | $(cell emit emit tps 0) | $(cell emit plain tps 0) | $r | >= 0.95 | $(verdict "$r" '>=' 0.95) |"
    fi
    if has bulk; then
        for k in insert update delete; do
            r=$(ratio "bulk_$k" ms captured plain)
            echo "| 2. bulk ${k^^} of $ROWS rows, ms: captured vs uncaptured | $(cell "bulk_$k" captured ms 1) | $(cell "bulk_$k" plain ms 1) | $r | <= 2.5 | $(verdict "$r" '<=' 2.5) |"
        done
    fi
    if has single; then
        r=$(ratio single tps stmt row)
        echo "| 3. single-row INSERT, TPS: \`capture()\` (statement trigger) vs row trigger | $(cell single stmt tps 0) | $(cell single row tps 0) | $r | >= 1.00 | $(verdict "$r" '>=' 1.00) |"
    fi
    echo
    echo "References (no goal):"
    echo
    echo "| Comparison | Outbox variant | Reference | Ratio |"
    echo "|---|---|---|---|"
    if has emit; then
        echo "| 1. TPS: \`emit()\` vs plain INSERT with a time-ordered, non-random event id (plain_ordered.pgbench) | $(cell emit emit tps 0) | $(cell emit ordered tps 0) | $(ratio emit tps emit ordered) |"
    fi
    if has bulk; then
        for k in insert update delete; do
            echo "| 2. bulk ${k^^}, ms: captured vs the same events written by hand in SQL (bulk_manual.sql) | $(cell "bulk_$k" captured ms 1) | $(cell "bulk_$k" manual ms 1) | $(ratio "bulk_$k" ms captured manual) |"
        done
    fi
    if has single; then
        echo "| 3. single-row INSERT, TPS: \`capture()\` vs no trigger | $(cell single stmt tps 0) | $(cell single none tps 0) | $(ratio single tps stmt none) |"
        echo "| 3. single-row INSERT, TPS: row trigger vs no trigger | $(cell single row tps 0) | $(cell single none tps 0) | $(ratio single tps row none) |"
    fi
    if ((CPU)); then
        echo
        echo "Backend CPU time (cross-check, little disturbed by other load on the machine; lower is better):"
        echo
        echo "| Measure | Outbox variant | Baseline | Ratio |"
        echo "|---|---|---|---|"
        if has emit; then
            echo "| 1. CPU us per transaction: \`emit()\` vs plain INSERT | $(cell emit emit cpu_us 1) | $(cell emit plain cpu_us 1) | $(ratio emit cpu_us emit plain) |"
            echo "| 1. CPU us per transaction: \`emit()\` vs plain INSERT with a time-ordered id | $(cell emit emit cpu_us 1) | $(cell emit ordered cpu_us 1) | $(ratio emit cpu_us emit ordered) |"
        fi
        if has bulk; then
            for k in insert update delete; do
                echo "| 2. bulk ${k^^}, CPU ms: captured vs uncaptured | $(cell "bulk_$k" captured cpu_ms 1) | $(cell "bulk_$k" plain cpu_ms 1) | $(ratio "bulk_$k" cpu_ms captured plain) |"
            done
            for k in insert update delete; do
                echo "| 2. bulk ${k^^}, CPU ms: captured vs written by hand | $(cell "bulk_$k" captured cpu_ms 1) | $(cell "bulk_$k" manual cpu_ms 1) | $(ratio "bulk_$k" cpu_ms captured manual) |"
            done
        fi
        if has single; then
            echo "| 3. CPU us per transaction: \`capture()\` vs row trigger | $(cell single stmt cpu_us 1) | $(cell single row cpu_us 1) | $(ratio single cpu_us stmt row) |"
            echo "| 3. CPU us per transaction: \`capture()\` vs no trigger | $(cell single stmt cpu_us 1) | $(cell single none cpu_us 1) | $(ratio single cpu_us stmt none) |"
        fi
    fi
} >"$REPORT"

echo
cat "$REPORT"

if [[ $SMOKE != 1 ]]; then
    cp "$REPORT" bench/results.md
    echo
    echo "Written to bench/results.md."
    if [[ ${BENCH_UPDATE_DOC:-1} == 1 ]] && has emit && has bulk && has single; then
        begin='<!-- bench-results:begin -->'
        end='<!-- bench-results:end -->'
        if [[ -f BENCHMARKS.md ]] && grep -qxF "$begin" BENCHMARKS.md && grep -qxF "$end" BENCHMARKS.md; then
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
