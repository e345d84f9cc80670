/*
 * uuid7.c: UUIDv7 event ids. 48 bits of Unix milliseconds, then 12 bits of
 * sub-millisecond time (RFC 9562 method 3) so ids from one backend increase
 * strictly, then 62 random bits. Ids sort by creation time, which keeps the
 * event_id index append-mostly; they are identity, not publication order
 * (the seq column is that).
 */
#include "postgres.h"

#include <sys/time.h>

#include "miscadmin.h"
#include "port.h"
#include "utils/uuid.h"

#include "uuid7.h"

/* Last (ms << 12 | sub-ms) used by this backend, to stay strictly increasing. */
static uint64 last_stamp = 0;

/*
 * Random bits come from the strong source in blocks: one call per 512 ids
 * instead of one per id (its per-call overhead dominated bulk capture).
 */
#define RANDOM_BLOCK 4096
static unsigned char random_block[RANDOM_BLOCK];
static int	random_used = RANDOM_BLOCK;
static int	random_pid = 0;

static void
take_random(unsigned char *dst)
{
	/* A forked process must not reuse its parent's block. */
	if (random_used + 8 > RANDOM_BLOCK || random_pid != MyProcPid)
	{
		if (!pg_strong_random(random_block, RANDOM_BLOCK))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate random bytes for an event id")));
		random_used = 0;
		random_pid = MyProcPid;
	}
	memcpy(dst, random_block + random_used, 8);
	explicit_bzero(random_block + random_used, 8);
	random_used += 8;
}

void
outbox_uuid7_generate(pg_uuid_t *out)
{
	struct timeval tv;
	uint64		stamp;
	uint64		ms;
	uint32		sub;

	gettimeofday(&tv, NULL);
	ms = (uint64) tv.tv_sec * 1000 + tv.tv_usec / 1000;
	sub = (uint32) ((tv.tv_usec % 1000) * 4096 / 1000);
	stamp = (ms << 12) | sub;
	if (stamp <= last_stamp)
		stamp = last_stamp + 1;
	last_stamp = stamp;
	ms = stamp >> 12;
	sub = stamp & 0xFFF;

	take_random(out->data + 8);

	out->data[0] = (unsigned char) (ms >> 40);
	out->data[1] = (unsigned char) (ms >> 32);
	out->data[2] = (unsigned char) (ms >> 24);
	out->data[3] = (unsigned char) (ms >> 16);
	out->data[4] = (unsigned char) (ms >> 8);
	out->data[5] = (unsigned char) ms;
	out->data[6] = (unsigned char) (0x70 | (sub >> 8));	/* version 7 */
	out->data[7] = (unsigned char) sub;
	out->data[8] = (out->data[8] & 0x3F) | 0x80;	/* RFC 9562 variant */
}
