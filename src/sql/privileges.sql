-- Privileges: nothing for PUBLIC but the schema's name. Application roles get
-- EXECUTE on what they call (doc/privileges.md); nobody but the owner may
-- write the storage or the processed records directly.

REVOKE ALL ON ALL TABLES IN SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA outbox FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA outbox FROM PUBLIC;
GRANT USAGE ON SCHEMA outbox TO PUBLIC;

-- Harmless helpers that views and functions evaluate as the caller.
GRANT EXECUTE ON FUNCTION outbox._published(xid8, bigint, pg_snapshot, pg_snapshot, bigint, bigint) TO PUBLIC;
GRANT EXECUTE ON FUNCTION outbox.current_root() TO PUBLIC;
-- Views evaluate functions with the caller's EXECUTE right; this one only reports progress.
GRANT EXECUTE ON FUNCTION outbox._local_cursor() TO PUBLIC;
GRANT EXECUTE ON FUNCTION outbox._worker_info() TO PUBLIC;
-- A pure function: the dedup id of a message without an id header.
GRANT EXECUTE ON FUNCTION outbox.inbox_message_id(text, integer, bigint) TO PUBLIC;
