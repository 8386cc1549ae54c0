/*
 * reload.c - the reload sequence and its hook list (reload.h).
 *
 * Invariant: cfg changes only in cfg_apply, after every hook prepared;
 * a refused reload leaves cfg and every hook as they were.
 */
#include "reload.h"

#include "log.h"

static reload_hook hooks[RELOAD_MAX_HOOKS];
static size_t nhooks;
unsigned long reload_count, reload_failures;

bool
reload_register(const reload_hook *h)
{
	if (nhooks == RELOAD_MAX_HOOKS)
		return false;
	hooks[nhooks++] = *h;
	return true;
}

void
reload_reset(void)
{
	nhooks = 0;
}

bool
reload_run(void)
{
	cfg_settings next;
	char		err[256];
	size_t		prepared = 0, changed;
	bool		ok = true;

	log_info("reload: rereading %s", cfg_file ? cfg_file : "the settings (no configuration file)");
	if (!cfg_reread(&next)) {
		log_error("reload refused, the running settings stay: %s", cfg_error());
		reload_failures++;
		return false;
	}
	for (; prepared < nhooks; prepared++) {
		const reload_hook *h = &hooks[prepared];

		err[0] = '\0';
		if (h->prepare && !h->prepare(h->arg, &next, err, sizeof(err))) {
			log_error("reload refused, the running settings stay: %s: %s", h->name,
					  err[0] ? err : "failed");
			ok = false;
			break;
		}
	}
	if (!ok) {
		for (size_t i = 0; i < prepared; i++)
			if (hooks[i].commit)
				hooks[i].commit(hooks[i].arg, false);
		cfg_settings_free(&next);
		reload_failures++;
		return false;
	}
	changed = cfg_apply(&next);
	for (size_t i = 0; i < nhooks; i++)
		if (hooks[i].commit)
			hooks[i].commit(hooks[i].arg, true);
	reload_count++;
	log_info("reload done: %zu setting%s changed", changed, changed == 1 ? "" : "s");
	return true;
}
