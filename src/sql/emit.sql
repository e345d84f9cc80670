-- Emitting events and the ambient process context.

CREATE FUNCTION outbox.emit(aggregate_type text, aggregate_id text, event_type text,
                            payload jsonb, headers jsonb DEFAULT NULL,
                            topic text DEFAULT NULL, key text DEFAULT NULL)
RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_emit';
COMMENT ON FUNCTION outbox.emit(text, text, text, jsonb, jsonb, text, text) IS
  'Append one event in the current transaction; returns its UUIDv7 event id. NULL payload = tombstone.';

CREATE FUNCTION outbox.set_context(root_id uuid, causation_id uuid DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_set_context';
COMMENT ON FUNCTION outbox.set_context(uuid, uuid) IS
  'Stamp events emitted later in this transaction with this root id and causation id.';

CREATE FUNCTION outbox.current_root()
RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_current_root';
COMMENT ON FUNCTION outbox.current_root() IS
  'Root id of the ambient context of this transaction, or NULL when none is set.';
