/*
 * outbox_ext.c: module entry point. _PG_init only hands off to one Init
 * function per subsystem.
 */
#include "postgres.h"

#include "fmgr.h"

#include "context.h"
#include "emit.h"
#include "guc.h"
#include "storage.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	OutboxGucInit();
	OutboxContextInit();
	OutboxStorageInit();
	OutboxEmitInit();
}
