-- Status: what is pending, published and dead, and the publisher worker.

CREATE VIEW outbox.status AS
SELECT
    (SELECT count(*) FROM outbox.events e
      WHERE e.xid >= pg_snapshot_xmin(c.prev_snap)
        AND NOT outbox._published(e.xid, e.seq, c.prev_snap, c.cur_snap, c.page_seq, c.fence_seq)
    )::bigint + (SELECT count(*) FROM outbox._parked) AS pending,
    (SELECT now() - min(e.created_at) FROM outbox.events e
      WHERE e.xid >= pg_snapshot_xmin(c.prev_snap)
        AND NOT outbox._published(e.xid, e.seq, c.prev_snap, c.cur_snap, c.page_seq, c.fence_seq)
    ) AS oldest_pending_age,
    c.published_total AS published,
    (SELECT count(*) FROM outbox.dead_letters)::bigint AS dead,
    w.pid AS worker_pid,
    w.state AS worker_state,
    CASE WHEN c.foreign_rows > 0
         THEN 'outbox data was restored from another cluster or database: run outbox.reset_cursor()'
         ELSE w.last_error
    END AS last_error,
    w.last_error_at,
    (SELECT s.slot FROM outbox._slots s WHERE s.is_current) AS current_slot,
    (SELECT count(*) FROM outbox._parked)::bigint AS parked,
    c.foreign_rows = 0 AS cursor_ok
FROM outbox._local_cursor() c, outbox._worker_info() w;
COMMENT ON VIEW outbox.status IS 'One row: the outbox of this database at a glance.';

CREATE FUNCTION outbox.event_status(event_id uuid)
RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM outbox.dead_letters d WHERE d.event_id = $1) THEN 'dead'
        WHEN e.seq IS NULL THEN 'unknown'
        WHEN EXISTS (SELECT 1 FROM outbox._parked p WHERE p.seq = e.seq) THEN 'pending'
        WHEN outbox._published(e.xid, e.seq, c.prev_snap, c.cur_snap, c.page_seq, c.fence_seq)
            THEN 'published'
        ELSE 'pending'
    END
    FROM outbox._local_cursor() c
    LEFT JOIN LATERAL (
        -- The newest copy counts: retry_dead() and reset_cursor() requeue under the same id.
        SELECT e.seq, e.xid FROM outbox.events e
        WHERE e.event_id = $1 ORDER BY e.seq DESC LIMIT 1
    ) e ON true
$$;
COMMENT ON FUNCTION outbox.event_status(uuid) IS
  'pending | published | dead | unknown (never emitted, rolled back, or purged).';
