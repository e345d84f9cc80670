-- bench/sql/cpu.sql: defines :cpu_now, a query returning this backend's CPU
-- time in nanoseconds as column "ns" (0 when psql variable cpu is not 1).
\if :{?cpu}
\else
\set cpu 0
\endif
\if :cpu
\set cpu_now 'SELECT split_part(pg_read_file(''/proc/self/schedstat''), '' '', 1)::bigint AS ns'
\else
\set cpu_now 'SELECT 0::bigint AS ns'
\endif
