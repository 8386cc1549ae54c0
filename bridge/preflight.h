/*
 * preflight.h - does the bridge have what it needs in its database?
 *
 * Every connection of both links first asks the database (logread.c's
 * check, which decodes the answer into preflight_facts) whether the
 * extension is installed at a version this bridge reads, and whether the
 * bridge's role holds every privilege the bridge's statements need.
 * preflight_judge says what is missing, one log line per missing thing with
 * the statement that fixes it, and remembers it: while something is
 * missing /healthz and stream opens answer 503 "misconfigured" (and the
 * link waits, connected, for the next check: db.h, DB_STEP_HOLD).
 *
 * Invariants: a problem set is logged once, when it differs from the last
 * one logged (both links report the same set); the way back to a usable
 * database is logged once.
 */
#ifndef BRIDGE_PREFLIGHT_H
#define BRIDGE_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>

/* The oldest extension version this bridge reads (its statements need it). */
#define PREFLIGHT_MIN_MAJOR 1
#define PREFLIGHT_MIN_MINOR 1
#define PREFLIGHT_MIN_VERSION "1.1"

typedef enum preflight_kind {
	PF_SCHEMA,					/* USAGE on a schema */
	PF_TABLE,					/* SELECT on a table */
	PF_FUNCTION					/* EXECUTE on a function */
} preflight_kind;

typedef struct preflight_item {
	preflight_kind kind;
	const char *name;			/* quoted and qualified: sse_bridge.meta, public.sse_touch(uuid) */
	bool		exists;
	bool		granted;
} preflight_item;

#define PREFLIGHT_MAX_ITEMS 16

typedef struct preflight_facts {
	const char *db;				/* quoted */
	const char *role;			/* quoted */
	const char *version;		/* extversion, NULL: not installed */
	size_t		n;
	preflight_item items[PREFLIGHT_MAX_ITEMS];
} preflight_facts;

/* Judge one check's facts: log what changed; true when nothing is missing. */
bool		preflight_judge(const preflight_facts *f);

/* What is wrong, for /healthz; NULL while nothing is known to be missing. */
const char *preflight_problem(void);

/* The detail of a 503 for a stream the database cannot serve now. */
const char *preflight_unavailable(void);

/*
 * Take another process's verdict (a worker of --workers N takes its
 * supervisor's): problem NULL means nothing is missing; otherwise both
 * texts as preflight_problem and preflight_unavailable gave them there.
 */
void		preflight_adopt(const char *problem, const char *unavailable);

#endif
