-- Maintenance: retention by rotation, dead-letter requeue, cursor reset.

CREATE FUNCTION outbox._invalidate_slot_cache()
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'outbox_invalidate_slot_cache';
COMMENT ON FUNCTION outbox._invalidate_slot_cache() IS
  'Make every backend re-read the current slot after this transaction commits (internal).';

-- Truncate one non-current child if that is safe now; returns rows removed
-- or NULL when it is not (yet) safe. Safe means: the lock was free (no
-- transaction that wrote to it is still open, and none can write while we
-- hold it), and every row in it is published.
CREATE FUNCTION outbox._truncate_slot(s smallint, older_than interval)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tbl     text := format('outbox.events_%s', s);
    c       record;
    max_xid xid8;
    max_seq bigint;
    n       bigint;
    parked  boolean;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM outbox._slots
                   WHERE slot = s AND NOT is_current
                     AND switched_out_at <= now() - older_than) THEN
        RETURN NULL;
    END IF;
    BEGIN
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', tbl);
    EXCEPTION WHEN lock_not_available THEN
        RETURN NULL;            -- a writer or reader is busy with it: try next time
    END;
    -- With the lock held, a fresh statement snapshot sees every row the child holds.
    EXECUTE format('SELECT max(xid), max(seq), count(*) FROM %s', tbl) INTO max_xid, max_seq, n;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    SELECT * INTO c FROM outbox._local_cursor();
    IF c.foreign_rows > 0 THEN
        RETURN NULL;            -- restored data: nothing is known to be published
    END IF;
    IF NOT (max_seq <= c.fence_seq OR max_xid < pg_snapshot_xmin(c.prev_snap)) THEN
        RETURN NULL;            -- something in it is not published yet
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM outbox._parked p JOIN %s e ON e.seq = p.seq)', tbl)
       INTO parked;
    IF parked THEN
        RETURN NULL;            -- a parked event still needs its row
    END IF;
    EXECUTE format('TRUNCATE %s', tbl);
    RETURN n;
END
$$;

CREATE FUNCTION outbox.purge(older_than interval DEFAULT NULL)
RETURNS TABLE (events bigint, processed bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev_keep   interval;
    pr_keep   interval;
    cur       smallint;
    nxt       smallint;
    removed   bigint := 0;
    r         bigint;
    s         smallint;
    pass      integer;
BEGIN
    -- Calling into the library loads it, and with it the outbox.* settings.
    PERFORM outbox.current_root();
    ev_keep := coalesce(older_than, current_setting('outbox.retention')::interval);
    pr_keep := coalesce(older_than, current_setting('outbox.processed_retention')::interval);
    IF ev_keep < interval '0' OR pr_keep < interval '0' THEN
        RAISE EXCEPTION 'retention must not be negative' USING ERRCODE = '22023';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'outbox.purge() must run at READ COMMITTED isolation'
            USING ERRCODE = '25000',
                  HINT = 'It decides what is safe to remove from fresh snapshots taken under locks.';
    END IF;
    -- One purge at a time; emits only read _slots and are not blocked.
    LOCK TABLE outbox._slots IN EXCLUSIVE MODE;

    -- Pass 1 truncates old children; between the passes the current child is
    -- rotated out when it is old enough and the next one is empty; pass 2
    -- lets a zero retention remove what was just rotated out.
    FOR pass IN 1..2 LOOP
        FOR s IN SELECT slot FROM outbox._slots WHERE NOT is_current ORDER BY switched_out_at LOOP
            r := outbox._truncate_slot(s, ev_keep);
            removed := removed + coalesce(r, 0);
        END LOOP;
        EXIT WHEN pass = 2;

        SELECT slot INTO cur FROM outbox._slots WHERE is_current;
        nxt := (cur + 1) % 3;
        IF (SELECT switched_in_at <= now() - ev_keep / 2 FROM outbox._slots WHERE slot = cur)
           AND EXISTS (SELECT 1 FROM outbox.events WHERE slot = cur)
           AND NOT EXISTS (SELECT 1 FROM outbox.events WHERE slot = nxt) THEN
            UPDATE outbox._slots SET is_current = false, switched_out_at = now()
             WHERE slot = cur;
            UPDATE outbox._slots SET is_current = true, switched_in_at = now(), switched_out_at = NULL
             WHERE slot = nxt;
            PERFORM outbox._invalidate_slot_cache();
        ELSE
            EXIT;
        END IF;
    END LOOP;

    events := removed;
    DELETE FROM outbox.processed_messages p WHERE p.processed_at < now() - pr_keep;
    GET DIAGNOSTICS processed = ROW_COUNT;
    DELETE FROM outbox.processed_roots p WHERE p.processed_at < now() - pr_keep;
    GET DIAGNOSTICS r = ROW_COUNT;
    processed := processed + r;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION outbox.purge(interval) IS
  'Remove published events (by truncating rotated child tables) and processed records older than the retention.';

-- Requeue as a new event row with the same id and contents, published after
-- the events that overtook it while it was dead.
CREATE FUNCTION outbox._requeue(d outbox.dead_letters)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO outbox.events (seq, xid, created_at, event_id, root_id, causation_id, slot,
                               aggregate_type, aggregate_id, event_type, topic, key,
                               payload, headers, traceparent)
    SELECT nextval('outbox._event_seq'), pg_current_xact_id(), d.created_at, d.event_id,
           d.root_id, d.causation_id, s.slot, d.aggregate_type, d.aggregate_id, d.event_type,
           d.topic, d.key, d.payload, d.headers, d.traceparent
    FROM outbox._slots s WHERE s.is_current
$$;

CREATE FUNCTION outbox.retry_dead(event_id uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d outbox.dead_letters;
    n bigint := 0;
BEGIN
    -- In their original order, so events of one key keep theirs.
    FOR d IN SELECT * FROM outbox.dead_letters x
             WHERE retry_dead.event_id IS NULL OR x.event_id = retry_dead.event_id
             ORDER BY x.seq FOR UPDATE
    LOOP
        DELETE FROM outbox.dead_letters x WHERE x.event_id = d.event_id;
        PERFORM outbox._requeue(d);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION outbox.retry_dead(uuid) IS
  'Requeue one dead letter (or all with NULL); returns how many. They publish after newer events of their key.';

-- The current snapshot, but with this transaction counted as still running,
-- so the rows it writes are not taken as published by a cursor set to it.
CREATE FUNCTION outbox._snapshot_with_self_running()
RETURNS pg_snapshot
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS (SELECT pg_current_snapshot() AS snap, pg_current_xact_id_if_assigned() AS me)
    SELECT CASE
        WHEN s.me IS NULL OR s.me >= pg_snapshot_xmax(s.snap) THEN s.snap
        ELSE (least(pg_snapshot_xmin(s.snap), s.me)::text || ':' || pg_snapshot_xmax(s.snap)::text || ':'
              || (SELECT string_agg(x::text, ',' ORDER BY x)
                  FROM (SELECT pg_snapshot_xip(s.snap) AS x UNION SELECT s.me) u))::pg_snapshot
    END
    FROM s
$$;

CREATE FUNCTION outbox.reset_cursor(requeue_pending boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me_sysid  bigint;
    me_dat    oid;
    old       outbox._cursor;
    have_old  boolean;
    fence     bigint;
    n         bigint := 0;
BEGIN
    SELECT i.system_identifier, i.datoid INTO me_sysid, me_dat FROM outbox._cursor_identity() i;
    -- No emit may run while the fence is drawn.
    LOCK TABLE outbox.events IN EXCLUSIVE MODE;
    LOCK TABLE outbox._cursor IN EXCLUSIVE MODE;

    -- The cursor the rows were written under: a restored one if any, else ours.
    SELECT * INTO old FROM outbox._cursor
    ORDER BY (system_identifier, datoid) = (me_sysid, me_dat), updated_at DESC LIMIT 1;
    have_old := FOUND;
    SELECT coalesce(max(seq), 0) INTO fence FROM outbox.events;

    IF requeue_pending AND have_old THEN
        -- Pending under the old cursor, or written here after the restore
        -- (their xids belong to this cluster, not to the old cursor).
        INSERT INTO outbox.events (seq, xid, created_at, event_id, root_id, causation_id, slot,
                                   aggregate_type, aggregate_id, event_type, topic, key,
                                   payload, headers, traceparent)
        SELECT nextval('outbox._event_seq'), pg_current_xact_id(), e.created_at, e.event_id,
               e.root_id, e.causation_id, s.slot, e.aggregate_type, e.aggregate_id, e.event_type,
               e.topic, e.key, e.payload, e.headers, e.traceparent
        FROM (SELECT DISTINCT ON (e.event_id) e.* FROM outbox.events e
              WHERE e.seq <= fence ORDER BY e.event_id, e.seq DESC) e,
             outbox._slots s
        WHERE s.is_current
          AND NOT EXISTS (SELECT 1 FROM outbox.dead_letters dl WHERE dl.event_id = e.event_id)
          AND (e.created_at >= (SELECT c.installed_at FROM outbox._cursor c
                                 WHERE (c.system_identifier, c.datoid) = (me_sysid, me_dat))
                               AND (old.system_identifier, old.datoid) <> (me_sysid, me_dat)
               OR NOT outbox._published(e.xid, e.seq, old.prev_snap, old.cur_snap,
                                        old.page_seq, old.fence_seq))
        ORDER BY e.seq;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;

    DELETE FROM outbox._cursor WHERE (system_identifier, datoid) <> (me_sysid, me_dat);
    INSERT INTO outbox._cursor AS c (system_identifier, datoid, prev_snap, fence_seq)
    VALUES (me_sysid, me_dat, outbox._snapshot_with_self_running(), fence)
    ON CONFLICT (system_identifier, datoid) DO UPDATE
       SET prev_snap = excluded.prev_snap, cur_snap = NULL, page_seq = NULL,
           fence_seq = excluded.fence_seq, updated_at = now();
    RETURN n;
END
$$;
COMMENT ON FUNCTION outbox.reset_cursor(boolean) IS
  'After pg_dump/restore, pg_upgrade or a clone: start publishing afresh; requeues events that were pending (returns how many).';
