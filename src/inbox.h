/*
 * inbox.h: the consuming side. A subscription (subscription.c) names topics
 * and a handler; inbox workers (inbox_worker.c), started by the database's
 * publisher (inbox_supervisor.c), consume them and apply each batch in one
 * transaction (inbox_apply.c): dedup records, handler calls and the next
 * offsets commit together.
 */
#ifndef OUTBOX_INBOX_H
#define OUTBOX_INBOX_H

#include "consumer.h"
#include "utils/uuid.h"

#define INBOX_MAX_WORKERS_PER_SUB 16

/* A subscription as the worker uses it (palloc'd in one context). */
typedef struct InboxSub
{
	char	   *consumer;
	char	  **topics;
	int			ntopics;
	char	   *handler;		/* qualified regprocedure text */
	Oid			run_as;
	char	   *group_id;
	int			workers;
	int			batch_size;
	int			max_attempts;
	int			retry_backoff_ms;	/* first retry; doubles up to INBOX_MAX_BACKOFF_MS */
	bool		start_latest;
	int			nprops;
	const char **prop_names;
	const char **prop_values;
} InboxSub;

#define INBOX_MAX_BACKOFF_MS 60000

/* subscription.c */
/* Load a subscription (in a transaction); NULL if it does not exist. */
extern InboxSub *inbox_load_subscription(const char *consumer);
/* Note that this transaction changed subscriptions: the supervisor hears at commit. */
extern void inbox_note_change(void);
extern void InboxSubscriptionInit(void);
/* Refuse a handler that is not f(jsonb), or a role that is a superuser or may not run it. */
extern void inbox_check_handler(Oid fn, Oid run_as);

/* inbox_apply.c */

/* Outcome of applying messages in one transaction. */
typedef struct InboxApplied
{
	int			handled;		/* handler calls (new messages) */
	int			failed_at;		/* on error: index of the message whose handler raised, or -1 */
} InboxApplied;

/*
 * Apply recs[0..n) in one transaction of its own (started and committed
 * here): record them in processed_messages, call the handler for the new
 * ones, store each partition's next offset. Throws on error with
 * applied->failed_at telling whether a handler raised (for which message).
 */
extern void inbox_apply(InboxSub *sub, InboxRecord *recs, int n, InboxApplied *applied);

/* Record a message that keeps failing as a dead letter and move its partition past it. */
extern void inbox_dead_letter(InboxSub *sub, InboxRecord *rec, const char *error,
							  const char *sqlstate, int attempts);

/*
 * The partitions of recs, each with the offset after its last record (in
 * ends[], n entries of room); with handled_counts, how many of its records
 * were handled. Returns how many partitions.
 */
extern int	inbox_partition_ends(const InboxRecord *recs, int n, InboxPartition *ends,
								 int64 *handled_counts, const bool *handled);

/* Start offsets (the database's) for an assignment; in a transaction of its own. */
extern void inbox_load_offsets(InboxSub *sub, InboxPartition *parts, int n);

/* The dedup id of a message without an id header (UUIDv5 of kafka:///topic/partition/offset). */
extern void inbox_message_id(const char *topic, int32 partition, int64 offset, pg_uuid_t *out);

/* inbox_supervisor.c: called from the publisher's loop; starts missing inbox workers. */
extern void outbox_inbox_supervise(void);

#endif							/* OUTBOX_INBOX_H */
