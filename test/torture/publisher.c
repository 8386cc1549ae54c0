/*
 * publisher.c - concurrent publishing load for the torture test.
 *
 * N threads, each with its own libpq connection, run transactions of 1 to 50
 * sse_publish() calls across several channels until a deadline or a
 * transaction budget is reached.  Transactions commit after a random delay
 * or roll back; some events sit behind a savepoint that is rolled back.
 * Payloads mix compact JSON objects (the fields subscribers filter on),
 * multi-line JSON and plain text with LF, CR and CRLF line ends, non-ASCII
 * UTF-8, SSE look-alike text, JSON that is not an object, and large blobs of
 * up to 256 KB.
 *
 * Every payload carries a unique tag "@@p<thread>t<txn>e<k>@@".  Each thread
 * writes the fate of its transactions to DIR/pub-<thread>.log, one line per
 * transaction:
 *
 *   C <txn> <tag>...   committed (COMMIT returned COMMIT)
 *   R <txn> <tag>...   rolled back, or aborted before COMMIT
 *   U <txn> <tag>...   outcome unknown (the connection broke during COMMIT)
 *   S <txn> <tag>...   events dropped by ROLLBACK TO SAVEPOINT
 *
 * The verifier checks the log table against these lines: committed tags
 * present exactly once, rolled-back tags absent, unknown transactions all or
 * nothing.  The connection is reopened (bounded backoff) whenever the server
 * goes away, so database restarts are part of the load.
 *
 * Usage: publisher --threads N --seconds S --max-txns M --dir DIR --seed X
 *                  [--pause-ms MAX]      (random pause between transactions)
 * The database comes from the libpq environment.  All loops are bounded by
 * the deadline and by --max-txns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define MAX_PAYLOAD (256 * 1024)

static int	n_threads = 16;
static double seconds = 30;
static long max_txns = 1000000;
static const char *dir = ".";
static uint64_t seed = 1;
static int	pause_ms = 100;
static double deadline;

static const char *channels[] = {
	"t.orders.eu", "t.orders.us", "t.orders.asia",
	"t.jobs.eu", "t.jobs.us", "t.jobs.eu.urgent",
	"t.chat.general", "t.chat.random", "t.misc", "t.big.blob",
	"t.fin.a", "t.fin.b",		/* named by the terminal subscribers (plan.mjs) */
};
#define N_CHANNELS (sizeof channels / sizeof channels[0])

static const char *kinds[] = {"order", "job", "chat", "misc"};
static const char *regions[] = {"eu", "us", "asia"};
static const char *colors[] = {"red", "green", "blue", "\xc3\xa9t\xc3\xa9"};
static const char *texts[] = {
	"plain ascii",
	"h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe2\x9c\x93",
	"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88",
	"emoji \xf0\x9f\x8e\x89\xf0\x9f\x9a\x80",
	"quote \\\" and backslash \\\\ and tab \\t",
};

/* ---------------------------------------------------------------- util */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint64_t
rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static int
rn(uint64_t *s, int n)
{
	return (int) (rnd(s) % (uint64_t) n);
}

#include "sbuf.h"

static void
sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void
sb_printf(sbuf *b, const char *fmt, ...)
{
	char		tmp[512];
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	sb_add(b, tmp, (size_t) (n < (int) sizeof tmp ? n : (int) sizeof tmp - 1));
}

/* ---------------------------------------------------------------- payloads */

static const char *
pick_nl(uint64_t *s)
{
	switch (rn(s, 3))
	{
		case 0:
			return "\n";
		case 1:
			return "\r";
		default:
			return "\r\n";
	}
}

/* The JSON object fields that subscribers filter on. */
static void
json_fields(sbuf *b, uint64_t *s, const char *tag, const char *sep)
{
	int			ntags = rn(s, 3);

	sb_printf(b, "\"tag\":\"%s\",%s\"kind\":\"%s\",%s\"region\":\"%s\",%s\"prio\":%d,%s",
			  tag, sep, kinds[rn(s, 4)], sep, regions[rn(s, 3)], sep, rn(s, 5), sep);
	sb_puts(b, "\"tags\":[");
	for (int i = 0; i < ntags; i++)
		sb_printf(b, "%s\"%s\"", i ? "," : "", colors[rn(s, 4)]);
	sb_printf(b, "],%s\"meta\":{\"src\":\"%s\",\"n\":%d},%s\"msg\":\"%s\"",
			  sep, rn(s, 2) ? "api" : "cron", rn(s, 1000), sep, texts[rn(s, 5)]);
}

static void
blob(sbuf *b, uint64_t *s, size_t n)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789-_ ";

	for (size_t i = 0; i < n; i++)
		sb_add(b, &alphabet[rn(s, (int) sizeof alphabet - 1)], 1);
}

/* Build the payload of one event into b (reset first). */
static void
make_payload(sbuf *b, uint64_t *s, const char *tag, bool big)
{
	int			r = rn(s, 100);

	b->len = 0;
	if (big)
	{
		size_t		target = 64 * 1024 + (size_t) rn(s, MAX_PAYLOAD - 64 * 1024 - 1024);

		if (rn(s, 4) == 0)
			target = MAX_PAYLOAD - 512;
		sb_puts(b, "{");
		json_fields(b, s, tag, "");
		sb_puts(b, ",\"blob\":\"");
		blob(b, s, target - b->len - 2 > target ? 0 : target - b->len - 2);
		sb_puts(b, "\"}");
		return;
	}
	if (r < 55)
	{
		sb_puts(b, "{");
		json_fields(b, s, tag, "");
		sb_puts(b, "}");
	}
	else if (r < 65)
	{
		/* multi-line JSON: line breaks are whitespace between tokens */
		const char *nl = pick_nl(s);
		char		sep[8];

		snprintf(sep, sizeof sep, "%s  ", nl);
		sb_puts(b, "{");
		sb_puts(b, sep);
		json_fields(b, s, tag, sep);
		sb_puts(b, nl);
		sb_puts(b, "}");
		if (rn(s, 3) == 0)
			sb_puts(b, nl);		/* trailing line end */
	}
	else if (r < 75)
	{
		/* plain text, mixed line ends, empty lines, maybe leading/trailing */
		if (rn(s, 4) == 0)
			sb_puts(b, pick_nl(s));
		sb_printf(b, "line one %s", tag);
		int			lines = 1 + rn(s, 6);

		for (int i = 0; i < lines; i++)
		{
			sb_puts(b, pick_nl(s));
			if (rn(s, 4) == 0)
				continue;		/* empty line */
			sb_printf(b, "line %d: %s", i + 2, texts[rn(s, 5)]);
		}
		if (rn(s, 4) == 0)
			sb_puts(b, pick_nl(s));
	}
	else if (r < 80)
	{
		/* looks like SSE framing; must arrive as data, verbatim */
		sb_printf(b, "id: 1%sevent: close%s%sdata: %s%s: comment%sretry: 1",
				  pick_nl(s), pick_nl(s), pick_nl(s), tag, pick_nl(s), pick_nl(s));
	}
	else if (r < 85)
	{
		/* JSON, but not an object: matches only the empty filter */
		if (rn(s, 2))
			sb_printf(b, "[\"%s\",1,2,{\"kind\":\"order\"}]", tag);
		else
			sb_printf(b, "\"%s kind order\"", tag);
	}
	else if (r < 88)
	{
		/* not JSON although it starts like it */
		sb_printf(b, "{\"tag\":\"%s\",\"kind\":\"order\"", tag);
	}
	else
	{
		sb_puts(b, "{");
		json_fields(b, s, tag, "");
		sb_puts(b, ",\"blob\":\"");
		blob(b, s, 512 + (size_t) rn(s, 16 * 1024));
		sb_puts(b, "\"}");
	}
}

/* ---------------------------------------------------------------- thread */

typedef struct pub {
	int			idx;
	uint64_t	rng;
	PGconn	   *conn;
	FILE	   *log;
	long		txns, committed, rolled_back, unknown, events_committed;
	long		reconnects;
} pub;

static bool
ensure_conn(pub *p)
{
	long		backoff = 50;

	while (now_s() < deadline)
	{
		if (p->conn && PQstatus(p->conn) == CONNECTION_OK)
			return true;
		if (p->conn)
		{
			PQfinish(p->conn);
			p->conn = NULL;
			p->reconnects++;
		}
		p->conn = PQconnectdb("");
		if (PQstatus(p->conn) == CONNECTION_OK)
			return true;
		sleep_ms(backoff);
		if (backoff < 1000)
			backoff *= 2;
	}
	return false;
}

/* Run a command; true if it returned the wanted status. */
static bool
run(pub *p, const char *sql)
{
	PGresult   *r = PQexec(p->conn, sql);
	bool		ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
		PQresultStatus(r) == PGRES_TUPLES_OK;

	PQclear(r);
	return ok;
}

static void
log_tags(pub *p, char kind, long txn, sbuf *tags)
{
	fprintf(p->log, "%c %ld%s\n", kind, txn, tags->p ? tags->p : "");
	fflush(p->log);
}

/* One transaction.  Returns false when the connection is gone. */
static bool
one_txn(pub *p, long txn, sbuf *payload)
{
	uint64_t   *s = &p->rng;
	int			n = rn(s, 10) < 7 ? 1 + rn(s, 5) : 1 + rn(s, 50);
	sbuf		live = {0}, dropped = {0}, sp = {0};
	bool		in_sp = false;
	bool		ok = true;
	char		tag[64];

	if (!run(p, "BEGIN"))
		return false;
	for (int k = 0; k < n && ok; k++)
	{
		if (!in_sp && rn(s, 12) == 0)
		{
			ok = run(p, "SAVEPOINT sp");
			in_sp = true;
			sp.len = 0;
			if (sp.p)
				sp.p[0] = 0;
			continue;
		}
		snprintf(tag, sizeof tag, "@@p%dt%lde%d@@", p->idx, txn, k);
		make_payload(payload, s, tag, rn(s, 400) == 0);
		const char *ch = channels[rn(s, (int) N_CHANNELS)];
		int			ev = rn(s, 20);
		const char *evname = ev < 10 ? NULL : ev < 15 ? "update" : ev < 18 ? "job.done" : "cr\xc3\xa9\xc3\xa9";
		const char *vals[3] = {ch, payload->p, evname};
		PGresult   *r = PQexecParams(p->conn,
									 "SELECT sse_publish($1::text, $2::text, $3::text)",
									 3, NULL, vals, NULL, NULL, 0);

		ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		if (!ok)
			fprintf(stderr, "publisher %d: %s", p->idx, PQerrorMessage(p->conn));
		PQclear(r);
		sb_printf(in_sp ? &sp : &live, " %s", tag);
		if (in_sp && rn(s, 4) == 0)
		{
			/* close the savepoint: roll back half the time, keep otherwise */
			if (rn(s, 2))
			{
				ok = ok && run(p, "ROLLBACK TO SAVEPOINT sp");
				if (sp.p)
					sb_puts(&dropped, sp.p);
			}
			else
			{
				ok = ok && run(p, "RELEASE SAVEPOINT sp");
				if (sp.p)
					sb_puts(&live, sp.p);
			}
			in_sp = false;
			sp.len = 0;
			if (sp.p)
				sp.p[0] = 0;
		}
	}
	if (in_sp && sp.p)
		sb_puts(&live, sp.p);	/* still open: commits with the transaction */
	if (dropped.len)
		log_tags(p, 'S', txn, &dropped);
	if (ok && rn(s, 3) == 0)
		sleep_ms(rn(s, 30));	/* commit delay */
	if (!ok || rn(s, 10) == 0)
	{
		if (PQstatus(p->conn) == CONNECTION_OK)
			(void) run(p, "ROLLBACK");
		log_tags(p, 'R', txn, &live);
		p->rolled_back++;
	}
	else
	{
		PGresult   *r = PQexec(p->conn, "COMMIT");

		if (PQresultStatus(r) == PGRES_COMMAND_OK &&
			strcmp(PQcmdStatus(r), "COMMIT") == 0)
		{
			log_tags(p, 'C', txn, &live);
			p->committed++;
			for (char *q = live.p; q && *q; q++)
				p->events_committed += (*q == ' ');
		}
		else if (PQresultStatus(r) == PGRES_COMMAND_OK)
		{
			log_tags(p, 'R', txn, &live);	/* COMMIT of an aborted txn */
			p->rolled_back++;
		}
		else
		{
			if (PQstatus(p->conn) == CONNECTION_OK)
				fprintf(stderr, "publisher %d: commit failed: %s", p->idx,
						PQerrorMessage(p->conn));
			log_tags(p, 'U', txn, &live);
			p->unknown++;
			ok = false;
		}
		PQclear(r);
	}
	free(live.p);
	free(dropped.p);
	free(sp.p);
	return ok && PQstatus(p->conn) == CONNECTION_OK;
}

static void *
thread_main(void *arg)
{
	pub		   *p = arg;
	sbuf		payload = {0};
	char		path[4096];

	snprintf(path, sizeof path, "%s/pub-%d.log", dir, p->idx);
	p->log = fopen(path, "w");
	if (!p->log)
	{
		perror(path);
		exit(1);
	}
	for (long txn = 1; txn <= max_txns && now_s() < deadline; txn++)
	{
		if (!ensure_conn(p))
			break;
		p->txns++;
		if (!one_txn(p, txn, &payload))
			continue;
		if (pause_ms > 0)
			sleep_ms(rn(&p->rng, pause_ms + 1));
	}
	if (p->conn)
		PQfinish(p->conn);
	fclose(p->log);
	free(payload.p);
	return NULL;
}

int
main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2)
	{
		if (strcmp(argv[i], "--threads") == 0)
			n_threads = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--max-txns") == 0)
			max_txns = atol(argv[i + 1]);
		else if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
		else if (strcmp(argv[i], "--seed") == 0)
			seed = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--pause-ms") == 0)
			pause_ms = atoi(argv[i + 1]);
		else
		{
			fprintf(stderr, "publisher: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (n_threads < 1 || n_threads > 256)
		return 2;
	deadline = now_s() + seconds;

	pub		   *pubs = calloc((size_t) n_threads, sizeof(pub));
	pthread_t  *th = calloc((size_t) n_threads, sizeof(pthread_t));

	for (int i = 0; i < n_threads; i++)
	{
		pubs[i].idx = i;
		pubs[i].rng = seed * 1000003ULL + (uint64_t) i * 7919ULL + 1;
		pthread_create(&th[i], NULL, thread_main, &pubs[i]);
	}
	long		txns = 0, c = 0, r = 0, u = 0, ev = 0, rc = 0;

	for (int i = 0; i < n_threads; i++)
	{
		pthread_join(th[i], NULL);
		txns += pubs[i].txns;
		c += pubs[i].committed;
		r += pubs[i].rolled_back;
		u += pubs[i].unknown;
		ev += pubs[i].events_committed;
		rc += pubs[i].reconnects;
	}
	printf("publishers=%d txns=%ld committed=%ld rolled_back=%ld unknown=%ld "
		   "events_committed=%ld reconnects=%ld\n", n_threads, txns, c, r, u, ev, rc);
	free(pubs);
	free(th);
	return 0;
}
