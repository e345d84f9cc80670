/*
 * guc.c: defines the outbox.* settings and validates them when they are set,
 * so a bad value is refused at SET time rather than at the next emit().
 */
#include "postgres.h"

#include <ctype.h>
#include <limits.h>

#include "compat.h"
#include "utils/varlena.h"
#include "guc.h"
#include "kafka_config.h"
#include "validate.h"

char	   *outbox_topic_template = NULL;
char	   *outbox_allowed_topics = NULL;
int			outbox_max_message_bytes = 1000000;
char	   *outbox_traceparent = NULL;
char	   *outbox_databases = NULL;
char	   *outbox_brokers = NULL;
char	   *outbox_kafka_config = NULL;
char	   *outbox_kafka_config_file = NULL;
int			outbox_batch_size = 10000;
int			outbox_poll_interval_ms = 1000;
int			outbox_max_attempts = 10;
int			outbox_inbox_fault_after_commits = 0;
int			outbox_retention_s = 86400;
int			outbox_processed_retention_s = 7 * 86400;

static bool
check_topic_template(char **newval, void **extra, GucSource source)
{
	const char *err = outbox_template_error(*newval);

	if (err)
	{
		GUC_check_errdetail("%s", err);
		GUC_check_errhint("Use placeholders {aggregate_type} and {event_type} around "
						  "letters, digits, '.', '_' and '-', e.g. outbox.event.{aggregate_type}.");
		return false;
	}
	return true;
}

static bool
check_allowed_topics(char **newval, void **extra, GucSource source)
{
	const char *err = outbox_topic_patterns_error(*newval);

	if (err)
	{
		GUC_check_errdetail("%s", err);
		GUC_check_errhint("Give a comma-separated list of topic patterns where '*' matches "
						  "any run of characters, e.g. 'outbox.event.*,billing.*'.");
		return false;
	}
	return true;
}

static bool
check_traceparent(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!outbox_traceparent_is_valid(*newval))
	{
		GUC_check_errdetail("\"%s\" is not a W3C traceparent.", *newval);
		GUC_check_errhint("The format is 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, "
						  "lower case, with non-zero ids.");
		return false;
	}
	return true;
}

static bool
check_database_list(char **newval, void **extra, GucSource source)
{
	char	   *copy;
	List	   *names = NIL;
	bool		ok;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	copy = strdup(*newval);	/* hooks may run in the postmaster, outside memory contexts */
	if (copy == NULL)
		return false;
	ok = SplitGUCList(copy, ',', &names);
	list_free(names);
	free(copy);
	if (!ok)
	{
		GUC_check_errdetail("outbox.database must be a comma-separated list of database names.");
		return false;
	}
	return true;
}

static bool
check_kafka_config(char **newval, void **extra, GucSource source)
{
	const char *err = outbox_kafka_config_syntax_error(*newval);

	if (err)
	{
		/* Name the problem, never the value: it may hold a secret. */
		GUC_check_errdetail("%s", err);
		GUC_check_errhint("Use librdkafka properties as key=value pairs separated by ';'. "
						  "Put secrets in outbox.kafka_config_file.");
		return false;
	}
	return true;
}

const char *
outbox_current_traceparent(void)
{
	if (outbox_traceparent == NULL || outbox_traceparent[0] == '\0')
		return NULL;
	return outbox_traceparent;
}

void
OutboxGucInit(void)
{
	DefineCustomStringVariable("outbox.topic_template",
							   "Kafka topic for events emitted without an explicit topic.",
							   "Placeholders: {aggregate_type}, {event_type}. Resolved at emit time.",
							   &outbox_topic_template,
							   "outbox.event.{aggregate_type}",
							   PGC_SUSET, 0,
							   check_topic_template, NULL, NULL);

	DefineCustomStringVariable("outbox.allowed_topics",
							   "Comma-separated topic patterns that emit() may write to ('*' = any run of characters).",
							   "emit() refuses any other topic, so application roles cannot use the publisher's Kafka rights on arbitrary topics.",
							   &outbox_allowed_topics,
							   "outbox.event.*",
							   PGC_SUSET, 0,
							   check_allowed_topics, NULL, NULL);

	DefineCustomIntVariable("outbox.max_message_bytes",
							"Largest Kafka message (key, value and headers) that emit() accepts.",
							"Keep it at or below the producer's message.max.bytes and the topic's max.message.bytes.",
							&outbox_max_message_bytes,
							1000000, 1024, INT_MAX / 2,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.traceparent",
							   "W3C trace context added as a traceparent header to events emitted after it.",
							   "Set it with SET LOCAL inside the transaction that emits.",
							   &outbox_traceparent,
							   "",
							   PGC_USERSET, GUC_NOT_IN_SAMPLE,
							   check_traceparent, NULL, NULL);

	/* Durations in seconds with units ('1d', '12h'), as PostgreSQL's own settings. */
	DefineCustomIntVariable("outbox.retention",
							"How long published events are kept before purge may remove them.",
							"Rotation happens every half of it; purge(older_than) overrides it.",
							&outbox_retention_s,
							86400, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.processed_retention",
							"How long processed-message records are kept: the deduplication window.",
							"A message replayed after its record was purged is processed again.",
							&outbox_processed_retention_s,
							7 * 86400, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.database",
							   "Comma-separated databases whose outbox the background workers publish.",
							   "Requires shared_preload_libraries = 'outbox_ext'. A database without the extension gets an idle worker.",
							   &outbox_databases,
							   "",
							   PGC_SIGHUP, 0,
							   check_database_list, NULL, NULL);

	DefineCustomStringVariable("outbox.brokers",
							   "Kafka bootstrap servers (host:port,...); empty pauses publishing.",
							   "Events keep accumulating safely while it is empty.",
							   &outbox_brokers,
							   "",
							   PGC_SIGHUP, 0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("outbox.kafka_config",
							   "Extra librdkafka producer properties, key=value;key=value.",
							   "Properties that would break the delivery guarantees are refused.",
							   &outbox_kafka_config,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_kafka_config, NULL, NULL);

	DefineCustomStringVariable("outbox.kafka_config_file",
							   "File of librdkafka properties (key=value lines) for secrets such as SASL passwords.",
							   "Refused if group- or world-readable.",
							   &outbox_kafka_config_file,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.batch_size",
							"Most messages the publisher has in flight (one page of the outbox).",
							NULL,
							&outbox_batch_size,
							10000, 1, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.poll_interval",
							"How often the publisher looks for events when no commit woke it.",
							"Commits of transactions that emitted wake it at once; this is the fallback (e.g. for two-phase commit).",
							&outbox_poll_interval_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.max_attempts",
							"Attempts for an event Kafka rejects permanently before it becomes a dead letter.",
							NULL,
							&outbox_max_attempts,
							10, 1, 1000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("outbox.inbox_fault_after_commits",
							"Test only: an inbox worker exits right after its Nth database commit, before the Kafka commit.",
							"0 (the default) disables the fault point. For crash-consistency tests.",
							&outbox_inbox_fault_after_commits,
							0, 0, INT_MAX,
							PGC_SIGHUP, GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("outbox");
}
