/*
 * compat.h: the few PostgreSQL APIs that changed between 13 and 17, shimmed
 * in one place so the rest of the code reads as if there were one version.
 */
#ifndef OUTBOX_COMPAT_H
#define OUTBOX_COMPAT_H

#include "postgres.h"
#include "executor/executor.h"
#include "utils/guc.h"

#if PG_VERSION_NUM < 130000
#error "outbox_ext needs PostgreSQL 13 or later (xid8, pg_snapshot)"
#endif

/* Index maintenance for one freshly inserted heap tuple. */
static inline void
outbox_insert_index_tuples(ResultRelInfo *rri, TupleTableSlot *slot, EState *estate)
{
#if PG_VERSION_NUM >= 160000
	ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL, false);
#elif PG_VERSION_NUM >= 140000
	ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
#else
	estate->es_result_relation_info = rri;
	ExecInsertIndexTuples(slot, estate, false, NULL, NIL);
#endif
}

#if PG_VERSION_NUM < 150000
#define MarkGUCPrefixReserved(prefix) EmitWarningsOnPlaceholders(prefix)
#endif

#endif							/* OUTBOX_COMPAT_H */
