/*
 * work.c - the work link, its housekeeping timer, and on a hot standby the
 * wait for replay and the optional --primary-db link for touches.
 *
 * Invariants: jobs run one at a time in submission order (db.c), so a
 * stream's jobs (its open, then its replay pages) are answered in the
 * order it sent them; the timer skips a turn while the link is down (or
 * held by the setup check) or more than WORK_MAX_QUEUE jobs wait, so
 * housekeeping never piles up behind an outage.
 *
 * Hot standby (docs/scaling.md): the link never writes there.  Touches go
 * to the --primary-db link when one is given (and are skipped otherwise);
 * sse_expire and sse_prune are left to the primary's bridge or a scheduled
 * job.  While the link is on a standby it asks the server, every second,
 * whether it is still in recovery, so after a promotion touches, expiry and
 * pruning resume on it without a restart.
 *
 * Lag is not a fork: on a standby, an open lookup whose answer is behind
 * the client (a resume point above the replayed head, a subscription not
 * replayed yet) is held: the answer is not handed up, and the same job is
 * asked again once the replayed head reaches its resume point (or, for a
 * subscription, each time the replay position moves), for at most
 * --lag-wait.
 * Then the answer goes up as it is (404 for a subscription still unknown),
 * except a resume point still above the head, which fails (503 with
 * Retry-After): only a row that differs, never a missing one, proves a
 * fork.  A held job is in exactly one of: the db queue, the waiting list.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "logread.h"
#include "work.h"

#define WORK_MAX_QUEUE 100
#define WORK_RECOVERY_CHECK_MS 1000

static db_link *work_link;		/* main.c's, or the supervisor's first pool link; NULL in a worker */
static db_link work_primary;	/* --primary-db: touches only */
static bool work_has_primary;
static uv_timer_t work_timer;
static work_ops work_up;
static work_remote work_far;	/* a worker's supervisor */

static struct {
	uv_timer_t	timer;			/* --replay-poll while the link is on a standby */
	db_job	   *waiting;		/* held opens, linked by job->next */
	bool		inflight;		/* a replay job is queued or in flight */
	uint64_t	checked;		/* loop ms of the last replay answer */
	uint64_t	generation;		/* link generation lsn was read on */
	char		lsn[32];
} lag;

work_lag_counters work_lag_stats;

static void work_open_done(db_job *job, PGresult *res);

/* Hand a held open's answer (res borrowed, or NULL) to its owner. */
static void
work_open_finish(db_job *job, PGresult *res)
{
	job->done = job->held_done;
	job->held_done = NULL;
	job->done(job, res);
}

void
work_submit(db_job *job)
{
	if (work_link != NULL)
		db_submit(work_link, job);
	else if (!work_far.submit(job, false))
		job->done(job, NULL);	/* the supervisor is gone: as a stopped link */
}

/*
 * An open on a standby may be behind the client: its answer goes through
 * work_open_done, which holds it for --lag-wait (a supervisor's opens from
 * its workers too, whichever pool link runs them).
 */
void
work_hold_open(db_job *job)
{
	bool		is_sub;
	int64_t		after;

	if (work_link != NULL && job->done != work_open_done && logread_open_job(job, &is_sub, &after)) {
		job->held_done = job->done;
		job->done = work_open_done;
		job->held_until = uv_now(work_link->loop) + cfg.lag_wait_ms;
	}
}

bool
work_submit_now(db_job *job)
{
	if (work_link == NULL) {
		if (!work_far.up())
			return false;
		job->no_retry = true;
		return work_far.submit(job, true);
	}
	work_hold_open(job);
	return db_submit_now(work_link, job);
}

/* Is this open answer behind what the client asks for? */
static bool
work_open_behind(const db_job *job, PGresult *res, int64_t *head)
{
	bool		is_sub, behind;
	int64_t		after;
	open_info	info;

	if (!logread_open_job(job, &is_sub, &after) || !logread_open_answer(res, is_sub, &info)) {
		open_info_clear(&info);
		return false;
	}
	*head = info.head;
	behind = (is_sub && !info.found) || (after >= 0 && after > info.head);
	open_info_clear(&info);
	return behind;
}

static void
work_open_done(db_job *job, PGresult *res)
{
	int64_t		head = 0, after = -1;
	bool		is_sub = false;

	if (res == NULL || job->cancelled || !work_link->standby ||
		!work_open_behind(job, res, &head)) {
		work_open_finish(job, res);
		return;
	}
	if (uv_now(work_link->loop) < job->held_until) {
		work_lag_stats.held++;
		job->next = lag.waiting;
		lag.waiting = job;
		return;
	}
	work_lag_stats.expired++;
	logread_open_job(job, &is_sub, &after);
	if (after > head) {
		log_warn("a client resumes after %" PRId64 ", above this standby's replayed head %"
				 PRId64 ", still after --lag-wait: answered 503 (not a fork: only a row "
				 "that differs is one)", after, head);
		work_open_finish(job, NULL);
		return;
	}
	work_open_finish(job, res);	/* a subscription this standby does not know: 404 */
}

/*
 * Ask held opens again: all of them (the link is no longer a standby's),
 * or, after a replay answer (moved: the position moved; head: the log head
 * there), those whose wait is over, those whose resume point the head has
 * reached, and on a move the ones waiting for a subscription.  A resume
 * point above the head is not asked again before the head reaches it.
 */
static bool
work_lag_due(const db_job *job, uint64_t now, bool moved, int64_t head)
{
	bool		is_sub;
	int64_t		after;

	if (now >= job->held_until)
		return true;			/* its last look */
	if (!logread_open_job(job, &is_sub, &after) || (after >= 0 && after > head))
		return false;
	return moved || after >= 0;
}

static void
work_lag_retry(bool all, bool moved, int64_t head)
{
	db_job	   *list = lag.waiting, *keep = NULL;
	uint64_t	now = uv_now(work_link->loop);

	lag.waiting = NULL;
	while (list != NULL) {
		db_job	   *job = list;

		list = job->next;
		job->next = NULL;
		if (job->cancelled)
			work_open_finish(job, NULL);
		else if (!all && !work_lag_due(job, now, moved, head)) {
			job->next = keep;
			keep = job;
		}
		else if (!db_submit_now(work_link, job))
			work_open_finish(job, NULL);
	}
	/* the held ones that were not asked again (more may have joined meanwhile) */
	while (keep != NULL) {
		db_job	   *job = keep;

		keep = job->next;
		job->next = lag.waiting;
		lag.waiting = job;
	}
}

static void
work_replay_done(db_job *job, PGresult *res)
{
	bool		in_recovery, moved;
	const char *lsn;
	int64_t		head;

	db_job_free(job);
	lag.inflight = false;
	if (res == NULL || !logread_replay_answer(res, &in_recovery, &lsn, &head))
		return;
	lag.checked = uv_now(work_link->loop);
	if (!in_recovery) {
		if (work_link->standby)
			log_info("db %s: the standby was promoted: touches, expiry and pruning run here now",
					 work_link->name);
		work_link->standby = false;
		work_lag_retry(true, true, head);
		return;
	}
	moved = lag.generation != work_link->generation || strcmp(lsn, lag.lsn) != 0;
	lag.generation = work_link->generation;
	snprintf(lag.lsn, sizeof(lag.lsn), "%s", lsn);
	work_lag_retry(false, moved, head);
}

/*
 * Every --replay-poll ms on a standby: with held opens, the replay
 * position; without, only the recovery check once a second.
 */
static void
work_on_replay_tick(uv_timer_t *t)
{
	uint64_t	now = uv_now(t->loop);
	db_job	   *job;

	if (lag.waiting != NULL && (!db_link_up(work_link) || !work_link->standby)) {
		work_lag_retry(true, true, 0);	/* answered as they are (or failed while down) */
		return;
	}
	if (lag.inflight || !work_link->standby || !db_link_up(work_link) ||
		(lag.waiting == NULL && now - lag.checked < WORK_RECOVERY_CHECK_MS))
		return;
	if ((job = logread_replay(work_replay_done, NULL)) == NULL)
		return;
	if (!db_submit_now(work_link, job)) {
		db_job_free(job);
		return;
	}
	lag.inflight = true;
}

static void
work_house_done(db_job *job, PGresult *res)
{
	db_job_free(job);
	if (res != NULL && PQresultStatus(res) != PGRES_TUPLES_OK)
		log_warn("housekeeping call failed: %s", PQresultErrorMessage(res));
}

void
work_touch(char *const *ids, size_t n)
{
	db_link    *on = work_link;
	db_job	   *job;

	if (on == NULL || n == 0)
		return;
	if (on->standby) {
		/* a standby takes no writes: the primary's link, or nothing */
		if (!work_has_primary || !db_link_up(&work_primary) ||
			db_queue_len(&work_primary) > WORK_MAX_QUEUE)
			return;
		on = &work_primary;
	}
	if ((job = logread_touch(ids, n, work_house_done)) != NULL)
		db_submit(on, job);
}

static void
work_on_timer(uv_timer_t *t)
{
	char	  **ids;
	size_t		n = 0;
	db_job	   *job;
	db_link    *touch_on = work_link;

	(void) t;
	if (work_link == NULL) {
		ids = work_up.touch_ids ? work_up.touch_ids(&n) : NULL;
		if (n > 0 && work_far.up())
			work_far.touch(ids, n);
		free(ids);
		return;
	}
	if (!db_link_up(work_link) || db_queue_len(work_link) > WORK_MAX_QUEUE)
		return;
	if (work_link->standby) {
		/* touches through --primary-db only; expiry is the primary's bridge's */
		if (!work_has_primary || !db_link_up(&work_primary) ||
			db_queue_len(&work_primary) > WORK_MAX_QUEUE)
			return;
		touch_on = &work_primary;
	}
	ids = work_up.touch_ids ? work_up.touch_ids(&n) : NULL;
	work_touch(ids, n);
	free(ids);
	if (touch_on == work_link && (job = logread_expire(work_house_done)) != NULL)
		db_submit(work_link, job);
}

void
work_init(uv_loop_t *loop, db_link *link, const work_ops *ops)
{
	const db_step *steps;
	size_t		n;

	work_up = *ops;
	work_link = link;
	steps = logread_work_steps(&n);
	db_link_init(link, loop, "work", steps, n, (db_ops) {0});
	uv_timer_init(loop, &work_timer);
	uv_timer_init(loop, &lag.timer);
	work_has_primary = cfg.primary_db != NULL && cfg.primary_db[0] != '\0';
	if (work_has_primary) {
		steps = logread_primary_steps(&n);
		db_link_init(&work_primary, loop, "primary", steps, n, (db_ops) {0});
		work_primary.conninfo = cfg.primary_db;
	}
}

void
work_init_remote(uv_loop_t *loop, const work_remote *remote, const work_ops *ops)
{
	work_up = *ops;
	work_link = NULL;
	work_far = *remote;
	uv_timer_init(loop, &work_timer);
}

void
work_start(void)
{
	if (work_link == NULL) {
		uv_timer_start(&work_timer, work_on_timer, cfg.touch_interval_ms, cfg.touch_interval_ms);
		return;
	}
	db_link_start(work_link);
	if (work_has_primary)
		db_link_start(&work_primary);
	uv_timer_start(&work_timer, work_on_timer, cfg.touch_interval_ms,
				   cfg.touch_interval_ms);
	uv_timer_start(&lag.timer, work_on_replay_tick, cfg.replay_poll_ms, cfg.replay_poll_ms);
}

void
work_stop(void)
{
	db_job	   *list = lag.waiting;

	uv_timer_stop(&work_timer);
	uv_close((uv_handle_t *) &work_timer, NULL);
	if (work_link == NULL) {
		logread_shutdown();
		return;
	}
	uv_timer_stop(&lag.timer);
	uv_close((uv_handle_t *) &lag.timer, NULL);
	lag.waiting = NULL;
	while (list != NULL) {
		db_job	   *job = list;

		list = job->next;
		job->next = NULL;
		work_open_finish(job, NULL);
	}
	if (work_has_primary)
		db_link_stop(&work_primary);
	db_link_stop(work_link);
	logread_shutdown();
}
