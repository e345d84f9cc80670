/*
 * wake.c: wake on commit, as pg_net does. emit() and capture set a
 * backend-local flag; the XactCallback on commit sets the publisher's latch
 * once per committed transaction that emitted, and never on abort. The poll
 * interval is only the fallback (two-phase commit, a library not preloaded).
 *
 * It also owns a ProcessUtility hook: DROP DATABASE, renaming a database,
 * moving it to another tablespace or using it as a template fail while any
 * session is connected to it, publisher included, so the publisher of that database is stopped and
 * kept from restarting until the statement is over.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "tcop/utility.h"
#include "utils/timestamp.h"

#include "inbox.h"
#include "shmem.h"
#include "wake.h"

static bool emitted_in_xact = false;
static ProcessUtility_hook_type prev_process_utility = NULL;

void
outbox_note_emit(void)
{
	emitted_in_xact = true;
}

static void
wake_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (emitted_in_xact)
				outbox_wake_publisher(MyDatabaseId);
			emitted_in_xact = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			emitted_in_xact = false;
			break;
		default:
			break;
	}
}

/* The database a utility statement needs free of sessions, or InvalidOid. */
static Oid
database_needing_exclusive_access(Node *stmt)
{
	const char *name = NULL;

	if (IsA(stmt, DropdbStmt))
		name = ((DropdbStmt *) stmt)->dbname;
	else if (IsA(stmt, CreatedbStmt))
	{
		ListCell   *lc;

		/* Copying a database needs its template free of sessions too. */
		foreach(lc, ((CreatedbStmt *) stmt)->options)
			if (strcmp(((DefElem *) lfirst(lc))->defname, "template") == 0)
				name = defGetString((DefElem *) lfirst(lc));
	}
	else if (IsA(stmt, RenameStmt) && ((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
		name = ((RenameStmt *) stmt)->subname;
	else if (IsA(stmt, AlterDatabaseStmt))
	{
		ListCell   *lc;

		foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
			if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
				name = ((AlterDatabaseStmt *) stmt)->dbname;
	}
	return name ? get_database_oid(name, true) : InvalidOid;
}

static bool
drops_this_extension(Node *stmt)
{
	ListCell   *lc;

	if (!IsA(stmt, DropStmt) || ((DropStmt *) stmt)->removeType != OBJECT_EXTENSION)
		return false;
	foreach(lc, ((DropStmt *) stmt)->objects)
		if (strcmp(strVal(lfirst(lc)), "outbox_ext") == 0)
			return true;
	return false;
}

/* Stop the publisher of dboid (and its inbox workers) and keep it stopped; false if none ran. */
static bool
suspend_publisher(Oid dboid, TimestampTz until)
{
	OutboxDbSlot *slot;
	pid_t		pid = 0;
	int			waited_ms = 0;

	outbox_shmem_lock(true);
	slot = outbox_slot_for(dboid, false);
	if (slot)
	{
		slot->suspended_until = until;
		pid = slot->pid;
	}
	outbox_shmem_unlock();
	if (slot == NULL)
		return false;
	if (pid != 0)
		kill(pid, SIGTERM);
	/* Its inbox workers too (it would have restarted them). */
	(void) outbox_inbox_signal_database(dboid, SIGTERM);

	/* Wait (bounded) until they have left; DROP DATABASE itself waits 5 s more. */
	while (waited_ms < 10000)
	{
		outbox_shmem_lock(false);
		pid = slot->dboid == dboid ? slot->pid : 0;
		outbox_shmem_unlock();
		if (pid == 0 && outbox_inbox_signal_database(dboid, 0) == 0)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		waited_ms += 10;
	}
	return true;
}

static void
resume_publisher(Oid dboid)
{
	OutboxDbSlot *slot;

	outbox_shmem_lock(true);
	slot = outbox_slot_for(dboid, false);
	if (slot)
		slot->suspended_until = 0;
	outbox_shmem_unlock();
	outbox_wake_launcher();
}

#if PG_VERSION_NUM >= 140000
#define UTILITY_ARGS pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc
static void
wake_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
#else
#define UTILITY_ARGS pstmt, queryString, context, params, queryEnv, dest, qc
static void
wake_process_utility(PlannedStmt *pstmt, const char *queryString,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
#endif
{
	Oid			dboid = outbox_shared ? database_needing_exclusive_access(pstmt->utilityStmt) : InvalidOid;
	bool		suspended = false;

	if (OidIsValid(dboid))
		suspended = suspend_publisher(dboid, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60000));
	/* Dropping the extension drops the subscriptions: their workers must hear of it. */
	if (drops_this_extension(pstmt->utilityStmt))
		inbox_note_change();
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(UTILITY_ARGS);
		else
			standard_ProcessUtility(UTILITY_ARGS);
	}
	PG_FINALLY();
	{
		/* A dropped database is gone from outbox.database's reach anyway. */
		if (suspended)
			resume_publisher(dboid);
	}
	PG_END_TRY();
}

void
OutboxWakeInit(void)
{
	RegisterXactCallback(wake_xact_callback, NULL);
	if (process_shared_preload_libraries_in_progress)
	{
		prev_process_utility = ProcessUtility_hook;
		ProcessUtility_hook = wake_process_utility;
	}
}
