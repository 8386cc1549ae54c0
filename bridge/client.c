/*
 * client.c - HTTP connections: request head, routing, output, closing.
 *
 * One handler table entry per state (state_ops); client_set_state checks
 * the move is legal, runs the exit action of the old state and the entry
 * action of the new one:
 *   READING   exit: free the request parser
 *   OPENING, STREAMING  exit to CLOSING: release the stream (ops.release)
 *   CLOSING   entry: start the linger deadline
 * Invariants:
 *  - reads use one shared buffer (client_alloc), so an idle connection holds
 *    no read buffer;
 *  - output is only written from client_flush_pending (a uv_check handle):
 *    straight into the socket first (uv_try_write), and what the socket does
 *    not take through at most one uv_write in flight per client;
 *  - a client is never closed inside a write path: slow or broken clients
 *    are marked CF_DOOMED and closed at the next flush;
 *  - every stream the bridge ends or drops goes through client_disconnect
 *    (logged, counted by reason, ended or closed at the next flush);
 *  - a stream ends only at a flush, outside hub_dispatch (CF_ENDING defers
 *    it), so hub membership never changes during a dispatch;
 *  - c->st is set exactly while OPENING or STREAMING (after ops.open) and
 *    ops.release runs once when that ends;
 *  - the struct is freed only in client_closed (uv_close callback).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "preflight.h"
#include "resp.h"
#include "route.h"
#include "static.h"
#include "wire.h"

/* Frames per write: Linux's IOV_MAX, so one writev carries them all. */
#define CLIENT_MAX_BUFS 1024
#define CLIENT_LINGER_MS 5000
#define CLIENT_EXTRA_REJECTS 1024

typedef struct state_ops {
	void		(*on_read)(client *c, const char *buf, ssize_t n);
	void		(*on_written)(client *c);
	void		(*on_enter)(client *c, client_state from);
	void		(*on_exit)(client *c, client_state to);
} state_ops;

static LIST_HEAD(, client) clients = LIST_HEAD_INITIALIZER(clients);
static SLIST_HEAD(, client) pending = SLIST_HEAD_INITIALIZER(pending);
size_t		client_count;

/*
 * The sweep's wheel: CLIENT_WHEEL buckets of one tick each.  A client sits
 * in the bucket of the tick of its next check (due_tick, 1-based; 0: in no
 * bucket); a bucket holds the clients of every tick congruent to it, and a
 * sweep takes only those due.  A send does not move a client: the check
 * reads deadline_ms when it comes, and puts the client in the bucket of
 * its next possible due time.
 */
#define CLIENT_WHEEL 4096		/* ticks (1,024 s), a power of two */
#define CLIENT_TOKEN_CHECK_MS 1000	/* a token-granted stream's expiry check */

static TAILQ_HEAD(client_bucket, client) wheel[CLIENT_WHEEL];
static uint64_t wheel_next;		/* the first tick the next sweep takes; 0: none yet */
uint64_t	client_sweep_visits;

static void
client_wheel_drop(client *c)
{
	if (c->due_tick != 0) {
		TAILQ_REMOVE(&wheel[c->due_tick & (CLIENT_WHEEL - 1)], c, tick);
		c->due_tick = 0;
	}
}

/* Check c again at loop time due_ms (at the next sweep if that is past). */
static void
client_wheel_put(client *c, uint64_t due_ms)
{
	uint64_t	t = due_ms / CLIENT_TICK_MS + 1;	/* a check in that tick may be early: it puts c back */
	static bool init;

	if (!init) {
		for (int i = 0; i < CLIENT_WHEEL; i++)
			TAILQ_INIT(&wheel[i]);
		init = true;
	}
	if (t < wheel_next)
		t = wheel_next;
	client_wheel_drop(c);
	c->due_tick = t;
	TAILQ_INSERT_TAIL(&wheel[t & (CLIENT_WHEEL - 1)], c, tick);
}

static client_ops up;
static client_env env;
static bool stopping;			/* client_shutdown_all was called */
static char read_buf[65536];
static bool read_buf_busy;

static void client_read_request(client *c, const char *buf, ssize_t n);
static void client_read_ignore(client *c, const char *buf, ssize_t n);
static void client_written_streaming(client *c);
static void client_written_closing(client *c);
static void client_exit_reading(client *c, client_state to);
static void client_exit_stream(client *c, client_state to);
static void client_enter_closing(client *c, client_state from);

static const state_ops ops[CS_COUNT] = {
	[CS_READING] = {client_read_request, NULL, NULL, client_exit_reading},
	[CS_OPENING] = {client_read_ignore, NULL, NULL, client_exit_stream},
	[CS_STREAMING] = {client_read_ignore, client_written_streaming, NULL, client_exit_stream},
	[CS_CLOSING] = {client_read_ignore, client_written_closing, client_enter_closing, NULL},
};

/* Legal moves: legal[from] has bit `to` set. */
static const uint8_t legal[CS_COUNT] = {
	[CS_READING] = 1 << CS_OPENING | 1 << CS_CLOSING,
	[CS_OPENING] = 1 << CS_STREAMING | 1 << CS_CLOSING,
	[CS_STREAMING] = 1 << CS_CLOSING,
	[CS_CLOSING] = 0,
};

static const char *const client_state_names[CS_COUNT] = {
	"reading", "opening", "streaming", "closing"
};

void
client_set_ops(const client_ops *ops_)
{
	assert(ops_->open && ops_->drained && ops_->release && ops_->closed);
	up = *ops_;
}

void
client_init(const client_env *env_)
{
	assert(env_->loop != NULL);
	env = *env_;
}

/* Milliseconds on the loop clock. */
static uint64_t
client_now(void)
{
	return uv_now(env.loop);
}

static void
client_set_state(client *c, client_state st)
{
	client_state old = (client_state) c->state;

	if (old == st)
		return;
	assert(legal[old] & (1u << st));
	if (ops[old].on_exit)
		ops[old].on_exit(c, st);
	c->state = (uint8_t) st;
	log_debug("client %p: %s -> %s", (void *) c, client_state_names[old], client_state_names[st]);
	if (ops[st].on_enter)
		ops[st].on_enter(c, old);
}

static void
client_exit_reading(client *c, client_state to)
{
	(void) to;
	if (c->req) {
		req_free(c->req);
		free(c->req);
		c->req = NULL;
	}
}

/* Leaving OPENING or STREAMING: the stream is over unless it just started. */
static void
client_exit_stream(client *c, client_state to)
{
	if (to == CS_CLOSING && c->st != NULL) {
		up.release(c);
		assert(c->st == NULL);
	}
}

static void
client_enter_closing(client *c, client_state from)
{
	(void) from;
	c->deadline_ms = client_now() + CLIENT_LINGER_MS;
	client_wheel_put(c, c->deadline_ms);
	if (c->q.n == 0)
		client_written_closing(c);
}

void
client_streaming(client *c)
{
	assert(c->state == CS_OPENING && c->st != NULL);
	client_set_state(c, CS_STREAMING);
	client_wheel_put(c, client_now() + CLIENT_TICK_MS);
}

void
client_set_unpaced(client *c)
{
	c->flags |= CF_UNPACED;
}

static void
client_mark_pending(client *c)
{
	if (c->flags & (CF_PENDING | CF_CLOSED))
		return;
	c->flags |= CF_PENDING;
	SLIST_INSERT_HEAD(&pending, c, pending);
}

void
client_doom(client *c)
{
	c->flags |= CF_DOOMED;
	client_mark_pending(c);
}

/* How loud each reason is logged: failures warn, ordinary ends are news. */
static const log_level close_log_level[CLOSE_COUNT] = {
	[CLOSE_OOM] = LOG_WARN,
	[CLOSE_SLOW] = LOG_INFO,
	[CLOSE_MEMORY] = LOG_INFO,
	[CLOSE_DATABASE] = LOG_WARN,
	[CLOSE_TIMELINE] = LOG_INFO,
	[CLOSE_RESUME] = LOG_INFO,
	[CLOSE_DEFINITION] = LOG_ERROR,
	[CLOSE_SUBSCRIPTION] = LOG_INFO,
	[CLOSE_END_EVENT] = LOG_DEBUG,
	[CLOSE_AUTH_EXPIRED] = LOG_DEBUG,
};

void
client_disconnect(client *c, bool notify, close_reason why, const char *detail)
{
	if (c->flags & CF_CLOSED)
		return;
	if (!client_gone(c)) {
		metrics.disconnects[why]++;
		if (why == CLOSE_OOM)
			metrics.alloc_failures++;
		if (close_log_level[why] <= log_threshold)
			log_msg(close_log_level[why], "client %p: %s: %s; %s", (void *) c,
					close_reason_name(why), detail, notify ? "ending its stream" : "closing it");
	}
	if (notify)
		client_end(c);
	else
		client_doom(c);
}

void
client_fail(client *c, const char *what)
{
	client_disconnect(c, false, CLOSE_OOM, what);
}

bool
client_room(const client *c, size_t len)
{
	return c->q.n == 0 || outq_bytes(&c->q) + len <= cfg.client_queue;
}

void
client_send(client *c, frame *f)
{
	if (c->flags & CF_CLOSED) {
		frame_unref(f);
		return;
	}
	if (f == NULL) {
		client_fail(c, "out of memory formatting output");
		return;
	}
	if ((c->flags & CF_UNPACED) && c->state == CS_STREAMING && !client_room(c, f->len)) {
		char		detail[64];

		frame_unref(f);			/* a slow client: it gets nothing more */
		if (!(c->flags & CF_DOOMED))
			metrics.slow_drops++;
		snprintf(detail, sizeof(detail), "%zu bytes queued", outq_bytes(&c->q));
		client_disconnect(c, false, CLOSE_SLOW, detail);
		return;
	}
	if (!outq_push(&c->q, f)) {
		client_fail(c, "out of memory queueing output");
		return;
	}
	if (c->q.n > 1 && outq_bytes(&c->q) > metrics.queue_peak)
		metrics.queue_peak = outq_bytes(&c->q);
	if (c->q.n > 1 && outq_bytes(&c->q) > cfg.client_queue)
		metrics.queue_over++;
	if (c->state != CS_READING && c->state != CS_CLOSING)
		c->deadline_ms = client_now();	/* last traffic, for keepalives */
	client_mark_pending(c);
}

void
client_end(client *c)
{
	c->flags |= CF_ENDING;
	client_mark_pending(c);
}

void
client_respond(client *c, frame *f)
{
	client_send(c, f);
	client_set_state(c, CS_CLOSING);
}

void
client_respond_error(client *c, int status, const char *code, const char *detail)
{
	const char *origin = c->origin ? c->origin
		: (c->req && c->req->origin.set ? c->req->origin.s : NULL);
	frame	   *f = resp_error(status, code, detail, origin);
	char	   *end;

	if (c->req != NULL && c->req->parser.method == HTTP_HEAD && !resp_is_shared(f) &&
			 (end = memmem(f->data, f->len, "\r\n\r\n", 4)) != NULL)
		f->len = (uint32_t) (end + 4 - f->data);	/* HEAD: the head only */
	log_debug("client %p: %d %s", (void *) c, status, code);
	client_respond(c, f);
}

/* ---- closing ---- */

static void
client_free(client *c)
{
	outq_clear(&c->q);
	assert(c->st == NULL);
	if (c->req) {
		req_free(c->req);
		free(c->req);
	}
	free(c->origin);
	auth_grant_unref(c->grant);
	free(c);
}

static void
client_closed(uv_handle_t *h)
{
	client_free(h->data);
	up.closed();
}

void
client_close(client *c)
{
	if (c->flags & CF_CLOSED)
		return;
	if (c->st != NULL) {
		assert(c->state == CS_OPENING || c->state == CS_STREAMING);
		up.release(c);
		assert(c->st == NULL);
	}
	c->flags |= CF_CLOSED;
	LIST_REMOVE(c, link);
	client_wheel_drop(c);
	client_count--;
	metrics.clients = client_count;
	uv_close((uv_handle_t *) &c->tcp, client_closed);
}

client *
client_first(void)
{
	return LIST_FIRST(&clients);
}

static void
client_shutdown_done(uv_shutdown_t *sreq, int status)
{
	client	   *c = sreq->data;

	(void) status;
	free(sreq);
	client_close(c);
}

/* CLOSING: everything written; send FIN, then close. */
static void
client_written_closing(client *c)
{
	uv_shutdown_t *sreq;

	if (c->q.n > 0 || (c->flags & (CF_SHUTDOWN | CF_CLOSED)))
		return;
	sreq = malloc(sizeof(uv_shutdown_t));
	c->flags |= CF_SHUTDOWN;
	if (sreq == NULL) {
		client_close(c);
		return;
	}
	sreq->data = c;
	if (uv_shutdown(sreq, (uv_stream_t *) &c->tcp, client_shutdown_done) != 0) {
		free(sreq);
		client_close(c);
	}
}

static void
client_written_streaming(client *c)
{
	if (c->st != NULL && !client_gone(c))
		up.drained(c);
}

/* ---- writing ---- */

/* A write failed: the connection is broken; close it at this flush. */
static void
client_write_failed(client *c, int status)
{
	log_debug("client %p: write failed: %s", (void *) c, uv_strerror(status));
	c->flags |= CF_DOOMED;
	client_mark_pending(c);
}

static void
client_on_write(uv_write_t *wr, int status)
{
	client	   *c = wr->data;
	size_t		before = outq_bytes(&c->q);

	free(wr);
	c->flags &= (uint16_t) ~CF_WRITING;
	outq_complete(&c->q);
	if (c->flags & CF_CLOSED)
		return;
	if (status < 0) {
		client_write_failed(c, status);
		return;
	}
	metrics.bytes_sent += before - outq_bytes(&c->q);
	if (outq_pending(&c->q) > 0)
		client_mark_pending(c);
	if (ops[c->state].on_written)
		ops[c->state].on_written(c);
}

/* Hand what the direct write left to uv_write (at most one in flight). */
static void
client_write_rest(client *c, uv_buf_t *bufs)
{
	uv_write_t *wr = malloc(sizeof(uv_write_t));
	uint32_t	n;

	if (wr == NULL) {
		client_close(c);
		return;
	}
	n = outq_take(&c->q, bufs, CLIENT_MAX_BUFS);
	wr->data = c;
	c->flags |= CF_WRITING;
	if (uv_write(wr, (uv_stream_t *) &c->tcp, bufs, n, client_on_write) != 0) {
		c->flags &= (uint16_t) ~CF_WRITING;
		free(wr);
		outq_complete(&c->q);
		client_close(c);
	}
}

/*
 * Write what is queued: first straight into the socket (one writev of the
 * shared frames, no request, no callback), then queue only what the socket
 * did not take, through one uv_write.  Everything sent at once counts as a
 * finished write (on_written), as the write callback would.
 */
static void
client_flush(client *c)
{
	uv_buf_t	bufs[CLIENT_MAX_BUFS];
	uint32_t	n;
	int			r;

	if ((c->flags & (CF_WRITING | CF_CLOSED)) || outq_pending(&c->q) == 0)
		return;
	n = outq_peek(&c->q, bufs, CLIENT_MAX_BUFS);
	r = uv_try_write((uv_stream_t *) &c->tcp, bufs, n);
	if (r < 0 && r != UV_EAGAIN) {
		client_write_failed(c, r);
		return;
	}
	if (r > 0) {
		outq_consume(&c->q, (size_t) r);
		metrics.bytes_sent += (size_t) r;
	}
	if (outq_pending(&c->q) > 0)
		client_write_rest(c, bufs);
	else if (ops[c->state].on_written)
		ops[c->state].on_written(c);
}

/* Deferred work for one client: close, end the stream, write. */
static void
client_service(client *c)
{
	if (c->flags & CF_CLOSED)
		return;
	if (c->flags & CF_DOOMED) {
		client_close(c);
		return;
	}
	if ((c->flags & CF_ENDING) && (c->state == CS_STREAMING || c->state == CS_OPENING))
		client_set_state(c, CS_CLOSING);
	client_flush(c);
}

void
client_flush_pending(void)
{
	client	   *c;

	while ((c = SLIST_FIRST(&pending)) != NULL) {
		SLIST_REMOVE_HEAD(&pending, pending);
		c->flags &= (uint16_t) ~CF_PENDING;
		client_service(c);
	}
}

/* ---- reading ---- */

static void
client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void) h;
	(void) suggested;
	if (read_buf_busy) {		/* never expected: reads are processed at once */
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	read_buf_busy = true;
	*buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void
client_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	client	   *c = s->data;

	read_buf_busy = false;
	if (n == 0 || (c->flags & CF_CLOSED))
		return;
	ops[c->state].on_read(c, buf->base, n);
}

static void
client_read_ignore(client *c, const char *buf, ssize_t n)
{
	(void) buf;
	if (n < 0)
		client_close(c);		/* peer went away */
}

/* A stream request: the stream layer takes it from here (ops.open). */
static void
client_start_stream(client *c, route_result *rr)
{
	if (c->req->origin.set && cfg.cors_origin[0] &&
		(c->origin = strdup(c->req->origin.s)) == NULL) {
		client_respond_error(c, 503, "unavailable", "out of memory");
		return;
	}
	client_set_state(c, CS_OPENING);
	up.open(c, rr);
}

static void
client_simple(client *c, route_result *rr, const char *origin)
{
	size_t		len;
	char	   *body;

	switch (rr->kind) {
		case ROUTE_PREFLIGHT:
			client_respond(c, resp_empty(204, origin, 1));
			break;
		case ROUTE_HEALTH:
			if (preflight_problem() != NULL)	/* a setup mistake, not an outage */
				client_respond(c, resp_status(503, "misconfigured", preflight_problem(), origin));
			else if (db_link_up(env.live) && db_link_up(env.work))
				client_respond(c, resp_body(200, "application/json", "{\"status\":\"ok\"}\n", 16, origin));
			else
				client_respond_error(c, 503, "unavailable", "the database link is down");
			break;
		case ROUTE_METRICS:
			body = metrics_render(&len);
			client_respond(c, body ? resp_body(200, "text/plain; version=0.0.4; charset=utf-8",
											   body, len, origin) : resp_oom());
			free(body);
			break;
		default:
			client_respond_error(c, rr->status, rr->error, rr->detail);
			break;
	}
}

static void
client_route(client *c)
{
	route_result rr;
	const char *origin = c->req->origin.set ? c->req->origin.s : NULL;
	frame	   *asset;
	auth_grant *grant;

	if (c->flags & CF_REJECT) {
		metrics.rejected++;
		client_respond(c, resp_busy(origin, "too many clients"));
		return;
	}
	if (stopping) {
		client_respond_error(c, 503, "unavailable", "shutting down");
		return;
	}
	if (static_respond(c->req, cfg.demo, origin, &asset)) {
		client_respond(c, asset);
		return;
	}
	auth_route(c->req, env.public_scope, &rr, &grant);
	if (grant != NULL && (rr.kind == ROUTE_ADHOC || rr.kind == ROUTE_SUB))
		c->grant = grant;		/* ad hoc or owned: the stream ends when the token expires */
	else
		auth_grant_unref(grant);
	if ((rr.kind == ROUTE_ADHOC || rr.kind == ROUTE_SUB) && mem_over_soft()) {
		metrics.mem_refused++;
		client_respond(c, resp_busy(origin, "memory limit reached"));
	} else if (rr.kind == ROUTE_ADHOC || rr.kind == ROUTE_SUB)
		client_start_stream(c, &rr);
	else
		client_simple(c, &rr, origin);
	route_result_free(&rr);
}

static void
client_read_request(client *c, const char *buf, ssize_t n)
{
	if (n < 0) {
		client_close(c);		/* gone before finishing the request */
		return;
	}
	if (c->req == NULL) {
		c->req = malloc(sizeof(req));
		if (c->req == NULL) {
			client_respond(c, resp_oom());
			return;
		}
		req_init(c->req, cfg.max_header_bytes);
	}
	switch (req_feed(c->req, buf, (size_t) n)) {
		case REQ_MORE:
			return;
		case REQ_ERROR:
			if (c->flags & CF_REJECT)
				client_respond(c, resp_busy(NULL, "too many clients"));
			else
				client_respond_error(c, c->req->status, c->req->error, c->req->detail);
			return;
		case REQ_DONE:
			client_route(c);
			return;
	}
}

/* ---- accepting ---- */

static void
client_reject_closed(uv_handle_t *h)
{
	free(h);
}

static client *
client_create(void)
{
	client	   *c = calloc(1, sizeof(client));

	if (c == NULL || uv_tcp_init(env.loop, &c->tcp) != 0) {
		free(c);
		return NULL;
	}
	c->tcp.data = c;
	return c;
}

/* Count c among the open clients, READING. */
static void
client_track(client *c)
{
	LIST_INSERT_HEAD(&clients, c, link);
	client_count++;
	metrics.clients = client_count;
	c->state = CS_READING;
	c->deadline_ms = client_now() + cfg.header_timeout_ms;
	client_wheel_put(c, c->deadline_ms);
}

client *
client_new(void)
{
	client	   *c = client_create();

	if (c != NULL)
		client_track(c);
	return c;
}

/*
 * With workers: should this one leave the next waiting connection to the
 * others?  Only while the whole bridge has room (at --max-clients every
 * worker accepts, to answer 503), and when this worker holds its share of
 * --max-clients (the descriptors it was sized for: accepting more would
 * end in EMFILE and a 503 while others have room) or clearly more than the
 * average (the kernel wakes every worker and any may win).  The other
 * workers' count is read once per loop turn.
 */
#define CLIENT_YIELD_SLACK 16

bool
client_should_yield(uint64_t *elsewhere)
{
	static uint64_t others, read_at = UINT64_MAX;
	uint64_t	now, held, share, avg;

	*elsewhere = 0;
	if (env.elsewhere == NULL || cfg.workers < 2)
		return false;
	if ((now = uv_now(env.loop)) != read_at) {
		others = env.elsewhere();
		read_at = now;
	}
	*elsewhere = others;
	held = client_count + others;
	if (held >= cfg.max_clients)
		return false;
	share = (cfg.max_clients + cfg.workers - 1) / cfg.workers;
	avg = held / cfg.workers;
	return client_count >= share || client_count > avg + avg / 8 + CLIENT_YIELD_SLACK;
}

/*
 * The kernel's send buffer per connection (Linux doubles it).  A fixed size
 * turns off autotuning, which would otherwise let a slow reader hold up to
 * net.ipv4.tcp_wmem's maximum (4 MB) of output beyond --client-queue.
 */
#define CLIENT_SNDBUF (128 << 10)

void
client_turn_away(int fd, const char *text, size_t len)
{
	if (send(fd, text, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("503 to a connection that could not be taken not sent: %s", strerror(errno));
	close(fd);
}

/* A connection that cannot become a client: the prebuilt out-of-memory 503. */
static void
client_unavailable(int fd)
{
	frame	   *f = resp_oom();

	client_turn_away(fd, f->data, f->len);
	frame_unref(f);
}

void
client_adopt(int fd)
{
	client	   *c = client_create();
	uint64_t	held;

	if (c == NULL) {
		metrics.alloc_failures++;
		client_unavailable(fd);
		return;
	}
	if (uv_tcp_open(&c->tcp, fd) != 0) {
		client_unavailable(fd);
		uv_close((uv_handle_t *) &c->tcp, client_reject_closed);
		return;
	}
	held = client_count + (env.elsewhere ? env.elsewhere() : 0);	/* --max-clients is the whole bridge's */
	if (held >= cfg.max_clients + CLIENT_EXTRA_REJECTS) {
		uv_close((uv_handle_t *) &c->tcp, client_reject_closed);
		return;
	}
	metrics.connections++;
	if (held >= cfg.max_clients)
		c->flags |= CF_REJECT;
	client_track(c);
	uv_tcp_nodelay(&c->tcp, 1);
	uv_send_buffer_size((uv_handle_t *) &c->tcp, &(int) {CLIENT_SNDBUF});
	if (uv_read_start((uv_stream_t *) &c->tcp, client_alloc, client_on_read) != 0)
		client_close(c);
}

/* ---- sweep, shutdown ---- */

static void
client_sweep_one(client *c, uint64_t now)
{
	outq_trim(&c->q);			/* an idle client holds no queue array */
	switch ((client_state) c->state) {
		case CS_READING:
			if (now >= c->deadline_ms) {
				log_debug("client %p: request head timed out", (void *) c);
				client_respond_error(c, 408, "timeout", "request head not received in time");
			}
			break;
		case CS_STREAMING:
			if (c->grant != NULL && !client_gone(c) && auth_expired(c->grant, auth_now())) {
				client_send(c, wire_auth_expired());
				client_disconnect(c, true, CLOSE_AUTH_EXPIRED, "its token expired");
				break;
			}
			if (now >= c->deadline_ms + cfg.keepalive_ms && c->q.n == 0)
				client_send(c, frame_ref(env.keepalive));
			break;
		case CS_CLOSING:
			if (now >= c->deadline_ms)
				client_close(c);
			break;
		case CS_OPENING:
		case CS_COUNT:
			break;
	}
}

/* When c's next check is due, after one found nothing more to do now. */
static uint64_t
client_next_check(const client *c, uint64_t now)
{
	uint64_t	due;

	switch ((client_state) c->state) {
		case CS_READING:
		case CS_CLOSING:
			return c->deadline_ms;
		case CS_STREAMING:
			due = c->deadline_ms + cfg.keepalive_ms;
			if (c->grant != NULL && due > now + CLIENT_TOKEN_CHECK_MS)
				due = now + CLIENT_TOKEN_CHECK_MS;
			break;
		default:
			due = now + cfg.keepalive_ms;
			break;
	}
	return due > now ? due : now + CLIENT_TICK_MS;	/* output still queued */
}

void
client_reschedule(void)
{
	uint64_t	now = client_now();

	for (client *c = LIST_FIRST(&clients); c != NULL; c = LIST_NEXT(c, link))
		client_wheel_put(c, client_next_check(c, now));
}

void
client_sweep(uint64_t now)
{
	uint64_t	t = now / CLIENT_TICK_MS + 1, from;
	client	   *c, *next;

	if (wheel_next == 0 || t + 1 - wheel_next > CLIENT_WHEEL)
		from = t >= CLIENT_WHEEL ? t + 1 - CLIENT_WHEEL : 1;	/* every bucket once */
	else
		from = wheel_next;
	wheel_next = t + 1;			/* what is put from here on waits for the next sweep */
	for (; from <= t; from++) {
		struct client_bucket *b = &wheel[from & (CLIENT_WHEEL - 1)];

		for (c = TAILQ_FIRST(b); c != NULL; c = next) {
			next = TAILQ_NEXT(c, tick);
			if (c->due_tick > t)
				continue;		/* a later turn of the wheel */
			client_wheel_drop(c);
			client_sweep_visits++;
			client_sweep_one(c, now);
			if (!(c->flags & CF_CLOSED) && c->due_tick == 0)
				client_wheel_put(c, client_next_check(c, now));
		}
	}
}

/*
 * Over the hard memory limit: drop the streams with the largest queues
 * (slow consumers) until what they hold would bring the charged total back
 * to the soft limit.  They reconnect with Last-Event-ID and replay later.
 * At most CLIENT_SHED_MAX per call, each found by one pass over the list.
 */
#define CLIENT_SHED_MAX 64

void
client_shed(void)
{
	size_t		need = mem_excess(), freed = 0;

	if (!mem_over_hard())
		return;
	for (int k = 0; k < CLIENT_SHED_MAX && freed < need; k++) {
		client	   *c, *big = NULL;

		LIST_FOREACH(c, &clients, link) {
			if (c->state == CS_STREAMING && !client_gone(c) && outq_bytes(&c->q) > 0 &&
				(big == NULL || outq_bytes(&c->q) > outq_bytes(&big->q)))
				big = c;
		}
		if (big == NULL)
			break;
		char		detail[80];

		freed += outq_bytes(&big->q);
		metrics.mem_shed++;
		snprintf(detail, sizeof(detail), "over the memory limit with %zu bytes queued",
				 outq_bytes(&big->q));
		client_disconnect(big, false, CLOSE_MEMORY, detail);
	}
}

void
client_shutdown_all(void)
{
	client	   *c, *next;

	stopping = true;
	for (c = LIST_FIRST(&clients); c != NULL; c = next) {
		next = LIST_NEXT(c, link);
		if (c->state == CS_STREAMING)
			client_end(c);
		else if (c->state != CS_CLOSING)
			client_close(c);
	}
}
