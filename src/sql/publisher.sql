-- Publisher support: cursor moves and the worker's state from shared memory.

-- Called by the publisher once every message of a page is acknowledged.
CREATE FUNCTION outbox._advance_cursor(prev pg_snapshot, cur pg_snapshot, page_seq bigint, published bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO outbox._cursor AS c (system_identifier, datoid, prev_snap, cur_snap, page_seq, published_total)
    SELECT s.system_identifier, d.oid, prev, cur, page_seq, published
    FROM pg_control_system() s, pg_database d WHERE d.datname = current_database()
    ON CONFLICT (system_identifier, datoid) DO UPDATE
       SET prev_snap = excluded.prev_snap, cur_snap = excluded.cur_snap,
           page_seq = excluded.page_seq,
           published_total = c.published_total + excluded.published_total,
           updated_at = now()
$$;

CREATE FUNCTION outbox._worker_info(OUT pid integer, OUT state text, OUT last_error text,
                                    OUT last_error_at timestamptz)
RETURNS record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'outbox_worker_info';
COMMENT ON FUNCTION outbox._worker_info() IS
  'The publisher worker of this database as shared memory knows it (internal).';
