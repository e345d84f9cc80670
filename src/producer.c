/*
 * producer.c: librdkafka behind a small C interface (see producer.h).
 *
 * The rd_kafka_t is created in the worker only, with every signal blocked
 * so librdkafka's threads never run PostgreSQL's handlers. Delivery reports,
 * errors and logs arrive through callbacks that rd_kafka_poll() runs on the
 * worker's own thread (log.queue=true forwards logs there too); they copy
 * into plain C memory and never palloc, ereport or longjmp. A pipe that
 * librdkafka writes to when events are due lets the worker sleep in
 * WaitLatchOrSocket.
 */
#include "postgres.h"

#include <unistd.h>

#define OUTBOX_WITH_RDKAFKA
#include "kafka_config.h"
#include "kafka_client.h"
#include "producer.h"

static rd_kafka_t *rk = NULL;
static int	wake_pipe[2] = {-1, -1};
static int	capacity = 0;
static OutboxDelivery *results = NULL;
static rd_kafka_resp_err_t *result_errs = NULL;
static int	outstanding = 0;

/*
 * Topic handles by name, so that a message does not look its topic up by
 * name in librdkafka (a lock and a search per message). Few topics are
 * live at once; beyond TOPIC_CACHE the name is passed as before.
 */
#define TOPIC_CACHE 64
static struct
{
	char	   *name;
	rd_kafka_topic_t *rkt;
}			topics[TOPIC_CACHE];
static int	ntopics = 0;
static int	last_topic = 0;

static char client_error[512];
static bool client_error_set = false;
static bool client_error_fatal = false;

/* Errors after which sending the same message again can succeed. */
static bool
is_transient(rd_kafka_resp_err_t err)
{
	switch (err)
	{
		case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
		case RD_KAFKA_RESP_ERR__TIMED_OUT:
		case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
		case RD_KAFKA_RESP_ERR__TRANSPORT:
		case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
		case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
		case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
		case RD_KAFKA_RESP_ERR__FATAL:
		case RD_KAFKA_RESP_ERR__DESTROY:
		case RD_KAFKA_RESP_ERR__QUEUE_FULL:
		case RD_KAFKA_RESP_ERR__RESOLVE:
		case RD_KAFKA_RESP_ERR__FAIL:
		case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
		case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
		case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
		case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
		case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
		case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
		case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
		case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
		case RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID:
		case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
		case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
		case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
		case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
			return true;
		default:
			return false;
	}
}

static void
on_delivery(rd_kafka_t *k, const rd_kafka_message_t *m, void *opaque)
{
	intptr_t	idx = (intptr_t) m->_private;

	if (idx < 0 || idx >= capacity || results[idx] != DELIVERY_PENDING)
		return;					/* a report for a message we no longer track */
	result_errs[idx] = m->err;
	if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		results[idx] = DELIVERY_OK;
	else if (is_transient(m->err))
		results[idx] = DELIVERY_TRANSIENT;
	else
		results[idx] = DELIVERY_PERMANENT;
	outstanding--;
}

static void
on_error(rd_kafka_t *k, int err, const char *reason, void *opaque)
{
	snprintf(client_error, sizeof(client_error), "%s: %s",
			 rd_kafka_err2name(err), reason);
	client_error_set = true;
	if (err == RD_KAFKA_RESP_ERR__FATAL)
	{
		char		why[256];

		rd_kafka_fatal_error(k, why, sizeof(why));
		snprintf(client_error, sizeof(client_error), "fatal producer error: %s", why);
		client_error_fatal = true;
	}
}

bool
outbox_producer_exists(void)
{
	return rk != NULL;
}

bool
outbox_producer_create(int cap, char *errbuf, size_t errlen)
{
	rd_kafka_conf_t *conf;
	rd_kafka_queue_t *mainq;
	bool		ok;

	Assert(rk == NULL);
	conf = outbox_kafka_build_conf(false, errbuf, errlen);
	if (conf == NULL)
		return false;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rk = outbox_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
	if (rk == NULL)
		return false;
	mainq = rd_kafka_queue_get_main(rk);
	ok = outbox_kafka_wake_pipe(mainq, wake_pipe, errbuf, errlen);
	rd_kafka_queue_destroy(mainq);
	if (!ok)
	{
		rd_kafka_destroy(rk);
		rk = NULL;
		return false;
	}

	capacity = cap;
	results = calloc(cap, sizeof(OutboxDelivery));
	result_errs = calloc(cap, sizeof(rd_kafka_resp_err_t));
	if (results == NULL || result_errs == NULL)
	{
		snprintf(errbuf, errlen, "out of memory");
		outbox_producer_destroy(0);
		return false;
	}
	outstanding = 0;
	client_error_set = client_error_fatal = false;
	return true;
}

void
outbox_producer_destroy(int timeout_ms)
{
	if (rk != NULL)
	{
		/* Bounded: a dead broker must not hold up shutdown. */
		rd_kafka_flush(rk, timeout_ms);
		rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
		rd_kafka_poll(rk, 0);
		while (ntopics > 0)
		{
			ntopics--;
			rd_kafka_topic_destroy(topics[ntopics].rkt);
			free(topics[ntopics].name);
		}
		last_topic = 0;
		rd_kafka_destroy(rk);
		rk = NULL;
	}
	if (wake_pipe[0] >= 0)
		close(wake_pipe[0]);
	if (wake_pipe[1] >= 0)
		close(wake_pipe[1]);
	wake_pipe[0] = wake_pipe[1] = -1;
	free(results);
	free(result_errs);
	results = NULL;
	result_errs = NULL;
	capacity = 0;
	outstanding = 0;
}

int
outbox_producer_fd(void)
{
	return wake_pipe[0];
}

/* The cached handle of a topic, or NULL (then producev takes the name). */
static rd_kafka_topic_t *
topic_handle(const char *name)
{
	int			i;
	rd_kafka_topic_t *rkt;
	char	   *copy;

	if (last_topic < ntopics && strcmp(topics[last_topic].name, name) == 0)
		return topics[last_topic].rkt;
	for (i = 0; i < ntopics; i++)
		if (strcmp(topics[i].name, name) == 0)
			return topics[last_topic = i].rkt;
	if (ntopics == TOPIC_CACHE)
		return NULL;
	copy = strdup(name);
	if (copy == NULL)
		return NULL;
	rkt = rd_kafka_topic_new(rk, name, NULL);
	if (rkt == NULL)
	{
		free(copy);
		return NULL;			/* producev reports the error for this message */
	}
	topics[ntopics].name = copy;
	topics[ntopics].rkt = rkt;
	last_topic = ntopics++;
	return rkt;
}

bool
outbox_producer_send(int index, const OutboxMessage *msg, char *errbuf, size_t errlen)
{
	rd_kafka_headers_t *hdrs;
	rd_kafka_resp_err_t err;
	rd_kafka_topic_t *rkt;
	int			i;

	if (index < 0 || index >= capacity)
	{
		snprintf(errbuf, errlen, "message %d is beyond the producer's capacity of %d", index, capacity);
		return false;
	}
	hdrs = rd_kafka_headers_new(msg->nheaders);
	for (i = 0; i < msg->nheaders; i++)
		rd_kafka_header_add(hdrs, msg->header_names[i], -1,
							msg->header_values[i], -1);

	results[index] = DELIVERY_PENDING;
	rkt = topic_handle(msg->topic);
#define MESSAGE_ARGS \
	RD_KAFKA_V_KEY(msg->key, msg->key_len), \
	RD_KAFKA_V_VALUE((void *) msg->value, msg->value ? msg->value_len : 0), \
	RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), \
	RD_KAFKA_V_HEADERS(hdrs), \
	RD_KAFKA_V_OPAQUE((void *) (intptr_t) index), \
	RD_KAFKA_V_END
	if (rkt)
		err = rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), MESSAGE_ARGS);
	else
		err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(msg->topic), MESSAGE_ARGS);
#undef MESSAGE_ARGS
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		rd_kafka_headers_destroy(hdrs);
		results[index] = is_transient(err) ? DELIVERY_TRANSIENT : DELIVERY_PERMANENT;
		result_errs[index] = err;
		snprintf(errbuf, errlen, "%s", rd_kafka_err2str(err));
		return false;
	}
	outstanding++;
	return true;
}

void
outbox_producer_poll(void)
{
	if (rk == NULL)
		return;
	outbox_kafka_drain_pipe(wake_pipe[0]);
	while (rd_kafka_poll(rk, 0) > 0)
		;
}

OutboxDelivery
outbox_producer_result(int index, const char **error)
{
	if (error)
		*error = rd_kafka_err2str(result_errs[index]);
	return results[index];
}

void
outbox_producer_reset_results(int n)
{
	memset(results, 0, sizeof(OutboxDelivery) * Min(n, capacity));
}

int
outbox_producer_outstanding(void)
{
	return outstanding;
}

const char *
outbox_producer_take_error(bool *fatal)
{
	if (!client_error_set)
		return NULL;
	client_error_set = false;
	*fatal = client_error_fatal;
	return client_error;
}
