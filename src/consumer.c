/*
 * consumer.c: librdkafka's high-level consumer behind consumer.h.
 *
 * Created through outbox_kafka_new() (signals blocked); callbacks run on the worker's thread inside
 * inbox_consumer_poll() and never longjmp: the assignment hook catches its
 * own errors. The main queue (errors, logs, rebalances) is forwarded to the
 * consumer queue, whose io-event pipe lets the worker sleep in
 * WaitLatchOrSocket.
 */
#include "postgres.h"

#include <unistd.h>

#define OUTBOX_WITH_RDKAFKA
#include "consumer.h"
#include "kafka_config.h"
#include "kafka_client.h"

static rd_kafka_t *rk = NULL;
static rd_kafka_queue_t *cq = NULL;
static int	wake_pipe[2] = {-1, -1};
static InboxAssignHook assign_hook = NULL;
static InboxRevokeHook revoke_hook = NULL;
static bool broken = false;
static uint32 revocations = 0;	/* eager protocol: each revocation takes everything */

static char client_error[512];
static bool client_error_set = false;
static bool client_error_fatal = false;

static void
set_error(const char *msg, bool fatal)
{
	strlcpy(client_error, msg, sizeof(client_error));
	client_error_set = true;
	client_error_fatal |= fatal;
}

static void
on_error(rd_kafka_t *k, int err, const char *reason, void *opaque)
{
	char		buf[512];

	snprintf(buf, sizeof(buf), "%s: %s", rd_kafka_err2name(err), reason);
	set_error(buf, err == RD_KAFKA_RESP_ERR__FATAL);
}

static InboxPartition *
to_parts(rd_kafka_topic_partition_list_t *list)
{
	InboxPartition *parts = calloc(Max(list->cnt, 1), sizeof(InboxPartition));
	int			i;

	if (parts == NULL)
		return NULL;
	for (i = 0; i < list->cnt; i++)
	{
		parts[i].topic = list->elems[i].topic;
		parts[i].partition = list->elems[i].partition;
		parts[i].offset = list->elems[i].offset;
	}
	return parts;
}

/* Eager protocol: revoke everything we had, then assign at the database's offsets. */
static void
on_rebalance(rd_kafka_t *k, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *list, void *opaque)
{
	InboxPartition *parts = to_parts(list);	/* malloc: no palloc error may longjmp from here */
	int			i;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		if (parts == NULL || !assign_hook(parts, list->cnt))
		{
			broken = true;
			rd_kafka_assign(k, NULL);
		}
		else
		{
			for (i = 0; i < list->cnt; i++)
				list->elems[i].offset =
					parts[i].offset == INBOX_OFFSET_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING :
					parts[i].offset == INBOX_OFFSET_END ? RD_KAFKA_OFFSET_END : parts[i].offset;
			rd_kafka_assign(k, list);
		}
	}
	else
	{
		revocations++;
		if (parts == NULL)
			broken = true;		/* cannot tell the worker what it lost: start over */
		else
			revoke_hook(parts, list->cnt);
		rd_kafka_assign(k, NULL);
	}
	free(parts);
}

bool
inbox_consumer_create(const char *group, char **topics, int ntopics,
					  const char **prop_names, const char **prop_values, int nprops,
					  InboxAssignHook on_assign, InboxRevokeHook on_revoke,
					  char *errbuf, size_t errlen)
{
	rd_kafka_conf_t *conf;
	rd_kafka_topic_partition_list_t *subs;
	rd_kafka_resp_err_t err;
	char		rkerr[512];
	int			i;

	Assert(rk == NULL);
	conf = outbox_kafka_build_conf(true, errbuf, errlen);
	if (conf == NULL)
		return false;
	for (i = 0; i < nprops; i++)
		if (!outbox_kafka_set(conf, prop_names[i], prop_values[i], "subscription option \"kafka\"",
							  errbuf, errlen))
		{
			rd_kafka_conf_destroy(conf);
			return false;
		}
	if (rd_kafka_conf_set(conf, "group.id", group, rkerr, sizeof(rkerr)) != RD_KAFKA_CONF_OK)
	{
		snprintf(errbuf, errlen, "librdkafka refused group.id: %s", rkerr);
		rd_kafka_conf_destroy(conf);
		return false;
	}
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	assign_hook = on_assign;
	revoke_hook = on_revoke;
	broken = false;
	client_error_set = client_error_fatal = false;

	rk = outbox_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errlen);
	if (rk == NULL)
		return false;
	rd_kafka_poll_set_consumer(rk);		/* errors, logs and rebalances through one queue */
	cq = rd_kafka_queue_get_consumer(rk);
	if (!outbox_kafka_wake_pipe(cq, wake_pipe, errbuf, errlen))
	{
		inbox_consumer_close();
		return false;
	}

	subs = rd_kafka_topic_partition_list_new(ntopics);
	for (i = 0; i < ntopics; i++)
		rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(rk, subs);
	rd_kafka_topic_partition_list_destroy(subs);
	if (err)
	{
		snprintf(errbuf, errlen, "could not subscribe: %s", rd_kafka_err2str(err));
		inbox_consumer_close();
		return false;
	}
	return true;
}

bool
inbox_consumer_exists(void)
{
	return rk != NULL;
}

bool
inbox_consumer_broken(void)
{
	return broken;
}

void
inbox_consumer_close(void)
{
	if (rk != NULL)
	{
		/* Leaves the group (its revocation runs our hook), then destroys. */
		rd_kafka_consumer_close(rk);
		if (cq)
			rd_kafka_queue_destroy(cq);
		cq = NULL;
		rd_kafka_destroy(rk);
		rk = NULL;
	}
	if (wake_pipe[0] >= 0)
		close(wake_pipe[0]);
	if (wake_pipe[1] >= 0)
		close(wake_pipe[1]);
	wake_pipe[0] = wake_pipe[1] = -1;
	broken = false;
}

int
inbox_consumer_fd(void)
{
	return wake_pipe[0];
}

static char *
copy_bytes(const void *p, size_t len)
{
	char	   *s = palloc(len + 1);

	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static void
copy_record(InboxRecord *r, rd_kafka_message_t *m)
{
	rd_kafka_headers_t *hdrs = NULL;

	r->topic = pstrdup(rd_kafka_topic_name(m->rkt));
	r->partition = m->partition;
	r->offset = m->offset;
	r->key_len = m->key ? (int) m->key_len : -1;
	r->key = m->key ? copy_bytes(m->key, m->key_len) : NULL;
	r->value_len = m->payload ? (int) m->len : -1;
	r->value = m->payload ? copy_bytes(m->payload, m->len) : NULL;
	r->nheaders = 0;
	r->header_names = NULL;
	r->header_values = NULL;
	r->header_lens = NULL;
	if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs)
	{
		size_t		n = rd_kafka_header_cnt(hdrs);
		size_t		i;
		const char *name;
		const void *val;
		size_t		len;

		r->header_names = palloc(sizeof(char *) * Max(n, 1));
		r->header_values = palloc(sizeof(char *) * Max(n, 1));
		r->header_lens = palloc(sizeof(int) * Max(n, 1));
		for (i = 0; i < n; i++)
		{
			if (rd_kafka_header_get_all(hdrs, i, &name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
				break;
			r->header_names[i] = pstrdup(name);
			r->header_values[i] = val ? copy_bytes(val, len) : NULL;
			r->header_lens[i] = val ? (int) len : -1;
			r->nheaders++;
		}
	}
}

int
inbox_consumer_poll(InboxRecord *out, int max)
{
	int			n = 0;

	if (rk == NULL)
		return 0;
	outbox_kafka_drain_pipe(wake_pipe[0]);
	while (n < max && !broken)
	{
		uint32		before = revocations;
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 0);

		/*
		 * A revocation during this poll: what was collected belongs to
		 * partitions we no longer own. Their next owner starts from the
		 * database's offsets, which these messages have not moved.
		 */
		if (revocations != before)
			n = 0;
		if (m == NULL)
			break;
		if (m->err)
		{
			char		msg[512];

			snprintf(msg, sizeof(msg), "%s%s%s: %s",
					 m->rkt ? "topic " : "", m->rkt ? rd_kafka_topic_name(m->rkt) : "",
					 m->rkt ? "" : "consumer", rd_kafka_message_errstr(m));
			set_error(msg, m->err == RD_KAFKA_RESP_ERR__FATAL);
		}
		else
			copy_record(&out[n++], m);
		rd_kafka_message_destroy(m);
	}
	return n;
}

void
inbox_consumer_pause(const char *topic, int32 partition, bool pause)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);

	rd_kafka_topic_partition_list_add(l, topic, partition);
	if (pause)
		rd_kafka_pause_partitions(rk, l);
	else
		rd_kafka_resume_partitions(rk, l);
	rd_kafka_topic_partition_list_destroy(l);
}

void
inbox_consumer_commit(const InboxPartition *parts, int n)
{
	rd_kafka_topic_partition_list_t *l;
	int			i;

	if (rk == NULL || n == 0)
		return;
	l = rd_kafka_topic_partition_list_new(n);
	for (i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(l, parts[i].topic, parts[i].partition)->offset = parts[i].offset;
	(void) rd_kafka_commit(rk, l, 1);
	rd_kafka_topic_partition_list_destroy(l);
}

int64
inbox_consumer_high_watermark(const char *topic, int32 partition)
{
	int64_t		lo,
				hi;

	if (rk == NULL ||
		rd_kafka_get_watermark_offsets(rk, topic, partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return -1;
	return hi;
}

const char *
inbox_consumer_take_error(bool *fatal)
{
	if (!client_error_set)
		return NULL;
	client_error_set = false;
	*fatal = client_error_fatal;
	client_error_fatal = false;
	return client_error;
}
