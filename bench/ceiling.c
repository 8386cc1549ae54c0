/*
 * ceiling.c
 *		The least an SSE server can do: the throughput ceiling of this machine.
 *
 * A single-threaded libuv server.  "GET <anything>" gets SSE response headers
 * and joins the broadcast list.  "POST <anything>" with a Content-Length body
 * publishes the body as one event, formatted once as "id: N\ndata: BODY\n\n";
 * each POST gets "202 Accepted".  Every event parsed from one read of the
 * publisher socket (a pipelined batch) goes into one shared buffer that is
 * written to every subscriber: one write per socket per loop turn, which is
 * the least work any server can do for the same input.  With --per-event,
 * each event is written separately (one write per socket per event).  Nothing else: no channels, no filters, no history,
 * no queue limits.
 *
 * Invariants:
 *	- A frame is formatted once and shared; it is freed when the last write
 *	  that references it completes (refcount).
 *	- A subscriber with a write in flight gets later frames through uv_write
 *	  (queued in order); otherwise uv_try_write is tried first.
 *	- The read buffer is shared by all sockets and consumed inside the read
 *	  callback, so an idle subscriber owns no buffer.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <uv.h>

typedef struct cl_frame
{
	int			refs;
	size_t		len;
	char		data[];
} cl_frame;

typedef enum cl_kind
{
	CL_NEW, CL_SUB, CL_PUB
} cl_kind;

typedef struct cl_client
{
	uv_tcp_t	tcp;
	cl_kind		kind;
	int			pending;		/* writes in flight */
	struct cl_client *prev, *next;	/* broadcast list (subscribers) */
	char	   *in;				/* request bytes not yet parsed */
	size_t		in_len, in_cap;
} cl_client;

typedef struct cl_write
{
	uv_write_t	req;
	cl_frame   *frame;
} cl_write;

static uv_loop_t *loop;
static uv_tcp_t server;
static cl_client subs = {.prev = &subs, .next = &subs};
static char read_buf[256 * 1024];
static uint64_t next_id = 1;
static int	n_subs;
static bool coalesce = true;

static const char sse_headers[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
	"Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
static const char accepted[] = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";

static void
frame_unref(cl_frame *f)
{
	if (--f->refs == 0)
		free(f);
}

static void
cl_on_close(uv_handle_t *h)
{
	cl_client  *c = h->data;

	free(c->in);
	free(c);
}

static void
cl_drop(cl_client *c)
{
	if (uv_is_closing((uv_handle_t *) &c->tcp))
		return;
	if (c->kind == CL_SUB)
	{
		c->prev->next = c->next;
		c->next->prev = c->prev;
		n_subs--;
	}
	uv_close((uv_handle_t *) &c->tcp, cl_on_close);
}

static void
cl_on_write(uv_write_t *req, int status)
{
	cl_write   *w = (cl_write *) req;
	cl_client  *c = req->handle->data;

	c->pending--;
	frame_unref(w->frame);
	free(w);
	if (status < 0)
		cl_drop(c);
}

/* Writes f (or its tail from off) to c; takes a reference when it queues. */
static void
cl_send(cl_client *c, cl_frame *f)
{
	size_t		off = 0;

	if (c->pending == 0)
	{
		uv_buf_t	b = uv_buf_init(f->data, (unsigned) f->len);
		int			n = uv_try_write((uv_stream_t *) &c->tcp, &b, 1);

		if (n == (int) f->len)
			return;
		if (n < 0 && n != UV_EAGAIN)
		{
			cl_drop(c);
			return;
		}
		off = n > 0 ? (size_t) n : 0;
	}
	cl_write   *w = malloc(sizeof(*w));
	uv_buf_t	b = uv_buf_init(f->data + off, (unsigned) (f->len - off));

	w->frame = f;
	f->refs++;
	if (uv_write(&w->req, (uv_stream_t *) &c->tcp, &b, 1, cl_on_write) < 0)
	{
		f->refs--;
		free(w);
		cl_drop(c);
		return;
	}
	c->pending++;
}

static void
cl_broadcast(cl_frame *f)
{
	f->refs = 1;
	for (cl_client *c = subs.next, *nx; c != &subs; c = nx)
	{
		nx = c->next;
		cl_send(c, f);
	}
	frame_unref(f);
}

static void
cl_write_static(cl_client *c, const char *s, size_t len)
{
	uv_buf_t	b = uv_buf_init((char *) s, (unsigned) len);

	/* tiny responses: a short write on a fresh socket does not happen here */
	if (uv_try_write((uv_stream_t *) &c->tcp, &b, 1) != (int) len)
		cl_drop(c);
}

static void
cl_in_append(cl_client *c, const char *p, size_t n)
{
	if (c->in_len + n > c->in_cap)
	{
		size_t		cap = c->in_cap ? c->in_cap : 1024;

		while (cap < c->in_len + n)
			cap *= 2;
		c->in = realloc(c->in, cap);
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, p, n);
	c->in_len += n;
}

/*
 * Parses every complete POST in c->in, formats them into one frame and
 * broadcasts it.  Returns false when the input is malformed.
 */
static bool
cl_publish(cl_client *c)
{
	size_t		pos = 0;
	int			accepted_n = 0;
	cl_frame   *f = NULL;
	size_t		cap = 0;

	for (;;)
	{
		const char *h = c->in + pos;
		size_t		avail = c->in_len - pos;
		const char *hend = memmem(h, avail, "\r\n\r\n", 4);

		if (!hend)
			break;
		size_t		hlen = (size_t) (hend - h) + 4;
		const char *cl = NULL;

		for (const char *p = h; p < hend; p++)
			if ((p == h || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
			{
				cl = p + 15;
				break;
			}
		if (strncmp(h, "POST ", 5) != 0 || !cl)
			return false;
		size_t		blen = strtoul(cl, NULL, 10);

		if (avail < hlen + blen)
			break;
		size_t		need = (f ? f->len : 0) + blen + 48;

		if (need > cap)
		{
			cap = need * 2;
			cl_frame   *nf = realloc(f, sizeof(cl_frame) + cap);

			if (!nf)
				abort();
			if (!f)
				nf->len = 0;
			f = nf;
		}
		f->len += (size_t) sprintf(f->data + f->len, "id: %llu\ndata: ", (unsigned long long) next_id++);
		memcpy(f->data + f->len, h + hlen, blen);
		f->len += blen;
		memcpy(f->data + f->len, "\n\n", 2);
		f->len += 2;
		pos += hlen + blen;
		accepted_n++;
		if (!coalesce)
		{
			cl_broadcast(f);
			f = NULL;
			cap = 0;
		}
	}
	if (pos)
	{
		memmove(c->in, c->in + pos, c->in_len - pos);
		c->in_len -= pos;
	}
	if (f)
		cl_broadcast(f);
	for (int i = 0; i < accepted_n; i++)
		cl_write_static(c, accepted, sizeof(accepted) - 1);
	return true;
}

static void
cl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void) h;
	(void) suggested;
	buf->base = read_buf;
	buf->len = sizeof(read_buf);
}

static void
cl_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	cl_client  *c = s->data;

	if (nread < 0)
	{
		cl_drop(c);
		return;
	}
	if (nread == 0 || c->kind == CL_SUB)
		return;					/* subscribers send nothing after the GET */
	cl_in_append(c, buf->base, (size_t) nread);
	if (c->kind == CL_NEW)
	{
		if (c->in_len >= 4 && memcmp(c->in, "GET ", 4) == 0)
		{
			if (!memmem(c->in, c->in_len, "\r\n\r\n", 4))
				return;
			free(c->in);
			c->in = NULL;
			c->in_len = c->in_cap = 0;
			c->kind = CL_SUB;
			c->next = &subs;
			c->prev = subs.prev;
			subs.prev->next = c;
			subs.prev = c;
			n_subs++;
			cl_write_static(c, sse_headers, sizeof(sse_headers) - 1);
			return;
		}
		if (c->in_len >= 5 && memcmp(c->in, "POST ", 5) == 0)
			c->kind = CL_PUB;
		else if (c->in_len >= 5)
		{
			cl_drop(c);
			return;
		}
		else
			return;
	}
	if (!cl_publish(c))
		cl_drop(c);
}

static void
cl_on_connection(uv_stream_t *srv, int status)
{
	if (status < 0)
		return;
	cl_client  *c = calloc(1, sizeof(*c));

	uv_tcp_init(loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(srv, (uv_stream_t *) &c->tcp) < 0)
	{
		uv_close((uv_handle_t *) &c->tcp, cl_on_close);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *) &c->tcp, cl_alloc, cl_on_read);
}

static void
cl_on_signal(uv_signal_t *s, int signum)
{
	(void) s;
	(void) signum;
	fprintf(stderr, "ceiling: %d subscribers, %llu events\n", n_subs,
			(unsigned long long) (next_id - 1));
	exit(0);
}

int
main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int			port = 8090;
	struct sockaddr_in addr;
	struct rlimit rl;
	uv_signal_t sig_int, sig_term;

	for (int i = 1; i < argc; i += 2)
	{
		if (strcmp(argv[i], "--per-event") == 0)
		{
			coalesce = false;
			i--;
		}
		else if (i + 1 >= argc)
		{
			fprintf(stderr, "usage: ceiling [--host H] [--port P] [--per-event]\n");
			return 2;
		}
		else if (strcmp(argv[i], "--port") == 0)
			port = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--host") == 0)
			host = argv[i + 1];
		else
		{
			fprintf(stderr, "usage: ceiling [--host H] [--port P] [--per-event]\n");
			return 2;
		}
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	loop = uv_default_loop();
	uv_tcp_init(loop, &server);
	uv_ip4_addr(host, port, &addr);
	int			rc = uv_tcp_bind(&server, (const struct sockaddr *) &addr, 0);

	if (rc == 0)
		rc = uv_listen((uv_stream_t *) &server, 4096, cl_on_connection);
	if (rc < 0)
	{
		fprintf(stderr, "ceiling: listen %s:%d: %s\n", host, port, uv_strerror(rc));
		return 1;
	}
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_int, cl_on_signal, SIGINT);
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_term, cl_on_signal, SIGTERM);
	fprintf(stderr, "ceiling: listening on %s:%d\n", host, port);
	return uv_run(loop, UV_RUN_DEFAULT);
}
