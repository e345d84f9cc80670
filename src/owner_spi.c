/*
 * owner_spi.c: see owner_spi.h.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/snapmgr.h"

#include "owner_spi.h"
#include "storage.h"

uint64
outbox_exec_as_owner(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes,
					 Datum *values, const char *nulls, OutboxRowFn row_fn, void *arg)
{
	Oid			save_userid;
	int			save_sec;
	volatile uint64 processed = 0;
	MemoryContext caller_cxt = CurrentMemoryContext;
	bool		pushed = false;

	/* Workers call this outside any portal: give the statement a snapshot. */
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(outbox_storage_owner(),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		int			rc;
		uint64		i;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (*plan == NULL)
		{
			SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

			if (p == NULL)
				elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
			SPI_keepplan(p);
			*plan = p;
		}
		rc = SPI_execute_plan(*plan, values, nulls, false, 0);
		if (rc < 0)
			elog(ERROR, "statement failed: %s", SPI_result_code_string(rc));
		processed = SPI_processed;
		if (row_fn && SPI_tuptable)
		{
			/* What row_fn allocates must outlive SPI_finish(). */
			MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);

			for (i = 0; i < SPI_processed; i++)
				row_fn(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, arg);
			MemoryContextSwitchTo(spi_cxt);
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	if (pushed)
		PopActiveSnapshot();
	return processed;
}
