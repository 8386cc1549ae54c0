/*
 * client.h - one HTTP connection and, when it streams, its subscription.
 *
 * States (client_set_state is the only place that changes them):
 *   READING    receiving the request head (header timeout applies)
 *   OPENING    stream validated; waiting for the database lookup
 *   REPLAYING  headers sent; catching up from the replay cache or the log
 *   LIVE       in the hub, receiving events as they are fetched
 *   CLOSING    last bytes queued; shut down once they are written
 *
 * Ownership: a client owns its request parser (READING only), its stream
 * (from OPENING on), its output queue, and at most one database job (which
 * it cancels when it closes).  Clients are freed only in the uv_close
 * callback of their socket.
 */
#ifndef BRIDGE_CLIENT_H
#define BRIDGE_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "db.h"
#include "event.h"
#include "hub.h"
#include "outq.h"
#include "request.h"

typedef enum client_state {
	CS_READING,
	CS_OPENING,
	CS_REPLAYING,
	CS_LIVE,
	CS_CLOSING,
	CS_COUNT
} client_state;

enum client_flags {
	CF_PENDING = 1 << 0,		/* in the flush list */
	CF_DOOMED = 1 << 1,			/* close at the next flush (slow or broken) */
	CF_ENDING = 1 << 2,			/* end the stream at the next flush */
	CF_WRITING = 1 << 3,		/* a uv_write is in flight */
	CF_REJECT = 1 << 4,			/* over --max-clients: answer 503 */
	CF_PARKED = 1 << 5,			/* waiting for the live cursor to advance */
	CF_CLOSED = 1 << 6,			/* uv_close called */
	CF_SHUTDOWN = 1 << 7,		/* uv_shutdown issued */
	CF_QUEUED = 1 << 8			/* in the replay run queue */
};

struct client;

typedef struct stream {
	hub_sub		sub;			/* patterns and filter, owned here; first member */
	struct client *owner;
	int64_t		sid;			/* subscription's internal id; 0 = ad hoc */
	char	   *sub_id;			/* subscription uuid; NULL = ad hoc */
	int64_t		last_event_id;	/* from the request, -1 = none */
	char	   *origin;			/* request Origin, for CORS headers */
	db_job	   *job;			/* the one pending database job, or NULL */
	uint64_t	open_changes;	/* work_sub_changes() when the open was sent */
} stream;

typedef struct client {
	uv_tcp_t	tcp;
	uint8_t		state;			/* client_state */
	uint16_t	flags;
	struct client *prev;		/* every client */
	struct client *next;
	struct client *pending_next;	/* flush list */
	struct client *park_next;	/* parked list or replay run queue (never both) */
	uint64_t	deadline_ms;	/* READING/CLOSING: give up at; else last send */
	int64_t		cursor;			/* every matching event <= cursor was queued */
	outq		q;
	req		   *req;
	stream	   *st;
} client;

/* Accept a connection from the listener (server.c calls this). */
void		client_accept(uv_stream_t *listener);

/*
 * Queue a frame; takes the caller's reference.  A client whose queue goes
 * over --client-queue is marked for closing at the next flush.
 */
void		client_send(client *c, frame *f);

/* End the stream after what is queued has been written. */
void		client_end(client *c);

/* Answer an error and close (any state before the stream head is sent). */
void		client_respond_error(client *c, int status, const char *code, const char *detail);

void		client_set_state(client *c, client_state st);
void		client_close(client *c);

/* Flush every client with queued output; close doomed ones (uv_check). */
void		client_flush_pending(void);

/* Periodic sweep: header timeouts, keepalives, lingering closes. */
void		client_sweep(uint64_t now_ms);

/* Ask every client to finish (shutdown). */
void		client_shutdown_all(void);

/* Hub callback: a live event for a live client. */
void		client_deliver(hub_sub *s, event *ev, bool ends);

extern client *client_list;
extern size_t client_count;
extern size_t client_streams;

#endif
