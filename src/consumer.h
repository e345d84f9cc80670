/*
 * consumer.h: the Kafka consumer of an inbox worker. As with the producer,
 * librdkafka stays behind this interface; messages are copied out into
 * palloc'd records. Partition assignment is eager and manual: on assignment
 * the worker's hook supplies the start offsets (read from the database), on
 * revocation its hook forgets what it holds for those partitions.
 */
#ifndef OUTBOX_CONSUMER_H
#define OUTBOX_CONSUMER_H

/* One consumed message; strings NUL-terminated, len -1 for a null key/value. */
typedef struct InboxRecord
{
	char	   *topic;
	int32		partition;
	int64		offset;
	char	   *key;
	int			key_len;
	char	   *value;
	int			value_len;
	int			nheaders;
	char	  **header_names;
	char	  **header_values;	/* NULL for a null header value */
	int		   *header_lens;
} InboxRecord;

/* A topic-partition, with an offset where one is meant. */
typedef struct InboxPartition
{
	const char *topic;
	int32		partition;
	int64		offset;
} InboxPartition;

/*
 * Assignment hook: set parts[i].offset for each assigned partition (the next
 * offset to consume, or INBOX_OFFSET_BEGINNING / INBOX_OFFSET_END); false
 * if it could not, in which case nothing is assigned and the consumer must
 * be recreated. Must not throw.
 */
typedef bool (*InboxAssignHook) (InboxPartition *parts, int n);
typedef void (*InboxRevokeHook) (const InboxPartition *parts, int n);

#define INBOX_OFFSET_BEGINNING (-2)
#define INBOX_OFFSET_END (-1)

/* props: n name/value pairs (the subscription's own); false with a message on error. */
extern bool inbox_consumer_create(const char *group, char **topics, int ntopics,
								  const char **prop_names, const char **prop_values, int nprops,
								  InboxAssignHook on_assign, InboxRevokeHook on_revoke,
								  char *errbuf, size_t errlen);
extern bool inbox_consumer_exists(void);
/* Leave the group (bounded) and destroy. */
extern void inbox_consumer_close(void);
/* The assignment failed (see InboxAssignHook): the caller should recreate the consumer. */
extern bool inbox_consumer_broken(void);

/* Readable when messages or callbacks are due. */
extern int	inbox_consumer_fd(void);

/* Up to max messages without waiting (serving callbacks); records are palloc'd in the current context. */
extern int	inbox_consumer_poll(InboxRecord *out, int max);

extern void inbox_consumer_pause(const char *topic, int32 partition, bool pause);

/* Informational Kafka commit of next offsets, asynchronous. */
extern void inbox_consumer_commit(const InboxPartition *parts, int n);

/* High watermark as last seen by the fetcher, or -1. */
extern int64 inbox_consumer_high_watermark(const char *topic, int32 partition);

/* Client-level error since the last call, or NULL. */
extern const char *inbox_consumer_take_error(bool *fatal);

#endif							/* OUTBOX_CONSUMER_H */
