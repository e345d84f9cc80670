/*
 * subscription.c: outbox.subscribe() and outbox.unsubscribe(), and loading a
 * subscription for its workers.
 *
 * The handler runs as the role that subscribed (or a role it is a member of,
 * options.run_as), never as a superuser: a subscription is refused if that
 * role is one, or cannot execute the handler. The row is written as the
 * storage owner (application roles have no rights on the table); the
 * database's publisher, which supervises the inbox workers, is told at
 * commit.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#define OUTBOX_WITH_RDKAFKA
#include "inbox.h"
#include "kafka_config.h"
#include "owner_spi.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(outbox_subscribe);
PG_FUNCTION_INFO_V1(outbox_unsubscribe);

static bool changed_in_xact = false;

static void
inbox_xact_callback(XactEvent event, void *arg)
{
	if (!changed_in_xact)
		return;
	if (event == XACT_EVENT_COMMIT)
		outbox_inbox_changed(MyDatabaseId);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE)
		changed_in_xact = false;
}

void
InboxSubscriptionInit(void)
{
	RegisterXactCallback(inbox_xact_callback, NULL);
}

void
inbox_note_change(void)
{
	changed_in_xact = true;
}

static void
bad_option(const char *name, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid subscription option \"%s\": %s", name, detail),
			 errhint("Options are group, workers, batch_size, max_attempts, retry_backoff_ms, "
					 "start ('earliest' or 'latest'), run_as and kafka (an object of librdkafka "
					 "consumer properties).")));
}

static int
int_option(const char *name, JsonbValue *v, int min, int max)
{
	int64		i;

	if (v->type != jbvNumeric)
		bad_option(name, "it must be a number");
	i = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
	if (i < min || i > max)
		bad_option(name, psprintf("it must be between %d and %d", min, max));
	return (int) i;
}

static char *
string_option(const char *name, JsonbValue *v)
{
	if (v->type != jbvString || v->val.string.len == 0)
		bad_option(name, "it must be a non-empty string");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The "kafka" option: an object of string (or number/bool) values. */
static void
kafka_option(InboxSub *sub, JsonbValue *v)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	k,
				val;
	int			cap = 8;

	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		bad_option("kafka", "it must be an object of librdkafka consumer properties");
	sub->prop_names = palloc(sizeof(char *) * cap);
	sub->prop_values = palloc(sizeof(char *) * cap);
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name,
				   *value;
		const char *err;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &val, true);
		if (val.type == jbvString)
			value = pnstrdup(val.val.string.val, val.val.string.len);
		else if (val.type == jbvNumeric)
			value = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(val.val.numeric)));
		else if (val.type == jbvBool)
			value = pstrdup(val.val.boolean ? "true" : "false");
		else
			bad_option("kafka", psprintf("property \"%s\" must be a string, number or boolean", name));
		err = outbox_kafka_consumer_property_error(name, value);
		if (err)
			bad_option("kafka", err);
		if (sub->nprops == cap)
		{
			cap *= 2;
			sub->prop_names = repalloc(sub->prop_names, sizeof(char *) * cap);
			sub->prop_values = repalloc(sub->prop_values, sizeof(char *) * cap);
		}
		sub->prop_names[sub->nprops] = name;
		sub->prop_values[sub->nprops] = value;
		sub->nprops++;
	}
}

/* Options into sub (defaults first); run_as_name gets the run_as option if given. */
static void
parse_options(InboxSub *sub, Jsonb *options, char **run_as_name)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	k,
				v;

	sub->workers = 1;
	sub->batch_size = 500;
	sub->max_attempts = 5;
	sub->retry_backoff_ms = 1000;
	sub->start_latest = false;
	sub->nprops = 0;
	sub->prop_names = sub->prop_values = NULL;
	if (run_as_name)
		*run_as_name = NULL;
	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subscription options must be a JSON object")));
	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		(void) JsonbIteratorNext(&it, &v, true);
		if (strcmp(name, "group") == 0)
			sub->group_id = string_option(name, &v);
		else if (strcmp(name, "workers") == 0)
			sub->workers = int_option(name, &v, 1, INBOX_MAX_WORKERS_PER_SUB);
		else if (strcmp(name, "batch_size") == 0)
			sub->batch_size = int_option(name, &v, 1, 10000);
		else if (strcmp(name, "max_attempts") == 0)
			sub->max_attempts = int_option(name, &v, 1, 1000);
		else if (strcmp(name, "retry_backoff_ms") == 0)
			sub->retry_backoff_ms = int_option(name, &v, 10, INBOX_MAX_BACKOFF_MS);
		else if (strcmp(name, "start") == 0)
		{
			char	   *s = string_option(name, &v);

			if (strcmp(s, "earliest") != 0 && strcmp(s, "latest") != 0)
				bad_option(name, "it must be 'earliest' or 'latest'");
			sub->start_latest = strcmp(s, "latest") == 0;
		}
		else if (strcmp(name, "run_as") == 0)
		{
			char	   *s = string_option(name, &v);

			if (run_as_name)
				*run_as_name = s;
		}
		else if (strcmp(name, "kafka") == 0)
			kafka_option(sub, &v);
		else
			bad_option(name, "there is no such option");
	}
}

/* Letters, digits, '.', '_' and '-' only: Kafka's topic characters, and ours for names. */
static bool
name_chars_only(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			  (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

static void
check_topic(const char *t)
{
	if (t[0] == '\0' || strlen(t) > 249 || strcmp(t, ".") == 0 || strcmp(t, "..") == 0 ||
		!name_chars_only(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a valid Kafka topic name", t),
				 errhint("Topic names are 1 to 249 of the characters a-z, A-Z, 0-9, '.', '_' and '-'.")));
}

static void
check_consumer_name(const char *c)
{
	size_t		len = strlen(c);

	if (len == 0 || len >= NAMEDATALEN || c[0] == '.' || c[0] == '_' || c[0] == '-' ||
		!name_chars_only(c))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a valid consumer name", c),
				 errhint("A consumer name is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit.")));
}

/* A handler must be a plain function of one jsonb argument. */
static void
check_handler(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Form_pg_proc p;

	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("handler function with OID %u does not exist", fn)));
	p = (Form_pg_proc) GETSTRUCT(tup);
	if (p->prokind != PROKIND_FUNCTION || p->proretset)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("handler %s must be a function that returns a single value",
						format_procedure(fn)),
				 errhint("Declare it as CREATE FUNCTION ...(event jsonb) RETURNS void.")));
	if (p->pronargs != 1 || p->proargtypes.values[0] != JSONBOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("handler %s must take exactly one argument of type jsonb",
						format_procedure(fn)),
				 errhint("Declare it as CREATE FUNCTION ...(event jsonb) RETURNS void.")));
	ReleaseSysCache(tup);
}

/* The role the handler runs as must not be a superuser and must be able to run it. */
static void
check_run_as(Oid role, Oid fn)
{
	if (superuser_arg(role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("inbox handlers must not run as a superuser, and role \"%s\" is one",
						GetUserNameFromId(role, false)),
				 errhint("Subscribe as (or with options.run_as set to) an ordinary role that owns "
						 "or may execute the handler.")));
	if (pg_proc_aclcheck(fn, role, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not execute handler %s",
						GetUserNameFromId(role, false), format_procedure(fn))));
}

void
inbox_check_handler(Oid fn, Oid run_as)
{
	check_handler(fn);
	check_run_as(run_as, fn);
}

static text **
topic_texts(ArrayType *arr, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			i;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topics must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	if (*n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a subscription needs at least one topic")));
	for (i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("topics must not contain null")));
		check_topic(TextDatumGetCString(elems[i]));
	}
	return (text **) elems;
}

/* outbox.subscribe(consumer text, topics text[], handler regprocedure, options jsonb) */
Datum
outbox_subscribe(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr exists_plan = NULL;
	static SPIPlanPtr group_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	InboxSub	sub;
	char	   *consumer;
	Oid			handler;
	char	   *run_as_name;
	Oid			run_as;
	int			ntopics;
	Oid			types[6] = {TEXTOID, TEXTARRAYOID, TEXTOID, OIDOID, TEXTOID, JSONBOID};
	Datum		values[6];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("consumer, topics and handler must not be null")));
	consumer = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_consumer_name(consumer);
	(void) topic_texts(PG_GETARG_ARRAYTYPE_P(1), &ntopics);
	handler = PG_GETARG_OID(2);
	check_handler(handler);

	memset(&sub, 0, sizeof(sub));
	sub.group_id = consumer;
	parse_options(&sub, PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &run_as_name);

	run_as = GetUserId();
	if (run_as_name)
	{
		run_as = get_role_oid(run_as_name, false);
		if (!has_privs_of_role(GetUserId(), run_as))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be a member of role \"%s\" to subscribe as it", run_as_name)));
	}
	check_run_as(run_as, handler);

	values[0] = CStringGetTextDatum(consumer);
	values[1] = CStringGetTextDatum(sub.group_id);
	if (outbox_exec_as_owner(&exists_plan,
							 "SELECT 1 FROM outbox._subscriptions WHERE consumer = $1",
							 1, types, values, NULL, NULL, NULL) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("subscription \"%s\" already exists", consumer),
				 errhint("Call outbox.unsubscribe('%s') first to change it.", consumer)));

	/*
	 * Offsets and dedup records are kept per subscription: two subscriptions
	 * sharing a group would hand partitions to each other without them.
	 */
	if (outbox_exec_as_owner(&group_plan,
							 "SELECT 1 FROM outbox._subscriptions WHERE group_id = $1",
							 1, &types[0], &values[1], NULL, NULL, NULL) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("consumer group \"%s\" is already used by another subscription", sub.group_id),
				 errhint("Use options.workers to run more consumers of one subscription.")));

	values[1] = PointerGetDatum(PG_GETARG_ARRAYTYPE_P(1));
	values[2] = CStringGetTextDatum(format_procedure_qualified(handler));
	values[3] = ObjectIdGetDatum(run_as);
	values[4] = CStringGetTextDatum(sub.group_id);
	values[5] = PG_ARGISNULL(3) ? DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"))
		: PointerGetDatum(PG_GETARG_JSONB_P(3));
	(void) outbox_exec_as_owner(&insert_plan,
								"INSERT INTO outbox._subscriptions "
								"(consumer, topics, handler, run_as, group_id, options) "
								"VALUES ($1, $2, $3, $4::regrole, $5, $6)",
								6, types, values, NULL, NULL, NULL);
	inbox_note_change();
	PG_RETURN_VOID();
}

/* outbox.unsubscribe(consumer text, forget boolean) */
Datum
outbox_unsubscribe(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr delete_plan = NULL;
	static SPIPlanPtr forget_plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	InboxSub   *sub;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("consumer must not be null")));
	values[0] = PointerGetDatum(PG_GETARG_TEXT_PP(0));
	sub = inbox_load_subscription(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (sub == NULL)
		PG_RETURN_BOOL(false);
	if (!has_privs_of_role(GetUserId(), sub->run_as))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be a member of role \"%s\" to unsubscribe \"%s\"",
						GetUserNameFromId(sub->run_as, false), sub->consumer)));
	(void) outbox_exec_as_owner(&delete_plan,
								"DELETE FROM outbox._subscriptions WHERE consumer = $1",
								1, types, values, NULL, NULL, NULL);
	if (!PG_ARGISNULL(1) && PG_GETARG_BOOL(1))
		(void) outbox_exec_as_owner(&forget_plan,
									"WITH o AS (DELETE FROM outbox.inbox_offsets WHERE consumer = $1) "
									"DELETE FROM outbox.inbox_dead_letters WHERE consumer = $1",
									1, types, values, NULL, NULL, NULL);
	inbox_note_change();
	PG_RETURN_BOOL(true);
}

/* Reads the row into a palloc'd InboxSub. */
static void
sub_from_row(HeapTuple tup, TupleDesc desc, void *arg)
{
	InboxSub  **out = (InboxSub **) arg;
	InboxSub   *sub = palloc0(sizeof(InboxSub));
	bool		isnull;
	Datum	   *elems;
	int			i;
	Jsonb	   *options;

	sub->consumer = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 2, &isnull)),
					  TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &sub->ntopics);
	sub->topics = palloc(sizeof(char *) * sub->ntopics);
	for (i = 0; i < sub->ntopics; i++)
		sub->topics[i] = TextDatumGetCString(elems[i]);
	sub->handler = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
	options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 6, &isnull));
	parse_options(sub, options, NULL);
	sub->run_as = DatumGetObjectId(SPI_getbinval(tup, desc, 4, &isnull));
	sub->group_id = TextDatumGetCString(SPI_getbinval(tup, desc, 5, &isnull));
	*out = sub;
}

InboxSub *
inbox_load_subscription(const char *consumer)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	InboxSub   *sub = NULL;

	values[0] = CStringGetTextDatum(consumer);
	(void) outbox_exec_as_owner(&plan,
								"SELECT consumer, topics, handler, run_as::oid, group_id, options "
								"FROM outbox._subscriptions WHERE consumer = $1",
								1, types, values, NULL, sub_from_row, &sub);
	return sub;
}
