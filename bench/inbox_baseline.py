#!/usr/bin/python3
"""The hand-written consumer a team writes without outbox_ext's inbox, as the
baseline of the inbox benchmark (bench/relay.sh, step "inbox").

A good-faith strong version: a confluent_kafka consumer (auto commit off)
takes batches of up to --batch-size messages; per batch one database
transaction records the message ids in a dedup table (one INSERT ... ON
CONFLICT DO NOTHING RETURNING for the batch), calls the same SQL handler for
the new ones (one statement for the batch), commits, and then commits the
offsets to Kafka synchronously. At least once with dedup: a crash between the
two commits re-reads messages the dedup table then skips.

The handler gets the same fields the inbox gives it (event_id, root_id,
event_type, topic, partition, offset, headers, payload).

  inbox_baseline.py --dsn DSN --bootstrap HOST:PORT --topic T --expect N
                    [--group G] [--batch-size 500] [--handler bench_handler]

Prints one JSON line: consumed, handled, seconds (first message to last
commit), events_per_s.
"""
import argparse
import json
import sys
import time

import psycopg2
import psycopg2.extras
from confluent_kafka import Consumer, KafkaError


def event_of(msg):
    headers = {k: (v.decode("utf-8", "replace") if v is not None else None)
               for k, v in (msg.headers() or [])}
    value = msg.value()
    try:
        payload = json.loads(value) if value is not None else None
    except ValueError:
        payload = value.decode("utf-8", "replace")
    event_id = headers.get("id") or f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
    return event_id, {
        "event_id": event_id,
        "root_id": headers.get("root_id") or event_id,
        "causation_id": headers.get("causation_id"),
        "event_type": headers.get("ce_type"),
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "headers": headers,
        "payload": payload,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--group", default="inbox-baseline")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--handler", default="bench_handler")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()

    db = psycopg2.connect(args.dsn)
    with db, db.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS app_processed "
                    "(consumer text, event_id text, processed_at timestamptz DEFAULT now(), "
                    "PRIMARY KEY (consumer, event_id))")
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group,
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "socket.nagle.disable": True, "fetch.wait.max.ms": 10,
        "session.timeout.ms": 6000,
    })
    consumer.subscribe([args.topic])
    consumed = handled = 0
    first = last = None
    deadline = time.time() + args.timeout
    while consumed < args.expect and time.time() < deadline:
        msgs = consumer.consume(num_messages=args.batch_size, timeout=0.1)
        for m in msgs:
            if m.error() is not None and m.error().code() != KafkaError._PARTITION_EOF:
                print(f"inbox_baseline: {m.error()}", file=sys.stderr)
        msgs = [m for m in msgs if m.error() is None]
        if not msgs:
            continue
        if first is None:
            first = time.time()
        events = [event_of(m) for m in msgs]
        with db, db.cursor() as cur:
            new = psycopg2.extras.execute_values(
                cur, "INSERT INTO app_processed (consumer, event_id) VALUES %s "
                     "ON CONFLICT DO NOTHING RETURNING event_id",
                [(args.group, eid) for eid, _ in events], page_size=len(events), fetch=True)
            new = {r[0] for r in new}
            todo = []
            for eid, ev in events:
                if eid in new:
                    new.discard(eid)
                    todo.append(json.dumps(ev))
            if todo:
                cur.execute(f"SELECT count({args.handler}(e)) FROM unnest(%s::jsonb[]) e", (todo,))
        consumer.commit(asynchronous=False)
        consumed += len(msgs)
        handled += len(todo)
        last = time.time()
    consumer.close()
    secs = (last - first) if first and last else 0.0
    print(json.dumps({"consumed": consumed, "handled": handled, "seconds": round(secs, 3),
                      "events_per_s": round(consumed / secs) if secs else None}))
    return 0 if consumed >= args.expect else 1


if __name__ == "__main__":
    sys.exit(main())
