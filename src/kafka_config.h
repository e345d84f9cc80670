/*
 * kafka_config.h: librdkafka configurations of the producer (publisher) and
 * the consumers (inbox), built from the outbox.* settings. Only the files
 * that talk to librdkafka define OUTBOX_WITH_RDKAFKA.
 */
#ifndef OUTBOX_KAFKA_CONFIG_H
#define OUTBOX_KAFKA_CONFIG_H

/* NULL if "k=v;k=v" text parses and names no forbidden property, else why not. */
extern const char *outbox_kafka_config_syntax_error(const char *text);

/* NULL if a per-subscription consumer property is allowed and valid, else why not. */
extern const char *outbox_kafka_consumer_property_error(const char *name, const char *value);

#ifdef OUTBOX_WITH_RDKAFKA
#include <librdkafka/rdkafka.h>

/*
 * A producer (or consumer) configuration from outbox.brokers,
 * outbox.kafka_config and outbox.kafka_config_file on top of the guarantees'
 * defaults; NULL with a message in errbuf (never containing a property
 * value) on error.
 */
extern rd_kafka_conf_t *outbox_kafka_build_conf(bool consumer, char *errbuf, size_t errlen);

/* Set one more property, refusing the guarantee-breaking ones. */
extern bool outbox_kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value,
							 const char *origin, char *errbuf, size_t errlen);
#endif

#endif							/* OUTBOX_KAFKA_CONFIG_H */
