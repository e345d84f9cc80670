#!/usr/bin/env bash
# bench/relay.sh: the publisher's benchmarks, each beside the hand-written
# application-level relay (the baseline: relay.py, both variants) measured in
# the same run, on the same PostgreSQL cluster and the same local Kafka
# (test/kafka_mock). Results and analysis: BENCHMARKS.md.
#
#   drain    BENCH_DRAIN_EVENTS events already in the outbox (small JSON
#            payloads, 1000 keys, four aggregate types = four topics); time
#            from their commit until Kafka acknowledged all of them.
#            outbox_ext and the strong baseline drain the same count, in
#            alternation (BENCH_DRAIN_REPEATS each, medians); the naive
#            baseline (~2k events/s) drains the same pre-loaded table for a
#            fixed window (BENCH_NAIVE_SECONDS) and its rate is reported.
#            The CPU time of the local Kafka, the worker and the relay is
#            measured during each drain (/proc utime + stime).
#   latency  events committed in single-event transactions at fixed rates
#            (BENCH_LATENCY_RATES per second, BENCH_LATENCY_SECONDS each);
#            commit -> consumed p50/p99/max. outbox_ext: bench/relay_tool.py
#            latency; baseline: its own bench_driver.py latency (same
#            metric), strong with poll 0.1 s, naive with its textbook 5 s.
#   emit     bench/run.sh's emit benchmark (business row + emit() vs business
#            row + plain INSERT, synchronous_commit=off), run in this cluster.
#   steady   pgbench writers emitting for BENCH_STEADY_SECONDS while the
#            worker publishes, with outbox.retention shorter than the run:
#            pending, outbox heap + index size and the worker's RssAnon,
#            sampled every BENCH_STEADY_SAMPLE seconds; then the same load on
#            the baseline (strong relay, pgbench inserting into its table).
#   inbox    BENCH_INBOX_EVENTS events published by outbox_ext to a topic of
#            BENCH_INBOX_PARTITIONS partitions, consumed by a subscription
#            (BENCH_INBOX_WORKERS workers) into a one-INSERT SQL handler with
#            dedup; beside it bench/inbox_baseline.py, the hand-written
#            consumer (batched dedup + handler, Kafka commit after the
#            database's), on the same events.
#
# Runs one throwaway cluster of its own, as the current user (as root: as
# user postgres), with the binaries of PG_CONFIG's --bindir and the
# extension installed there (`make install` first). Needs python3 with
# psycopg2 and confluent_kafka (Debian: python3-psycopg2,
# python3-confluent-kafka), pgbench, and the baseline relay's directory.
#
# Environment:
#   PG_CONFIG=pg_config          which PostgreSQL (bindir, installed extension)
#   BASELINE_DIR=../shared/baseline  relay.py, bench_driver.py, schema.sql
#                                (relative to the repository root)
#   PYTHON=/usr/bin/python3      (else python3) with psycopg2, confluent_kafka
#   BENCH_SMOKE=1                tiny run of every step (< 1 min), judges nothing
#   BENCH_ONLY="drain latency emit steady inbox"
#   BENCH_DRAIN_EVENTS=1000000   BENCH_DRAIN_REPEATS=3   BENCH_NAIVE_SECONDS=60
#   BENCH_LATENCY_RATES="50 1000 5000"  BENCH_LATENCY_SECONDS=60
#   BENCH_LATENCY_FETCH1_RATE=1000  also measure outbox_ext at this rate with a
#                                consumer fetch.wait.max.ms of 1 ms (empty: no)
#   BENCH_EMIT_DURATION=30       BENCH_EMIT_REPEATS=3 (bench/run.sh's own)
#   BENCH_STEADY_SECONDS=600     BENCH_STEADY_RETENTION=120 (seconds)
#   BENCH_STEADY_CLIENTS=2       BENCH_STEADY_RATE= (pgbench -R; empty: as fast as it goes)
#   BENCH_STEADY_BASELINE=1      0: skip the baseline's steady-state run
#   BENCH_PARTITIONS=8           partitions per topic on the local Kafka
#   BENCH_INBOX_EVENTS=500000    BENCH_INBOX_PARTITIONS=64   BENCH_INBOX_WORKERS=2
#   BENCH_UPDATE_DOC=1           a full run rewrites BENCHMARKS.md between the
#                                relay-results markers (0: bench/results/relay.md only)
#
# Exit status: 0 on success, non-zero if any step fails (a lost event, a
# relay error, a count that does not match). Figures are never asserted.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

SMOKE=${BENCH_SMOKE:-0}
if [[ $SMOKE == 1 ]]; then
    DRAIN_EVENTS=${BENCH_DRAIN_EVENTS:-3000}
    DRAIN_REPEATS=${BENCH_DRAIN_REPEATS:-1}
    NAIVE_SECONDS=${BENCH_NAIVE_SECONDS:-1}
    LATENCY_RATES=${BENCH_LATENCY_RATES:-200}
    LATENCY_SECONDS=${BENCH_LATENCY_SECONDS:-1}
    LATENCY_FETCH1_RATE=${BENCH_LATENCY_FETCH1_RATE-200}
    STEADY_SECONDS=${BENCH_STEADY_SECONDS:-4}
    STEADY_RETENTION=${BENCH_STEADY_RETENTION:-2}
    STEADY_SAMPLE=${BENCH_STEADY_SAMPLE:-1}
else
    DRAIN_EVENTS=${BENCH_DRAIN_EVENTS:-1000000}
    DRAIN_REPEATS=${BENCH_DRAIN_REPEATS:-3}
    NAIVE_SECONDS=${BENCH_NAIVE_SECONDS:-60}
    LATENCY_RATES=${BENCH_LATENCY_RATES:-50 1000 5000}
    LATENCY_SECONDS=${BENCH_LATENCY_SECONDS:-60}
    LATENCY_FETCH1_RATE=${BENCH_LATENCY_FETCH1_RATE-1000}
    STEADY_SECONDS=${BENCH_STEADY_SECONDS:-600}
    STEADY_RETENTION=${BENCH_STEADY_RETENTION:-120}
    STEADY_SAMPLE=${BENCH_STEADY_SAMPLE:-5}
fi
ONLY=${BENCH_ONLY:-drain latency emit steady inbox}
STEADY_CLIENTS=${BENCH_STEADY_CLIENTS:-2}
STEADY_RATE=${BENCH_STEADY_RATE:-}
STEADY_BASELINE=${BENCH_STEADY_BASELINE:-1}
PARTITIONS=${BENCH_PARTITIONS:-8}
INBOX_PARTITIONS=${BENCH_INBOX_PARTITIONS:-64}
INBOX_WORKERS=${BENCH_INBOX_WORKERS:-2}
if [[ $SMOKE == 1 ]]; then INBOX_EVENTS=${BENCH_INBOX_EVENTS:-2000}; else INBOX_EVENTS=${BENCH_INBOX_EVENTS:-500000}; fi
PAD=200                         # payload padding, as the baseline's loader

die() { echo "bench/relay.sh: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*"; }

for b in $ONLY; do
    case $b in drain|latency|emit|steady|inbox) ;; *) die "BENCH_ONLY: unknown step '$b'";; esac
done
for n in DRAIN_EVENTS DRAIN_REPEATS NAIVE_SECONDS LATENCY_SECONDS STEADY_SECONDS STEADY_RETENTION STEADY_SAMPLE STEADY_CLIENTS PARTITIONS INBOX_EVENTS INBOX_PARTITIONS INBOX_WORKERS; do
    [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$n must be a positive integer, not '${!n}'"
done

export PG_CONFIG=${PG_CONFIG:-pg_config}
BINDIR=$("$PG_CONFIG" --bindir) || die "cannot run $PG_CONFIG"
LIBFILE="$("$PG_CONFIG" --pkglibdir)/outbox_ext.so"
[[ -f $LIBFILE ]] || die "$LIBFILE not found: run 'make install PG_CONFIG=$PG_CONFIG' first"
BASELINE_DIR=${BASELINE_DIR:-../shared/baseline}
[[ $BASELINE_DIR == /* ]] || BASELINE_DIR="$ROOT/$BASELINE_DIR"
for f in relay.py bench_driver.py schema.sql; do
    [[ -f $BASELINE_DIR/$f ]] || die "baseline: $BASELINE_DIR/$f not found (set BASELINE_DIR)"
done
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import psycopg2, confluent_kafka' 2>/dev/null ||
    die "$PYTHON lacks psycopg2 or confluent_kafka (Debian: apt-get install python3-psycopg2 python3-confluent-kafka)"
KAFKA_MOCK=$ROOT/test/kafka_mock/kafka_mock
[[ -x $KAFKA_MOCK ]] || make -s -C test/kafka_mock >/dev/null || die "cannot build test/kafka_mock"
export PATH="$BINDIR:$PATH"     # psql, pgbench of the same installation

# ------------------------------------------------------------- cluster ----

TMP=$(mktemp -d -t outbox_relay_bench.XXXXXX)
AS_PG=()
if [[ $(id -u) == 0 ]]; then
    # PostgreSQL refuses to run as root.
    AS_PG=(runuser -u postgres --)
    chown postgres "$TMP"
fi
chmod 755 "$TMP"
KDIR=""
RELAY_PID=""
cleanup() {
    local rc=$?
    [[ -n $RELAY_PID ]] && kill "$RELAY_PID" 2>/dev/null || true
    [[ -n $KDIR ]] && kafka_stop
    if [[ -f $TMP/data/postmaster.pid ]]; then
        "${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$TMP/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Settings both sides share. fsync=off as in bench/run.sh (pg_virtualenv's
# default): the disk of a shared test machine would otherwise dominate every
# commit, the baseline's many more than ours. Enough shared_buffers for the
# drain tables of both sides; no checkpoint inside a run.
PG_SETTINGS=(
    shared_preload_libraries=outbox_ext
    outbox.database=bench
    fsync=off
    shared_buffers=2GB
    max_wal_size=8GB
    checkpoint_timeout=1h
    jit=off
    listen_addresses=
    max_connections=50
)
"${AS_PG[@]}" "$BINDIR/initdb" -D "$TMP/data" -A trust -U bench_admin >"$TMP/initdb.log" 2>&1 ||
    { cat "$TMP/initdb.log" >&2; die "initdb failed"; }
for s in "${PG_SETTINGS[@]}"; do echo "$s" | sed "s/=\(.*\)/ = '\1'/" >>"$TMP/data/postgresql.conf"; done
echo "unix_socket_directories = '$TMP'" >>"$TMP/data/postgresql.conf"
"${AS_PG[@]}" "$BINDIR/pg_ctl" -D "$TMP/data" -l "$TMP/server.log" -w start >/dev/null ||
    { tail -20 "$TMP/server.log" >&2; die "the server did not start"; }
export PGHOST=$TMP PGPORT=5432 PGUSER=bench_admin PGDATABASE=bench
DSN="host=$TMP port=5432 user=bench_admin dbname=bench"

psqlq() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
scalar() { psqlq -c "$1"; }
psqlq -d postgres -c "CREATE DATABASE bench"
psqlq -c "SET client_min_messages = warning" -c "CREATE EXTENSION outbox_ext" >/dev/null
psqlq -c "SET client_min_messages = warning" -f "$BASELINE_DIR/schema.sql" >/dev/null
set_conf() { psqlq -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null; }

# wait_sql SECONDS "description" SQL: polls (in one session, every 10 ms)
# until SQL returns true; fails after the deadline.
wait_sql() {
    psqlq -c "DO \$\$ DECLARE deadline timestamptz := clock_timestamp() + interval '$1 s'; BEGIN
                WHILE NOT ($3) LOOP
                    IF clock_timestamp() > deadline THEN RAISE EXCEPTION 'timed out after $1 s: $2'; END IF;
                    PERFORM pg_sleep(0.01);
                END LOOP; END \$\$" >/dev/null
}
worker_pid() { scalar "SELECT coalesce(worker_pid, 0) FROM outbox.status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }      # utime + stime of a process
TICK=$(getconf CLK_TCK)
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }

# ---------------------------------------------------------- local Kafka ----

TOPICS_OUTBOX="outbox.event.order,outbox.event.payment,outbox.event.shipment,outbox.event.customer"
TOPICS_BASELINE="order,payment,shipment,customer"
KN=0
kafka_stop() {
    [[ -S $KDIR/control ]] && "$KAFKA_MOCK" ctl --dir "$KDIR" quit >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 10))
    while [[ -f $KDIR/pid ]] && ((SECONDS < deadline)); do sleep 0.05; done
    [[ -f $KDIR/pid ]] && kill "$(cat "$KDIR/pid")" 2>/dev/null || true
    KDIR=""
}
# A fresh local Kafka for every measurement: empty topics (the consumers of
# the latency runs read from the start), nothing left from the previous one.
# The publisher is pointed at it and warmed up: one event per topic, so that
# its producer knows every topic's metadata (librdkafka 2.0.2 holds the
# first message to an unknown topic ~1 s).
kafka_fresh() {
    local t args=()
    [[ -n $KDIR ]] && kafka_stop
    KN=$((KN + 1))
    KDIR=$TMP/kafka$KN
    mkdir -p "$KDIR"
    for t in ${TOPICS_OUTBOX//,/ } ${TOPICS_BASELINE//,/ }; do args+=(--topic "$t:$PARTITIONS"); done
    setsid "$KAFKA_MOCK" serve --dir "$KDIR" --brokers 1 "${args[@]}" >"$KDIR.log" 2>&1 </dev/null &
    "$KAFKA_MOCK" ctl --dir "$KDIR" --wait 30 ping >/dev/null || die "the local Kafka did not start"
    BOOTSTRAP=$(cat "$KDIR/bootstrap")
    KAFKA_PID=$(cat "$KDIR/pid")
    set_conf outbox.brokers "$BOOTSTRAP"
    psqlq -v n=4 -v pad=0 -f bench/sql/drain_load.sql >/dev/null
    wait_sql 60 "publisher warm-up" "(SELECT pending = 0 AND worker_state = 'idle' FROM outbox.status)"
}
kafka_count() {                 # kafka_count topics -> messages in Kafka
    "$PYTHON" bench/relay_tool.py count --bootstrap "$BOOTSTRAP" --topics "$1" |
        sed -n 's/.*"messages": \([0-9]*\).*/\1/p'
}
json_field() { sed -n "s/.*\"$1\": \\([^,}]*\\).*/\\1/p" <<<"$2" | tr -d '"'; }

reset_outbox() {
    psqlq -c "TRUNCATE outbox.events_0, outbox.events_1, outbox.events_2, message_outbox" \
          -c "VACUUM ANALYZE" -c "CHECKPOINT"
}

RESULTS=$TMP/results.tsv        # step, variant, run, metric, value
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

# ------------------------------------------------------------------ drain ----

drain_outbox() {                # drain_outbox run
    local run=$1 n=$DRAIN_EVENTS base wp k0 w0 t0 t1 k1 w1 secs got
    kafka_fresh
    reset_outbox
    base=$(scalar "SELECT published_total FROM outbox._cursor")
    wp=$(worker_pid)
    # One transaction, like the baseline's loader: the worker sees the whole
    # backlog at its commit. The clock starts when the commit has returned.
    psqlq -v n="$n" -v pad=$PAD -f bench/sql/drain_load.sql >/dev/null
    t0=$(now); k0=$(cpu_ticks "$KAFKA_PID"); w0=$(cpu_ticks "$wp")
    wait_sql 900 "outbox drained" "(SELECT published_total >= $base + $n FROM outbox._cursor)"
    t1=$(now); k1=$(cpu_ticks "$KAFKA_PID"); w1=$(cpu_ticks "$wp")
    secs=$(calc "$t1 - $t0" 3)
    got=$(kafka_count "$TOPICS_OUTBOX")
    [[ $got == $((n + 4)) ]] || die "drain: Kafka holds $got messages, expected $((n + 4)) ($n + 4 warm-up)"
    record drain outbox "$run" events_per_s "$(calc "$n / $secs" 0)"
    record drain outbox "$run" seconds "$secs"
    record drain outbox "$run" kafka_cpu_s "$(calc "($k1 - $k0) / $TICK" 2)"
    record drain outbox "$run" relay_cpu_s "$(calc "($w1 - $w0) / $TICK" 2)"
    log "  drain outbox_ext run $run: $n events in $secs s = $(calc "$n / $secs" 0) events/s;" \
        "worker CPU $(calc "($w1 - $w0) / $TICK" 2) s, local Kafka CPU $(calc "($k1 - $k0) / $TICK" 2) s; Kafka holds $got"
}

# run_relay variant run [relay args...]: drains message_outbox with relay.py,
# recording its rate and the CPU of the relay and the local Kafka.
run_relay() {
    local variant=$1 run=$2 k0 k1 out rate busy pub cpu
    shift 2
    k0=$(cpu_ticks "$KAFKA_PID")
    out=$( { TIMEFORMAT='%U %S'; time "$PYTHON" "$BASELINE_DIR/relay.py" --dsn "$DSN" --bootstrap "$BOOTSTRAP" \
                --variant "$variant" --prefetch-topics "$TOPICS_BASELINE" --quiet "$@" 2>"$TMP/relay.err"; } 2>&1 ) ||
        { cat "$TMP/relay.err" >&2; die "relay.py --variant $variant failed"; }
    k1=$(cpu_ticks "$KAFKA_PID")
    cpu=$(tail -1 <<<"$out" | awk '{ printf "%.2f", $1 + $2 }')
    out=$(grep '^{' <<<"$out")
    rate=$(json_field events_per_s "$out"); busy=$(json_field busy_s "$out"); pub=$(json_field published "$out")
    [[ -n $rate && $rate != null && $pub -gt 0 ]] || die "relay.py --variant $variant published nothing: $out"
    [[ $(json_field failed_attempts "$out") == 0 ]] || die "relay.py --variant $variant had failed sends: $out"
    record drain "$variant" "$run" events_per_s "$rate"
    record drain "$variant" "$run" seconds "$busy"
    record drain "$variant" "$run" published "$pub"
    record drain "$variant" "$run" kafka_cpu_s "$(calc "($k1 - $k0) / $TICK" 2)"
    record drain "$variant" "$run" relay_cpu_s "$cpu"
    log "  drain baseline $variant run $run: $pub events in $busy s = $rate events/s;" \
        "relay CPU $cpu s, local Kafka CPU $(calc "($k1 - $k0) / $TICK" 2) s"
}

load_baseline() {               # load_baseline n
    reset_outbox
    "$PYTHON" "$BASELINE_DIR/bench_driver.py" load --dsn "$DSN" --n "$1" --payload-pad $PAD >/dev/null ||
        die "bench_driver.py load failed"
}

drain_strong() {
    local run=$1 out
    kafka_fresh
    load_baseline "$DRAIN_EVENTS"
    run_relay strong "$run" --batch-size 500 --poll-interval 0.1 --exit-when-drained
    out=$("$PYTHON" "$BASELINE_DIR/bench_driver.py" verify --dsn "$DSN" --bootstrap "$BOOTSTRAP" --expect "$DRAIN_EVENTS") ||
        die "baseline strong: verify failed: $out"
}

drain_naive() {
    kafka_fresh
    load_baseline "$DRAIN_EVENTS"
    # ~2k events/s: a fixed window over the same pre-loaded table, not all of it.
    run_relay naive 1 --poll-interval 5 --max-seconds "$NAIVE_SECONDS"
}

bench_drain() {
    local r
    log "drain: $DRAIN_EVENTS pre-loaded events; outbox_ext and strong baseline alternate ($DRAIN_REPEATS runs each); naive for ${NAIVE_SECONDS} s"
    for ((r = 1; r <= DRAIN_REPEATS; r++)); do
        drain_outbox "$r"
        drain_strong "$r"
    done
    drain_naive
}

# ---------------------------------------------------------------- latency ----

latency_record() {              # latency_record rate variant json
    local m v
    for m in p50_ms p99_ms max_ms mean_ms delivered lost duplicates insert_rate_achieved late_inserts \
             commit_to_produce_p50_ms commit_to_produce_p99_ms produce_to_consumed_p50_ms produce_to_consumed_p99_ms; do
        v=$(json_field "$m" "$3")
        record "latency_$1" "$2" 1 "$m" "${v:-null}"
    done
    log "  latency ${1}/s $2: $3"
}

bench_latency() {
    local rate out timeout
    log "latency: ${LATENCY_RATES// /, } events/s for $LATENCY_SECONDS s each; outbox_ext, strong (poll 0.1 s), naive (poll 5 s)"
    for rate in $LATENCY_RATES; do
        timeout=$((SMOKE == 1 ? 15 : 30))
        kafka_fresh
        reset_outbox
        out=$("$PYTHON" bench/relay_tool.py latency --dsn "$DSN" --bootstrap "$BOOTSTRAP" --rate "$rate" \
                --duration "$LATENCY_SECONDS" --payload-pad $PAD --drain-timeout "$timeout") ||
            die "relay_tool.py latency failed at $rate/s"
        [[ $(json_field lost "$out") == 0 ]] || die "outbox_ext lost events at $rate/s: $out"
        latency_record "$rate" outbox "$out"
        if [[ $rate == "$LATENCY_FETCH1_RATE" ]]; then
            # Reference: the same with a consumer that waits 1 ms, not 5, for
            # an empty fetch (the local Kafka holds an empty fetch for the
            # whole wait, so the 5 ms wait alone adds 0-5 ms to every figure).
            kafka_fresh
            reset_outbox
            out=$("$PYTHON" bench/relay_tool.py latency --dsn "$DSN" --bootstrap "$BOOTSTRAP" --rate "$rate" \
                    --duration "$LATENCY_SECONDS" --payload-pad $PAD --drain-timeout "$timeout" --fetch-wait-ms 1) ||
                die "relay_tool.py latency (fetch wait 1 ms) failed at $rate/s"
            latency_record "$rate" outbox_fetch1 "$out"
        fi

        for variant in strong naive; do
            local poll=0.1
            # The textbook 5 s (smoke: 1 s, to stay short).
            [[ $variant == naive ]] && poll=$((SMOKE == 1 ? 1 : 5))
            kafka_fresh
            reset_outbox
            "$PYTHON" "$BASELINE_DIR/relay.py" --dsn "$DSN" --bootstrap "$BOOTSTRAP" --variant "$variant" \
                --poll-interval "$poll" --prefetch-topics "$TOPICS_BASELINE" --quiet >"$TMP/relay.out" 2>"$TMP/relay.err" &
            RELAY_PID=$!
            out=$("$PYTHON" "$BASELINE_DIR/bench_driver.py" latency --dsn "$DSN" --bootstrap "$BOOTSTRAP" \
                    --rate "$rate" --duration "$LATENCY_SECONDS" --payload-pad $PAD --drain-timeout "$timeout") ||
                die "bench_driver.py latency failed ($variant, $rate/s)"
            kill "$RELAY_PID" 2>/dev/null || true
            wait "$RELAY_PID" || true
            RELAY_PID=""
            latency_record "$rate" "$variant" "$out"
        done
    done
}

# ------------------------------------------------------------------- emit ----

bench_emit() {
    local out
    log "emit: bench/run.sh's emit benchmark in this cluster"
    out=$(BENCH_USE_CURRENT_CLUSTER=1 BENCH_ONLY=emit BENCH_UPDATE_DOC=0 \
          BENCH_DURATION=${BENCH_EMIT_DURATION:-} BENCH_REPEATS=${BENCH_EMIT_REPEATS:-} \
          PGDATABASE=postgres bench/run.sh 2>&1) || { echo "$out" >&2; die "bench/run.sh (emit) failed"; }
    # "  emit   emit   run 1:   1234.5 TPS (...)"
    awk '$1 == "emit" && $3 == "run" { sub(":", "", $4); print $2, $4, $5 }' <<<"$out" |
        while read -r v r tps; do record emit "$v" "$r" tps "$tps"; done
    grep -E '^  emit ' <<<"$out" | sed 's/^/    /'
}

# ----------------------------------------------------------------- steady ----

# Samples every STEADY_SAMPLE seconds until the pgbench writers end:
# elapsed s, pending, outbox heap + index bytes, worker RssAnon kB.
steady_sample() {               # steady_sample variant pgbench-pid file
    local variant=$1 pid=$2 file=$3 t0=$SECONDS pending bytes rss wp
    : >"$file"
    while kill -0 "$pid" 2>/dev/null; do
        if [[ $variant == outbox ]]; then
            read -r pending bytes wp < <(psqlq -F' ' -c "SELECT (SELECT pending FROM outbox.status),
                (SELECT sum(pg_total_relation_size(c))::bigint FROM unnest(ARRAY['outbox.events_0', 'outbox.events_1', 'outbox.events_2']::regclass[]) c),
                (SELECT coalesce(worker_pid, 0) FROM outbox.status)")
        else
            read -r pending bytes < <(psqlq -F' ' -c "SELECT (SELECT count(*) FROM message_outbox WHERE published_at IS NULL),
                pg_total_relation_size('message_outbox')")
            wp=$RELAY_PID
        fi
        rss=$(awk '/^RssAnon:/ { print $2 }' "/proc/$wp/status" 2>/dev/null || echo 0)
        echo "$((SECONDS - t0)) $pending $bytes ${rss:-0}" >>"$file"
        sleep "$STEADY_SAMPLE"
    done
}

steady_summary() {              # steady_summary variant file pgbench-log
    local variant=$1 file=$2 tps
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$3")
    record steady "$variant" 1 tps "$tps"
    # Pending: max and at the end; size: max over each third of the run (a
    # sawtooth keeps the last third's max near the middle one's; a slope
    # does not); RssAnon: max.
    awk -v v="$variant" '
        { t[NR] = $1; p[NR] = $2; b[NR] = $3; r[NR] = $4; n = NR }
        END {
            maxp = 0; maxr = 0
            for (i = 1; i <= n; i++) { if (p[i] > maxp) maxp = p[i]; if (r[i] > maxr) maxr = r[i] }
            for (k = 0; k < 3; k++) {
                m[k] = 0
                for (i = int(k * n / 3) + 1; i <= int((k + 1) * n / 3); i++) if (b[i] > m[k]) m[k] = b[i]
            }
            printf "pending_max %d\npending_end %d\nsize_max_mb_1 %.1f\nsize_max_mb_2 %.1f\nsize_max_mb_3 %.1f\nrss_anon_max_mb %.1f\nsamples %d\n",
                maxp, p[n], m[0] / 1048576, m[1] / 1048576, m[2] / 1048576, maxr / 1024, n
        }' "$file" | while read -r m val; do record steady "$variant" 1 "$m" "$val"; done
}

steady_run() {                  # steady_run variant script
    local variant=$1 script=$2 rate=() pid
    [[ -n $STEADY_RATE ]] && rate=(-R "$STEADY_RATE")
    pgbench -n -c "$STEADY_CLIENTS" -j "$STEADY_CLIENTS" -T "$STEADY_SECONDS" "${rate[@]}" -f "$script" \
        >"$TMP/steady_$variant.log" 2>&1 &
    pid=$!
    steady_sample "$variant" "$pid" "$TMP/steady_$variant.tsv"
    wait "$pid" || { cat "$TMP/steady_$variant.log" >&2; die "pgbench ($variant steady state) failed"; }
    mkdir -p bench/results
    cp "$TMP/steady_$variant.tsv" "bench/results/steady_$variant.tsv"
    steady_summary "$variant" "$TMP/steady_$variant.tsv" "$TMP/steady_$variant.log"
}

bench_steady() {
    log "steady: $STEADY_CLIENTS pgbench writers for $STEADY_SECONDS s, outbox.retention = ${STEADY_RETENTION}s"
    kafka_fresh
    reset_outbox
    set_conf outbox.retention "${STEADY_RETENTION}s"
    steady_run outbox bench/steady_emit.pgbench
    wait_sql 120 "publisher caught up after the steady state" "(SELECT pending = 0 FROM outbox.status)"
    set_conf outbox.retention 1d
    log "  outbox_ext: $(awk -F'\t' '$1 == "steady" && $2 == "outbox" { printf "%s=%s ", $4, $5 }' "$RESULTS")"
    if [[ $STEADY_BASELINE == 1 ]]; then
        kafka_fresh
        reset_outbox
        "$PYTHON" "$BASELINE_DIR/relay.py" --dsn "$DSN" --bootstrap "$BOOTSTRAP" --variant strong \
            --poll-interval 0.1 --prefetch-topics "$TOPICS_BASELINE" --quiet >"$TMP/relay.out" 2>"$TMP/relay.err" &
        RELAY_PID=$!
        steady_run strong bench/steady_baseline.pgbench
        kill "$RELAY_PID" 2>/dev/null || true
        wait "$RELAY_PID" || true
        RELAY_PID=""
        log "  baseline strong: $(awk -F'\t' '$1 == "steady" && $2 == "strong" { printf "%s=%s ", $4, $5 }' "$RESULTS")"
    fi
}

# ------------------------------------------------------------------ inbox ----

# Item 5: BENCH_INBOX_EVENTS events, published by outbox_ext to a topic of
# BENCH_INBOX_PARTITIONS partitions (enough that the local Kafka's ~5 MiB
# per partition evicts nothing), consumed by a subscription with
# BENCH_INBOX_WORKERS workers into a trivial SQL handler (one INSERT), with
# dedup; timed from the first handled message to the last. Beside it, the
# same events consumed by bench/inbox_baseline.py: the hand-written consumer
# (batch dedup INSERT, batch handler call, Kafka commit after the database's).
bench_inbox() {
    local n=$INBOX_EVENTS t0 t1 k0 k1 w0 w1 pids p secs out rate
    log "inbox: $n events, $INBOX_PARTITIONS partitions, $INBOX_WORKERS workers"
    kafka_fresh
    "$KAFKA_MOCK" ctl --dir "$KDIR" create_topic bench.inbox "$INBOX_PARTITIONS" 1 >/dev/null ||
        die "inbox: could not create the topic"
    reset_outbox
    psqlq >/dev/null <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_sink, app_processed;
DO $$ BEGIN CREATE ROLE bench_svc; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE bench_sink (event_id text);
GRANT INSERT ON bench_sink TO bench_svc;
CREATE OR REPLACE FUNCTION bench_handler(e jsonb) RETURNS void LANGUAGE sql
    AS $f$ INSERT INTO public.bench_sink VALUES (e ->> 'event_id') $f$;
GRANT EXECUTE ON FUNCTION bench_handler(jsonb) TO bench_svc;
DELETE FROM outbox.processed_messages;
DELETE FROM outbox.inbox_offsets;
SQL
    set_conf outbox.allowed_topics 'outbox.event.*,bench.inbox'
    psqlq -c "SELECT count(outbox.emit('Bench', 'k' || (g % 1000), 'BenchEvent',
                                      jsonb_build_object('g', g, 'pad', repeat('x', 100)), topic => 'bench.inbox'))
              FROM generate_series(1, $n) g" >/dev/null
    wait_sql 900 "inbox events published" "(SELECT pending = 0 FROM outbox.status)"
    [[ $(kafka_count bench.inbox) == "$n" ]] || die "inbox: Kafka does not hold the $n events"

    psqlq -c "SELECT outbox.subscribe('bench', '{bench.inbox}', 'bench_handler(jsonb)',
                jsonb_build_object('run_as', 'bench_svc', 'workers', $INBOX_WORKERS, 'batch_size', 1000,
                                   'kafka', jsonb_build_object('fetch.wait.max.ms', 10)))" >/dev/null
    wait_sql 120 "inbox started" "(SELECT coalesce(sum(processed), 0) > 0 FROM outbox.inbox_offsets WHERE consumer = 'bench')"
    t0=$(now); k0=$(cpu_ticks "$KAFKA_PID")
    pids=$(scalar "SELECT string_agg(pid::text, ' ') FROM outbox._inbox_workers() WHERE consumer = 'bench'")
    w0=0; for p in $pids; do w0=$((w0 + $(cpu_ticks "$p"))); done
    wait_sql 900 "inbox consumed" "(SELECT coalesce(sum(processed), 0) >= $n FROM outbox.inbox_offsets WHERE consumer = 'bench')"
    t1=$(now); k1=$(cpu_ticks "$KAFKA_PID")
    w1=0; for p in $pids; do w1=$((w1 + $(cpu_ticks "$p"))); done
    [[ $(scalar "SELECT count(*) = $n AND count(DISTINCT event_id) = $n FROM bench_sink") == t ]] ||
        die "inbox: the handler did not run exactly once per event"
    secs=$(calc "$t1 - $t0" 3)
    record inbox outbox 1 events_per_s "$(calc "$n / $secs" 0)"
    record inbox outbox 1 worker_cpu_us_per_event "$(calc "($w1 - $w0) * 1000000 / $TICK / $n" 1)"
    record inbox outbox 1 kafka_cpu_s "$(calc "($k1 - $k0) / $TICK" 2)"
    log "  inbox outbox_ext: $n events in $secs s = $(calc "$n / $secs" 0) events/s;" \
        "workers' CPU $(calc "($w1 - $w0) * 1000000 / $TICK / $n" 1) us/event, local Kafka CPU $(calc "($k1 - $k0) / $TICK" 2) s"
    psqlq -c "SELECT outbox.unsubscribe('bench', forget => true)" >/dev/null

    psqlq -c "TRUNCATE bench_sink" >/dev/null
    k0=$(cpu_ticks "$KAFKA_PID")
    out=$("$PYTHON" bench/inbox_baseline.py --dsn "$DSN" --bootstrap "$BOOTSTRAP" --topic bench.inbox \
              --expect "$n" --batch-size 1000) || die "inbox baseline failed: $out"
    k1=$(cpu_ticks "$KAFKA_PID")
    rate=$(json_field events_per_s "$out")
    [[ $(scalar "SELECT count(*) = $n AND count(DISTINCT event_id) = $n FROM bench_sink") == t ]] ||
        die "inbox baseline: the handler did not run exactly once per event"
    record inbox baseline 1 events_per_s "$rate"
    record inbox baseline 1 kafka_cpu_s "$(calc "($k1 - $k0) / $TICK" 2)"
    log "  inbox baseline (hand-written consumer): $out"
}

# ---------------------------------------------------------------- run all ----

START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
for b in $ONLY; do "bench_$b"; done
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ----------------------------------------------------------------- report ----

vals() { awk -F'\t' -v s="$1" -v v="$2" -v m="$3" '$1 == s && $2 == v && $4 == m { print $5 }' "$RESULTS"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { vals "$@" | median; }
runs() { vals "$@" | awk -v d="${4:-0}" '{ printf "%s%.*f", (NR > 1 ? " / " : ""), d, $1 }'; }
has() { [[ " $ONLY " == *" $1 "* ]]; }
fmt() { awk -v x="$1" -v d="${2:-0}" 'BEGIN { if (x == "n/a" || x == "null" || x == "") print "n/a"; else printf "%.*f", d, x }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == 0 || b + 0 == 0) print "n/a"; else printf "%.1f", a / b }'; }
verdict() {                     # verdict value op goal
    if [[ $SMOKE == 1 ]]; then echo "not judged (smoke)"; return; fi
    awk -v x="$1" -v op="$2" -v g="$3" 'BEGIN {
        if (x == "n/a" || x == "null" || x == "") { print "n/a"; exit }
        ok = (op == ">=") ? (x + 0 >= g + 0) : (x + 0 <= g + 0); print ok ? "yes" : "**no**" }'
}

REPORT=$TMP/report.md
{
    cmd="bench/relay.sh"
    [[ $SMOKE == 1 ]] && cmd="BENCH_SMOKE=1 $cmd"
    echo "Generated by \`$cmd\` (\`make bench\`), $START."
    echo
    echo "- Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr); load average (1/5/15 min) at start $LOAD_AT_START, at end $LOAD_AT_END"
    echo "- Server: $(scalar 'SELECT version()' | sed 's/ on .*//'); $(scalar "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'autovacuum', 'jit', 'outbox.batch_size', 'outbox.poll_interval')")"
    echo "- outbox_ext $(scalar "SELECT extversion FROM pg_extension WHERE extname = 'outbox_ext'"), source at commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git status --porcelain -- src 2>/dev/null) ]] && echo ' with uncommitted changes in src/'), library md5 $(md5sum "$LIBFILE" | cut -c1-12); librdkafka $("$PYTHON" -c 'import confluent_kafka; print(confluent_kafka.libversion()[0])') (baseline: confluent-kafka-python $("$PYTHON" -c 'import confluent_kafka; print(confluent_kafka.version()[0])'), $("$PYTHON" --version 2>&1))"
    echo "- Local Kafka: test/kafka_mock (librdkafka's mock cluster), 1 broker, Nagle off, $PARTITIONS partitions per topic, a fresh instance for every measurement; payloads ~$(( PAD + 140 )) bytes of JSON, 1000 keys, 4 topics per side"
    echo "- Sizes: drain $DRAIN_EVENTS events x $DRAIN_REPEATS runs per side (naive: a ${NAIVE_SECONDS} s window); latency $LATENCY_SECONDS s per rate; steady state $STEADY_SECONDS s, $STEADY_CLIENTS writers$( [[ -n $STEADY_RATE ]] && echo " at $STEADY_RATE tx/s" || echo ", unthrottled"), retention ${STEADY_RETENTION} s"
    echo
    echo "Cells: median (each run, in run order) where there are several runs."
    echo
    echo "| # | Measure | outbox_ext | Baseline strong | Baseline naive | Goal | Met |"
    echo "|---|---|---|---|---|---|---|"
    if has drain; then
        o=$(med drain outbox events_per_s); s=$(med drain strong events_per_s); n=$(med drain naive events_per_s)
        echo "| 1 | Drain, events/s | $(fmt "$o") ($(runs drain outbox events_per_s)) | $(fmt "$s") ($(runs drain strong events_per_s)) | $(fmt "$n") (${NAIVE_SECONDS} s window, $(med drain naive published) events) | >= 100000 | $(verdict "$o" '>=' 100000) |"
        echo "| 1 | Drain: outbox_ext / strong | | $(div "$o" "$s") x | | >= 4 x | $(verdict "$(div "$o" "$s")" '>=' 4) |"
        echo "| 1 | Drain: outbox_ext / naive | | | $(div "$o" "$n") x | >= 50 x | $(verdict "$(div "$o" "$n")" '>=' 50) |"
        echo "| 1 | Drain, seconds for $DRAIN_EVENTS events | $(fmt "$(med drain outbox seconds)" 2) | $(fmt "$(med drain strong seconds)" 2) | | | |"
        echo "| 1 | CPU of the relay during the drain, s | $(fmt "$(med drain outbox relay_cpu_s)" 2) (worker: main thread + librdkafka threads) | $(fmt "$(med drain strong relay_cpu_s)" 2) (relay.py) | $(fmt "$(med drain naive relay_cpu_s)" 2) | | |"
        echo "| 1 | Drain, events per CPU second of the relay process (less disturbed by other load; relay.py's PostgreSQL backend not counted) | $(div "$DRAIN_EVENTS" "$(med drain outbox relay_cpu_s)" | awk '{ printf "%.0f", $1 }') | $(div "$DRAIN_EVENTS" "$(med drain strong relay_cpu_s)" | awk '{ printf "%.0f", $1 }') | $(div "$(med drain naive published)" "$(med drain naive relay_cpu_s)" | awk '{ printf "%.0f", $1 }') | | |"
        echo "| 1 | CPU of the local Kafka during the drain, s | $(fmt "$(med drain outbox kafka_cpu_s)" 2) | $(fmt "$(med drain strong kafka_cpu_s)" 2) | $(fmt "$(med drain naive kafka_cpu_s)" 2) | | |"
    fi
    if has latency; then
        for rate in $LATENCY_RATES; do
            cellv() { echo "$(fmt "$(vals "latency_$rate" "$1" p50_ms)" 1) / $(fmt "$(vals "latency_$rate" "$1" p99_ms)" 1) / $(fmt "$(vals "latency_$rate" "$1" max_ms)" 1)"; }
            goal="" met=""
            if [[ $rate == 1000 ]]; then
                goal="p50 <= 2, p99 <= 10"
                p50=$(vals latency_1000 outbox p50_ms); p99=$(vals latency_1000 outbox p99_ms)
                if [[ $SMOKE == 1 ]]; then met="not judged (smoke)"
                elif [[ $(verdict "$p50" '<=' 2) == yes && $(verdict "$p99" '<=' 10) == yes ]]; then met=yes; else met="**no**"; fi
            fi
            echo "| 2 | Latency at $rate/s, commit -> consumed p50 / p99 / max, ms | $(cellv outbox) | $(cellv strong) (poll 0.1 s) | $(cellv naive) (poll 5 s) | $goal | $met |"
            echo "| 2 | ... outbox_ext split at the message's CreateTime (ms resolution): commit -> produce() p50 / p99, produce() -> consumed p50 / p99 | $(fmt "$(vals "latency_$rate" outbox commit_to_produce_p50_ms)" 1) / $(fmt "$(vals "latency_$rate" outbox commit_to_produce_p99_ms)" 1), $(fmt "$(vals "latency_$rate" outbox produce_to_consumed_p50_ms)" 1) / $(fmt "$(vals "latency_$rate" outbox produce_to_consumed_p99_ms)" 1) | | | | |"
            if [[ -n $(vals "latency_$rate" outbox_fetch1 p50_ms) ]]; then
                echo "| 2 | ... reference: outbox_ext at $rate/s measured by a consumer with fetch.wait.max.ms=1 (not 5) | $(cellv outbox_fetch1) | | | | |"
            fi
            echo "| 2 | ... delivered / lost within the drain timeout at $rate/s | $(vals "latency_$rate" outbox delivered) / $(vals "latency_$rate" outbox lost) | $(vals "latency_$rate" strong delivered) / $(vals "latency_$rate" strong lost) | $(vals "latency_$rate" naive delivered) / $(vals "latency_$rate" naive lost) | | |"
        done
    fi
    if has emit; then
        e=$(med emit emit tps); p=$(med emit plain tps)
        r=$(awk -v a="$e" -v b="$p" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.2f", a / b }')
        echo "| 3 | Emit overhead, TPS: order + \`emit()\` vs order + plain INSERT (synchronous_commit=off) | $(fmt "$e") ($(runs emit emit tps)) | plain INSERT: $(fmt "$p") ($(runs emit plain tps)) | | ratio >= 0.95: $r | $(verdict "$r" '>=' 0.95) |"
    fi
    if has steady; then
        so() { vals steady outbox "$1"; }
        sb() { if [[ $STEADY_BASELINE == 1 ]]; then vals steady strong "$1"; else echo "not run"; fi; }
        echo "| 4 | Steady state: writers' TPS (one event per transaction) | $(fmt "$(so tps)") | $(fmt "$(sb tps)") | | | |"
        echo "| 4 | Steady state: pending, max / at the end | $(so pending_max) / $(so pending_end) | $(sb pending_max) / $(sb pending_end) | | bounded | $( [[ $SMOKE == 1 ]] && echo 'not judged (smoke)' || awk -v m="$(so pending_max)" -v t="$(so tps)" 'BEGIN { print (m + 0 <= t * 5) ? "yes (< 5 s of writes)" : "**no**" }') |"
        s1=$(so size_max_mb_1); s2=$(so size_max_mb_2); s3=$(so size_max_mb_3)
        echo "| 4 | Steady state: outbox heap + indexes, max MB per third of the run | $s1 / $s2 / $s3 | $(sb size_max_mb_1) / $(sb size_max_mb_2) / $(sb size_max_mb_3) (no retention: grows) | | sawtooth (last third <= 1.25 x middle) | $(verdict "$(div "$s3" "$s2")" '<=' 1.25) |"
        echo "| 4 | Steady state: relay process RssAnon, max MB | $(so rss_anon_max_mb) (worker) | $(sb rss_anon_max_mb) (relay.py) | | < 100 | $(verdict "$(so rss_anon_max_mb)" '<=' 100) |"
    fi
    if has inbox; then
        i=$(vals inbox outbox events_per_s); b=$(vals inbox baseline events_per_s)
        echo "| 5 | Inbox: $INBOX_EVENTS events into a SQL handler with dedup ($INBOX_WORKERS workers, $INBOX_PARTITIONS partitions), events/s | $(fmt "$i") | $(fmt "$b") (hand-written consumer, bench/inbox_baseline.py) | | >= 50000 | $( [[ $SMOKE == 1 ]] && echo 'not judged (smoke)' || verdict "$i" '>=' 50000) |"
        echo "| 5 | Inbox: CPU of the inbox workers per event, us | $(vals inbox outbox worker_cpu_us_per_event) | | | | |"
        echo "| 5 | Inbox: CPU of the local Kafka, s | $(vals inbox outbox kafka_cpu_s) | $(vals inbox baseline kafka_cpu_s) | | | |"
    fi
} >"$REPORT"

echo
cat "$REPORT"
mkdir -p bench/results
cp "$RESULTS" bench/results/relay.tsv
if [[ $SMOKE != 1 ]]; then
    cp "$REPORT" bench/results/relay.md
    echo
    echo "Written to bench/results/relay.md (raw figures: bench/results/relay.tsv, steady-state samples: bench/results/steady_*.tsv)."
    if [[ ${BENCH_UPDATE_DOC:-1} == 1 && $ONLY == "drain latency emit steady inbox" ]]; then
        begin='<!-- relay-results:begin -->'
        end='<!-- relay-results:end -->'
        if grep -qxF "$begin" BENCHMARKS.md && grep -qxF "$end" BENCHMARKS.md; then
            awk -v f="$REPORT" -v b="$begin" -v e="$end" '
                $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
                $0 == e { skip = 0 }
                !skip { print }' BENCHMARKS.md >"$TMP/BENCHMARKS.md"
            cat "$TMP/BENCHMARKS.md" >BENCHMARKS.md
            echo "Written into BENCHMARKS.md (between the relay-results markers)."
        else
            echo "BENCHMARKS.md has no relay-results markers: not updated." >&2
        fi
    fi
fi
