/*
 * validate.c: argument and configuration checks for emit() and capture.
 * Messages say what was wrong and what to do; every error carries an errcode.
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "guc.h"
#include "validate.h"

/* Headers the publisher writes itself (compared case-insensitively). */
static const char *const reserved_headers[] = {
	"id", "ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time",
	"content-type", "root_id", "causation_id", "aggregate_type",
	"aggregate_id", "traceparent", NULL
};

/*
 * Bytes the publisher's own headers and the record framing add beyond the
 * variable parts: names, UUIDs, timestamps and per-header varint overhead.
 */
#define FIXED_HEADER_BYTES 400

static inline bool
is_topic_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static inline bool
is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

const char *
outbox_template_error(const char *tmpl)
{
	const char *p;

	if (tmpl == NULL || tmpl[0] == '\0')
		return "The topic template is empty.";
	for (p = tmpl; *p;)
	{
		if (*p == '{')
		{
			if (strncmp(p, "{aggregate_type}", 16) == 0)
				p += 16;
			else if (strncmp(p, "{event_type}", 12) == 0)
				p += 12;
			else
				return "Unknown placeholder in the topic template.";
		}
		else if (is_topic_char(*p))
			p++;
		else
			return "The topic template has a character Kafka topic names cannot contain.";
	}
	return NULL;
}

const char *
outbox_topic_patterns_error(const char *patterns)
{
	const char *p;

	if (patterns == NULL)
		return NULL;
	for (p = patterns; *p; p++)
	{
		if (!(is_topic_char(*p) || *p == '*' || *p == '?' || *p == ',' || *p == ' '))
			return "A topic pattern has a character that is neither a topic character nor '*' or '?'.";
	}
	return NULL;
}

bool
outbox_traceparent_is_valid(const char *tp)
{
	int			i;
	bool		trace_nonzero = false,
				span_nonzero = false;

	if (strlen(tp) != 55 || strncmp(tp, "00-", 3) != 0 || tp[35] != '-' || tp[52] != '-')
		return false;
	for (i = 3; i < 55; i++)
	{
		if (i == 35 || i == 52)
			continue;
		if (!is_lower_hex(tp[i]))
			return false;
		if (tp[i] != '0')
		{
			if (i < 35)
				trace_nonzero = true;
			else if (i < 52)
				span_nonzero = true;
		}
	}
	return trace_nonzero && span_nonzero;
}

void
outbox_require_text(const char *what, text *value)
{
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	if (VARSIZE_ANY_EXHDR(value) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", what)));
}

void
outbox_check_topic_name(const char *topic)
{
	size_t		len = strlen(topic);
	const char *p;

	if (len == 0 || len > OUTBOX_TOPIC_MAX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topic name \"%s\" is not valid for Kafka", topic),
				 errdetail("A topic name has 1 to %d characters; this one has %zu.",
						   OUTBOX_TOPIC_MAX_LEN, len)));
	if (strcmp(topic, ".") == 0 || strcmp(topic, "..") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topic name \"%s\" is not valid for Kafka", topic)));
	for (p = topic; *p; p++)
		if (!is_topic_char(*p))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("topic name \"%s\" is not valid for Kafka", topic),
					 errdetail("Topic names may contain only ASCII letters, digits, '.', '_' and '-'."),
					 errhint("Pass an explicit topic, or choose an aggregate type that fits outbox.topic_template.")));
}

/* Shell-style match: '*' any run of characters, '?' one character. */
static bool
glob_match(const char *pat, int patlen, const char *s)
{
	int			pi = 0,
				si = 0,
				star_pi = -1,
				star_si = 0;
	int			slen = strlen(s);

	while (si < slen)
	{
		if (pi < patlen && (pat[pi] == '?' || pat[pi] == s[si]))
		{
			pi++;
			si++;
		}
		else if (pi < patlen && pat[pi] == '*')
		{
			star_pi = pi++;
			star_si = si;
		}
		else if (star_pi >= 0)
		{
			pi = star_pi + 1;
			si = ++star_si;
		}
		else
			return false;
	}
	while (pi < patlen && pat[pi] == '*')
		pi++;
	return pi == patlen;
}

static bool
topic_is_allowed(const char *topic)
{
	const char *p = outbox_allowed_topics ? outbox_allowed_topics : "";

	while (*p)
	{
		const char *start,
				   *end;

		while (*p == ' ' || *p == ',')
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && end[-1] == ' ')
			end--;
		if (end > start && glob_match(start, end - start, topic))
			return true;
	}
	return false;
}

char *
outbox_resolve_topic(const char *explicit_topic, const char *aggregate_type,
					 const char *event_type)
{
	char	   *topic;

	if (explicit_topic)
		topic = pstrdup(explicit_topic);
	else
	{
		StringInfoData buf;
		const char *p = outbox_topic_template;

		initStringInfo(&buf);
		while (*p)
		{
			if (strncmp(p, "{aggregate_type}", 16) == 0)
			{
				appendStringInfoString(&buf, aggregate_type);
				p += 16;
			}
			else if (strncmp(p, "{event_type}", 12) == 0)
			{
				appendStringInfoString(&buf, event_type);
				p += 12;
			}
			else
				appendStringInfoChar(&buf, *p++);
		}
		topic = buf.data;
	}

	outbox_check_topic_name(topic);
	if (!topic_is_allowed(topic))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("topic \"%s\" is not allowed", topic),
				 errdetail("outbox.allowed_topics is \"%s\".",
						   outbox_allowed_topics ? outbox_allowed_topics : ""),
				 errhint("A superuser can add a matching pattern to outbox.allowed_topics.")));
	return topic;
}

static bool
header_name_is_reserved(const char *name, int len)
{
	const char *const *r;

	for (r = reserved_headers; *r; r++)
		if ((int) strlen(*r) == len && pg_strncasecmp(*r, name, len) == 0)
			return true;
	return false;
}

void
outbox_check_headers(Jsonb *headers)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (headers == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("headers must be a JSON object"),
				 errhint("Pass headers like '{\"tenant\": \"acme\"}', or NULL.")));

	it = JsonbIteratorInit(&headers->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			if (v.val.string.len == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("header names must not be empty")));
			if (header_name_is_reserved(v.val.string.val, v.val.string.len))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("header \"%.*s\" is reserved",
								v.val.string.len, v.val.string.val),
						 errdetail("The publisher writes the headers id, ce_specversion, ce_id, ce_type, "
								   "ce_source, ce_time, content-type, root_id, causation_id, "
								   "aggregate_type, aggregate_id and traceparent itself (any case)."),
						 errhint("Rename the header.")));
		}
		else if (tok == WJB_VALUE && v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("header values must be JSON strings"),
					 errhint("Kafka header values are text: pass numbers and booleans as strings.")));
	}
}

/*
 * Upper bound of the payload's JSON text length. jsonb's binary form is
 * never less than a sixth of its text (the worst case is escaped control
 * characters), so only payloads near the limit are serialised to measure.
 */
static int64
payload_text_bytes(Jsonb *payload, int64 budget)
{
	char	   *s;
	int64		len;

	if (payload == NULL)
		return 0;
	if ((int64) VARSIZE(payload) * 6 <= budget)
		return (int64) VARSIZE(payload) * 6;
	s = JsonbToCString(NULL, &payload->root, VARSIZE(payload));
	len = strlen(s);
	pfree(s);
	return len;
}

static int64
headers_bytes(Jsonb *headers)
{
	if (headers == NULL)
		return 0;
	/* Binary size bounds names and values; the per-header overhead is small. */
	return (int64) VARSIZE(headers) + 4 * JB_ROOT_COUNT(headers);
}

/* The database name goes into ce_source; it cannot change under a session. */
static int64
database_name_bytes(void)
{
	static int64 len = -1;

	if (len < 0)
	{
		char	   *name = get_database_name(MyDatabaseId);

		len = name ? strlen(name) : NAMEDATALEN;
	}
	return len;
}

void
outbox_check_message_size(const char *key, int keylen, Jsonb *payload,
						  Jsonb *headers, const char *aggregate_type,
						  const char *aggregate_id, const char *event_type,
						  const char *traceparent)
{
	int64		limit = outbox_max_message_bytes;
	int64		fixed;
	int64		total;

	fixed = FIXED_HEADER_BYTES + keylen
		+ 2 * strlen(aggregate_type) + strlen(aggregate_id) + strlen(event_type)
		+ database_name_bytes()
		+ (traceparent ? strlen(traceparent) : 0)
		+ headers_bytes(headers);
	total = fixed + payload_text_bytes(payload, limit - fixed);
	if (total > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("event is too large for Kafka: about %lld bytes, outbox.max_message_bytes is %lld",
						(long long) total, (long long) limit),
				 errhint("Store large data elsewhere and put a reference in the payload.")));
}

PG_FUNCTION_INFO_V1(outbox_resolve_topic_sql);

/* outbox._resolve_topic(aggregate_type, event_type): for capture()'s up-front check. */
Datum
outbox_resolve_topic_sql(PG_FUNCTION_ARGS)
{
	outbox_require_text("aggregate_type", PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0));
	outbox_require_text("event_type", PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1));
	PG_RETURN_TEXT_P(cstring_to_text(outbox_resolve_topic(NULL,
														  text_to_cstring(PG_GETARG_TEXT_PP(0)),
														  text_to_cstring(PG_GETARG_TEXT_PP(1)))));
}
