/*
 * fanout.c - many SSE streams from one process, for test/workers.
 *
 *   fanout HOST PORT PATH CONNS SRCADDR EXPECT TIMEOUT_S
 *
 * Opens CONNS connections to HOST:PORT from source address SRCADDR (so that
 * several processes on several 127.0.0.x addresses can hold more streams
 * than one process may open), sends "GET PATH" on each, and parses every
 * body with test/lib/sseparse.c.  When every stream has had its "ready"
 * event it prints "ready N" on stdout; then it waits until each stream has
 * EXPECT further events and prints "done N" and exits 0, or prints what is
 * wrong and exits 1: a status other than 200, a stream that ended, an event
 * id that does not increase, a stream with more or fewer events than
 * EXPECT, or the deadline (TIMEOUT_S from the start).  Each stream's event
 * ids after ready must be the same list for every stream (one broadcast):
 * the first stream's list is the reference.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sseparse.h"

typedef struct conn {
	int			fd;
	bool		head_done;
	bool		ready;
	bool		closed;
	char		head[512];
	size_t		hlen;
	sse_parser	ps;
	long long  *ids;			/* event ids after ready */
	int			nids;
	long long	last;
} conn;

static conn *conns;
static int	nconns, expect, nready, ndone;
static bool failed;
static long long *ref;			/* the reference list of ids */
static int	nref;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
fail(conn *c, const char *what)
{
	if (!failed)
		fprintf(stderr, "fanout: stream %d: %s\n", (int) (c - conns), what);
	failed = true;
}

static void
on_event(sse_parser *ps, const sse_event *ev)
{
	conn	   *c = ps->arg;
	long long	id = strtoll(ev->id, NULL, 10);

	if (!c->ready) {
		if (strcmp(ev->event, "ready") == 0) {
			c->ready = true;
			c->last = id;
			nready++;
		}
		return;
	}
	if (id <= c->last) {
		fail(c, "an event id did not increase");
		return;
	}
	c->last = id;
	if (c->nids >= expect) {
		fail(c, "more events than the broadcast");
		return;
	}
	c->ids[c->nids++] = id;
	if (c->nids == expect)
		ndone++;
}

static void
feed(conn *c, const char *p, size_t n)
{
	if (!c->head_done) {
		size_t		take = n < sizeof(c->head) - 1 - c->hlen ? n : sizeof(c->head) - 1 - c->hlen;
		char	   *end;

		memcpy(c->head + c->hlen, p, take);
		c->hlen += take;
		c->head[c->hlen] = '\0';
		if ((end = strstr(c->head, "\r\n\r\n")) == NULL) {
			if (c->hlen == sizeof(c->head) - 1)
				fail(c, "response head too long");
			return;
		}
		if (strncmp(c->head, "HTTP/1.1 200", 12) != 0) {
			char		msg[200];

			snprintf(msg, sizeof(msg), "status: %.60s", c->head);
			fail(c, msg);
			return;
		}
		c->head_done = true;
		{
			size_t		body_at = (size_t) (end + 4 - c->head);
			size_t		old = c->hlen - take;	/* bytes of head before this read */

			p += body_at - old;
			n -= body_at - old;
		}
	}
	if (n > 0 && !sse_feed(&c->ps, p, n))
		fail(c, "out of memory");
}

int
main(int argc, char **argv)
{
	struct sockaddr_in dst = {0}, src = {0};
	const char *path;
	double		deadline;
	int			ep, timeout_s;
	char		req[1024];
	int			reqlen;
	struct rlimit rl;
	sse_callbacks cb = {on_event, NULL, NULL};

	if (argc != 8) {
		fprintf(stderr, "usage: fanout HOST PORT PATH CONNS SRCADDR EXPECT TIMEOUT_S\n");
		return 2;
	}
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t) atoi(argv[2]));
	inet_pton(AF_INET, argv[1], &dst.sin_addr);
	path = argv[3];
	nconns = atoi(argv[4]);
	src.sin_family = AF_INET;
	inet_pton(AF_INET, argv[5], &src.sin_addr);
	expect = atoi(argv[6]);
	timeout_s = atoi(argv[7]);
	deadline = now_s() + timeout_s;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	reqlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n",
					  path, argv[1]);
	conns = calloc((size_t) nconns, sizeof(conn));
	ref = calloc((size_t) expect + 1, sizeof(long long));
	ep = epoll_create1(0);
	if (conns == NULL || ref == NULL || ep < 0)
		return 2;
	for (int i = 0; i < nconns; i++) {
		conn	   *c = &conns[i];
		int			one = 1;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

		c->ids = calloc((size_t) expect + 1, sizeof(long long));
		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (c->fd < 0 || c->ids == NULL) {
			fprintf(stderr, "fanout: connection %d: %s\n", i, strerror(errno));
			return 1;
		}
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(c->fd, (struct sockaddr *) &src, sizeof(src)) != 0 ||
			connect(c->fd, (struct sockaddr *) &dst, sizeof(dst)) != 0 ||
			write(c->fd, req, (size_t) reqlen) != reqlen) {
			fprintf(stderr, "fanout: connection %d from %s: %s\n", i, argv[5], strerror(errno));
			return 1;
		}
		sse_init(&c->ps, &cb, c);
		epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	}
	{
		bool		said_ready = false;
		struct epoll_event evs[256];
		char		buf[16384];

		while (!failed && ndone < nconns) {
			int			n, ms = (int) ((deadline - now_s()) * 1000);

			if (ms <= 0) {
				fprintf(stderr, "fanout: deadline: %d of %d ready, %d of %d complete\n",
						nready, nconns, ndone, nconns);
				return 1;
			}
			n = epoll_wait(ep, evs, 256, ms > 200 ? 200 : ms);
			for (int i = 0; i < n; i++) {
				conn	   *c = evs[i].data.ptr;
				ssize_t		r = read(c->fd, buf, sizeof(buf));

				if (r > 0)
					feed(c, buf, (size_t) r);
				else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
					fail(c, "the stream ended");
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				}
			}
			if (!said_ready && nready == nconns) {
				printf("ready %d\n", nconns);
				fflush(stdout);
				said_ready = true;
			}
		}
	}
	if (failed)
		return 1;
	/* every stream got the same ids */
	memcpy(ref, conns[0].ids, sizeof(long long) * (size_t) expect);
	nref = expect;
	for (int i = 1; i < nconns; i++)
		if (memcmp(conns[i].ids, ref, sizeof(long long) * (size_t) nref) != 0) {
			fail(&conns[i], "received other ids than stream 0");
			return 1;
		}
	printf("done %d", nconns);
	for (int k = 0; k < nref; k++)
		printf(" %lld", ref[k]);
	printf("\n");
	fflush(stdout);
	return 0;
}
