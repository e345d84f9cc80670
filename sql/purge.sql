-- outbox.purge(): retention by rotating and truncating child tables; no
-- row-by-row DELETE of events. Publishing is simulated by moving the cursor.
\pset null '(null)'

CREATE FUNCTION pg_temp.publish_all() RETURNS void LANGUAGE sql AS $$
    UPDATE outbox._cursor SET prev_snap = pg_current_snapshot(), cur_snap = NULL, page_seq = NULL
$$;
CREATE FUNCTION pg_temp.slots() RETURNS TABLE (slot smallint, is_current boolean, rows bigint)
LANGUAGE sql AS $$
    SELECT s.slot, s.is_current, (SELECT count(*) FROM outbox.events e WHERE e.slot = s.slot)
    FROM outbox._slots s ORDER BY s.slot
$$;

-- Start from a clean, fully published outbox.
SELECT pg_temp.publish_all();
SELECT outbox.purge('0') IS NOT NULL AS purged;
SELECT outbox.purge('0') IS NOT NULL AS purged;
SELECT outbox.purge('0') IS NOT NULL AS purged;
SELECT count(*) AS left_over FROM outbox.events;
SELECT (SELECT slot FROM outbox._slots WHERE is_current) AS start_slot \gset

-- Unpublished events are never removed, whatever the retention.
SELECT count(*) FROM (SELECT outbox.emit('Order', 'p' || g, 'E', '{}') FROM generate_series(1, 100) g) s;
SELECT * FROM outbox.purge('0');
SELECT * FROM pg_temp.slots();
SELECT * FROM outbox.purge('0');
SELECT count(*) AS kept_unpublished FROM outbox.events;

-- Once published they go, a whole child table at a time.
SELECT pg_temp.publish_all();
SELECT * FROM outbox.purge('0');
SELECT count(*) AS remaining FROM outbox.events;

-- New events go to the current child; a long retention keeps everything and
-- does not rotate a young child.
SELECT count(*) FROM (SELECT outbox.emit('Order', 'q' || g, 'E', '{}') FROM generate_series(1, 10) g) s;
SELECT pg_temp.publish_all();
SELECT * FROM outbox.purge('1 day');
SELECT * FROM outbox.purge();
SELECT * FROM pg_temp.slots();

-- Processed records have their own retention.
SELECT outbox.try_process('c', '01890000-0000-7000-8000-0000000000a1');
SELECT outbox.try_process_root('c', '01890000-0000-7000-8000-0000000000a1');
UPDATE outbox.processed_messages SET processed_at = now() - interval '8 days';
SELECT outbox.try_process('c', '01890000-0000-7000-8000-0000000000a2');
SELECT * FROM outbox.purge();     -- outbox.processed_retention = 7 days
SELECT event_id FROM outbox.processed_messages;
SELECT * FROM outbox.purge('0');  -- older_than applies to both
SELECT count(*) AS processed_left FROM outbox.processed_messages;
-- A message replayed after its record was purged is processed again.
SELECT outbox.try_process('c', '01890000-0000-7000-8000-0000000000a1') AS replay_after_window;

-- Rotation switched the current child; emits follow it.
SELECT outbox.emit('Order', 'r', 'E', '{}') AS r \gset
SELECT s.is_current AS written_to_current FROM outbox.events e JOIN outbox._slots s USING (slot)
WHERE e.event_id = :'r';

-- A restored (foreign) cursor blocks truncation until reset_cursor().
SELECT pg_temp.publish_all();
INSERT INTO outbox._cursor (system_identifier, datoid, prev_snap)
VALUES (42, 42, pg_current_snapshot());
SELECT * FROM outbox.purge('0');
SELECT count(*) > 0 AS still_there FROM outbox.events;
DELETE FROM outbox._cursor WHERE system_identifier = 42;

-- Bad calls.
SELECT expect_error($$SELECT outbox.purge('-1 day')$$);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT expect_error($$SELECT outbox.purge()$$);
ROLLBACK;

-- Retention settings are durations with units, as PostgreSQL's own.
SELECT name, setting, unit, current_setting(name)::interval AS as_interval
FROM pg_settings WHERE name IN ('outbox.retention', 'outbox.processed_retention') ORDER BY name;
