/*
 * slowread.c - many slow Server-Sent Events readers in one process, for the
 * memory tests and the memory benchmark.
 *
 *   slowread --port P --path PATH [--clients N] [--rate BYTES_PER_S]
 *            [--rcvbuf BYTES] [--seconds S] [--last-event-id ID]
 *            [--until ID] [--pid PID] [--stagger MS]
 *
 * Every client connects to 127.0.0.1:P, sends GET PATH with Last-Event-ID,
 * and reads at most BYTES_PER_S per second through a small receive buffer
 * (so the bridge, not the kernel, holds what the client has not read).  A
 * client whose connection ends, or which is refused (503), reconnects after
 * a short delay with the id of the last event it received, like
 * EventSource.  A client stops once it has an event with id >= --until.
 * Event ids must increase strictly on every client (a "reset" event may
 * skip ahead); anything else counts as an order error.
 *
 * With --pid it samples VmRSS of that process every 100 ms.  At the end it
 * prints one JSON line: clients, done, events, order_errors, connects,
 * drops (connections that ended early), refused (503), max_rss_kb, bytes.
 */
#define _GNU_SOURCE
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
	int			fd;
	bool		done;
	bool		head_done;		/* status line and headers read */
	int			status;
	int64_t		last_id;		/* last dispatched id, -1 none */
	int64_t		pending_id;		/* id field of the event being read, -1 none */
	bool		has_data;
	bool		is_ready;		/* "event: ready" may repeat the last id */
	char		line[64];		/* start of the current line (longer lines are cut) */
	size_t		llen;
	uint64_t	next_connect_ms;
	double		tokens;
} conn;

static int	port, nclients = 1, seconds = 30, stagger_ms;
static const char *path = "/";
static long rate = 10240, rcvbuf = 4096;
static int64_t start_id = 0, until_id = -1;
static int	watch_pid;
static uint64_t events, order_errors, connects, drops, refused, bytes;
static long max_rss_kb;

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static long
rss_kb(int pid)
{
	char		fn[64], buf[4096];
	FILE	   *f;
	long		kb = -1;

	snprintf(fn, sizeof(fn), "/proc/%d/status", pid);
	if ((f = fopen(fn, "r")) == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void
conn_open(conn *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
	char		req[1024];
	int			n, one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0) {
		perror("socket");
		exit(2);
	}
	setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(int));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
		close(c->fd);
		c->fd = -1;
		c->next_connect_ms = now_ms() + 200;
		return;
	}
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				 "Accept: text/event-stream\r\nLast-Event-ID: %lld\r\n\r\n",
				 path, (long long) (c->last_id >= 0 ? c->last_id : start_id));
	if (write(c->fd, req, (size_t) n) != n) {
		close(c->fd);
		c->fd = -1;
		c->next_connect_ms = now_ms() + 200;
		return;
	}
	connects++;
	c->head_done = false;
	c->status = 0;
	c->pending_id = -1;
	c->has_data = false;
	c->is_ready = false;
	c->llen = 0;
	c->tokens = 0;
}

static void
conn_closed(conn *c)
{
	close(c->fd);
	c->fd = -1;
	if (c->done)
		return;
	if (c->status == 503)
		refused++;
	else
		drops++;
	c->next_connect_ms = now_ms() + 300;
}

/* One complete line (cut to sizeof(line)); updates the event being read. */
static void
conn_line(conn *c)
{
	char	   *l = c->line;

	l[c->llen < sizeof(c->line) ? c->llen : sizeof(c->line) - 1] = '\0';
	if (!c->head_done) {
		if (c->status == 0)
			sscanf(l, "HTTP/1.1 %d", &c->status);
		else if (l[0] == '\0' || strcmp(l, "\r") == 0)
			c->head_done = true;
		return;
	}
	if (l[0] == '\0') {
		if (c->pending_id >= 0 && c->has_data && c->is_ready) {
			if (c->pending_id < c->last_id)
				order_errors++;
		} else if (c->pending_id >= 0 && c->has_data) {
			if (c->pending_id <= c->last_id)
				order_errors++;
			c->last_id = c->pending_id;
			events++;
			if (until_id >= 0 && c->last_id >= until_id)
				c->done = true;
		}
		c->has_data = false;
		c->is_ready = false;
		return;
	}
	if (strcmp(l, "event: ready") == 0)
		c->is_ready = true;
	else if (strncmp(l, "id: ", 4) == 0)
		c->pending_id = strtoll(l + 4, NULL, 10);
	else if (strncmp(l, "data:", 5) == 0)
		c->has_data = true;
}

static void
conn_feed(conn *c, const char *buf, size_t n)
{
	for (size_t i = 0; i < n && !c->done; i++) {
		if (buf[i] == '\n') {
			conn_line(c);
			c->llen = 0;
		} else if (c->llen < sizeof(c->line) - 1)
			c->line[c->llen++] = buf[i];
		else
			c->llen++;
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: slowread --port P --path PATH [--clients N] [--rate B/s] "
			"[--rcvbuf B] [--seconds S] [--last-event-id ID] [--until ID] [--pid PID] "
			"[--stagger MS]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	conn	   *cs;
	struct pollfd *pfd;
	int		   *idx;
	uint64_t	start, last_tick, last_rss = 0;
	static char buf[65536];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			usage();
		if (!strcmp(a, "--port")) port = atoi(v);
		else if (!strcmp(a, "--path")) path = v;
		else if (!strcmp(a, "--clients")) nclients = atoi(v);
		else if (!strcmp(a, "--rate")) rate = atol(v);
		else if (!strcmp(a, "--rcvbuf")) rcvbuf = atol(v);
		else if (!strcmp(a, "--seconds")) seconds = atoi(v);
		else if (!strcmp(a, "--last-event-id")) start_id = atoll(v);
		else if (!strcmp(a, "--until")) until_id = atoll(v);
		else if (!strcmp(a, "--pid")) watch_pid = atoi(v);
		else if (!strcmp(a, "--stagger")) stagger_ms = atoi(v);
		else usage();
		i++;
	}
	if (port <= 0 || nclients <= 0)
		usage();
	cs = calloc((size_t) nclients, sizeof(conn));
	pfd = calloc((size_t) nclients, sizeof(struct pollfd));
	idx = calloc((size_t) nclients, sizeof(int));
	if (!cs || !pfd || !idx)
		return 2;
	start = last_tick = now_ms();
	for (int i = 0; i < nclients; i++) {
		cs[i].fd = -1;
		cs[i].last_id = -1;
		cs[i].next_connect_ms = start + (uint64_t) i * (uint64_t) stagger_ms;
	}
	for (;;) {
		uint64_t	t = now_ms();
		int			n = 0, ndone = 0;
		double		dt = (double) (t - last_tick) / 1000.0;

		last_tick = t;
		if (watch_pid && t - last_rss >= 100) {
			long		kb = rss_kb(watch_pid);

			last_rss = t;
			if (kb > max_rss_kb)
				max_rss_kb = kb;
		}
		for (int i = 0; i < nclients; i++) {
			conn	   *c = &cs[i];

			ndone += c->done;
			if (c->done)
				continue;
			if (c->fd < 0 && t >= c->next_connect_ms)
				conn_open(c);
			if (c->fd < 0)
				continue;
			c->tokens += dt * (double) rate;
			if (c->tokens > (double) rate)
				c->tokens = (double) rate;
			if (c->tokens < 1)
				continue;
			pfd[n] = (struct pollfd) {.fd = c->fd, .events = POLLIN};
			idx[n++] = i;
		}
		if (ndone == nclients || t - start >= (uint64_t) seconds * 1000)
			break;
		if (poll(pfd, (nfds_t) n, 20) < 0 && errno != EINTR)
			return 2;
		for (int k = 0; k < n; k++) {
			conn	   *c = &cs[idx[k]];
			size_t		want = (size_t) c->tokens;
			ssize_t		got;

			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (want > sizeof(buf))
				want = sizeof(buf);
			got = read(c->fd, buf, want);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got <= 0) {
				conn_closed(c);
				continue;
			}
			c->tokens -= (double) got;
			bytes += (uint64_t) got;
			conn_feed(c, buf, (size_t) got);
			if (c->done) {
				close(c->fd);
				c->fd = -1;
			}
		}
	}
	{
		int			ndone = 0;

		for (int i = 0; i < nclients; i++) {
			ndone += cs[i].done;
			if (cs[i].fd >= 0)
				close(cs[i].fd);
		}
		printf("{\"clients\":%d,\"done\":%d,\"events\":%llu,\"order_errors\":%llu,"
			   "\"connects\":%llu,\"drops\":%llu,\"refused\":%llu,\"max_rss_kb\":%ld,"
			   "\"bytes\":%llu,\"seconds\":%.1f}\n", nclients, ndone, (unsigned long long) events,
			   (unsigned long long) order_errors, (unsigned long long) connects,
			   (unsigned long long) drops, (unsigned long long) refused, max_rss_kb,
			   (unsigned long long) bytes,
			   (double) (now_ms() - start) / 1000.0);
	}
	free(cs);
	free(pfd);
	free(idx);
	return 0;
}
