-- outbox_ext 0.1.0 -> 0.2.0: the inbox. Assembled by the Makefile from this
-- head, src/sql/trace.sql, src/sql/inbox.sql and 0.1.0--0.2.0.tail.sql.
\echo Use "ALTER EXTENSION outbox_ext UPDATE" to load this file. \quit

-- The inbox records what it learns from headers, for outbox.trace().
ALTER TABLE outbox.processed_messages ADD COLUMN causation_id uuid, ADD COLUMN event_type text;
-- Consumer names compare byte-wise: cheaper on every dedup insert, same answers for names.
ALTER TABLE outbox.processed_messages ALTER COLUMN consumer TYPE text COLLATE "C";
ALTER TABLE outbox.processed_roots ALTER COLUMN consumer TYPE text COLLATE "C";

