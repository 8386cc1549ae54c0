/*
 * client.h - one HTTP connection: its request head, its output queue, and
 * the connection's state.  What a stream does is stream.c's business; the
 * connection only carries it.
 *
 * Connection states (client_set_state is the only place that changes them;
 * legal moves are asserted):
 *   READING    receiving the request head (header timeout applies)
 *   OPENING    a stream was requested; no byte of the answer sent yet
 *   STREAMING  the event-stream head was sent (keepalives apply)
 *   CLOSING    last bytes queued; shut down once they are written
 *   READING -> OPENING | CLOSING;  OPENING -> STREAMING | CLOSING;
 *   STREAMING -> CLOSING.  client_close may end any state.
 *
 * Upward calls go only through client_ops (main.c wires them to stream.c
 * and to itself): `open` when a stream request was routed, `drained` when a
 * write finished while STREAMING, `release` exactly once when a connection
 * that had a stream (OPENING or STREAMING) goes CLOSING or is closed,
 * `closed` after a connection was freed (client_count fell).  What the
 * connections need of the process comes in through client_init.
 *
 * Ownership: a client owns its request parser (READING only), its Origin
 * copy and its output queue; c->st belongs to stream.c (set by `open`,
 * cleared by `release`).  Clients are freed only in the uv_close callback
 * of their socket.
 */
#ifndef BRIDGE_CLIENT_H
#define BRIDGE_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uv.h>

#include "db.h"
#include "frame.h"
#include "metrics.h"
#include "outq.h"
#include "request.h"
#include "route.h"
#include "scope.h"

typedef enum client_state {
	CS_READING,
	CS_OPENING,
	CS_STREAMING,
	CS_CLOSING,
	CS_COUNT
} client_state;

enum client_flags {
	CF_PENDING = 1 << 0,		/* in the flush list */
	CF_DOOMED = 1 << 1,			/* close at the next flush (slow or broken) */
	CF_ENDING = 1 << 2,			/* end the stream at the next flush */
	CF_WRITING = 1 << 3,		/* a uv_write is in flight */
	CF_REJECT = 1 << 4,			/* over --max-clients: answer 503 */
	CF_CLOSED = 1 << 5,			/* uv_close called */
	CF_SHUTDOWN = 1 << 6,		/* uv_shutdown issued */
	CF_UNPACED = 1 << 7			/* nobody paces the output: over --client-queue closes */
};

struct stream;
struct auth_grant;

typedef struct client {
	uv_tcp_t	tcp;
	uint8_t		state;			/* client_state */
	uint16_t	flags;
	LIST_ENTRY(client) link;	/* every client */
	SLIST_ENTRY(client) pending;	/* flush list (CF_PENDING) */
	uint64_t	deadline_ms;	/* READING/CLOSING: give up at; else last send */
	TAILQ_ENTRY(client) tick;	/* its bucket of the sweep's wheel */
	uint64_t	due_tick;		/* the sweep tick of its next check; 0: none */
	outq		q;
	req		   *req;
	char	   *origin;			/* request Origin when CORS is configured */
	struct stream *st;			/* stream.c's, while OPENING or STREAMING */
	struct auth_grant *grant;	/* the token it opened with (a reference), or NULL */
} client;

typedef struct client_ops {
	void		(*open)(client *c, route_result *rr);
	void		(*drained)(client *c);
	void		(*release)(client *c);
	void		(*closed)(void);
} client_ops;

void		client_set_ops(const client_ops *ops);

/* The process's parts a connection uses, all borrowed (they outlive every client). */
typedef struct client_env {
	uv_loop_t  *loop;
	const scope *public_scope;	/* --public-channels */
	frame	   *keepalive;		/* the shared keepalive comment */
	const db_link *live;		/* /healthz answers 200 while both are up */
	const db_link *work;
	uint64_t	(*elsewhere) (void);	/* clients of the bridge's other processes (NULL: none) */
} client_env;

void		client_init(const client_env *env);

/* A tracked client in READING on a fresh, unconnected socket (tests); NULL on OOM. */
client	   *client_new(void);

/*
 * With --workers 2 or more: true when this worker should leave the next
 * waiting connection to the others (it holds its share of --max-clients,
 * or clearly more than the average, and the whole bridge has room).
 * *elsewhere: the other processes' clients it judged by (0 without workers).
 */
bool		client_should_yield(uint64_t *elsewhere);

/*
 * Answer a connection that will not be served with a prebuilt response
 * (best effort, no allocation: a fresh socket's send buffer takes it) and
 * close it.
 */
void		client_turn_away(int fd, const char *text, size_t len);

/* Take an accepted, non-blocking socket (listen.c calls this; it owns fd now). */
void		client_adopt(int fd);

/*
 * Queue a frame; takes the caller's reference (NULL: out of memory, the
 * client is closed at the next flush).  A CF_UNPACED client whose queue
 * would go over --client-queue gets nothing more and is closed at the next
 * flush; paced output (replay) checks client_room first.
 */
void		client_send(client *c, frame *f);

/* OPENING -> STREAMING: the event-stream head is queued. */
void		client_streaming(client *c);

/* Over --client-queue from now on means a slow client (live streams). */
void		client_set_unpaced(client *c);

/* Whether len more bytes may be queued: the queue stays within
 * --client-queue, or holds nothing else. */
bool		client_room(const client *c, size_t len);

/*
 * The one way the bridge ends a connection's stream: log why (detail),
 * count it (metrics.disconnects[why]), and at the next flush either end
 * the stream after what is queued (notify: the client reads the frames
 * already queued, such as a final `ready`) or close the connection at once
 * (the queued bytes are dropped).  Either way the client may resume with
 * Last-Event-ID.  Never closes inside the caller: safe in any write or
 * dispatch path.  A client already ending or closing is counted once, for
 * its first reason (a later !notify still closes it at once).
 */
void		client_disconnect(client *c, bool notify, close_reason why, const char *detail);

/* An allocation for c failed: client_disconnect(c, false, CLOSE_OOM, what). */
void		client_fail(client *c, const char *what);

/* Over the hard memory limit: drop the largest queues (mem.h). */
void		client_shed(void);

/* End the stream after what is queued has been written (at the next flush). */
void		client_end(client *c);

/* Close at the next flush, never inside a write or dispatch path. */
void		client_doom(client *c);

/* True once the client is ending, doomed or closed: queue nothing more. */
static inline bool
client_gone(const client *c)
{
	return (c->flags & (CF_ENDING | CF_DOOMED | CF_CLOSED)) != 0;
}

/* Answer f and close (any state before the stream head is sent). */
void		client_respond(client *c, frame *f);
/* Answer an error and close (any state before the stream head is sent). */
void		client_respond_error(client *c, int status, const char *code, const char *detail);

void		client_close(client *c);

/* Flush every client with queued output; close doomed ones (uv_check). */
void		client_flush_pending(void);

/*
 * Periodic sweep (every CLIENT_TICK_MS): header timeouts, keepalives, token
 * expiry, lingering closes.  It visits only the clients whose check is due
 * (a wheel of ticks), so its cost follows them, not all clients.
 */
#define CLIENT_TICK_MS 250
void		client_sweep(uint64_t now_ms);
/* Check every client again by the running settings (after a reload). */
void		client_reschedule(void);
/* Clients the sweeps have visited so far (for tests). */
extern uint64_t client_sweep_visits;

/* Ask every client to finish (shutdown); later requests are answered 503. */
void		client_shutdown_all(void);

/* Any client (NULL when none), for closing them all. */
client	   *client_first(void);

extern size_t client_count;

#endif
