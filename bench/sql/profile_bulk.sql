-- bench/sql/profile_bulk.sql: one bulk statement on the captured table, under
-- perf (bench/profile.sh). psql variables: rows, stmt (insert, update or
-- delete), target (the output name). The rows an UPDATE or DELETE needs are
-- inserted first, unprofiled, and checkpointed.
\set ON_ERROR_STOP on
SELECT pg_backend_pid() AS pid \gset
\setenv BPID :pid
\setenv TARGET :target
\set insert_rows 'INSERT INTO bench.bulk_captured (id, customer_id, status, amount, currency, items, note, created_at, updated_at) SELECT g, g % 5000, ''new'', (g % 100000) / 100.0, ''EUR'', 1 + g % 7, ''order '' || g, now() - make_interval(secs => g), now() FROM generate_series(1, ' :rows ') AS g'
\if :{?stmt}
\else
\set stmt insert
\endif
SELECT :'stmt' = 'insert' AS is_insert, :'stmt' = 'update' AS is_update \gset
\if :is_insert
\else
:insert_rows;
CHECKPOINT;
\endif
\! "$BENCH_PROFILE_SELF" --perf-start "$TARGET"
\timing on
\if :is_insert
:insert_rows;
\elif :is_update
UPDATE bench.bulk_captured SET status = 'paid', updated_at = now();
\else
DELETE FROM bench.bulk_captured;
\endif
\timing off
\! "$BENCH_PROFILE_SELF" --perf-stop
