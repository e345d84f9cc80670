/*
 * owner_spi.h: run one prepared statement as the extension's storage owner,
 * for functions that write tables application roles have no rights on
 * (instead of SECURITY DEFINER: the switch costs nothing on a hot path).
 */
#ifndef OUTBOX_OWNER_SPI_H
#define OUTBOX_OWNER_SPI_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "executor/spi.h"

/* Called for each row a statement returns, before SPI frees it, in the caller's memory context. */
typedef void (*OutboxRowFn) (HeapTuple tuple, TupleDesc desc, void *arg);

/*
 * Execute sql (prepared once into *plan, kept for the session) with the
 * given parameters as the storage owner, under SECURITY_RESTRICTED_OPERATION;
 * each returned row goes to row_fn. Returns the number of rows processed.
 * The caller's user is restored on error too.
 */
extern uint64 outbox_exec_as_owner(SPIPlanPtr *plan, const char *sql, int nargs,
								   Oid *argtypes, Datum *values, const char *nulls,
								   OutboxRowFn row_fn, void *arg);

#endif							/* OUTBOX_OWNER_SPI_H */
