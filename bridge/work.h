/*
 * work.h - the second database link: stream opens, replay pages, the
 * sse_touch/sse_expire timer and retention (prune.c).  Keeping these
 * off the live link means a burst of reconnects never delays live delivery.
 *
 * The link knows nothing of streams: jobs come built (logread.c) from the
 * stream layer, and the timer asks the upper layer for the subscriptions to
 * touch through work_ops, which main.c wires.
 */
#ifndef BRIDGE_WORK_H
#define BRIDGE_WORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "db.h"

typedef struct work_ops {
	/*
	 * The uuids of the subscriptions with a stream (borrowed until the call
	 * returns; *n = 0 for none).  Returns the array to free, or NULL.
	 */
	char	  **(*touch_ids)(size_t *n);
} work_ops;

/* link: the work link (set up here; it must outlive work_stop). */
void		work_init(uv_loop_t *loop, db_link *link, const work_ops *ops);

/*
 * A worker's work "link" (--workers 2 or more): the supervisor, which runs
 * the jobs on its pool.  up: may a job be answered now (the supervisor's
 * pool is up); submit takes the job (false: not taken, the supervisor is
 * gone; now: answered within --db-timeout or failed); touch sends the
 * uuids to sse_touch.  Expiry and retention are the supervisor's.
 */
typedef struct work_remote {
	bool		(*up)(void);
	bool		(*submit)(db_job *job, bool now);
	void		(*touch)(char *const *uuids, size_t n);
} work_remote;
void		work_init_remote(uv_loop_t *loop, const work_remote *remote, const work_ops *ops);
void		work_start(void);
void		work_stop(void);

typedef struct work_lag_counters {
	uint64_t	held;			/* open answers held on a standby, behind the client */
	uint64_t	expired;		/* ... still behind after --lag-wait */
} work_lag_counters;

extern work_lag_counters work_lag_stats;

/* Queue job on the work link (it runs after the reconnect if the link is down). */
void		work_submit(db_job *job);

/*
 * Queue a job that must be answered within --db-timeout or fail (done with
 * res NULL): false, job not taken, while the link is down (db_submit_now).
 * An open lookup (logread_open) on a standby may be held up to --lag-wait
 * while the answer is behind the client (work.c).
 */
bool		work_submit_now(db_job *job);

/* As work_submit_now's hold of a standby's open, for a job run elsewhere. */
void		work_hold_open(db_job *job);

/* Touch these subscriptions where writes go (a standby: --primary-db). */
void		work_touch(char *const *ids, size_t n);

#endif
