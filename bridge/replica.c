/*
 * replica.c - the replay-position watcher of the live link (replica.h).
 *
 * Every --replay-poll ms, while the live link is up on a standby, one
 * "replay" query asks the server whether it is still in recovery and how
 * far it has replayed.  A new position means WAL was applied, possibly a
 * commit of events: ops.moved asks the feed for a fetch (which coalesces
 * with one in flight).  The standby's own clock and its replay are all it
 * reads: the primary does no work for it beyond its WAL sender.
 *
 * Promotion: when the answer says the server left recovery, the link is
 * no longer a standby's: it sends LISTEN sse_bridge, and once that is
 * answered ops.promoted fetches whatever committed before LISTEN took
 * effect.  A reconnect later runs the setup, which checks recovery afresh.
 *
 * Invariants: at most one replay or LISTEN job is queued or in flight
 * (`inflight`); a callback after replica_stop only frees its job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "logread.h"
#include "replica.h"

static struct {
	db_link    *link;
	uv_timer_t	timer;
	replica_ops up;
	bool		inflight;
	bool		running;
	uint64_t	generation;		/* link generation lsn was read on */
	char		lsn[32];		/* last replay position seen, "" none */
} rep;

replica_counters replica_stats;

static void
replica_listen_done(db_job *job, PGresult *res)
{
	db_job_free(job);
	rep.inflight = false;
	if (!rep.running || res == NULL)
		return;
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warn("db %s: LISTEN after the promotion failed: %s", rep.link->name,
				 PQresultErrorMessage(res));
		return;					/* the backstop poll still fetches */
	}
	log_info("db %s: listening for notifications on the promoted server", rep.link->name);
	rep.up.promoted();
}

static void
replica_promoted(void)
{
	db_job	   *job = logread_listen(replica_listen_done, &rep);

	replica_stats.promotions++;
	rep.link->standby = false;
	log_info("db %s: the standby was promoted: the bridge takes on a primary's work", rep.link->name);
	if (job == NULL) {
		log_error("out of memory for LISTEN; the backstop poll fetches until a reconnect");
		return;
	}
	rep.inflight = true;
	db_submit(rep.link, job);
}

static void
replica_done(db_job *job, PGresult *res)
{
	bool		in_recovery;
	const char *lsn;
	int64_t		head;

	db_job_free(job);
	rep.inflight = false;
	if (!rep.running || res == NULL)
		return;
	if (!logread_replay_answer(res, &in_recovery, &lsn, &head)) {
		log_warn("db %s: reading the replay position failed: %s", rep.link->name,
				 PQresultErrorMessage(res));
		return;
	}
	replica_stats.polls++;
	if (!in_recovery) {
		replica_promoted();
		return;
	}
	if (rep.generation == rep.link->generation && strcmp(lsn, rep.lsn) == 0)
		return;
	rep.generation = rep.link->generation;
	snprintf(rep.lsn, sizeof(rep.lsn), "%s", lsn);
	replica_stats.moves++;
	rep.up.moved();
}

static void
replica_on_tick(uv_timer_t *t)
{
	db_job	   *job;

	(void) t;
	if (rep.inflight || !rep.link->standby || rep.link->state != DB_IDLE)
		return;					/* never queue behind a fetch: the next tick asks */
	if ((job = logread_replay(replica_done, &rep)) == NULL)
		return;
	if (!db_submit_now(rep.link, job)) {
		db_job_free(job);
		return;
	}
	rep.inflight = true;
}

void
replica_init(uv_loop_t *loop, db_link *live, const replica_ops *ops)
{
	memset(&rep, 0, sizeof(rep));
	rep.link = live;
	rep.up = *ops;
	uv_timer_init(loop, &rep.timer);
}

void
replica_start(uint64_t every_ms)
{
	rep.running = true;
	uv_timer_start(&rep.timer, replica_on_tick, every_ms, every_ms);
}

void
replica_stop(void)
{
	rep.running = false;
	uv_timer_stop(&rep.timer);
	uv_close((uv_handle_t *) &rep.timer, NULL);
}
