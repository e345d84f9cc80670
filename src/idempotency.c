/*
 * idempotency.c: outbox.try_process() and outbox.try_process_root(), the
 * consumer side's "have I handled this already?" in the handler's own
 * transaction.
 *
 * The record is inserted with INSERT ... ON CONFLICT DO NOTHING, so a
 * concurrent duplicate waits for the first inserter and then answers false
 * (or true if the first rolled back). Application roles have no INSERT right
 * on the tables: the insert runs as the extension's storage owner, switched
 * to in C for just this statement, instead of a SECURITY DEFINER call.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "context.h"
#include "owner_spi.h"
#include "storage.h"
#include "validate.h"

PG_FUNCTION_INFO_V1(outbox_try_process);
PG_FUNCTION_INFO_V1(outbox_try_process_root);

static SPIPlanPtr processed_plan = NULL;
static SPIPlanPtr root_plan = NULL;

/* Run a prepared insert as the storage owner; true when it inserted a row. */
static bool
insert_once(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes,
			Datum *values)
{
	return outbox_exec_as_owner(plan, sql, nargs, argtypes, values, NULL, NULL, NULL) == 1;
}

static void
require_uuid(FunctionCallInfo fcinfo, int n, const char *what)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/* outbox.try_process(consumer text, event_id uuid, root_id uuid DEFAULT NULL) */
Datum
outbox_try_process(PG_FUNCTION_ARGS)
{
	Oid			argtypes[3] = {TEXTOID, UUIDOID, UUIDOID};
	Datum		values[3];
	pg_uuid_t  *event_id;
	pg_uuid_t  *root_id;

	outbox_require_text("consumer", PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0));
	require_uuid(fcinfo, 1, "event_id");
	event_id = PG_GETARG_UUID_P(1);
	root_id = PG_ARGISNULL(2) ? event_id : PG_GETARG_UUID_P(2);

	values[0] = PointerGetDatum(PG_GETARG_TEXT_PP(0));
	values[1] = UUIDPGetDatum(event_id);
	values[2] = UUIDPGetDatum(root_id);
	if (!insert_once(&processed_plan,
					 "INSERT INTO outbox.processed_messages (consumer, event_id, root_id, processed_at) "
					 "VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING",
					 3, argtypes, values))
		PG_RETURN_BOOL(false);

	/* The handler's own events join the process that caused them. */
	outbox_context_set(root_id, event_id);
	PG_RETURN_BOOL(true);
}

/* outbox.try_process_root(consumer text, root_id uuid) */
Datum
outbox_try_process_root(PG_FUNCTION_ARGS)
{
	Oid			argtypes[2] = {TEXTOID, UUIDOID};
	Datum		values[2];

	outbox_require_text("consumer", PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0));
	require_uuid(fcinfo, 1, "root_id");

	values[0] = PointerGetDatum(PG_GETARG_TEXT_PP(0));
	values[1] = UUIDPGetDatum(PG_GETARG_UUID_P(1));
	PG_RETURN_BOOL(insert_once(&root_plan,
							   "INSERT INTO outbox.processed_roots (consumer, root_id, processed_at) "
							   "VALUES ($1, $2, now()) ON CONFLICT DO NOTHING",
							   2, argtypes, values));
}
