-- Saga trace: the tree of events of one process root.

CREATE OR REPLACE FUNCTION outbox.trace(root_id uuid)
RETURNS TABLE (event_id uuid, causation_id uuid, depth integer, event_type text,
               aggregate_type text, aggregate_id text, status text,
               created_at timestamptz, processed_by text[])
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE
    cur AS (SELECT * FROM outbox._local_cursor()),
    -- Events emitted here (the newest copy of each id) ...
    local_events AS (
        SELECT DISTINCT ON (e.event_id)
               e.event_id, e.causation_id, e.event_type, e.aggregate_type, e.aggregate_id,
               CASE WHEN EXISTS (SELECT 1 FROM outbox.dead_letters d WHERE d.event_id = e.event_id)
                        THEN 'dead'
                    WHEN EXISTS (SELECT 1 FROM outbox._parked p WHERE p.seq = e.seq)
                        THEN 'pending'
                    WHEN outbox._published(e.xid, e.seq, c.prev_snap, c.cur_snap, c.page_seq, c.fence_seq)
                        THEN 'published'
                    ELSE 'pending' END AS status,
               e.created_at, e.seq
        FROM (SELECT * FROM outbox.events x             -- by the partial root_id index
              WHERE x.root_id = $1 AND x.root_id <> x.event_id
              UNION ALL
              SELECT * FROM outbox.events x             -- the root itself, by event_id
              WHERE x.event_id = $1 AND x.root_id = x.event_id) e, cur c
        ORDER BY e.event_id, e.seq DESC),
    -- ... and events of this process emitted elsewhere but processed here.
    nodes AS (
        SELECT * FROM local_events
        UNION ALL
        SELECT p.event_id, (array_agg(p.causation_id) FILTER (WHERE p.causation_id IS NOT NULL))[1],
               (array_agg(p.event_type) FILTER (WHERE p.event_type IS NOT NULL))[1],
               NULL, NULL, 'external', min(p.processed_at), NULL
        FROM outbox.processed_messages p
        WHERE p.root_id = $1
          AND NOT EXISTS (SELECT 1 FROM local_events l WHERE l.event_id = p.event_id)
        GROUP BY p.event_id),
    -- Siblings in time order; seq breaks ties between events of one transaction.
    keyed AS (
        SELECT n.*, to_char(n.created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSUS')
                    || lpad(coalesce(n.seq, 0)::text, 20, '0') AS sort_key
        FROM nodes n),
    tree AS (
        SELECT n.*, 0 AS depth, ARRAY[n.event_id] AS path, ARRAY[n.sort_key] AS sort_path
        FROM keyed n
        WHERE n.causation_id IS NULL
           OR NOT EXISTS (SELECT 1 FROM keyed p WHERE p.event_id = n.causation_id)
        UNION ALL
        SELECT n.*, t.depth + 1, t.path || n.event_id, t.sort_path || n.sort_key
        FROM keyed n JOIN tree t ON n.causation_id = t.event_id
        WHERE n.event_id <> ALL (t.path))
    SELECT t.event_id, t.causation_id, t.depth, t.event_type, t.aggregate_type, t.aggregate_id,
           t.status, t.created_at,
           coalesce((SELECT array_agg(p.consumer ORDER BY p.consumer)
                     FROM outbox.processed_messages p
                     WHERE p.root_id = $1 AND p.event_id = t.event_id), '{}')
    FROM tree t
    ORDER BY t.sort_path
$$;
COMMENT ON FUNCTION outbox.trace(uuid) IS
  'Event tree of one process root, parents before children, with who processed each event.';
