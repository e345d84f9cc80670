/*
 * emit.c: outbox.emit(), the append of one domain event in the caller's
 * transaction. Everything Kafka could refuse is checked here first.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "context.h"
#include "emit.h"
#include "guc.h"
#include "storage.h"
#include "uuid7.h"
#include "validate.h"
#include "wake.h"

PG_FUNCTION_INFO_V1(outbox_emit);

void
outbox_event_init(OutboxEvent *ev)
{
	outbox_uuid7_generate(&ev->event_id);
	if (!outbox_context_get(&ev->root_id, &ev->causation_id, &ev->has_causation))
	{
		/* No ambient context: the event is the root of its own process. */
		ev->root_id = ev->event_id;
		ev->has_causation = false;
	}
	ev->traceparent = outbox_current_traceparent();
}

static char *
text_arg_or_null(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * outbox.emit(aggregate_type, aggregate_id, event_type, payload,
 *             headers DEFAULT NULL, topic DEFAULT NULL, key DEFAULT NULL)
 */
Datum
outbox_emit(PG_FUNCTION_ARGS)
{
	OutboxEvent ev;
	OutboxWriter *w;
	char	   *topic_arg;
	pg_uuid_t  *result;

	memset(&ev, 0, sizeof(ev));
	outbox_require_text("aggregate_type", PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0));
	outbox_require_text("aggregate_id", PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1));
	outbox_require_text("event_type", PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2));
	ev.aggregate_type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ev.aggregate_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ev.event_type = text_to_cstring(PG_GETARG_TEXT_PP(2));
	ev.payload = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	ev.headers = PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4);
	topic_arg = text_arg_or_null(fcinfo, 5);
	ev.key = text_arg_or_null(fcinfo, 6);

	if (ev.key != NULL && ev.key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key must not be empty"),
				 errhint("Pass NULL to key events by aggregate_id.")));
	if (topic_arg != NULL && topic_arg[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("topic must not be empty"),
				 errhint("Pass NULL to use outbox.topic_template.")));

	outbox_check_headers(ev.headers);
	ev.topic = outbox_resolve_topic(topic_arg, ev.aggregate_type, ev.event_type);
	outbox_event_init(&ev);
	{
		const char *k = ev.key ? ev.key : ev.aggregate_id;

		outbox_check_message_size(k, strlen(k), ev.payload, ev.headers,
								  ev.aggregate_type, ev.aggregate_id,
								  ev.event_type, ev.traceparent);
	}

	w = outbox_writer_open(false);
	outbox_writer_insert(w, &ev);
	outbox_writer_close(w);
	outbox_note_emit();

	result = palloc(sizeof(pg_uuid_t));
	*result = ev.event_id;
	PG_RETURN_UUID_P(result);
}
