/*
 * shmem.h: state shared between the launcher, the publisher workers and
 * backends: one slot per served database (worker pid, latch, state, last
 * error), so commits can wake their publisher and outbox.status can show it;
 * and one slot per running inbox worker (consumer, state, live partitions)
 * for outbox.subscriptions.
 */
#ifndef OUTBOX_SHMEM_H
#define OUTBOX_SHMEM_H

#include "datatype/timestamp.h"
#include "storage/latch.h"

#define OUTBOX_MAX_DATABASES 64
#define OUTBOX_STATE_LEN 32
#define OUTBOX_ERROR_LEN 512

typedef struct OutboxDbSlot
{
	Oid			dboid;			/* InvalidOid: free */
	pid_t		pid;			/* publisher worker, 0 when none runs */
	Latch	   *latch;			/* its latch, set on commit of emitting txns */
	char		state[OUTBOX_STATE_LEN];
	char		last_error[OUTBOX_ERROR_LEN];
	TimestampTz last_error_at;
	TimestampTz suspended_until;	/* DROP DATABASE in progress: do not restart */
	uint32		inbox_generation;	/* bumped when a subscription commits a change */
} OutboxDbSlot;

#define OUTBOX_MAX_INBOX_WORKERS 64
#define OUTBOX_INBOX_PARTS_LEN 4096

/* One running inbox worker: worker 'worker_no' of subscription 'consumer'. */
typedef struct OutboxInboxSlot
{
	Oid			dboid;			/* InvalidOid: free */
	char		consumer[NAMEDATALEN];
	int			worker_no;
	pid_t		pid;
	Latch	   *latch;
	char		state[OUTBOX_STATE_LEN];
	char		last_error[OUTBOX_ERROR_LEN];
	TimestampTz last_error_at;
	uint64		processed;		/* handler calls committed by this process */
	char		partitions[OUTBOX_INBOX_PARTS_LEN];	/* JSON array, live */
} OutboxInboxSlot;

typedef struct OutboxShared
{
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	OutboxDbSlot slots[OUTBOX_MAX_DATABASES];
	OutboxInboxSlot inbox[OUTBOX_MAX_INBOX_WORKERS];
} OutboxShared;

extern OutboxShared *outbox_shared;	/* NULL unless preloaded */

extern void OutboxShmemInit(void);

/* Lock protecting the slots' text fields and slot allocation. */
extern void outbox_shmem_lock(bool exclusive);
extern void outbox_shmem_unlock(void);

/* The slot of a database (allocating one if asked); caller holds the lock exclusively to allocate. */
extern OutboxDbSlot *outbox_slot_for(Oid dboid, bool create);

/* Record a worker state / error for a database (takes the lock). */
extern void outbox_slot_set_state(Oid dboid, const char *state);
extern void outbox_slot_set_error(Oid dboid, const char *error);

/* Wake the publisher of this database (no lock: a stale latch only costs a spurious wakeup). */
extern void outbox_wake_publisher(Oid dboid);
extern void outbox_wake_launcher(void);

/* Subscriptions of dboid changed: bump its generation and wake its publisher (the inbox supervisor). */
extern void outbox_inbox_changed(Oid dboid);
extern uint32 outbox_inbox_generation(Oid dboid);

/*
 * The slot of inbox worker (dboid, consumer, worker_no), or NULL; caller
 * holds the lock. With create, a free slot is taken if none matches.
 */
extern OutboxInboxSlot *outbox_inbox_slot_for(Oid dboid, const char *consumer, int worker_no,
											  bool create);

/* Signal every inbox worker of dboid; returns how many were signalled. */
extern int	outbox_inbox_signal_database(Oid dboid, int signo);

#endif							/* OUTBOX_SHMEM_H */
