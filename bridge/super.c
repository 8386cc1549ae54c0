/*
 * super.c - the supervisor process of --workers N (see super.h).
 *
 * Memory: the supervisor alone writes the shared ring (shr_put_*), from
 * feed_ops.pushed/pruned/timeline, in the order the live feed applies them,
 * each record carrying the feed's position before it (sv.pub_*).  Its own
 * replay cache (ring.c) holds the same rows for the feed's timeline checks.
 *
 * Requests: a worker names a prepared statement; only the statements of
 * SUPER_STMTS are run, on a work link of the pool (round robin over the
 * links that are up), and the answer goes back to the worker that asked
 * if it is still the same worker (sv_ctx.gen).  A no_retry request is
 * refused at once (no answer) when no link is up.
 *
 * Faults: a worker that exits is started again (after RESPAWN_MS, longer
 * when it keeps dying); its clients reconnect, to any worker, with
 * Last-Event-ID.  A worker dies with the supervisor (PR_SET_PDEATHSIG, and
 * EOF on its socketpair).
 *
 * Invariants: every handle lives in sv or in a worker slot; every job a
 * worker asked for is answered or dropped exactly once (the link calls
 * done once).
 */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "feed.h"
#include "hub.h"
#include "ipc.h"
#include "listen.h"
#include "log.h"
#include "logread.h"
#include "mem.h"
#include "metrics.h"
#include "notify.h"
#include "preflight.h"
#include "prune.h"
#include "ring.h"
#include "shr.h"
#include "super.h"
#include "work.h"

extern char **environ;

#define SUPER_RING_EVENTS 200000
#define SUPER_STOP_DEADLINE_MS 6000
#define RESPAWN_MS 100
#define RESPAWN_MAX_MS 5000
/* A request's answer may wait for a reconnect: the worker gives up after this. */
#define SUPER_RETRY_DEADLINES 3

static const char *const super_stmts[] = {"fetch", "head", "fork", "open_sub", "open_adhoc"};

typedef struct sv_worker {
	unsigned	slot;
	uv_process_t proc;
	ipc_chan   *chan;
	bool		running;		/* proc is a live child (its handle open) */
	uint64_t	gen;			/* counts starts of this slot */
	uint64_t	started_ms;
	uint64_t	backoff_ms;
	uv_timer_t	respawn;
} sv_worker;

typedef struct sv_ctx {
	sv_worker  *w;
	uint64_t	gen;
	uint32_t	id;
} sv_ctx;

static struct {
	uv_loop_t  *loop;
	int			argc;
	char	  **argv;
	char	  **env;			/* environ plus SUPER_WORKER_ENV (per start) */
	size_t		nenv;
	int			listen_fd;
	shr		   *ring;
	db_link		live;
	db_link    *pool;
	size_t		npool;
	size_t		rr;
	sv_worker  *w;
	unsigned	nw;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	uv_signal_t sighup;			/* passed on to every worker */
	uv_check_t	status;			/* the slot and link states, every loop turn */
	uv_timer_t	stop_timer;
	bool		stopping;
	bool		links_up;		/* both kinds of database link, as last told to the manager */
	bool		ready;			/* READY=1 sent */
	bool		finished;
	int64_t		pub_id;			/* the feed's position after the last record */
	int64_t		pub_us;
} sv;

/* ---- the shared ring, from the feed ---- */

static void
sv_pushed(const event *ev)
{
	shr_put_event(sv.ring, sv.pub_id, sv.pub_us, ev);
	sv.pub_id = ev->id;
	sv.pub_us = ev->created_us;
}

static void
sv_pruned(int64_t from, int64_t through)
{
	(void) from;
	shr_put_mark(sv.ring, SHR_PRUNED, sv.pub_id, sv.pub_us, through, LOGPOS_NO_ROW);
	sv.pub_id = through;
	sv.pub_us = LOGPOS_NO_ROW;
}

static void
sv_timeline(int64_t fork, int64_t fork_us)
{
	shr_put_mark(sv.ring, SHR_TIMELINE, sv.pub_id, sv.pub_us, fork, fork_us);
	sv.pub_id = fork;
	sv.pub_us = fork_us;
}

static void
sv_marker(event *ev)
{
	(void) ev;					/* the workers apply it from the ring */
}

static void
sv_advanced(void)
{
	/* a head read re-bases without a record: workers find the gap and read the log */
	sv.pub_id = ring_hi();
	sv.pub_us = ring_hi_us();
	for (unsigned i = 0; i < sv.nw; i++)
		if (sv.w[i].chan != NULL)
			ipc_wake(sv.w[i].chan);
}

static void
sv_deliver(hub_sub *s, event *ev, bool ends)
{
	(void) s;
	(void) ev;
	(void) ends;				/* the supervisor has no streams */
}

/* ---- requests from workers ---- */

static db_link *
sv_pick(void)
{
	assert(sv.npool > 0);		/* --db-pool is at least 1 (cfg_validate) */
	for (size_t i = 0; i < sv.npool; i++) {
		db_link    *l = &sv.pool[(sv.rr + i) % sv.npool];

		if (db_link_up(l)) {
			sv.rr = (sv.rr + i + 1) % sv.npool;
			return l;
		}
	}
	return &sv.pool[sv.rr++ % sv.npool];	/* all down: it waits for the reconnect */
}

static void
sv_job_done(db_job *job, PGresult *res)
{
	sv_ctx	   *ctx = job->owner;

	if (ctx != NULL && ctx->w->gen == ctx->gen && ctx->w->chan != NULL)
		ipc_answer(ctx->w->chan, ctx->id, res);
	free(ctx);
	db_job_free(job);
}

static void
sv_request(ipc_chan *c, const ipc_req *req)
{
	sv_worker  *w = ipc_data(c);
	const char *stmt = NULL;
	sv_ctx	   *ctx;
	db_job	   *job;

	if (req->kind == IPC_TOUCH) {
		work_touch(req->params, req->nparams);	/* on a standby: through --primary-db */
		return;
	}
	for (size_t i = 0; i < sizeof(super_stmts) / sizeof(super_stmts[0]); i++)
		if (strcmp(req->stmt, super_stmts[i]) == 0)
			stmt = super_stmts[i];
	if (stmt == NULL || req->nparams > DB_MAX_PARAMS) {
		log_error("worker %u asked for an unknown statement; no answer", w->slot);
		ipc_answer(c, req->id, NULL);
		return;
	}
	if ((ctx = malloc(sizeof(*ctx))) == NULL ||
		(job = db_job_new(stmt, (int) req->nparams, (const char *const *) req->params,
						  sv_job_done, ctx)) == NULL) {
		free(ctx);
		log_error("out of memory taking a worker's request");
		ipc_answer(c, req->id, NULL);
		return;
	}
	*ctx = (sv_ctx) {w, w->gen, req->id};
	work_hold_open(job);		/* on a standby: an open behind the client waits for replay */
	if (!req->no_retry) {
		db_submit(sv_pick(), job);
		return;
	}
	if (!db_submit_now(sv_pick(), job)) {
		ipc_answer(c, req->id, NULL);
		free(ctx);
		db_job_free(job);
	}
}

static void sv_start_worker(sv_worker *w);

static void
sv_chan_closed(ipc_chan *c)
{
	sv_worker  *w = ipc_data(c);

	if (w->chan != c)
		return;					/* closed by sv_on_exit: the process is gone */
	w->chan = NULL;				/* the process's exit follows (or it is killed) */
	if (w->running && !sv.stopping)
		uv_process_kill(&w->proc, SIGKILL);
}

/* ---- workers ---- */

static void sv_maybe_finish(void);

static void
sv_on_respawn(uv_timer_t *t)
{
	sv_worker  *w = t->data;

	if (!sv.stopping && !w->running)
		sv_start_worker(w);
}

static void
sv_on_proc_closed(uv_handle_t *h)
{
	sv_worker  *w = h->data;

	w->running = false;
	if (sv.stopping) {
		sv_maybe_finish();
		return;
	}
	uv_timer_start(&w->respawn, sv_on_respawn, w->backoff_ms, 0);
}

static void
sv_on_exit(uv_process_t *p, int64_t status, int signo)
{
	sv_worker  *w = p->data;
	uint64_t	now = uv_now(sv.loop);

	if (signo != 0)
		log_warn("worker %u (pid %d) was killed by signal %d%s", w->slot, p->pid, signo,
				 sv.stopping ? "" : "; starting a new one");
	else if (status != 0 || !sv.stopping)
		log_warn("worker %u (pid %d) exited with status %lld%s", w->slot, p->pid,
				 (long long) status, sv.stopping ? "" : "; starting a new one");
	/* one that dies young waits longer each time */
	w->backoff_ms = now - w->started_ms < 1000
		? (w->backoff_ms * 2 > RESPAWN_MAX_MS ? RESPAWN_MAX_MS : w->backoff_ms * 2)
		: RESPAWN_MS;
	if (w->chan != NULL) {
		ipc_chan   *c = w->chan;

		w->chan = NULL;
		ipc_close(c);
	}
	w->gen++;					/* answers for the dead one are dropped */
	shr_slot_clear(shr_slot_at(sv.ring, w->slot));	/* its clients are gone */
	uv_close((uv_handle_t *) p, sv_on_proc_closed);
}

static void
sv_start_worker(sv_worker *w)
{
	int			sp[2];
	char		env[64];
	uv_process_options_t o = {0};
	uv_stdio_container_t io[6];
	int			rc;
	static const ipc_ops ops = {NULL, sv_request, sv_chan_closed};

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
		log_error("worker %u: socketpair: %s; trying again", w->slot, strerror(errno));
		uv_timer_start(&w->respawn, sv_on_respawn, RESPAWN_MAX_MS, 0);
		return;
	}
	snprintf(env, sizeof(env), "%s=%u,%d", SUPER_WORKER_ENV, w->slot, (int) getpid());
	sv.env[sv.nenv] = env;
	sv.env[sv.nenv + 1] = NULL;
	for (int i = 0; i < 3; i++)
		io[i] = (uv_stdio_container_t) {.flags = UV_INHERIT_FD, .data.fd = i};
	io[SUPER_FD_LISTEN] = (uv_stdio_container_t) {.flags = UV_INHERIT_FD, .data.fd = sv.listen_fd};
	io[SUPER_FD_IPC] = (uv_stdio_container_t) {.flags = UV_INHERIT_FD, .data.fd = sp[1]};
	io[SUPER_FD_RING] = (uv_stdio_container_t) {.flags = UV_INHERIT_FD, .data.fd = shr_fd(sv.ring)};
	o.file = "/proc/self/exe";
	o.args = sv.argv;
	o.env = sv.env;
	o.stdio_count = 6;
	o.stdio = io;
	o.exit_cb = sv_on_exit;
	w->proc.data = w;
	w->gen++;
	rc = uv_spawn(sv.loop, &w->proc, &o);
	close(sp[1]);
	sv.env[sv.nenv] = NULL;
	if (rc != 0) {
		log_error("worker %u: cannot start: %s; trying again", w->slot, uv_strerror(rc));
		close(sp[0]);
		uv_close((uv_handle_t *) &w->proc, NULL);
		uv_timer_start(&w->respawn, sv_on_respawn, RESPAWN_MAX_MS, 0);
		return;
	}
	w->running = true;
	w->started_ms = uv_now(sv.loop);
	w->chan = ipc_open(sv.loop, sp[0], &ops, w);
	if (w->chan == NULL) {
		log_error("worker %u: cannot watch its socketpair; stopping it", w->slot);
		uv_process_kill(&w->proc, SIGKILL);
		return;
	}
	log_info("worker %u started (pid %d)", w->slot, w->proc.pid);
}

/* ---- status, shutdown ---- */

/* The best state of the pool: up if one is, connecting if one is. */
/*
 * A link whose next attempt is its first (or follows a loss at once) reads
 * as connecting: a worker's open then waits for it, as on one process,
 * instead of being refused in the moment before the timer fires.
 */
static db_state
sv_link_state(const db_link *l)
{
	return l->state == DB_DISCONNECTED && l->attempt <= 1 ? DB_CONNECTING : l->state;
}

static db_state
sv_pool_state(void)
{
	db_state	best = sv_link_state(&sv.pool[0]);

	for (size_t i = 0; i < sv.npool; i++) {
		db_state	st = sv_link_state(&sv.pool[i]);

		if (st == DB_IDLE || st == DB_BUSY)
			return st;
		if (st == DB_CONNECTING || st == DB_SETUP)
			best = st;
	}
	return best;
}

/* The service manager hears of the supervisor's links, as of one process's. */
static void
sv_check_links(void)
{
	db_state	ps = sv_pool_state();
	bool		up = db_link_up(&sv.live) && (ps == DB_IDLE || ps == DB_BUSY);

	if (up == sv.links_up || sv.stopping)
		return;
	sv.links_up = up;
	if (up && !sv.ready) {
		sv.ready = true;
		notify_ready("ready: both database links are up");
	} else
		notify_status(up ? "ready: both database links are up" : "a database link is down, reconnecting");
}

/*
 * The links' states for the workers, and the supervisor's figures: after
 * every loop turn, so a worker's /metrics or /healthz never shows a state
 * older than the turn that changed it.
 */
static void
sv_on_status(uv_check_t *h)
{
	shr_slot   *s = shr_slot_at(sv.ring, sv.nw);

	(void) h;
	shr_set_links(sv.ring, sv_link_state(&sv.live), sv_pool_state());
	sv_check_links();
	shr_slot_begin(s);
	s->pid = (int32_t) getpid();
	metrics_own_view(&s->v);
	snprintf(s->problem, sizeof(s->problem), "%s", preflight_problem() ? preflight_problem() : "");
	snprintf(s->unavailable, sizeof(s->unavailable), "%s", preflight_unavailable());
	shr_slot_end(s);
}

static void
sv_finish(void)
{
	if (sv.finished)
		return;
	sv.finished = true;
	log_info("shut down");
	notify_close();
	feed_stop();
	prune_stop();
	work_stop();
	for (size_t i = 1; i < sv.npool; i++)
		db_link_stop(&sv.pool[i]);
	for (unsigned i = 0; i < sv.nw; i++)
		uv_close((uv_handle_t *) &sv.w[i].respawn, NULL);
	uv_close((uv_handle_t *) &sv.status, NULL);
	uv_close((uv_handle_t *) &sv.stop_timer, NULL);
	uv_close((uv_handle_t *) &sv.sigterm, NULL);
	uv_close((uv_handle_t *) &sv.sigint, NULL);
	uv_close((uv_handle_t *) &sv.sighup, NULL);
}

static void
sv_maybe_finish(void)
{
	for (unsigned i = 0; i < sv.nw; i++)
		if (sv.w[i].running)
			return;
	sv_finish();
}

static void
sv_on_deadline(uv_timer_t *t)
{
	(void) t;
	for (unsigned i = 0; i < sv.nw; i++)
		if (sv.w[i].running) {
			log_warn("worker %u still running at the shutdown deadline: killing it", sv.w[i].slot);
			uv_process_kill(&sv.w[i].proc, SIGKILL);
		}
}

static void
sv_on_signal(uv_signal_t *h, int signum)
{
	(void) h;
	if (sv.stopping)
		return;
	log_info("received %s: draining every worker", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	sv.stopping = true;
	notify_stopping();
	for (unsigned i = 0; i < sv.nw; i++) {
		uv_timer_stop(&sv.w[i].respawn);
		if (sv.w[i].running)
			uv_process_kill(&sv.w[i].proc, SIGTERM);
	}
	uv_timer_start(&sv.stop_timer, sv_on_deadline, SUPER_STOP_DEADLINE_MS, 0);
	sv_maybe_finish();
}

/* SIGHUP: each worker reloads what it can change at run time. */
static void
sv_on_sighup(uv_signal_t *h, int signum)
{
	(void) h;
	(void) signum;
	if (sv.stopping)
		return;
	log_info("received SIGHUP: passing it on to every worker");
	if (sv.ready)
		notify_reloading();
	for (unsigned i = 0; i < sv.nw; i++)
		if (sv.w[i].running)
			uv_process_kill(&sv.w[i].proc, SIGHUP);
	if (sv.ready)
		notify_ready("ready: both database links are up");
}

static bool
sv_env(void)
{
	size_t		n = 0;

	while (environ[n] != NULL)
		n++;
	if ((sv.env = calloc(n + 2, sizeof(char *))) == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], SUPER_WORKER_ENV "=", sizeof(SUPER_WORKER_ENV)) != 0 &&
			strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0 &&
			strncmp(environ[i], "WATCHDOG_USEC=", 14) != 0 &&
			strncmp(environ[i], "WATCHDOG_PID=", 13) != 0)
			sv.env[sv.nenv++] = environ[i];
	return true;
}

int
super_main(int argc, char **argv)
{
	const db_step *steps;
	size_t		nsteps;

	sv.loop = uv_default_loop();
	sv.argc = argc;
	sv.argv = argv;
	sv.nw = (unsigned) cfg.workers;
	sv.npool = (size_t) cfg.db_pool;
	if (!sv_env() || (sv.w = calloc(sv.nw, sizeof(sv_worker))) == NULL ||
		(sv.pool = calloc(sv.npool, sizeof(db_link))) == NULL) {
		log_error("out of memory starting the supervisor");
		return 1;
	}
	/* the supervisor's share of the cache, for its own cache and the shared ring */
	cfg.replay_cache = cfg.replay_cache / (cfg.workers + 1);
	if ((sv.ring = shr_create(cfg.replay_cache, sv.nw + 1)) == NULL) {
		log_error("cannot map the shared ring (%llu bytes): %s",
				  (unsigned long long) cfg.replay_cache, strerror(errno));
		return 1;
	}
	mem_charge(MEM_EVENTS, shr_bytes(sv.ring));
	if ((sv.listen_fd = listen_bind()) < 0)
		return 1;
	log_info("sse-bridge %s starting: a supervisor and %u workers", BRIDGE_VERSION, sv.nw);
	listen_announce(sv.listen_fd);
	db_conninfo = cfg.db;
	db_timeout_ms = cfg.db_timeout_ms;
	db_session_sql = logread_session_sql(db_timeout_ms);
	db_heartbeat_sql = logread_heartbeat_sql();
	ring_init(cfg.replay_cache, SUPER_RING_EVENTS);
	mem_set_limit(cfg.max_memory / (cfg.workers + 1));	/* its share; see docs/operations.md */
	metrics_init(&sv.live, &sv.pool[0]);
	hub_init(sv_deliver);
	feed_init(sv.loop, &sv.live, &(feed_ops) {sv_advanced, sv_pruned, sv_marker, sv_timeline, sv_pushed});
	work_init(sv.loop, &sv.pool[0], &(work_ops) {NULL});
	steps = logread_work_steps(&nsteps);
	for (size_t i = 1; i < sv.npool; i++)
		db_link_init(&sv.pool[i], sv.loop, "work", steps, nsteps, (db_ops) {0});
	prune_init(sv.loop, &sv.pool[0], cfg.prune_interval_ms);
	uv_check_init(sv.loop, &sv.status);
	uv_check_start(&sv.status, sv_on_status);
	notify_init(sv.loop);
	notify_status("waiting for the database");
	uv_timer_init(sv.loop, &sv.stop_timer);
	uv_signal_init(sv.loop, &sv.sigterm);
	uv_signal_start(&sv.sigterm, sv_on_signal, SIGTERM);
	uv_signal_init(sv.loop, &sv.sigint);
	uv_signal_start(&sv.sigint, sv_on_signal, SIGINT);
	uv_signal_init(sv.loop, &sv.sighup);
	uv_signal_start(&sv.sighup, sv_on_sighup, SIGHUP);
	for (unsigned i = 0; i < sv.nw; i++) {
		sv.w[i].slot = i;
		sv.w[i].backoff_ms = RESPAWN_MS;
		uv_timer_init(sv.loop, &sv.w[i].respawn);
		sv.w[i].respawn.data = &sv.w[i];
	}
	feed_start();
	work_start();
	for (size_t i = 1; i < sv.npool; i++)
		db_link_start(&sv.pool[i]);
	prune_start();
	sv_on_status(NULL);
	for (unsigned i = 0; i < sv.nw; i++)
		sv_start_worker(&sv.w[i]);
	uv_run(sv.loop, UV_RUN_DEFAULT);
	close(sv.listen_fd);
	uv_loop_close(sv.loop);
	ring_shutdown();
	hub_shutdown();
	mem_release(MEM_EVENTS, shr_bytes(sv.ring));
	shr_destroy(sv.ring);
	free(sv.w);
	free(sv.pool);
	free(sv.env);
	cfg_free();
	return 0;
}

uint64_t
super_deadline_ms(bool now)
{
	return now ? cfg.db_timeout_ms + 2000 : cfg.db_timeout_ms * SUPER_RETRY_DEADLINES + 2000;
}
