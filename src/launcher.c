/*
 * launcher.c: one static background worker, connected to shared catalogs
 * only (as timescaledb's loader and the autovacuum launcher are), that
 * reconciles the publishers with outbox.database: it resolves the names,
 * starts a dynamic worker per existing database (by OID), restarts one that
 * stopped after a short backoff, stops those no longer wanted, and records
 * registration failures (max_worker_processes) where outbox.status shows
 * them. Woken by SIGHUP, by its workers starting and stopping, or once a
 * second.
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "guc.h"
#include "launcher.h"
#include "shmem.h"

#define RESTART_BACKOFF_MS 1000

typedef struct Publisher
{
	Oid			dboid;
	BackgroundWorkerHandle *handle;
	TimestampTz not_before;		/* restart backoff */
} Publisher;

static Publisher publishers[OUTBOX_MAX_DATABASES];
static MemoryContext reconcile_cxt = NULL;

static void forget_slot(Oid dboid);

void
OutboxLauncherInit(void)
{
	BackgroundWorker w;

	if (!process_shared_preload_libraries_in_progress)
		return;
	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "outbox_ext");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "outbox_launcher_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "outbox_ext launcher");
	snprintf(w.bgw_type, BGW_MAXLEN, "outbox_ext launcher");
	RegisterBackgroundWorker(&w);
}

static void
launcher_detach(int code, Datum arg)
{
	if (outbox_shared)
	{
		outbox_shared->launcher_latch = NULL;
		outbox_shared->launcher_pid = 0;
	}
}

/* OIDs of the databases named in outbox.database that exist now. */
static int
wanted_databases(Oid *oids)
{
	char	   *copy = pstrdup(outbox_databases ? outbox_databases : "");
	List	   *names = NIL;
	ListCell   *lc;
	int			n = 0;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	if (!SplitGUCList(copy, ',', &names))
	{
		ereport(LOG,
				(errmsg("outbox.database is not a valid list of database names")));
		return 0;
	}
	/*
	 * A sequential scan of pg_database, as the autovacuum launcher does:
	 * without a database, get_database_oid()'s index scan can need a
	 * relcache entry that only pg_class could provide.
	 */
	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL && n < OUTBOX_MAX_DATABASES)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		foreach(lc, names)
			if (strcmp(NameStr(db->datname), (char *) lfirst(lc)) == 0)
			{
				oids[n++] = db->oid;
				break;
			}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return n;
}

static bool
is_wanted(Oid dboid, Oid *oids, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (oids[i] == dboid)
			return true;
	return false;
}

static bool
is_suspended(Oid dboid)
{
	OutboxDbSlot *slot;
	bool		result = false;

	outbox_shmem_lock(false);
	slot = outbox_slot_for(dboid, false);
	if (slot && slot->suspended_until > GetCurrentTimestamp())
		result = true;
	outbox_shmem_unlock();
	return result;
}

static void
start_publisher(Publisher *p)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher restarts it, with backoff */
	snprintf(w.bgw_library_name, BGW_MAXLEN, "outbox_ext");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "outbox_publisher_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "outbox_ext publisher for database %u", p->dboid);
	snprintf(w.bgw_type, BGW_MAXLEN, "outbox_ext publisher");
	w.bgw_main_arg = ObjectIdGetDatum(p->dboid);
	w.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&w, &p->handle))
	{
		p->handle = NULL;
		p->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10 * RESTART_BACKOFF_MS);
		outbox_slot_set_state(p->dboid, "registration_failed");
		outbox_slot_set_error(p->dboid,
							  "could not start the publisher: no free background worker slot; "
							  "raise max_worker_processes (outbox_ext needs 1 + one per database in outbox.database)");
		ereport(WARNING,
				(errmsg("outbox_ext could not register a publisher for database %u", p->dboid),
				 errhint("Raise max_worker_processes: outbox_ext needs 1 + one per database in outbox.database.")));
	}
}

/* The live publisher of a database as shared memory knows it, or 0. */
static pid_t
slot_pid(Oid dboid)
{
	OutboxDbSlot *slot;
	pid_t		pid = 0;

	outbox_shmem_lock(false);
	slot = outbox_slot_for(dboid, false);
	if (slot)
		pid = slot->pid;
	outbox_shmem_unlock();
	if (pid != 0 && kill(pid, 0) != 0)
		pid = 0;
	return pid;
}

/*
 * Running: started by us and not stopped, or holding the database's slot
 * (a publisher a previous launcher started: we have no handle for it).
 */
static bool
is_running(Publisher *p)
{
	pid_t		pid;

	if (p->handle != NULL && GetBackgroundWorkerPid(p->handle, &pid) != BGWH_STOPPED)
		return true;
	return slot_pid(p->dboid) != 0;
}

/* Publishers of databases no longer wanted, including ones we have no handle for. */
static void
stop_unwanted_slots(Oid *wanted, int nwanted)
{
	int			i;

	for (i = 0; i < OUTBOX_MAX_DATABASES; i++)
	{
		Oid			dboid;
		pid_t		pid;

		outbox_shmem_lock(false);
		dboid = outbox_shared->slots[i].dboid;
		pid = outbox_shared->slots[i].pid;
		outbox_shmem_unlock();
		if (!OidIsValid(dboid) || is_wanted(dboid, wanted, nwanted))
			continue;
		if (pid != 0 && kill(pid, 0) == 0)
			kill(pid, SIGTERM);
		else
			forget_slot(dboid);
	}
}

static void
forget_slot(Oid dboid)
{
	OutboxDbSlot *slot;

	outbox_shmem_lock(true);
	slot = outbox_slot_for(dboid, false);
	if (slot && slot->pid == 0)
		slot->dboid = InvalidOid;
	outbox_shmem_unlock();
}

static void
reconcile(void)
{
	Oid			wanted[OUTBOX_MAX_DATABASES];
	int			nwanted = wanted_databases(wanted);
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	/* Stop publishers of databases no longer wanted (or dropped). */
	for (i = 0; i < OUTBOX_MAX_DATABASES; i++)
	{
		Publisher  *p = &publishers[i];

		if (!OidIsValid(p->dboid) || is_wanted(p->dboid, wanted, nwanted))
			continue;
		if (is_running(p))
		{
			if (p->handle)
				TerminateBackgroundWorker(p->handle);
			continue;			/* forget it once it has stopped */
		}
		forget_slot(p->dboid);
		memset(p, 0, sizeof(*p));
	}
	stop_unwanted_slots(wanted, nwanted);

	/* Start (or restart) the wanted ones. */
	for (i = 0; i < nwanted; i++)
	{
		Publisher  *p = NULL;
		Publisher  *free_p = NULL;
		int			j;

		for (j = 0; j < OUTBOX_MAX_DATABASES; j++)
		{
			if (publishers[j].dboid == wanted[i])
				p = &publishers[j];
			else if (!OidIsValid(publishers[j].dboid) && free_p == NULL)
				free_p = &publishers[j];
		}
		if (p == NULL)
		{
			if (free_p == NULL)
				break;
			p = free_p;
			memset(p, 0, sizeof(*p));
			p->dboid = wanted[i];
		}
		if (is_running(p))
			continue;
		if (p->handle != NULL)
		{
			/* It stopped: restart after the backoff. */
			pfree(p->handle);
			p->handle = NULL;
			p->not_before = TimestampTzPlusMilliseconds(now, RESTART_BACKOFF_MS);
		}
		if (now < p->not_before || is_suspended(p->dboid))
			continue;
		start_publisher(p);
	}
}

void
outbox_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("outbox_ext launcher");

	outbox_shared->launcher_pid = MyProcPid;
	outbox_shared->launcher_latch = MyLatch;
	before_shmem_exit(launcher_detach, (Datum) 0);
	reconcile_cxt = AllocSetContextCreate(TopMemoryContext, "outbox launcher", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* Everything reconcile() allocates is dropped every round. */
		MemoryContextSwitchTo(reconcile_cxt);
		reconcile();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(reconcile_cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 RESTART_BACKOFF_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
