/*
 * db.h - one asynchronous PostgreSQL connection driven by the libuv loop.
 *
 * A link connects without blocking (PQconnectStart/PQconnectPoll on a
 * uv_poll_t), runs its setup statements (LISTEN, PREPARE, ...), then runs
 * queued jobs one at a time with PQsendQueryPrepared/PQsendQueryParams.
 * When the connection is lost, the job in flight goes back to the front of
 * the queue and the link reconnects with exponential backoff and jitter.
 *
 * A setup step's check may hold the link (DB_STEP_HOLD): the database is
 * reachable but not usable as it is (a missing grant, extension or
 * update).  The link then stays connected and not up, fails its queued
 * no_retry jobs at once, and runs the same step again every DB_HOLD_MS
 * until the check passes; setup then goes on.  The check says what is
 * wrong; the link only waits.  A job refused for a missing privilege or
 * object (a REVOKE or DROP while the link is up) reconnects the link after
 * its owner has the answer, so the setup is checked again (at most once per
 * DB_HOLD_MS).
 *
 * Deadlines: every connect, setup statement and job must be answered within
 * db_timeout_ms.  A link that misses the deadline is declared dead: it logs,
 * counts it in `timeouts`, closes its socket without waiting for the server
 * and reconnects with backoff.  A lock wait cancelled by the server's
 * lock_timeout (db_session_sql sets it a little below the deadline) counts
 * the same.  A link idle for db_timeout_ms / 2 runs db_heartbeat_sql.
 *
 * Ownership: db_submit takes ownership of the job.  The link hands it back
 * through job->done(job, res): from then on the callback owns the job and
 * frees it with db_job_free.  res is borrowed (freed by the link after the
 * callback); res is NULL when the link is stopped for good, and for a
 * no_retry job (see db_submit_now) that could not be answered in time.  A
 * job's owner may cancel it with db_job_cancel; done is still called (with
 * res NULL if the query was never sent).
 */
#ifndef BRIDGE_DB_H
#define BRIDGE_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define DB_MAX_PARAMS 3

typedef enum db_state {
	DB_DISCONNECTED,			/* waiting for the backoff timer */
	DB_CONNECTING,				/* PQconnectPoll in progress */
	DB_SETUP,					/* running setup statements */
	DB_IDLE,					/* ready, nothing in flight */
	DB_BUSY,					/* one job in flight */
	DB_HELD,					/* connected; a setup check failed, asks again later */
	DB_STOPPED					/* shut down, never reconnects */
} db_state;

/* A held link runs its held setup step again after this long. */
#define DB_HOLD_MS 5000

typedef struct db_job db_job;
typedef struct db_link db_link;
typedef void (*db_done_fn)(db_job *job, PGresult *res);

struct db_job {
	db_job	   *next;
	const char *stmt;			/* prepared statement name (static), or NULL */
	char	   *sql;			/* owned SQL text when stmt is NULL */
	int			nparams;
	char	   *params[DB_MAX_PARAMS];	/* owned, NULL = SQL NULL */
	db_done_fn	done;
	void	   *owner;			/* caller's object; NULL once cancelled */
	bool		cancelled;		/* done still runs, the query does not */
	/*
	 * A log position the owner notes when it submits the job, read back in
	 * done (a replay page: the live cursor and its row's created_us then).
	 */
	int64_t		mark;
	int64_t		mark_us;
	bool		no_retry;		/* fail (res NULL) rather than wait for a reconnect */
	uint64_t	expires;		/* loop ms; a no_retry job still queued then fails */
	/*
	 * For a layer that holds a job between answers (work.c's wait for a
	 * standby's replay): the done it stands in for, and until when it waits.
	 */
	db_done_fn	held_done;
	uint64_t	held_until;
};

typedef enum db_verdict {
	DB_STEP_OK,					/* go on with the next step */
	DB_STEP_FAIL,				/* drop the connection and reconnect */
	DB_STEP_HOLD				/* stay connected, not up; run this step again later */
} db_verdict;

typedef struct db_step {
	const char *name;			/* prepared statement name, or NULL to execute */
	const char *sql;
	/* Optional: inspect the (successful) result; the check logs why it fails. */
	db_verdict	(*check)(db_link *l, PGresult *res);
	/* Optional: true when this link does not run the step (LISTEN on a standby). */
	bool		(*skip)(const db_link *l);
} db_step;

typedef struct db_ops {
	void		(*up)(db_link *l);		/* setup finished */
	void		(*down)(db_link *l);	/* connection lost after being up */
	void		(*notify)(db_link *l, const char *payload);
} db_ops;

struct db_link {
	const char *name;			/* for logs: "live", "work" */
	const char *conninfo;		/* NULL: db_conninfo (set before db_link_start) */
	uv_loop_t  *loop;
	db_state	state;
	PGconn	   *conn;
	uv_poll_t  *poll;			/* heap: closed asynchronously */
	int			fd;
	int			events;			/* UV_READABLE | UV_WRITABLE currently polled */
	uv_timer_t	timer;
	unsigned	attempt;
	const db_step *steps;
	size_t		nsteps;
	size_t		step;
	db_ops		ops;
	db_job	   *head;
	db_job	   *tail;
	db_job	   *cur;
	PGresult   *res;
	uv_timer_t	deadline;		/* armed while a connect or query is pending */
	uv_timer_t	beat;			/* heartbeat and queue expiry */
	bool		beating;		/* the heartbeat query is in flight */
	uint64_t	answered;		/* loop ms of the last answer (or connect) */
	uint64_t	reconnects;
	uint64_t	timeouts;		/* deadlines missed (links declared dead) */
	uint64_t	generation;		/* counts successful connects (setup done) */
	uint64_t	holds;			/* setup checks that held the link */
	uint64_t	refused_at;		/* loop ms of the last reconnect for a refusal */
	bool		was_up;
	/*
	 * The server was in recovery (a hot standby) when the link was set up,
	 * or at the owner's last check since: the link must not write there.
	 */
	bool		standby;
	void	   *data;
};

/* New job for a prepared statement; params are copied (NULL = SQL NULL). */
db_job	   *db_job_new(const char *stmt, int nparams, const char *const *params,
					   db_done_fn done, void *owner);
/* New job for SQL text (copied). */
db_job	   *db_job_sql(const char *sql, int nparams, const char *const *params,
					   db_done_fn done, void *owner);
void		db_job_free(db_job *job);

static inline void
db_job_cancel(db_job *job)
{
	job->cancelled = true;
	job->owner = NULL;
}

void		db_link_init(db_link *l, uv_loop_t *loop, const char *name,
						 const db_step *steps, size_t nsteps, db_ops ops);
void		db_link_start(db_link *l);
void		db_link_stop(db_link *l);
void		db_submit(db_link *l, db_job *job);

/*
 * Submit a job that must be answered within the deadline or not at all: it
 * is marked no_retry, so if the link goes down before the answer, or the
 * job waits in the queue past db_timeout_ms, done runs with res NULL.
 * Returns false, without taking the job, when the link is down (waiting to
 * reconnect); while it connects the job waits, under the same deadline.
 */
bool		db_submit_now(db_link *l, db_job *job);
bool		db_link_up(const db_link *l);
size_t		db_queue_len(const db_link *l);

extern char *db_conninfo;		/* set before db_link_start */
extern uint64_t db_timeout_ms;	/* deadline per query; set before db_link_start */
/* Run first on every connection (session settings), or NULL. */
extern const char *db_session_sql;
/* Run by a link idle for half a deadline, or NULL for no heartbeat. */
extern const char *db_heartbeat_sql;

#endif
