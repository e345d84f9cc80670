-- Change capture: statement-level triggers with transition tables.

CREATE FUNCTION outbox._capture_trigger()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'outbox_capture_trigger';
COMMENT ON FUNCTION outbox._capture_trigger() IS
  'Trigger installed by outbox.capture(); args: aggregate type, id column(s).';

CREATE FUNCTION outbox._resolve_topic(aggregate_type text, event_type text)
RETURNS text
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'outbox_resolve_topic_sql';
COMMENT ON FUNCTION outbox._resolve_topic(text, text) IS
  'Topic outbox.emit() would use for this aggregate and event type; raises if it is not valid or allowed.';

CREATE FUNCTION outbox.capture(tbl regclass, aggregate_type text DEFAULT NULL,
                               id_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel         record;
    agg         text;
    cols        name[];
    args        text;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'tbl must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT c.relname, c.relkind, c.relowner, c.relispartition,
           EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) AS is_child
      INTO rel FROM pg_class c WHERE c.oid = tbl;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '42809',
            HINT = 'Only ordinary and partitioned tables can be captured.';
    END IF;
    IF NOT pg_has_role(current_user, rel.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = '42501',
            HINT = 'Run outbox.capture() as the table''s owner.';
    END IF;
    IF rel.is_child THEN
        RAISE EXCEPTION 'table % is a partition or inheritance child', tbl USING ERRCODE = '0A000',
            HINT = 'Capture the parent table: statements that target the parent do not fire a child''s statement triggers, so changes would be missed.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger t
               WHERE t.tgrelid = tbl AND t.tgfoid = 'outbox._capture_trigger()'::regprocedure) THEN
        RAISE EXCEPTION 'table % is already captured', tbl USING ERRCODE = '42710',
            HINT = 'Run outbox.uncapture() first to change its settings.';
    END IF;

    agg := coalesce(aggregate_type, rel.relname);
    IF agg = '' THEN
        RAISE EXCEPTION 'aggregate_type must not be empty' USING ERRCODE = '22023';
    END IF;

    IF id_column IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = tbl AND a.attname = id_column
                         AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'column "%" of table % does not exist', id_column, tbl
                USING ERRCODE = '42703';
        END IF;
        cols := ARRAY[id_column];
    ELSE
        SELECT array_agg(a.attname ORDER BY k.ord) INTO cols
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = tbl AND i.indisprimary;
        IF cols IS NULL THEN
            RAISE EXCEPTION 'table % has no primary key', tbl USING ERRCODE = '42P10',
                HINT = 'Pass id_column => the column that identifies the aggregate.';
        END IF;
    END IF;

    -- Refuse now, not at the first write, an aggregate type that gives a bad topic.
    PERFORM outbox._resolve_topic(agg, agg || s) FROM unnest(ARRAY['Created','Updated','Deleted','Truncated']) s;

    SELECT string_agg(quote_literal(x), ', ') INTO args FROM unnest(agg || cols::text[]) x;
    EXECUTE format('CREATE TRIGGER outbox_capture_insert AFTER INSERT ON %s '
                   'REFERENCING NEW TABLE AS outbox_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION outbox._capture_trigger(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER outbox_capture_update AFTER UPDATE ON %s '
                   'REFERENCING OLD TABLE AS outbox_old NEW TABLE AS outbox_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION outbox._capture_trigger(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER outbox_capture_delete AFTER DELETE ON %s '
                   'REFERENCING OLD TABLE AS outbox_old FOR EACH STATEMENT '
                   'EXECUTE FUNCTION outbox._capture_trigger(%s)', tbl, args);
    EXECUTE format('CREATE TRIGGER outbox_capture_truncate AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION outbox._capture_trigger(%s)', tbl, args);
END
$$;
COMMENT ON FUNCTION outbox.capture(regclass, text, name) IS
  'Emit <aggregate_type>Created/Updated/Deleted/Truncated events for every change of the table (owner only).';

CREATE FUNCTION outbox.uncapture(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t name;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'tbl must not be null' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger g
                   WHERE g.tgrelid = tbl AND g.tgfoid = 'outbox._capture_trigger()'::regprocedure) THEN
        RAISE EXCEPTION 'table % is not captured', tbl USING ERRCODE = '42704';
    END IF;
    FOR t IN SELECT g.tgname FROM pg_trigger g
             WHERE g.tgrelid = tbl AND g.tgfoid = 'outbox._capture_trigger()'::regprocedure
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', t, tbl);
    END LOOP;
END
$$;
COMMENT ON FUNCTION outbox.uncapture(regclass) IS 'Stop capturing changes of the table.';

-- Derived from the triggers themselves: no second copy of the settings to drift.
CREATE VIEW outbox.captured_tables AS
SELECT t.tgrelid::regclass AS tbl,
       a.args[1] AS aggregate_type,
       a.args[2:array_length(a.args, 1)]::name[] AS id_columns
FROM pg_trigger t
CROSS JOIN LATERAL (
    -- tgargs is NUL-separated bytea; each part is unescaped back to text.
    SELECT array_agg(convert_from(decode(part, 'escape'), current_setting('server_encoding'))
                     ORDER BY n) AS args
    FROM unnest(string_to_array(encode(t.tgargs, 'escape'), '\000')) WITH ORDINALITY AS p(part, n)
    WHERE part <> ''
) a
WHERE t.tgfoid = 'outbox._capture_trigger()'::regprocedure
  AND t.tgname = 'outbox_capture_insert';
COMMENT ON VIEW outbox.captured_tables IS 'Tables captured by outbox.capture(), with their settings.';
