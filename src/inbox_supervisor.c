/*
 * inbox_supervisor.c: the database's publisher also keeps its inbox workers
 * running: one dynamic background worker per (subscription, worker number).
 * It looks when a subscription change commits (outbox_inbox_changed() wakes
 * it) and once a second otherwise, and starts what is missing, with a
 * backoff for workers that keep stopping. Workers stop themselves when their
 * subscription goes away.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "inbox.h"
#include "owner_spi.h"
#include "shmem.h"

#define CHECK_INTERVAL_MS 1000
#define MIN_BACKOFF_MS 1000
#define MAX_BACKOFF_MS 30000

typedef struct Supervised
{
	char		consumer[NAMEDATALEN];
	int			worker_no;
	BackgroundWorkerHandle *handle;
	TimestampTz next_start;		/* not before: backoff after a stop */
	int			backoff_ms;
	bool		wanted;
} Supervised;

static Supervised *supervised = NULL;
static int	nsupervised = 0;
static int	capsupervised = 0;
static uint32 seen_generation = 0;
static TimestampTz last_check = 0;
static char last_problem[256] = "";

typedef struct Wanted
{
	char	  **consumers;
	int		   *workers;
	int			n;
	int			cap;
} Wanted;

static void
collect_wanted(HeapTuple tup, TupleDesc desc, void *arg)
{
	Wanted	   *w = (Wanted *) arg;
	bool		isnull;

	if (w->n == w->cap)
	{
		w->cap = w->cap ? w->cap * 2 : 8;
		w->consumers = w->consumers ? repalloc(w->consumers, sizeof(char *) * w->cap)
			: palloc(sizeof(char *) * w->cap);
		w->workers = w->workers ? repalloc(w->workers, sizeof(int) * w->cap)
			: palloc(sizeof(int) * w->cap);
	}
	w->consumers[w->n] = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	w->workers[w->n] = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	w->n++;
}

static Supervised *
entry_for(const char *consumer, int worker_no)
{
	int			i;

	for (i = 0; i < nsupervised; i++)
		if (supervised[i].worker_no == worker_no && strcmp(supervised[i].consumer, consumer) == 0)
			return &supervised[i];
	if (nsupervised == capsupervised)
	{
		capsupervised = capsupervised ? capsupervised * 2 : 8;
		supervised = supervised
			? repalloc(supervised, sizeof(Supervised) * capsupervised)
			: MemoryContextAlloc(TopMemoryContext, sizeof(Supervised) * capsupervised);
	}
	memset(&supervised[nsupervised], 0, sizeof(Supervised));
	strlcpy(supervised[nsupervised].consumer, consumer, NAMEDATALEN);
	supervised[nsupervised].worker_no = worker_no;
	supervised[nsupervised].backoff_ms = MIN_BACKOFF_MS;
	return &supervised[nsupervised++];
}

/* Is the worker running, by our handle or (started by an earlier publisher) by its slot? */
static bool
is_running(Supervised *s)
{
	OutboxInboxSlot *slot;
	pid_t		pid = 0;

	if (s->handle)
	{
		pid_t		p;
		BgwHandleStatus st = GetBackgroundWorkerPid(s->handle, &p);

		if (st == BGWH_STARTED || st == BGWH_NOT_YET_STARTED)
			return true;
		pfree(s->handle);
		s->handle = NULL;
	}
	outbox_shmem_lock(false);
	slot = outbox_inbox_slot_for(MyDatabaseId, s->consumer, s->worker_no, false);
	if (slot)
		pid = slot->pid;
	outbox_shmem_unlock();
	return pid != 0 && kill(pid, 0) == 0;
}

static void
note_problem(const char *msg)
{
	if (strcmp(msg, last_problem) == 0)
		return;					/* once, not every second */
	strlcpy(last_problem, msg, sizeof(last_problem));
	ereport(LOG, (errmsg("outbox_ext publisher: %s", msg)));
	outbox_slot_set_error(MyDatabaseId, msg);
}

static void
start_worker(Supervised *s)
{
	BackgroundWorker w;
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext old;
	bool		registered;

	if (now < s->next_start)
		return;
	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;	/* restarted from here, with backoff */
	snprintf(w.bgw_library_name, BGW_MAXLEN, "outbox_ext");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "outbox_inbox_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "outbox_ext inbox %s/%d", s->consumer, s->worker_no);
	snprintf(w.bgw_type, BGW_MAXLEN, "outbox_ext inbox");
	w.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	memcpy(w.bgw_extra, s->consumer, NAMEDATALEN);
	memcpy(w.bgw_extra + NAMEDATALEN, &s->worker_no, sizeof(int));
	w.bgw_notify_pid = MyProcPid;

	/* A worker that stopped soon after its last start waits longer each time. */
	if (s->next_start != 0 && now < TimestampTzPlusMilliseconds(s->next_start, 60000))
		s->backoff_ms = Min(s->backoff_ms * 2, MAX_BACKOFF_MS);
	else
		s->backoff_ms = MIN_BACKOFF_MS;
	s->next_start = TimestampTzPlusMilliseconds(now, s->backoff_ms);
	old = MemoryContextSwitchTo(TopMemoryContext);	/* the handle outlives this loop */
	registered = RegisterDynamicBackgroundWorker(&w, &s->handle);
	MemoryContextSwitchTo(old);
	if (!registered)
	{
		s->handle = NULL;
		note_problem(psprintf("could not start inbox worker %s/%d: no free background worker slot "
							  "(raise max_worker_processes)", s->consumer, s->worker_no));
		return;
	}
	last_problem[0] = '\0';
}

void
outbox_inbox_supervise(void)
{
	static SPIPlanPtr plan = NULL;
	uint32		gen = outbox_inbox_generation(MyDatabaseId);
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext cxt = CurrentMemoryContext;
	Wanted		wanted = {NULL, NULL, 0, 0};
	int			i,
				w;

	if (gen == seen_generation && now < TimestampTzPlusMilliseconds(last_check, CHECK_INTERVAL_MS))
		return;
	seen_generation = gen;
	last_check = now;

	PG_TRY();
	{
		StartTransactionCommand();
		if (OidIsValid(get_extension_oid("outbox_ext", true)))
		{
			MemoryContextSwitchTo(cxt);
			(void) outbox_exec_as_owner(&plan,
										"SELECT consumer, coalesce((options ->> 'workers')::int, 1) "
										"FROM outbox._subscriptions",
										0, NULL, NULL, NULL, collect_wanted, &wanted);
		}
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		MemoryContextSwitchTo(cxt);
		note_problem(psprintf("could not read inbox subscriptions: %s", edata->message));
		FreeErrorData(edata);
		return;
	}
	PG_END_TRY();

	for (i = 0; i < nsupervised; i++)
		supervised[i].wanted = false;
	for (i = 0; i < wanted.n; i++)
		for (w = 0; w < wanted.workers[i]; w++)
		{
			Supervised *s = entry_for(wanted.consumers[i], w);

			s->wanted = true;
			if (!is_running(s))
				start_worker(s);
		}
	/* Forget what is no longer wanted (those workers stop by themselves). */
	for (i = 0; i < nsupervised;)
		if (!supervised[i].wanted)
		{
			if (supervised[i].handle)
				pfree(supervised[i].handle);
			supervised[i] = supervised[--nsupervised];
		}
		else
			i++;
}
