/*
 * reload.h - rereading the settings while the bridge runs (SIGHUP).
 *
 * reload_run rereads the configuration (cfg_reread: the file, the
 * environment and the command line given at start), then asks every
 * registered hook to prepare for the new settings.  Only when every hook
 * is ready are the settings applied (cfg_apply) and the hooks committed;
 * otherwise nothing changes and the hooks discard what they prepared.
 * Settings read where they are used (limits, CORS, log level, ...) change
 * with cfg; a hook applies the others (the public scope, memory bound,
 * keys).  Open streams are not touched.
 *
 * A hook's prepare sees the proposed settings and may fail with a reason
 * (the reload is refused); commit(arg, true) makes what it prepared live,
 * commit(arg, false) discards it.  commit runs for every hook whose prepare
 * ran (with false when a later one failed).
 */
#ifndef BRIDGE_RELOAD_H
#define BRIDGE_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define RELOAD_MAX_HOOKS 16

typedef struct reload_hook {
	const char *name;			/* for logs */
	bool		(*prepare)(void *arg, const cfg_settings *next, char *err, size_t errsize);	/* may be NULL */
	void		(*commit)(void *arg, bool apply);	/* may be NULL */
	void	   *arg;
} reload_hook;

/* Add a hook (copied); false when RELOAD_MAX_HOOKS are registered. */
bool		reload_register(const reload_hook *h);

/* Forget every hook (shutdown, tests). */
void		reload_reset(void);

/* Reread and apply; false (running settings kept, reason logged) on an error. */
bool		reload_run(void);

/* Reloads done and refused since start (metrics, tests). */
extern unsigned long reload_count, reload_failures;

#endif
