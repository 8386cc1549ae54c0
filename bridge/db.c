/*
 * db.c - asynchronous libpq links: connect, setup, job queue, reconnect.
 *
 * States and their handlers (db_set_state is the only place state changes):
 *   DISCONNECTED  backoff timer pending            -> db_on_timer
 *   CONNECTING    PQconnectPoll on socket events   -> db_io_connecting
 *   SETUP         setup statement in flight        -> db_io_query
 *   IDLE          LISTENing, no query              -> db_io_query
 *   BUSY          one job in flight                -> db_io_query
 *   HELD          a setup check said wait          -> db_io_query, db_on_hold
 *   STOPPED       terminal
 * The moves db_set_state allows are in db_moves (asserted): a link only
 * connects from DISCONNECTED, is up only after SETUP, is held only from
 * SETUP and leaves HELD only to run the step again or to drop.
 * Invariants: the loop never blocks on libpq (the connection is
 * non-blocking; we read only after readiness and flush until done); a
 * uv_poll_t is closed before libpq closes its socket; cur is non-NULL
 * exactly in BUSY; a held link has no no_retry job queued; a job is owned by exactly one of: the queue, cur, or its
 * done callback; the deadline timer runs exactly while a connect, setup
 * statement or job waits for the server (CONNECTING, SETUP, BUSY).
 *
 * Dropping a dead link never waits for the server: PQfinish only queues a
 * Terminate message on the non-blocking socket and closes it.  Setup starts
 * with db_session_sql, which sets statement_timeout and lock_timeout below
 * the deadline, so a statement stuck on the server is cancelled there first
 * and its error tells a lock wait (55P03) from a slow statement (57014).
 * The beat timer ticks every quarter deadline: it expires queued no_retry
 * jobs and sends the heartbeat once the link has been idle half a deadline.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"

#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 5000

char	   *db_conninfo = "";
uint64_t	db_timeout_ms = 10000;
const char *db_session_sql;
const char *db_heartbeat_sql;

static void db_on_poll(uv_poll_t *h, int status, int events);
static void db_fail(db_link *l, const char *why);
static void db_dead(db_link *l, const char *why);
static void db_kick(db_link *l);
static void db_send_step(db_link *l);
static bool db_watch(db_link *l, int events);

static const char *const db_state_names[] = {
	"disconnected", "connecting", "setup", "idle", "busy", "held", "stopped"
};

#define DB_TO(st) (1u << (st))

/* The legal moves: db_moves[from] has the bit of every state it may go to. */
static const unsigned db_moves[] = {
	[DB_DISCONNECTED] = DB_TO(DB_CONNECTING) | DB_TO(DB_STOPPED),
	[DB_CONNECTING] = DB_TO(DB_SETUP) | DB_TO(DB_DISCONNECTED) | DB_TO(DB_STOPPED),
	[DB_SETUP] = DB_TO(DB_IDLE) | DB_TO(DB_HELD) | DB_TO(DB_DISCONNECTED) | DB_TO(DB_STOPPED),
	[DB_IDLE] = DB_TO(DB_BUSY) | DB_TO(DB_DISCONNECTED) | DB_TO(DB_STOPPED),
	[DB_BUSY] = DB_TO(DB_IDLE) | DB_TO(DB_DISCONNECTED) | DB_TO(DB_STOPPED),
	[DB_HELD] = DB_TO(DB_SETUP) | DB_TO(DB_DISCONNECTED) | DB_TO(DB_STOPPED),
	[DB_STOPPED] = 0,
};
_Static_assert(sizeof(db_moves) / sizeof(db_moves[0]) == DB_STOPPED + 1, "a row per state");
_Static_assert(sizeof(db_state_names) / sizeof(db_state_names[0]) == DB_STOPPED + 1,
			   "a name per state");

static void
db_set_state(db_link *l, db_state st)
{
	if (l->state == st)
		return;
	assert(db_moves[l->state] & DB_TO(st));
	log_debug("db %s: %s -> %s", l->name, db_state_names[l->state], db_state_names[st]);
	l->state = st;
}

/*
 * A job with its own copies of the parameters (a NULL parameter stays SQL
 * NULL).  NULL when any copy fails: a parameter lost to an allocation
 * failure must never reach the server as NULL, which every statement here
 * would answer as if it were asked for nothing (an empty page, no row).
 */
static db_job *
db_job_alloc(int nparams, const char *const *params, db_done_fn done, void *owner)
{
	db_job	   *job = calloc(1, sizeof(db_job));

	if (job == NULL || nparams < 0 || nparams > DB_MAX_PARAMS) {
		free(job);
		return NULL;
	}
	job->nparams = nparams;
	for (int i = 0; i < nparams; i++) {
		/* a failed copy must not become a NULL parameter (a different query) */
		if (params[i] != NULL && (job->params[i] = strdup(params[i])) == NULL) {
			db_job_free(job);
			return NULL;
		}
	}
	job->done = done;
	job->owner = owner;
	return job;
}

db_job *
db_job_new(const char *stmt, int nparams, const char *const *params,
		   db_done_fn done, void *owner)
{
	db_job	   *job = db_job_alloc(nparams, params, done, owner);

	if (job != NULL)
		job->stmt = stmt;
	return job;
}

db_job *
db_job_sql(const char *sql, int nparams, const char *const *params,
		   db_done_fn done, void *owner)
{
	db_job	   *job = db_job_alloc(nparams, params, done, owner);

	if (job != NULL && (job->sql = strdup(sql)) == NULL) {
		db_job_free(job);
		return NULL;
	}
	return job;
}

void
db_job_free(db_job *job)
{
	if (job == NULL)
		return;
	for (int i = 0; i < job->nparams; i++)
		free(job->params[i]);
	free(job->sql);
	free(job);
}

bool
db_link_up(const db_link *l)
{
	return l->state == DB_IDLE || l->state == DB_BUSY;
}

size_t
db_queue_len(const db_link *l)
{
	size_t		n = l->cur != NULL;

	for (db_job *j = l->head; j; j = j->next)
		n++;
	return n;
}

static void
db_notice(void *arg, const char *msg)
{
	db_link    *l = arg;
	char		line[256];

	snprintf(line, sizeof(line), "%s", msg);
	line[strcspn(line, "\n")] = '\0';
	log_info("db %s: server says: %s", l->name, line);
}

/* The server did not answer in time: the link is dead. */
static void
db_on_deadline(uv_timer_t *t)
{
	db_link    *l = t->data;
	char		why[96];

	if (l->state != DB_CONNECTING && l->state != DB_SETUP && l->state != DB_BUSY)
		return;
	snprintf(why, sizeof(why), "no answer within %" PRIu64 " ms while %s",
			 db_timeout_ms, l->state == DB_CONNECTING ? "connecting"
			 : l->state == DB_SETUP ? "setting up the session" : "running a query");
	db_dead(l, why);
}

/* A lock wait the server cancelled (lock_timeout) counts as a missed deadline. */
static bool
db_res_timed_out(const PGresult *res, bool any_cancel)
{
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return st != NULL && (strcmp(st, "55P03") == 0 ||
						  (any_cancel && strcmp(st, "57014") == 0));
}

/*
 * Refused for what the setup check looks at: a privilege (42501), a schema,
 * table, column or function that is not there (3F000, 42P01, 42703, 42883).
 */
static bool
db_res_refused(const PGresult *res)
{
	static const char *const codes[] = {"42501", "3F000", "42P01", "42703", "42883"};
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	for (size_t i = 0; st != NULL && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcmp(st, codes[i]) == 0)
			return true;
	return false;
}

static void
db_on_timer(uv_timer_t *t)
{
	db_link    *l = t->data;
	char		user_timeout[24];

	/* Defaults first: the user's conninfo (expanded from dbname) overrides them. */
	const char *kw[] = {"keepalives", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "tcp_user_timeout", "fallback_application_name", "dbname", NULL};
	const char *val[] = {"1", "10", "5", "3", user_timeout, "sse-bridge",
		l->conninfo != NULL ? l->conninfo : db_conninfo, NULL};

	if (l->state != DB_DISCONNECTED)
		return;
	snprintf(user_timeout, sizeof(user_timeout), "%" PRIu64, db_timeout_ms);
	uv_timer_start(&l->deadline, db_on_deadline, db_timeout_ms, 0);
	l->conn = PQconnectStartParams(kw, val, 1);
	if (l->conn == NULL || PQstatus(l->conn) == CONNECTION_BAD) {
		db_fail(l, l->conn ? PQerrorMessage(l->conn) : "out of memory");
		return;
	}
	PQsetNoticeProcessor(l->conn, db_notice, l);
	db_set_state(l, DB_CONNECTING);
	l->fd = -1;
	if (!db_watch(l, UV_WRITABLE))	/* libpq: start as if POLLING_WRITING */
		db_fail(l, "cannot poll socket");
}

static void
db_poll_closed(uv_handle_t *h)
{
	free(h);
}

static void
db_unwatch(db_link *l)
{
	if (l->poll != NULL) {
		uv_close((uv_handle_t *) l->poll, db_poll_closed);
		l->poll = NULL;
	}
	l->fd = -1;
	l->events = 0;
}

/* Poll the connection's current socket for events; recreate on a new fd. */
static bool
db_watch(db_link *l, int events)
{
	int			fd = PQsocket(l->conn);

	if (fd < 0)
		return false;
	if (l->poll != NULL && fd != l->fd)
		db_unwatch(l);
	if (l->poll == NULL) {
		l->poll = malloc(sizeof(uv_poll_t));
		if (l->poll == NULL || uv_poll_init(l->loop, l->poll, fd) != 0) {
			free(l->poll);
			l->poll = NULL;
			return false;
		}
		l->poll->data = l;
		l->fd = fd;
		l->events = 0;
	}
	if (events != l->events) {
		l->events = events;
		return uv_poll_start(l->poll, events, db_on_poll) == 0;
	}
	return true;
}

static void
db_schedule(db_link *l)
{
	uint64_t	delay = DB_BACKOFF_MIN_MS;

	for (unsigned i = 0; i < l->attempt && delay < DB_BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > DB_BACKOFF_MAX_MS)
		delay = DB_BACKOFF_MAX_MS;
	delay = delay / 2 + (uint64_t) rand() % (delay / 2 + 1);	/* jitter */
	if (l->attempt == 0)
		delay = 0;
	l->attempt++;
	uv_timer_start(&l->timer, db_on_timer, delay, 0);
}

/* Unlink every no_retry job (or, with now > 0, those expired by now). */
static db_job *
db_take_no_retry(db_link *l, uint64_t now)
{
	db_job	   *out = NULL, **outp = &out, **pp = &l->head;

	l->tail = NULL;
	while (*pp != NULL) {
		db_job	   *j = *pp;

		if (j->no_retry && (now == 0 || (j->expires != 0 && j->expires <= now))) {
			*pp = j->next;
			j->next = NULL;
			*outp = j;
			outp = &j->next;
			continue;
		}
		l->tail = j;
		pp = &j->next;
	}
	return out;
}

static void
db_fail_jobs(db_job *list)
{
	while (list != NULL) {
		db_job	   *j = list;

		list = j->next;
		j->next = NULL;
		j->done(j, NULL);
	}
}

/*
 * Drop the connection; requeue the job in flight (a no_retry job, queued or
 * in flight, fails instead); reconnect later.  dead: a missed deadline.
 */
static void
db_drop(db_link *l, const char *why, bool dead)
{
	bool		was_up = db_link_up(l) || l->state == DB_SETUP;
	char		msg[256];
	db_job	   *failed;

	snprintf(msg, sizeof(msg), "%s", why ? why : "");
	msg[strcspn(msg, "\n")] = '\0';
	if (l->state == DB_STOPPED)
		return;
	if (dead) {
		l->timeouts++;
		log_warn("db %s: link declared dead, reconnecting: %s", l->name, msg);
	}
	else
		log_warn("db %s: connection failed: %s", l->name, msg);
	uv_timer_stop(&l->deadline);
	if (l->cur != NULL) {
		l->cur->next = l->head;
		l->head = l->cur;
		if (l->tail == NULL)
			l->tail = l->cur;
		l->cur = NULL;
	}
	failed = db_take_no_retry(l, 0);
	PQclear(l->res);
	l->res = NULL;
	db_unwatch(l);
	PQfinish(l->conn);
	l->conn = NULL;
	db_set_state(l, DB_DISCONNECTED);
	if (was_up && l->was_up) {
		l->reconnects++;
		l->was_up = false;
		if (l->ops.down)
			l->ops.down(l);
	}
	if (l->attempt == 0)
		l->attempt = 1;
	db_schedule(l);
	db_fail_jobs(failed);		/* last: their owners may submit again */
}

static void
db_fail(db_link *l, const char *why)
{
	db_drop(l, why, false);
}

/* A missed deadline: count it, then drop the link without waiting. */
static void
db_dead(db_link *l, const char *why)
{
	db_drop(l, why, true);
}

/*
 * Without --db, libpq's defaults (environment, service file, compiled-in
 * socket directory) chose the server: say once which one they chose.
 */
static void
db_log_defaults(PGconn *conn)
{
	static bool said;
	const char *host = PQhost(conn);

	if (said || (db_conninfo != NULL && db_conninfo[0] != '\0'))
		return;
	said = true;
	if (host == NULL)
		host = "";
	log_info("no --db given: libpq's defaults chose %s %s, port %s, database %s, user %s",
			 host[0] == '/' || host[0] == '@' ? "socket directory" : "host", host,
			 PQport(conn) ? PQport(conn) : "?", PQdb(conn) ? PQdb(conn) : "?",
			 PQuser(conn) ? PQuser(conn) : "?");
}

static void
db_io_connecting(db_link *l, int events)
{
	(void) events;
	/*
	 * PQconnectPoll may close the socket and open another (the next host of
	 * a multi-host conninfo, a server refused by target_session_attrs), and
	 * the new one may get the same number: the old poll is closed first and
	 * the socket watched afresh after every step.
	 */
	db_unwatch(l);
	switch (PQconnectPoll(l->conn)) {
		case PGRES_POLLING_READING:
			if (!db_watch(l, UV_READABLE))
				db_fail(l, "cannot poll socket");
			return;
		case PGRES_POLLING_WRITING:
			if (!db_watch(l, UV_WRITABLE))
				db_fail(l, "cannot poll socket");
			return;
		case PGRES_POLLING_OK:
			break;
		default:
			db_fail(l, PQerrorMessage(l->conn));
			return;
	}
	if (PQsetnonblocking(l->conn, 1) != 0 || !db_watch(l, UV_READABLE)) {
		db_fail(l, "cannot switch to non-blocking mode");
		return;
	}
	db_log_defaults(l->conn);
	db_set_state(l, DB_SETUP);
	l->step = 0;				/* 0 is db_session_sql, then steps[step - 1] */
	db_send_step(l);
}

/* After a send: flush, and poll for writability while output remains. */
static void
db_flush(db_link *l)
{
	int			r = PQflush(l->conn);

	if (r < 0)
		db_fail(l, PQerrorMessage(l->conn));
	else if (!db_watch(l, UV_READABLE | (r == 1 ? UV_WRITABLE : 0)))
		db_fail(l, "cannot poll socket");
}

static void db_setup_done(db_link *l);

static void
db_send_step(db_link *l)
{
	const db_step *s;
	int			ok;

	if (l->step == 0 && db_session_sql == NULL)
		l->step++;
	while (l->step > 0 && l->step <= l->nsteps && l->steps[l->step - 1].skip != NULL &&
		   l->steps[l->step - 1].skip(l))
		l->step++;
	if (l->step > l->nsteps) {
		db_setup_done(l);
		return;
	}
	s = l->step > 0 ? &l->steps[l->step - 1] : NULL;
	if (s == NULL)
		ok = PQsendQuery(l->conn, db_session_sql);
	else if (s->name)
		ok = PQsendPrepare(l->conn, s->name, s->sql, 0, NULL);
	else
		ok = PQsendQuery(l->conn, s->sql);
	uv_timer_start(&l->deadline, db_on_deadline, db_timeout_ms, 0);
	if (!ok) {
		db_fail(l, PQerrorMessage(l->conn));
		return;
	}
	db_flush(l);
}

static void
db_send_job(db_link *l)
{
	db_job	   *job = l->head;
	int			ok;

	l->head = job->next;
	if (l->head == NULL)
		l->tail = NULL;
	job->next = NULL;
	l->cur = job;
	db_set_state(l, DB_BUSY);
	if (job->stmt)
		ok = PQsendQueryPrepared(l->conn, job->stmt, job->nparams,
								 (const char *const *) job->params, NULL, NULL, 0);
	else
		ok = PQsendQueryParams(l->conn, job->sql, job->nparams, NULL,
							   (const char *const *) job->params, NULL, NULL, 0);
	uv_timer_start(&l->deadline, db_on_deadline, db_timeout_ms, 0);
	if (!ok) {
		db_fail(l, PQerrorMessage(l->conn));
		return;
	}
	db_flush(l);
}

/* Send the next queued job if the link is idle. */
static void
db_kick(db_link *l)
{
	while (l->state == DB_IDLE && l->head != NULL) {
		if (l->head->cancelled) {
			db_job	   *job = l->head;	/* cancelled before it was sent */

			l->head = job->next;
			if (l->head == NULL)
				l->tail = NULL;
			job->next = NULL;
			job->done(job, NULL);
			continue;
		}
		db_send_job(l);
	}
}

bool
db_submit_now(db_link *l, db_job *job)
{
	if (l->state == DB_DISCONNECTED || l->state == DB_HELD || l->state == DB_STOPPED)
		return false;
	job->no_retry = true;
	job->expires = uv_now(l->loop) + db_timeout_ms;
	db_submit(l, job);
	return true;
}

void
db_submit(db_link *l, db_job *job)
{
	job->next = NULL;
	if (l->tail)
		l->tail->next = job;
	else
		l->head = job;
	l->tail = job;
	db_kick(l);
}

/* A held link asks again: the held step is sent anew. */
static void
db_on_hold(uv_timer_t *t)
{
	db_link    *l = t->data;

	if (l->state != DB_HELD)
		return;
	db_set_state(l, DB_SETUP);
	db_send_step(l);
}

/*
 * A setup check said the database is not usable as it is: stay connected,
 * fail what must not wait (no_retry jobs), and ask again in DB_HOLD_MS.
 */
static void
db_hold(db_link *l)
{
	l->attempt = 0;				/* the server answers: a later drop reconnects at once */
	l->holds++;
	db_set_state(l, DB_HELD);
	uv_timer_start(&l->timer, db_on_hold, DB_HOLD_MS, 0);
	db_fail_jobs(db_take_no_retry(l, 0));
}

static void
db_step_done(db_link *l, PGresult *res)
{
	const db_step *s = l->step > 0 ? &l->steps[l->step - 1] : NULL;
	ExecStatusType st = PQresultStatus(res);
	db_verdict	v;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char		why[300];
		bool		timed_out = db_res_timed_out(res, true);

		snprintf(why, sizeof(why), "setting up the session failed: %s",
				 PQresultErrorMessage(res));
		PQclear(res);
		if (timed_out)
			db_dead(l, why);
		else
			db_fail(l, why);
		return;
	}
	v = s != NULL && s->check ? s->check(l, res) : DB_STEP_OK;
	PQclear(res);
	if (v == DB_STEP_HOLD) {
		db_hold(l);
		return;
	}
	if (v == DB_STEP_FAIL) {
		db_fail(l, "the session could not be set up (see above)");
		return;
	}
	l->step++;
	db_send_step(l);
}

static void
db_setup_done(db_link *l)
{
	l->attempt = 0;
	l->was_up = true;
	l->generation++;
	db_set_state(l, DB_IDLE);
	l->answered = uv_now(l->loop);
	log_info("db %s: connected", l->name);
	if (l->ops.up)
		l->ops.up(l);
	db_kick(l);
}

static void db_beat_done(db_job *job, PGresult *res);

/*
 * Hand the answer to the job's owner.  A lock wait cancelled by the server
 * (any cancellation, for the heartbeat) then declares the link dead: the
 * owner has its answer, the link reconnects.
 */
static void
db_job_done(db_link *l, PGresult *res)
{
	db_job	   *job = l->cur;
	bool		timed_out, refused;

	if (PQstatus(l->conn) == CONNECTION_BAD) {
		PQclear(res);
		db_fail(l, "connection lost during a query");
		return;
	}
	timed_out = db_res_timed_out(res, job->done == db_beat_done);
	refused = db_res_refused(res);
	l->cur = NULL;
	db_set_state(l, DB_IDLE);
	job->done(job, res);
	if (refused && (l->refused_at == 0 || uv_now(l->loop) - l->refused_at >= DB_HOLD_MS)) {
		char		why[300];

		l->refused_at = uv_now(l->loop);
		snprintf(why, sizeof(why), "the database refused a statement, checking the setup "
				 "again: %s", PQresultErrorMessage(res));
		PQclear(res);
		db_fail(l, why);
		return;
	}
	if (timed_out) {
		char		why[300];

		snprintf(why, sizeof(why), "the server cancelled a query: %s",
				 PQresultErrorMessage(res));
		PQclear(res);
		db_dead(l, why);
		return;
	}
	PQclear(res);
	db_kick(l);
}

/* A query finished (PQgetResult returned NULL): hand over its first result. */
static void
db_query_complete(db_link *l)
{
	PGresult   *res = l->res;

	uv_timer_stop(&l->deadline);
	l->answered = uv_now(l->loop);
	l->res = NULL;
	if (res == NULL) {
		db_fail(l, "query returned no result");
		return;
	}
	if (l->state == DB_SETUP)
		db_step_done(l, res);
	else
		db_job_done(l, res);
}

static void
db_drain_notifies(db_link *l)
{
	PGnotify   *n;

	while (l->conn != NULL && (n = PQnotifies(l->conn)) != NULL) {
		if (l->ops.notify && db_link_up(l))
			l->ops.notify(l, n->extra);
		PQfreemem(n);
	}
}

static void
db_collect(db_link *l)
{
	while ((l->state == DB_SETUP || l->state == DB_BUSY) && !PQisBusy(l->conn)) {
		PGresult   *r = PQgetResult(l->conn);

		if (r == NULL) {
			db_query_complete(l);
			continue;
		}
		if (l->res == NULL)
			l->res = r;
		else
			PQclear(r);
	}
}

static void
db_io_query(db_link *l, int events)
{
	if (events & UV_WRITABLE) {
		db_flush(l);
		if (l->conn == NULL)
			return;
	}
	if (events & UV_READABLE) {
		if (!PQconsumeInput(l->conn)) {
			db_fail(l, PQerrorMessage(l->conn));
			return;
		}
	}
	db_collect(l);
	if (l->conn != NULL)
		db_drain_notifies(l);
	if (l->conn != NULL && PQstatus(l->conn) == CONNECTION_BAD)
		db_fail(l, "connection lost");
}

static void
db_on_poll(uv_poll_t *h, int status, int events)
{
	db_link    *l = h->data;

	if (status < 0)
		events = UV_READABLE | UV_WRITABLE;	/* let libpq find the error */
	switch (l->state) {
		case DB_CONNECTING:
			db_io_connecting(l, events);
			break;
		case DB_SETUP:
		case DB_IDLE:
		case DB_BUSY:
		case DB_HELD:
			db_io_query(l, events);
			break;
		case DB_DISCONNECTED:
		case DB_STOPPED:
			break;
	}
}

static void
db_beat_done(db_job *job, PGresult *res)
{
	db_link    *l = job->owner;

	db_job_free(job);
	if (l == NULL)
		return;
	l->beating = false;
	if (res != NULL && PQresultStatus(res) != PGRES_TUPLES_OK && !db_res_timed_out(res, true))
		log_warn("db %s: heartbeat failed: %s", l->name, PQresultErrorMessage(res));
}

/*
 * Every db_timeout_ms / 4: fail the no_retry jobs that waited in the queue
 * past their deadline, and check a link idle for half a deadline with the
 * heartbeat query (under the same deadline as any job).
 */
static void
db_on_beat(uv_timer_t *t)
{
	db_link    *l = t->data;
	uint64_t	now = uv_now(l->loop);
	db_job	   *job;

	db_fail_jobs(db_take_no_retry(l, now));
	if (l->state != DB_IDLE || l->head != NULL || l->beating || db_heartbeat_sql == NULL ||
		now - l->answered < db_timeout_ms / 2)
		return;
	job = db_job_sql(db_heartbeat_sql, 0, NULL, db_beat_done, l);
	if (job == NULL)
		return;
	job->no_retry = true;
	l->beating = true;
	db_submit(l, job);
}

void
db_link_init(db_link *l, uv_loop_t *loop, const char *name,
			 const db_step *steps, size_t nsteps, db_ops ops)
{
	memset(l, 0, sizeof(*l));
	l->name = name;
	l->loop = loop;
	l->steps = steps;
	l->nsteps = nsteps;
	l->ops = ops;
	l->fd = -1;
	l->state = DB_DISCONNECTED;
	uv_timer_init(loop, &l->timer);
	l->timer.data = l;
	uv_timer_init(loop, &l->deadline);
	l->deadline.data = l;
	uv_timer_init(loop, &l->beat);
	l->beat.data = l;
}

void
db_link_start(db_link *l)
{
	uint64_t	every = db_timeout_ms / 4 > 0 ? db_timeout_ms / 4 : 1;

	l->attempt = 0;
	db_schedule(l);
	uv_timer_start(&l->beat, db_on_beat, every, every);
}

void
db_link_stop(db_link *l)
{
	db_job	   *job;

	uv_timer_stop(&l->timer);
	uv_close((uv_handle_t *) &l->timer, NULL);
	uv_timer_stop(&l->deadline);
	uv_close((uv_handle_t *) &l->deadline, NULL);
	uv_timer_stop(&l->beat);
	uv_close((uv_handle_t *) &l->beat, NULL);
	db_unwatch(l);
	PQclear(l->res);
	l->res = NULL;
	if (l->conn)
		PQfinish(l->conn);
	l->conn = NULL;
	db_set_state(l, DB_STOPPED);
	if (l->cur) {
		l->cur->next = l->head;
		l->head = l->cur;
		l->cur = NULL;
	}
	while ((job = l->head) != NULL) {
		l->head = job->next;
		job->next = NULL;
		job->done(job, NULL);
	}
	l->tail = NULL;
}
