/*
 * kafka_log.h: librdkafka's log lines, queued by its log callback in plain C
 * memory (it runs inside librdkafka calls, where ereport must not happen) and
 * handed to PostgreSQL's log by the worker afterwards.
 */
#ifndef OUTBOX_KAFKA_LOG_H
#define OUTBOX_KAFKA_LOG_H

#ifdef OUTBOX_WITH_RDKAFKA
#include <librdkafka/rdkafka.h>

/* The log callback for rd_kafka_conf_set_log_cb(). */
extern void outbox_kafka_log_cb(const rd_kafka_t *k, int level, const char *fac, const char *buf);
#endif

/* Queued log lines, one at a time (NULL when none); *level is syslog's. */
extern const char *outbox_kafka_take_log(int *level);

#endif							/* OUTBOX_KAFKA_LOG_H */
