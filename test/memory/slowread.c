/*
 * slowread.c - many slow Server-Sent Events readers in one process, for the
 * memory tests and the memory benchmark.
 *
 *   slowread --port P --path PATH [--clients N] [--rate BYTES_PER_S]
 *            [--rcvbuf BYTES] [--seconds S] [--last-event-id ID]
 *            [--until ID] [--until-event NAME] [--pid PID] [--stagger MS]
 *            [--expect FILE] [--stall S]
 *
 * Every client connects to 127.0.0.1:P, sends GET PATH with Last-Event-ID,
 * and reads at most BYTES_PER_S per second through a small receive buffer
 * (so the bridge, not the kernel, holds what the client has not read).  A
 * client whose connection ends, or which is refused (503), reconnects after
 * a short delay with the id of the last event it received, like
 * EventSource.  The stream is parsed by test/lib/sseparse.c.  A client stops once it has an event with id >= --until, or
 * an event named --until-event (the final marker of a test).  Event ids must
 * increase strictly on every client (a "reset" event may skip ahead);
 * anything else counts as an order error.
 *
 * --expect FILE: the ids the log holds for PATH, one per line, in order:
 * every event the stream must deliver (with --until-event, those before the
 * final marker; FILE is read at the end, so it may be written while the
 * clients run, as long as it is complete before the marker is published).
 * Each client's whole sequence of events, over all its connections, is
 * compared with them row by row: after --last-event-id it must hold exactly
 * those ids, in that order, each once -- nothing skipped, repeated or
 * reordered -- up to --until or the final marker; a client that did not get
 * there must hold a prefix of them.  A "reset" is an error too (the tests
 * that pass --expect prune nothing).  Every difference is a seq_error; the
 * first ones are described on stderr.
 *
 * --stall S: readers that must complete are judged by progress, not by the
 * clock of a loaded machine: --seconds may be generous, and the run ends
 * early only when no client received a byte for S seconds (a stall).
 *
 * SIGTERM or SIGINT ends the run early, as --seconds does (the results are
 * printed).
 *
 * With --pid it samples VmRSS of that process every 100 ms.  At the end it
 * prints one JSON line: clients, done, events, order_errors, seq_errors,
 * bad_clients (clients whose sequence differs from --expect), resets,
 * connects, drops (connections that ended early), refused (503),
 * max_rss_kb, bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sseparse.h"

typedef struct conn {
	int			fd;
	bool		done;
	bool		head_done;		/* status line and headers read */
	int			status;
	int64_t		last_id;		/* last dispatched id, -1 none */
	sse_parser	ps;				/* test/lib/sseparse.c */
	int64_t    *seq;			/* every event id received, in order */
	size_t		nseq, capseq;
	char		line[64];		/* start of the current head line (longer lines are cut) */
	size_t		llen;
	uint64_t	next_connect_ms;
	double		tokens;
} conn;

static int	port, nclients = 1, seconds = 30, stagger_ms, stall_s;
static const char *path = "/";
static long rate = 10240, rcvbuf = 4096;
static int64_t start_id = 0, until_id = -1;
static int	watch_pid;
static const char *until_event;
static uint64_t events, order_errors, connects, drops, refused, bytes, resets, seq_errors;
static int	reported;
static volatile sig_atomic_t stop;

static void
on_stop(int sig)
{
	(void) sig;
	stop = 1;
}
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
	sse_begin(&c->ps);
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

static void
seq_push(conn *c, int64_t id)
{
	if (c->nseq == c->capseq) {
		c->capseq = c->capseq ? c->capseq * 2 : 256;
		if ((c->seq = realloc(c->seq, c->capseq * sizeof(int64_t))) == NULL) {
			perror("realloc");
			exit(2);
		}
	}
	c->seq[c->nseq++] = id;
}

/* One event; "ready" may repeat the last id, "reset" may skip ahead. */
static void
on_event(sse_parser *ps, const sse_event *ev)
{
	conn	   *c = ps->arg;
	int64_t		id = ev->id_len > 0 ? strtoll(ev->id, NULL, 10) : -1;

	if (id < 0)
		return;
	if (strcmp(ev->event, "ready") == 0) {
		if (id < c->last_id)
			order_errors++;
	} else if (strcmp(ev->event, "reset") == 0) {
		resets++;
		if (id <= c->last_id)
			order_errors++;
		seq_push(c, -id - 1);	/* negative: a reset there */
		c->last_id = id;
	} else if (until_event != NULL && strcmp(ev->event, until_event) == 0) {
		if (id <= c->last_id)
			order_errors++;
		c->last_id = id;
		c->done = true;			/* the final marker is not compared */
	} else {
		if (id <= c->last_id)
			order_errors++;
		seq_push(c, id);
		c->last_id = id;
		events++;
		if (until_id >= 0 && c->last_id >= until_id)
			c->done = true;
	}
	if (c->done)
		sse_stop(ps);
}

/* One complete line of the response head (cut to sizeof(line)). */
static void
head_line(conn *c)
{
	char	   *l = c->line;

	l[c->llen < sizeof(c->line) ? c->llen : sizeof(c->line) - 1] = '\0';
	if (c->status == 0)
		sscanf(l, "HTTP/1.1 %d", &c->status);
	else if (l[0] == '\0' || strcmp(l, "\r") == 0)
		c->head_done = true;
}

static void
conn_feed(conn *c, const char *buf, size_t n)
{
	size_t		i = 0;

	for (; i < n && !c->head_done; i++) {
		if (buf[i] == '\n') {
			head_line(c);
			c->llen = 0;
		} else if (c->llen < sizeof(c->line) - 1)
			c->line[c->llen++] = buf[i];
		else
			c->llen++;
	}
	if (c->head_done && c->status == 200 && i < n && !sse_feed(&c->ps, buf + i, n - i)) {
		fprintf(stderr, "slowread: out of memory\n");
		exit(2);
	}
}

/* The ids due after start_id (and up to until_id) from fn, in *n. */
static int64_t *
read_expect(const char *fn, size_t *n)
{
	FILE	   *f = fopen(fn, "r");
	long long	v;
	size_t		cap = 1024;
	int64_t    *ids;

	*n = 0;
	if (f == NULL || (ids = malloc(cap * sizeof(int64_t))) == NULL) {
		perror(fn);
		exit(2);
	}
	while (fscanf(f, "%lld", &v) == 1) {
		if (v <= start_id || (until_id >= 0 && v > until_id))
			continue;
		if (*n > 0 && v <= ids[*n - 1]) {
			fprintf(stderr, "slowread: %s: ids must increase\n", fn);
			exit(2);
		}
		if (*n == cap && (ids = realloc(ids, (cap *= 2) * sizeof(int64_t))) == NULL) {
			perror("realloc");
			exit(2);
		}
		ids[(*n)++] = v;
	}
	if (!feof(f)) {
		fprintf(stderr, "slowread: %s: not a list of ids\n", fn);
		exit(2);
	}
	fclose(f);
	if (until_id >= 0 && (*n == 0 || ids[*n - 1] != until_id)) {
		fprintf(stderr, "slowread: %s: --until %lld is not among the ids due\n", fn,
				(long long) until_id);
		exit(2);
	}
	return ids;
}

static void
seq_error(int client, const char *what, long long got, long long want, size_t row)
{
	seq_errors++;
	if (reported++ < 12)
		fprintf(stderr, "slowread %s: client %d, row %zu: %s: got %lld, expected %lld\n",
				path, client, row, what, got, want);
}

/*
 * Compare client i's sequence with the n ids due, row by row.  After a
 * difference the comparison goes on from where the id received is in the
 * list (a skip counts once; a repeat or reorder once per row).  True when
 * it matched (a prefix, or all of them when the client is done).
 */
static bool
seq_compare(int i, const conn *c, const int64_t *ids, size_t n)
{
	size_t		k = 0;
	uint64_t	before = seq_errors;

	for (size_t r = 0; r < c->nseq; r++) {
		int64_t		id = c->seq[r];
		size_t		j;

		if (id < 0) {
			seq_error(i, "a reset (nothing was pruned)", -id - 1, k < n ? ids[k] : -1, r);
			continue;
		}
		if (k < n && ids[k] == id) {
			k++;
			continue;
		}
		for (j = k; j < n && ids[j] < id; j++)
			;
		if (j < n && ids[j] == id) {
			seq_error(i, "events skipped", id, ids[k], r);
			k = j + 1;
		} else if (k > 0 && id <= ids[k - 1])
			seq_error(i, "repeated or out of order", id, k < n ? ids[k] : -1, r);
		else
			seq_error(i, "not due on this stream", id, k < n ? ids[k] : -1, r);
	}
	if (c->done && k < n)
		seq_error(i, "ended early: missing the rest", c->nseq ? c->seq[c->nseq - 1] : -1, ids[k],
				  c->nseq);
	return seq_errors == before;
}

static void
usage(void)
{
	fprintf(stderr, "usage: slowread --port P --path PATH [--clients N] [--rate B/s] "
			"[--rcvbuf B] [--seconds S] [--last-event-id ID] [--until ID] [--pid PID] "
			"[--until-event NAME] [--stagger MS] [--expect FILE] [--stall S]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	conn	   *cs;
	struct pollfd *pfd;
	int		   *idx;
	uint64_t	start, last_tick, last_rss = 0, last_byte;
	static char buf[65536];
	static const sse_callbacks cbs = {on_event, NULL, NULL};
	const char *expect_fn = NULL;

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
		else if (!strcmp(a, "--until-event")) until_event = v;
		else if (!strcmp(a, "--expect")) expect_fn = v;
		else if (!strcmp(a, "--stall")) stall_s = atoi(v);
		else usage();
		i++;
	}
	if (port <= 0 || nclients <= 0)
		usage();
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_stop;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	cs = calloc((size_t) nclients, sizeof(conn));
	pfd = calloc((size_t) nclients, sizeof(struct pollfd));
	idx = calloc((size_t) nclients, sizeof(int));
	if (!cs || !pfd || !idx)
		return 2;
	start = last_tick = last_byte = now_ms();
	for (int i = 0; i < nclients; i++) {
		cs[i].fd = -1;
		cs[i].last_id = -1;
		sse_init(&cs[i].ps, &cbs, &cs[i]);
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
		if (ndone == nclients || stop || t - start >= (uint64_t) seconds * 1000)
			break;
		if (stall_s > 0 && t - last_byte >= (uint64_t) stall_s * 1000) {
			fprintf(stderr, "slowread: no byte received for %d s: stalled\n", stall_s);
			break;
		}
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
			last_byte = now_ms();
			conn_feed(c, buf, (size_t) got);
			if (c->done) {
				close(c->fd);
				c->fd = -1;
			}
		}
	}
	{
		int			ndone = 0, nbad = 0;
		size_t		nexpect = 0;
		int64_t    *ids = expect_fn ? read_expect(expect_fn, &nexpect) : NULL;

		for (int i = 0; i < nclients; i++) {
			ndone += cs[i].done;
			if (ids != NULL)
				nbad += !seq_compare(i, &cs[i], ids, nexpect);
			if (cs[i].fd >= 0)
				close(cs[i].fd);
			free(cs[i].seq);
			sse_free(&cs[i].ps);
		}
		free(ids);
		printf("{\"clients\":%d,\"done\":%d,\"events\":%llu,\"order_errors\":%llu,"
			   "\"seq_errors\":%llu,\"bad_clients\":%d,\"resets\":%llu,"
			   "\"connects\":%llu,\"drops\":%llu,\"refused\":%llu,\"max_rss_kb\":%ld,"
			   "\"bytes\":%llu,\"seconds\":%.1f}\n", nclients, ndone, (unsigned long long) events,
			   (unsigned long long) order_errors, (unsigned long long) seq_errors, nbad,
			   (unsigned long long) resets, (unsigned long long) connects,
			   (unsigned long long) drops, (unsigned long long) refused, max_rss_kb,
			   (unsigned long long) bytes,
			   (double) (now_ms() - start) / 1000.0);
	}
	free(cs);
	free(pfd);
	free(idx);
	return 0;
}
