/*
 * sse_bridge.c
 *		Module entry point: settings and callback registration.
 *
 * Settings (all reserved under the "sse_bridge." prefix):
 *
 * sse_bridge.max_payload (bytes, default 1MB, PGC_SUSET)
 *		Largest payload sse_publish and sse_notify_trigger accept.  Every
 *		event is held in transaction memory until commit, stored in the log
 *		and buffered by the bridge for each client, so the limit protects
 *		shared resources; only superusers (or roles granted SET on it) may
 *		change it, per session or with ALTER ROLE/DATABASE ... SET.
 *
 * sse_bridge.retention (seconds, default 1 day, PGC_USERSET)
 *		Default age for sse_prune(NULL).  It is only a default for an
 *		argument of a privileged function that accepts any interval anyway,
 *		so restricting it would protect nothing; USERSET lets whoever runs
 *		the pruning job set it per role or per database.
 *
 * sse_bridge.retention_max_events (events, default 0 = no limit, PGC_USERSET)
 *		sse_prune also deletes the oldest events beyond this many, whatever
 *		their age.  USERSET for the same reason as sse_bridge.retention.
 *
 * The library must be loaded before the first event of a transaction is
 * queued; it always is, because queueing happens inside its own functions.
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "sse_bridge.h"

PG_MODULE_MAGIC;

int			sse_max_payload = 1024 * 1024;
int			sse_retention = 24 * 60 * 60;
int			sse_retention_max_events = 0;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("sse_bridge.max_payload",
							"Largest event payload sse_publish accepts.",
							"Measured in bytes of the payload's text form.",
							&sse_max_payload,
							1024 * 1024,
							1,
							MaxAllocSize,
							PGC_SUSET,
							GUC_UNIT_BYTE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sse_bridge.retention",
							"Age of the events sse_prune(NULL) deletes.",
							"Events committed longer ago than this are pruned.",
							&sse_retention,
							24 * 60 * 60,
							1,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sse_bridge.retention_max_events",
							"Most events sse_prune keeps, whatever their age.",
							"sse_prune deletes the oldest events beyond this many.  0 means no limit.",
							&sse_retention_max_events,
							0,
							0,
							INT_MAX,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

#if PG_VERSION_NUM >= 150000
	MarkGUCPrefixReserved("sse_bridge");
#else
	EmitWarningsOnPlaceholders("sse_bridge");
#endif

	SsePublishInit();
}
