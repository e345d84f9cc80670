#!/usr/bin/env bash
# Upgrade scripts: a database created at every released version and updated
# with ALTER EXTENSION ... UPDATE has exactly the objects, definitions and
# privileges of a fresh install of the current version, and keeps its data.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

# Every member of the extension, with what defines it, one line each (ACL
# items sorted: their order depends on the order of the GRANTs).
catalog() {
    q -d "$1" <<'SQL'
WITH members AS (
    SELECT d.classid, d.objid FROM pg_depend d
    WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'outbox_ext'))
SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' acl=' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(c.relacl) a), '')
       || coalesce(' view=' || pg_get_viewdef(c.oid), '')
FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
UNION ALL
SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || coalesce(' collate ' || nullif(a.attcollation, 0)::regcollation::text, '')
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
FROM members m JOIN pg_attribute a ON m.classid = 'pg_class'::regclass AND a.attrelid = m.objid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || con.conrelid::regclass || ' ' || pg_get_constraintdef(con.oid)
FROM members m JOIN pg_constraint con ON m.classid = 'pg_class'::regclass AND con.conrelid = m.objid
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM members m JOIN pg_index i ON m.classid = 'pg_class'::regclass AND i.indrelid = m.objid
UNION ALL
SELECT 'function ' || p.oid::regprocedure || ' acl=' || coalesce((SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(p.proacl) a), '') || ' '
       || md5(pg_get_functiondef(p.oid))
FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
UNION ALL
SELECT 'other ' || pg_describe_object(m.classid, m.objid, 0)
FROM members m WHERE m.classid NOT IN ('pg_class'::regclass, 'pg_proc'::regclass)
UNION ALL
SELECT 'config_dump ' || x.extconfig::regclass[]::text FROM pg_extension x WHERE extname = 'outbox_ext'
ORDER BY 1
SQL
}

TEST_TMP=$(mktemp -d)
trap 'rm -rf "$TEST_TMP"' EXIT
current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$TEST_ROOT/../outbox_ext.control")
q -c "CREATE DATABASE fresh" -c "CREATE DATABASE upgraded" >/dev/null
q -d fresh -c "CREATE EXTENSION outbox_ext" >/dev/null
for script in "$TEST_ROOT"/../src/sql/released/outbox_ext--*.sql; do
    old=$(basename "$script" .sql); old=${old#outbox_ext--}
    q -c "DROP DATABASE IF EXISTS upgraded" -c "CREATE DATABASE upgraded" >/dev/null
    q -d upgraded -c "CREATE EXTENSION outbox_ext VERSION '$old'" \
      -c "SELECT outbox.emit('Order', 'o1', 'OrderPlaced', '{}')" \
      -c "SELECT outbox.try_process('billing', gen_random_uuid())" >/dev/null
    q -d upgraded -c "ALTER EXTENSION outbox_ext UPDATE" >/dev/null
    check "$old -> $current: version" bash -c \
        "[ \"\$(psql -XAtd upgraded -c \"SELECT extversion FROM pg_extension WHERE extname = 'outbox_ext'\")\" = '$current' ]"
    catalog fresh > "$TEST_TMP/fresh" && catalog upgraded > "$TEST_TMP/upgraded"
    check "$old -> $current: the catalogs could be listed" test "$(wc -l < "$TEST_TMP/upgraded")" -gt 100
    diff "$TEST_TMP/fresh" "$TEST_TMP/upgraded" > "$TEST_TMP/diff"
    check "$old -> $current: same catalog as a fresh install" test ! -s "$TEST_TMP/diff"
    head -20 "$TEST_TMP/diff" | sed 's/^/# /'
    check "$old -> $current: data kept" bash -c \
        "[ \"\$(psql -XAtd upgraded -c 'SELECT (SELECT count(*) FROM outbox.events)::text || (SELECT count(*) FROM outbox.processed_messages)::text')\" = 11 ]"
done
done_testing
