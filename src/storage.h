/*
 * storage.h: the outbox's insert-only storage. Events go into the current
 * child of a fixed set of rotating tables (outbox.events_0 .. _2); each row
 * carries its top-level xid (xid8) and a sequence-backed seq, which is all
 * the publisher needs: no row is ever updated to mark it published.
 */
#ifndef OUTBOX_STORAGE_H
#define OUTBOX_STORAGE_H

#include "utils/jsonb.h"
#include "utils/uuid.h"

#define OUTBOX_SLOTS 3

/* One event as it is stored. Text fields are NUL-terminated C strings. */
typedef struct OutboxEvent
{
	pg_uuid_t	event_id;
	pg_uuid_t	root_id;
	pg_uuid_t	causation_id;
	bool		has_causation;
	const char *aggregate_type;
	const char *aggregate_id;
	const char *event_type;
	const char *topic;
	const char *key;			/* NULL: the publisher keys by aggregate_id */
	Jsonb	   *payload;		/* NULL: a Kafka tombstone */
	Jsonb	   *headers;		/* NULL or the user's own headers */
	const char *traceparent;	/* NULL or a validated W3C traceparent */
} OutboxEvent;

typedef struct OutboxWriter OutboxWriter;

extern void OutboxStorageInit(void);

/*
 * Open the current child table and its indexes for one or more inserts;
 * bulk writers buffer rows for multi-inserts (flushed at close).
 */
extern OutboxWriter *outbox_writer_open(bool bulk);
extern void outbox_writer_insert(OutboxWriter *w, const OutboxEvent *ev);
extern void outbox_writer_close(OutboxWriter *w);

/* The owner of the extension's storage, whose rights internal writes use. */
extern Oid	outbox_storage_owner(void);

#endif							/* OUTBOX_STORAGE_H */
