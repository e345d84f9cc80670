/*
 * batch.h: reading the outbox in snapshot-difference pages and moving the
 * cursor, PgQ style. All SQL of the publisher lives here.
 */
#ifndef OUTBOX_BATCH_H
#define OUTBOX_BATCH_H

#include "producer.h"

typedef struct OutboxPage
{
	MemoryContext cxt;			/* everything below lives here */
	char	   *prev_snap;		/* the pair being drained, as pg_snapshot text */
	char	   *cur_snap;
	bool		cur_is_new;		/* cur was taken now, not read from the cursor */
	int64		after_seq;		/* the page starts after this seq */
	int64		last_seq;		/* seq of the page's last row */
	bool		pair_done;		/* fewer rows than asked: the pair is drained */
	int			n;
	int64	   *seq;
	char	  **event_id;
	OutboxMessage *msgs;
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

/* Record the page as published (one UPDATE of the cursor row). */
extern void outbox_advance_cursor(OutboxPage *page);

extern void outbox_free_page(OutboxPage *page);

/* Run outbox.purge() when it is due (retention, applied by the publisher). */
extern void outbox_maybe_purge(void);

#endif							/* OUTBOX_BATCH_H */
