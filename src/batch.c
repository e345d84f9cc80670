/*
 * batch.c: the publisher's SQL. A page is the next rows, in seq order, of
 * the transactions that committed between two snapshots of the cursor
 * (prev, cur): those whose xid is not visible in prev (xid >= prev.xmax or
 * in prev.xip) but visible in cur, never "id > last id", which would skip
 * transactions that commit out of order. Each page is read in a short
 * REPEATABLE READ transaction whose snapshot is cur itself when cur is new;
 * no snapshot is held while Kafka acknowledges.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "nodes/parsenodes.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "common/hashfn.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "tcop/dest.h"
#include "nodes/params.h"
#include "access/htup_details.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/xid8.h"

#include "batch.h"
#include "guc.h"

#define FIXED_HEADERS 12

/*
 * The columns add_row() reads, for events e, as stored: converted to text in
 * C (uuid, timestamp), not by output functions per column.
 */
#define EVENT_COLUMNS \
"SELECT e.seq, e.event_id, e.root_id, e.causation_id," \
"       e.aggregate_type, e.aggregate_id, e.event_type, e.topic," \
"       e.key, e.payload, e.created_at, e.traceparent, e.headers"
#define NCOLUMNS 13

static const char *page_sql =
EVENT_COLUMNS
"  FROM outbox.events e"
" WHERE (e.xid >= $1 OR e.xid = ANY ($2))"
"   AND pg_visible_in_snapshot(e.xid, $3)"
"   AND e.seq > $4"
" ORDER BY e.seq"
" LIMIT $5";

static const char *parked_sql =
EVENT_COLUMNS
"  FROM outbox._parked p JOIN outbox.events e ON e.seq = p.seq"
" WHERE p.next_attempt_at <= now()"
" ORDER BY p.seq"
" LIMIT $1";

static SPIPlanPtr page_plan = NULL;

/* Memory of the page in flight, kept between pages (see outbox_fetch_page). */
#define PAGE_CXT_KEEP (16 * 1024 * 1024)
static MemoryContext page_cxt = NULL;
static bool page_cxt_busy = false;
static SPIPlanPtr parked_plan = NULL;

/* Keys with parked events, by a 64-bit hash of topic and key: a collision
 * only holds back an innocent key, never lets one pass. */
static HTAB *blocked_keys = NULL;
static TimestampTz next_parked_due = DT_NOBEGIN;
static TimestampTz last_purge = 0;

static void
begin_txn(const char *activity, bool repeatable_read)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	/* Explicit either way: default_transaction_isolation must not change it. */
	XactIsoLevel = repeatable_read ? XACT_REPEATABLE_READ : XACT_READ_COMMITTED;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
end_txn(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	outbox_report_idle();
}

/*
 * Planner settings for one statement, undone afterwards (as a function's SET
 * clause is). The publisher's two reads must keep their plan shape whatever
 * the statistics say: a page walks the seq index in order and stops at the
 * limit (a bitmap scan + sort of the whole pair per page made a 1M-event
 * drain 5x slower); the start of a pair comes from the xid index (the
 * min(seq) index walk would cross the whole published history).
 */
static const char *const page_plan_settings[] = {
	"enable_sort", "off",
	"enable_bitmapscan", "off",
	"enable_seqscan", "off",
	NULL
};
static const char *const pair_start_settings[] = {
	"enable_indexscan", "off",
	"enable_indexonlyscan", "off",
	"enable_seqscan", "off",
	"max_parallel_workers_per_gather", "0",
	NULL
};

static int
push_plan_settings(const char *const *settings)
{
	int			nest = NewGUCNestLevel();

	for (; settings[0] != NULL; settings += 2)
		(void) set_config_option(settings[0], settings[1], PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

static void
pop_plan_settings(int nest)
{
	AtEOXact_GUC(true, nest);
}

static char *
col_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/*
 * Run one of the publisher's statements through a plan prepared once and
 * kept for the worker's life: a page, the cursor and the extension check
 * then cost no parsing and planning each (the per-page overhead is what a
 * lone event waits for).
 */
static int
run_saved(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
		  Datum *values, const char *nulls, bool read_only, int cursor_options)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare_cursor(sql, nargs, types, cursor_options);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return SPI_execute_plan(*plan, values, nulls, read_only, 0);
}

static SPIPlanPtr extension_plan = NULL;
static SPIPlanPtr cursor_plan = NULL;
static SPIPlanPtr pair_start_plan = NULL;
static SPIPlanPtr advance_plan = NULL;

/* This database's cursor row, as outbox._local_cursor() has it. */
static Datum
cursor_identity(Datum *datoid)
{
	*datoid = ObjectIdGetDatum(MyDatabaseId);
	return Int64GetDatum((int64) GetSystemIdentifier());
}

static OutboxCursorCheck
check_extension(char *detail, size_t detail_len)
{
	char	   *version;

	if (run_saved(&extension_plan,
				  "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'outbox_ext'",
				  0, NULL, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading pg_extension failed");
	if (SPI_processed == 0)
		return CURSOR_NO_EXTENSION;
	version = col_text(0, 1);
	if (strcmp(version, OUTBOX_EXTVERSION) != 0)
	{
		snprintf(detail, detail_len,
				 "the installed SQL of outbox_ext is version %s but the loaded library is %s: "
				 "run ALTER EXTENSION outbox_ext UPDATE, or install the matching package and restart",
				 version, OUTBOX_EXTVERSION);
		return CURSOR_VERSION_MISMATCH;
	}
	return CURSOR_OK;
}

/* Percent-encode all but RFC 3986 unreserved characters (for ce_source). */
static char *
uri_escape(const char *s)
{
	StringInfoData buf;
	const unsigned char *p;

	initStringInfo(&buf);
	for (p = (const unsigned char *) s; *p; p++)
	{
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~')
			appendStringInfoChar(&buf, *p);
		else
			appendStringInfo(&buf, "%%%02X", *p);
	}
	return buf.data;
}

/*
 * Building messages straight from the rows' datums, as the executor hands
 * them over: no tuple copies, no output function per column. uuid and
 * timestamptz are formatted here; text is copied once; the payload is the
 * jsonb's JSON text.
 */
typedef struct RowBuilder
{
	OutboxPage *page;
	int			capacity;
	bool		server_utf8;	/* no conversion needed */
	const char *dbname;			/* URI-escaped, UTF-8 */
	/* ce_source by aggregate type: a page has few distinct ones */
	int			nsources;
	const char *source_type[16];
	const char *source[16];
} RowBuilder;

/* Kafka headers and keys are UTF-8, whatever the database encoding. */
static char *
rb_utf8(RowBuilder *rb, char *s)
{
	if (s == NULL || rb->server_utf8)
		return s;
	return pg_server_to_any(s, strlen(s), PG_UTF8);
}

/* A text datum as a NUL-terminated copy in the current context. */
static char *
text_cstring(Datum d)
{
	text	   *t = DatumGetTextPP(d);
	int			len = VARSIZE_ANY_EXHDR(t);
	char	   *s = palloc(len + 1);

	memcpy(s, VARDATA_ANY(t), len);
	s[len] = '\0';
	if ((Pointer) t != DatumGetPointer(d))
		pfree(t);
	return s;
}

/* As uuid_out() writes it. */
static char *
uuid_cstring(Datum d)
{
	static const char hex[] = "0123456789abcdef";
	const pg_uuid_t *u = DatumGetUUIDP(d);
	char	   *s = palloc(2 * UUID_LEN + 5);
	char	   *o = s;
	int			i;

	for (i = 0; i < UUID_LEN; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		*o++ = hex[u->data[i] >> 4];
		*o++ = hex[u->data[i] & 0x0f];
	}
	*o = '\0';
	return s;
}

static char *
put_digits(char *o, int v, int width)
{
	char	   *end = o + width;

	while (width-- > 0)
	{
		o[width] = '0' + v % 10;
		v /= 10;
	}
	return end;
}

/*
 * ce_time: created_at in UTC as YYYY-MM-DDTHH:MI:SS.uuuuuuZ (what
 * to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
 * gives; NULL for infinity, as to_char returns).
 */
static char *
utc_time_cstring(Datum d)
{
	TimestampTz ts = DatumGetTimestampTz(d);
	struct pg_tm tm;
	fsec_t		fsec;
	int			year;
	char	   *s,
			   *o;

	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		return NULL;
	year = tm.tm_year > 0 ? tm.tm_year : -(tm.tm_year - 1);
	if (year > 9999)
		return psprintf("%d-%02d-%02dT%02d:%02d:%02d.%06dZ", year, tm.tm_mon, tm.tm_mday,
						tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
	s = o = palloc(32);
	o = put_digits(o, year, 4);
	*o++ = '-';
	o = put_digits(o, tm.tm_mon, 2);
	*o++ = '-';
	o = put_digits(o, tm.tm_mday, 2);
	*o++ = 'T';
	o = put_digits(o, tm.tm_hour, 2);
	*o++ = ':';
	o = put_digits(o, tm.tm_min, 2);
	*o++ = ':';
	o = put_digits(o, tm.tm_sec, 2);
	*o++ = '.';
	o = put_digits(o, (int) fsec, 6);
	*o++ = 'Z';
	*o = '\0';
	return s;
}

/* ce_source of an aggregate type (UTF-8), cached for the page. */
static const char *
ce_source(RowBuilder *rb, const char *aggregate_type)
{
	const char *src;
	int			i;

	for (i = 0; i < rb->nsources; i++)
		if (strcmp(rb->source_type[i], aggregate_type) == 0)
			return rb->source[i];
	src = psprintf("/outbox_ext/%s/%s", rb->dbname, uri_escape(aggregate_type));
	if (rb->nsources < lengthof(rb->source))
	{
		rb->source_type[rb->nsources] = aggregate_type;
		rb->source[rb->nsources++] = src;
	}
	return src;
}

/* The user's headers (a flat jsonb object of strings) as names and values. */
static int
user_headers(RowBuilder *rb, Datum d, char ***names, char ***vals)
{
	Jsonb	   *jb = DatumGetJsonbP(d);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;

	*names = palloc(sizeof(char *) * Max(JB_ROOT_COUNT(jb), 1));
	*vals = palloc(sizeof(char *) * Max(JB_ROOT_COUNT(jb), 1));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			(*names)[n] = rb_utf8(rb, pnstrdup(v.val.string.val, v.val.string.len));
		else if (tok == WJB_VALUE)
			(*vals)[n++] = v.type == jbvString ?
				rb_utf8(rb, pnstrdup(v.val.string.val, v.val.string.len)) : pstrdup("");
	}
	return n;
}

/* One row (the EVENT_COLUMNS) as the page's next message, in page memory. */
static void
add_row(RowBuilder *rb, Datum *values, bool *nulls)
{
	OutboxPage *p = rb->page;
	int			i = p->n;
	OutboxMessage *m = &p->msgs[i];
	char	  **user_names = NULL,
			  **user_vals = NULL;
	int			nuser;
	char	   *event_id,
			   *causation,
			   *aggregate_type,
			   *aggregate_id,
			   *traceparent;
	const char **names;
	const char **vals;
	int			h = 0,
				u;

	if (i >= rb->capacity)
		elog(ERROR, "outbox page overflow: more than %d rows", rb->capacity);

	nuser = nulls[12] ? 0 : user_headers(rb, values[12], &user_names, &user_vals);
	event_id = uuid_cstring(values[1]);
	causation = nulls[3] ? NULL : uuid_cstring(values[3]);
	aggregate_type = rb_utf8(rb, text_cstring(values[4]));
	aggregate_id = rb_utf8(rb, text_cstring(values[5]));
	traceparent = nulls[11] ? NULL : text_cstring(values[11]);

	names = palloc(sizeof(char *) * (FIXED_HEADERS + nuser));
	vals = palloc(sizeof(char *) * (FIXED_HEADERS + nuser));

#define HDR(n, v) do { names[h] = (n); vals[h] = (v); h++; } while (0)
	HDR("id", event_id);
	HDR("ce_specversion", "1.0");
	HDR("ce_id", event_id);
	HDR("ce_type", rb_utf8(rb, text_cstring(values[6])));
	HDR("ce_source", ce_source(rb, aggregate_type));
	HDR("ce_time", utc_time_cstring(values[10]));
	HDR("content-type", "application/json");
	HDR("root_id", uuid_cstring(values[2]));
	if (causation)
		HDR("causation_id", causation);
	HDR("aggregate_type", aggregate_type);
	HDR("aggregate_id", aggregate_id);
	if (traceparent)
		HDR("traceparent", traceparent);
#undef HDR
	for (u = 0; u < nuser; u++, h++)
	{
		names[h] = user_names[u];
		vals[h] = user_vals[u];
	}

	m->topic = text_cstring(values[7]);
	m->key = nulls[8] ? aggregate_id : rb_utf8(rb, text_cstring(values[8]));
	m->key_len = strlen(m->key);
	if (nulls[9])
	{
		m->value = NULL;		/* tombstone */
		m->value_len = 0;
	}
	else
	{
		Jsonb	   *jb = DatumGetJsonbP(values[9]);
		StringInfoData buf;

		/* Sized like the jsonb, not initStringInfo's 1 kB: most payloads are small. */
		buf.maxlen = VARSIZE(jb) + 16;
		buf.data = palloc(buf.maxlen);
		resetStringInfo(&buf);
		(void) JsonbToCString(&buf, &jb->root, VARSIZE(jb));
		if (rb->server_utf8)
		{
			m->value = buf.data;
			m->value_len = buf.len;
		}
		else
		{
			m->value = rb_utf8(rb, buf.data);
			m->value_len = strlen(m->value);
		}
	}
	m->nheaders = h;
	m->header_names = names;
	m->header_values = vals;
	p->seq[i] = DatumGetInt64(values[0]);
	p->event_id[i] = event_id;
	p->n++;
}
/* xmax of a snapshot in pg_snapshot text form "xmin:xmax:xip,...". */
static Datum
snapshot_xmax(const char *snap)
{
	const char *colon = strchr(snap, ':');

	if (colon == NULL)
		elog(ERROR, "malformed snapshot \"%s\"", snap);
	return FullTransactionIdGetDatum(FullTransactionIdFromU64(strtou64(colon + 1, NULL, 10)));
}

/* The in-progress transactions of a snapshot, as an xid8[]. */
static Datum
snapshot_xip(const char *snap)
{
	const char *p = strchr(snap, ':');
	Datum	   *elems = NULL;
	int			n = 0,
				cap = 0;

	p = p ? strchr(p + 1, ':') : NULL;
	if (p == NULL)
		elog(ERROR, "malformed snapshot \"%s\"", snap);
	p++;
	while (*p)
	{
		char	   *end;
		uint64		x = strtou64(p, &end, 10);

		if (end == p)
			break;
		if (n == cap)
		{
			cap = cap ? cap * 2 : 16;
			elems = elems ? repalloc(elems, sizeof(Datum) * cap) : palloc(sizeof(Datum) * cap);
		}
		elems[n++] = FullTransactionIdGetDatum(FullTransactionIdFromU64(x));
		p = (*end == ',') ? end + 1 : end;
	}
	return PointerGetDatum(construct_array(elems, n, XID8OID, sizeof(uint64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * Run a page query (the EVENT_COLUMNS) and turn its rows into the page's
 * messages, in page memory, as the executor produces them (PostgreSQL 14
 * and later: a DestReceiver of our own, so SPI keeps no copy of the rows).
 */
#if PG_VERSION_NUM >= 140000
typedef struct PageReceiver
{
	DestReceiver pub;
	RowBuilder *rb;
	MemoryContext cxt;
} PageReceiver;

static bool
page_receive(TupleTableSlot *slot, DestReceiver *self)
{
	PageReceiver *r = (PageReceiver *) self;
	MemoryContext old;

	slot_getallattrs(slot);
	if (slot->tts_tupleDescriptor->natts != NCOLUMNS)
		elog(ERROR, "unexpected outbox page row with %d columns", slot->tts_tupleDescriptor->natts);
	old = MemoryContextSwitchTo(r->cxt);
	add_row(r->rb, slot->tts_values, slot->tts_isnull);
	MemoryContextSwitchTo(old);
	return true;
}

static void
page_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
page_noop(DestReceiver *self)
{
}
#endif

static void
fill_page(OutboxPage *p, MemoryContext cxt, int limit, SPIPlanPtr plan,
		  int nargs, Oid *types, Datum *values)
{
	MemoryContext old = MemoryContextSwitchTo(cxt);
	RowBuilder	rb;
	int			cap = Max(limit, 1);

	memset(&rb, 0, sizeof(rb));
	rb.page = p;
	rb.capacity = limit;
	rb.server_utf8 = (GetDatabaseEncoding() == PG_UTF8);
	rb.dbname = uri_escape(rb_utf8(&rb, get_database_name(MyDatabaseId)));
	p->n = 0;
	p->seq = palloc(sizeof(int64) * cap);
	p->event_id = palloc(sizeof(char *) * cap);
	p->msgs = palloc0(sizeof(OutboxMessage) * cap);
	p->fate = palloc0(cap);
	p->tried_alone = palloc0(sizeof(bool) * cap);
	p->error = palloc0(sizeof(char *) * cap);
	MemoryContextSwitchTo(old);

	{
#if PG_VERSION_NUM >= 140000
		PageReceiver r;
		SPIExecuteOptions opts;
		ParamListInfo params = makeParamList(nargs);
		int			i,
					rc;

		for (i = 0; i < nargs; i++)
		{
			params->params[i].value = values[i];
			params->params[i].isnull = false;
			params->params[i].pflags = PARAM_FLAG_CONST;
			params->params[i].ptype = types[i];
		}
		memset(&r, 0, sizeof(r));
		r.pub.receiveSlot = page_receive;
		r.pub.rStartup = page_startup;
		r.pub.rShutdown = page_noop;
		r.pub.rDestroy = page_noop;
		r.pub.mydest = DestTuplestore;	/* neither DestNone nor DestSPI: SPI leaves it alone */
		r.rb = &rb;
		r.cxt = cxt;
		memset(&opts, 0, sizeof(opts));
		opts.params = params;
		opts.read_only = true;
		opts.dest = (DestReceiver *) &r;
		rc = SPI_execute_plan_extended(plan, &opts);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "reading the outbox failed: %s", SPI_result_code_string(rc));
#else
		uint64		row;
		Datum		v[NCOLUMNS];
		bool		n[NCOLUMNS];

		if (SPI_execute_plan(plan, values, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "reading the outbox failed");
		old = MemoryContextSwitchTo(cxt);
		for (row = 0; row < SPI_processed; row++)
		{
			heap_deform_tuple(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, v, n);
			add_row(&rb, v, n);
		}
		MemoryContextSwitchTo(old);
#endif
	}
	p->pair_done = (p->n < limit);
}
/*
 * Flush WAL up to everything inserted so far. The insert position just past
 * a page boundary points after the new page's header, which nothing has
 * written yet: flush up to the boundary, which holds every record.
 */
static void
flush_wal(void)
{
	XLogRecPtr	upto = GetXLogInsertRecPtr();
	uint32		in_page = upto % XLOG_BLCKSZ;

	if (in_page != 0 && in_page <= SizeOfXLogLongPHD)
		upto -= in_page;
	XLogFlush(upto);
}

OutboxPage *
outbox_fetch_page(int limit, OutboxCursorCheck *check, char *detail, size_t detail_len)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	OutboxPage *p = NULL;
	MemoryContext cxt;
	MemoryContext old;
	char	   *fence;
	char	   *page_seq;
	Datum		values[5];
	Oid			types[5] = {XID8OID, XID8ARRAYOID, PG_SNAPSHOTOID, INT8OID, INT4OID};
	bool		pair_empty = false;

	begin_txn("outbox: reading the next page", true);
	*check = check_extension(detail, detail_len);
	if (*check != CURSOR_OK)
	{
		end_txn();
		return NULL;
	}

	/*
	 * The same row and foreign-row count as outbox._local_cursor() (keep
	 * them in step), with the identity computed here: that SQL function is
	 * planned at every call and reads pg_control for the identity.
	 */
	{
		Oid			t[2] = {INT8OID, OIDOID};
		Datum		v[2];

		v[0] = cursor_identity(&v[1]);
		if (run_saved(&cursor_plan,
					  "SELECT coalesce(c.prev_snap, '3:3:'::pg_snapshot)::text, c.cur_snap::text,"
					  "       c.page_seq, coalesce(c.fence_seq, 0),"
					  "       (SELECT count(*) FROM outbox._cursor o"
					  "         WHERE (o.system_identifier, o.datoid) <> ($1, $2)),"
					  "       pg_current_snapshot()::text"
					  "  FROM (SELECT) me LEFT JOIN outbox._cursor c"
					  "    ON (c.system_identifier, c.datoid) = ($1, $2)",
					  2, t, v, NULL, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "reading the outbox cursor failed");
	}
	if (strcmp(col_text(0, 5), "0") != 0)
	{
		*check = CURSOR_FOREIGN;
		snprintf(detail, detail_len,
				 "outbox data was restored from another cluster or database: run outbox.reset_cursor()");
		end_txn();
		return NULL;
	}

	/*
	 * The page lives in page_cxt, reset rather than freed between pages: its
	 * first block stays allocated, so a busy publisher does not hand
	 * megabytes back to malloc after every page (and fault them in again).
	 * An error before the page is complete leaves it to the next reset. In
	 * the unexpected case that it still holds a page, a context of its own
	 * under the caller's, so an error frees it.
	 */
	if (page_cxt == NULL)
		page_cxt = AllocSetContextCreate(TopMemoryContext, "outbox page",
										 PAGE_CXT_KEEP, PAGE_CXT_KEEP, ALLOCSET_DEFAULT_MAXSIZE);
	if (!page_cxt_busy)
	{
		cxt = page_cxt;
		MemoryContextReset(cxt);
	}
	else
		cxt = AllocSetContextCreate(caller_cxt, "outbox page", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	p = palloc0(sizeof(OutboxPage));
	p->cxt = cxt;
	p->prev_snap = col_text(0, 1);
	p->cur_snap = col_text(0, 2);
	page_seq = col_text(0, 3);
	fence = col_text(0, 4);
	if (p->cur_snap == NULL)
	{
		/* A new pair: cur is this transaction's own snapshot. */
		p->cur_snap = col_text(0, 6);
		page_seq = NULL;
	}
	p->after_seq = Max(page_seq ? strtoll(page_seq, NULL, 10) : 0, strtoll(fence, NULL, 10));
	MemoryContextSwitchTo(old);

	/*
	 * Pages walk the seq index from after_seq. A new pair starts just below
	 * its lowest candidate, found once through the xid index, so the walk
	 * never crosses the already published history.
	 */
	/*
	 * The pair as typed values, parsed once here rather than once per row:
	 * prev's xmax and in-progress list, and cur.
	 */
	values[0] = snapshot_xmax(p->prev_snap);
	values[1] = snapshot_xip(p->prev_snap);
	values[2] = DirectFunctionCall1(pg_snapshot_in, CStringGetDatum(p->cur_snap));

	if (page_seq == NULL)
	{
		Oid			t[3] = {XID8OID, XID8ARRAYOID, PG_SNAPSHOTOID};
		bool		isnull;
		Datum		min_seq;

		int			nest = push_plan_settings(pair_start_settings);

		if (run_saved(&pair_start_plan,
					  "SELECT min(e.seq) - 1 FROM outbox.events e"
					  " WHERE (e.xid >= $1 OR e.xid = ANY ($2))"
					  "   AND pg_visible_in_snapshot(e.xid, $3)",
					  3, t, values, NULL, true, CURSOR_OPT_GENERIC_PLAN) != SPI_OK_SELECT)
			elog(ERROR, "finding the start of a batch failed");
		pop_plan_settings(nest);
		min_seq = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			p->after_seq = Max(p->after_seq, DatumGetInt64(min_seq));
		else
			pair_empty = true;
	}

	if (page_plan == NULL)
	{
		/* Generic: walk the seq index in order and stop at the limit (a custom
		 * plan would fetch and sort the whole pair for every page). */
		page_plan = SPI_prepare_cursor(page_sql, 5, types, CURSOR_OPT_GENERIC_PLAN);
		if (page_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(page_plan);
	}
	values[3] = Int64GetDatum(p->after_seq);
	values[4] = Int32GetDatum(limit);
	if (pair_empty)
	{
		/*
		 * No row at all between the two snapshots (an idle pass): the page
		 * is empty. Walking the seq index from the fence instead would read
		 * the whole retained history at every wake-up.
		 */
		p->n = 0;
		p->pair_done = true;
	}
	else
	{
		int			nest = push_plan_settings(page_plan_settings);

		fill_page(p, cxt, limit, page_plan, 5, types, values);
		pop_plan_settings(nest);
	}
	p->last_seq = p->n > 0 ? p->seq[p->n - 1] : p->after_seq;
	end_txn();
	if (cxt == page_cxt)
		page_cxt_busy = true;
	else
		MemoryContextSetParent(cxt, TopMemoryContext);

	/*
	 * Every commit visible in cur must be durable before Kafka sees its
	 * events: a transaction that synchronous_commit=off could still lose in
	 * a crash must never be published.
	 */
	if (p->n > 0)
		flush_wal();
	return p;
}

static int
count_marked(OutboxPage *p)
{
	int			i,
				n = 0;

	for (i = 0; i < p->n; i++)
		if (p->fate[i])
			n++;
	return n;
}

/* Park the page's rejected messages and those held behind them. */
static void
park_marked(OutboxPage *p)
{
	int			i;

	for (i = 0; i < p->n; i++)
	{
		Datum		values[7];
		Oid			types[7] = {INT8OID, UUIDOID, TEXTOID, TEXTOID, INT4OID, TEXTOID, INT4OID};

		if (!p->fate[i])
			continue;
		values[0] = Int64GetDatum(p->seq[i]);
		values[1] = DirectFunctionCall1(uuid_in, CStringGetDatum(p->event_id[i]));
		values[2] = CStringGetTextDatum(p->msgs[i].topic);
		values[3] = CStringGetTextDatum(p->msgs[i].key);
		/* The first try and the try on its own: two attempts. */
		values[4] = Int32GetDatum(p->fate[i] == 'P' ? 2 : 0);
		values[5] = CStringGetTextDatum(p->error[i] ? p->error[i] : "waiting behind an earlier event of its key");
		values[6] = Int32GetDatum(outbox_max_attempts);
		if (SPI_execute_with_args("SELECT outbox._park($1, $2, $3, $4, $5, $6, $7)",
								  7, types, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "parking an event failed");
	}
}

void
outbox_advance_cursor(OutboxPage *p)
{
	Datum		values[6];
	Oid			types[6] = {TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, OIDOID};
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	/* An idle pass over an unchanged snapshot writes nothing. */
	if (p->n == 0 && p->pair_done && strcmp(p->prev_snap, p->cur_snap) == 0)
		return;
	if (p->n == 0 && !p->pair_done)
		return;

	begin_txn("outbox: recording published events", false);
	values[0] = CStringGetTextDatum(p->pair_done ? p->cur_snap : p->prev_snap);
	values[1] = p->pair_done ? (Datum) 0 : CStringGetTextDatum(p->cur_snap);
	nulls[1] = p->pair_done ? 'n' : ' ';
	values[2] = Int64GetDatum(p->last_seq);
	nulls[2] = p->pair_done ? 'n' : ' ';
	values[3] = Int64GetDatum(p->n - count_marked(p));
	values[4] = cursor_identity(&values[5]);
	/* What outbox._advance_cursor() does (keep them in step), from a saved plan. */
	if (run_saved(&advance_plan,
				  "INSERT INTO outbox._cursor AS c (system_identifier, datoid, prev_snap, cur_snap,"
				  "                                 page_seq, published_total)"
				  " VALUES ($5, $6, $1::pg_snapshot, $2::pg_snapshot, $3, $4)"
				  " ON CONFLICT (system_identifier, datoid) DO UPDATE"
				  "    SET prev_snap = excluded.prev_snap, cur_snap = excluded.cur_snap,"
				  "        page_seq = excluded.page_seq,"
				  "        published_total = c.published_total + excluded.published_total,"
				  "        updated_at = now()",
				  6, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "moving the outbox cursor failed");
	park_marked(p);
	end_txn();
	if (count_marked(p) > 0)
		outbox_load_blocked_keys();	/* and when the first retry is due */
}

void
outbox_free_page(OutboxPage *p)
{
	if (p == NULL)
		return;
	if (p->cxt == page_cxt)
	{
		MemoryContextReset(page_cxt);
		page_cxt_busy = false;
	}
	else
		MemoryContextDelete(p->cxt);
}

void
outbox_maybe_purge(void)
{
	TimestampTz now = GetCurrentTimestamp();

	/* Often enough for any retention; cheap when there is nothing to do. */
	if (!TimestampDifferenceExceeds(last_purge, now, 60 * 1000))
		return;
	last_purge = now;
	begin_txn("outbox: applying retention", false);
	SPI_execute("SELECT * FROM outbox.purge()", false, 0);
	end_txn();
}

OutboxPage *
outbox_fetch_parked(int limit)
{
	MemoryContext caller_cxt = CurrentMemoryContext;
	MemoryContext cxt;
	OutboxPage *p;
	Datum		values[1];
	Oid			types[1] = {INT4OID};

	begin_txn("outbox: retrying parked events", false);
	if (parked_plan == NULL)
	{
		parked_plan = SPI_prepare(parked_sql, 1, types);
		if (parked_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(parked_plan);
	}
	values[0] = Int32GetDatum(limit);
	cxt = AllocSetContextCreate(caller_cxt, "outbox parked", ALLOCSET_DEFAULT_SIZES);
	p = MemoryContextAllocZero(cxt, sizeof(OutboxPage));
	p->cxt = cxt;
	fill_page(p, cxt, limit, parked_plan, 1, types, values);
	end_txn();
	if (p->n == 0)
	{
		MemoryContextDelete(cxt);
		return NULL;
	}
	MemoryContextSetParent(cxt, TopMemoryContext);
	return p;
}

void
outbox_parked_delivered(int64 seq)
{
	Datum		values[1] = {Int64GetDatum(seq)};
	Oid			types[1] = {INT8OID};

	begin_txn("outbox: parked event delivered", false);
	SPI_execute_with_args("SELECT outbox._parked_delivered($1)", 1, types, values, NULL, false, 0);
	end_txn();
}

bool
outbox_parked_failed(int64 seq, const char *error, bool permanent)
{
	Datum		values[4];
	Oid			types[4] = {INT8OID, TEXTOID, BOOLOID, INT4OID};
	bool		dead;
	bool		isnull;

	values[0] = Int64GetDatum(seq);
	values[1] = CStringGetTextDatum(error);
	values[2] = BoolGetDatum(permanent);
	values[3] = Int32GetDatum(outbox_max_attempts);
	begin_txn("outbox: parked event refused", false);
	SPI_execute_with_args("SELECT outbox._parked_failed($1, $2, $3, $4)", 4, types, values, NULL, false, 0);
	dead = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	end_txn();
	return dead;
}

static uint64
key_hash(const char *topic, const char *key)
{
	uint64		h = hash_bytes_extended((const unsigned char *) topic, strlen(topic), 0);

	return hash_bytes_extended((const unsigned char *) key, strlen(key), h);
}

void
outbox_load_blocked_keys(void)
{
	HASHCTL		ctl;
	uint64		i;

	if (blocked_keys)
		hash_destroy(blocked_keys);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(uint64);
	blocked_keys = hash_create("outbox blocked keys", 64, &ctl, HASH_ELEM | HASH_BLOBS);

	begin_txn("outbox: loading parked keys", false);
	SPI_execute("SELECT topic, key, min(next_attempt_at) FROM outbox._parked GROUP BY topic, key", true, 0);
	next_parked_due = DT_NOEND;
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		due = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull);

		outbox_block_key(col_text(i, 1), col_text(i, 2));
		if (!isnull && DatumGetTimestampTz(due) < next_parked_due)
			next_parked_due = DatumGetTimestampTz(due);
	}
	end_txn();
}

bool
outbox_key_blocked(const char *topic, const char *key)
{
	uint64		h = key_hash(topic, key);

	return blocked_keys != NULL && hash_search(blocked_keys, &h, HASH_FIND, NULL) != NULL;
}

void
outbox_block_key(const char *topic, const char *key)
{
	uint64		h = key_hash(topic, key);

	if (blocked_keys == NULL)
		outbox_load_blocked_keys();
	(void) hash_search(blocked_keys, &h, HASH_ENTER, NULL);
}

TimestampTz
outbox_next_parked_due(void)
{
	return next_parked_due;
}
