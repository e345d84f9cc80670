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
	src/worker_info.o \
	src/kafka_client.o \
	src/owner_spi.o \
	src/consumer.o \
	src/subscription.o \
	src/inbox_apply.o \
	src/inbox_worker.o \
	src/inbox_supervisor.o

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
	src/sql/inbox.sql \
	src/sql/maintenance.sql \
	src/sql/privileges.sql
SQL_INSTALL = $(EXTENSION)--$(EXTVERSION).sql
# Released install scripts stay installable (CREATE EXTENSION ... VERSION),
# frozen in src/sql/released/; upgrade scripts are hand-written in
# src/sql/upgrade/ (see its README), the ones whose new objects are whole
# new parts assembled from those parts.
SQL_RELEASED = $(wildcard src/sql/released/$(EXTENSION)--*.sql)
SQL_UPGRADES = $(wildcard src/sql/upgrade/$(EXTENSION)--*--*.sql)
SQL_UPGRADE_0_2_0 = $(EXTENSION)--0.1.0--0.2.0.sql
DATA_built = $(SQL_INSTALL) $(SQL_UPGRADE_0_2_0)
DATA = $(SQL_RELEASED) $(SQL_UPGRADES)

REGRESS = setup emit context capture idempotency trace status purge inbox privileges dump_restore
ISOLATION = try_process_concurrent purge_concurrent

PG_CPPFLAGS = -I$(srcdir)/src -DOUTBOX_EXTVERSION=\"$(EXTVERSION)\"
SHLIB_LINK = -lrdkafka
PG_CFLAGS = -Wall -Wmissing-prototypes -Werror=implicit-function-declaration

EXTRA_CLEAN = $(SQL_INSTALL) $(SQL_UPGRADE_0_2_0) results output_iso regression.diffs regression.out

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The library is compiled with the version it must match (OUTBOX_EXTVERSION);
# PGXS tracks no header dependencies, so any header change rebuilds all.
$(OBJS): outbox_ext.control $(wildcard $(srcdir)/src/*.h)

$(SQL_INSTALL): $(SQL_PARTS) outbox_ext.control
	cat $(SQL_PARTS) > $@

$(SQL_UPGRADE_0_2_0): src/sql/upgrade/0.1.0--0.2.0.head.sql src/sql/trace.sql src/sql/inbox.sql \
		src/sql/upgrade/0.1.0--0.2.0.tail.sql
	cat $^ > $@

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
