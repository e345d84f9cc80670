-- bench/sql/bulk.sql: the three timed bulk statements of benchmark 2.
-- psql variables: tbl (bench.bulk_captured or bench.bulk_plain), rows, and
-- cpu (1: also report the backend's CPU time, from /proc/self/schedstat).
-- Each statement commits on its own (autocommit). bench/run.sh reads psql's
-- \timing line after each one ("Time: N ms", commit included) and the
-- "cpu_ns <before> <after>" line that follows it.
\set ON_ERROR_STOP on
\ir cpu.sql

:cpu_now \gset before_
\timing on
INSERT INTO :tbl (id, customer_id, status, amount, currency, items, note, created_at, updated_at)
SELECT g, g % 5000, 'new', (g % 100000) / 100.0, 'EUR', 1 + g % 7,
       'order ' || g, now() - make_interval(secs => g), now()
FROM generate_series(1, :rows) AS g;
\timing off
:cpu_now \gset after_
\echo cpu_ns :before_ns :after_ns

:cpu_now \gset before_
\timing on
UPDATE :tbl SET status = 'paid', updated_at = now();
\timing off
:cpu_now \gset after_
\echo cpu_ns :before_ns :after_ns

:cpu_now \gset before_
\timing on
DELETE FROM :tbl;
\timing off
:cpu_now \gset after_
\echo cpu_ns :before_ns :after_ns
