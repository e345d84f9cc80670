/*
 * validate.h: checks that keep poison out of the outbox. Everything Kafka
 * would refuse later (topic names, sizes, header shapes) is refused here, in
 * the emitting transaction, where the caller can still react.
 */
#ifndef OUTBOX_VALIDATE_H
#define OUTBOX_VALIDATE_H

#include "utils/jsonb.h"

#define OUTBOX_TOPIC_MAX_LEN 249

/* Error text for a bad value, or NULL when it is fine (used by GUC hooks). */
extern const char *outbox_template_error(const char *tmpl);
extern const char *outbox_topic_patterns_error(const char *patterns);
extern bool outbox_traceparent_is_valid(const char *tp);

/* ereport(ERROR) on a NULL or empty required text argument. */
extern void outbox_require_text(const char *what, text *value);

/* The topic for an event: explicit, else the template; validated and allowed. */
extern char *outbox_resolve_topic(const char *explicit_topic,
								  const char *aggregate_type,
								  const char *event_type);
extern void outbox_check_topic_name(const char *topic);

/* Headers must be NULL or a flat JSON object of string values with free names. */
extern void outbox_check_headers(Jsonb *headers);

/*
 * The size the Kafka record will have, counting the headers the publisher
 * adds; refuses the event when it exceeds outbox.max_message_bytes.
 */
extern void outbox_check_message_size(const char *key, int keylen,
									  Jsonb *payload, Jsonb *headers,
									  const char *aggregate_type,
									  const char *aggregate_id,
									  const char *event_type,
									  const char *traceparent);

#endif							/* OUTBOX_VALIDATE_H */
