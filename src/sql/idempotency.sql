-- Idempotent consumers: one record per (consumer, event) and per (consumer, root).

CREATE TABLE outbox.processed_messages (
    consumer      text        COLLATE "C" NOT NULL CHECK (consumer <> ''),
    event_id      uuid        NOT NULL,
    root_id       uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    -- Filled by the inbox from the message's headers, for outbox.trace().
    causation_id  uuid,
    event_type    text,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_messages_root_id_idx ON outbox.processed_messages (root_id);
-- Rows arrive in processed_at order: a BRIN index makes retention cheap to find.
CREATE INDEX processed_messages_processed_at_idx ON outbox.processed_messages USING brin (processed_at);
COMMENT ON TABLE outbox.processed_messages IS
  'Messages each consumer has processed; written by outbox.try_process(). Kept for outbox.processed_retention.';

CREATE TABLE outbox.processed_roots (
    consumer      text        COLLATE "C" NOT NULL CHECK (consumer <> ''),
    root_id       uuid        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, root_id)
);
CREATE INDEX processed_roots_processed_at_idx ON outbox.processed_roots USING brin (processed_at);
COMMENT ON TABLE outbox.processed_roots IS
  'Process roots each consumer has handled; written by outbox.try_process_root().';

SELECT pg_catalog.pg_extension_config_dump('outbox.processed_messages', '');
SELECT pg_catalog.pg_extension_config_dump('outbox.processed_roots', '');

CREATE FUNCTION outbox.try_process(consumer text, event_id uuid, root_id uuid DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_try_process';
COMMENT ON FUNCTION outbox.try_process(text, uuid, uuid) IS
  'True the first time this consumer sees the event (and sets the ambient context), false afterwards.';

CREATE FUNCTION outbox.try_process_root(consumer text, root_id uuid)
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL UNSAFE
AS 'MODULE_PATHNAME', 'outbox_try_process_root';
COMMENT ON FUNCTION outbox.try_process_root(text, uuid) IS
  'True the first time this consumer sees the process root, false afterwards.';
