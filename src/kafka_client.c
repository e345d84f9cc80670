/*
 * kafka_client.c: see kafka_client.h. The log ring drops new lines when full
 * rather than blocking librdkafka.
 */
#include "postgres.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#define OUTBOX_WITH_RDKAFKA
#include "kafka_client.h"

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

rd_kafka_t *
outbox_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errbuf, size_t errlen)
{
	sigset_t	all,
				old;
	char		rkerr[512];
	rd_kafka_t *rk;

	rd_kafka_conf_set_log_cb(conf, outbox_kafka_log_cb);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rk = rd_kafka_new(type, conf, rkerr, sizeof(rkerr));
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		snprintf(errbuf, errlen, "could not create the Kafka %s: %s",
				 type == RD_KAFKA_PRODUCER ? "producer" : "consumer", rkerr);
		return NULL;
	}
	rd_kafka_set_log_queue(rk, NULL);	/* logs go to the main queue the worker polls */
	return rk;
}

bool
outbox_kafka_wake_pipe(rd_kafka_queue_t *q, int fds[2], char *errbuf, size_t errlen)
{
	int			i;

	if (pipe(fds) != 0)
	{
		snprintf(errbuf, errlen, "could not create a pipe: %m");
		fds[0] = fds[1] = -1;
		return false;
	}
	for (i = 0; i < 2; i++)
	{
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
		fcntl(fds[i], F_SETFD, FD_CLOEXEC);
	}
	rd_kafka_queue_io_event_enable(q, fds[1], "1", 1);
	return true;
}

void
outbox_kafka_drain_pipe(int fd)
{
	char		buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}
