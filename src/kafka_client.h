/*
 * kafka_client.h: what the producer (publisher) and the consumers (inbox)
 * share about librdkafka clients: creating one safely inside a PostgreSQL
 * process, the pipe that wakes WaitLatchOrSocket, and librdkafka's log
 * lines, queued by its log callback in plain C memory (it runs inside
 * librdkafka calls, where ereport must not happen) and handed to
 * PostgreSQL's log by the worker afterwards.
 */
#ifndef OUTBOX_KAFKA_CLIENT_H
#define OUTBOX_KAFKA_CLIENT_H

#ifdef OUTBOX_WITH_RDKAFKA
#include <librdkafka/rdkafka.h>

/*
 * rd_kafka_new() with every signal blocked (librdkafka's threads inherit the
 * mask and must never run PostgreSQL's handlers), logs routed to
 * outbox_kafka_log_cb through the main queue. On failure conf is destroyed
 * and errbuf says why.
 */
extern rd_kafka_t *outbox_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf,
									char *errbuf, size_t errlen);

/* A non-blocking pipe that librdkafka writes to when queue q has events. */
extern bool outbox_kafka_wake_pipe(rd_kafka_queue_t *q, int fds[2], char *errbuf, size_t errlen);

/* Empty the wake pipe (before serving the queue). */
extern void outbox_kafka_drain_pipe(int fd);

/* The log callback outbox_kafka_new() installs. */
extern void outbox_kafka_log_cb(const rd_kafka_t *k, int level, const char *fac, const char *buf);
#endif

/* Queued log lines, one at a time (NULL when none); *level is syslog's. */
extern const char *outbox_kafka_take_log(int *level);

#endif							/* OUTBOX_KAFKA_CLIENT_H */
