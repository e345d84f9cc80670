-- outbox_ext install script, assembled from src/sql/*.sql by the Makefile.
\echo Use "CREATE EXTENSION outbox_ext" to load this file. \quit

COMMENT ON SCHEMA outbox IS 'outbox_ext: transactional outbox, idempotent consumers, saga trace';
