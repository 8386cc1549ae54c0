/*
 * loadgen.c
 *		SSE load generator: N connections, per-event latency, stream checks.
 *
 * Opens N HTTP/1.1 GET streams to one server on libuv, decodes the response
 * (identity or chunked), parses Server-Sent Events and, for every event whose
 * data carries "s":<seq> and "t":<publisher wall-clock microseconds>, records
 * the delivery latency in a log-linear histogram and checks the per-stream
 * sequence for gaps, duplicates and reordering.  At the end it prints one
 * JSON line on stdout.
 *
 * Invariants:
 *	- One read buffer is shared by every connection: libuv hands it to
 *	  lg_on_read, which consumes it completely before returning.  A connection
 *	  owns heap memory only for an incomplete header block or SSE line.
 *	- At most --connect-parallel connections are between connect() and their
 *	  response headers at any time, so a listen backlog never overflows.
 *	- Every wait is bounded: --timeout always ends the run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* ---------------------------------------------------------------- */
/* Latency histogram: exact below 128 us, then 64 sub-buckets per power of 2 */

#define LG_HIST_SUB 64
#define LG_HIST_BUCKETS (128 + 40 * LG_HIST_SUB)

static uint64_t lg_hist[LG_HIST_BUCKETS];
static uint64_t lg_hist_n;
static uint64_t lg_lat_max;
static uint64_t lg_lat_min = UINT64_MAX;
static double lg_lat_sum;

static int
lg_hist_index(uint64_t v)
{
	if (v < 128)
		return (int) v;
	int			e = 63 - __builtin_clzll(v) - 6;	/* v >> e in [64, 128) */
	int			idx = 128 + (e - 1) * LG_HIST_SUB + (int) ((v >> e) - 64);

	return idx < LG_HIST_BUCKETS ? idx : LG_HIST_BUCKETS - 1;
}

/* Upper bound of the values that land in bucket idx. */
static uint64_t
lg_hist_value(int idx)
{
	if (idx < 128)
		return (uint64_t) idx;
	int			e = (idx - 128) / LG_HIST_SUB + 1;
	uint64_t	sub = (uint64_t) ((idx - 128) % LG_HIST_SUB) + 64;

	return ((sub + 1) << e) - 1;
}

static void
lg_hist_add(int64_t v)
{
	uint64_t	u = v < 0 ? 0 : (uint64_t) v;

	lg_hist[lg_hist_index(u)]++;
	lg_hist_n++;
	lg_lat_sum += (double) u;
	if (u > lg_lat_max)
		lg_lat_max = u;
	if (u < lg_lat_min)
		lg_lat_min = u;
}

/*
 * Per-stream completion (with --expect-per-conn): the latency of the event
 * that completed each stream, in the same buckets; dumped with --hist.
 */
static uint64_t lg_done[LG_HIST_BUCKETS];

/* The non-empty buckets of h as [[index,count],...] on stdout. */
static void
lg_hist_dump(const uint64_t *h)
{
	int			n = 0;

	putchar('[');
	for (int i = 0; i < LG_HIST_BUCKETS; i++)
		if (h[i])
			printf("%s[%d,%" PRIu64 "]", n++ ? "," : "", i, h[i]);
	putchar(']');
}

static uint64_t
lg_hist_quantile(double q)
{
	if (lg_hist_n == 0)
		return 0;
	uint64_t	rank = (uint64_t) ceil(q * (double) lg_hist_n);
	uint64_t	seen = 0;

	if (rank == 0)
		rank = 1;
	for (int i = 0; i < LG_HIST_BUCKETS; i++)
	{
		seen += lg_hist[i];
		if (seen >= rank)
		{
			uint64_t	v = lg_hist_value(i);

			return v > lg_lat_max ? lg_lat_max : v;
		}
	}
	return lg_lat_max;
}

/* ---------------------------------------------------------------- */
/* Settings */

static struct
{
	const char *host;
	int			port;
	const char *path;			/* may contain {i}: connection index % mod */
	const char *paths_file;		/* one path per line, used round robin */
	int			mod;
	int			conns;
	const char *extra_header;	/* one extra request header line */
	const char *ready_event;	/* stream counts as ready after this event */
	const char *ready_file;		/* written once every stream is ready */
	const char *label;
	const char *bind;			/* source address, or NULL */
	bool		hist;			/* dump the histograms in the JSON line */
	bool		hold;			/* after the report, keep the connections until signalled */
	int64_t		first_seq;		/* expected first seq; 0 = first seen */
	int64_t		expect_per_conn;
	uint64_t	expect_total;
	double		timeout_s;
	double		duration_s;		/* stop this long after all are ready */
	double		idle_s;			/* stop after this long with no event */
	double		progress_s;		/* print the counts to stderr this often (0: never) */
	int			connect_parallel;
} cf = {
	.host = "127.0.0.1",
	.port = 8080,
	.path = "/",
	.mod = 0,
	.conns = 1,
	.label = "",
	.timeout_s = 60,
	.idle_s = 0,
	.connect_parallel = 256,
};

static char **lg_paths;
static int	lg_npaths;

/* ---------------------------------------------------------------- */
/* Connections */

typedef enum lg_state
{
	LG_IDLE,					/* not started */
	LG_CONNECTING,
	LG_HEADERS,					/* request sent, reading the status/headers */
	LG_STREAM,					/* reading the event stream */
	LG_DONE						/* closed, failed or finished */
} lg_state;

typedef enum lg_chunk_state
{
	CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF
} lg_chunk_state;

typedef enum lg_event_kind
{
	EV_MESSAGE, EV_READY, EV_RESET, EV_CLOSE, EV_OTHER
} lg_event_kind;

typedef struct lg_conn
{
	uv_tcp_t	tcp;
	uv_connect_t connect_req;
	uv_write_t	write_req;
	int			index;
	lg_state	state;
	bool		chunked;
	bool		ready;
	bool		complete;
	lg_chunk_state ch_state;
	uint64_t	ch_left;
	char	   *carry;			/* incomplete header block or SSE line */
	size_t		carry_len;
	size_t		carry_cap;
	char	   *request;
	/* the event being assembled */
	lg_event_kind ev_kind;
	bool		ev_has_data;
	int64_t		ev_seq;
	int64_t		ev_t;
	/* stream checks */
	int64_t		last_seq;
	int64_t		received;
} lg_conn;

static uv_loop_t *loop;
static lg_conn *conns;
static int	next_to_start;
static int	in_flight;
static uv_timer_t tick_timer;
static uv_signal_t sig_int, sig_term;
static char read_buf[256 * 1024];
static int64_t now_us;			/* wall clock, refreshed per read */

static struct
{
	int			connected;
	int			ready;
	int			failed;
	int			bad_status;
	int			eof;
	int			stream_ended;	/* streams that ended after their headers */
	int			closed_events;
	int			complete;
	uint64_t	deliveries;
	uint64_t	gaps;
	uint64_t	dups;
	uint64_t	reorders;
	uint64_t	resets;
	uint64_t	parse_errors;
	uint64_t	other_events;
	uint64_t	bytes;
	uint64_t	t_start;		/* uv_hrtime */
	uint64_t	t_all_ready;
	uint64_t	t_first_event;
	uint64_t	t_last_event;
	int64_t		first_pub_us;	/* smallest publisher stamp seen */
	int64_t		first_recv_us;
	int64_t		last_recv_us;
	int			first_status;	/* first non-200 status, for the report */
} st;

static bool finishing;

static void lg_start_more(void);
static int lg_bind(struct lg_conn *c);
static void lg_finish(const char *why);

static int64_t
wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
lg_on_close(uv_handle_t *h)
{
	(void) h;
}

/* Ends a connection once; counts it as failed when it never streamed. */
static void
lg_conn_end(lg_conn *c, bool failed)
{
	if (c->state == LG_DONE)
		return;
	bool		was_pending = c->state == LG_CONNECTING || c->state == LG_HEADERS;

	if (c->state == LG_STREAM)
		st.stream_ended++;
	c->state = LG_DONE;
	free(c->carry);
	c->carry = NULL;
	c->carry_len = c->carry_cap = 0;
	if (failed)
		st.failed++;
	if (!uv_is_closing((uv_handle_t *) &c->tcp))
		uv_close((uv_handle_t *) &c->tcp, lg_on_close);
	if (was_pending)
	{
		in_flight--;
		lg_start_more();
	}
}

static void
lg_maybe_all_ready(void)
{
	if (st.t_all_ready || st.ready + st.failed < cf.conns)
		return;
	st.t_all_ready = uv_hrtime();
	fprintf(stderr, "loadgen%s%s: %d ready, %d failed in %.2f s\n",
			*cf.label ? " " : "", cf.label, st.ready, st.failed,
			(double) (st.t_all_ready - st.t_start) / 1e9);
	if (cf.ready_file)
	{
		FILE	   *f = fopen(cf.ready_file, "w");

		if (f)
		{
			fprintf(f, "%d %d\n", st.ready, st.failed);
			fclose(f);
		}
	}
}

static void
lg_mark_ready(lg_conn *c)
{
	if (c->ready)
		return;
	c->ready = true;
	st.ready++;
	lg_maybe_all_ready();
}

/* ---------------------------------------------------------------- */
/* SSE parsing */

/* Parses the integer after "key": in a data line; false when absent. */
static bool
lg_json_int(const char *s, size_t len, const char *key, size_t klen, int64_t *out)
{
	const char *end = s + len;
	const char *p = s;

	while (p < end)
	{
		const char *k = memmem(p, (size_t) (end - p), key, klen);

		if (!k)
			return false;
		p = k + klen;
		while (p < end && (*p == ' ' || *p == ':'))
			p++;
		if (p < end && (*p == '-' || (*p >= '0' && *p <= '9')))
		{
			bool		neg = *p == '-';
			int64_t		v = 0;

			if (neg)
				p++;
			while (p < end && *p >= '0' && *p <= '9')
				v = v * 10 + (*p++ - '0');
			*out = neg ? -v : v;
			return true;
		}
	}
	return false;
}

static void
lg_check_complete(lg_conn *c)
{
	if (c->complete || cf.expect_per_conn <= 0 || c->received < cf.expect_per_conn)
		return;
	c->complete = true;
	st.complete++;
	lg_done[lg_hist_index(now_us > c->ev_t ? (uint64_t) (now_us - c->ev_t) : 0)]++;
	if (st.complete + st.failed >= cf.conns)
		lg_finish("complete");
}

static void
lg_record(lg_conn *c)
{
	int64_t		s = c->ev_seq;

	st.deliveries++;
	c->received++;
	lg_hist_add(now_us - c->ev_t);
	if (st.first_pub_us == 0 || c->ev_t < st.first_pub_us)
		st.first_pub_us = c->ev_t;
	if (st.t_first_event == 0)
	{
		st.t_first_event = uv_hrtime();
		st.first_recv_us = now_us;
	}
	st.last_recv_us = now_us;

	if (c->last_seq == 0)
	{
		int64_t		expect = cf.first_seq > 0 ? cf.first_seq : s;

		if (s > expect)
			st.gaps += (uint64_t) (s - expect);
		else if (s < expect)
			st.reorders++;
		c->last_seq = s;
	}
	else if (s == c->last_seq + 1)
		c->last_seq = s;
	else if (s > c->last_seq + 1)
	{
		st.gaps += (uint64_t) (s - c->last_seq - 1);
		c->last_seq = s;
	}
	else if (s == c->last_seq)
		st.dups++;
	else
		st.reorders++;
	lg_check_complete(c);
	if (cf.expect_total && st.deliveries >= cf.expect_total)
		lg_finish("expected total");
}

static void
lg_dispatch(lg_conn *c)
{
	switch (c->ev_kind)
	{
		case EV_READY:
			lg_mark_ready(c);
			break;
		case EV_RESET:
			st.resets++;
			break;
		case EV_CLOSE:
			st.closed_events++;
			break;
		case EV_OTHER:
			st.other_events++;
			break;
		case EV_MESSAGE:
			if (!c->ev_has_data)
				break;			/* an event with no data is not dispatched */
			if (c->ev_seq < 0 || c->ev_t < 0)
				st.parse_errors++;
			else
				lg_record(c);
			break;
	}
	c->ev_kind = EV_MESSAGE;
	c->ev_has_data = false;
	c->ev_seq = c->ev_t = -1;
}

static void
lg_sse_line(lg_conn *c, const char *line, size_t len)
{
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
	{
		lg_dispatch(c);
		return;
	}
	if (line[0] == ':')
		return;					/* comment / keepalive */
	if (len >= 5 && memcmp(line, "data:", 5) == 0)
	{
		int64_t		v;

		c->ev_has_data = true;
		if (lg_json_int(line + 5, len - 5, "\"s\"", 3, &v))
			c->ev_seq = v;
		if (lg_json_int(line + 5, len - 5, "\"t\"", 3, &v))
			c->ev_t = v;
	}
	else if (len >= 6 && memcmp(line, "event:", 6) == 0)
	{
		const char *v = line + 6;
		size_t		vl = len - 6;

		if (vl && *v == ' ')
			v++, vl--;
		if (vl == 7 && memcmp(v, "message", 7) == 0)
			c->ev_kind = EV_MESSAGE;
		else if (cf.ready_event && vl == strlen(cf.ready_event) && memcmp(v, cf.ready_event, vl) == 0)
			c->ev_kind = EV_READY;
		else if (vl == 5 && memcmp(v, "reset", 5) == 0)
			c->ev_kind = EV_RESET;
		else if (vl == 5 && memcmp(v, "close", 5) == 0)
			c->ev_kind = EV_CLOSE;
		else
			c->ev_kind = EV_OTHER;
	}
	/* id:, retry: and unknown fields are ignored */
}

static void
lg_carry_append(lg_conn *c, const char *p, size_t n)
{
	if (c->carry_len + n > c->carry_cap)
	{
		size_t		cap = c->carry_cap ? c->carry_cap : 256;

		while (cap < c->carry_len + n)
			cap *= 2;
		c->carry = realloc(c->carry, cap);
		if (!c->carry)
		{
			perror("realloc");
			exit(2);
		}
		c->carry_cap = cap;
	}
	memcpy(c->carry + c->carry_len, p, n);
	c->carry_len += n;
}

static void
lg_carry_release(lg_conn *c)
{
	free(c->carry);
	c->carry = NULL;
	c->carry_len = c->carry_cap = 0;
}

/* Feeds decoded body bytes to the SSE line parser. */
static void
lg_sse_feed(lg_conn *c, const char *p, size_t n)
{
	const char *end = p + n;

	while (p < end && c->state == LG_STREAM)
	{
		const char *nl = memchr(p, '\n', (size_t) (end - p));

		if (!nl)
		{
			lg_carry_append(c, p, (size_t) (end - p));
			return;
		}
		if (c->carry_len)
		{
			lg_carry_append(c, p, (size_t) (nl - p));
			lg_sse_line(c, c->carry, c->carry_len);
			lg_carry_release(c);
		}
		else
			lg_sse_line(c, p, (size_t) (nl - p));
		p = nl + 1;
	}
}

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decodes chunked transfer coding and feeds the payload to the SSE parser. */
static void
lg_chunked_feed(lg_conn *c, const char *p, size_t n)
{
	const char *end = p + n;

	while (p < end && c->state == LG_STREAM)
	{
		switch (c->ch_state)
		{
			case CH_SIZE:
				{
					int			h = hexval(*p);

					if (h >= 0)
						c->ch_left = c->ch_left * 16 + (uint64_t) h;
					else if (*p == ';' || *p == ' ')
						c->ch_state = CH_EXT;
					else if (*p == '\r')
						c->ch_state = CH_SIZE_LF;
					else if (*p == '\n')
						goto size_done;
					else
					{
						st.parse_errors++;
						lg_conn_end(c, false);
						return;
					}
					p++;
					break;
				}
			case CH_EXT:
				if (*p == '\n')
					goto size_done;
				p++;
				break;
			case CH_SIZE_LF:
				if (*p != '\n')
				{
					st.parse_errors++;
					lg_conn_end(c, false);
					return;
				}
		size_done:
				p++;
				if (c->ch_left == 0)
				{
					st.eof++;	/* last chunk: the stream ended */
					lg_conn_end(c, false);
					return;
				}
				c->ch_state = CH_DATA;
				break;
			case CH_DATA:
				{
					size_t		take = (size_t) (end - p);

					if (take > c->ch_left)
						take = (size_t) c->ch_left;
					lg_sse_feed(c, p, take);
					p += take;
					c->ch_left -= take;
					if (c->ch_left == 0)
						c->ch_state = CH_DATA_CR;
					break;
				}
			case CH_DATA_CR:
				c->ch_state = *p == '\r' ? CH_DATA_LF : CH_SIZE;
				if (*p == '\r' || *p == '\n')
					p++;
				break;
			case CH_DATA_LF:
				if (*p == '\n')
					p++;
				c->ch_state = CH_SIZE;
				break;
		}
	}
}

static void
lg_body_feed(lg_conn *c, const char *p, size_t n)
{
	if (c->chunked)
		lg_chunked_feed(c, p, n);
	else
		lg_sse_feed(c, p, n);
}

/* Case-insensitive search for a header line "name: value-containing". */
static bool
lg_header_has(const char *hdr, size_t len, const char *name, const char *value)
{
	size_t		nl = strlen(name);
	const char *p = hdr;
	const char *end = hdr + len;

	while (p < end)
	{
		const char *eol = memchr(p, '\n', (size_t) (end - p));
		size_t		ll = eol ? (size_t) (eol - p) : (size_t) (end - p);

		if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':')
		{
			char		tmp[256];
			size_t		vl = ll - nl - 1 < sizeof(tmp) - 1 ? ll - nl - 1 : sizeof(tmp) - 1;

			memcpy(tmp, p + nl + 1, vl);
			tmp[vl] = '\0';
			if (strcasestr(tmp, value))
				return true;
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	return false;
}

/* Consumes response header bytes; returns bytes used, or -1 after ending c. */
static ssize_t
lg_headers_feed(lg_conn *c, const char *p, size_t n)
{
	size_t		old = c->carry_len;

	lg_carry_append(c, p, n);
	const char *hend = memmem(c->carry, c->carry_len, "\r\n\r\n", 4);

	if (!hend)
	{
		if (c->carry_len > 16384)
		{
			st.parse_errors++;
			lg_conn_end(c, true);
			return -1;
		}
		return (ssize_t) n;
	}
	size_t		hlen = (size_t) (hend - c->carry) + 4;
	int			status = 0;

	if (sscanf(c->carry, "HTTP/1.%*d %d", &status) != 1 || status != 200)
	{
		if (!st.first_status)
			st.first_status = status ? status : -1;
		st.bad_status++;
		lg_conn_end(c, true);
		return -1;
	}
	c->chunked = lg_header_has(c->carry, hlen, "transfer-encoding", "chunked");
	lg_carry_release(c);
	c->state = LG_STREAM;
	c->ch_state = CH_SIZE;
	c->ch_left = 0;
	st.connected++;
	in_flight--;
	if (!cf.ready_event)
		lg_mark_ready(c);
	lg_start_more();
	return (ssize_t) (hlen - old);
}

static void
lg_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void) h;
	(void) suggested;
	buf->base = read_buf;
	buf->len = sizeof(read_buf);
}

static void
lg_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	lg_conn    *c = s->data;

	if (nread < 0)
	{
		if (nread == UV_EOF)
			st.eof++;
		else if (!st.first_status)
			st.first_status = (int) nread;
		lg_conn_end(c, c->state != LG_STREAM);
		return;
	}
	if (nread == 0)
		return;
	st.bytes += (uint64_t) nread;
	now_us = wall_us();

	const char *p = buf->base;
	size_t		n = (size_t) nread;

	if (c->state == LG_HEADERS)
	{
		ssize_t		used = lg_headers_feed(c, p, n);

		if (used < 0)
			return;
		p += used;
		n -= (size_t) used;
	}
	if (n && c->state == LG_STREAM)
		lg_body_feed(c, p, n);
}

static void
lg_on_write(uv_write_t *req, int status)
{
	lg_conn    *c = req->data;

	free(c->request);
	c->request = NULL;
	if (status < 0)
		lg_conn_end(c, true);
}

static void
lg_on_connect(uv_connect_t *req, int status)
{
	lg_conn    *c = req->data;

	if (c->state == LG_DONE)
		return;
	if (status < 0)
	{
		if (!st.first_status)
			st.first_status = status;
		lg_conn_end(c, true);
		return;
	}
	c->state = LG_HEADERS;
	uv_buf_t	b = uv_buf_init(c->request, (unsigned) strlen(c->request));

	c->write_req.data = c;
	if (uv_write(&c->write_req, (uv_stream_t *) &c->tcp, &b, 1, lg_on_write) < 0
		|| uv_read_start((uv_stream_t *) &c->tcp, lg_alloc, lg_on_read) < 0)
		lg_conn_end(c, true);
}

/* Builds the GET request for connection c (caller frees). */
static char *
lg_build_request(const lg_conn *c)
{
	char		path[4096];
	const char *tmpl = lg_npaths ? lg_paths[c->index % lg_npaths] : cf.path;
	const char *mark = strstr(tmpl, "{i}");

	if (mark && !lg_npaths)
	{
		int			i = cf.mod > 0 ? c->index % cf.mod : c->index;

		snprintf(path, sizeof(path), "%.*s%d%s", (int) (mark - tmpl), tmpl, i, mark + 3);
	}
	else
		snprintf(path, sizeof(path), "%s", tmpl);

	char	   *req = NULL;

	if (asprintf(&req,
				 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
				 "Cache-Control: no-cache\r\n%s%s\r\n",
				 path, cf.host, cf.port,
				 cf.extra_header ? cf.extra_header : "",
				 cf.extra_header ? "\r\n" : "") < 0)
	{
		perror("asprintf");
		exit(2);
	}
	return req;
}

/*
 * Close with a reset instead of a FIN: tens of thousands of connections per
 * run would otherwise leave as many TIME_WAIT sockets holding ephemeral
 * ports, and the next run's connects would crawl through the port search.
 */
static void
lg_no_time_wait(lg_conn *c)
{
	uv_os_fd_t	fd;
	struct linger lin = {.l_onoff = 1, .l_linger = 0};

	if (uv_fileno((uv_handle_t *) &c->tcp, &fd) == 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
}

static void
lg_start_one(lg_conn *c)
{
	struct sockaddr_in addr;

	uv_ip4_addr(cf.host, cf.port, &addr);
	uv_tcp_init_ex(loop, &c->tcp, AF_INET);
	c->tcp.data = c;
	c->connect_req.data = c;
	c->state = LG_CONNECTING;
	c->last_seq = 0;
	c->ev_kind = EV_MESSAGE;
	c->ev_seq = c->ev_t = -1;
	c->request = lg_build_request(c);
	in_flight++;
	uv_tcp_nodelay(&c->tcp, 1);
	int			rc = cf.bind ? lg_bind(c) : 0;

	if (rc == 0)
		rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *) &addr, lg_on_connect);

	if (rc < 0)
	{
		if (!st.first_status)
			st.first_status = rc;
		free(c->request);
		c->request = NULL;
		lg_conn_end(c, true);
		return;
	}
	lg_no_time_wait(c);
}

/*
 * Bind to the --bind source address, port chosen at connect time
 * (IP_BIND_ADDRESS_NO_PORT), so one address gives a port range per
 * destination rather than one for all.
 */
static int
lg_bind(lg_conn *c)
{
	struct sockaddr_in src;
	uv_os_fd_t	fd;
	int			one = 1;

	if (uv_ip4_addr(cf.bind, 0, &src) != 0 || uv_fileno((uv_handle_t *) &c->tcp, &fd) != 0)
		return -1;
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	return uv_tcp_bind(&c->tcp, (const struct sockaddr *) &src, 0);
}

static void
lg_start_more(void)
{
	while (!finishing && in_flight < cf.connect_parallel && next_to_start < cf.conns)
		lg_start_one(&conns[next_to_start++]);
	lg_maybe_all_ready();
}

/* ---------------------------------------------------------------- */
/* Report */

static double
ns_to_s(uint64_t a, uint64_t b)
{
	return a && b && b >= a ? (double) (b - a) / 1e9 : 0;
}

static void
lg_report(const char *why)
{
	uint64_t	t_end = uv_hrtime();
	uint64_t	missing = 0;

	if (cf.expect_per_conn > 0)
		for (int i = 0; i < cf.conns; i++)
			if (conns[i].received < cf.expect_per_conn)
				missing += (uint64_t) (cf.expect_per_conn - conns[i].received);
	struct rusage ru;
	double		cpu_s = 0;

	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu_s = (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
			+ (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
	double		span_recv = (double) (st.last_recv_us - st.first_recv_us) / 1e6;
	double		span_pub = (double) (st.last_recv_us - st.first_pub_us) / 1e6;

	printf("{\"label\":\"%s\",\"end\":\"%s\",\"conns\":%d,\"connected\":%d,\"ready\":%d,"
		   "\"failed\":%d,\"bad_status\":%d,\"first_error\":%d,\"eof\":%d,"
		   "\"deliveries\":%" PRIu64 ",\"complete_conns\":%d,\"missing\":%" PRIu64 ","
		   "\"gaps\":%" PRIu64 ",\"dups\":%" PRIu64 ",\"reorders\":%" PRIu64 ","
		   "\"resets\":%" PRIu64 ",\"close_events\":%d,\"other_events\":%" PRIu64 ","
		   "\"parse_errors\":%" PRIu64 ",\"bytes\":%" PRIu64 ","
		   "\"ready_s\":%.3f,\"elapsed_s\":%.3f,\"first_event_s\":%.3f,"
		   "\"last_event_s\":%.3f,\"recv_span_s\":%.3f,\"pub_span_s\":%.3f,"
		   "\"rate\":%.0f,\"rate_recv\":%.0f,\"cpu_s\":%.3f,"
		   "\"lat_us\":{\"n\":%" PRIu64 ",\"min\":%" PRIu64 ",\"mean\":%.0f,\"p50\":%" PRIu64
		   ",\"p90\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "},"
		   "\"first_pub_us\":%" PRId64 ",\"first_recv_us\":%" PRId64 ",\"last_recv_us\":%" PRId64,
		   cf.label, why, cf.conns, st.connected, st.ready, st.failed, st.bad_status,
		   st.first_status, st.eof, st.deliveries, st.complete, missing,
		   st.gaps, st.dups, st.reorders, st.resets, st.closed_events, st.other_events,
		   st.parse_errors, st.bytes,
		   ns_to_s(st.t_start, st.t_all_ready), ns_to_s(st.t_start, t_end),
		   ns_to_s(st.t_start, st.t_first_event), ns_to_s(st.t_start, st.t_last_event ? st.t_last_event : 0),
		   span_recv, span_pub,
		   span_pub > 0 ? (double) st.deliveries / span_pub : 0,
		   span_recv > 0 ? (double) st.deliveries / span_recv : 0, cpu_s,
		   lg_hist_n, lg_hist_n ? lg_lat_min : 0, lg_hist_n ? lg_lat_sum / (double) lg_hist_n : 0,
		   lg_hist_quantile(0.50), lg_hist_quantile(0.90), lg_hist_quantile(0.99),
		   lg_hist_quantile(0.999), lg_lat_max, st.first_pub_us, st.first_recv_us, st.last_recv_us);
	if (cf.hist)
	{
		printf(",\"hist\":");
		lg_hist_dump(lg_hist);
		printf(",\"done\":");
		lg_hist_dump(lg_done);
	}
	printf("}\n");
	fflush(stdout);
}

static void
lg_finish(const char *why)
{
	if (finishing)
		return;
	finishing = true;
	if (st.deliveries)
		st.t_last_event = uv_hrtime();
	lg_report(why);
	if (cf.hold)
	{
		/* keep every connection open until told (SIGTERM or SIGINT) */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		for (;;)
			pause();
	}
	/* no need to close thousands of handles one by one: the process exits */
	exit(0);
}

static void
lg_on_tick(uv_timer_t *t)
{
	static uint64_t last_deliveries;
	static uint64_t last_change;
	static uint64_t last_progress;
	uint64_t	now = uv_hrtime();

	(void) t;
	if (st.deliveries != last_deliveries || last_change == 0)
	{
		last_deliveries = st.deliveries;
		last_change = now;
	}
	if ((double) (now - st.t_start) / 1e9 >= cf.timeout_s)
		lg_finish("timeout");
	if (cf.duration_s > 0 && st.t_all_ready && (double) (now - st.t_all_ready) / 1e9 >= cf.duration_s)
		lg_finish("duration");
	if (cf.progress_s > 0 && (double) (now - last_progress) / 1e9 >= cf.progress_s)
	{
		last_progress = now;
		fprintf(stderr, "loadgen%s%s: %.0f s: %d connected, %d ready, %d failed, %d bad status, "
				"%d eof, first error %d (%s), %d connecting, %d not started\n",
				*cf.label ? " " : "", cf.label, (double) (now - st.t_start) / 1e9,
				st.connected, st.ready, st.failed, st.bad_status, st.eof, st.first_status,
				st.first_status < 0 ? uv_err_name(st.first_status) : "http",
				in_flight, cf.conns - next_to_start);
	}
	if (cf.idle_s > 0 && st.deliveries > 0 && (double) (now - last_change) / 1e9 >= cf.idle_s)
		lg_finish("idle");
	if (next_to_start >= cf.conns && in_flight == 0 && st.stream_ended >= st.connected)
		lg_finish("all streams ended");
}

static void
lg_on_signal(uv_signal_t *s, int signum)
{
	(void) s;
	(void) signum;
	lg_finish("signal");
}

/* ---------------------------------------------------------------- */

static void
lg_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t) cf.conns + 64 > rl.rlim_cur)
		fprintf(stderr, "loadgen: warning: %d connections but RLIMIT_NOFILE is %llu\n",
				cf.conns, (unsigned long long) rl.rlim_cur);
}

static void
lg_load_paths(const char *file)
{
	FILE	   *f = fopen(file, "r");
	char		line[4096];
	int			cap = 0;

	if (!f)
	{
		perror(file);
		exit(2);
	}
	while (fgets(line, sizeof(line), f))
	{
		size_t		l = strcspn(line, "\r\n");

		line[l] = '\0';
		if (!l)
			continue;
		if (lg_npaths == cap)
		{
			cap = cap ? cap * 2 : 1024;
			lg_paths = realloc(lg_paths, sizeof(char *) * (size_t) cap);
		}
		lg_paths[lg_npaths++] = strdup(line);
	}
	fclose(f);
	if (!lg_npaths)
	{
		fprintf(stderr, "loadgen: %s has no paths\n", file);
		exit(2);
	}
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: loadgen [options]\n"
			"  --host H              server address (127.0.0.1)\n"
			"  --port P              server port (8080)\n"
			"  --path PATH           request path; {i} becomes index %% --mod\n"
			"  --paths-file F        paths, one per line, used round robin\n"
			"  --mod M               modulus for {i} (0 = connection index)\n"
			"  --conns N             connections (1)\n"
			"  --header 'K: V'       one extra request header\n"
			"  --ready-event NAME    a stream is ready after this event (default: headers)\n"
			"  --ready-file F        written when every stream is ready\n"
			"  --first-seq S         expected first sequence number (default: first seen)\n"
			"  --expect-per-conn E   stop when every stream received E events\n"
			"  --expect-total T      stop after T deliveries in total\n"
			"  --duration S          stop S seconds after all are ready\n"
			"  --idle S              stop after S seconds without an event\n"
			"  --progress S          print the counts to stderr every S seconds\n"
			"  --timeout S           hard limit on the run (60)\n"
			"  --connect-parallel K  connections being set up at once (256)\n"
			"  --label L             label in the JSON line\n"
			"  --bind ADDR           source IPv4 address of every connection\n"
			"  --hist                add the latency and per-stream completion\n"
			"                        histograms to the JSON line (for merging)\n"
			"  --hold                after printing the result, keep the connections\n"
			"                        open until SIGTERM or SIGINT\n");
	exit(2);
}

static void
parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
		if (OPT("--host"))
			cf.host = v;
		else if (OPT("--port"))
			cf.port = atoi(v);
		else if (OPT("--path"))
			cf.path = v;
		else if (OPT("--paths-file"))
			cf.paths_file = v;
		else if (OPT("--mod"))
			cf.mod = atoi(v);
		else if (OPT("--conns"))
			cf.conns = atoi(v);
		else if (OPT("--header"))
			cf.extra_header = v;
		else if (OPT("--ready-event"))
			cf.ready_event = v;
		else if (OPT("--ready-file"))
			cf.ready_file = v;
		else if (OPT("--first-seq"))
			cf.first_seq = atoll(v);
		else if (OPT("--expect-per-conn"))
			cf.expect_per_conn = atoll(v);
		else if (OPT("--expect-total"))
			cf.expect_total = strtoull(v, NULL, 10);
		else if (OPT("--duration"))
			cf.duration_s = atof(v);
		else if (OPT("--idle"))
			cf.idle_s = atof(v);
		else if (OPT("--progress"))
			cf.progress_s = atof(v);
		else if (OPT("--timeout"))
			cf.timeout_s = atof(v);
		else if (OPT("--connect-parallel"))
			cf.connect_parallel = atoi(v);
		else if (OPT("--label"))
			cf.label = v;
		else if (OPT("--bind"))
			cf.bind = v;
		else if (strcmp(a, "--hist") == 0)
			cf.hist = true;
		else if (strcmp(a, "--hold") == 0)
			cf.hold = true;
		else
			usage();
#undef OPT
	}
	if (cf.conns < 1 || cf.port <= 0 || cf.connect_parallel < 1 || cf.timeout_s <= 0)
		usage();
}

int
main(int argc, char **argv)
{
	parse_args(argc, argv);
	if (cf.paths_file)
		lg_load_paths(cf.paths_file);
	lg_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (cf.ready_file)
		remove(cf.ready_file);

	conns = calloc((size_t) cf.conns, sizeof(lg_conn));
	if (!conns)
	{
		perror("calloc");
		return 2;
	}
	for (int i = 0; i < cf.conns; i++)
		conns[i].index = i;

	loop = uv_default_loop();
	uv_timer_init(loop, &tick_timer);
	uv_timer_start(&tick_timer, lg_on_tick, 100, 100);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_int, lg_on_signal, SIGINT);
	uv_signal_init(loop, &sig_term);
	uv_signal_start(&sig_term, lg_on_signal, SIGTERM);

	st.t_start = uv_hrtime();
	lg_start_more();
	uv_run(loop, UV_RUN_DEFAULT);
	lg_finish("loop ended");
	return 0;
}
