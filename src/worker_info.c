/*
 * worker_info.c: outbox._worker_info() and outbox._inbox_workers(), the
 * workers of the current database as shared memory knows them, for the
 * outbox.status and outbox.subscriptions views.
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "shmem.h"

PG_FUNCTION_INFO_V1(outbox_worker_info);
PG_FUNCTION_INFO_V1(outbox_inbox_workers);

Datum
outbox_worker_info(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {true, false, true, true};
	OutboxDbSlot *slot;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (outbox_shared == NULL)
		values[1] = CStringGetTextDatum("not_preloaded");
	else
	{
		outbox_shmem_lock(false);
		slot = outbox_slot_for(MyDatabaseId, false);
		if (slot == NULL)
			values[1] = CStringGetTextDatum("not_running");
		else
		{
			if (slot->pid != 0)
			{
				values[0] = Int32GetDatum(slot->pid);
				nulls[0] = false;
			}
			values[1] = CStringGetTextDatum(slot->state);
			if (slot->last_error[0])
			{
				values[2] = CStringGetTextDatum(slot->last_error);
				values[3] = TimestampTzGetDatum(slot->last_error_at);
				nulls[2] = nulls[3] = false;
			}
		}
		outbox_shmem_unlock();
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

Datum
outbox_inbox_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	OutboxInboxSlot copy;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (outbox_shared == NULL)
		return (Datum) 0;
	for (i = 0; i < OUTBOX_MAX_INBOX_WORKERS; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {false, false, true, false, false, false, true, true};

		/* Copy under the lock; build the row without it. */
		outbox_shmem_lock(false);
		copy = outbox_shared->inbox[i];
		outbox_shmem_unlock();
		if (copy.dboid != MyDatabaseId || copy.pid == 0)
			continue;
		values[0] = CStringGetTextDatum(copy.consumer);
		values[1] = Int32GetDatum(copy.worker_no);
		values[2] = Int32GetDatum(copy.pid);
		nulls[2] = false;
		values[3] = CStringGetTextDatum(copy.state);
		values[4] = DirectFunctionCall1(jsonb_in, CStringGetDatum(copy.partitions));
		values[5] = Int64GetDatum((int64) copy.processed);
		if (copy.last_error[0])
		{
			values[6] = CStringGetTextDatum(copy.last_error);
			values[7] = TimestampTzGetDatum(copy.last_error_at);
			nulls[6] = nulls[7] = false;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
