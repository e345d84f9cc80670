/*
 * wake.h: commits wake the publisher; database DDL that needs the
 * publisher gone (DROP DATABASE and friends) stops it first.
 */
#ifndef OUTBOX_WAKE_H
#define OUTBOX_WAKE_H

/* Mark that this transaction emitted: its commit sets the publisher's latch. */
extern void outbox_note_emit(void);

extern void OutboxWakeInit(void);

#endif							/* OUTBOX_WAKE_H */
