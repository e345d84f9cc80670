-- bench/sql/bulk.sql: the three timed bulk statements of benchmark 2.
-- psql variables: tbl (bench.bulk_captured or bench.bulk_plain), rows.
-- Each statement commits on its own (autocommit); psql's \timing line after
-- each one ("Time: N ms", commit included) is what bench/run.sh reads.
\set ON_ERROR_STOP on
\timing on
INSERT INTO :tbl (id, customer_id, status, amount, currency, items, note, created_at, updated_at)
SELECT g, g % 5000, 'new', (g % 100000) / 100.0, 'EUR', 1 + g % 7,
       'order ' || g, now() - make_interval(secs => g), now()
FROM generate_series(1, :rows) AS g;
UPDATE :tbl SET status = 'paid', updated_at = now();
DELETE FROM :tbl;
\timing off
