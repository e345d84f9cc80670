-- Install the extension and a helper the other tests use to show an error's
-- SQLSTATE, message and hint (run in a subtransaction, so it changes nothing).
CREATE EXTENSION outbox_ext;

SELECT extversion FROM pg_extension WHERE extname = 'outbox_ext';

-- The public API, as installed.
SELECT p.oid::regprocedure AS function
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'outbox' AND p.proname NOT LIKE '\_%'
ORDER BY p.oid::regprocedure::text;

SELECT c.relname, c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'outbox' AND c.relkind IN ('r', 'p', 'v', 'S')
ORDER BY 1;

CREATE FUNCTION public.expect_error(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st   text;
    msg  text;
    hint text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || CASE WHEN hint <> '' THEN E'\nhint: ' || hint ELSE '' END;
END
$$;

-- Events in emission order, without the values that change from run to run.
CREATE VIEW public.ev AS
SELECT seq, aggregate_type, aggregate_id, event_type, topic, key, payload, headers,
       traceparent, root_id = event_id AS own_root, causation_id IS NOT NULL AS has_cause
FROM outbox.events;
