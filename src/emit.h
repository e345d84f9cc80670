/*
 * emit.h: building and appending one event; shared by outbox.emit() and the
 * change-capture trigger.
 */
#ifndef OUTBOX_EMIT_H
#define OUTBOX_EMIT_H

#include "storage.h"

/*
 * Fill in the parts of an event that do not come from the caller: a new
 * event id, the ambient root and causation, the session's traceparent.
 */
extern void outbox_event_init(OutboxEvent *ev);

/* Tell the publisher (once per transaction) that this transaction emitted. */
extern void outbox_note_emit(void);

extern void OutboxEmitInit(void);

#endif							/* OUTBOX_EMIT_H */
