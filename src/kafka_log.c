/*
 * kafka_log.c: a small ring of librdkafka log lines (see kafka_log.h). When
 * full, new lines are dropped rather than blocking librdkafka.
 */
#include "postgres.h"

#define OUTBOX_WITH_RDKAFKA
#include "kafka_log.h"

#define LOG_RING 64
#define LOG_LINE 512

static struct
{
	int			level;
	char		line[LOG_LINE];
}			log_ring[LOG_RING];
static int	log_head = 0,
			log_tail = 0;

void
outbox_kafka_log_cb(const rd_kafka_t *k, int level, const char *fac, const char *buf)
{
	int			next = (log_head + 1) % LOG_RING;

	if (next == log_tail)
		return;
	log_ring[log_head].level = level;
	snprintf(log_ring[log_head].line, LOG_LINE, "%s: %s", fac, buf);
	log_head = next;
}

const char *
outbox_kafka_take_log(int *level)
{
	const char *line;

	if (log_tail == log_head)
		return NULL;
	*level = log_ring[log_tail].level;
	line = log_ring[log_tail].line;
	log_tail = (log_tail + 1) % LOG_RING;
	return line;
}
