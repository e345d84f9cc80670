-- Privileges: application roles write only through the functions.
\pset null '(null)'

CREATE ROLE outbox_test_app LOGIN;
CREATE ROLE outbox_test_owner LOGIN;

SET ROLE outbox_test_app;
-- Nothing is granted by default.
SELECT expect_error($$SELECT outbox.emit('Order', 'x', 'E', '{}')$$);
SELECT expect_error($$SELECT outbox.try_process('app', '01890000-0000-7000-8000-000000000001')$$);
RESET ROLE;

GRANT EXECUTE ON FUNCTION outbox.emit(text, text, text, jsonb, jsonb, text, text),
                          outbox.set_context(uuid, uuid),
                          outbox.try_process(text, uuid, uuid),
                          outbox.try_process_root(text, uuid),
                          outbox.event_status(uuid),
                          outbox.trace(uuid)
      TO outbox_test_app;
GRANT SELECT ON outbox.status TO outbox_test_app;

SET ROLE outbox_test_app;
-- Through the functions: allowed.
SELECT outbox.emit('Order', 'priv', 'E', '{}') AS e \gset
SELECT outbox.event_status(:'e');
SELECT outbox.try_process('app', '01890000-0000-7000-8000-000000000001') AS first;
SELECT outbox.try_process_root('app', '01890000-0000-7000-8000-000000000001') AS first_root;
SELECT pending >= 1 AS sees_status FROM outbox.status;
SELECT count(*) FROM outbox.trace(:'e');

-- Directly: refused, so no row can be forged, hidden or removed.
SELECT expect_error($$SELECT count(*) FROM outbox.events$$);
SELECT expect_error($$INSERT INTO outbox.events_0 (seq, xid, created_at, event_id, root_id, slot, aggregate_type, aggregate_id, event_type, topic) VALUES (1, '1', now(), gen_random_uuid(), gen_random_uuid(), 0, 'a', 'b', 'c', 'd')$$);
SELECT expect_error($$UPDATE outbox.events SET xid = '1'$$);
SELECT expect_error($$DELETE FROM outbox.events_0$$);
SELECT expect_error($$TRUNCATE outbox.events_1$$);
SELECT expect_error($$INSERT INTO outbox.processed_messages VALUES ('app', gen_random_uuid(), gen_random_uuid(), now())$$);
SELECT expect_error($$DELETE FROM outbox.processed_messages$$);
SELECT expect_error($$UPDATE outbox._cursor SET prev_snap = pg_current_snapshot()$$);
SELECT expect_error($$UPDATE outbox._slots SET is_current = false$$);
SELECT expect_error($$SELECT nextval('outbox._event_seq')$$);
-- Maintenance and capture are not granted.
SELECT expect_error($$SELECT outbox.purge()$$);
SELECT expect_error($$SELECT outbox.retry_dead()$$);
SELECT expect_error($$SELECT outbox.reset_cursor()$$);
SELECT expect_error($$SELECT outbox._invalidate_slot_cache()$$);
-- Settings that route events are not the application's to change.
SELECT expect_error($$SET outbox.allowed_topics = '*'$$);
SELECT expect_error($$SET outbox.topic_template = 'x.{aggregate_type}'$$);
SELECT expect_error($$SET outbox.max_message_bytes = 100000000$$);
-- The trace context is.
SET outbox.traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
RESET outbox.traceparent;
RESET ROLE;

-- capture(): only the table's owner, with EXECUTE on capture and the trigger.
GRANT EXECUTE ON FUNCTION outbox.capture(regclass, text, name), outbox.uncapture(regclass),
                          outbox._capture_trigger(), outbox._resolve_topic(text, text)
      TO outbox_test_owner, outbox_test_app;
GRANT CREATE ON SCHEMA public TO outbox_test_owner;
SET ROLE outbox_test_owner;
CREATE TABLE owned (id int PRIMARY KEY, v text);
GRANT INSERT ON owned TO outbox_test_app;
RESET ROLE;

SET ROLE outbox_test_app;
SELECT expect_error($$SELECT outbox.capture('owned')$$);
RESET ROLE;

SET ROLE outbox_test_owner;
SELECT outbox.capture('owned');
RESET ROLE;

-- Any role that may write the table gets its events, without outbox rights.
REVOKE EXECUTE ON FUNCTION outbox.emit(text, text, text, jsonb, jsonb, text, text) FROM outbox_test_app;
SET ROLE outbox_test_app;
INSERT INTO owned VALUES (1, 'x');
SELECT expect_error($$SELECT outbox.uncapture('owned')$$);
RESET ROLE;
SELECT aggregate_type, event_type FROM outbox.events ORDER BY seq DESC LIMIT 1;

-- Functions that run with the owner's rights pin their search_path.
SELECT p.proname, p.proconfig
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'outbox' AND p.prosecdef ORDER BY 1;

-- Nothing is executable by PUBLIC but harmless helpers.
SELECT p.oid::regprocedure
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'outbox' AND has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY p.oid::regprocedure::text;

DROP TABLE owned;
REVOKE ALL ON SCHEMA public FROM outbox_test_owner;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA outbox FROM outbox_test_app, outbox_test_owner;
REVOKE ALL ON outbox.status FROM outbox_test_app;
DROP ROLE outbox_test_app;
DROP ROLE outbox_test_owner;
