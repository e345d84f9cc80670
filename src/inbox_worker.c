/*
 * inbox_worker.c: one inbox worker = one Kafka consumer of one subscription
 * (worker_no of its options.workers), in the subscription's consumer group.
 *
 * Loop: poll a batch, apply it in one transaction (inbox_apply.c), then
 * commit the same offsets to Kafka for information. Partitions are assigned
 * at the offsets stored in the database.
 *
 * A handler error aborts the batch; the batch is then applied one message
 * per transaction. The failing message and everything after it in its
 * partition are held in memory, the partition paused (the consumer keeps
 * polling, so the group keeps it), and the message retried with backoff;
 * after max_attempts it becomes a dead letter and the partition moves on.
 * Errors that are not the message's fault (a dropped handler, a revoked
 * privilege, the database) hold the partitions without counting attempts.
 * librdkafka restarts a resumed partition right after the last message it
 * gave us, so holding what it gave us loses nothing.
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "inbox.h"
#include "kafka_client.h"
#include "shmem.h"

#define ERROR_PAUSE_MS 1000
#define REPORT_INTERVAL_MS 1000

PGDLLEXPORT void outbox_inbox_main(Datum arg);

/* A partition we own. held: messages waiting behind a failing one (in order). */
typedef struct PartState
{
	char	   *topic;
	int32		partition;
	int64		committed;		/* next offset, as stored in the database; -1 unknown */
	MemoryContext cxt;			/* the held records */
	InboxRecord *held;
	int			nheld;
	int			capheld;
	int			attempts;		/* of held[0], counted for handler errors only */
	TimestampTz retry_at;
} PartState;

static volatile sig_atomic_t got_sigterm = false;
static char consumer_name[NAMEDATALEN];
static int	worker_no;
static InboxSub *sub = NULL;
static MemoryContext sub_cxt = NULL;
static uint32 sub_generation = 0;
static PartState *parts = NULL;
static int	nparts = 0;
static MemoryContext parts_cxt = NULL;
static OutboxInboxSlot *slot = NULL;
static char current_state[OUTBOX_STATE_LEN] = "starting";
static uint64 commits = 0;
static uint64 processed = 0;
static TimestampTz last_report = 0;

static void
handle_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
report_activity(void)
{
	char		activity[OUTBOX_STATE_LEN + NAMEDATALEN + 32];

	snprintf(activity, sizeof(activity), "outbox_ext inbox %s: %s", consumer_name, current_state);
	pgstat_report_activity(STATE_IDLE, activity);
}

static void
set_state(const char *state)
{
	if (strcmp(state, current_state) == 0)
		return;
	strlcpy(current_state, state, sizeof(current_state));
	outbox_shmem_lock(true);
	if (slot && slot->pid == MyProcPid)
		strlcpy(slot->state, state, OUTBOX_STATE_LEN);
	outbox_shmem_unlock();
	if (!IsTransactionState())
		report_activity();
}

static void
report_error(const char *msg)
{
	ereport(LOG, (errmsg("outbox_ext inbox %s: %s", consumer_name, msg)));
	outbox_shmem_lock(true);
	if (slot && slot->pid == MyProcPid)
	{
		strlcpy(slot->last_error, msg, OUTBOX_ERROR_LEN);
		slot->last_error_at = GetCurrentTimestamp();
	}
	outbox_shmem_unlock();
}

static void
inbox_detach(int code, Datum arg)
{
	if (inbox_consumer_exists())
		inbox_consumer_close();
	outbox_shmem_lock(true);
	if (slot && slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->latch = NULL;
		slot->dboid = InvalidOid;	/* free the slot */
	}
	outbox_shmem_unlock();
}

/* Take our slot; false if another process runs this worker already. */
static bool
claim_slot(void)
{
	bool		ok = false;

	outbox_shmem_lock(true);
	slot = outbox_inbox_slot_for(MyDatabaseId, consumer_name, worker_no, true);
	if (slot && (slot->pid == 0 || kill(slot->pid, 0) != 0))
	{
		slot->pid = MyProcPid;
		slot->latch = MyLatch;
		strlcpy(slot->state, "starting", OUTBOX_STATE_LEN);
		slot->last_error[0] = '\0';
		slot->processed = 0;
		strlcpy(slot->partitions, "[]", OUTBOX_INBOX_PARTS_LEN);
		ok = true;
	}
	else
		slot = NULL;
	outbox_shmem_unlock();
	return ok;
}

static void
drain_kafka_messages(void)
{
	const char *line;
	const char *err;
	int			level;
	bool		fatal = false;

	while ((line = outbox_kafka_take_log(&level)) != NULL)
		ereport(level <= 3 ? WARNING : LOG,
				(errmsg("outbox_ext inbox %s librdkafka: %s", consumer_name, line)));
	err = inbox_consumer_take_error(&fatal);
	if (err)
	{
		report_error(psprintf("Kafka: %s", err));
		if (fatal)
			inbox_consumer_close();	/* recreated by the loop */
	}
}

static PartState *
find_part(const char *topic, int32 partition)
{
	int			i;

	for (i = 0; i < nparts; i++)
		if (parts[i].partition == partition && strcmp(parts[i].topic, topic) == 0)
			return &parts[i];
	return NULL;
}

static void
forget_parts(void)
{
	if (parts_cxt)
		MemoryContextDelete(parts_cxt);
	parts_cxt = NULL;
	parts = NULL;
	nparts = 0;
}

/* Assignment: start at the database's offsets. Runs inside librdkafka's poll: must not throw. */
static bool
on_assign(InboxPartition *assigned, int n)
{
	MemoryContext old = CurrentMemoryContext;
	volatile bool ok = true;

	forget_parts();
	PG_TRY();
	{
		int			i;

		inbox_load_offsets(sub, assigned, n);
		parts_cxt = AllocSetContextCreate(TopMemoryContext, "outbox inbox partitions",
										  ALLOCSET_SMALL_SIZES);
		MemoryContextSwitchTo(parts_cxt);
		parts = palloc0(sizeof(PartState) * Max(n, 1));
		for (i = 0; i < n; i++)
		{
			parts[i].topic = pstrdup(assigned[i].topic);
			parts[i].partition = assigned[i].partition;
			parts[i].committed = assigned[i].offset >= 0 ? assigned[i].offset : -1;
			parts[i].cxt = AllocSetContextCreate(parts_cxt, "outbox inbox held", ALLOCSET_SMALL_SIZES);
		}
		nparts = n;
		MemoryContextSwitchTo(old);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		EmitErrorReport();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		forget_parts();
		ok = false;
	}
	PG_END_TRY();
	if (ok)
		ereport(DEBUG1, (errmsg("outbox_ext inbox %s: assigned %d partitions", consumer_name, n)));
	else
		report_error("could not read the stored offsets for a partition assignment; rejoining");
	return ok;
}

static void
on_revoke(const InboxPartition *revoked, int n)
{
	forget_parts();
}

static char *
copy_string(const char *s, int len)
{
	char	   *c;

	if (s == NULL)
		return NULL;
	c = palloc(len + 1);
	memcpy(c, s, len + 1);
	return c;
}

/* Deep copy into the current memory context. */
static void
copy_record(InboxRecord *dst, const InboxRecord *src)
{
	int			i;

	*dst = *src;
	dst->topic = pstrdup(src->topic);
	dst->key = copy_string(src->key, src->key_len);
	dst->value = copy_string(src->value, src->value_len);
	if (src->nheaders > 0)
	{
		dst->header_names = palloc(sizeof(char *) * src->nheaders);
		dst->header_values = palloc(sizeof(char *) * src->nheaders);
		dst->header_lens = palloc(sizeof(int) * src->nheaders);
		for (i = 0; i < src->nheaders; i++)
		{
			dst->header_names[i] = pstrdup(src->header_names[i]);
			dst->header_values[i] = copy_string(src->header_values[i], src->header_lens[i]);
			dst->header_lens[i] = src->header_lens[i];
		}
	}
}

static long
backoff_ms(int attempts)
{
	long		ms = sub->retry_backoff_ms;

	while (attempts-- > 1 && ms < INBOX_MAX_BACKOFF_MS)
		ms *= 2;
	return Min(ms, INBOX_MAX_BACKOFF_MS);
}

/* Put a record behind the partition's held ones (pausing it when it starts holding). */
static void
hold(PartState *ps, const InboxRecord *rec)
{
	MemoryContext old;

	if (ps->nheld == 0)
		inbox_consumer_pause(ps->topic, ps->partition, true);
	old = MemoryContextSwitchTo(ps->cxt);
	if (ps->nheld == ps->capheld)
	{
		ps->capheld = ps->capheld ? ps->capheld * 2 : 16;
		ps->held = ps->held ? repalloc(ps->held, sizeof(InboxRecord) * ps->capheld)
			: palloc(sizeof(InboxRecord) * ps->capheld);
	}
	copy_record(&ps->held[ps->nheld++], rec);
	MemoryContextSwitchTo(old);
}

static void
after_commit(InboxRecord *recs, int n, int handled)
{
	InboxPartition *done = palloc(sizeof(InboxPartition) * n);
	int			ndone = inbox_partition_ends(recs, n, done, NULL, NULL),
				i;

	commits++;
	processed += handled;
	for (i = 0; i < ndone; i++)
	{
		PartState  *ps = find_part(done[i].topic, done[i].partition);

		if (ps)
			ps->committed = Max(ps->committed, done[i].offset);
	}

	/* Test-only fault point: die between the database commit and Kafka's. */
	if (outbox_inbox_fault_after_commits > 0 && commits == (uint64) outbox_inbox_fault_after_commits)
	{
		ereport(LOG, (errmsg("outbox_ext inbox %s: test fault: exiting after database commit %d, before the Kafka commit",
							 consumer_name, outbox_inbox_fault_after_commits)));
		proc_exit(1);
	}
	inbox_consumer_commit(done, ndone);
	pfree(done);
}

/* An error while applying: log it, clean up; returns the SQLSTATE text. */
static char *
recover_from_error(MemoryContext cxt, char **message)
{
	ErrorData  *edata;
	char	   *state;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	MemoryContextSwitchTo(cxt);
	*message = pstrdup(edata->message);
	state = pstrdup(unpack_sql_state(edata->sqlerrcode));
	FreeErrorData(edata);
	return state;
}

typedef enum ApplyOutcome
{
	APPLY_OK,
	APPLY_HANDLER_FAILED,		/* a handler raised (at applied.failed_at) */
	APPLY_FAILED				/* something else failed: not the message's fault */
} ApplyOutcome;

static ApplyOutcome
try_apply(InboxRecord *recs, int n, InboxApplied *applied, char **error, char **sqlstate)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile ApplyOutcome outcome = APPLY_OK;

	PG_TRY();
	{
		inbox_apply(sub, recs, n, applied);
		MemoryContextSwitchTo(cxt);
	}
	PG_CATCH();
	{
		*sqlstate = recover_from_error(cxt, error);
		outcome = applied->failed_at >= 0 ? APPLY_HANDLER_FAILED : APPLY_FAILED;
	}
	PG_END_TRY();
	if (outcome == APPLY_OK)
		after_commit(recs, n, applied->handled);
	return outcome;
}

/* Records of partitions that hold messages queue behind them. */
static int
route_held(InboxRecord *recs, int n)
{
	int			i,
				kept = 0;

	for (i = 0; i < n; i++)
	{
		PartState  *ps = find_part(recs[i].topic, recs[i].partition);

		if (ps && ps->nheld > 0)
			hold(ps, &recs[i]);
		else if (ps && ps->committed >= 0 && recs[i].offset < ps->committed)
			continue;			/* already applied (should not happen) */
		else
			recs[kept++] = recs[i];
	}
	return kept;
}

static void
start_holding(InboxRecord *rec, bool counted, const char *error)
{
	PartState  *ps = find_part(rec->topic, rec->partition);

	if (ps == NULL)
		return;					/* revoked meanwhile: its next owner starts from the database */
	hold(ps, rec);
	ps->attempts = counted ? 1 : 0;
	ps->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   counted ? backoff_ms(1) : ERROR_PAUSE_MS);
	set_state(counted ? "retrying" : "error");
}

/*
 * Apply a batch: in one transaction; if a handler fails, again one message
 * per transaction, holding each failing message's partition from there on.
 */
static void
apply_batch(InboxRecord *recs, int n)
{
	InboxApplied applied;
	char	   *error = NULL,
			   *sqlstate = NULL;
	ApplyOutcome outcome;
	int			i;

	n = route_held(recs, n);
	if (n == 0)
		return;
	outcome = try_apply(recs, n, &applied, &error, &sqlstate);
	if (outcome == APPLY_OK)
		return;
	if (outcome == APPLY_FAILED)
	{
		report_error(error);
		for (i = 0; i < n; i++)
		{
			PartState  *ps = find_part(recs[i].topic, recs[i].partition);

			if (ps && ps->nheld > 0)
				hold(ps, &recs[i]);
			else
				start_holding(&recs[i], false, error);
		}
		return;
	}
	ereport(DEBUG1, (errmsg("outbox_ext inbox %s: a handler failed, replaying the batch one message at a time",
							consumer_name)));
	for (i = 0; i < n; i++)
	{
		PartState  *ps = find_part(recs[i].topic, recs[i].partition);

		if (ps && ps->nheld > 0)
		{
			hold(ps, &recs[i]);
			continue;
		}
		outcome = try_apply(&recs[i], 1, &applied, &error, &sqlstate);
		if (outcome == APPLY_OK)
			continue;
		report_error(outcome == APPLY_HANDLER_FAILED ?
					 psprintf("handler failed on %s [%d] at offset " INT64_FORMAT ": %s",
							  recs[i].topic, recs[i].partition, recs[i].offset, error) : error);
		start_holding(&recs[i], outcome == APPLY_HANDLER_FAILED, error);
	}
}

/* Retry the held partitions that are due. */
static void
retry_held(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	for (i = 0; i < nparts && !got_sigterm; i++)
	{
		PartState  *ps = &parts[i];
		InboxApplied applied;
		char	   *error = NULL,
				   *sqlstate = NULL;
		ApplyOutcome outcome;
		InboxRecord *rest;
		int			nrest;

		if (ps->nheld == 0 || ps->retry_at > now)
			continue;
		outcome = try_apply(&ps->held[0], 1, &applied, &error, &sqlstate);
		if (parts == NULL || i >= nparts || ps != &parts[i])
			return;				/* a rebalance happened meanwhile */
		if (outcome == APPLY_FAILED)
		{
			report_error(error);
			ps->retry_at = TimestampTzPlusMilliseconds(now, ERROR_PAUSE_MS);
			continue;
		}
		if (outcome == APPLY_HANDLER_FAILED)
		{
			ps->attempts++;
			if (ps->attempts < sub->max_attempts)
			{
				report_error(psprintf("handler failed on %s [%d] at offset " INT64_FORMAT " (attempt %d of %d): %s",
									  ps->topic, ps->partition, ps->held[0].offset,
									  ps->attempts, sub->max_attempts, error));
				ps->retry_at = TimestampTzPlusMilliseconds(now, backoff_ms(ps->attempts));
				continue;
			}
			PG_TRY();
			{
				inbox_dead_letter(sub, &ps->held[0], error, sqlstate, ps->attempts);
			}
			PG_CATCH();
			{
				char	   *why;

				(void) recover_from_error(CurrentMemoryContext, &why);
				report_error(why);
				ps->retry_at = TimestampTzPlusMilliseconds(now, ERROR_PAUSE_MS);
				continue;
			}
			PG_END_TRY();
			report_error(psprintf("message %s [%d] at offset " INT64_FORMAT " moved to outbox.inbox_dead_letters after %d attempts: %s",
								  ps->topic, ps->partition, ps->held[0].offset, ps->attempts, error));
			after_commit(&ps->held[0], 1, 0);
		}

		/* The head is done: the rest goes as a batch, the partition flows again. */
		nrest = ps->nheld - 1;
		rest = palloc(sizeof(InboxRecord) * Max(nrest, 1));
		memcpy(rest, &ps->held[1], sizeof(InboxRecord) * nrest);
		{
			/* The held copies live in ps->cxt: detach them before it is reused. */
			MemoryContext held_cxt = ps->cxt;

			ps->cxt = AllocSetContextCreate(parts_cxt, "outbox inbox held", ALLOCSET_SMALL_SIZES);
			ps->held = NULL;
			ps->nheld = ps->capheld = 0;
			ps->attempts = 0;
			apply_batch(rest, nrest);
			MemoryContextDelete(held_cxt);
		}
		if (parts != NULL && i < nparts && ps == &parts[i] && ps->nheld == 0)
			inbox_consumer_pause(ps->topic, ps->partition, false);
	}
}

/* The live view of our partitions, for outbox.subscriptions. */
static void
report_partitions(bool force)
{
	TimestampTz now = GetCurrentTimestamp();
	StringInfoData buf;
	int			i;
	bool		holding = false;

	if (!force && now < TimestampTzPlusMilliseconds(last_report, REPORT_INTERVAL_MS))
		return;
	last_report = now;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (i = 0; i < nparts; i++)
	{
		PartState  *ps = &parts[i];

		holding |= ps->nheld > 0;
		if (buf.len > OUTBOX_INBOX_PARTS_LEN - 300)
			break;				/* the view shows what fits */
		appendStringInfo(&buf, "%s{\"topic\":\"%s\",\"partition\":%d,\"position\":" INT64_FORMAT
						 ",\"high_watermark\":" INT64_FORMAT ",\"held\":%d,\"attempts\":%d}",
						 i ? "," : "", ps->topic, ps->partition, ps->committed,
						 inbox_consumer_high_watermark(ps->topic, ps->partition),
						 ps->nheld, ps->attempts);
	}
	appendStringInfoChar(&buf, ']');
	outbox_shmem_lock(true);
	if (slot && slot->pid == MyProcPid)
	{
		strlcpy(slot->partitions, buf.data, OUTBOX_INBOX_PARTS_LEN);
		slot->processed = processed;
	}
	outbox_shmem_unlock();
	pfree(buf.data);
	if (!holding && (strcmp(current_state, "retrying") == 0 || strcmp(current_state, "error") == 0))
		set_state("consuming");
}

/* What the consumer is built from, besides the subscription. */
static char *
kafka_settings(void)
{
	return psprintf("%s\n%s\n%s", outbox_brokers ? outbox_brokers : "",
					outbox_kafka_config ? outbox_kafka_config : "",
					outbox_kafka_config_file ? outbox_kafka_config_file : "");
}

static bool
same_strings(char **a, int na, const char **b, int nb)
{
	int			i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* Does the consumer have to rejoin for this change of the subscription? */
static bool
needs_rejoin(InboxSub *old, InboxSub *new)
{
	return old == NULL || strcmp(old->group_id, new->group_id) != 0 ||
		!same_strings(old->topics, old->ntopics, (const char **) new->topics, new->ntopics) ||
		!same_strings((char **) old->prop_names, old->nprops, new->prop_names, new->nprops) ||
		!same_strings((char **) old->prop_values, old->nprops, new->prop_values, new->nprops);
}

/* Reload our subscription when subscriptions changed; false when we should stop. */
static bool
refresh_subscription(void)
{
	uint32		gen = outbox_inbox_generation(MyDatabaseId);
	InboxSub   *fresh;
	MemoryContext cxt,
				old;
	bool		exists;

	if (sub != NULL && gen == sub_generation)
		return true;
	cxt = AllocSetContextCreate(TopMemoryContext, "outbox inbox subscription", ALLOCSET_SMALL_SIZES);
	old = CurrentMemoryContext;
	StartTransactionCommand();
	MemoryContextSwitchTo(cxt);		/* the subscription outlives the transaction */
	exists = OidIsValid(get_extension_oid("outbox_ext", true));
	fresh = exists ? inbox_load_subscription(consumer_name) : NULL;
	CommitTransactionCommand();
	MemoryContextSwitchTo(old);
	sub_generation = gen;
	if (fresh == NULL || worker_no >= fresh->workers)
	{
		MemoryContextDelete(cxt);
		return false;
	}
	if (inbox_consumer_exists() && needs_rejoin(sub, fresh))
		inbox_consumer_close();
	if (sub_cxt)
		MemoryContextDelete(sub_cxt);
	sub_cxt = cxt;
	sub = fresh;
	return true;
}

static bool
ensure_consumer(void)
{
	char		err[1024];

	if (inbox_consumer_exists() && inbox_consumer_broken())
		inbox_consumer_close();
	if (inbox_consumer_exists())
		return true;
	forget_parts();
	if (!inbox_consumer_create(sub->group_id, sub->topics, sub->ntopics,
							   sub->prop_names, sub->prop_values, sub->nprops,
							   on_assign, on_revoke, err, sizeof(err)))
	{
		report_error(err);
		set_state("config_error");
		return false;
	}
	set_state("consuming");
	return true;
}

/* Sleep until a message, a signal, or the next due retry. */
static void
wait_for_work(long timeout_ms)
{
	int			events = WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH;
	int			fd = inbox_consumer_exists() ? inbox_consumer_fd() : PGINVALID_SOCKET;
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	for (i = 0; i < nparts; i++)
		if (parts[i].nheld > 0)
			timeout_ms = Min(timeout_ms, Max(10, (long) ((parts[i].retry_at - now) / 1000)));
	if (fd != PGINVALID_SOCKET)
		events |= WL_SOCKET_READABLE;
	(void) WaitLatchOrSocket(MyLatch, events, fd, timeout_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

void
outbox_inbox_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	MemoryContext loop_cxt;
	InboxRecord *batch = NULL;
	int			batch_cap = 0;

	memcpy(consumer_name, MyBgworkerEntry->bgw_extra, NAMEDATALEN);
	consumer_name[NAMEDATALEN - 1] = '\0';
	memcpy(&worker_no, MyBgworkerEntry->bgw_extra + NAMEDATALEN, sizeof(int));

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, handle_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("outbox_ext inbox");

	if (!claim_slot())
	{
		ereport(LOG, (errmsg("outbox_ext inbox %s: worker %d already runs (or no free inbox slot)",
							 consumer_name, worker_no)));
		proc_exit(0);
	}
	before_shmem_exit(inbox_detach, (Datum) 0);
	report_activity();

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "outbox inbox loop", ALLOCSET_DEFAULT_SIZES);
	while (!got_sigterm)
	{
		MemoryContext old;
		int			n;

		if (ConfigReloadPending)
		{
			char	   *before = kafka_settings();

			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (inbox_consumer_exists() && strcmp(before, kafka_settings()) != 0)
				inbox_consumer_close();	/* rejoin with the new brokers or properties */
		}
		old = MemoryContextSwitchTo(loop_cxt);
		PG_TRY();
		{
			if (!refresh_subscription())
			{
				ereport(LOG, (errmsg("outbox_ext inbox %s: subscription removed, worker %d stops",
									 consumer_name, worker_no)));
				proc_exit(0);
			}
		}
		PG_CATCH();
		{
			char	   *why;

			(void) recover_from_error(loop_cxt, &why);
			report_error(why);
			set_state("error");
			MemoryContextSwitchTo(old);
			MemoryContextReset(loop_cxt);
			wait_for_work(ERROR_PAUSE_MS);
			continue;
		}
		PG_END_TRY();

		if (outbox_brokers == NULL || outbox_brokers[0] == '\0')
		{
			if (inbox_consumer_exists())
				inbox_consumer_close();
			set_state("paused");
			MemoryContextSwitchTo(old);
			wait_for_work(outbox_poll_interval_ms);
			continue;
		}
		if (!ensure_consumer())
		{
			MemoryContextSwitchTo(old);
			wait_for_work(10 * outbox_poll_interval_ms);
			continue;
		}
		if (batch_cap != sub->batch_size)
		{
			if (batch)
				pfree(batch);
			batch_cap = sub->batch_size;
			batch = MemoryContextAlloc(TopMemoryContext, sizeof(InboxRecord) * batch_cap);
		}
		n = inbox_consumer_poll(batch, batch_cap);
		drain_kafka_messages();
		/* A fatal error closed the consumer: its partitions restart from the database. */
		if (n > 0 && inbox_consumer_exists())
			apply_batch(batch, n);
		retry_held();
		report_partitions(false);
		MemoryContextSwitchTo(old);
		MemoryContextReset(loop_cxt);
		if (n < batch_cap)
			wait_for_work(outbox_poll_interval_ms);
	}
	set_state("stopping");
	proc_exit(1);
}
