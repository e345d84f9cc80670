#!/bin/bash
# End-to-end check of kafka_mock: serve/ctl/files, Nagle fix (latency),
# kcat produce/consume/group, broker down/up, push_errors, reject_topic,
# control-channel robustness, clean exit.  Needs kcat; python3 is optional.
# Waits poll with a deadline; the only deliberate pause is the length of
# the broker outage in the down/up test.
set -euo pipefail
cd "$(dirname "$0")"
KM=$PWD/kafka_mock
[ -x "$KM" ] || make -s kafka_mock
command -v kcat >/dev/null || { echo "SKIP: kcat not installed"; exit 0; }

WORK=$(mktemp -d /tmp/kafka_mock_check.XXXXXX)
DIR=$WORK/mock
LOG=$WORK/serve.log
PID=
KCATP=
cleanup() {
    [ -n "$KCATP" ] && kill "$KCATP" 2>/dev/null || true
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; echo "--- serve log:"; tail -20 "$LOG" || true; exit 1; }
pass() { echo "PASS: $*"; }
# wait_until SECONDS CMD...: polls CMD until it succeeds or the deadline.
wait_until() {
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.05
    done
}
ctl() { "$KM" ctl --dir "$DIR" "$@"; }
consume() { # consume TOPIC: prints "key headers value" of every message
    timeout 20 kcat -b "$B" -C -t "$1" -e -o beginning -q -f '%k %h %s\n' \
        -X fetch.wait.max.ms=5
}
has_msg() { consume "$1" | grep -- "$2" >/dev/null; }

# ---------------------------------------------------------------- start
setsid "$KM" serve --brokers 4 --dir "$DIR" --topic t1:2 --topic t2:1 \
    2>"$LOG" &
PID=$!
ctl --wait 30 ping >/dev/null || fail "serve did not come up"
B=$(cat "$DIR/bootstrap")
[ "$(cat "$DIR/pid")" = "$PID" ] || fail "DIR/pid"
[ -S "$DIR/control" ] || fail "DIR/control"
[ "$(tr ',' '\n' <<<"$B" | grep -c '^127\.0\.0\.1:[0-9]*$')" = 4 ] ||
    fail "bootstrap $B"
pass "serve: 4 brokers at $B; DIR/bootstrap, DIR/pid, DIR/control"

# ---------------------------------------------------------------- latency
out=$("$KM" selftest --dir "$DIR" --topic t1 --count 100 --rounds 10)
echo "$out" | sed 's/^/      /'
single=$(sed -n 's/.*one at a time): median \([0-9.]*\) ms.*/\1/p' <<<"$out")
batch=$(sed -n 's/.*delivery report): median \([0-9.]*\) ms.*/\1/p' <<<"$out")
awk -v s="$single" -v b="$batch" 'BEGIN { exit !(s < 5 && b < 5) }' ||
    fail "latency: single $single ms, batch $batch ms (Nagle?)"
pass "latency: produce round trip median $single ms, 100-message batch median $batch ms"

# ---------------------------------------------------------------- kcat
echo hello1 | kcat -b "$B" -P -t t1 -k key -H h=v
echo hello2 | kcat -b "$B" -P -t t1 -k key -H h=v2
[ "$(consume t1 | grep hello)" = $'key h=v hello1\nkey h=v2 hello2' ] ||
    fail "kcat round trip: $(consume t1 | grep hello)"
pass "kcat -P with key and header, kcat -C -f '%k %h %s'"

group() {
    timeout 60 kcat -b "$B" -G g1 -e -q -f '%s\n' -X session.timeout.ms=6000 \
        -X auto.offset.reset=earliest -X fetch.wait.max.ms=5 t1 |
        grep hello || true
}
[ "$(group)" = $'hello1\nhello2' ] || fail "group first read"
echo hello3 | kcat -b "$B" -P -t t1 -k key
[ "$(group)" = hello3 ] || fail "group resumed at committed offset"
pass "kcat -G consumer group; second member resumes at the committed offset"

# ---------------------------------------------------------------- down/up
# The leader of t2's only partition goes down; a producer started meanwhile
# bootstraps from the other brokers, queues the message and delivers it once
# the leader is back.  (kcat -P reads stdin in blocks, so a long-lived kcat
# fed through a FIFO would not produce line by line.)
L=$(kcat -b "$B" -L -t t2 | awk '/partition 0,/ { sub(",", "", $4); print $4 }')
ctl broker_down "$L" >/dev/null
echo "k:during-down" | kcat -b "$B" -P -t t2 -K: -X message.timeout.ms=60000 \
    -X reconnect.backoff.max.ms=200 >"$WORK/kcatP.out" 2>&1 &
KCATP=$!
sleep 1 # the outage itself
kill -0 "$KCATP" 2>/dev/null || fail "kcat -P ended while the leader was down: $(cat "$WORK/kcatP.out")"
t0=$(date +%s%N)
ctl broker_up "$L" >/dev/null
wait "$KCATP" || fail "kcat -P: $(cat "$WORK/kcatP.out")"
KCATP=
ms=$((($(date +%s%N) - t0) / 1000000))
! grep -q "Delivery failed" "$WORK/kcatP.out" || fail "kcat -P: $(cat "$WORK/kcatP.out")"
wait_until 30 has_msg t2 during-down || fail "message missing after up"
pass "broker_down $L: produce queued for 1 s; delivered $ms ms after broker_up $L"

# ---------------------------------------------------------------- push_errors
ctl push_errors Produce 3 NOT_LEADER_FOR_PARTITION >/dev/null
ctl push_errors produce 2 RD_KAFKA_RESP_ERR__TRANSPORT REQUEST_TIMED_OUT >/dev/null
"$KM" selftest --dir "$DIR" --topic t1 --count 20 --rounds 1 >/dev/null 2>&1 ||
    fail "idempotent producer through injected Produce errors"
pass "push_errors Produce (NOT_LEADER_FOR_PARTITION, _TRANSPORT, REQUEST_TIMED_OUT): all delivered"
if out=$(ctl push_errors Metadata 1 LEADER_NOT_AVAILABLE); then
    fail "push_errors Metadata accepted"
fi
grep -q "never injects" <<<"$out" || fail "push_errors Metadata: $out"
if ctl push_errors Produce 1 NO_SUCH_ERROR >/dev/null; then fail "bad error name"; fi
if ctl frobnicate >/dev/null; then fail "unknown command"; fi
ctl topic_error t9 RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED >/dev/null
ctl topic_error t9 NO_ERROR >/dev/null
pass "error replies exit 1; both error-name spellings accepted"

# ---------------------------------------------------------------- reject_topic
ctl reject_topic poison TOPIC_AUTHORIZATION_FAILED >/dev/null
"$KM" selftest --dir "$DIR" --topic t1 --topic poison:TOPIC_AUTHORIZATION_FAILED \
    --topic t2 --count 30 --rounds 1 >"$WORK/st.out" 2>&1 ||
    fail "reject_topic: $(cat "$WORK/st.out")"
out=$(echo p | kcat -b "$B" -P -t poison 2>&1 || true)
grep "Topic authorization failed" <<<"$out" >/dev/null || fail "kcat to poison: $out"
pass "reject_topic poison: every produce fails with TOPIC_AUTHORIZATION_FAILED, t1/t2 work, no fatal error"
ctl accept_topic poison >/dev/null
"$KM" selftest --dir "$DIR" --topic poison --count 5 --rounds 1 >/dev/null 2>&1 ||
    fail "accept_topic"
pass "accept_topic poison: produce works again (new producer)"

# ---------------------------------------------------------------- control robustness
if command -v python3 >/dev/null; then
    python3 - "$DIR/control" <<'EOF' || fail "control robustness"
import socket, sys, time
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(path); return s
def cmd(line):
    s = conn(); s.sendall(line.encode() + b"\n")
    r = b""
    while True:
        d = s.recv(4096)
        if not d: break
        r += d
    s.close(); return r.decode().strip()
s = conn(); s.sendall(b"broker_down 1"); s.close()   # disconnect mid-command
idle = conn()                                         # a client that stays silent
t = time.time(); st = cmd("status"); dt = time.time() - t
assert "1:up" in st, st
assert dt < 1, dt
s = conn(); s.sendall(b"ping\n"); s.close()           # leaves before the reply
big = conn(); big.sendall(b"x" * 5000); assert big.recv(100).startswith(b"error:")
many = [conn() for _ in range(20)]
for c in many: c.sendall(b"ping\n")
assert all(c.recv(100) == b"ok\n" for c in many)
idle.close()
assert cmd("ping") == "ok"
EOF
    pass "control: mid-command disconnect ignored, silent client doesn't block, 20 concurrent clients"
fi

# ---------------------------------------------------------------- second instance, exit
if "$KM" serve --dir "$DIR" 2>/dev/null; then fail "second instance started"; fi
[ -S "$DIR/control" ] && ctl ping >/dev/null || fail "second instance disturbed the first"
pass "a second serve on the same DIR refuses to start"

ctl quit >/dev/null
wait "$PID" || fail "exit status $?"
PID=
[ -z "$(ls -A "$DIR")" ] || fail "files left: $(ls -A "$DIR")"
pass "ctl quit: exit 0, DIR/bootstrap, DIR/control, DIR/pid removed"

setsid "$KM" serve --dir "$DIR" 2>>"$LOG" &
PID=$!
ctl --wait 30 ping >/dev/null || fail "restart"
kill -TERM "$PID"
wait "$PID" || fail "SIGTERM exit status $?"
PID=
[ -z "$(ls -A "$DIR")" ] || fail "files left after SIGTERM"
pass "SIGTERM: exit 0, files removed"
echo "all kafka_mock checks passed"
