/*
 * launcher.h: the launcher background worker, which keeps one publisher
 * running per database named in outbox.database.
 */
#ifndef OUTBOX_LAUNCHER_H
#define OUTBOX_LAUNCHER_H

#include "fmgr.h"

extern void OutboxLauncherInit(void);

extern PGDLLEXPORT void outbox_launcher_main(Datum arg);
extern PGDLLEXPORT void outbox_publisher_main(Datum arg);

#endif							/* OUTBOX_LAUNCHER_H */
