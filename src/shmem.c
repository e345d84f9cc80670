/*
 * shmem.c: the shared-memory segment of outbox_ext, requested and attached
 * through the shmem hooks (chaining the previous ones, as
 * pg_stat_statements does). Exists only when the library is preloaded.
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "shmem.h"

OutboxShared *outbox_shared = NULL;

static LWLock *outbox_lock = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type prev_shmem_request_hook = NULL;
#endif

static void
outbox_shmem_request(void)
{
#if PG_VERSION_NUM >= 150000
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
#endif
	RequestAddinShmemSpace(MAXALIGN(sizeof(OutboxShared)));
	RequestNamedLWLockTranche("outbox_ext", 1);
}

static void
outbox_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	outbox_shared = ShmemInitStruct("outbox_ext", sizeof(OutboxShared), &found);
	if (!found)
		memset(outbox_shared, 0, sizeof(OutboxShared));
	outbox_lock = &(GetNamedLWLockTranche("outbox_ext"))->lock;
	LWLockRelease(AddinShmemInitLock);
}

void
OutboxShmemInit(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
#if PG_VERSION_NUM >= 150000
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = outbox_shmem_request;
#else
	outbox_shmem_request();
#endif
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = outbox_shmem_startup;
}

void
outbox_shmem_lock(bool exclusive)
{
	LWLockAcquire(outbox_lock, exclusive ? LW_EXCLUSIVE : LW_SHARED);
}

void
outbox_shmem_unlock(void)
{
	LWLockRelease(outbox_lock);
}

OutboxDbSlot *
outbox_slot_for(Oid dboid, bool create)
{
	int			i;
	OutboxDbSlot *free_slot = NULL;

	if (outbox_shared == NULL)
		return NULL;
	for (i = 0; i < OUTBOX_MAX_DATABASES; i++)
	{
		OutboxDbSlot *s = &outbox_shared->slots[i];

		if (s->dboid == dboid)
			return s;
		if (s->dboid == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (create && free_slot)
	{
		memset(free_slot, 0, sizeof(OutboxDbSlot));
		free_slot->dboid = dboid;
		strlcpy(free_slot->state, "starting", OUTBOX_STATE_LEN);
		return free_slot;
	}
	return NULL;
}

void
outbox_slot_set_state(Oid dboid, const char *state)
{
	OutboxDbSlot *s;

	if (outbox_shared == NULL)
		return;
	outbox_shmem_lock(true);
	s = outbox_slot_for(dboid, true);
	if (s)
		strlcpy(s->state, state, OUTBOX_STATE_LEN);
	outbox_shmem_unlock();
}

void
outbox_slot_set_error(Oid dboid, const char *error)
{
	OutboxDbSlot *s;

	if (outbox_shared == NULL)
		return;
	outbox_shmem_lock(true);
	s = outbox_slot_for(dboid, true);
	if (s)
	{
		strlcpy(s->last_error, error, OUTBOX_ERROR_LEN);
		s->last_error_at = GetCurrentTimestamp();
	}
	outbox_shmem_unlock();
}

void
outbox_wake_publisher(Oid dboid)
{
	int			i;

	if (outbox_shared == NULL)
		return;
	for (i = 0; i < OUTBOX_MAX_DATABASES; i++)
	{
		volatile OutboxDbSlot *s = &outbox_shared->slots[i];

		if (s->dboid == dboid)
		{
			Latch	   *latch = s->latch;

			if (latch)
				SetLatch(latch);
			return;
		}
	}
}

void
outbox_wake_launcher(void)
{
	Latch	   *latch;

	if (outbox_shared == NULL)
		return;
	latch = outbox_shared->launcher_latch;
	if (latch)
		SetLatch(latch);
}

void
outbox_inbox_changed(Oid dboid)
{
	OutboxDbSlot *s;

	if (outbox_shared == NULL)
		return;
	outbox_shmem_lock(true);
	s = outbox_slot_for(dboid, false);
	if (s)
		s->inbox_generation++;
	outbox_shmem_unlock();
	outbox_wake_publisher(dboid);
}

uint32
outbox_inbox_generation(Oid dboid)
{
	OutboxDbSlot *s;
	uint32		gen = 0;

	if (outbox_shared == NULL)
		return 0;
	outbox_shmem_lock(false);
	s = outbox_slot_for(dboid, false);
	if (s)
		gen = s->inbox_generation;
	outbox_shmem_unlock();
	return gen;
}

OutboxInboxSlot *
outbox_inbox_slot_for(Oid dboid, const char *consumer, int worker_no, bool create)
{
	int			i;
	OutboxInboxSlot *free_slot = NULL;

	if (outbox_shared == NULL)
		return NULL;
	for (i = 0; i < OUTBOX_MAX_INBOX_WORKERS; i++)
	{
		OutboxInboxSlot *s = &outbox_shared->inbox[i];

		if (s->dboid == dboid && s->worker_no == worker_no &&
			strcmp(s->consumer, consumer) == 0)
			return s;
		if (s->dboid == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (create && free_slot)
	{
		memset(free_slot, 0, sizeof(OutboxInboxSlot));
		free_slot->dboid = dboid;
		strlcpy(free_slot->consumer, consumer, NAMEDATALEN);
		free_slot->worker_no = worker_no;
		strlcpy(free_slot->partitions, "[]", OUTBOX_INBOX_PARTS_LEN);
		return free_slot;
	}
	return NULL;
}

int
outbox_inbox_signal_database(Oid dboid, int signo)
{
	int			i,
				n = 0;

	if (outbox_shared == NULL)
		return 0;
	outbox_shmem_lock(false);
	for (i = 0; i < OUTBOX_MAX_INBOX_WORKERS; i++)
	{
		OutboxInboxSlot *s = &outbox_shared->inbox[i];

		if (s->dboid == dboid && s->pid != 0 && kill(s->pid, signo) == 0)
			n++;
	}
	outbox_shmem_unlock();
	return n;
}
