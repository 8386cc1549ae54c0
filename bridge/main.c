/*
 * main.c - process setup: settings, listener, signals, the per-turn flush,
 * the sweep timer, and an orderly shutdown.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "feed.h"
#include "hub.h"
#include "listen.h"
#include "log.h"
#include "logread.h"
#include "metrics.h"
#include "prune.h"
#include "mem.h"
#include "ring.h"
#include "scope.h"
#include "stream.h"
#include "wire.h"
#include "work.h"

#define BRIDGE_STOP_DEADLINE_MS 4000
#define BRIDGE_SWEEP_MS 250
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
	scope	   *public_scope;
	db_link		live;			/* LISTEN + live fetches */
	db_link		work;			/* opens, replay pages, definition reads, housekeeping */
	frame	   *keepalive;		/* shared ": keepalive" comment */
	bool		stopping;
} br;
static bool finished;

static void
bridge_on_spin(uv_idle_t *h)
{
	(void) h;
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

static void
bridge_on_sweep(uv_timer_t *t)
{
	(void) t;
	client_sweep(uv_now(br.loop));
}

static void
bridge_finish(void)
{
	if (finished)
		return;
	finished = true;
	log_info("shut down");
	listen_stop();
	feed_stop();
	prune_stop();
	work_stop();
	uv_close((uv_handle_t *) &br.flush, NULL);
	uv_close((uv_handle_t *) &br.flush_pre, NULL);
	uv_close((uv_handle_t *) &br.spin, NULL);
	uv_close((uv_handle_t *) &br.sweep, NULL);
	uv_close((uv_handle_t *) &br.stop_timer, NULL);
	uv_close((uv_handle_t *) &br.sigterm, NULL);
	uv_close((uv_handle_t *) &br.sigint, NULL);
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
	listen_stop();
	client_shutdown_all();
	uv_timer_start(&br.stop_timer, bridge_on_deadline, BRIDGE_STOP_DEADLINE_MS, 0);
	bridge_maybe_finish();
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
	br.keepalive = wire_keepalive();
	db_conninfo = cfg.db;
	db_timeout_ms = cfg.db_timeout_ms;
	db_session_sql = logread_session_sql(db_timeout_ms);
	db_heartbeat_sql = logread_heartbeat_sql();
	mem_set_limit(cfg.max_memory);
	ring_init(cfg.replay_cache, BRIDGE_RING_EVENTS);
	hub_init(stream_deliver);
	client_set_ops(&(client_ops) {stream_open, stream_drained, stream_release, bridge_maybe_finish});
	client_init(&(client_env) {br.loop, br.public_scope, br.keepalive, &br.live, &br.work});
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
	feed_init(br.loop, &br.live, &(feed_ops) {stream_advanced, stream_pruned, stream_marker, stream_timeline});
	work_init(br.loop, &br.work, &(work_ops) {stream_touch_ids});
	prune_init(br.loop, &br.work, cfg.prune_interval_ms);
	return true;
}

static void
bridge_teardown(void)
{
	uv_loop_close(br.loop);
	scope_free(br.public_scope);
	frame_unref(br.keepalive);
	ring_shutdown();
	hub_shutdown();
	cfg_free();
}

int
main(int argc, char **argv)
{
	mem_init();					/* before jansson allocates anything */
	switch (cfg_load(argc, argv)) {
		case CFG_OK: break;
		case CFG_EXIT_OK: cfg_free(); return 0;
		case CFG_EXIT_ERROR: cfg_free(); return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	srand((unsigned) time(NULL) ^ (unsigned) getpid());
	br.loop = uv_default_loop();
	if (!bridge_setup())
		return 1;
	if (!listen_start(br.loop)) {
		br.stopping = true;
		bridge_finish();
		uv_run(br.loop, UV_RUN_DEFAULT);
		bridge_teardown();
		return 1;
	}
	log_info("sse-bridge %s starting; ad hoc %s", BRIDGE_VERSION,
			 scope_count(br.public_scope) ? "enabled" : "disabled");
	feed_start();
	work_start();
	prune_start();
	uv_run(br.loop, UV_RUN_DEFAULT);
	bridge_teardown();
	return 0;
}
