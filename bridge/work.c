/*
 * work.c - the work link and its housekeeping timer.
 *
 * Invariants: jobs run one at a time in submission order (db.c), so a
 * stream's jobs (its open, then its replay pages) are answered in the
 * order it sent them; the timer skips a turn while the link is down (or
 * held by the setup check) or more than WORK_MAX_QUEUE jobs wait, so
 * housekeeping never piles up behind an outage.
 */
#include <stdlib.h>

#include "config.h"
#include "log.h"
#include "logread.h"
#include "work.h"

#define WORK_MAX_QUEUE 100

static db_link *work_link;		/* main.c's; NULL in a worker */
static uv_timer_t work_timer;
static work_ops work_up;
static work_remote work_far;	/* a worker's supervisor */

void
work_submit(db_job *job)
{
	if (work_link != NULL)
		db_submit(work_link, job);
	else if (!work_far.submit(job, false))
		job->done(job, NULL);	/* the supervisor is gone: as a stopped link */
}

bool
work_submit_now(db_job *job)
{
	if (work_link != NULL)
		return db_submit_now(work_link, job);
	if (!work_far.up())
		return false;
	job->no_retry = true;
	return work_far.submit(job, true);
}

static void
work_house_done(db_job *job, PGresult *res)
{
	db_job_free(job);
	if (res != NULL && PQresultStatus(res) != PGRES_TUPLES_OK)
		log_warn("housekeeping call failed: %s", PQresultErrorMessage(res));
}

static void
work_on_timer(uv_timer_t *t)
{
	char	  **ids;
	size_t		n = 0;
	db_job	   *job;

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
	ids = work_up.touch_ids ? work_up.touch_ids(&n) : NULL;
	if (n > 0 && (job = logread_touch(ids, n, work_house_done)) != NULL)
		db_submit(work_link, job);
	free(ids);
	if ((job = logread_expire(work_house_done)) != NULL)
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
	if (work_link != NULL)
		db_link_start(work_link);
	uv_timer_start(&work_timer, work_on_timer, cfg.touch_interval_ms,
				   cfg.touch_interval_ms);
}

void
work_stop(void)
{
	uv_timer_stop(&work_timer);
	uv_close((uv_handle_t *) &work_timer, NULL);
	if (work_link != NULL)
		db_link_stop(work_link);
	logread_shutdown();
}
