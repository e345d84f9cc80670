/*
 * capture.c: the change-capture trigger behind outbox.capture().
 *
 * capture() installs AFTER ... FOR EACH STATEMENT triggers with transition
 * tables, one per event kind, so a 100k-row statement costs one trigger call
 * that walks the transition table with one opened writer, not 100k calls.
 * The same function also works as a row-level trigger (for a comparison in
 * bench/ and for users who need one).
 *
 * Trigger arguments: aggregate type, then the id column name(s).
 * Events: <aggregate_type>Created (payload: the new row), Updated
 * ({"old": ..., "new": ...}; old and new rows are paired by position, as the
 * executor appends them together, so a changed key is still paired right),
 * Deleted (the old row) and Truncated ({"table": "schema.name"}).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "emit.h"
#include "storage.h"
#include "validate.h"
#include "wake.h"

PG_FUNCTION_INFO_V1(outbox_capture_trigger);

typedef struct CaptureState
{
	Relation	rel;
	TupleDesc	desc;
	const char *aggregate_type;
	const char *event_type;
	const char *topic;
	int			nkeys;
	AttrNumber *key_attnums;
	FmgrInfo	to_jsonb;		/* to_jsonb(<table row type>) */
	OutboxWriter *writer;		/* opened lazily, lives in statement_cxt */
	bool		bulk;			/* statement-level: many rows, multi-inserts */
	MemoryContext statement_cxt;
	MemoryContext row_cxt;		/* reset after every row */
} CaptureState;

static void
resolve_key_columns(CaptureState *cs, Trigger *trig)
{
	int			i;

	cs->nkeys = trig->tgnargs - 1;
	cs->key_attnums = palloc(sizeof(AttrNumber) * cs->nkeys);
	for (i = 0; i < cs->nkeys; i++)
	{
		const char *col = trig->tgargs[i + 1];
		AttrNumber	attnum = InvalidAttrNumber;
		int			a;

		for (a = 0; a < cs->desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(cs->desc, a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), col) == 0)
			{
				attnum = att->attnum;
				break;
			}
		}
		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("captured id column \"%s\" no longer exists in table \"%s\"",
							col, RelationGetRelationName(cs->rel)),
					 errhint("Run outbox.uncapture() and outbox.capture() again for this table.")));
		cs->key_attnums[i] = attnum;
	}
}

static void
setup_to_jsonb(CaptureState *cs)
{
	Oid			fn = F_TO_JSONB;	/* to_jsonb(anyelement), a fixed built-in OID */
	FuncExpr   *expr;

	fmgr_info(fn, &cs->to_jsonb);
	/* to_jsonb(anyelement) reads its argument type from the call expression. */
	expr = makeFuncExpr(fn, JSONBOID,
						list_make1(makeNullConst(cs->rel->rd_rel->reltype, -1, InvalidOid)),
						InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	fmgr_info_set_expr((Node *) expr, &cs->to_jsonb);
}

static Jsonb *
row_to_jsonb(CaptureState *cs, HeapTuple tuple)
{
	Datum		row = heap_copy_tuple_as_datum(tuple, cs->desc);

	return DatumGetJsonbP(FunctionCall1(&cs->to_jsonb, row));
}

/*
 * aggregate_id: the key as it appears in the payload's JSON (ISO 8601 for
 * dates, whatever the session's DateStyle; a timestamptz still carries the
 * session's UTC offset): a string key as its text, another scalar as its
 * JSON text, a composite key as a JSON array.
 */
static char *
aggregate_id_of(CaptureState *cs, Jsonb *rowjson)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	if (cs->nkeys > 1)
		appendStringInfoChar(&buf, '[');
	for (i = 0; i < cs->nkeys; i++)
	{
		const char *name = NameStr(TupleDescAttr(cs->desc, cs->key_attnums[i] - 1)->attname);
		JsonbValue *v = getKeyJsonValueFromContainer(&rowjson->root, name, strlen(name), NULL);

		if (v == NULL || v->type == jbvNull)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("captured row of table \"%s\" has a NULL id column \"%s\"",
							RelationGetRelationName(cs->rel), name),
					 errhint("Capture with an id column that is never NULL, such as the primary key.")));
		if (i > 0)
			appendStringInfoChar(&buf, ',');
		if (cs->nkeys == 1 && v->type == jbvString)
			appendBinaryStringInfo(&buf, v->val.string.val, v->val.string.len);
		else
			(void) JsonbToCString(&buf, &JsonbValueToJsonb(v)->root, 0);
	}
	if (cs->nkeys > 1)
		appendStringInfoChar(&buf, ']');
	return buf.data;
}

static Jsonb *
old_new_payload(Jsonb *oldj, Jsonb *newj)
{
	JsonbParseState *st = NULL;
	JsonbValue	k,
				v;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "old";
	k.val.string.len = 3;
	pushJsonbValue(&st, WJB_KEY, &k);
	v.type = jbvBinary;
	v.val.binary.data = &oldj->root;
	v.val.binary.len = VARSIZE(oldj) - VARHDRSZ;
	pushJsonbValue(&st, WJB_VALUE, &v);
	k.val.string.val = "new";
	pushJsonbValue(&st, WJB_KEY, &k);
	v.val.binary.data = &newj->root;
	v.val.binary.len = VARSIZE(newj) - VARHDRSZ;
	pushJsonbValue(&st, WJB_VALUE, &v);
	return JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL));
}

static void
emit_one(CaptureState *cs, const char *aggregate_id, Jsonb *payload)
{
	OutboxEvent ev;

	memset(&ev, 0, sizeof(ev));
	ev.aggregate_type = cs->aggregate_type;
	ev.aggregate_id = aggregate_id;
	ev.event_type = cs->event_type;
	ev.payload = payload;
	outbox_event_init(&ev);
	outbox_check_message_size(aggregate_id, strlen(aggregate_id), payload, NULL,
							  ev.aggregate_type, aggregate_id, ev.event_type,
							  ev.traceparent);
	if (cs->writer == NULL)
	{
		/* First row: statements that change nothing resolve no topic and open nothing. */
		MemoryContext saved = MemoryContextSwitchTo(cs->statement_cxt);

		cs->topic = outbox_resolve_topic(NULL, cs->aggregate_type, cs->event_type);
		cs->writer = outbox_writer_open(cs->bulk);
		MemoryContextSwitchTo(saved);
	}
	ev.topic = cs->topic;
	outbox_writer_insert(cs->writer, &ev);
}

/* One row change; old/new as the event kind needs them. */
static void
capture_row(CaptureState *cs, HeapTuple oldtup, HeapTuple newtup)
{
	MemoryContext saved = MemoryContextSwitchTo(cs->row_cxt);
	Jsonb	   *oldj = oldtup ? row_to_jsonb(cs, oldtup) : NULL;
	Jsonb	   *newj = newtup ? row_to_jsonb(cs, newtup) : NULL;
	char	   *aggregate_id;

	aggregate_id = aggregate_id_of(cs, newj ? newj : oldj);

	emit_one(cs, aggregate_id, (oldj && newj) ? old_new_payload(oldj, newj) : (newj ? newj : oldj));
	MemoryContextSwitchTo(saved);
	MemoryContextReset(cs->row_cxt);
}

/* Walk a transition table with a read pointer of our own (others may read it too). */
static TupleTableSlot *
open_transition(Tuplestorestate *ts, TupleDesc desc, int *ptr)
{
	*ptr = tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(ts, *ptr);
	tuplestore_rescan(ts);
	return MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
}

static void
capture_statement(CaptureState *cs, TriggerData *td, bool has_old, bool has_new)
{
	TupleTableSlot *oslot = NULL,
			   *nslot = NULL;
	int			optr = 0,
				nptr = 0;

	if (has_old)
		oslot = open_transition(td->tg_oldtable, cs->desc, &optr);
	if (has_new)
		nslot = open_transition(td->tg_newtable, cs->desc, &nptr);

	for (;;)
	{
		HeapTuple	oldtup = NULL,
					newtup = NULL;
		bool		shouldFree;

		if (has_old)
		{
			tuplestore_select_read_pointer(td->tg_oldtable, optr);
			if (!tuplestore_gettupleslot(td->tg_oldtable, true, false, oslot))
				break;
			oldtup = ExecFetchSlotHeapTuple(oslot, true, &shouldFree);
		}
		if (has_new)
		{
			tuplestore_select_read_pointer(td->tg_newtable, nptr);
			if (!tuplestore_gettupleslot(td->tg_newtable, true, false, nslot))
			{
				if (has_old)
					elog(ERROR, "transition tables of an UPDATE differ in length");
				break;
			}
			newtup = ExecFetchSlotHeapTuple(nslot, true, &shouldFree);
		}
		capture_row(cs, oldtup, newtup);
	}

	if (oslot)
	{
		tuplestore_select_read_pointer(td->tg_oldtable, 0);
		ExecDropSingleTupleTableSlot(oslot);
	}
	if (nslot)
	{
		tuplestore_select_read_pointer(td->tg_newtable, 0);
		ExecDropSingleTupleTableSlot(nslot);
	}
}

static void
capture_truncate(CaptureState *cs)
{
	char	   *qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(cs->rel)),
													   RelationGetRelationName(cs->rel));
	JsonbParseState *st = NULL;
	JsonbValue	k,
				v;

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "table";
	k.val.string.len = 5;
	pushJsonbValue(&st, WJB_KEY, &k);
	v.type = jbvString;
	v.val.string.val = qualified;
	v.val.string.len = strlen(qualified);
	pushJsonbValue(&st, WJB_VALUE, &v);
	emit_one(cs, qualified, JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL)));
}

Datum
outbox_capture_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	CaptureState cs;
	TriggerEvent ev;
	const char *suffix;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox._capture_trigger() must be called as a trigger"),
				 errhint("Use outbox.capture(table) to install it.")));
	ev = td->tg_event;
	if (!TRIGGER_FIRED_AFTER(ev))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox._capture_trigger() must fire AFTER the change")));
	if (td->tg_trigger->tgnargs < 2)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("outbox._capture_trigger() needs an aggregate type and id column arguments"),
				 errhint("Use outbox.capture(table) to install it.")));

	memset(&cs, 0, sizeof(cs));
	cs.rel = td->tg_relation;
	cs.desc = RelationGetDescr(cs.rel);
	cs.aggregate_type = td->tg_trigger->tgargs[0];

	if (TRIGGER_FIRED_BY_INSERT(ev))
		suffix = "Created";
	else if (TRIGGER_FIRED_BY_UPDATE(ev))
		suffix = "Updated";
	else if (TRIGGER_FIRED_BY_DELETE(ev))
		suffix = "Deleted";
	else
		suffix = "Truncated";
	cs.event_type = psprintf("%s%s", cs.aggregate_type, suffix);
	cs.statement_cxt = CurrentMemoryContext;
	cs.row_cxt = AllocSetContextCreate(CurrentMemoryContext, "outbox capture row",
									   ALLOCSET_DEFAULT_SIZES);

	if (TRIGGER_FIRED_BY_TRUNCATE(ev))
		capture_truncate(&cs);
	else
	{
		resolve_key_columns(&cs, td->tg_trigger);
		setup_to_jsonb(&cs);
		if (TRIGGER_FIRED_FOR_ROW(ev))
		{
			if (TRIGGER_FIRED_BY_INSERT(ev))
				capture_row(&cs, NULL, td->tg_trigtuple);
			else if (TRIGGER_FIRED_BY_UPDATE(ev))
				capture_row(&cs, td->tg_trigtuple, td->tg_newtuple);
			else
				capture_row(&cs, td->tg_trigtuple, NULL);
		}
		else
		{
			bool		has_old = TRIGGER_FIRED_BY_UPDATE(ev) || TRIGGER_FIRED_BY_DELETE(ev);
			bool		has_new = TRIGGER_FIRED_BY_UPDATE(ev) || TRIGGER_FIRED_BY_INSERT(ev);

			if ((has_old && td->tg_oldtable == NULL) || (has_new && td->tg_newtable == NULL))
				ereport(ERROR,
						(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						 errmsg("statement-level outbox capture needs transition tables"),
						 errhint("Use outbox.capture(table) to install it.")));
			/* Multi-inserts pay off from two rows; a one-row statement goes straight in. */
			cs.bulk = tuplestore_tuple_count(has_new ? td->tg_newtable : td->tg_oldtable) > 1;
			capture_statement(&cs, td, has_old, has_new);
		}
	}

	if (cs.writer)
	{
		outbox_writer_close(cs.writer);
		outbox_note_emit();
	}
	MemoryContextDelete(cs.row_cxt);
	return PointerGetDatum(NULL);
}
