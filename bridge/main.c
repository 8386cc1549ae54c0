/*
 * main.c - process setup: settings, listener, signals, the per-turn flush,
 * the sweep timer, and an orderly shutdown.
 *
 * Reload (SIGHUP, `systemctl reload`): reload_run rereads the settings and
 * applies what can change while running; the hooks registered here swap
 * the public scope and the memory bound.  No connection is touched.
 * Under systemd (bridge/notify.h): READY=1 once both database links are
 * up (checked by the sweep timer), RELOADING=1 then READY=1 around a
 * reload, STOPPING=1 at shutdown, watchdog pings from the loop.
 *
 * Shutdown (SIGTERM/SIGINT): stop accepting, end every stream after its
 * queued bytes, close the database links once the last client is gone, and
 * exit 0.  A hard deadline closes whatever is left after 4 s.
 * Each loop turn ends with the flush: live output first, then one turn of
 * replay work (stream_run), then a second flush for what the replays queued.
 * The same flush also runs just before the loop polls: write completions
 * (libuv runs them in the pending phase, after the previous flush) queue
 * output and resume replays, which must not wait for the next wakeup.
 *
 * Wiring: the lower layers (client, feed, work, hub) report upward only
 * through the callback tables set here; stream.c is the layer they report
 * to, and only main.c names both sides.  The process state `br` is this
 * file's alone: each module is handed the loop, links and shared parts it
 * uses when it is set up, and nothing calls back into main.c but through
 * those tables (a client's end: client_ops.closed).
 * Invariants: all handles live in `br` or in clients; after uv_run returns
 * every handle is closed and every allocation is released (leak-free under
 * AddressSanitizer).
 */
#include <netdb.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "feed.h"
#include "hub.h"
#include "listen.h"
#include "log.h"
#include "logread.h"
#include "metrics.h"
#include "preflight.h"
#include "prune.h"
#include "mem.h"
#include "notify.h"
#include "reload.h"
#include "ring.h"
#include "scope.h"
#include "ipc.h"
#include "shr.h"
#include "stream.h"
#include "super.h"
#include "whole.h"
#include "wire.h"
#include "work.h"

#define BRIDGE_STOP_DEADLINE_MS 4000
#define BRIDGE_SWEEP_MS CLIENT_TICK_MS
#define BRIDGE_RING_EVENTS 200000

/* Everything here runs on the one libuv loop thread. */
static struct {
	uv_loop_t  *loop;
	uv_check_t	flush;			/* writes coalesced once per loop turn */
	uv_prepare_t flush_pre;		/* the same before polling (write completions) */
	uv_idle_t	spin;			/* active while replays wait: poll must not block */
	uv_timer_t	sweep;			/* timeouts and keepalives */
	uv_timer_t	stop_timer;		/* hard deadline during shutdown */
	uv_signal_t sigterm;
	uv_signal_t sigint;
	uv_signal_t sighup;			/* reload (reload.h): settings, scope, memory bound, token keys */
	scope	   *public_scope;
	scope	   *next_scope;		/* prepared by a reload, not yet live */
	bool		links_up;		/* both database links were up at the last check */
	bool		ready;			/* READY=1 sent */
	db_link		live;			/* LISTEN + live fetches */
	db_link		work;			/* opens, replay pages, definition reads, housekeeping */
	frame	   *keepalive;		/* shared ": keepalive" comment */
	bool		stopping;
	/* a worker of --workers N: the supervisor holds the links above */
	bool		worker;
	unsigned	slot;
	ipc_chan   *chan;			/* to the supervisor */
	shr		   *ring;			/* the shared ring and the slots */
} br;
static bool finished;

static void
bridge_on_spin(uv_idle_t *h)
{
	(void) h;
}

/* The supervisor's setup verdict as ours (its slot is the last), when it changed. */
static void
bridge_adopt_preflight(void)
{
	shr_slot   *sup = shr_slot_at(br.ring, shr_nslots(br.ring) - 1);
	static uint32_t seen = UINT32_MAX;
	static shr_slot copy;

	if (sup->seq == seen || !shr_slot_read(br.ring, shr_nslots(br.ring) - 1, &copy))
		return;
	seen = copy.seq;
	preflight_adopt(copy.problem[0] ? copy.problem : NULL, copy.unavailable);
}

/* A worker's figures into its slot, and the supervisor's links as ours. */
static void
bridge_publish(void)
{
	shr_slot   *s = shr_slot_at(br.ring, br.slot);

	shr_slot_begin(s);
	s->pid = (int32_t) getpid();
	metrics_own_view(&s->v);
	s->ring_behind = feed_ring_behind;
	shr_slot_end(s);
	br.live.state = (db_state) shr_live_state(br.ring);
	br.work.state = (db_state) shr_work_state(br.ring);
	bridge_adopt_preflight();
}

static void
bridge_flush(void)
{
	client_shed();				/* over the memory limit: drop the largest queues */
	stream_mem_check();
	client_flush_pending();		/* live events go out every turn */
	if (stream_run())
		uv_idle_start(&br.spin, bridge_on_spin);
	else
		uv_idle_stop(&br.spin);
	client_flush_pending();
	if (br.worker)
		bridge_publish();
}

/*
 * A write that went out whole at the flush drains at once and may have
 * resumed a replay after stream_run: poll must not block then either.
 */
static void
bridge_keep_spinning(void)
{
	if (stream_waiting())
		uv_idle_start(&br.spin, bridge_on_spin);
}

static void
bridge_on_flush(uv_check_t *h)
{
	(void) h;
	bridge_flush();
	bridge_keep_spinning();
}

static void
bridge_on_flush_pre(uv_prepare_t *h)
{
	(void) h;
	bridge_flush();
	bridge_keep_spinning();
}

/* READY=1 the first time both links are up; STATUS= when that changes. */
static void
bridge_check_links(void)
{
	bool		up = db_link_up(&br.live) && db_link_up(&br.work);

	if (up == br.links_up || br.stopping)
		return;
	br.links_up = up;
	if (up && !br.ready) {
		br.ready = true;
		notify_ready("ready: both database links are up");
	} else
		notify_status(up ? "ready: both database links are up" : "a database link is down, reconnecting");
}

static void
bridge_on_sweep(uv_timer_t *t)
{
	(void) t;
	client_sweep(uv_now(br.loop));
	bridge_check_links();
}

/* The clients' view of the process (again after a reload swaps the scope). */
static void
bridge_client_env(void)
{
	client_init(&(client_env) {br.loop, br.public_scope, br.keepalive, &br.live, &br.work,
				br.worker ? whole_clients_elsewhere : NULL});
}

/* reload hook: --public-channels, a new scope for requests from now on. */
static bool
bridge_scope_prepare(void *arg, const cfg_settings *next, char *err, size_t errsize)
{
	(void) arg;
	if (strcmp(next->public_channels, cfg.public_channels) == 0)
		return true;
	br.next_scope = scope_new(next->public_channels, err, errsize);
	return br.next_scope != NULL;
}

static void
bridge_scope_commit(void *arg, bool apply)
{
	(void) arg;
	if (br.next_scope == NULL)
		return;
	if (apply) {
		scope_free(br.public_scope);	/* a scope is read only while a request is routed */
		br.public_scope = br.next_scope;
		bridge_client_env();
		log_info("ad hoc %s", scope_count(br.public_scope) ? "enabled" : "disabled");
	} else
		scope_free(br.next_scope);
	br.next_scope = NULL;
}

/* reload hook: --max-memory */
/*
 * A worker holds its share of the memory bound (the replay cache's share
 * is taken at setup: it cannot change at run time); --max-clients stays
 * the whole bridge's, counted with the other workers' clients at accept.
 * Applied at start and again after a reload, which rereads whole values.
 */
static void
bridge_worker_shares(void)
{
	cfg.max_memory = cfg.max_memory / (cfg.workers + 1);
}

static void
bridge_shares_commit(void *arg, bool apply)
{
	(void) arg;
	if (apply)
		bridge_worker_shares();
}

static void
bridge_mem_commit(void *arg, bool apply)
{
	(void) arg;
	if (apply)
		mem_set_limit(cfg.max_memory);
}

/* A changed --keepalive applies to every stream from now, not from its next check. */
static void
bridge_sweep_commit(void *arg, bool apply)
{
	(void) arg;
	if (apply)
		client_reschedule();
}

static void
bridge_on_hup(uv_signal_t *h, int signum)
{
	(void) h;
	(void) signum;
	if (br.stopping)
		return;
	if (br.ready)
		notify_reloading();
	reload_run();
	if (br.ready)
		notify_ready("ready: both database links are up");
}

static void
bridge_finish(void)
{
	if (finished)
		return;
	finished = true;
	log_info("shut down");
	notify_close();
	listen_stop();
	feed_stop();
	if (!br.worker)
		prune_stop();
	work_stop();
	if (br.chan != NULL) {
		ipc_chan   *c = br.chan;

		br.chan = NULL;
		ipc_close(c);
	}
	uv_close((uv_handle_t *) &br.flush, NULL);
	uv_close((uv_handle_t *) &br.flush_pre, NULL);
	uv_close((uv_handle_t *) &br.spin, NULL);
	uv_close((uv_handle_t *) &br.sweep, NULL);
	uv_close((uv_handle_t *) &br.stop_timer, NULL);
	uv_close((uv_handle_t *) &br.sigterm, NULL);
	uv_close((uv_handle_t *) &br.sigint, NULL);
	uv_close((uv_handle_t *) &br.sighup, NULL);
}

/* client_ops.closed, and after the last client is gone during shutdown. */
static void
bridge_maybe_finish(void)
{
	if (br.stopping && client_count == 0)
		bridge_finish();
}

static void
bridge_on_deadline(uv_timer_t *t)
{
	(void) t;
	log_warn("shutdown deadline: closing %zu remaining connections", client_count);
	for (client *c; (c = client_first()) != NULL;)
		client_close(c);
	bridge_maybe_finish();
}

static void
bridge_on_signal(uv_signal_t *h, int signum)
{
	(void) h;
	if (br.stopping)
		return;
	log_info("received %s: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	br.stopping = true;
	notify_stopping();
	listen_stop();
	client_shutdown_all();
	uv_timer_start(&br.stop_timer, bridge_on_deadline, BRIDGE_STOP_DEADLINE_MS, 0);
	bridge_maybe_finish();
}

/* ---- a worker's links: the supervisor ---- */

static bool
bridge_remote_ready(void)
{
	return br.chan != NULL && ipc_is_open(br.chan);
}

static bool
bridge_remote_feed(db_job *job)
{
	return bridge_remote_ready() && ipc_submit(br.chan, job, super_deadline_ms(false));
}

/* As db_submit_now: a job waits while the pool connects, not while it is down. */
static bool
bridge_remote_up(void)
{
	db_state	st = (db_state) shr_work_state(br.ring);

	return bridge_remote_ready() && st != DB_DISCONNECTED && st != DB_HELD && st != DB_STOPPED;
}

static bool
bridge_remote_submit(db_job *job, bool now)
{
	return bridge_remote_ready() && ipc_submit(br.chan, job, super_deadline_ms(now));
}

static void
bridge_remote_touch(char *const *uuids, size_t n)
{
	if (bridge_remote_ready())
		ipc_touch(br.chan, uuids, n);
}

static void
bridge_on_wake(ipc_chan *c)
{
	(void) c;
	feed_drain();
}

/* EOF from the supervisor: it is gone, and so is the feed. */
static void
bridge_on_chan_closed(ipc_chan *c)
{
	(void) c;
	if (br.chan == NULL)
		return;					/* our own close at shutdown */
	log_error("worker %u: the supervisor is gone; exiting (serving nothing from a dead feed)",
			  br.slot);
	_exit(3);
}

/* A reload rereads the token keys (the key file's path needs a restart). */
static void
bridge_auth_commit(void *arg, bool apply)
{
	(void) arg;
	if (apply)
		(void) auth_reload();	/* a key file that does not load keeps the previous keys (logged) */
}

static bool
bridge_setup(void)
{
	char		err[256] = "";

	br.public_scope = scope_new(cfg.public_channels, err, sizeof(err));
	if (br.public_scope == NULL) {
		log_error("--public-channels: %s", err[0] ? err : "out of memory");
		return false;
	}
	if (!auth_init(err, sizeof(err))) {
		log_error("%s", err);
		return false;
	}
	br.keepalive = wire_keepalive();
	db_conninfo = cfg.db;
	db_timeout_ms = cfg.db_timeout_ms;
	db_session_sql = logread_session_sql(db_timeout_ms);
	db_heartbeat_sql = logread_heartbeat_sql();
	mem_set_limit(cfg.max_memory);
	ring_init(br.worker ? cfg.replay_cache / (cfg.workers + 1) : cfg.replay_cache, BRIDGE_RING_EVENTS);
	hub_init(stream_deliver);
	hub_set_run(stream_deliver_run);
	client_set_ops(&(client_ops) {stream_open, stream_drained, stream_release, bridge_maybe_finish});
	bridge_client_env();
	metrics_init(&br.live, &br.work);
	hub_set_index(cfg.filter_index);
	uv_check_init(br.loop, &br.flush);
	uv_check_start(&br.flush, bridge_on_flush);
	uv_prepare_init(br.loop, &br.flush_pre);
	uv_prepare_start(&br.flush_pre, bridge_on_flush_pre);
	uv_idle_init(br.loop, &br.spin);
	uv_timer_init(br.loop, &br.sweep);
	uv_timer_start(&br.sweep, bridge_on_sweep, BRIDGE_SWEEP_MS, BRIDGE_SWEEP_MS);
	uv_timer_init(br.loop, &br.stop_timer);
	uv_signal_init(br.loop, &br.sigterm);
	uv_signal_start(&br.sigterm, bridge_on_signal, SIGTERM);
	uv_signal_init(br.loop, &br.sigint);
	uv_signal_start(&br.sigint, bridge_on_signal, SIGINT);
	uv_signal_init(br.loop, &br.sighup);
	uv_signal_start(&br.sighup, bridge_on_hup, SIGHUP);
	if (br.worker)				/* first: the hooks after it see this worker's shares */
		reload_register(&(reload_hook) {"worker shares", NULL, bridge_shares_commit, NULL});
	reload_register(&(reload_hook) {"public-channels", bridge_scope_prepare, bridge_scope_commit, NULL});
	reload_register(&(reload_hook) {"max-memory", NULL, bridge_mem_commit, NULL});
	reload_register(&(reload_hook) {"jwt-key", NULL, bridge_auth_commit, NULL});
	reload_register(&(reload_hook) {"keepalive", NULL, bridge_sweep_commit, NULL});
	notify_init(br.loop);
	if (br.worker) {
		whole_init(br.ring, br.slot);
		metrics_set_view(whole_fill, whole_extra);
		feed_init_remote(br.loop, br.ring, &(feed_remote) {bridge_remote_ready, bridge_remote_feed},
						 &(feed_ops) {stream_advanced, stream_pruned, stream_marker, stream_timeline, NULL});
		work_init_remote(br.loop, &(work_remote) {bridge_remote_up, bridge_remote_submit, bridge_remote_touch},
						 &(work_ops) {stream_touch_ids});
		return true;
	}
	feed_init(br.loop, &br.live, &(feed_ops) {stream_advanced, stream_pruned, stream_marker, stream_timeline, NULL});
	work_init(br.loop, &br.work, &(work_ops) {stream_touch_ids});
	prune_init(br.loop, &br.work, cfg.prune_interval_ms);
	return true;
}

static void
bridge_teardown(void)
{
	uv_loop_close(br.loop);
	reload_reset();
	scope_free(br.public_scope);
	frame_unref(br.keepalive);
	auth_shutdown();
	ring_shutdown();
	hub_shutdown();
	cfg_free();
}

/* Descriptors a process needs besides its clients: links, listener, loop, logs. */
#define BRIDGE_FD_OVERHEAD 64

/*
 * Raise the soft descriptor limit to the hard one and check that
 * --max-clients fits: each of the N serving processes holds its share of
 * the clients plus BRIDGE_FD_OVERHEAD.  With --workers 1 a shortfall is a
 * warning (the listener answers 503 at the limit, as it always has).
 */
static bool
bridge_check_fds(void)
{
	struct rlimit rl;
	uint64_t	n = cfg.workers, share = (cfg.max_clients + n - 1) / n;
	uint64_t	need = share + BRIDGE_FD_OVERHEAD;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return true;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void) setrlimit(RLIMIT_NOFILE, &rl);
		(void) getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || need <= rl.rlim_cur)
		return true;
	if (n == 1) {
		log_warn("--max-clients %llu needs %llu descriptors but the limit (RLIMIT_NOFILE) is %llu: "
				 "connections past it get 503", (unsigned long long) cfg.max_clients,
				 (unsigned long long) need, (unsigned long long) rl.rlim_cur);
		return true;
	}
	fprintf(stderr, "sse-bridge: --max-clients %llu does not fit %llu workers: each worker holds "
			"up to %llu clients and needs %llu descriptors (%d for itself), but a process may open "
			"%llu (RLIMIT_NOFILE, hard limit %llu); the most this bridge can hold is %llu. Lower "
			"--max-clients, raise --workers, or raise the hard limit\n",
			(unsigned long long) cfg.max_clients, (unsigned long long) n,
			(unsigned long long) share, (unsigned long long) need, BRIDGE_FD_OVERHEAD,
			(unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max,
			(unsigned long long) (rl.rlim_cur > BRIDGE_FD_OVERHEAD
								  ? (rl.rlim_cur - BRIDGE_FD_OVERHEAD) * n : 0));
	return false;
}

/*
 * In a worker: the slot and supervisor from SUPER_WORKER_ENV, death with
 * the supervisor, the inherited ring and socketpair.  False (logged) when
 * this worker cannot run.
 */
static bool
bridge_worker_init(const char *spec)
{
	unsigned	slot;
	int			ppid;

	if (sscanf(spec, "%u,%d", &slot, &ppid) != 2 || slot >= cfg.workers) {
		log_error("%s is malformed", SUPER_WORKER_ENV);
		return false;
	}
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != ppid) {
		log_error("worker %u: the supervisor is gone", slot);
		return false;
	}
	unsetenv(SUPER_WORKER_ENV);
	br.worker = true;
	br.slot = slot;
	if ((br.ring = shr_attach(SUPER_FD_RING)) == NULL || shr_nslots(br.ring) <= slot) {
		log_error("worker %u: cannot map the shared ring", slot);
		return false;
	}
	close(SUPER_FD_RING);
	/*
	 * Each worker holds its share of the clients, and the workers and the
	 * supervisor an equal share each of the memory bound and of the replay
	 * cache (docs/operations.md, "Workers").
	 */
	bridge_worker_shares();
	br.live.name = "live";
	br.work.name = "work";
	return true;
}

int
main(int argc, char **argv)
{
	const char *wspec;

	mem_init();					/* before jansson allocates anything */
	switch (cfg_load(argc, argv)) {
		case CFG_OK: break;
		case CFG_EXIT_OK: cfg_free(); return 0;
		case CFG_EXIT_ERROR: cfg_free(); return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	srand((unsigned) time(NULL) ^ (unsigned) getpid());
	wspec = getenv(SUPER_WORKER_ENV);
	if (wspec == NULL && !bridge_check_fds()) {
		cfg_free();
		return 2;
	}
	if (wspec == NULL && cfg.workers >= 2)
		return super_main(argc, argv);
	br.loop = uv_default_loop();
	if (wspec != NULL && !bridge_worker_init(wspec))
		return 1;
	if (!bridge_setup())
		return 1;
	if (br.worker) {
		br.chan = ipc_open(br.loop, SUPER_FD_IPC,
						   &(ipc_ops) {bridge_on_wake, NULL, bridge_on_chan_closed}, NULL);
		if (br.chan == NULL || !listen_adopt(br.loop, SUPER_FD_LISTEN, true)) {
			log_error("worker %u: cannot use the inherited descriptors", br.slot);
			return 1;
		}
		bridge_publish();
		log_info("worker %u ready (pid %d)", br.slot, (int) getpid());
		feed_start();
		work_start();
		uv_run(br.loop, UV_RUN_DEFAULT);
		bridge_teardown();
		shr_destroy(br.ring);
		return 0;
	}
	if (!listen_start(br.loop)) {
		br.stopping = true;
		bridge_finish();
		uv_run(br.loop, UV_RUN_DEFAULT);
		bridge_teardown();
		return 1;
	}
	log_info("sse-bridge %s starting; ad hoc %s%s", BRIDGE_VERSION,
			 scope_count(br.public_scope) || auth_enabled() ? "enabled" : "disabled",
			 auth_enabled() ? " (public channels and token grants)" : "");
	feed_start();
	work_start();
	prune_start();
	notify_status("waiting for the database");
	uv_run(br.loop, UV_RUN_DEFAULT);
	bridge_teardown();
	return 0;
}
