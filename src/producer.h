/*
 * producer.h: the Kafka producer of a publisher worker. librdkafka memory
 * and threads stay behind this interface: callbacks only record results in
 * plain C memory; everything PostgreSQL (palloc, ereport, SPI) happens in
 * the caller after outbox_producer_poll() returns.
 */
#ifndef OUTBOX_PRODUCER_H
#define OUTBOX_PRODUCER_H

/* One message to produce; all strings NUL-terminated UTF-8. */
typedef struct OutboxMessage
{
	const char *topic;
	const char *key;
	int			key_len;
	const char *value;			/* NULL: tombstone */
	int			value_len;
	int			nheaders;
	const char **header_names;
	const char **header_values;
} OutboxMessage;

/* Delivery outcome of a message, by the index given to produce. */
typedef enum OutboxDelivery
{
	DELIVERY_PENDING = 0,
	DELIVERY_OK,
	DELIVERY_TRANSIENT,			/* timed out, broker gone: send again */
	DELIVERY_PERMANENT			/* the broker refused this message */
} OutboxDelivery;

/* Create the producer; false with a message (no secrets) on error. */
extern bool outbox_producer_create(int capacity, char *errbuf, size_t errlen);
extern bool outbox_producer_exists(void);
/* Flush for at most timeout_ms, drop what is left, destroy. */
extern void outbox_producer_destroy(int timeout_ms);

/* A file descriptor that becomes readable when callbacks are due. */
extern int	outbox_producer_fd(void);

/*
 * Queue a message; its outcome is reported for 'index' (0..capacity-1).
 * Returns false with a reason if librdkafka refused it at once.
 */
extern bool outbox_producer_send(int index, const OutboxMessage *msg,
								 char *errbuf, size_t errlen);

/* Serve callbacks; fills the delivery table. */
extern void outbox_producer_poll(void);

/* Outcome of message 'index', and the broker's error text for failures. */
extern OutboxDelivery outbox_producer_result(int index, const char **error);
extern void outbox_producer_reset_results(int n);

/* Messages queued but not yet reported. */
extern int	outbox_producer_outstanding(void);

/*
 * Client-level error since the last call (all brokers down, fatal error...),
 * or NULL; *fatal tells whether the producer must be recreated.
 */
extern const char *outbox_producer_take_error(bool *fatal);

#endif							/* OUTBOX_PRODUCER_H */
