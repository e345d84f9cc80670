/*
 * batch.h: reading the outbox in snapshot-difference pages and moving the
 * cursor, PgQ style. All SQL of the publisher lives here.
 */
#ifndef OUTBOX_BATCH_H
#define OUTBOX_BATCH_H

#include "datatype/timestamp.h"
#include "producer.h"

typedef struct OutboxPage
{
	MemoryContext cxt;			/* everything below lives here */
	char	   *prev_snap;		/* the pair being drained, as pg_snapshot text */
	char	   *cur_snap;
	int64		after_seq;		/* the page starts after this seq */
	int64		last_seq;		/* seq of the page's last row */
	bool		pair_done;		/* fewer rows than asked: the pair is drained */
	int			n;
	int64	   *seq;
	char	  **event_id;
	OutboxMessage *msgs;
	char	   *fate;			/* per message: 0 sent, 'H' held behind its key, 'P' park */
	bool	   *tried_alone;	/* a permanent failure was retried on its own */
	char	  **error;			/* why it is parked */
} OutboxPage;

/* Result of looking at the cursor before a page. */
typedef enum OutboxCursorCheck
{
	CURSOR_OK,
	CURSOR_NO_EXTENSION,
	CURSOR_VERSION_MISMATCH,
	CURSOR_FOREIGN				/* restored data: reset_cursor() needed */
} OutboxCursorCheck;

/*
 * Read the next page (at most 'limit' rows) in its own short transaction,
 * taking no snapshot past its end. *check tells why nothing was read.
 */
extern OutboxPage *outbox_fetch_page(int limit, OutboxCursorCheck *check,
									 char *detail, size_t detail_len);

/*
 * Record the page as published (one UPDATE of the cursor row) and, in the
 * same transaction, park the messages marked in page->fate.
 */
extern void outbox_advance_cursor(OutboxPage *page);

/* Due parked events (at most one per key), as a page; NULL when none. */
extern OutboxPage *outbox_fetch_parked(int limit);

/* Outcome of a parked event's attempt; true if it became a dead letter. */
extern void outbox_parked_delivered(int64 seq);
extern bool outbox_parked_failed(int64 seq, const char *error, bool permanent);

/* Keys (topic + key) that have parked events, and when the next one is due. */
extern void outbox_load_blocked_keys(void);
extern bool outbox_key_blocked(const char *topic, const char *key);
extern void outbox_block_key(const char *topic, const char *key);
extern TimestampTz outbox_next_parked_due(void);

/* Show the worker's state in pg_stat_activity (publisher.c). */
extern void outbox_report_idle(void);

extern void outbox_free_page(OutboxPage *page);

/* Run outbox.purge() when it is due (retention, applied by the publisher). */
extern void outbox_maybe_purge(void);

#endif							/* OUTBOX_BATCH_H */
