-- Dump/restore: the extension's tables are kept by pg_dump, and a restored
-- outbox is detected and repaired with outbox.reset_cursor().
\pset null '(null)'

SELECT c.relname
FROM pg_extension e, unnest(e.extconfig) AS t(oid) JOIN pg_class c ON c.oid = t.oid
WHERE e.extname = 'outbox_ext' ORDER BY 1;

-- Simulate what pg_dump + restore into another database produces: the old
-- database's cursor row arrives beside the one CREATE EXTENSION made at
-- restore time, and the events carry the old cluster's xids. Here: event a
-- was published there, event b was still pending; c is emitted after the
-- restore but before anyone ran reset_cursor().
SELECT outbox.emit('Order', 'a', 'E', '{}') AS a \gset
INSERT INTO outbox._cursor (system_identifier, datoid, installed_at, prev_snap)
SELECT 4242, 4242, now() - interval '1 day', pg_current_snapshot();
SELECT outbox.emit('Order', 'b', 'E', '{}') AS b \gset
UPDATE outbox._cursor SET installed_at = clock_timestamp() WHERE system_identifier <> 4242;
SELECT outbox.emit('Order', 'c', 'E', '{}') AS c \gset

SELECT cursor_ok, last_error FROM outbox.status;
-- Nothing is truncated while the cursor is foreign.
SELECT events FROM outbox.purge('0');

-- Requeue what was pending under the old cursor and what was emitted since
-- the restore; everything older is fenced as published.
SELECT outbox.reset_cursor() AS requeued;
SELECT cursor_ok, last_error, pending FROM outbox.status;
SELECT count(*) AS cursors FROM outbox._cursor;
SELECT outbox.event_status(:'a') AS a, outbox.event_status(:'b') AS b, outbox.event_status(:'c') AS c;
SELECT count(*) AS copies_of_b FROM outbox.events WHERE event_id = :'b';

-- Events emitted after the reset are pending as usual.
SELECT outbox.emit('Order', 'd', 'E', '{}') AS d \gset
SELECT outbox.event_status(:'d') AS d;

-- A reset on a healthy outbox requeues its pending events once.
SELECT pending AS pending_before FROM outbox.status;
SELECT outbox.reset_cursor() AS requeued;
SELECT pending AS pending_after FROM outbox.status;
SELECT outbox.reset_cursor(requeue_pending => false) AS requeued;
SELECT pending AS pending_when_skipped FROM outbox.status;
