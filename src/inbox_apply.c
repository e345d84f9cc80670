/*
 * inbox_apply.c: the database side of the inbox. One transaction per call:
 *
 *   1. INSERT the batch's ids into processed_messages ON CONFLICT DO NOTHING
 *      RETURNING the new ones (one statement for the batch);
 *   2. call the handler for each new message, as the subscription's role,
 *      with the ambient context set (root = root_id header or the event id,
 *      causation = the event id), so what it emits joins the process tree;
 *   3. store each partition's next offset (one statement);
 *   4. commit.
 *
 * Crash anywhere and the worker resumes from the stored offsets: nothing is
 * skipped, and nothing applied twice, without relying on the dedup records.
 * No subtransaction per message: a handler error aborts the batch and the
 * worker replays it one message per transaction.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"

#include "context.h"
#include "inbox.h"
#include "owner_spi.h"

PG_FUNCTION_INFO_V1(outbox_inbox_message_id);
PG_FUNCTION_INFO_V1(outbox_retry_inbox_dead);

/* What the headers say about a message. */
typedef struct InboxIds
{
	pg_uuid_t	event_id;
	pg_uuid_t	root_id;
	pg_uuid_t	causation_id;	/* of the message itself (its parent) */
	bool		has_causation;
	const char *event_type;
	const char *aggregate_type;
	const char *aggregate_id;
} InboxIds;

/* RFC 4122 URL namespace, for UUIDv5 dedup ids of messages without an id header. */
static const unsigned char url_namespace[16] = {
	0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
	0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8
};

void
inbox_message_id(const char *topic, int32 partition, int64 offset, pg_uuid_t *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA1);
	char	   *name = psprintf("kafka:///%s/%d/" INT64_FORMAT, topic, partition, offset);
	uint8		digest[20];

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, url_namespace, 16) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) name, strlen(name)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-1: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	pfree(name);
	memcpy(out->data, digest, 16);
	out->data[6] = (out->data[6] & 0x0f) | 0x50;	/* version 5 */
	out->data[8] = (out->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
}

/* outbox.inbox_message_id(topic, partition, offset) */
Datum
outbox_inbox_message_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *u = palloc(sizeof(pg_uuid_t));

	inbox_message_id(text_to_cstring(PG_GETARG_TEXT_PP(0)), PG_GETARG_INT32(1),
					 PG_GETARG_INT64(2), u);
	PG_RETURN_UUID_P(u);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A canonical (8-4-4-4-12) or bare 32-digit hex UUID; false if it is not one. */
static bool
parse_uuid(const char *s, int len, pg_uuid_t *out)
{
	int			i = 0,
				n = 0;

	if (s == NULL || (len != 36 && len != 32))
		return false;
	while (i < len && n < 16)
	{
		int			hi,
					lo;

		if (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23))
		{
			if (s[i] != '-')
				return false;
			i++;
		}
		hi = hexval(s[i]);
		lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out->data[n++] = (hi << 4) | lo;
		i += 2;
	}
	return n == 16 && i == len;
}

/* Text fit for a jsonb string: valid in the database encoding, no NUL. */
static bool
is_text(const char *s, int len)
{
	return s != NULL && len >= 0 && (int) strlen(s) == len && pg_verifymbstr(s, len, true);
}

static const char *
header(InboxRecord *r, const char *name, int *len)
{
	int			i;

	/* The last one counts, as Kafka clients' lastHeader() does. */
	for (i = r->nheaders - 1; i >= 0; i--)
		if (strcmp(r->header_names[i], name) == 0)
		{
			*len = r->header_lens[i];
			return r->header_values[i];
		}
	*len = -1;
	return NULL;
}

static const char *
text_header(InboxRecord *r, const char *name)
{
	int			len;
	const char *v = header(r, name, &len);

	return is_text(v, len) ? v : NULL;
}

static void
read_ids(InboxRecord *r, InboxIds *ids)
{
	int			len;
	const char *v = header(r, "id", &len);

	if (!parse_uuid(v, len, &ids->event_id))
		inbox_message_id(r->topic, r->partition, r->offset, &ids->event_id);
	v = header(r, "root_id", &len);
	if (!parse_uuid(v, len, &ids->root_id))
		ids->root_id = ids->event_id;
	v = header(r, "causation_id", &len);
	ids->has_causation = parse_uuid(v, len, &ids->causation_id);
	ids->event_type = text_header(r, "ce_type");
	ids->aggregate_type = text_header(r, "aggregate_type");
	ids->aggregate_id = text_header(r, "aggregate_id");
}

static void
put_key(JsonbParseState **st, const char *k)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) k;
	v.val.string.len = strlen(k);
	(void) pushJsonbValue(st, WJB_KEY, &v);
}

static void
put_text(JsonbParseState **st, const char *k, const char *s, int len)
{
	JsonbValue	v;

	put_key(st, k);
	if (s == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) s;
		v.val.string.len = len < 0 ? strlen(s) : len;
	}
	(void) pushJsonbValue(st, WJB_VALUE, &v);
}

static void
put_uuid(JsonbParseState **st, const char *k, const pg_uuid_t *u)
{
	static const char hex[] = "0123456789abcdef";
	char	   *buf;
	int			i,
				j = 0;

	if (u == NULL)
	{
		put_text(st, k, NULL, -1);
		return;
	}
	/* uuid_out's format, without its StringInfo. */
	buf = palloc(37);
	for (i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			buf[j++] = '-';
		buf[j++] = hex[u->data[i] >> 4];
		buf[j++] = hex[u->data[i] & 0x0f];
	}
	buf[j] = '\0';
	put_text(st, k, buf, 36);
}

static void
put_int(JsonbParseState **st, const char *k, int64 i)
{
	JsonbValue	v;

	put_key(st, k);
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(i);
	(void) pushJsonbValue(st, WJB_VALUE, &v);
}

static void
put_jsonb(JsonbParseState **st, const char *k, Jsonb *j)
{
	JsonbValue	v;

	put_key(st, k);
	v.type = jbvBinary;
	v.val.binary.data = &j->root;
	v.val.binary.len = VARSIZE(j) - VARHDRSZ;
	(void) pushJsonbValue(st, WJB_VALUE, &v);
}

/* Bytes that are not text travel as base64 under name_base64. */
static void
put_bytes(JsonbParseState **st, const char *k, const char *s, int len)
{
	if (s == NULL || is_text(s, len))
		put_text(st, k, s, len);
	else
	{
		int			enclen = pg_b64_enc_len(len);
		char	   *enc = palloc(enclen + 1);

		enclen = pg_b64_encode(s, len, enc, enclen);
		put_text(st, k, NULL, -1);
		put_text(st, psprintf("%s_base64", k), enc, enclen);
	}
}

/* The value as JSON if it is JSON, a string if it is other text, else base64. */
static void
put_payload(JsonbParseState **st, InboxRecord *r)
{
	if (r->value != NULL && is_text(r->value, r->value_len))
	{
		JsonLexContext *lex = makeJsonLexContextCstringLen(r->value, r->value_len,
														   GetDatabaseEncoding(), true);

		if (pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS)
		{
			put_jsonb(st, "payload",
					  DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(r->value))));
			return;
		}
	}
	put_bytes(st, "payload", r->value, r->value_len);
}

/* The handler's argument: see doc/inbox.md for the fields. */
static Jsonb *
build_event(InboxRecord *r, InboxIds *ids)
{
	JsonbParseState *st = NULL;
	JsonbValue *res;
	int			i;

	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	put_uuid(&st, "event_id", &ids->event_id);
	put_uuid(&st, "root_id", &ids->root_id);
	put_uuid(&st, "causation_id", ids->has_causation ? &ids->causation_id : NULL);
	put_text(&st, "event_type", ids->event_type, -1);
	put_text(&st, "aggregate_type", ids->aggregate_type, -1);
	put_text(&st, "aggregate_id", ids->aggregate_id, -1);
	put_text(&st, "topic", r->topic, -1);
	put_int(&st, "partition", r->partition);
	put_int(&st, "offset", r->offset);
	put_bytes(&st, "key", r->key, r->key_len);
	put_key(&st, "headers");
	(void) pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	for (i = 0; i < r->nheaders; i++)
		if (is_text(r->header_names[i], strlen(r->header_names[i])))
			put_bytes(&st, r->header_names[i], r->header_values[i], r->header_lens[i]);
	(void) pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	put_payload(&st, r);
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/* The handler, resolved and checked again in this transaction (it may have changed). */
static void
prepare_handler(InboxSub *sub, FmgrInfo *flinfo)
{
	Oid			fn = DatumGetObjectId(DirectFunctionCall1(regprocedurein,
														  CStringGetDatum(sub->handler)));

	inbox_check_handler(fn, sub->run_as);
	fmgr_info(fn, flinfo);
}

/*
 * One handler call as the subscription's role; errors propagate. The caller
 * has pushed an active snapshot of its own (statements in the handler take
 * their own, as in any function).
 */
static void
call_handler(InboxSub *sub, FmgrInfo *flinfo, Jsonb *event, InboxIds *ids)
{
	LOCAL_FCINFO(fcinfo, 1);
	Oid			save_userid;
	int			save_sec;

	outbox_context_set(&ids->root_id, &ids->event_id);
	GetUserIdAndSecContext(&save_userid, &save_sec);
	/* LOCAL_USERID_CHANGE also forbids SET ROLE back to the worker's superuser. */
	SetUserIdAndSecContext(sub->run_as, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	InitFunctionCallInfoData(*fcinfo, flinfo, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = JsonbPGetDatum(event);
	fcinfo->args[0].isnull = false;
	(void) FunctionCallInvoke(fcinfo);
	SetUserIdAndSecContext(save_userid, save_sec);
	/* The next handler call sees what this one did. */
	CommandCounterIncrement();
	UpdateActiveSnapshotCommandId();
}

/* Adds an id processed_messages answered as new to the set (arg). */
static void
collect_new_id(HeapTuple tup, TupleDesc desc, void *arg)
{
	bool		isnull;
	pg_uuid_t  *u = DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull));

	(void) hash_search((HTAB *) arg, u->data, HASH_ENTER, NULL);
}

static ArrayType *
uuid_array(pg_uuid_t *ids, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = UUIDPGetDatum(&ids[i]);
	return construct_array(d, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR);
}

/* Record ids; returns the set of those not seen before. */
static HTAB *
record_processed(InboxSub *sub, InboxRecord *recs, InboxIds *ids, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {TEXTOID, UUIDARRAYOID, UUIDARRAYOID, UUIDARRAYOID, TEXTARRAYOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	pg_uuid_t  *e = palloc(sizeof(pg_uuid_t) * n),
			   *r = palloc(sizeof(pg_uuid_t) * n),
			   *c = palloc(sizeof(pg_uuid_t) * n);
	Datum	   *types_d = palloc(sizeof(Datum) * n);
	bool	   *cnull = palloc(sizeof(bool) * n),
			   *tnull = palloc(sizeof(bool) * n);
	Datum	   *cd = palloc(sizeof(Datum) * n);
	int			dims[1] = {n},
				lbs[1] = {1};
	HASHCTL		ctl;
	HTAB	   *fresh;
	int			i;

	for (i = 0; i < n; i++)
	{
		e[i] = ids[i].event_id;
		r[i] = ids[i].root_id;
		c[i] = ids[i].causation_id;
		cd[i] = UUIDPGetDatum(&c[i]);
		cnull[i] = !ids[i].has_causation;
		tnull[i] = ids[i].event_type == NULL;
		types_d[i] = tnull[i] ? (Datum) 0 : CStringGetTextDatum(ids[i].event_type);
	}
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = UUID_LEN;
	ctl.entrysize = UUID_LEN;
	ctl.hcxt = CurrentMemoryContext;
	fresh = hash_create("inbox new ids", Max(n, 16), &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	values[0] = CStringGetTextDatum(sub->consumer);
	values[1] = PointerGetDatum(uuid_array(e, n));
	values[2] = PointerGetDatum(uuid_array(r, n));
	values[3] = PointerGetDatum(construct_md_array(cd, cnull, 1, dims, lbs, UUIDOID, UUID_LEN,
												   false, TYPALIGN_CHAR));
	values[4] = PointerGetDatum(construct_md_array(types_d, tnull, 1, dims, lbs, TEXTOID, -1,
												   false, TYPALIGN_INT));
	(void) outbox_exec_as_owner(&plan,
								"INSERT INTO outbox.processed_messages "
								"(consumer, event_id, root_id, causation_id, event_type, processed_at) "
								"SELECT $1, u.e, u.r, u.c, u.t, now() "
								"FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[]) AS u(e, r, c, t) "
								"ON CONFLICT DO NOTHING RETURNING event_id",
								5, types, values, nulls, collect_new_id, fresh);
	return fresh;
}

int
inbox_partition_ends(const InboxRecord *recs, int n, InboxPartition *ends, int64 *handled_counts,
					 const bool *handled)
{
	int			np = 0,
				i,
				j;

	/* Few partitions per batch: a linear search is fine. */
	for (i = 0; i < n; i++)
	{
		for (j = 0; j < np; j++)
			if (ends[j].partition == recs[i].partition && strcmp(ends[j].topic, recs[i].topic) == 0)
				break;
		if (j == np)
		{
			ends[np].topic = recs[i].topic;
			ends[np].partition = recs[i].partition;
			ends[np].offset = recs[i].offset + 1;
			if (handled_counts)
				handled_counts[np] = 0;
			np++;
		}
		ends[j].offset = Max(ends[j].offset, recs[i].offset + 1);
		if (handled_counts && handled[i])
			handled_counts[j]++;
	}
	return np;
}

/* Next offset (and handler calls) per partition of the batch, in one statement. */
static void
store_offsets(InboxSub *sub, InboxRecord *recs, int n, const bool *handled)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {TEXTOID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[5];
	InboxPartition *ends = palloc(sizeof(InboxPartition) * n);
	int64	   *count = palloc(sizeof(int64) * n);
	Datum	   *t = palloc(sizeof(Datum) * n),
			   *p = palloc(sizeof(Datum) * n),
			   *o = palloc(sizeof(Datum) * n),
			   *c = palloc(sizeof(Datum) * n);
	int			np = inbox_partition_ends(recs, n, ends, count, handled),
				j;

	for (j = 0; j < np; j++)
	{
		t[j] = CStringGetTextDatum(ends[j].topic);
		p[j] = Int32GetDatum(ends[j].partition);
		o[j] = Int64GetDatum(ends[j].offset);
		c[j] = Int64GetDatum(count[j]);
	}
	values[0] = CStringGetTextDatum(sub->consumer);
	values[1] = PointerGetDatum(construct_array(t, np, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(p, np, INT4OID, 4, true, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(o, np, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[4] = PointerGetDatum(construct_array(c, np, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	(void) outbox_exec_as_owner(&plan,
								"INSERT INTO outbox.inbox_offsets AS o "
								"(consumer, topic, partition, next_offset, processed, updated_at) "
								"SELECT $1, u.t, u.p, u.o, u.c, now() "
								"FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS u(t, p, o, c) "
								"ON CONFLICT (consumer, topic, partition) DO UPDATE "
								"SET next_offset = EXCLUDED.next_offset, "
								"processed = o.processed + EXCLUDED.processed, updated_at = EXCLUDED.updated_at",
								5, types, values, NULL, NULL, NULL);
}

void
inbox_apply(InboxSub *sub, InboxRecord *recs, int n, InboxApplied *applied)
{
	InboxIds   *ids;
	HTAB	   *fresh;
	bool	   *handled;
	FmgrInfo	flinfo;
	int			i;

	applied->handled = 0;
	applied->failed_at = -1;
	StartTransactionCommand();
	ids = palloc(sizeof(InboxIds) * n);
	handled = palloc0(sizeof(bool) * n);
	for (i = 0; i < n; i++)
		read_ids(&recs[i], &ids[i]);
	prepare_handler(sub, &flinfo);
	fresh = record_processed(sub, recs, ids, n);
	PushActiveSnapshot(GetTransactionSnapshot());
	for (i = 0; i < n; i++)
	{
		bool		found;

		/* Removed once handled: a duplicate within the batch finds it gone. */
		(void) hash_search(fresh, ids[i].event_id.data, HASH_REMOVE, &found);
		if (!found)
			continue;
		applied->failed_at = i;
		call_handler(sub, &flinfo, build_event(&recs[i], &ids[i]), &ids[i]);
		applied->failed_at = -1;
		handled[i] = true;
		applied->handled++;
	}
	PopActiveSnapshot();
	store_offsets(sub, recs, n, handled);
	CommitTransactionCommand();
}

void
inbox_dead_letter(InboxSub *sub, InboxRecord *rec, const char *error,
				  const char *sqlstate, int attempts)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[9] = {TEXTOID, TEXTOID, INT4OID, INT8OID, UUIDOID, JSONBOID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	InboxIds	ids;
	bool		handled = false;

	StartTransactionCommand();
	read_ids(rec, &ids);
	values[0] = CStringGetTextDatum(sub->consumer);
	values[1] = CStringGetTextDatum(rec->topic);
	values[2] = Int32GetDatum(rec->partition);
	values[3] = Int64GetDatum(rec->offset);
	values[4] = UUIDPGetDatum(&ids.event_id);
	values[5] = JsonbPGetDatum(build_event(rec, &ids));
	values[6] = CStringGetTextDatum(error);
	if (sqlstate)
		values[7] = CStringGetTextDatum(sqlstate);
	else
		nulls[7] = 'n';
	values[8] = Int32GetDatum(attempts);
	(void) outbox_exec_as_owner(&plan,
								"INSERT INTO outbox.inbox_dead_letters "
								"(consumer, topic, partition, \"offset\", event_id, event, error, sqlstate, attempts) "
								"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
								"ON CONFLICT (consumer, topic, partition, \"offset\") DO UPDATE "
								"SET error = EXCLUDED.error, sqlstate = EXCLUDED.sqlstate, "
								"attempts = EXCLUDED.attempts, failed_at = now()",
								9, types, values, nulls, NULL, NULL);
	store_offsets(sub, rec, 1, &handled);
	CommitTransactionCommand();
}

typedef struct OffsetLookup
{
	InboxPartition *parts;
	int			n;
} OffsetLookup;

static void
collect_offset(HeapTuple tup, TupleDesc desc, void *arg)
{
	OffsetLookup *l = (OffsetLookup *) arg;
	bool		isnull;
	char	   *topic = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	int32		part = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	int64		next = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	int			i;

	for (i = 0; i < l->n; i++)
		if (l->parts[i].partition == part && strcmp(l->parts[i].topic, topic) == 0)
			l->parts[i].offset = next;
}

void
inbox_load_offsets(InboxSub *sub, InboxPartition *parts, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	OffsetLookup l = {parts, n};
	int			i;

	for (i = 0; i < n; i++)
		parts[i].offset = sub->start_latest ? INBOX_OFFSET_END : INBOX_OFFSET_BEGINNING;
	StartTransactionCommand();
	values[0] = CStringGetTextDatum(sub->consumer);
	(void) outbox_exec_as_owner(&plan,
								"SELECT topic, partition, next_offset FROM outbox.inbox_offsets "
								"WHERE consumer = $1",
								1, types, values, NULL, collect_offset, &l);
	CommitTransactionCommand();
}

/* A dead letter, as retry_inbox_dead() reads it. */
typedef struct DeadLetter
{
	char	   *topic;
	int32		partition;
	int64		offset;
	pg_uuid_t	event_id;
	pg_uuid_t	root_id;
	Jsonb	   *event;
} DeadLetter;

typedef struct DeadList
{
	DeadLetter *items;
	int			n;
	int			cap;
} DeadList;

static void
collect_dead(HeapTuple tup, TupleDesc desc, void *arg)
{
	DeadList   *l = (DeadList *) arg;
	DeadLetter *d;
	bool		isnull;
	Datum		root;

	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 16;
		l->items = l->items ? repalloc(l->items, sizeof(DeadLetter) * l->cap)
			: palloc(sizeof(DeadLetter) * l->cap);
	}
	d = &l->items[l->n++];
	d->topic = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	d->partition = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	d->offset = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	d->event_id = *DatumGetUUIDP(SPI_getbinval(tup, desc, 4, &isnull));
	root = SPI_getbinval(tup, desc, 5, &isnull);
	d->root_id = isnull ? d->event_id : *DatumGetUUIDP(root);
	d->event = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 6, &isnull));
}

/*
 * outbox.retry_inbox_dead(consumer text, event_id uuid DEFAULT NULL): in the
 * caller's transaction, run the handler (as the subscription's role) on the
 * dead letters, oldest offset first, unless the message was processed since;
 * each is then removed. A handler error aborts the call.
 */
Datum
outbox_retry_inbox_dead(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr list_plan = NULL;
	static SPIPlanPtr record_plan = NULL;
	static SPIPlanPtr delete_plan = NULL;
	InboxSub   *sub;
	DeadList	l = {NULL, 0, 0};
	Oid			list_types[2] = {TEXTOID, UUIDOID};
	Oid			record_types[4] = {TEXTOID, UUIDOID, UUIDOID, JSONBOID};
	Oid			delete_types[4] = {TEXTOID, TEXTOID, INT4OID, INT8OID};
	Datum		values[4];
	char		nulls[2] = {' ', ' '};
	FmgrInfo	flinfo;
	int64		replayed = 0;
	int			i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("consumer must not be null")));
	sub = inbox_load_subscription(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	if (sub == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("subscription \"%s\" does not exist", text_to_cstring(PG_GETARG_TEXT_PP(0)))));
	if (!has_privs_of_role(GetUserId(), sub->run_as))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be a member of role \"%s\" to retry the dead letters of \"%s\"",
						GetUserNameFromId(sub->run_as, false), sub->consumer)));
	prepare_handler(sub, &flinfo);

	values[0] = CStringGetTextDatum(sub->consumer);
	if (PG_ARGISNULL(1))
		nulls[1] = 'n';
	else
		values[1] = UUIDPGetDatum(PG_GETARG_UUID_P(1));
	(void) outbox_exec_as_owner(&list_plan,
								"SELECT topic, partition, \"offset\", event_id, "
								"(event ->> 'root_id')::uuid, event "
								"FROM outbox.inbox_dead_letters "
								"WHERE consumer = $1 AND ($2::uuid IS NULL OR event_id = $2) "
								"ORDER BY topic, partition, \"offset\" FOR UPDATE",
								2, list_types, values, nulls, collect_dead, &l);
	for (i = 0; i < l.n; i++)
	{
		DeadLetter *d = &l.items[i];

		values[1] = UUIDPGetDatum(&d->event_id);
		values[2] = UUIDPGetDatum(&d->root_id);
		values[3] = JsonbPGetDatum(d->event);
		if (outbox_exec_as_owner(&record_plan,
								 "INSERT INTO outbox.processed_messages "
								 "(consumer, event_id, root_id, causation_id, event_type, processed_at) "
								 "VALUES ($1, $2, $3, ($4 ->> 'causation_id')::uuid, $4 ->> 'event_type', now()) "
								 "ON CONFLICT DO NOTHING",
								 4, record_types, values, NULL, NULL, NULL) == 1)
		{
			InboxIds	ids;

			memset(&ids, 0, sizeof(ids));
			ids.event_id = d->event_id;
			ids.root_id = d->root_id;
			PushActiveSnapshot(GetTransactionSnapshot());
			call_handler(sub, &flinfo, d->event, &ids);
			PopActiveSnapshot();
			replayed++;
		}
		values[1] = CStringGetTextDatum(d->topic);
		values[2] = Int32GetDatum(d->partition);
		values[3] = Int64GetDatum(d->offset);
		(void) outbox_exec_as_owner(&delete_plan,
									"DELETE FROM outbox.inbox_dead_letters WHERE consumer = $1 "
									"AND topic = $2 AND partition = $3 AND \"offset\" = $4",
									4, delete_types, values, NULL, NULL, NULL);
	}
	PG_RETURN_INT64(replayed);
}
