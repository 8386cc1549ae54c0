/*
 * ipc.h - the socketpair between the supervisor and one worker
 * (--workers 2 or more).
 *
 * Framed messages, each [u32 length][u8 type][payload]:
 *   'Q' worker -> supervisor: a request (a prepared statement by name and
 *       its parameters, or the uuids to touch), with an id;
 *   'A' supervisor -> worker: the answer to request id: no result (the
 *       database could not answer in time), or a status and rows (field
 *       names, then every value as text or NULL) -- rows, never a PGresult;
 *   'W' supervisor -> worker: the shared ring has new records.
 *
 * Worker side: ipc_submit sends a db_job's statement and parameters and
 * keeps the job; the answer is rebuilt into a PGresult (libpq's
 * PQmakeEmptyPGresult/PQsetvalue) and handed to job->done exactly as a
 * database link would, then freed.  Every request has a deadline: one not
 * answered by then gets done(job, NULL), and a late answer is dropped.
 * When the channel closes every pending job gets done(job, NULL).
 *
 * The channel knows neither streams nor the feed: it reports upward through
 * ipc_ops, which its owner sets.
 *
 * Ownership: ipc_submit takes the job (as db_submit does); an ipc_req
 * handed to ops.request is borrowed until the call returns.
 */
#ifndef BRIDGE_IPC_H
#define BRIDGE_IPC_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "db.h"

/* Parameters a touch request may carry. */
#define IPC_TOUCH_MAX 100000

typedef enum ipc_kind {
	IPC_STMT = 0,				/* a prepared statement: stmt and params */
	IPC_TOUCH = 1				/* sse_touch of params (uuids) */
} ipc_kind;

typedef struct ipc_req {
	uint32_t	id;
	ipc_kind	kind;
	bool		no_retry;		/* answer within the deadline or not at all */
	const char *stmt;			/* IPC_STMT */
	uint32_t	nparams;
	char	  **params;			/* NULL entries are SQL NULLs */
} ipc_req;

typedef struct ipc_chan ipc_chan;

typedef struct ipc_ops {
	void		(*wake)(ipc_chan *c);					/* worker: new ring records */
	void		(*request)(ipc_chan *c, const ipc_req *req);	/* supervisor */
	void		(*closed)(ipc_chan *c);					/* EOF or an error */
} ipc_ops;

/* Adopt fd (one end of a socketpair); NULL on failure (fd is then closed). */
ipc_chan   *ipc_open(uv_loop_t *loop, int fd, const ipc_ops *ops, void *data);
/* Close; pending jobs get done(job, NULL).  The channel is freed later. */
void		ipc_close(ipc_chan *c);
void	   *ipc_data(ipc_chan *c);
bool		ipc_is_open(const ipc_chan *c);

/* Worker: send job's request; false (job not taken) when the channel is closed. */
bool		ipc_submit(ipc_chan *c, db_job *job, uint64_t deadline_ms);
/* Worker: ask for sse_touch of these uuids (no answer is awaited). */
void		ipc_touch(ipc_chan *c, char *const *uuids, size_t n);
size_t		ipc_pending(const ipc_chan *c);

/* Supervisor: answer request id with res (NULL: no answer in time). */
void		ipc_answer(ipc_chan *c, uint32_t id, const PGresult *res);
/* Supervisor: tell the worker the ring moved (at most one wake in flight). */
void		ipc_wake(ipc_chan *c);

#endif
