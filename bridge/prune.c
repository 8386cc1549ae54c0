/*
 * prune.c - retention: the bridge calls sse_prune() on a timer.
 *
 * Once per connection of the work link (db_link.generation moves on every
 * connect) the bridge asks whether its role may execute sse_prune.  If it
 * may, it calls sse_prune() every --prune-interval seconds; the server
 * decides what goes (sse_bridge.retention and
 * sse_bridge.retention_max_events as set for the bridge's role or
 * database).  If it may not, one warning names the missing grant, and
 * nothing else happens until a later connection finds the grant.  Calls go
 * on the work link, so they have its deadline; several bridges may prune
 * the same log at once (sse_prune serializes them on the meta row).
 *
 * On a hot standby (db_link.standby) nothing is called: the prune done on
 * the primary reaches the standby by replication.  After a promotion the
 * calls start without a restart.
 *
 * Invariants: at most one check or prune job is queued or in flight
 * (`inflight`); a callback after prune_stop only frees its job.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "logread.h"
#include "prune.h"

#define PRUNE_TICK_MS 1000

typedef enum prune_grant {
	PRUNE_UNKNOWN,
	PRUNE_GRANTED,
	PRUNE_DENIED
} prune_grant;

static struct {
	db_link    *link;
	uv_timer_t	timer;
	uint64_t	interval_ms;
	uint64_t	checked;		/* link generation the grant was checked on */
	uint64_t	asking;			/* link generation of the check in flight */
	uint64_t	next_due;		/* loop ms of the next call */
	prune_grant grant;
	prune_grant warned;			/* last state logged */
	bool		inflight;
	bool		running;
} prune;

prune_counters prune_stats;

static void
prune_check_done(db_job *job, PGresult *res)
{
	uint64_t	generation = prune.asking;
	const char *role, *schema;
	logread_grant g;

	db_job_free(job);
	prune.inflight = false;
	if (!prune.running || res == NULL)
		return;
	g = logread_prune_grant_answer(res, &role, &schema);
	if (g == LG_ERROR) {
		log_warn("retention: cannot look up sse_prune: %s", PQresultErrorMessage(res));
		return;					/* the next tick asks again */
	}
	prune.checked = generation;
	prune.grant = g == LG_GRANTED ? PRUNE_GRANTED : PRUNE_DENIED;
	if (prune.warned == prune.grant)
		return;					/* said already */
	prune.warned = prune.grant;
	if (g == LG_MISSING)
		log_warn("retention is not running: the sse_bridge extension has no sse_prune(interval)");
	else if (g == LG_DENIED)
		log_warn("retention is not running: role %s may not execute sse_prune; "
				 "grant it with: GRANT EXECUTE ON FUNCTION %s.sse_prune(interval) TO %s; "
				 "or prune elsewhere and set --prune-interval 0", role, schema, role);
	else
		log_info("retention: calling sse_prune every %" PRIu64 " s", prune.interval_ms / 1000);
}

static void
prune_call_done(db_job *job, PGresult *res)
{
	int64_t		n;

	db_job_free(job);
	prune.inflight = false;
	if (!prune.running || res == NULL)
		return;
	if (!logread_prune_answer(res, &n)) {
		prune_stats.failures++;
		log_warn("retention: sse_prune failed: %s", PQresultErrorMessage(res));
		return;
	}
	prune_stats.runs++;
	if (n > 0) {
		prune_stats.deleted += (uint64_t) n;
		log_info("retention: pruned %" PRId64 " events", n);
	}
}

static void
prune_on_tick(uv_timer_t *t)
{
	uint64_t	now = uv_now(t->loop);
	db_job	   *job;

	if (prune.inflight || !db_link_up(prune.link) || db_queue_len(prune.link) > 100 ||
		prune.link->standby)
		return;					/* a hot standby is pruned by the primary's WAL */
	if (prune.grant == PRUNE_UNKNOWN || prune.checked != prune.link->generation) {
		job = logread_prune_grant(prune_check_done, &prune);
		if (job == NULL)
			return;
		prune.asking = prune.link->generation;
		prune.grant = PRUNE_UNKNOWN;
	}
	else if (prune.grant == PRUNE_GRANTED && now >= prune.next_due) {
		job = logread_prune(prune_call_done, &prune);
		if (job == NULL)
			return;
		prune.next_due = now + prune.interval_ms;
	}
	else
		return;
	prune.inflight = true;
	db_submit(prune.link, job);
}

void
prune_init(uv_loop_t *loop, db_link *work, uint64_t interval_ms)
{
	memset(&prune, 0, sizeof(prune));
	prune.link = work;
	prune.interval_ms = interval_ms;
	uv_timer_init(loop, &prune.timer);
}

void
prune_start(void)
{
	if (prune.interval_ms == 0) {
		log_info("retention: --prune-interval is 0, the bridge does not prune");
		return;
	}
	prune.running = true;
	uv_timer_start(&prune.timer, prune_on_tick, PRUNE_TICK_MS, PRUNE_TICK_MS);
}

void
prune_stop(void)
{
	prune.running = false;
	uv_timer_stop(&prune.timer);
	uv_close((uv_handle_t *) &prune.timer, NULL);
}
