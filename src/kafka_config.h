/*
 * kafka_config.h: the producer's librdkafka configuration, built from the
 * outbox.* settings. The only file besides producer.c that includes
 * librdkafka's header.
 */
#ifndef OUTBOX_KAFKA_CONFIG_H
#define OUTBOX_KAFKA_CONFIG_H

/* NULL if "k=v;k=v" text parses and names no forbidden property, else why not. */
extern const char *outbox_kafka_config_syntax_error(const char *text);

#ifdef OUTBOX_WITH_RDKAFKA
#include <librdkafka/rdkafka.h>

/*
 * A producer configuration from outbox.brokers, outbox.kafka_config and
 * outbox.kafka_config_file on top of the guarantees' defaults; NULL with a
 * message in errbuf (never containing a property value) on error.
 */
extern rd_kafka_conf_t *outbox_kafka_build_conf(char *errbuf, size_t errlen);
#endif

#endif							/* OUTBOX_KAFKA_CONFIG_H */
