/*
 * publisher.c: the publisher worker of one database. It reads the outbox in
 * snapshot-difference pages (batch.c), produces each page to Kafka
 * (producer.c) and moves the cursor only once every message of the page is
 * acknowledged: crash anywhere and the page is sent again (at least once;
 * the stable id header lets consumers dedupe). A commit that emitted sets
 * our latch; the poll interval is only the fallback.
 *
 * Errors never crash the worker (a crash restarts the whole cluster): an
 * error in a step is logged, shown in outbox.status and retried after a
 * pause. SIGTERM sets a flag; the loop ends, flushes for a bounded time and
 * exits 1, so only this worker is restarted (by the launcher).
 */
#include "postgres.h"

#include <signal.h>
#include <sys/stat.h>

#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "common/hashfn.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"
#include "guc.h"
#include "inbox.h"
#include "kafka_client.h"
#include "launcher.h"
#include "producer.h"
#include "shmem.h"

#define SHUTDOWN_FLUSH_MS 2000
#define ERROR_PAUSE_MS 1000

static volatile sig_atomic_t got_sigterm = false;
static OutboxPage *page = NULL;		/* in flight, or NULL */
static char *producer_config = NULL;	/* settings the producer was built from */
static bool keys_loaded = false;	/* blocked keys read from outbox._parked */
static bool settings_reloaded = true;	/* a SIGHUP was processed since the last check */
static bool flushed_on_shutdown = false;

static void
handle_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static char current_state[OUTBOX_STATE_LEN] = "starting";

/* Between transactions pg_stat_activity shows the state too. */
void
outbox_report_idle(void)
{
	char		activity[OUTBOX_STATE_LEN + 32];

	snprintf(activity, sizeof(activity), "outbox_ext publisher: %s", current_state);
	pgstat_report_activity(STATE_IDLE, activity);
}

/* The state shows in outbox.status and pg_stat_activity. */
static void
set_state(const char *state)
{
	if (strcmp(state, current_state) == 0)
		return;
	strlcpy(current_state, state, sizeof(current_state));
	outbox_slot_set_state(MyDatabaseId, state);
	if (!IsTransactionState())
		outbox_report_idle();
}

static void
report_error(const char *msg)
{
	outbox_slot_set_error(MyDatabaseId, msg);
}

static void
publisher_detach(int code, Datum arg)
{
	OutboxDbSlot *slot;

	outbox_producer_destroy(flushed_on_shutdown ? 0 : SHUTDOWN_FLUSH_MS);
	outbox_shmem_lock(true);
	slot = outbox_slot_for(MyDatabaseId, false);
	if (slot && slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->latch = NULL;
		strlcpy(slot->state, "stopped", OUTBOX_STATE_LEN);
	}
	outbox_shmem_unlock();
}

/* Sleep until woken, a producer event, or the timeout. */
static void
wait_for_work(long timeout_ms)
{
	int			events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
	int			fd = outbox_producer_exists() ? outbox_producer_fd() : PGINVALID_SOCKET;

	if (fd != PGINVALID_SOCKET)
		events |= WL_SOCKET_READABLE;
	(void) WaitLatchOrSocket(MyLatch, events, fd, timeout_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* One publisher per database: a session-level advisory lock held for life. */
static bool
try_lock_database(void)
{
	LOCKTAG		tag;
	LockAcquireResult res;

	/* Keys spell "outb"/"ox": apart from applications' advisory locks. */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0x6f757462, 0x6f78, 2);
	StartTransactionCommand();
	res = LockAcquire(&tag, ExclusiveLock, true, true);
	CommitTransactionCommand();
	return res != LOCKACQUIRE_NOT_AVAIL;
}

/* What the producer is built from; an edited secrets file counts as a change. */
static char *
current_producer_config(void)
{
	struct stat st;
	long		mtime = 0,
				size = 0;

	if (outbox_kafka_config_file && outbox_kafka_config_file[0] &&
		stat(outbox_kafka_config_file, &st) == 0)
	{
		mtime = (long) st.st_mtime;
		size = (long) st.st_size;
	}
	return psprintf("%s\n%s\n%s\n%ld\n%ld\n%d", outbox_brokers, outbox_kafka_config,
					outbox_kafka_config_file, mtime, size, outbox_batch_size);
}

static void
drop_producer(void)
{
	outbox_producer_destroy(0);
	if (producer_config)
		pfree(producer_config);
	producer_config = NULL;
}

/* Make sure a producer matching the settings exists; false if it cannot. */
static bool
ensure_producer(void)
{
	char		err[1024];
	char	   *wanted;

	/* Settings only change at a reload: compare only after one. */
	if (outbox_producer_exists() && !settings_reloaded)
		return true;
	settings_reloaded = false;
	wanted = current_producer_config();
	if (outbox_producer_exists() && producer_config && strcmp(wanted, producer_config) == 0)
	{
		pfree(wanted);
		return true;
	}
	if (outbox_producer_exists())
	{
		ereport(LOG, (errmsg("outbox_ext publisher: Kafka settings changed, recreating the producer")));
		drop_producer();
		if (page)
			outbox_producer_reset_results(page->n);
	}
	/* Room for the page in flight too, if batch_size was just lowered. */
	if (!outbox_producer_create(Max(outbox_batch_size, page ? page->n : 0), err, sizeof(err)))
	{
		ereport(LOG, (errmsg("outbox_ext publisher: %s", err)));
		report_error(err);
		set_state("config_error");
		pfree(wanted);
		settings_reloaded = true;	/* try again after the pause (a file may appear) */
		return false;
	}
	producer_config = MemoryContextStrdup(TopMemoryContext, wanted);
	pfree(wanted);
	return true;
}

/* Hand librdkafka's log lines and client errors to PostgreSQL's log. */
static bool
drain_producer_messages(void)
{
	const char *line;
	int			level;
	bool		fatal = false;
	const char *err;

	while ((line = outbox_kafka_take_log(&level)) != NULL)
		ereport(level <= 3 ? WARNING : LOG, (errmsg("outbox_ext librdkafka: %s", line)));
	err = outbox_producer_take_error(&fatal);
	if (err)
	{
		ereport(LOG, (errmsg("outbox_ext publisher: Kafka: %s", err)));
		report_error(err);
	}
	return fatal;
}

/* Queue message i, waiting for room in librdkafka's queue if needed. */
static void
send_one(OutboxPage *p, int i)
{
	char		err[256];

	while (!outbox_producer_send(i, &p->msgs[i], err, sizeof(err)) &&
		   outbox_producer_result(i, NULL) == DELIVERY_TRANSIENT)
	{
		outbox_producer_poll();
		wait_for_work(10);
		if (got_sigterm)
			return;
	}
}

/*
 * Queue the page. A message whose key has a parked event is held back
 * (parked behind it) instead: per key, order is kept.
 */
static void
send_page(void)
{
	int			i;

	for (i = 0; i < page->n && !got_sigterm; i++)
	{
		if (outbox_key_blocked(page->msgs[i].topic, page->msgs[i].key))
			page->fate[i] = 'H';
		else
			send_one(page, i);
	}
}

/*
 * Decide what to do once every queued message of the page is reported.
 * Transient failures (broker down, timeouts) go again and never count as
 * attempts. A permanent one is retried on its own, one per key at a time;
 * refused again, it is parked and its key blocked, and later messages of
 * that key in the page are held behind it. Returns true when the page is
 * settled: everything delivered, parked or held.
 */
static bool
page_settled(void)
{
	int			i;
	bool		sent = false;
	bool		changed;
	const char *why = NULL;

	if (outbox_producer_outstanding() > 0 || got_sigterm)
		return false;

	/* Transient failures, and anything a shutdown request left unsent, go (again). */
	for (i = 0; i < page->n; i++)
	{
		OutboxDelivery d = outbox_producer_result(i, NULL);

		if (!page->fate[i] && (d == DELIVERY_TRANSIENT || d == DELIVERY_PENDING))
		{
			send_one(page, i);
			sent = true;
		}
	}
	if (sent)
	{
		set_state("retrying");
		return false;
	}

	do
	{
		HTAB	   *seen;
		HASHCTL		ctl;

		changed = false;
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = NAMEDATALEN * 2;
		ctl.entrysize = NAMEDATALEN * 2;
		ctl.hcxt = CurrentMemoryContext;
		seen = hash_create("outbox keys tried", 16, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		for (i = 0; i < page->n; i++)
		{
			OutboxMessage *m = &page->msgs[i];
			char		k[NAMEDATALEN * 2];
			bool		found;

			if (page->fate[i] || outbox_producer_result(i, &why) != DELIVERY_PERMANENT)
				continue;
			if (outbox_key_blocked(m->topic, m->key))
			{
				page->fate[i] = 'H';
				continue;
			}
			/* One message per key at a time (a digest is enough to tell keys apart here). */
			snprintf(k, sizeof(k), "%08x%08x", hash_bytes((const unsigned char *) m->topic, strlen(m->topic)),
					 hash_bytes((const unsigned char *) m->key, strlen(m->key)));
			(void) hash_search(seen, k, HASH_ENTER, &found);
			if (found)
				continue;
			if (!page->tried_alone[i])
			{
				page->tried_alone[i] = true;
				send_one(page, i);
				sent = true;
			}
			else
			{
				page->fate[i] = 'P';
				page->error[i] = MemoryContextStrdup(page->cxt, why);
				outbox_block_key(m->topic, m->key);
				report_error(psprintf("event %s to topic \"%s\" parked: %s",
									  page->event_id[i], m->topic, why));
				ereport(LOG, (errmsg("outbox_ext publisher: event %s to topic \"%s\" parked: %s",
									 page->event_id[i], m->topic, why)));
				changed = true;
			}
		}
		hash_destroy(seen);
	} while (changed && !sent);

	if (sent)
	{
		set_state("rejected");
		return false;
	}

	/* Settled only if every message is acknowledged, parked or held. */
	for (i = 0; i < page->n; i++)
		if (!page->fate[i] && outbox_producer_result(i, NULL) != DELIVERY_OK)
			return false;
	return true;
}

/* Send the parked events that are due (one per key) and record outcomes. */
static void
retry_parked(void)
{
	OutboxPage *parked = outbox_fetch_parked(outbox_batch_size);
	int			i;

	if (parked == NULL)
	{
		outbox_load_blocked_keys();
		return;
	}
	outbox_producer_reset_results(parked->n);
	for (i = 0; i < parked->n && !got_sigterm; i++)
		send_one(parked, i);
	while (!got_sigterm && outbox_producer_outstanding() > 0)
	{
		outbox_producer_poll();
		(void) drain_producer_messages();
		if (outbox_producer_outstanding() > 0)
			wait_for_work(outbox_poll_interval_ms);
	}
	for (i = 0; i < parked->n && !got_sigterm; i++)
	{
		const char *why;
		OutboxDelivery d = outbox_producer_result(i, &why);

		if (d == DELIVERY_OK)
			outbox_parked_delivered(parked->seq[i]);
		else if (d != DELIVERY_PENDING &&
				 outbox_parked_failed(parked->seq[i], why, d == DELIVERY_PERMANENT))
		{
			ereport(LOG, (errmsg("outbox_ext publisher: event %s to topic \"%s\" moved to outbox.dead_letters: %s",
								 parked->event_id[i], parked->msgs[i].topic, why)));
			report_error(psprintf("event %s to topic \"%s\" is a dead letter: %s",
								  parked->event_id[i], parked->msgs[i].topic, why));
		}
	}
	outbox_free_page(parked);
	outbox_load_blocked_keys();
}

/* How long to sleep when idle: the poll interval, or less if a parked event is due sooner. */
static long
until_next_parked_due(void)
{
	TimestampTz due = outbox_next_parked_due();
	long		ms;

	if (due == DT_NOEND)
		return outbox_poll_interval_ms;
	ms = (long) ((due - GetCurrentTimestamp()) / 1000);
	return Max(Min(ms, (long) outbox_poll_interval_ms), 10);
}

/* One step of the loop; errors are caught by the caller. */
static void
publish_step(void)
{
	OutboxCursorCheck check;
	char		detail[OUTBOX_ERROR_LEN];

	if (page == NULL)
	{
		detail[0] = '\0';
		page = outbox_fetch_page(outbox_batch_size, &check, detail, sizeof(detail));
		if (page == NULL)
		{
			keys_loaded = false;
			set_state(check == CURSOR_NO_EXTENSION ? "no_extension" :
					  check == CURSOR_VERSION_MISMATCH ? "version_mismatch" : "needs_reset");
			if (detail[0])
				report_error(detail);
			wait_for_work(outbox_poll_interval_ms);
			return;
		}
		if (!keys_loaded)
		{
			outbox_load_blocked_keys();
			keys_loaded = true;
		}
		if (page->n == 0)
		{
			outbox_advance_cursor(page);
			outbox_free_page(page);
			page = NULL;
			if (GetCurrentTimestamp() >= outbox_next_parked_due())
				retry_parked();
			set_state(outbox_next_parked_due() == DT_NOEND ? "idle" : "idle_with_parked");
			outbox_maybe_purge();
			wait_for_work(until_next_parked_due());
			return;
		}
		set_state("publishing");
		outbox_producer_reset_results(page->n);
		send_page();
	}

	outbox_producer_poll();
	if (drain_producer_messages())
	{
		/* Fatal producer error: start over from the durable cursor. */
		drop_producer();
		outbox_free_page(page);
		page = NULL;
		return;
	}
	if (page_settled())
	{
		outbox_advance_cursor(page);
		outbox_free_page(page);
		page = NULL;
		if (GetCurrentTimestamp() >= outbox_next_parked_due())
			retry_parked();
		outbox_maybe_purge();	/* due once a minute, busy or not */
		return;					/* straight on to the next page */
	}
	wait_for_work(outbox_poll_interval_ms);
}

/*
 * On shutdown, wait briefly for the page in flight and record the
 * acknowledged prefix, so a restart resends only what may not have arrived.
 */
static void
finish_page_on_shutdown(void)
{
	int			k = 0;
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), SHUTDOWN_FLUSH_MS);

	if (page == NULL || !outbox_producer_exists())
		return;
	flushed_on_shutdown = true;
	while (outbox_producer_outstanding() > 0 && GetCurrentTimestamp() < deadline)
	{
		outbox_producer_poll();
		(void) WaitLatchOrSocket(NULL, WL_SOCKET_READABLE | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 outbox_producer_fd(), 50, PG_WAIT_EXTENSION);
	}
	outbox_producer_poll();
	while (k < page->n && (page->fate[k] || outbox_producer_result(k, NULL) == DELIVERY_OK))
		k++;
	if (k == 0)
		return;
	PG_TRY();
	{
		if (k < page->n)
		{
			page->n = k;
			page->pair_done = false;
			page->last_seq = page->seq[k - 1];
		}
		outbox_advance_cursor(page);
	}
	PG_CATCH();
	{
		/* Not recorded: the page is simply sent again after the restart. */
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
	}
	PG_END_TRY();
}

void
outbox_publisher_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	OutboxDbSlot *slot;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, handle_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("outbox_ext publisher");

	/*
	 * Only the holder of the database's lock takes its slot (pid, latch): a
	 * duplicate started by a restarted launcher waits without stealing the
	 * wake-ups or the place in outbox.status.
	 */
	while (!got_sigterm && !try_lock_database())
		wait_for_work(outbox_poll_interval_ms);
	if (got_sigterm)
		proc_exit(1);

	outbox_shmem_lock(true);
	slot = outbox_slot_for(dboid, true);
	if (slot)
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
		strlcpy(slot->state, "starting", OUTBOX_STATE_LEN);
	}
	outbox_shmem_unlock();
	before_shmem_exit(publisher_detach, (Datum) 0);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "outbox publisher loop", ALLOCSET_DEFAULT_SIZES);
	while (!got_sigterm)
	{
		MemoryContext old;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			settings_reloaded = true;
		}
		/* This database's inbox workers are ours to keep running. */
		old = MemoryContextSwitchTo(loop_cxt);
		outbox_inbox_supervise();
		MemoryContextSwitchTo(old);

		if (outbox_brokers == NULL || outbox_brokers[0] == '\0')
		{
			/* Paused: events accumulate safely until brokers are set. */
			if (outbox_producer_exists())
				drop_producer();
			set_state("paused");
			wait_for_work(outbox_poll_interval_ms);
			continue;
		}

		old = MemoryContextSwitchTo(loop_cxt);
		PG_TRY();
		{
			if (ensure_producer())
				publish_step();
			else
				wait_for_work(10 * outbox_poll_interval_ms);	/* until the settings change */
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			/* Log, show in outbox.status, and carry on: no crash loop. */
			MemoryContextSwitchTo(loop_cxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortOutOfAnyTransaction();
			ereport(LOG, (errmsg("outbox_ext publisher: %s", edata->message)));
			report_error(edata->message);
			set_state("error");
			FreeErrorData(edata);
			outbox_report_idle();
			wait_for_work(ERROR_PAUSE_MS);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		MemoryContextReset(loop_cxt);
	}

	set_state("stopping");
	finish_page_on_shutdown();
	proc_exit(1);
}
