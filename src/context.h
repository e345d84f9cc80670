/*
 * context.h: the ambient process context (root id, causation id) of the
 * current transaction, stamped on every event emitted under it.
 */
#ifndef OUTBOX_CONTEXT_H
#define OUTBOX_CONTEXT_H

#include "utils/uuid.h"

extern void OutboxContextInit(void);

/* Set for the rest of the transaction (undone if the current subtransaction aborts). */
extern void outbox_context_set(const pg_uuid_t *root_id, const pg_uuid_t *causation_id);

/* The current root and causation, or false when no context is set. */
extern bool outbox_context_get(pg_uuid_t *root_id, pg_uuid_t *causation_id,
							   bool *has_causation);

#endif							/* OUTBOX_CONTEXT_H */
