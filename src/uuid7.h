/*
 * uuid7.h: time-ordered event ids (RFC 9562 UUID version 7).
 */
#ifndef OUTBOX_UUID7_H
#define OUTBOX_UUID7_H

#include "utils/uuid.h"

extern void outbox_uuid7_generate(pg_uuid_t *out);

#endif							/* OUTBOX_UUID7_H */
