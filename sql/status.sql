-- outbox.status, outbox.event_status(), dead letters and retry_dead().
-- No publisher runs in these tests: "publishing" is simulated by moving the
-- cursor the way the publisher will (superuser only, internal table).
\pset null '(null)'

CREATE FUNCTION pg_temp.publish_all() RETURNS void LANGUAGE sql AS $$
    UPDATE outbox._cursor SET prev_snap = pg_current_snapshot(), cur_snap = NULL, page_seq = NULL,
           published_total = published_total +
               (SELECT count(*) FROM outbox.events e, outbox._local_cursor() c
                 WHERE NOT outbox._published(e.xid, e.seq, c.prev_snap, c.cur_snap, c.page_seq, c.fence_seq))
$$;
SELECT pg_temp.publish_all();

-- No publisher serves this database (outbox.database does not name it, or
-- the library is not preloaded).
SELECT pending, oldest_pending_age IS NULL AS no_age, dead, worker_pid,
       worker_state IN ('not_running', 'not_preloaded') AS no_publisher, last_error, cursor_ok
FROM outbox.status;

SELECT outbox.emit('Order', 'st-1', 'OrderPlaced', '{}') AS e1 \gset
SELECT outbox.emit('Order', 'st-2', 'OrderPlaced', '{}') AS e2 \gset
SELECT pending, oldest_pending_age >= '0' AS has_age FROM outbox.status;
SELECT outbox.event_status(:'e1') AS e1, outbox.event_status(:'e2') AS e2,
       outbox.event_status('01890000-0000-7000-8000-00000000beef') AS never_emitted,
       outbox.event_status(NULL) AS null_id;

-- A rolled-back event is unknown.
BEGIN;
SELECT outbox.emit('Order', 'st-3', 'OrderPlaced', '{}') AS e3 \gset
ROLLBACK;
SELECT outbox.event_status(:'e3') AS rolled_back;

-- Publishing moves events from pending to published.
SELECT pg_temp.publish_all();
SELECT pending, published >= 2 AS counted FROM outbox.status;
SELECT outbox.event_status(:'e1') AS e1;

-- Within a snapshot pair, only events up to the page position are published.
SELECT outbox.emit('Order', 'st-4', 'OrderPlaced', '{}') AS e4 \gset
SELECT outbox.emit('Order', 'st-5', 'OrderPlaced', '{}') AS e5 \gset
UPDATE outbox._cursor SET cur_snap = pg_current_snapshot(),
       page_seq = (SELECT seq FROM outbox.events WHERE event_id = :'e4');
SELECT outbox.event_status(:'e4') AS e4_in_page, outbox.event_status(:'e5') AS e5_after_page;
SELECT pending FROM outbox.status;
SELECT pg_temp.publish_all();

-- Dead letters (written by the publisher) and retry_dead().
INSERT INTO outbox.dead_letters (event_id, seq, root_id, aggregate_type, aggregate_id, event_type,
                                 topic, payload, created_at, error, attempts)
SELECT event_id, seq, root_id, aggregate_type, aggregate_id, event_type, topic, payload, created_at,
       'Broker: Topic authorization failed', 5
FROM outbox.events WHERE event_id IN (:'e4', :'e5');
SELECT dead FROM outbox.status;
SELECT outbox.event_status(:'e4') AS e4;
SELECT outbox.retry_dead(:'e4') AS requeued_one;
SELECT outbox.event_status(:'e4') AS e4_after_retry, outbox.event_status(:'e5') AS e5_still_dead;
SELECT count(*) AS copies, max(seq) > (SELECT max(seq) FROM outbox.events WHERE event_id = :'e5') AS after_newer
FROM outbox.events WHERE event_id = :'e4';
SELECT outbox.retry_dead() AS requeued_rest, outbox.retry_dead() AS nothing_left;
SELECT dead, pending FROM outbox.status;
SELECT pg_temp.publish_all();
SELECT outbox.event_status(:'e5') AS e5;

-- Parking (the publisher's bookkeeping for events Kafka refuses), called
-- here directly: a parked event is pending; one behind it on the same key
-- waits; at outbox.max_attempts it becomes a dead letter and the next one
-- of its key becomes due at once.
SELECT outbox.emit('Order', 'pk', 'E', '{}') AS k1 \gset
SELECT outbox.emit('Order', 'pk', 'E', '{}') AS k2 \gset
SELECT pg_temp.publish_all();
SELECT outbox._park(seq, event_id, topic, aggregate_id, 2, 'Broker: Topic authorization failed', 3)
FROM outbox.events WHERE event_id = :'k1';
SELECT outbox._park(seq, event_id, topic, aggregate_id, 0, NULL, 3)
FROM outbox.events WHERE event_id = :'k2';
SELECT outbox.event_status(:'k1') AS k1, outbox.event_status(:'k2') AS k2;
SELECT pending, parked FROM outbox.status;
SELECT attempts, next_attempt_at = 'infinity' AS waiting FROM outbox._parked ORDER BY seq;
SELECT outbox._parked_failed(seq, 'Broker: Topic authorization failed', true, 3) AS dead
FROM outbox._parked WHERE event_id = :'k1';
SELECT outbox.event_status(:'k1') AS k1, attempts, error FROM outbox.dead_letters WHERE event_id = :'k1';
SELECT attempts, next_attempt_at <= now() AS due_now FROM outbox._parked WHERE event_id = :'k2';
-- A transient failure does not count as an attempt.
SELECT outbox._parked_failed(seq, 'Local: Message timed out', false, 3) AS dead
FROM outbox._parked WHERE event_id = :'k2';
SELECT attempts FROM outbox._parked WHERE event_id = :'k2';
SELECT outbox._parked_delivered(seq) FROM outbox._parked WHERE event_id = :'k2';
SELECT outbox.event_status(:'k2') AS k2, parked FROM outbox.status;
-- With outbox.max_attempts at or below the attempts already made, parking
-- dead-letters at once.
SELECT outbox.emit('Order', 'pk2', 'E', '{}') AS k3 \gset
SELECT pg_temp.publish_all();
SELECT outbox._park(seq, event_id, topic, aggregate_id, 2, 'Broker: Topic authorization failed', 1)
FROM outbox.events WHERE event_id = :'k3';
SELECT outbox.event_status(:'k3') AS k3, (SELECT attempts FROM outbox.dead_letters WHERE event_id = :'k3');
SELECT outbox.retry_dead() IS NOT NULL AS cleaned_up;
