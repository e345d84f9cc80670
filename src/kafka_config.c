/*
 * kafka_config.c: producer and consumer properties. The defaults carry the
 * delivery guarantees (idempotence, acks=all; offsets kept in the database,
 * never auto-committed) and are not overridable; users add
 * properties through outbox.kafka_config ("k=v;k=v") and, for secrets,
 * outbox.kafka_config_file, which must not be group- or world-readable.
 * Error messages name properties, never their values.
 */
#include "postgres.h"

#include <sys/stat.h>

#define OUTBOX_WITH_RDKAFKA
#include "guc.h"
#include "kafka_config.h"
#include "storage/fd.h"

/* Properties whose change would break ordering, durability or safety. */
static const char *const forbidden[] = {
	"enable.idempotence", "acks", "request.required.acks",
	"max.in.flight.requests.per.connection", "max.in.flight",
	"enable.gapless.guarantee", "bootstrap.servers", "metadata.broker.list",
	"plugin.library.paths", "interceptors", "transactional.id",
	"log.queue", "dr_cb", "dr_msg_cb", "error_cb", "log_cb",
	"queue.buffering.backpressure.threshold",
	/* The inbox stores offsets in the database and assigns partitions itself. */
	"group.id", "enable.auto.commit", "auto.commit.enable", "enable.auto.offset.store",
	"partition.assignment.strategy", "group.protocol", "rebalance_cb", "offset_commit_cb",
	"consume_cb", "enable.partition.eof", NULL
};

/* Defaults: a lone event leaves in about a millisecond, a backlog in large batches. */
static const char *const producer_defaults[][2] = {
	{"enable.idempotence", "true"},
	{"acks", "all"},
	{"max.in.flight.requests.per.connection", "5"},
	{"linger.ms", "1"},
	{"batch.num.messages", "10000"},
	{"batch.size", "1000000"},
	{"compression.codec", "none"},
	{"socket.nagle.disable", "true"},
	{"queue.buffering.max.kbytes", "65536"},
	{"queue.buffering.max.messages", "1000000"},
	/* Never give up on a message: librdkafka retries transient errors in order, so
	 * an outage can not reorder a key (a finite timeout could leave a gap). */
	{"message.timeout.ms", "0"},
	{"log.queue", "true"},
	{"client.id", "outbox_ext"},
	{NULL, NULL}
};

/* The inbox: offsets live in the database; Kafka's are informational. */
static const char *const consumer_defaults[][2] = {
	{"enable.auto.commit", "false"},
	{"enable.auto.offset.store", "false"},
	{"enable.partition.eof", "false"},
	{"isolation.level", "read_committed"},
	{"socket.nagle.disable", "true"},
	{"queued.max.messages.kbytes", "16384"},
	{"log.queue", "true"},
	{"client.id", "outbox_ext_inbox"},
	{NULL, NULL}
};

static bool
is_forbidden(const char *name)
{
	const char *const *f;

	for (f = forbidden; *f; f++)
		if (pg_strcasecmp(*f, name) == 0)
			return true;
	return false;
}

static char *
trim(char *s)
{
	char	   *end;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/*
 * Split one "key=value" item; returns an error or NULL. Empty items are
 * skipped (*name = NULL).
 */
static const char *
split_item(char *item, char **name, char **value)
{
	char	   *eq;

	item = trim(item);
	*name = NULL;
	if (*item == '\0' || *item == '#')
		return NULL;
	eq = strchr(item, '=');
	if (eq == NULL)
		return "an item has no '=' between property name and value";
	*eq = '\0';
	*name = trim(item);
	*value = trim(eq + 1);
	if (**name == '\0')
		return "an item has an empty property name";
	if (is_forbidden(*name))
		return psprintf("property \"%s\" cannot be set: outbox_ext sets it to keep its delivery guarantees", *name);
	return NULL;
}

const char *
outbox_kafka_config_syntax_error(const char *text)
{
	char	   *copy,
			   *item,
			   *save = NULL;

	if (text == NULL || *text == '\0')
		return NULL;
	copy = strdup(text);		/* GUC hooks may run outside any memory context */
	if (copy == NULL)
		return "out of memory";
	for (item = strtok_r(copy, ";", &save); item; item = strtok_r(NULL, ";", &save))
	{
		char	   *name,
				   *value;
		const char *err = split_item(item, &name, &value);

		if (err)
		{
			free(copy);
			return err;
		}
	}
	free(copy);
	return NULL;
}

static bool
set_prop(rd_kafka_conf_t *conf, const char *name, const char *value, const char *origin,
		 char *errbuf, size_t errlen)
{
	char		rkerr[512];

	if (rd_kafka_conf_set(conf, name, value, rkerr, sizeof(rkerr)) != RD_KAFKA_CONF_OK)
	{
		snprintf(errbuf, errlen, "%s: librdkafka refused the value of property \"%s\"", origin, name);
		return false;
	}
	return true;
}

static bool
apply_items(rd_kafka_conf_t *conf, char *text, const char *sep, const char *origin,
			char *errbuf, size_t errlen)
{
	char	   *item,
			   *save = NULL;

	for (item = strtok_r(text, sep, &save); item; item = strtok_r(NULL, sep, &save))
	{
		char	   *name,
				   *value;
		const char *err = split_item(item, &name, &value);

		if (err)
		{
			snprintf(errbuf, errlen, "%s: %s", origin, err);
			return false;
		}
		if (name && !set_prop(conf, name, value, origin, errbuf, errlen))
			return false;
	}
	return true;
}

static char *
read_secret_file(const char *path, char *errbuf, size_t errlen)
{
	struct stat st;
	FILE	   *f;
	char	   *buf;
	size_t		n;

	if (stat(path, &st) != 0)
	{
		snprintf(errbuf, errlen, "outbox.kafka_config_file: cannot stat \"%s\": %m", path);
		return NULL;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
	{
		snprintf(errbuf, errlen,
				 "outbox.kafka_config_file \"%s\" is readable by group or others: chmod 600 it", path);
		return NULL;
	}
	if (st.st_size > 1024 * 1024)
	{
		snprintf(errbuf, errlen, "outbox.kafka_config_file \"%s\" is larger than 1 MB", path);
		return NULL;
	}
	f = AllocateFile(path, "r");
	if (f == NULL)
	{
		snprintf(errbuf, errlen, "outbox.kafka_config_file: cannot open \"%s\": %m", path);
		return NULL;
	}
	buf = palloc(st.st_size + 1);
	n = fread(buf, 1, st.st_size, f);
	buf[n] = '\0';
	FreeFile(f);
	return buf;
}

rd_kafka_conf_t *
outbox_kafka_build_conf(bool consumer, char *errbuf, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char *const (*defaults)[2] = consumer ? consumer_defaults : producer_defaults;
	int			i;

	for (i = 0; defaults[i][0]; i++)
		if (!set_prop(conf, defaults[i][0], defaults[i][1], "defaults", errbuf, errlen))
			goto fail;
	if (!set_prop(conf, "bootstrap.servers", outbox_brokers, "outbox.brokers", errbuf, errlen))
		goto fail;
	if (outbox_kafka_config && *outbox_kafka_config &&
		!apply_items(conf, pstrdup(outbox_kafka_config), ";", "outbox.kafka_config", errbuf, errlen))
		goto fail;
	if (outbox_kafka_config_file && *outbox_kafka_config_file)
	{
		char	   *text = read_secret_file(outbox_kafka_config_file, errbuf, errlen);

		if (text == NULL ||
			!apply_items(conf, text, "\n", "outbox.kafka_config_file", errbuf, errlen))
			goto fail;
	}
	return conf;

fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

const char *
outbox_kafka_consumer_property_error(const char *name, const char *value)
{
	rd_kafka_conf_t *conf;
	char		rkerr[512];
	const char *err = NULL;

	if (is_forbidden(name))
		return psprintf("property \"%s\" cannot be set: outbox_ext sets it to keep its delivery guarantees", name);
	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, name, value, rkerr, sizeof(rkerr)) != RD_KAFKA_CONF_OK)
		err = psprintf("librdkafka refused property \"%s\": %s", name, rkerr);
	rd_kafka_conf_destroy(conf);
	return err;
}

bool
outbox_kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value,
				 const char *origin, char *errbuf, size_t errlen)
{
	if (is_forbidden(name))
	{
		snprintf(errbuf, errlen, "%s: property \"%s\" cannot be set", origin, name);
		return false;
	}
	return set_prop(conf, name, value, origin, errbuf, errlen);
}
