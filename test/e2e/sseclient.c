/*
 * sseclient.c - a small Server-Sent Events client for the end-to-end tests.
 *
 * It connects over plain TCP (HTTP/1.1, identity or chunked bodies), parses
 * the stream by the WHATWG "event stream interpretation" rules and prints
 * one JSON object per line on stdout, flushed at once, so a test can compare
 * what arrived with what the database holds:
 *
 *   {"kind":"connect","attempt":N,"last_event_id":"..."}
 *   {"kind":"response","status":200,"headers":{"content-type":"...",...}}
 *   {"kind":"retry","ms":N}
 *   {"kind":"comment","text":"..."}
 *   {"kind":"event","id":"...","event":"...","data":"..."}
 *   {"kind":"body","text":"..."}            (non-200 response body)
 *   {"kind":"eof"} / {"kind":"paused"} / {"kind":"resumed"}
 *   {"kind":"exit","reason":"..."}
 *
 * Like EventSource it reconnects when a 200 stream ends (up to --reconnect
 * times), sending the last event id in a Last-Event-ID header, and it stops
 * for good on 204 or any other status.
 *
 * The stream is parsed by test/lib/sseparse.c (WHATWG HTML, "Interpreting
 * an event stream"; the rules are listed in sseparse.h).  The Last-Event-ID
 * sent on a reconnection is the parser's last event ID string, so the id
 * line of an event cut off by the end of a stream is never sent.
 *
 * Ownership: every buffer is owned by the struct that holds it and freed by
 * its *_free function; nothing is shared between connections except the
 * parser's last event id and retry, which outlive a connection on purpose.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "sseparse.h"

#define MAX_HEADERS_BYTES (64 * 1024)
#define MAX_EXTRA_HEADERS 16

/* ---------------------------------------------------------------- options */

typedef struct options {
	char	   *host;
	char	   *port;
	char	   *path;
	const char *last_event_id;		/* initial Last-Event-ID, or NULL */
	const char *extra_headers[MAX_EXTRA_HEADERS];
	int			n_extra_headers;
	int			reconnect;			/* reconnections allowed after the first */
	long		max_delay_ms;		/* cap on the reconnection delay, -1 = none */
	long		max_events;			/* exit after this many events, 0 = no limit */
	const char *until_event;		/* exit after an event of this type */
	double		timeout_s;			/* overall deadline, 0 = none */
	long		pause_after;		/* stop reading after N events until SIGUSR1 */
	int			rcvbuf;				/* SO_RCVBUF, 0 = system default */
} options;

static options opt = {.max_delay_ms = -1};

static void
usage(void)
{
	fprintf(stderr,
			"usage: sseclient [options] http://HOST:PORT/PATH\n"
			"  --last-event-id ID      send Last-Event-ID on the first request\n"
			"  --header 'Name: value'  extra request header (repeatable)\n"
			"  --reconnect N           reconnect up to N times when a stream ends\n"
			"  --max-delay-ms N        cap the reconnection delay (server retry)\n"
			"  --max-events N          exit after N events\n"
			"  --until-event NAME      exit after an event of type NAME\n"
			"  --timeout SECONDS       give up after this long (exit 3)\n"
			"  --pause-after N         stop reading after N events until SIGUSR1\n"
			"  --rcvbuf BYTES          socket receive buffer size\n");
	exit(2);
}

/* Split "http://host:port/path" into opt.host, opt.port, opt.path. */
static void
parse_url(const char *url)
{
	const char *p, *slash, *colon;

	if (strncmp(url, "http://", 7) != 0)
		usage();
	p = url + 7;
	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t) (slash - p));
	if (colon == NULL)
	{
		opt.host = strndup(p, (size_t) (slash - p));
		opt.port = strdup("80");
	}
	else
	{
		opt.host = strndup(p, (size_t) (colon - p));
		opt.port = strndup(colon + 1, (size_t) (slash - colon - 1));
	}
	opt.path = strdup(*slash ? slash : "/");
}

static void
parse_args(int argc, char **argv)
{
	const char *url = NULL;

	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;

		if (a[0] != '-')
		{
			url = a;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--last-event-id") == 0)
			opt.last_event_id = v;
		else if (strcmp(a, "--header") == 0 && opt.n_extra_headers < MAX_EXTRA_HEADERS)
			opt.extra_headers[opt.n_extra_headers++] = v;
		else if (strcmp(a, "--reconnect") == 0)
			opt.reconnect = atoi(v);
		else if (strcmp(a, "--max-delay-ms") == 0)
			opt.max_delay_ms = atol(v);
		else if (strcmp(a, "--max-events") == 0)
			opt.max_events = atol(v);
		else if (strcmp(a, "--until-event") == 0)
			opt.until_event = v;
		else if (strcmp(a, "--timeout") == 0)
			opt.timeout_s = atof(v);
		else if (strcmp(a, "--pause-after") == 0)
			opt.pause_after = atol(v);
		else if (strcmp(a, "--rcvbuf") == 0)
			opt.rcvbuf = atoi(v);
		else
			usage();
	}
	if (url == NULL)
		usage();
	parse_url(url);
}

/* ---------------------------------------------------------------- buffers */

typedef struct buf {
	char	   *p;
	size_t		len;
	size_t		cap;
} buf;

static void
buf_reserve(buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap)
		return;
	size_t		cap = b->cap ? b->cap : 256;

	while (cap < b->len + extra + 1)
		cap *= 2;
	b->p = realloc(b->p, cap);
	if (b->p == NULL)
	{
		perror("realloc");
		exit(4);
	}
	b->cap = cap;
}

static void
buf_append(buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_puts(buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

static void
buf_free(buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---------------------------------------------------------------- output */

/* Append s (n bytes) to out as a JSON string literal. */
static void
json_string(buf *out, const char *s, size_t n)
{
	buf_puts(out, "\"");
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		esc[8];

		if (c == '"' || c == '\\')
		{
			esc[0] = '\\';
			esc[1] = (char) c;
			buf_append(out, esc, 2);
		}
		else if (c == '\n')
			buf_puts(out, "\\n");
		else if (c == '\r')
			buf_puts(out, "\\r");
		else if (c == '\t')
			buf_puts(out, "\\t");
		else if (c < 0x20 || c == 0x7f)
		{
			snprintf(esc, sizeof esc, "\\u%04x", c);
			buf_append(out, esc, 6);
		}
		else
			buf_append(out, (const char *) &s[i], 1);
	}
	buf_puts(out, "\"");
}

static void
emit(buf *line)
{
	buf_puts(line, "\n");
	fwrite(line->p, 1, line->len, stdout);
	fflush(stdout);
	buf_free(line);
}

static void
emit_simple(const char *kind)
{
	buf		l = {0};

	buf_puts(&l, "{\"kind\":");
	json_string(&l, kind, strlen(kind));
	buf_puts(&l, "}");
	emit(&l);
}

static void
emit_exit(const char *reason)
{
	buf		l = {0};

	buf_puts(&l, "{\"kind\":\"exit\",\"reason\":");
	json_string(&l, reason, strlen(reason));
	buf_puts(&l, "}");
	emit(&l);
}

/* ---------------------------------------------------------------- time */

static struct timespec start_time;

static double
elapsed_s(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double) (now.tv_sec - start_time.tv_sec) +
		(double) (now.tv_nsec - start_time.tv_nsec) / 1e9;
}

/* Milliseconds left before the overall deadline, or -1 for none. */
static int
remaining_ms(void)
{
	if (opt.timeout_s <= 0)
		return -1;
	double		left = opt.timeout_s - elapsed_s();

	return left <= 0 ? 0 : (int) (left * 1000) + 1;
}

static void
timed_out(void)
{
	emit_exit("timeout");
	exit(3);
}

/* ---------------------------------------------------------------- SSE */

/* The parser (test/lib/sseparse.c) and what the output needs besides. */
static long n_events;			/* events dispatched, all connections */

static void pause_until_signal(void);

static void
on_event(sse_parser *ps, const sse_event *ev)
{
	buf			l = {0};

	buf_puts(&l, "{\"kind\":\"event\",\"id\":");
	json_string(&l, ev->id, ev->id_len);
	buf_puts(&l, ",\"event\":");
	json_string(&l, ev->event, ev->event_len);
	buf_puts(&l, ",\"data\":");
	json_string(&l, ev->data, ev->data_len);
	buf_puts(&l, "}");
	emit(&l);

	n_events++;
	if (opt.until_event && strlen(opt.until_event) == ev->event_len &&
		memcmp(opt.until_event, ev->event, ev->event_len) == 0)
		sse_stop(ps);
	if (opt.max_events > 0 && n_events >= opt.max_events)
		sse_stop(ps);
	if (!ps->stop && opt.pause_after > 0 && n_events == opt.pause_after)
		pause_until_signal();
}

static void
on_comment(sse_parser *ps, const char *text, size_t n)
{
	buf			l = {0};

	(void) ps;
	buf_puts(&l, "{\"kind\":\"comment\",\"text\":");
	json_string(&l, text, n);
	buf_puts(&l, "}");
	emit(&l);
}

static void
on_retry(sse_parser *ps, long ms)
{
	buf			l = {0};
	char		num[32];

	(void) ps;
	snprintf(num, sizeof num, "%ld", ms);
	buf_puts(&l, "{\"kind\":\"retry\",\"ms\":");
	buf_append(&l, num, strlen(num));
	buf_puts(&l, "}");
	emit(&l);
}

/* Feed body bytes; stops early (ps->stop) when an exit condition is met. */
static void
sse_feed_or_die(sse_parser *ps, const char *p, size_t n)
{
	if (!sse_feed(ps, p, n))
	{
		emit_exit("out of memory");
		exit(2);
	}
}

/* ---------------------------------------------------------------- pause */

static void
pause_until_signal(void)
{
	sigset_t	set;
	int			ms = remaining_ms();

	emit_simple("paused");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (ms < 0)
	{
		int			sig;

		sigwait(&set, &sig);
	}
	else
	{
		struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L};

		if (sigtimedwait(&set, NULL, &ts) < 0)
			timed_out();
	}
	emit_simple("resumed");
}

/* ---------------------------------------------------------------- HTTP */

typedef enum body_mode {
	BODY_EOF, BODY_LENGTH, BODY_CHUNKED
} body_mode;

typedef enum chunk_state {
	CH_SIZE, CH_SIZE_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_DONE
} chunk_state;

typedef struct conn {
	int			fd;
	buf			head;				/* response head until CRLFCRLF */
	bool		head_done;
	int			status;
	body_mode	mode;
	long long	remaining;			/* BODY_LENGTH */
	chunk_state cstate;
	unsigned long long chunk_left;
	buf			body;				/* non-200 bodies are collected */
	bool		trailer_line_empty;
} conn;

static int
conn_open(void)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res, *ai;
	int			fd = -1;

	if (getaddrinfo(opt.host, opt.port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai; ai = ai->ai_next)
	{
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (opt.rcvbuf > 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opt.rcvbuf, sizeof opt.rcvbuf);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static bool
send_all(int fd, const char *p, size_t n)
{
	while (n > 0)
	{
		ssize_t		w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t) w;
	}
	return true;
}

static bool
send_request(int fd, const char *last_id)
{
	buf			r = {0};
	bool		ok;

	buf_puts(&r, "GET ");
	buf_append(&r, opt.path, strlen(opt.path));
	buf_puts(&r, " HTTP/1.1\r\nHost: ");
	buf_append(&r, opt.host, strlen(opt.host));
	buf_puts(&r, ":");
	buf_append(&r, opt.port, strlen(opt.port));
	buf_puts(&r, "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n");
	if (last_id && *last_id)
	{
		buf_puts(&r, "Last-Event-ID: ");
		buf_append(&r, last_id, strlen(last_id));
		buf_puts(&r, "\r\n");
	}
	for (int i = 0; i < opt.n_extra_headers; i++)
	{
		buf_append(&r, opt.extra_headers[i], strlen(opt.extra_headers[i]));
		buf_puts(&r, "\r\n");
	}
	buf_puts(&r, "\r\n");
	ok = send_all(fd, r.p, r.len);
	buf_free(&r);
	return ok;
}

/* Parse the response head; emits the "response" line. false if malformed. */
static bool
parse_head(conn *c)
{
	char	   *p = c->head.p;
	char	   *eol = strstr(p, "\r\n");
	buf			l = {0};
	char		num[16];
	bool		first = true;

	if (eol == NULL || strncmp(p, "HTTP/1.", 7) != 0 || strlen(p) < 12)
		return false;
	c->status = atoi(p + 9);
	c->mode = BODY_EOF;
	snprintf(num, sizeof num, "%d", c->status);
	buf_puts(&l, "{\"kind\":\"response\",\"status\":");
	buf_append(&l, num, strlen(num));
	buf_puts(&l, ",\"headers\":{");
	for (p = eol + 2; *p && strncmp(p, "\r\n", 2) != 0; p = eol + 2)
	{
		eol = strstr(p, "\r\n");
		if (eol == NULL)
			break;
		char	   *colon = memchr(p, ':', (size_t) (eol - p));

		if (colon == NULL)
			continue;
		char	   *v = colon + 1;

		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		char	   *vend = eol;

		while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		for (char *q = p; q < colon; q++)
			*q = (char) tolower((unsigned char) *q);
		if (!first)
			buf_puts(&l, ",");
		first = false;
		json_string(&l, p, (size_t) (colon - p));
		buf_puts(&l, ":");
		json_string(&l, v, (size_t) (vend - v));
		if ((size_t) (colon - p) == 17 && strncmp(p, "transfer-encoding", 17) == 0 &&
			vend - v >= 7 && strncasecmp(vend - 7, "chunked", 7) == 0)
			c->mode = BODY_CHUNKED;
		else if ((size_t) (colon - p) == 14 && strncmp(p, "content-length", 14) == 0 &&
				 c->mode != BODY_CHUNKED)
		{
			c->mode = BODY_LENGTH;
			c->remaining = atoll(v);
		}
	}
	buf_puts(&l, "}}");
	emit(&l);
	return true;
}

/* Deliver decoded body bytes: to the SSE parser for a 200, else collect. */
static void
body_bytes(conn *c, sse_parser *ps, const char *p, size_t n)
{
	if (n == 0)
		return;
	if (c->status == 200)
		sse_feed_or_die(ps, p, n);
	else
		buf_append(&c->body, p, n);
}

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char) tolower((unsigned char) ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* Decode chunked framing. Returns false on a framing error. */
static bool
chunked_feed(conn *c, sse_parser *ps, const char *p, size_t n)
{
	size_t		i = 0;

	while (i < n && c->cstate != CH_DONE && !ps->stop)
	{
		char		ch = p[i];

		switch (c->cstate)
		{
			case CH_SIZE:
				if (hexval(ch) >= 0)
					c->chunk_left = c->chunk_left * 16 + (unsigned) hexval(ch);
				else if (ch == ';' || ch == ' ')
					c->cstate = CH_SIZE_EXT;
				else if (ch == '\r')
					c->cstate = CH_SIZE_LF;
				else
					return false;
				i++;
				break;
			case CH_SIZE_EXT:
				if (ch == '\r')
					c->cstate = CH_SIZE_LF;
				i++;
				break;
			case CH_SIZE_LF:
				if (ch != '\n')
					return false;
				i++;
				if (c->chunk_left == 0)
				{
					c->cstate = CH_TRAILER;
					c->trailer_line_empty = true;
				}
				else
					c->cstate = CH_DATA;
				break;
			case CH_DATA:
				{
					size_t		take = n - i;

					if (take > c->chunk_left)
						take = (size_t) c->chunk_left;
					body_bytes(c, ps, p + i, take);
					i += take;
					c->chunk_left -= take;
					if (c->chunk_left == 0)
						c->cstate = CH_DATA_CR;
					break;
				}
			case CH_DATA_CR:
				if (ch != '\r')
					return false;
				c->cstate = CH_DATA_LF;
				i++;
				break;
			case CH_DATA_LF:
				if (ch != '\n')
					return false;
				c->cstate = CH_SIZE;
				c->chunk_left = 0;
				i++;
				break;
			case CH_TRAILER:
				if (ch == '\n')
				{
					if (c->trailer_line_empty)
						c->cstate = CH_DONE;
					c->trailer_line_empty = true;
				}
				else if (ch != '\r')
					c->trailer_line_empty = false;
				i++;
				break;
			case CH_DONE:
				break;
		}
	}
	return true;
}

static void
conn_free(conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	buf_free(&c->head);
	buf_free(&c->body);
}

typedef enum outcome {
	OUT_STREAM_ENDED,				/* a 200 stream ended: reconnect */
	OUT_NETWORK_ERROR,				/* could not connect or read: reconnect */
	OUT_FINAL_STATUS,				/* 204 or another status: stop */
	OUT_STOP						/* an exit condition was reached */
} outcome;

/* Handle bytes read from the socket. false when the response is complete. */
static bool
conn_input(conn *c, sse_parser *ps, const char *p, size_t n)
{
	if (!c->head_done)
	{
		buf_append(&c->head, p, n);
		char	   *end = strstr(c->head.p, "\r\n\r\n");

		if (end == NULL)
			return c->head.len < MAX_HEADERS_BYTES;
		c->head_done = true;
		size_t		head_len = (size_t) (end - c->head.p) + 4;
		buf			rest = {0};

		buf_append(&rest, c->head.p + head_len, c->head.len - head_len);
		c->head.p[head_len] = '\0';
		c->head.len = head_len;
		if (!parse_head(c))
		{
			buf_free(&rest);
			return false;
		}
		bool		more = rest.len ? conn_input(c, ps, rest.p, rest.len) : true;

		buf_free(&rest);
		return more && !(c->mode == BODY_LENGTH && c->remaining == 0);
	}
	if (c->mode == BODY_CHUNKED)
		return chunked_feed(c, ps, p, n) && c->cstate != CH_DONE;
	if (c->mode == BODY_LENGTH)
	{
		if ((long long) n > c->remaining)
			n = (size_t) c->remaining;
		c->remaining -= (long long) n;
		body_bytes(c, ps, p, n);
		return c->remaining > 0;
	}
	body_bytes(c, ps, p, n);
	return true;
}

static outcome
run_connection(sse_parser *ps, int attempt)
{
	conn		c = {.fd = -1};
	char		rbuf[16384];
	buf			l = {0};
	char		num[16];
	const char *lid = attempt == 0 ? opt.last_event_id : ps->last_id.p;

	snprintf(num, sizeof num, "%d", attempt);
	buf_puts(&l, "{\"kind\":\"connect\",\"attempt\":");
	buf_append(&l, num, strlen(num));
	buf_puts(&l, ",\"last_event_id\":");
	json_string(&l, lid ? lid : "", lid ? strlen(lid) : 0);
	buf_puts(&l, "}");
	emit(&l);

	sse_begin(ps);
	c.fd = conn_open();
	if (c.fd < 0 || !send_request(c.fd, lid))
	{
		conn_free(&c);
		return OUT_NETWORK_ERROR;
	}
	for (;;)
	{
		struct pollfd pfd = {.fd = c.fd, .events = POLLIN};
		int			ms = remaining_ms();
		int			r = poll(&pfd, 1, ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			timed_out();
		ssize_t		got = recv(c.fd, rbuf, sizeof rbuf, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0 || !conn_input(&c, ps, rbuf, (size_t) got) || ps->stop)
			break;
	}
	if (ps->stop)
	{
		conn_free(&c);
		return OUT_STOP;
	}
	if (!c.head_done)
	{
		conn_free(&c);
		return OUT_NETWORK_ERROR;
	}
	if (c.status != 200)
	{
		l = (buf) {0};
		buf_puts(&l, "{\"kind\":\"body\",\"text\":");
		json_string(&l, c.body.p ? c.body.p : "", c.body.len);
		buf_puts(&l, "}");
		emit(&l);
		conn_free(&c);
		return OUT_FINAL_STATUS;
	}
	emit_simple("eof");
	conn_free(&c);
	return OUT_STREAM_ENDED;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int
main(int argc, char **argv)
{
	sse_parser	ps;
	static const sse_callbacks cbs = {on_event, on_comment, on_retry};
	sigset_t	set;

	clock_gettime(CLOCK_MONOTONIC, &start_time);
	parse_args(argc, argv);
	sse_init(&ps, &cbs, NULL);
	/* SIGUSR1 is only ever taken synchronously, by pause_until_signal */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (int attempt = 0;; attempt++)
	{
		outcome		o = run_connection(&ps, attempt);

		if (o == OUT_STOP)
		{
			emit_exit("done");
			break;
		}
		if (o == OUT_FINAL_STATUS)
		{
			emit_exit("status");
			break;
		}
		if (attempt >= opt.reconnect)
		{
			emit_exit(o == OUT_STREAM_ENDED ? "eof" : "network");
			break;
		}
		long		delay = ps.retry_ms >= 0 ? ps.retry_ms : 3000;

		if (opt.max_delay_ms >= 0 && delay > opt.max_delay_ms)
			delay = opt.max_delay_ms;
		int			left = remaining_ms();

		if (left >= 0 && delay >= left)
			timed_out();
		sleep_ms(delay);
	}
	sse_free(&ps);
	free(opt.host);
	free(opt.port);
	free(opt.path);
	return 0;
}
