/*
 * bridge.h - process-wide state shared by the bridge's modules.
 *
 * Everything here runs on the one libuv loop thread.  Handles are embedded
 * in `br`, the one bridge_state, defined and initialised in main.c and
 * closed at shutdown.
 */
#ifndef BRIDGE_BRIDGE_H
#define BRIDGE_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "db.h"
#include "frame.h"
#include "scope.h"

typedef struct bridge_state {
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
	db_link		work;			/* opens, replay pages, touch, expire, prune */
	frame	   *keepalive;		/* shared ": keepalive" comment */
	bool		stopping;
} bridge_state;

extern bridge_state br;

/* Milliseconds on the loop clock. */
static inline uint64_t
bridge_now(void)
{
	return uv_now(br.loop);
}

/* Called when the last client is gone during shutdown. */
void		bridge_maybe_finish(void);

#endif
