/*
 * publisher.c
 *		Benchmark publisher: sse_publish over libpq, or HTTP POST keep-alive.
 *
 * Publishes --count events, --batch at a time, either as fast as the server
 * takes them (--rate 0) or paced to --rate events per second.  Event i
 * (0-based) belongs to job (i % --jobs) and carries that job's sequence
 * number, so a stream filtered to one job sees 1, 2, 3, ...:
 *
 *	{"s":<seq>,"t":<wall-clock us at send>,"job":"<j>","n":{"job":"<j>"},"p":"<padding>"}
 *
 * ("n" repeats the job one level down, so a filter can select the same
 * events through a member that a key/value index does not cover.)
 *
 * Modes:
 *	--pg CHANNEL	one transaction per batch: BEGIN; SELECT sse_publish(...)
 *					once per event; COMMIT (libpq environment for the
 *					connection, or --conninfo).
 *	--http PATH		one POST per event on one keep-alive connection,
 *					pipelined: a batch is written at once, up to --window
 *					requests are in flight, and responses are read as they
 *					come.  {j} in PATH becomes the event's job.
 *
 * When paced, "t" is the time the event was due, not the time it was sent:
 * a server that stalls its publisher then shows the stall as latency instead
 * of hiding it (no coordinated omission).
 *
 * Prints one JSON line: events, elapsed seconds, events per second.
 * libpq is used synchronously; the HTTP socket is non-blocking under poll().
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <libpq-fe.h>

static struct
{
	const char *pg_channel;
	const char *conninfo;
	const char *http_path;
	const char *host;
	int			port;
	long		count;
	int			batch;
	double		rate;
	int			jobs;
	int			size;
	long		window;
	long		first_index;
	double		timeout_s;
} cf = {
	.host = "127.0.0.1",
	.port = 8080,
	.count = 1000,
	.batch = 10,
	.jobs = 1,
	.size = 0,
	.conninfo = "",
	.window = 1000,
	.timeout_s = 300,
};

static char *padding;
static int64_t due_us;			/* paced: stamp of the next batch; 0 = now */

static int64_t
wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Formats event number i into buf; returns its length. */
static int
format_event(char *buf, size_t cap, long i)
{
	long		job = i % cf.jobs;
	long		seq = i / cf.jobs + 1;

	return snprintf(buf, cap, "{\"s\":%ld,\"t\":%lld,\"job\":\"%ld\",\"n\":{\"job\":\"%ld\"},\"p\":\"%s\"}",
					seq, (long long) (due_us ? due_us : wall_us()), job, job, padding);
}

/* ---------------------------------------------------------------- */
/* libpq */

static PGconn *pg;
static char *sql;
static size_t sql_cap;

static void
pg_connect(void)
{
	pg = PQconnectdb(cf.conninfo);
	if (PQstatus(pg) != CONNECTION_OK)
	{
		fprintf(stderr, "publisher: %s", PQerrorMessage(pg));
		exit(1);
	}
	sql_cap = (size_t) cf.batch * ((size_t) cf.size + strlen(cf.pg_channel) + 160) + 64;
	sql = malloc(sql_cap);
}

static void
pg_send_batch(long first, int n)
{
	size_t		len = (size_t) sprintf(sql, "BEGIN;");
	char		ev[8192];

	for (int k = 0; k < n; k++)
	{
		format_event(ev, sizeof(ev), first + k);
		len += (size_t) snprintf(sql + len, sql_cap - len,
								 "SELECT sse_publish('%s','%s'::text);", cf.pg_channel, ev);
	}
	snprintf(sql + len, sql_cap - len, "COMMIT;");
	PGresult   *r = PQexec(pg, sql);

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "publisher: %s", PQerrorMessage(pg));
		exit(1);
	}
	PQclear(r);
}

/* ---------------------------------------------------------------- */
/* HTTP */

static int sock = -1;
static char *out;				/* requests not yet written: out_off .. out_len */
static size_t out_cap, out_len, out_off;
static long outstanding;		/* requests sent without a response yet */
static char inbuf[65536];
static size_t in_len;

static void
http_connect(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t) cf.port)};
	int			one = 1;

	inet_pton(AF_INET, cf.host, &a.sin_addr);
	sock = socket(AF_INET, SOCK_STREAM, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *) &a, sizeof(a)) < 0)
	{
		perror("publisher: connect");
		exit(1);
	}
	setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
	out_cap = (size_t) cf.batch * ((size_t) cf.size + strlen(cf.http_path) + 300) + 64;
	out = malloc(out_cap);
}

/*
 * Consumes every complete response in inbuf (status line, headers,
 * Content-Length body); returns how many, exits on a non-2xx status.
 */
static int
http_parse_responses(void)
{
	int			done = 0;
	size_t		pos = 0;

	for (;;)
	{
		char	   *h = inbuf + pos;
		char	   *hend = memmem(h, in_len - pos, "\r\n\r\n", 4);

		if (!hend)
			break;
		size_t		hlen = (size_t) (hend - h) + 4;
		int			status = 0;
		size_t		blen = 0;

		sscanf(h, "HTTP/1.%*d %d", &status);
		for (char *p = h + 1; p < hend; p++)
			if (p[-1] == '\n' && strncasecmp(p, "content-length:", 15) == 0)
				blen = strtoul(p + 15, NULL, 10);
		if (in_len - pos < hlen + blen)
			break;
		if (status < 200 || status >= 300)
		{
			fprintf(stderr, "publisher: HTTP status %d\n", status);
			exit(1);
		}
		pos += hlen + blen;
		done++;
	}
	memmove(inbuf, inbuf + pos, in_len - pos);
	in_len -= pos;
	return done;
}

/* Appends the POSTs of events first .. first+n-1 to the output buffer. */
static void
http_format_batch(long first, int n)
{
	char		ev[8192];
	char		path[1024];
	const char *mark = strstr(cf.http_path, "{j}");

	if (out_off == out_len)
		out_off = out_len = 0;
	for (int k = 0; k < n; k++)
	{
		int			elen = format_event(ev, sizeof(ev), first + k);

		if (mark)
			snprintf(path, sizeof(path), "%.*s%ld%s", (int) (mark - cf.http_path),
					 cf.http_path, (first + k) % cf.jobs, mark + 3);
		else
			snprintf(path, sizeof(path), "%s", cf.http_path);
		out_len += (size_t) snprintf(out + out_len, out_cap - out_len,
									 "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
									 "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
									 path, cf.host, cf.port, elen, ev);
	}
}

/*
 * Waits up to timeout_s for the socket, writes pending requests and reads
 * responses; returns how many responses completed.
 */
static int
http_pump(double timeout_s)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN | (out_off < out_len ? POLLOUT : 0)};
	int			ms = timeout_s <= 0 ? 0 : (int) (timeout_s * 1000) + 1;
	int			done = 0;

	if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
	{
		perror("publisher: poll");
		exit(1);
	}
	if (pfd.revents & POLLOUT)
	{
		ssize_t		w = write(sock, out + out_off, out_len - out_off);

		if (w < 0 && errno != EAGAIN && errno != EINTR)
		{
			perror("publisher: write");
			exit(1);
		}
		if (w > 0)
			out_off += (size_t) w;
	}
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
	{
		if (in_len == sizeof(inbuf))
		{
			fprintf(stderr, "publisher: response too large\n");
			exit(1);
		}
		ssize_t		n = read(sock, inbuf + in_len, sizeof(inbuf) - in_len);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		{
			fprintf(stderr, "publisher: connection closed by server\n");
			exit(1);
		}
		if (n > 0)
		{
			in_len += (size_t) n;
			done = http_parse_responses();
		}
	}
	return done;
}

/* ---------------------------------------------------------------- */

static void
usage(void)
{
	fprintf(stderr,
			"usage: publisher (--pg CHANNEL | --http PATH) [options]\n"
			"  --conninfo S   libpq connection string (default: environment)\n"
			"  --host H --port P  HTTP server (127.0.0.1:8080)\n"
			"  --count N      events (1000)\n"
			"  --first N      index of the first event (0): continue a sequence\n"
			"  --batch B      events per transaction / pipelined POSTs (10)\n"
			"  --rate R       events per second, 0 = as fast as possible (0)\n"
			"  --jobs J       jobs the events rotate through (1)\n"
			"  --size S       padding bytes per event (0)\n"
			"  --window W     HTTP: requests in flight at most (1000)\n"
			"  --timeout S    give up after S seconds (300)\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
		if (OPT("--pg"))
			cf.pg_channel = v;
		else if (OPT("--http"))
			cf.http_path = v;
		else if (OPT("--conninfo"))
			cf.conninfo = v;
		else if (OPT("--host"))
			cf.host = v;
		else if (OPT("--port"))
			cf.port = atoi(v);
		else if (OPT("--count"))
			cf.count = atol(v);
		else if (OPT("--first"))
			cf.first_index = atol(v);
		else if (OPT("--batch"))
			cf.batch = atoi(v);
		else if (OPT("--rate"))
			cf.rate = atof(v);
		else if (OPT("--jobs"))
			cf.jobs = atoi(v);
		else if (OPT("--window"))
			cf.window = atol(v);
		else if (OPT("--size"))
			cf.size = atoi(v);
		else if (OPT("--timeout"))
			cf.timeout_s = atof(v);
		else
			usage();
#undef OPT
	}
	if ((!cf.pg_channel) == (!cf.http_path) || cf.batch < 1 || cf.jobs < 1
		|| cf.size < 0 || cf.size > 4000 || cf.count < 0 || cf.window < cf.batch)
		usage();
	padding = malloc((size_t) cf.size + 1);
	memset(padding, 'x', (size_t) cf.size);
	padding[cf.size] = '\0';

	if (cf.pg_channel)
		pg_connect();
	else
		http_connect();

	double		t0 = mono_s();
	int64_t		t0_wall = wall_us();
	long		sent = 0;

	while (sent < cf.count || outstanding > 0)
	{
		int			n = cf.count - sent < cf.batch ? (int) (cf.count - sent) : cf.batch;
		bool		room = sent < cf.count
			&& (pg || (out_off == out_len && outstanding + n <= cf.window));
		double		wait = 0;

		if (mono_s() - t0 > cf.timeout_s)
		{
			fprintf(stderr, "publisher: timeout after %ld events\n", sent);
			break;
		}
		if (room && cf.rate > 0)
		{
			wait = t0 + (double) sent / cf.rate - mono_s();
			due_us = t0_wall + (int64_t) ((double) sent / cf.rate * 1e6);
		}
		if (room && wait <= 0)
		{
			if (pg)
				pg_send_batch(cf.first_index + sent, n);
			else
			{
				http_format_batch(cf.first_index + sent, n);
				outstanding += n;
			}
			sent += n;
			continue;
		}
		if (pg)
		{
			struct timespec ts = {(time_t) wait, (long) ((wait - (double) (time_t) wait) * 1e9)};

			nanosleep(&ts, NULL);
		}
		else
			outstanding -= http_pump(room ? wait : 1.0);
	}
	double		el = mono_s() - t0;

	printf("{\"events\":%ld,\"elapsed_s\":%.3f,\"rate\":%.0f}\n", sent, el, el > 0 ? (double) sent / el : 0);
	if (pg)
		PQfinish(pg);
	return sent == cf.count && outstanding == 0 ? 0 : 1;
}
