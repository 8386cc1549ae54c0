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
 *	--http PATH		one POST per event on one keep-alive connection; a batch
 *					is pipelined (all requests written, then all responses
 *					read).  {j} in PATH becomes the event's job.
 *
 * When paced, "t" is the time the event was due, not the time it was sent:
 * a server that stalls its publisher then shows the stall as latency instead
 * of hiding it (no coordinated omission).
 *
 * Prints one JSON line: events, elapsed seconds, events per second.
 * Blocking I/O throughout: the publisher is one client, not a server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
static char *out;
static size_t out_cap;
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
	out_cap = (size_t) cf.batch * ((size_t) cf.size + strlen(cf.http_path) + 300) + 64;
	out = malloc(out_cap);
}

/* Reads one HTTP response (status line, headers, Content-Length body). */
static int
http_read_response(void)
{
	for (;;)
	{
		char	   *hend = memmem(inbuf, in_len, "\r\n\r\n", 4);

		if (hend)
		{
			size_t		hlen = (size_t) (hend - inbuf) + 4;
			int			status = 0;
			size_t		blen = 0;

			sscanf(inbuf, "HTTP/1.%*d %d", &status);
			for (char *p = inbuf; p < hend; p++)
				if (p > inbuf && p[-1] == '\n' && strncasecmp(p, "content-length:", 15) == 0)
					blen = strtoul(p + 15, NULL, 10);
			if (in_len >= hlen + blen)
			{
				memmove(inbuf, inbuf + hlen + blen, in_len - hlen - blen);
				in_len -= hlen + blen;
				return status;
			}
		}
		if (in_len == sizeof(inbuf))
		{
			fprintf(stderr, "publisher: response too large\n");
			exit(1);
		}
		ssize_t		n = read(sock, inbuf + in_len, sizeof(inbuf) - in_len);

		if (n <= 0)
		{
			fprintf(stderr, "publisher: connection closed by server\n");
			exit(1);
		}
		in_len += (size_t) n;
	}
}

static void
http_send_batch(long first, int n)
{
	size_t		len = 0;
	char		ev[8192];
	char		path[1024];

	for (int k = 0; k < n; k++)
	{
		int			elen = format_event(ev, sizeof(ev), first + k);
		const char *mark = strstr(cf.http_path, "{j}");

		if (mark)
			snprintf(path, sizeof(path), "%.*s%ld%s", (int) (mark - cf.http_path),
					 cf.http_path, (first + k) % cf.jobs, mark + 3);
		else
			snprintf(path, sizeof(path), "%s", cf.http_path);
		len += (size_t) snprintf(out + len, out_cap - len,
								 "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
								 "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
								 path, cf.host, cf.port, elen, ev);
	}
	for (size_t off = 0; off < len;)
	{
		ssize_t		w = write(sock, out + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
		{
			perror("publisher: write");
			exit(1);
		}
		off += (size_t) w;
	}
	for (int k = 0; k < n; k++)
	{
		int			status = http_read_response();

		if (status < 200 || status >= 300)
		{
			fprintf(stderr, "publisher: HTTP status %d\n", status);
			exit(1);
		}
	}
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
		else if (OPT("--size"))
			cf.size = atoi(v);
		else if (OPT("--timeout"))
			cf.timeout_s = atof(v);
		else
			usage();
#undef OPT
	}
	if ((!cf.pg_channel) == (!cf.http_path) || cf.batch < 1 || cf.jobs < 1
		|| cf.size < 0 || cf.size > 4000 || cf.count < 0)
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

	while (sent < cf.count)
	{
		int			n = cf.count - sent < cf.batch ? (int) (cf.count - sent) : cf.batch;

		if (cf.rate > 0)
		{
			double		due = t0 + (double) sent / cf.rate;
			double		now = mono_s();

			due_us = t0_wall + (int64_t) ((double) sent / cf.rate * 1e6);

			if (due > now)
			{
				struct timespec ts = {(time_t) (due - now), (long) ((due - now - (double) (time_t) (due - now)) * 1e9)};

				nanosleep(&ts, NULL);
			}
		}
		if (cf.pg_channel)
			pg_send_batch(cf.first_index + sent, n);
		else
			http_send_batch(cf.first_index + sent, n);
		sent += n;
		if (mono_s() - t0 > cf.timeout_s)
		{
			fprintf(stderr, "publisher: timeout after %ld events\n", sent);
			break;
		}
	}
	double		el = mono_s() - t0;

	printf("{\"events\":%ld,\"elapsed_s\":%.3f,\"rate\":%.0f}\n", sent, el, el > 0 ? (double) sent / el : 0);
	if (pg)
		PQfinish(pg);
	return sent == cf.count ? 0 : 1;
}
