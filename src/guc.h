/*
 * guc.h: the outbox.* settings used by emit, capture and maintenance.
 */
#ifndef OUTBOX_GUC_H
#define OUTBOX_GUC_H

extern char *outbox_topic_template;
extern char *outbox_allowed_topics;
extern int	outbox_max_message_bytes;
extern char *outbox_traceparent;
extern int	outbox_retention_s;
extern int	outbox_processed_retention_s;

/* Publisher settings (read by the workers; reloaded on SIGHUP). */
extern char *outbox_databases;
extern char *outbox_brokers;
extern char *outbox_kafka_config;
extern char *outbox_kafka_config_file;
extern int	outbox_batch_size;
extern int	outbox_poll_interval_ms;
extern int	outbox_max_attempts;
extern int	outbox_inbox_fault_after_commits;	/* test-only fault point */

extern void OutboxGucInit(void);

/* The parsed outbox.traceparent, or NULL when none is set. */
extern const char *outbox_current_traceparent(void);

#endif							/* OUTBOX_GUC_H */
