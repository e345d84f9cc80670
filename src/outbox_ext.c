/*
 * outbox_ext.c: module entry point. _PG_init only hands off to one Init
 * function per subsystem.
 */
#include "postgres.h"

#include "fmgr.h"

#include "context.h"
#include "guc.h"
#include "inbox.h"
#include "launcher.h"
#include "shmem.h"
#include "storage.h"
#include "wake.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	OutboxGucInit();
	OutboxContextInit();
	OutboxStorageInit();
	OutboxWakeInit();
	InboxSubscriptionInit();
	OutboxShmemInit();
	OutboxLauncherInit();
}
