/*
 * worker_info.c: outbox._worker_info(), the publisher of the current
 * database as shared memory knows it, for the outbox.status view.
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "shmem.h"

PG_FUNCTION_INFO_V1(outbox_worker_info);

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
