# outbox_ext: PGXS build. `make && make install`, then CREATE EXTENSION outbox_ext.
EXTENSION = outbox_ext
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" outbox_ext.control)

MODULE_big = outbox_ext
OBJS = \
	src/outbox_ext.o \
	src/guc.o \
	src/validate.o \
	src/uuid7.o \
	src/context.o \
	src/storage.o \
	src/emit.o \
	src/capture.o \
	src/idempotency.o \
	src/shmem.o \
	src/kafka_config.o \
	src/producer.o \
	src/batch.o \
	src/wake.o \
	src/launcher.o \
	src/publisher.o \
	src/worker_info.o

# The install script is assembled from one file per concern, in this order.
SQL_PARTS = \
	src/sql/header.sql \
	src/sql/storage.sql \
	src/sql/emit.sql \
	src/sql/capture.sql \
	src/sql/idempotency.sql \
	src/sql/publisher.sql \
	src/sql/status.sql \
	src/sql/trace.sql \
	src/sql/maintenance.sql \
	src/sql/privileges.sql
SQL_INSTALL = $(EXTENSION)--$(EXTVERSION).sql
# Upgrade scripts (outbox_ext--A--B.sql) are written by hand and kept in src/sql/upgrade/.
SQL_UPGRADES = $(wildcard src/sql/upgrade/$(EXTENSION)--*--*.sql)
DATA_built = $(SQL_INSTALL)
DATA = $(SQL_UPGRADES)

REGRESS = setup emit context capture idempotency trace status purge privileges dump_restore
ISOLATION = try_process_concurrent purge_concurrent

PG_CPPFLAGS = -I$(srcdir)/src -DOUTBOX_EXTVERSION=\"$(EXTVERSION)\"
SHLIB_LINK = -lrdkafka
PG_CFLAGS = -Wall -Wmissing-prototypes -Werror=implicit-function-declaration

EXTRA_CLEAN = $(SQL_INSTALL) results output_iso regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(SQL_INSTALL): $(SQL_PARTS) outbox_ext.control
	cat $(SQL_PARTS) > $@

# The README's two commands.
.PHONY: test demo bench
test:
	scripts/test
demo:
	scripts/demo
# The relay benchmarks beside the hand-written baseline (BENCHMARKS.md):
# drain, latency, emit overhead, steady state. Needs `make install` first.
bench:
	PG_CONFIG=$(PG_CONFIG) bench/relay.sh
