/*
 * storage.c: direct inserts into the outbox's current child table.
 *
 * emit() does not run an INSERT statement through SPI: it forms the tuple and
 * inserts it with the table AM and the executor's index maintenance, the way
 * the executor itself would, minus planning and permission checks (EXECUTE
 * on emit() is the permission). That keeps emit() as cheap as the plain
 * INSERT it replaces, with no SECURITY DEFINER call on the hot path.
 *
 * The current child and the relation OIDs are cached per backend; rotation
 * (outbox.purge) sends a relcache invalidation for outbox._slots, which every
 * backend processes at its next transaction start, so transactions that
 * begin after a rotation commits write to the new child.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/xid8.h"

#include "compat.h"
#include "storage.h"

/* Columns of outbox.events, in table order (see src/sql/storage.sql). */
enum
{
	COL_SEQ,
	COL_XID,
	COL_CREATED_AT,
	COL_EVENT_ID,
	COL_ROOT_ID,
	COL_CAUSATION_ID,
	COL_SLOT,
	COL_AGGREGATE_TYPE,
	COL_AGGREGATE_ID,
	COL_EVENT_TYPE,
	COL_TOPIC,
	COL_KEY,
	COL_PAYLOAD,
	COL_HEADERS,
	COL_TRACEPARENT,
	NUM_EVENT_COLUMNS
};

typedef struct StorageCache
{
	bool		valid;
	Oid			nsp;
	Oid			events_rel;
	Oid			slots_rel;
	Oid			seq_rel;
	Oid			child[OUTBOX_SLOTS];
	int			current_slot;
	Oid			owner;
} StorageCache;

static StorageCache cache = {false};

/* Rows a bulk writer collects before one multi-insert, as COPY does. */
#define BULK_ROWS 1000

struct OutboxWriter
{
	Relation	rel;
	int			slotno;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *tts;
	Datum		xid;
	Datum		created_at;
	/* bulk mode */
	bool		bulk;
	MemoryContext cxt;			/* the writer's own memory, the caller's at open */
	MemoryContext bulk_cxt;		/* the buffered tuples */
	BulkInsertState bistate;
	TupleTableSlot **slots;
	int			nbuffered;
};

PG_FUNCTION_INFO_V1(outbox_invalidate_slot_cache);

static void
storage_relcache_callback(Datum arg, Oid relid)
{
	int			i;

	if (!cache.valid)
		return;
	if (relid == InvalidOid || relid == cache.slots_rel ||
		relid == cache.seq_rel || relid == cache.events_rel)
	{
		cache.valid = false;
		return;
	}
	for (i = 0; i < OUTBOX_SLOTS; i++)
		if (relid == cache.child[i])
			cache.valid = false;
}

void
OutboxStorageInit(void)
{
	CacheRegisterRelcacheCallback(storage_relcache_callback, (Datum) 0);
}

static Oid
lookup_rel(const char *name)
{
	Oid			relid = get_relname_relid(name, cache.nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("outbox storage table \"outbox.%s\" is missing", name),
				 errhint("Reinstall the extension: DROP EXTENSION outbox_ext; CREATE EXTENSION outbox_ext.")));
	return relid;
}

/* The current slot, read with the latest snapshot: the newest rotation wins. */
static int
read_current_slot(Oid slots_rel)
{
	Relation	rel = table_open(slots_rel, AccessShareLock);
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TableScanDesc scan = table_beginscan(rel, snap, 0, NULL);
	TupleDesc	desc = RelationGetDescr(rel);
	HeapTuple	tup;
	int			result = -1;

	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull;
		Datum		slot = heap_getattr(tup, 1, desc, &isnull);
		Datum		is_current = heap_getattr(tup, 2, desc, &isnull);

		if (!isnull && DatumGetBool(is_current))
			result = DatumGetInt16(slot);
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);

	if (result < 0 || result >= OUTBOX_SLOTS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("outbox._slots has no current slot")));
	return result;
}

static void
ensure_cache(void)
{
	int			i;
	HeapTuple	tp;

	if (cache.valid)
		return;

	cache.nsp = get_namespace_oid("outbox", true);
	if (!OidIsValid(cache.nsp))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"outbox_ext\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION outbox_ext.")));
	cache.events_rel = lookup_rel("events");
	cache.slots_rel = lookup_rel("_slots");
	cache.seq_rel = lookup_rel("_event_seq");
	for (i = 0; i < OUTBOX_SLOTS; i++)
	{
		char		name[NAMEDATALEN];

		snprintf(name, sizeof(name), "events_%d", i);
		cache.child[i] = lookup_rel(name);
	}

	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(cache.events_rel));
	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for relation %u", cache.events_rel);
	cache.owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
	ReleaseSysCache(tp);

	cache.current_slot = read_current_slot(cache.slots_rel);
	cache.valid = true;
}

Oid
outbox_storage_owner(void)
{
	ensure_cache();
	return cache.owner;
}

OutboxWriter *
outbox_writer_open(bool bulk)
{
	OutboxWriter *w;

	PreventCommandIfReadOnly("outbox.emit()");
	PreventCommandIfParallelMode("outbox.emit()");
	PreventCommandDuringRecovery("outbox.emit()");

	ensure_cache();
	w = palloc0(sizeof(OutboxWriter));
	w->cxt = CurrentMemoryContext;
	w->slotno = cache.current_slot;
	w->rel = table_open(cache.child[w->slotno], RowExclusiveLock);
	if (RelationGetDescr(w->rel)->natts != NUM_EVENT_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("outbox storage does not match the loaded outbox_ext library"),
				 errhint("Run ALTER EXTENSION outbox_ext UPDATE, or reconnect after upgrading the package.")));

	w->estate = CreateExecutorState();
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	ExecOpenIndices(w->rri, false);
	w->tts = MakeSingleTupleTableSlot(RelationGetDescr(w->rel), &TTSOpsHeapTuple);
	w->xid = FullTransactionIdGetDatum(GetTopFullTransactionId());
	w->created_at = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (bulk)
	{
		w->bulk = true;
		w->bulk_cxt = AllocSetContextCreate(CurrentMemoryContext, "outbox bulk rows",
											ALLOCSET_DEFAULT_SIZES);
		w->bistate = GetBulkInsertState();
		w->slots = palloc0(sizeof(TupleTableSlot *) * BULK_ROWS);	/* made as needed */
	}
	return w;
}

/* Insert the buffered rows with one multi-insert, then their index entries. */
static void
flush_bulk(OutboxWriter *w)
{
	int			i;

	if (w->nbuffered == 0)
		return;
	table_multi_insert(w->rel, w->slots, w->nbuffered, GetCurrentCommandId(true), 0, w->bistate);
	for (i = 0; i < w->nbuffered; i++)
	{
		outbox_insert_index_tuples(w->rri, w->slots[i], w->estate);
		ExecClearTuple(w->slots[i]);
		ResetPerTupleExprContext(w->estate);
	}
	w->nbuffered = 0;
	MemoryContextReset(w->bulk_cxt);
}

static inline Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

void
outbox_writer_insert(OutboxWriter *w, const OutboxEvent *ev)
{
	Datum		values[NUM_EVENT_COLUMNS];
	bool		nulls[NUM_EVENT_COLUMNS];
	HeapTuple	tup;

	memset(nulls, false, sizeof(nulls));
	values[COL_SEQ] = Int64GetDatum(nextval_internal(cache.seq_rel, false));
	values[COL_XID] = w->xid;
	values[COL_CREATED_AT] = w->created_at;
	values[COL_EVENT_ID] = UUIDPGetDatum(&ev->event_id);
	values[COL_ROOT_ID] = UUIDPGetDatum(&ev->root_id);
	values[COL_CAUSATION_ID] = UUIDPGetDatum(&ev->causation_id);
	nulls[COL_CAUSATION_ID] = !ev->has_causation;
	values[COL_SLOT] = Int16GetDatum((int16) w->slotno);
	values[COL_AGGREGATE_TYPE] = CStringGetTextDatum(ev->aggregate_type);
	values[COL_AGGREGATE_ID] = CStringGetTextDatum(ev->aggregate_id);
	values[COL_EVENT_TYPE] = CStringGetTextDatum(ev->event_type);
	values[COL_TOPIC] = CStringGetTextDatum(ev->topic);
	values[COL_KEY] = text_or_null(ev->key, &nulls[COL_KEY]);
	values[COL_PAYLOAD] = ev->payload ? JsonbPGetDatum(ev->payload) : (Datum) 0;
	nulls[COL_PAYLOAD] = (ev->payload == NULL);
	values[COL_HEADERS] = ev->headers ? JsonbPGetDatum(ev->headers) : (Datum) 0;
	nulls[COL_HEADERS] = (ev->headers == NULL);
	values[COL_TRACEPARENT] = text_or_null(ev->traceparent, &nulls[COL_TRACEPARENT]);

	if (w->bulk)
	{
		MemoryContext old = MemoryContextSwitchTo(w->bulk_cxt);

		tup = heap_form_tuple(RelationGetDescr(w->rel), values, nulls);
		MemoryContextSwitchTo(old);
		if (w->slots[w->nbuffered] == NULL)
		{
			/* Slots outlive the row being captured: the writer's memory. */
			old = MemoryContextSwitchTo(w->cxt);
			w->slots[w->nbuffered] = MakeSingleTupleTableSlot(RelationGetDescr(w->rel),
															  &TTSOpsHeapTuple);
			MemoryContextSwitchTo(old);
		}
		ExecStoreHeapTuple(tup, w->slots[w->nbuffered++], false);
		if (w->nbuffered == BULK_ROWS)
			flush_bulk(w);
		return;
	}
	tup = heap_form_tuple(RelationGetDescr(w->rel), values, nulls);
	ExecStoreHeapTuple(tup, w->tts, true);
	table_tuple_insert(w->rel, w->tts, GetCurrentCommandId(true), 0, NULL);
	outbox_insert_index_tuples(w->rri, w->tts, w->estate);
	ExecClearTuple(w->tts);
	ResetPerTupleExprContext(w->estate);
}

void
outbox_writer_close(OutboxWriter *w)
{
	if (w->bulk)
	{
		int			i;

		flush_bulk(w);
		for (i = 0; i < BULK_ROWS && w->slots[i]; i++)
			ExecDropSingleTupleTableSlot(w->slots[i]);
		FreeBulkInsertState(w->bistate);
		table_finish_bulk_insert(w->rel, 0);
		MemoryContextDelete(w->bulk_cxt);
	}
	ExecCloseIndices(w->rri);
	ExecDropSingleTupleTableSlot(w->tts);
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);	/* the lock is kept until commit */
	pfree(w);
}

/*
 * Called by outbox.purge after it switches the current slot: every backend
 * drops its cached slot when this transaction commits.
 */
Datum
outbox_invalidate_slot_cache(PG_FUNCTION_ARGS)
{
	ensure_cache();
	CacheInvalidateRelcacheByRelid(cache.slots_rel);
	PG_RETURN_VOID();
}
