#!/usr/bin/env python3
"""Helpers for bench/relay.sh (needs psycopg2 and confluent_kafka).

  relay_tool.py count   --bootstrap BS --topics t1,t2,...
      Messages in Kafka: the sum of the high watermarks of every partition of
      the topics (retention-proof: the local Kafka keeps only ~5 MiB per
      partition, so a big run is counted, not consumed). One JSON line.

  relay_tool.py latency --dsn DSN --bootstrap BS --rate R --duration S
                        [--payload-pad 200] [--drain-timeout 30]
      Commit -> consumed latency of outbox_ext, the metric the baseline's
      bench_driver.py latency reports: one thread commits one event per
      autocommit transaction (SELECT outbox.emit(...)) at a fixed rate on an
      absolute schedule, and notes when each COMMIT returned; a consumer
      assigned to every partition of the four topics (from the start, with
      fetch.wait.max.ms=5: the local Kafka holds an empty fetch for the whole
      wait) notes when each message arrives; they are matched by the event id
      (the `id` header). Same four aggregate types and key spread as the
      baseline. One JSON line: p50/p90/p99/max/mean in ms, lost, duplicates,
      and the split at the message's CreateTime (set when the worker calls
      produce(); millisecond resolution): commit -> produce and produce ->
      consumed.
"""
import argparse
import json
import math
import sys
import threading
import time
import uuid

import psycopg2
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME

AGG_TYPES = ["order", "payment", "shipment", "customer"]
EVENT_TYPES = ["OrderCreated", "PaymentCaptured", "ShipmentDispatched", "CustomerUpdated"]


def partitions(bootstrap, topics):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "relay-tool-md",
                  "socket.nagle.disable": True})
    md = c.list_topics(timeout=10)
    out = []
    for t in topics:
        if t in md.topics and not md.topics[t].error:
            out += [TopicPartition(t, p) for p in md.topics[t].partitions]
    return c, out


def cmd_count(a):
    topics = [t for t in a.topics.split(",") if t]
    c, tps = partitions(a.bootstrap, topics)
    total = sum(c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
    c.close()
    print(json.dumps({"messages": total, "partitions": len(tps)}), flush=True)


def pct(vals, p):
    k = max(1, math.ceil(p / 100.0 * len(vals)))
    return vals[k - 1]


def cmd_latency(a):
    topics = [a.topic_prefix + t for t in AGG_TYPES]
    cons, tps = partitions(a.bootstrap, topics)
    cons.close()
    if len(tps) == 0 or len({tp.topic for tp in tps}) < len(topics):
        print("topics missing on the broker", file=sys.stderr)
        sys.exit(2)
    cons = Consumer({"bootstrap.servers": a.bootstrap,
                     "group.id": "relay-tool-latency-" + uuid.uuid4().hex[:8],
                     "enable.auto.commit": False,
                     "socket.nagle.disable": True,
                     "fetch.wait.max.ms": a.fetch_wait_ms,
                     "fetch.error.backoff.ms": 5})
    for tp in tps:
        tp.offset = OFFSET_BEGINNING
    cons.assign(tps)

    commit_at = {}
    arrived = {}
    produced = {}                   # the message's CreateTime: when produce() was called
    dups = [0]
    stop = threading.Event()

    def consume():
        while not stop.is_set():
            m = cons.poll(0.05)
            now = time.time()
            if m is None or m.error():
                continue
            eid = None
            for k, v in (m.headers() or []):
                if k == "id":
                    eid = v.decode()
                    break
            if eid is None:
                continue
            if eid in arrived:
                dups[0] += 1
            else:
                arrived[eid] = now
                ts_type, ts_ms = m.timestamp()
                if ts_type == TIMESTAMP_CREATE_TIME:
                    produced[eid] = ts_ms / 1000.0

    th = threading.Thread(target=consume, daemon=True)
    th.start()

    conn = psycopg2.connect(a.dsn)
    conn.autocommit = True
    cur = conn.cursor()

    def emit(k, agg_id, payload):
        cur.execute("SELECT outbox.emit(%s, %s, %s, %s::jsonb)",
                    (AGG_TYPES[k], agg_id, EVENT_TYPES[k], json.dumps(payload)))
        return str(cur.fetchone()[0])

    # Warm-up, not measured: one event per topic, until each has arrived
    # (the consumer is fetching everywhere, the producer knows the topics).
    warm = [emit(k, "warmup", {"warmup": True}) for k in range(len(AGG_TYPES))]
    deadline = time.time() + a.drain_timeout
    while time.time() < deadline and not all(e in arrived for e in warm):
        time.sleep(0.02)
    if not all(e in arrived for e in warm):
        print("warm-up events never arrived", file=sys.stderr)
        sys.exit(3)
    time.sleep(0.2)

    n_total = int(a.rate * a.duration)
    interval = 1.0 / a.rate
    late = 0
    t_start = time.time()
    for i in range(n_total):
        target = t_start + i * interval
        now = time.time()
        if target > now:
            time.sleep(target - now)
        elif now - target > interval:
            late += 1
        k = i % 4
        eid = emit(k, f"agg-{i % 1000}",
                   {"seq": i, "amount": i * 1.5, "currency": "EUR",
                    "note": "x" * a.payload_pad, "ts": time.time()})
        commit_at[eid] = time.time()  # autocommit: COMMIT has returned
    insert_s = time.time() - t_start

    deadline = time.time() + a.drain_timeout
    while time.time() < deadline and not all(e in arrived for e in commit_at):
        time.sleep(0.05)
    stop.set()
    th.join(5)
    cons.close()

    lat = sorted((arrived[e] - t) * 1000.0 for e, t in commit_at.items() if e in arrived)
    # The split (millisecond timestamps): commit -> produce() in the worker,
    # produce() -> consumed (producer batching, the local Kafka, the consumer).
    to_produce = sorted((produced[e] - t) * 1000.0 for e, t in commit_at.items() if e in produced)
    from_produce = sorted((arrived[e] - produced[e]) * 1000.0 for e in commit_at if e in produced)
    print(json.dumps({
        "inserted": n_total,
        "insert_rate_achieved": round(n_total / insert_s, 1),
        "late_inserts": late,
        "delivered": len(lat),
        "lost": n_total - len(lat),
        "duplicates": dups[0],
        "p50_ms": round(pct(lat, 50), 1) if lat else None,
        "p90_ms": round(pct(lat, 90), 1) if lat else None,
        "p99_ms": round(pct(lat, 99), 1) if lat else None,
        "max_ms": round(lat[-1], 1) if lat else None,
        "mean_ms": round(sum(lat) / len(lat), 1) if lat else None,
        "commit_to_produce_p50_ms": round(pct(to_produce, 50), 1) if to_produce else None,
        "commit_to_produce_p99_ms": round(pct(to_produce, 99), 1) if to_produce else None,
        "produce_to_consumed_p50_ms": round(pct(from_produce, 50), 1) if from_produce else None,
        "produce_to_consumed_p99_ms": round(pct(from_produce, 99), 1) if from_produce else None,
    }), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("count")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topics", required=True)
    p = sub.add_parser("latency")
    p.add_argument("--dsn", required=True)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--payload-pad", type=int, default=200)
    p.add_argument("--drain-timeout", type=float, default=30)
    p.add_argument("--topic-prefix", default="outbox.event.")
    p.add_argument("--fetch-wait-ms", type=int, default=5,
                   help="consumer fetch.wait.max.ms (5, as bench_driver.py)")
    a = ap.parse_args()
    {"count": cmd_count, "latency": cmd_latency}[a.cmd](a)


if __name__ == "__main__":
    main()
