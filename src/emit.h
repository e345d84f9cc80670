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

#endif							/* OUTBOX_EMIT_H */
