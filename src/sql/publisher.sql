-- Publisher support: cursor moves and the worker's state from shared memory.

-- Called by the publisher once every message of a page is acknowledged.
CREATE FUNCTION outbox._advance_cursor(prev pg_snapshot, cur pg_snapshot, page_seq bigint, published bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO outbox._cursor AS c (system_identifier, datoid, prev_snap, cur_snap, page_seq, published_total)
    SELECT i.system_identifier, i.datoid, prev, cur, page_seq, published
    FROM outbox._cursor_identity() i
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

-- Parked events: Kafka refused them permanently (e.g. topic authorization
-- failed). The cursor moves past them; they wait here, holding back the later
-- events of their key (topic + key), and are retried with backoff until
-- outbox.max_attempts, then become dead letters and release their key.
CREATE TABLE outbox._parked (
    seq             bigint      PRIMARY KEY,
    event_id        uuid        NOT NULL,
    topic           text        NOT NULL,
    key             text        NOT NULL,
    attempts        integer     NOT NULL,
    next_attempt_at timestamptz NOT NULL,  -- 'infinity': waiting behind an earlier event of its key
    last_error      text,
    parked_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX _parked_key_idx ON outbox._parked (topic, key, seq);
CREATE INDEX _parked_due_idx ON outbox._parked (next_attempt_at);
COMMENT ON TABLE outbox._parked IS 'Events Kafka refused, retried with backoff (internal).';
SELECT pg_catalog.pg_extension_config_dump('outbox._parked', '');

-- Delay after n attempts: 1 s after the first, then 2 s, 4 s ... at most 5 minutes.
CREATE FUNCTION outbox._backoff(attempts integer)
RETURNS interval
LANGUAGE sql IMMUTABLE
AS $$ SELECT least(power(2, greatest(attempts - 1, 0)), 300) * interval '1 second' $$;

-- Park one event: the head of its key is retried after a backoff; one
-- behind another parked event of its key waits until that one is resolved.
-- An event refused as often as outbox.max_attempts allows goes straight to
-- the dead letters (through _parked_failed, so its key is released in order).
CREATE FUNCTION outbox._park(p_seq bigint, p_event_id uuid, p_topic text, p_key text,
                             p_attempts integer, p_error text, p_max_attempts integer)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO outbox._parked (seq, event_id, topic, key, attempts, next_attempt_at, last_error)
    VALUES (p_seq, p_event_id, p_topic, p_key, p_attempts,
            CASE WHEN EXISTS (SELECT 1 FROM outbox._parked k
                              WHERE k.topic = p_topic AND k.key = p_key AND k.seq < p_seq)
                 THEN 'infinity'::timestamptz
                 ELSE now() + outbox._backoff(p_attempts) END,
            p_error)
    ON CONFLICT (seq) DO NOTHING;
    IF p_attempts > 0 AND p_attempts >= p_max_attempts THEN
        -- Counted already: record it as dead without another attempt.
        UPDATE outbox._parked SET attempts = attempts - 1 WHERE seq = p_seq;
        PERFORM outbox._parked_failed(p_seq, p_error, true, p_max_attempts);
    END IF;
END
$$;

-- The next parked event of a key becomes due once the one before it is gone.
CREATE FUNCTION outbox._release_key(p_topic text, p_key text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE outbox._parked SET next_attempt_at = now()
    WHERE seq = (SELECT min(seq) FROM outbox._parked WHERE topic = p_topic AND key = p_key)
      AND next_attempt_at = 'infinity'
$$;

-- A parked event was delivered.
CREATE FUNCTION outbox._parked_delivered(p_seq bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p outbox._parked;
BEGIN
    DELETE FROM outbox._parked WHERE seq = p_seq RETURNING * INTO p;
    IF FOUND THEN
        UPDATE outbox._cursor SET published_total = published_total + 1
        WHERE (system_identifier, datoid) =
              (SELECT i.system_identifier, i.datoid FROM outbox._cursor_identity() i);
        PERFORM outbox._release_key(p.topic, p.key);
    END IF;
END
$$;

-- A parked event was refused again (permanent = counts as an attempt).
-- Returns true when it became a dead letter.
CREATE FUNCTION outbox._parked_failed(p_seq bigint, p_error text, p_permanent boolean,
                                      p_max_attempts integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p outbox._parked;
BEGIN
    UPDATE outbox._parked
       SET attempts = attempts + CASE WHEN p_permanent THEN 1 ELSE 0 END,
           last_error = p_error,
           next_attempt_at = now() + CASE WHEN p_permanent THEN outbox._backoff(attempts + 1)
                                          ELSE interval '1 second' END
     WHERE seq = p_seq RETURNING * INTO p;
    IF NOT FOUND OR p.attempts < p_max_attempts THEN
        RETURN false;
    END IF;
    INSERT INTO outbox.dead_letters (event_id, seq, root_id, causation_id, aggregate_type,
                                     aggregate_id, event_type, topic, key, payload, headers,
                                     traceparent, created_at, error, attempts, failed_at)
    SELECT e.event_id, e.seq, e.root_id, e.causation_id, e.aggregate_type, e.aggregate_id,
           e.event_type, e.topic, e.key, e.payload, e.headers, e.traceparent, e.created_at,
           p.last_error, p.attempts, now()
    FROM outbox.events e WHERE e.seq = p_seq
    ON CONFLICT (event_id) DO UPDATE
       SET seq = excluded.seq, error = excluded.error, attempts = excluded.attempts,
           failed_at = excluded.failed_at;
    DELETE FROM outbox._parked WHERE seq = p_seq;
    PERFORM outbox._release_key(p.topic, p.key);
    RETURN true;
END
$$;
