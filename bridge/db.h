/*
 * db.h - one asynchronous PostgreSQL connection driven by the libuv loop.
 *
 * A link connects without blocking (PQconnectStart/PQconnectPoll on a
 * uv_poll_t), runs its setup statements (LISTEN, PREPARE, ...), then runs
 * queued jobs one at a time with PQsendQueryPrepared/PQsendQueryParams.
 * When the connection is lost, the job in flight goes back to the front of
 * the queue and the link reconnects with exponential backoff and jitter.
 *
 * Ownership: db_submit takes ownership of the job.  The link hands it back
 * through job->done(job, res): from then on the callback owns the job and
 * frees it with db_job_free.  res is borrowed (freed by the link after the
 * callback); res is NULL only when the link is stopped for good.  A job's
 * owner may cancel it with db_job_cancel; done is still called (with
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
	DB_STOPPED					/* shut down, never reconnects */
} db_state;

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
	int64_t		aux;			/* caller's data */
	int64_t		aux2;
};

typedef struct db_step {
	const char *name;			/* prepared statement name, or NULL to execute */
	const char *sql;
	/* Optional: inspect the result; return false to fail the link. */
	bool		(*check)(db_link *l, PGresult *res);
} db_step;

typedef struct db_ops {
	void		(*up)(db_link *l);		/* setup finished */
	void		(*down)(db_link *l);	/* connection lost after being up */
	void		(*notify)(db_link *l, const char *payload);
} db_ops;

struct db_link {
	const char *name;			/* for logs: "live", "work" */
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
	uint64_t	reconnects;
	bool		was_up;
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
bool		db_link_up(const db_link *l);
size_t		db_queue_len(const db_link *l);

extern char *db_conninfo;		/* set before db_link_start */

#endif
