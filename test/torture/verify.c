/*
 * verify.c - the torture test's verdict.
 *
 * Inputs: the subscriber table (--config), the client and publisher logs
 * (--dir), and the database (libpq environment), where torture.shadow holds
 * a copy of every committed event row (see torture.sh for why that copy is
 * complete even though sse_prune deletes rows while the test runs).
 *
 * Expected set of a subscriber: every row of torture.shadow with
 *   id > start            (start: the given id, a subscription's start_id,
 *                          or the head announced by the first "ready" of an
 *                          ad-hoc stream opened without Last-Event-ID),
 *   channel matching one of its patterns (AMQP rules: "*" is exactly one
 *                          segment, "#" zero or more; implemented here, not
 *                          taken from the shared matcher under test),
 *   data matching its filter (evaluated by the server's own jsonb: the
 *                          filter is empty, or the payload parses as a JSON
 *                          object and data::jsonb @> filter; a close on a
 *                          channel it names literally bypasses the filter),
 * in id order.  A subscription's patterns and filter are those valid at the
 * row: the definition of its newest "$sub" marker below the row's id (the
 * harness changes subscriptions while publishers run), or its initial one.
 *
 * Ends.  A stream ends at the first of: a close event on a channel one of
 * its patterns names literally (the close is its last expected row; final
 * answer 204), or a marker of its subscription with state "closed" (204) or
 * "dropped" (unsubscribe or expiry; 404).  Nothing above the end is
 * expected; the client must get that final answer (after which it stops
 * reconnecting) and no delivery above the end.  Expiry is the one case
 * where a reader may lose events: a reader that was away when its
 * subscription expired gets 404 on return, so for a subscriber flagged
 * end=expire (plan.mjs) the expected ids above the last one it received
 * are not counted as lost (expired_tail); it must still have received a
 * prefix of its expected sequence, with nothing missing below its last
 * delivery, out of order or duplicated.  A reader of an unsubscribed or
 * closed subscription gets everything up to the end, whenever it comes
 * back.
 *
 * The received sequence must equal it exactly:
 *   lost        expected ids never received and not announced by a reset
 *   duplicated  ids received more than once
 *   reordered   ids received after a larger id
 *   corrupted   right id, wrong event name / data length / data MD5
 *   unexpected  ids received that are not in the expected set
 *   bad_resets  resets that claim ids that were never pruned, or that
 *               cannot be read
 *   past_end    deliveries above the stream's end, or after its final answer
 *   unended     ended streams that never got their final answer
 *   final answers other than 503 and the one after an end also fail
 * An id is "accounted for" by a reset only if the reset's lost range covers
 * it and the range ends at a value pruned_through really had (the harness
 * logs every value it sets in DIR/prune.log).
 *
 * Timelines.  The restore and pitr faults abandon the rows above a restored
 * head; torture.sh captures them exactly (DIR/dead-N.copy, heads in
 * DIR/timelines.log), and torture.shadow, rewound with the database, holds
 * the final timeline only (its "$sub" markers too, so the definitions
 * followed for the expected sets are the final ones).  A delivery
 * "<id>-<fp>" whose fingerprint is not the final row's at that id must be a
 * captured row with the same content (else corrupted).  A timeline reset
 * (data "timeline":true, id F-fp(F), lost_from F+1) voids every delivery the
 * subscriber holds with an id above F: a final row is expected again, a row
 * of an abandoned timeline stops counting, prune resets above F no longer
 * excuse anything.  It must follow a real timeline change and F must be a
 * final position (its row, at or below a restored head, or a position
 * without a row at or below a prune mark), else it is a bad reset and voids
 * nothing.  An ad hoc stream re-based below its start expects everything
 * after F.  Then:
 *   dead        deliveries of abandoned rows that no later timeline reset
 *               voided
 * and the accepted sequence must still equal the expected set exactly.  A
 * captured row that is a final row (same id and commit time) would mean a
 * wrong capture: it fails the run (abandoned_but_final).
 *
 * The publisher logs are checked against the log table too: every event of
 * a committed transaction present exactly once, nothing from a rolled-back
 * transaction or savepoint, unknown outcomes all or nothing, and the ids of
 * one transaction consecutive in publish order.  A committed event may be in
 * an abandoned timeline instead (abandoned_committed), never in both, and
 * one transaction never in two.
 *
 * Modes:
 *   --wait SECONDS  poll the client logs until every subscriber has
 *                   received (or been told by a reset it lost) the last id
 *                   it expects, or the deadline passes; exit 0 / 1.  An
 *                   ended subscriber is done once it has a final answer
 *                   (no fresh "ready" is awaited from it).
 *   (default)       print the verdict; exit 1 on any difference.
 * The verdict run always ends with a self-check: it drops, duplicates,
 * swaps and corrupts one delivery of a real subscriber in memory (one after
 * its last timeline reset), appends a delivery of an abandoned row and a
 * timeline reset above every restored head, and requires each mutation to
 * be reported; on an ended subscriber it adds a delivery above the end
 * (must count as past_end) and removes the final answer (must count as
 * unended).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include "logpos.h"			/* the bridge's fingerprint (bridge/logpos.c) */

#define MAX_SUBS 512
#define MAX_PATTERNS 16
#define MAX_MARKERS 100000

/* ---------------------------------------------------------------- rows */

typedef struct row {
	int64_t		id;
	char	   *channel;
	char	   *event;			/* "message" when NULL in the table */
	bool		is_close;
	size_t		len;			/* of the LF-normalised payload */
	char		md5[33];
	uint64_t	tag;			/* packed p/t/e, 0 = untagged */
} row;

static row *rows;
static size_t n_rows;

/* A subscription-change marker of torture.shadow: a definition by position. */
typedef struct marker {
	int64_t		id;
	int64_t		sid;
	int			n_patterns;
	char	   *patterns[MAX_PATTERNS];
	char	   *filter;			/* compact JSON */
	bool		active;
	bool		closed;			/* state "closed" (else "dropped" when !active) */
	bool	   *match;			/* filter bitmap, on first use */
} marker;

static marker *markers;
static size_t n_markers;
static int64_t pruned_through;

/* Every value pruned_through has had (DIR/prune.log), 0 included. */
static int64_t *prune_hist;
static size_t n_prune_hist;

static void
load_prune_history(const char *d)
{
	char		p[4096], line[256];
	FILE	   *f;

	snprintf(p, sizeof p, "%s/prune.log", d);
	prune_hist = malloc(sizeof(int64_t) * 4096);
	prune_hist[n_prune_hist++] = 0;
	f = fopen(p, "r");
	while (f && fgets(line, sizeof line, f) && n_prune_hist < 4096)
		if (strncmp(line, "pruned_through=", 15) == 0)
			prune_hist[n_prune_hist++] = atoll(line + 15);
	if (f)
		fclose(f);
}

static bool
was_pruned_through(int64_t v)
{
	for (size_t i = 0; i < n_prune_hist; i++)
		if (prune_hist[i] == v)
			return true;
	return false;
}

/* ---------------------------------------------------------------- timelines */

/*
 * The restore and pitr faults abandon the rows above the restored head
 * (torture.sh).  DIR/timelines.log has "N kind head" per abandoned
 * timeline; DIR/dead-N.copy its rows above that head (COPY text: gen, id,
 * channel, event, data, created_us), captured under the publish lock.
 * torture.shadow holds the final timeline only (it is rewound with it).
 */
typedef struct dead_row {
	int			gen;
	row			r;
	uint32_t	fp;
} dead_row;

static dead_row *dead;			/* by id, then gen */
static size_t n_dead;
static int	n_timelines;
static int64_t max_tl_head = -1;	/* highest restored head */
static long dead_overlap;		/* captured rows that are final rows */

/* Every position of the final timeline (markers too), for fingerprints. */
static int64_t *pos_id, *pos_us;
static size_t n_pos;

/* The fingerprint part of a wire id "<id>-<8 hex>" or "<id>-0". */
static bool
parse_fp(const char *s, uint32_t *fp)
{
	const char *d = s ? strchr(s, '-') : NULL;

	*fp = 0;
	if (!d)
		return false;
	if (strcmp(d + 1, "0") == 0)
		return true;
	if (strlen(d + 1) != 8 || strspn(d + 1, "0123456789abcdef") != 8)
		return false;
	*fp = (uint32_t) strtoul(d + 1, NULL, 16);
	return true;
}

/* The fingerprint of the final timeline's row at id; 0 when it has none. */
static uint32_t
final_fp(int64_t id)
{
	size_t		lo = 0, hi = n_pos;

	while (lo < hi)
	{
		size_t		mid = (lo + hi) / 2;

		if (pos_id[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < n_pos && pos_id[lo] == id) ? logpos_fp(id, pos_us[lo]) : 0;
}

/* The dead row with this id and fingerprint, or -1. */
static ssize_t
dead_index(int64_t id, uint32_t fp)
{
	size_t		lo = 0, hi = n_dead;

	while (lo < hi)
	{
		size_t		mid = (lo + hi) / 2;

		if (dead[mid].r.id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n_dead && dead[lo].r.id == id; lo++)
		if (dead[lo].fp == fp)
			return (ssize_t) lo;
	return -1;
}

static void
load_timelines(const char *d)
{
	char		p[4096], line[256];
	FILE	   *f;

	snprintf(p, sizeof p, "%s/timelines.log", d);
	f = fopen(p, "r");
	while (f && fgets(line, sizeof line, f))
	{
		int			gen;
		char		kind[32];
		long long	head;

		if (sscanf(line, "%d %31s %lld", &gen, kind, &head) == 3)
		{
			n_timelines++;
			if (head > max_tl_head)
				max_tl_head = head;
		}
	}
	if (f)
		fclose(f);
}

static PGconn *conn;

static PGresult *must(PGresult *r, const char *what);
static size_t normalise(const char *in, size_t n, char *out);
static void md5_hex(const unsigned char *p, size_t n, char out[33]);
static uint64_t find_tag(const char *d);

/* The final timeline's positions, and the dead rows of DIR/dead-*.copy. */
static void
load_dead(const char *d)
{
	char		pat[4096];
	glob_t		g;
	PGresult   *r;
	char	   *norm = NULL;
	size_t		norm_cap = 0;

	r = must(PQexec(conn, "SELECT id, (extract(epoch FROM created_at) * 1000000)::bigint "
					"FROM torture.shadow ORDER BY id"), "positions");
	n_pos = (size_t) PQntuples(r);
	pos_id = malloc((n_pos + 1) * sizeof(int64_t));
	pos_us = malloc((n_pos + 1) * sizeof(int64_t));
	for (size_t i = 0; i < n_pos; i++)
	{
		pos_id[i] = atoll(PQgetvalue(r, (int) i, 0));
		pos_us[i] = atoll(PQgetvalue(r, (int) i, 1));
	}
	PQclear(r);

	PQclear(must(PQexec(conn, "CREATE TEMP TABLE torture_dead (gen int, id bigint, channel text, "
						"event text, data text, created_us bigint)"), "dead table"));
	snprintf(pat, sizeof pat, "%s/dead-*.copy", d);
	if (glob(pat, 0, NULL, &g) == 0)
	{
		for (size_t i = 0; i < g.gl_pathc; i++)
		{
			FILE	   *f = fopen(g.gl_pathv[i], "r");
			char		buf[65536];
			size_t		n;

			r = PQexec(conn, "COPY torture_dead FROM STDIN");
			if (!f || PQresultStatus(r) != PGRES_COPY_IN)
			{
				fprintf(stderr, "verify: cannot load %s: %s", g.gl_pathv[i], PQerrorMessage(conn));
				exit(2);
			}
			PQclear(r);
			while ((n = fread(buf, 1, sizeof buf, f)) > 0)
				if (PQputCopyData(conn, buf, (int) n) != 1)
					break;
			fclose(f);
			if (PQputCopyEnd(conn, NULL) != 1)
			{
				fprintf(stderr, "verify: %s", PQerrorMessage(conn));
				exit(2);
			}
			while ((r = PQgetResult(conn)) != NULL)
			{
				if (PQresultStatus(r) != PGRES_COMMAND_OK)
				{
					fprintf(stderr, "verify: loading %s: %s", g.gl_pathv[i], PQerrorMessage(conn));
					exit(2);
				}
				PQclear(r);
			}
		}
		globfree(&g);
	}
	/* a captured row must not be a row of the final timeline (same commit) */
	r = must(PQexec(conn, "SELECT count(*) FROM torture_dead d JOIN torture.shadow s USING (id) "
					"WHERE (extract(epoch FROM s.created_at) * 1000000)::bigint = d.created_us"),
			 "overlap");
	dead_overlap = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	/* markers of dead timelines are never delivered nor expected */
	r = must(PQexec(conn, "SELECT gen, id, channel, event, data, created_us FROM torture_dead "
					"WHERE channel <> '$sub' ORDER BY id, gen"), "dead rows");
	n_dead = (size_t) PQntuples(r);
	dead = calloc(n_dead + 1, sizeof(dead_row));
	for (size_t i = 0; i < n_dead; i++)
	{
		dead_row   *w = &dead[i];
		const char *dt = PQgetvalue(r, (int) i, 4);
		size_t		dl = (size_t) PQgetlength(r, (int) i, 4);

		w->gen = atoi(PQgetvalue(r, (int) i, 0));
		w->r.id = atoll(PQgetvalue(r, (int) i, 1));
		w->r.channel = strdup(PQgetvalue(r, (int) i, 2));
		w->r.event = strdup(PQgetisnull(r, (int) i, 3) ? "message" : PQgetvalue(r, (int) i, 3));
		w->r.is_close = !PQgetisnull(r, (int) i, 3) && strcmp(w->r.event, "close") == 0;
		if (dl + 1 > norm_cap)
			norm = realloc(norm, norm_cap = dl + 1);
		w->r.len = normalise(dt, dl, norm);
		md5_hex((unsigned char *) norm, w->r.len, w->r.md5);
		w->r.tag = find_tag(dt);
		w->fp = logpos_fp(w->r.id, atoll(PQgetvalue(r, (int) i, 5)));
	}
	PQclear(r);
	free(norm);
}

static ssize_t
row_index(int64_t id)
{
	size_t		lo = 0, hi = n_rows;

	while (lo < hi)
	{
		size_t		mid = (lo + hi) / 2;

		if (rows[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < n_rows && rows[lo].id == id) ? (ssize_t) lo : -1;
}

static void
md5_hex(const unsigned char *p, size_t n, char out[33])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;

	EVP_Digest(p, n, d, &dl, EVP_md5(), NULL);
	for (unsigned i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/*
 * What a WHATWG client rebuilds from the frames: lines split on CRLF, CR or
 * LF and joined with LF.
 */
static size_t
normalise(const char *in, size_t n, char *out)
{
	size_t		o = 0;

	for (size_t i = 0; i < n; i++)
	{
		if (in[i] == '\r')
		{
			out[o++] = '\n';
			if (i + 1 < n && in[i + 1] == '\n')
				i++;
		}
		else
			out[o++] = in[i];
	}
	return o;
}

static uint64_t
pack_tag(long p, long t, long e)
{
	return ((uint64_t) p << 48) | ((uint64_t) t << 16) | (uint64_t) e | (1ULL << 63);
}

static uint64_t
find_tag(const char *d)
{
	const char *q = strstr(d, "@@p");
	long		p, t, e;
	int			used = 0;

	if (!q || sscanf(q, "@@p%ldt%lde%ld@@%n", &p, &t, &e, &used) != 3 || used == 0)
		return 0;
	return pack_tag(p, t, e);
}

static PGresult *
must(PGresult *r, const char *what)
{
	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "verify: %s: %s", what, PQerrorMessage(conn));
		exit(2);
	}
	return r;
}

static void
load_rows(void)
{
	PGresult   *r;
	size_t		cap = 1024;
	char	   *norm = NULL;
	size_t		norm_cap = 0;

	r = must(PQexec(conn, "SELECT pruned_through FROM sse_bridge.meta"), "meta");
	pruned_through = PQntuples(r) ? atoll(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);

	rows = malloc(cap * sizeof(row));
	/* rows on "$sub" mark subscription changes: never delivered, never expected */
	if (!PQsendQuery(conn, "SELECT id, channel, event, data FROM torture.shadow "
					 "WHERE channel <> '$sub' ORDER BY id") ||
		!PQsetSingleRowMode(conn))
	{
		fprintf(stderr, "verify: %s", PQerrorMessage(conn));
		exit(2);
	}
	while ((r = PQgetResult(conn)) != NULL)
	{
		if (PQresultStatus(r) == PGRES_SINGLE_TUPLE)
		{
			const char *d = PQgetvalue(r, 0, 3);
			size_t		dl = (size_t) PQgetlength(r, 0, 3);
			row		   *w;

			if (n_rows == cap)
				rows = realloc(rows, (cap *= 2) * sizeof(row));
			w = &rows[n_rows++];
			w->id = atoll(PQgetvalue(r, 0, 0));
			w->channel = strdup(PQgetvalue(r, 0, 1));
			w->event = strdup(PQgetisnull(r, 0, 2) ? "message" : PQgetvalue(r, 0, 2));
			w->is_close = !PQgetisnull(r, 0, 2) && strcmp(w->event, "close") == 0;
			if (dl + 1 > norm_cap)
				norm = realloc(norm, norm_cap = dl + 1);
			w->len = normalise(d, dl, norm);
			md5_hex((unsigned char *) norm, w->len, w->md5);
			w->tag = find_tag(d);
		}
		else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "verify: reading torture.shadow: %s", PQerrorMessage(conn));
			exit(2);
		}
		PQclear(r);
	}
	free(norm);
}

/* ---------------------------------------------------------------- matching */

static bool
seg_match(char **p, int np, char **c, int nc)
{
	if (np == 0)
		return nc == 0;
	if (strcmp(p[0], "#") == 0)
	{
		for (int k = 0; k <= nc; k++)
			if (seg_match(p + 1, np - 1, c + k, nc - k))
				return true;
		return false;
	}
	if (nc == 0)
		return false;
	if (strcmp(p[0], "*") != 0 && strcmp(p[0], c[0]) != 0)
		return false;
	return seg_match(p + 1, np - 1, c + 1, nc - 1);
}

static int
split_dots(char *s, char **out, int max)
{
	int			n = 0;
	char	   *save = NULL;

	for (char *t = strtok_r(s, ".", &save); t && n < max; t = strtok_r(NULL, ".", &save))
		out[n++] = t;
	return n;
}

static bool
pattern_match(const char *pattern, const char *channel)
{
	char		pb[512], cb[512];
	char	   *ps[128], *cs[128];

	snprintf(pb, sizeof pb, "%s", pattern);
	snprintf(cb, sizeof cb, "%s", channel);
	return seg_match(ps, split_dots(pb, ps, 128), cs, split_dots(cb, cs, 128));
}

/* Filters: one row bitmap per distinct filter, computed by PostgreSQL. */
typedef struct filter_set {
	char	   *filter;
	bool	   *match;			/* by row index */
} filter_set;

static filter_set filters[MAX_SUBS * 4];
static int	n_filters;

static bool *
filter_bitmap(const char *filter)
{
	for (int i = 0; i < n_filters; i++)
		if (strcmp(filters[i].filter, filter) == 0)
			return filters[i].match;

	const char *vals[1] = {filter};

	if (n_filters == (int) (sizeof(filters) / sizeof(filters[0])))
	{
		fprintf(stderr, "verify: too many distinct filters\n");
		exit(2);
	}
	PGresult   *r = must(PQexecParams(conn,
									  "SELECT id FROM torture_parsed "
									  "WHERE $1::jsonb = '{}'::jsonb "
									  "   OR (jsonb_typeof(j) = 'object' AND j @> $1::jsonb) "
									  "ORDER BY id",
									  1, NULL, vals, NULL, NULL, 0), "filter");
	filter_set *f = &filters[n_filters++];

	f->filter = strdup(filter);
	f->match = calloc(n_rows ? n_rows : 1, sizeof(bool));
	for (int i = 0; i < PQntuples(r); i++)
	{
		ssize_t		k = row_index(atoll(PQgetvalue(r, i, 0)));

		if (k >= 0)
			f->match[k] = true;
	}
	PQclear(r);
	return f->match;
}

/* ---------------------------------------------------------------- subscribers */

typedef enum rec_kind {
	R_EVENT, R_READY, R_RESET, R_FINAL, R_CUT, R_END, R_CONNECT, R_MARK
} rec_kind;

typedef struct rec {
	rec_kind	kind;
	int64_t		id;				/* -1 when not a non-negative integer */
	char	   *ev;
	size_t		len;
	char		md5[33];
	char	   *data;			/* ready/reset data, final body */
	int			status;
	int			port;			/* R_CONNECT */
	uint32_t	fp;				/* fingerprint part of the id ("<id>-<fp>") */
	bool		has_fp;			/* the id had one (0 for "<id>-0") */
} rec;

typedef struct range {
	int64_t		from, through;	/* lost ids from..through, inclusive */
} range;

typedef struct subscriber {
	char		name[128];
	char		client[16];
	char	   *patterns[MAX_PATTERNS];
	int			n_patterns;
	char	   *filter;
	int64_t		sid;			/* subscription's sid, 0 = ad hoc */
	char		start_spec[64];
	int64_t		start;			/* -1 = not known yet */
	bool	   *expected;		/* by row index; NULL until start known */
	size_t		n_expected;
	int64_t		last_expected;
	/* the stream's end, found by compute_expected: -1 = none */
	int64_t		end_id;			/* its close event or dropped marker */
	int			end_status;		/* the final answer it must get: 204 or 404 */
	bool		expire;			/* flags end=expire: a prefix may do (header) */

	FILE	   *log;
	rec		   *recs;
	size_t		n_recs, cap_recs;
	char	   *partial;		/* incomplete last line */
} subscriber;

static subscriber subs[MAX_SUBS];
static int	n_subs;
static const char *dir = ".";
static long bad_lines;

static int64_t
parse_id(const char *s)
{
	char	   *end;

	if (!s || !*s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	long long	v = strtoll(s, &end, 10);

	/* a position "<id>-<fingerprint>": the id is its numeric part */
	if (*end == '-') {
		size_t		n = strlen(end + 1);

		if (!((n == 1 && end[1] == '0') ||
			  (n == 8 && strspn(end + 1, "0123456789abcdef") == 8)))
			return -1;
		end += n + 1;
	}
	return (*end || errno) ? -1 : (int64_t) v;
}

static void
add_rec(subscriber *s, const char *line)
{
	json_error_t err;
	json_t	   *j = json_loads(line, 0, &err);
	const char *k;
	rec			r = {.id = -1};

	if (!j || !(k = json_string_value(json_object_get(j, "k"))))
	{
		bad_lines++;
		fprintf(stderr, "verify: %s: unreadable log line: %.200s\n", s->name, line);
		json_decref(j);
		return;
	}
	switch (k[0])
	{
		case 'e':
			r.kind = R_EVENT;
			r.id = parse_id(json_string_value(json_object_get(j, "id")));
			r.has_fp = parse_fp(json_string_value(json_object_get(j, "id")), &r.fp);
			r.ev = strdup(json_string_value(json_object_get(j, "ev")) ?: "");
			r.len = (size_t) json_integer_value(json_object_get(j, "len"));
			snprintf(r.md5, sizeof r.md5, "%s", json_string_value(json_object_get(j, "md5")) ?: "");
			break;
		case 'y':
		case 'r':
			r.kind = k[0] == 'y' ? R_READY : R_RESET;
			r.id = parse_id(json_string_value(json_object_get(j, "id")));
			r.has_fp = parse_fp(json_string_value(json_object_get(j, "id")), &r.fp);
			r.data = strdup(json_string_value(json_object_get(j, "data")) ?: "");
			break;
		case 'f':
			r.kind = R_FINAL;
			r.status = (int) json_integer_value(json_object_get(j, "status"));
			r.data = strdup(json_string_value(json_object_get(j, "body")) ?: "");
			break;
		case 'x':
			r.kind = strcmp(json_string_value(json_object_get(j, "why")) ?: "", "cut") == 0 ? R_CUT : R_END;
			break;
		case 'c':
			r.kind = R_CONNECT;
			r.port = (int) json_integer_value(json_object_get(j, "port"));
			break;
		case 'm':
			r.kind = R_MARK;
			break;
		default:
			json_decref(j);
			return;				/* status lines are informational */
	}
	json_decref(j);
	if (s->n_recs == s->cap_recs)
		s->recs = realloc(s->recs, (s->cap_recs = s->cap_recs ? s->cap_recs * 2 : 256) * sizeof(rec));
	s->recs[s->n_recs++] = r;
}

/* Read whatever complete lines were appended since the last call. */
static void
read_log(subscriber *s)
{
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		n;

	if (!s->log)
	{
		char		p[4096];

		snprintf(p, sizeof p, "%s/%s.log", dir, s->name);
		s->log = fopen(p, "r");
		if (!s->log)
			return;
	}
	clearerr(s->log);
	while ((n = getline(&line, &cap, s->log)) > 0)
	{
		if (line[n - 1] != '\n')
		{
			/* a line still being written: keep it for the next read */
			size_t		old = s->partial ? strlen(s->partial) : 0;

			s->partial = realloc(s->partial, old + (size_t) n + 1);
			memcpy(s->partial + old, line, (size_t) n + 1);
			break;
		}
		line[n - 1] = 0;
		if (s->partial)
		{
			size_t		old = strlen(s->partial);

			s->partial = realloc(s->partial, old + (size_t) n + 1);
			memcpy(s->partial + old, line, (size_t) n);
			add_rec(s, s->partial);
			free(s->partial);
			s->partial = NULL;
		}
		else
			add_rec(s, line);
	}
	free(line);
}

/* Every "$sub" marker of the shadow, in id order. */
static void
load_markers(void)
{
	PGresult   *r = must(PQexec(conn, "SELECT id, data FROM torture.shadow "
								"WHERE channel = '$sub' ORDER BY id"), "markers");

	markers = calloc((size_t) PQntuples(r) + 1, sizeof(marker));
	for (int i = 0; i < PQntuples(r) && n_markers < MAX_MARKERS; i++)
	{
		json_t	   *j = json_loads(PQgetvalue(r, i, 1), 0, NULL);
		json_t	   *ch = json_object_get(j, "channels");
		marker	   *m = &markers[n_markers];

		if (!json_is_object(j) || !json_is_array(ch))
		{
			fprintf(stderr, "verify: marker %s is not a definition\n", PQgetvalue(r, i, 0));
			exit(2);
		}
		m->id = atoll(PQgetvalue(r, i, 0));
		m->sid = json_integer_value(json_object_get(j, "sid"));
		for (size_t k = 0; k < json_array_size(ch) && m->n_patterns < MAX_PATTERNS; k++)
			m->patterns[m->n_patterns++] = strdup(json_string_value(json_array_get(ch, k)));
		m->filter = json_dumps(json_object_get(j, "filter"), JSON_COMPACT);
		m->active = strcmp(json_string_value(json_object_get(j, "state")) ?: "", "active") == 0;
		m->closed = strcmp(json_string_value(json_object_get(j, "state")) ?: "", "closed") == 0;
		n_markers++;
		json_decref(j);
	}
	PQclear(r);
}

static bool
load_config(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		line[8192];

	if (!f)
	{
		perror(path);
		return false;
	}
	while (fgets(line, sizeof line, f) && n_subs < MAX_SUBS)
	{
		char	   *fld[10];
		int			nf = 0;
		char	   *save = NULL;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[strcspn(line, "\n")] = 0;
		for (char *t = strtok_r(line, "\t", &save); t && nf < 10; t = strtok_r(NULL, "\t", &save))
			fld[nf++] = t;
		if (nf < 9)
		{
			fprintf(stderr, "verify: bad config line\n");
			return false;
		}
		subscriber *s = &subs[n_subs++];
		char	   *ps = NULL;

		snprintf(s->name, sizeof s->name, "%s", fld[0]);
		snprintf(s->client, sizeof s->client, "%s", fld[1]);
		for (char *t = strtok_r(fld[6], ",", &ps); t && s->n_patterns < MAX_PATTERNS; t = strtok_r(NULL, ",", &ps))
			s->patterns[s->n_patterns++] = strdup(t);
		s->filter = strdup(fld[7]);
		s->expire = strstr(fld[5], "end=expire") != NULL;
		s->end_id = -1;
		if (strncmp(fld[2], "/events/", 8) == 0 && strstr(fld[5], "sid="))
			s->sid = atoll(strstr(fld[5], "sid=") + 4);	/* its row may be gone */
		else if (strncmp(fld[2], "/events/", 8) == 0)
		{
			const char *vals[1] = {fld[2] + 8};
			PGresult   *r = must(PQexecParams(conn, "SELECT sid FROM sse_bridge.subscriptions "
											  "WHERE id = $1::uuid", 1, NULL, vals, NULL, NULL, 0),
								 "sid");

			s->sid = PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : -1;
			PQclear(r);
			if (s->sid < 0)
			{
				fprintf(stderr, "verify: %s: subscription %s not found\n", s->name, fld[2] + 8);
				return false;
			}
		}
		snprintf(s->start_spec, sizeof s->start_spec, "%s", fld[8]);
		s->start = strcmp(fld[8], "head") == 0 ? -1 : parse_id(fld[8]);
		if (strcmp(fld[8], "head") != 0 && s->start < 0)
		{
			fprintf(stderr, "verify: %s: bad start %s\n", s->name, fld[8]);
			return false;
		}
	}
	fclose(f);
	return true;
}

/* The head id announced by a ready event: data {"head": N, ...} or its id. */
static int64_t
ready_head(const rec *r)
{
	json_t	   *j = json_loads(r->data, 0, NULL);
	json_t	   *h = j ? json_object_get(j, "head") : NULL;
	int64_t		v = -1;

	if (json_is_integer(h))
		v = json_integer_value(h);
	else if (json_is_string(h))
		v = parse_id(json_string_value(h));
	json_decref(j);
	if (v < 0)
		v = r->id;
	return v;
}

/*
 * The ids a reset says were lost, as an inclusive range.  Accepted shapes:
 * {"from":A,"to":B} / {"first":A,"last":B} / {"lost_from":A,"lost_through":B}
 * / {"after":A-1,"through":B}; integers or digit strings.
 */
static int64_t
json_id(json_t *o, const char *key)
{
	json_t	   *v = json_object_get(o, key);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return parse_id(json_string_value(v));
	return -1;
}

static bool
reset_range(const rec *r, range *out)
{
	static const char *pairs[][2] = {
		{"from", "to"}, {"first", "last"}, {"lost_from", "lost_through"},
		{"lost_from", "lost_to"}, {"from", "through"},
	};
	json_t	   *j = json_loads(r->data, 0, NULL);
	bool		ok = false;

	for (size_t i = 0; j && !ok && i < sizeof pairs / sizeof pairs[0]; i++)
	{
		int64_t		a = json_id(j, pairs[i][0]), b = json_id(j, pairs[i][1]);

		if (a >= 0 && b >= 0)
		{
			out->from = a;
			out->through = b;
			ok = true;
		}
	}
	if (j && !ok)
	{
		int64_t		a = json_id(j, "after"), b = json_id(j, "through");

		if (a >= 0 && b >= 0)
		{
			out->from = a + 1;
			out->through = b;
			ok = true;
		}
	}
	json_decref(j);
	return ok;
}

/* A reset of another timeline: its data has "timeline":true. */
static bool
is_timeline_reset(const rec *r)
{
	json_t	   *j = r->kind == R_RESET ? json_loads(r->data, 0, NULL) : NULL;
	bool		tl = j && json_is_true(json_object_get(j, "timeline"));

	json_decref(j);
	return tl;
}

/*
 * An ad hoc stream that a timeline reset re-bases below its start continues
 * after the reset's position: from there on it expects every matching row.
 * (A subscription never starts before its start_id.)
 */
static void
rebase_start(subscriber *s)
{
	range		rg;

	if (s->sid != 0 || s->start < 0)
		return;
	for (size_t i = 0; i < s->n_recs; i++)
		if (is_timeline_reset(&s->recs[i]) && reset_range(&s->recs[i], &rg) &&
			rg.from >= 1 && rg.from - 1 < s->start)
		{
			s->start = rg.from - 1;
			free(s->expected);
			s->expected = NULL;
			s->n_expected = 0;
		}
}

/* Fix the start and the expected set once they can be known. */
static void
compute_expected(subscriber *s)
{
	rebase_start(s);
	if (s->expected)
		return;
	if (s->start < 0)
	{
		for (size_t i = 0; i < s->n_recs; i++)
			if (s->recs[i].kind == R_READY)
			{
				s->start = ready_head(&s->recs[i]);
				break;
			}
		if (s->start < 0)
			return;
		rebase_start(s);
	}
	bool	   *fm = filter_bitmap(s->filter);
	char	  **pats = s->patterns;
	int			npats = s->n_patterns;
	bool		active = true;
	size_t		mi = 0;

	s->expected = calloc(n_rows ? n_rows : 1, sizeof(bool));
	s->last_expected = -1;
	for (size_t i = 0; i < n_rows; i++)
	{
		row		   *w = &rows[i];
		bool		m = false, literal = false;

		/* the definition valid at this row: the newest marker below it */
		for (; s->sid > 0 && mi < n_markers && markers[mi].id < w->id; mi++)
		{
			marker	   *mk = &markers[mi];

			if (mk->sid != s->sid)
				continue;
			if (!mk->match)
				mk->match = filter_bitmap(mk->filter);
			pats = mk->patterns;
			npats = mk->n_patterns;
			fm = mk->match;
			active = mk->active;
			if (!active && mk->id > s->start && s->end_id < 0)
			{
				/* unsubscribed, expired or closed: nothing after this */
				s->end_id = mk->id;
				s->end_status = mk->closed ? 204 : 404;
			}
		}
		if (s->end_id >= 0)
			break;
		if (w->id <= s->start || !active)
			continue;
		for (int k = 0; k < npats; k++)
		{
			if (pattern_match(pats[k], w->channel))
				m = true;
			if (strcmp(pats[k], w->channel) == 0)
				literal = true;
		}
		if (!m || !(fm[i] || (w->is_close && literal)))
			continue;
		s->expected[i] = true;
		s->n_expected++;
		s->last_expected = w->id;
		if (w->is_close && literal)
		{
			/* a close on a channel it names literally ends the stream */
			s->end_id = w->id;
			s->end_status = 204;
			break;
		}
	}
	/* an end after the last row */
	for (; s->sid > 0 && s->end_id < 0 && mi < n_markers; mi++)
		if (markers[mi].sid == s->sid && !markers[mi].active && markers[mi].id > s->start)
		{
			s->end_id = markers[mi].id;
			s->end_status = markers[mi].closed ? 204 : 404;
		}
}

/* ---------------------------------------------------------------- verdict */

typedef struct tally {
	long		deliveries, lost, duplicated, reordered, corrupted, unexpected;
	long		resets, bad_resets, reset_accounted, finals, cuts, connects;
	long		no_start, switches, refused;
	long		ends, past_end, unended, expiry_cut;
	long		tl_resets, voided, dead_deliveries, dead;
} tally;

static bool
covered(const range *rs, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (id >= rs[i].from && id <= rs[i].through)
			return true;
	return false;
}

static int64_t
max_pruned(void)
{
	int64_t		m = 0;

	for (size_t i = 0; i < n_prune_hist; i++)
		if (prune_hist[i] > m)
			m = prune_hist[i];
	return m;
}

/*
 * A timeline reset, id F-fp(F), {"lost_from":F+1,...,"timeline":true}: the
 * stream continues after F on the current timeline, and every delivery the
 * subscriber holds with an id from F+1 on is void (it is expected again, a
 * dead one no longer counts).  Prune resets above F no longer excuse
 * anything.  It is justified only after a real timeline change, and F must
 * be a position of the final timeline: its row (by fingerprint) at or below
 * a restored head, or a position without a row at or below a prune mark.
 * An unjustified one is a bad reset and voids nothing.
 */
static void
timeline_reset(subscriber *s, const rec *r, tally *t, bool *seen, bool *dheld,
			   range *rs, size_t n_rs, int64_t *maxid, bool quiet, int *shown)
{
	range		rg;
	bool		ok = reset_range(r, &rg);
	int64_t		f = ok ? rg.from - 1 : -1;

	ok = ok && n_timelines > 0 && f >= 0 && f == r->id && r->has_fp;
	if (ok && r->fp != 0)
		ok = f <= max_tl_head && final_fp(f) == r->fp;
	else if (ok)
		ok = f == 0 || (f <= max_pruned() && (was_pruned_through(f) || f <= max_tl_head));
	if (!ok)
	{
		t->bad_resets++;
		if (!quiet && (*shown)++ < 8)
			printf("  %s: timeline reset %" PRId64 "-%08x %s is not justified by a restore or recovery "
				   "(%d timeline change(s), highest restored head %" PRId64 ")\n",
				   s->name, r->id, r->fp, r->data, n_timelines, max_tl_head);
		return;
	}
	for (size_t k = 0; k < n_rows; k++)
		if (rows[k].id > f && seen[k])
		{
			seen[k] = false;
			t->voided++;
		}
	for (size_t k = 0; k < n_dead; k++)
		if (dead[k].r.id > f && dheld[k])
		{
			dheld[k] = false;
			t->voided++;
		}
	for (size_t i = 0; i < n_rs; i++)
	{
		if (rs[i].from > f)
		{
			rs[i].from = 1;
			rs[i].through = 0;
		}
		else if (rs[i].through > f)
			rs[i].through = f;
	}
	if (*maxid > f)
		*maxid = f;
}

/*
 * Compare one subscriber's records with its expected set.  quiet: no
 * per-id report (used by the self-check).
 */
static void
judge(subscriber *s, const rec *recs, size_t n, tally *t, bool quiet)
{
	bool	   *seen = calloc(n_rows ? n_rows : 1, sizeof(bool));
	bool	   *dheld = calloc(n_dead + 1, sizeof(bool));	/* dead rows held */
	range	   *rs = calloc(n + 1, sizeof(range));
	size_t		n_rs = 0;
	int64_t		maxid = -1;
	int			shown = 0;
	int			last_port = 0;
	bool		ended = false;

#define SHOW(...) do { if (!quiet && shown++ < 8) { printf("  %s: ", s->name); printf(__VA_ARGS__); printf("\n"); } } while (0)

	if (!s->expected)
	{
		t->no_start++;
		if (!quiet)
			printf("  %s: no start point (never got ready)\n", s->name);
		free(seen);
		free(dheld);
		free(rs);
		return;
	}
	for (size_t i = 0; i < n; i++)
	{
		const rec  *r = &recs[i];

		switch (r->kind)
		{
			case R_RESET:
				if (is_timeline_reset(r))
				{
					t->tl_resets++;
					timeline_reset(s, r, t, seen, dheld, rs, n_rs, &maxid, quiet, &shown);
					continue;
				}
				t->resets++;
				if (!reset_range(r, &rs[n_rs]))
				{
					t->bad_resets++;
					SHOW("reset data not understood: %s", r->data);
				}
				else if (rs[n_rs].through > max_pruned() ||
						 !was_pruned_through(rs[n_rs].through) ||
						 rs[n_rs].from > rs[n_rs].through)
				{
					t->bad_resets++;
					SHOW("reset claims ids %" PRId64 "..%" PRId64 " but pruned_through was never %" PRId64
						 " (now %" PRId64 ")", rs[n_rs].from, rs[n_rs].through, rs[n_rs].through,
						 pruned_through);
				}
				else
					n_rs++;
				continue;
			case R_FINAL:
				if (r->status == 503)
				{
					/*
					 * Refused while the database was down or stalled (or over
					 * the client limit): the client retries, and what it gets
					 * afterwards is judged like any reconnection.
					 */
					t->refused++;
					continue;
				}
				if (s->end_id >= 0 && r->status == s->end_status && !ended)
				{
					/* the answer after its end: it stops reconnecting */
					t->ends++;
					ended = true;
					continue;
				}
				t->finals++;
				SHOW("final answer %d: %.200s", r->status, r->data);
				continue;
			case R_CUT:
				t->cuts++;
				continue;
			case R_CONNECT:
				t->connects++;
				if (last_port && r->port != last_port)
					t->switches++;
				last_port = r->port;
				continue;
			case R_EVENT:
				break;
			default:
				continue;
		}
		t->deliveries++;
		ssize_t		k = r->id >= 0 ? row_index(r->id) : -1;

		if (r->has_fp && r->id >= 0 && (k < 0 || r->fp != final_fp(r->id)))
		{
			/* not the final timeline's row at this id: an abandoned one? */
			ssize_t		d = dead_index(r->id, r->fp);

			if (d >= 0)
			{
				t->dead_deliveries++;
				if (dheld[d])
				{
					t->duplicated++;
					SHOW("id %" PRId64 " (abandoned timeline %d) received again", r->id, dead[d].gen);
					continue;
				}
				dheld[d] = true;
				if (r->id < maxid)
				{
					t->reordered++;
					SHOW("id %" PRId64 " (abandoned timeline %d) received after id %" PRId64,
						 r->id, dead[d].gen, maxid);
				}
				if (r->id > maxid)
					maxid = r->id;
				if (strcmp(r->ev, dead[d].r.event) != 0 || r->len != dead[d].r.len ||
					strcmp(r->md5, dead[d].r.md5) != 0)
				{
					t->corrupted++;
					SHOW("id %" PRId64 " of abandoned timeline %d differs from its row", r->id, dead[d].gen);
				}
				continue;
			}
			if (k >= 0)
			{
				t->corrupted++;
				SHOW("id %" PRId64 " has fingerprint %08x: neither the row (%08x) nor an abandoned one",
					 r->id, r->fp, final_fp(r->id));
				continue;
			}
		}
		/* a row of the final timeline (abandoned ones were judged above) */
		if (s->end_id >= 0 && (r->id > s->end_id || ended))
		{
			t->past_end++;
			SHOW("id %" PRId64 " (%s) received after its end at %" PRId64 "%s", r->id, r->ev,
				 s->end_id, ended ? " and its final answer" : "");
			continue;
		}

		if (k < 0 || !s->expected[k])
		{
			if (k >= 0 && seen[k])
			{
				t->duplicated++;
				SHOW("id %" PRId64 " received again", r->id);
				continue;
			}
			t->unexpected++;
			if (k >= 0)
				seen[k] = true;
			SHOW("id %s%" PRId64 " (%s) is not in the expected set%s", r->id < 0 ? "?" : "",
				 r->id, r->ev, k < 0 ? " (no such committed row)" : "");
			continue;
		}
		if (seen[k])
		{
			t->duplicated++;
			SHOW("id %" PRId64 " received again", r->id);
			continue;
		}
		seen[k] = true;
		if (r->id < maxid)
		{
			t->reordered++;
			SHOW("id %" PRId64 " received after id %" PRId64, r->id, maxid);
		}
		if (r->id > maxid)
			maxid = r->id;
		if (strcmp(r->ev, rows[k].event) != 0 || r->len != rows[k].len ||
			strcmp(r->md5, rows[k].md5) != 0)
		{
			t->corrupted++;
			SHOW("id %" PRId64 " differs: got event %s len %zu md5 %s, row has %s %zu %s",
				 r->id, r->ev, r->len, r->md5, rows[k].event, rows[k].len, rows[k].md5);
		}
	}
	if (s->end_id >= 0 && !ended)
	{
		t->unended++;
		SHOW("ended at %" PRId64 " but never got the final answer %d", s->end_id, s->end_status);
	}
	/* expected but never received */
	int64_t		run_from = -1, run_to = -1;
	long		run_n = 0;
	/* expired: the tail after the last id received may be missing */
	bool		prefix = s->expire && s->end_status == 404;

	for (size_t i = 0; i <= n_rows; i++)
	{
		bool		miss = false;

		if (i < n_rows && s->expected[i] && !seen[i] && prefix && rows[i].id > maxid)
			t->expiry_cut++;
		else if (i < n_rows && s->expected[i] && !seen[i])
		{
			if (covered(rs, n_rs, rows[i].id))
				t->reset_accounted++;
			else
			{
				t->lost++;
				miss = true;
			}
		}
		if (miss)
		{
			if (run_n == 0)
				run_from = rows[i].id;
			run_to = rows[i].id;
			run_n++;
		}
		else if (run_n > 0 && (i == n_rows || (s->expected[i] && seen[i])))
		{
			SHOW("lost %ld event(s), ids %" PRId64 "..%" PRId64, run_n, run_from, run_to);
			run_n = 0;
		}
	}
	/* rows of an abandoned timeline still held: never voided by a reset */
	for (size_t k = 0; k < n_dead; k++)
		if (dheld[k])
		{
			t->dead++;
			SHOW("id %" PRId64 " of abandoned timeline %d was delivered and never voided by a timeline reset",
				 dead[k].r.id, dead[k].gen);
		}
#undef SHOW
	free(seen);
	free(dheld);
	free(rs);
}

static bool need_final_ready;

static bool
reached(subscriber *s)
{
	compute_expected(s);
	if (!s->expected)
		return false;
	/*
	 * A stream that has ended (close, unsubscribe, expiry) gets no fresh
	 * ready: it is done once it got its final answer.
	 */
	if (s->end_id >= 0)
	{
		for (size_t i = 0; i < s->n_recs; i++)
			if (s->recs[i].kind == R_FINAL && s->recs[i].status < 500)
				return true;
		return false;
	}
	/* after the drain marker the harness restarts both bridges: wait for
	 * a fresh ready, so the final replay is part of what is judged */
	bool		ready_after_mark = true;

	for (size_t i = 0; i < s->n_recs; i++)
	{
		if (s->recs[i].kind == R_MARK)
			ready_after_mark = !need_final_ready;
		else if (s->recs[i].kind == R_READY)
			ready_after_mark = true;
	}
	if (!ready_after_mark)
		return false;
	if (s->last_expected < 0)
		return true;
	int64_t		void_from = INT64_MAX;	/* lowest lost_from of a later timeline reset */

	for (size_t i = s->n_recs; i-- > 0;)
	{
		rec		   *r = &s->recs[i];
		range		rg;

		if (is_timeline_reset(r))
		{
			if (reset_range(r, &rg) && rg.from < void_from)
				void_from = rg.from;
			continue;
		}
		if (r->kind == R_EVENT && r->id >= s->last_expected && r->id < void_from &&
			(!r->has_fp || r->fp == final_fp(r->id)))
			return true;
		if (r->kind == R_RESET && reset_range(r, &rg) &&
			(rg.through < void_from ? rg.through : void_from - 1) >= s->last_expected)
			return true;
		if (r->kind == R_FINAL && r->status < 500)
			return true;		/* it will never get more */
	}
	return false;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
wait_drain(double seconds)
{
	double		deadline = now_s() + seconds;
	struct timespec tick = {.tv_nsec = 200 * 1000000L};

	for (;;)
	{
		int			pending = 0;

		for (int i = 0; i < n_subs; i++)
		{
			read_log(&subs[i]);
			if (!reached(&subs[i]))
				pending++;
		}
		if (pending == 0)
		{
			printf("drain: all %d subscribers reached their last expected id\n", n_subs);
			return 0;
		}
		if (now_s() >= deadline)
		{
			printf("drain: %d subscriber(s) did not reach their last expected id:", pending);
			for (int i = 0; i < n_subs; i++)
				if (!reached(&subs[i]))
					printf(" %s(want %" PRId64 ")", subs[i].name, subs[i].last_expected);
			printf("\n");
			return 1;
		}
		nanosleep(&tick, NULL);	/* polling interval of the drain wait */
	}
}

/* ---------------------------------------------------------------- publishers */

typedef struct tagref {
	uint64_t	tag;
	size_t		row;
} tagref;

static int
cmp_tag(const void *a, const void *b)
{
	const tagref *x = a, *y = b;

	return x->tag < y->tag ? -1 : x->tag > y->tag;
}

static tagref *tags;
static size_t n_tags;

/* The row of tag in t[0..n) (sorted by tag), or -1. */
static ssize_t
tag_find(const tagref *t, size_t n, uint64_t tag)
{
	size_t		lo = 0, hi = n;

	while (lo < hi)
	{
		size_t		mid = (lo + hi) / 2;

		if (t[mid].tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < n && t[lo].tag == tag) ? (ssize_t) t[lo].row : -1;
}

static ssize_t
tag_row(uint64_t tag)
{
	return tag_find(tags, n_tags, tag);
}

/* Tags of the rows of abandoned timelines (index into dead[]). */
static tagref *dtags;
static size_t n_dtags;

static ssize_t
dead_tag_row(uint64_t tag)
{
	return tag_find(dtags, n_dtags, tag);
}

static int	pub_shown;

#define PSHOW(...) do { if (pub_shown++ < 20) printf(__VA_ARGS__); } while (0)

/* Returns the number of problems found. */
static long
check_publishers(void)
{
	glob_t		g;
	char		pat[4096];
	long		committed_txns = 0, committed_events = 0, missing = 0, leaked = 0,
				partial = 0, noncontig = 0, misordered = 0, dup_tags = 0, untagged = 0,
				unknown_txns = 0, rolled_back_txns = 0;
	long		dead_committed = 0, split = 0;
	bool	   *claimed = calloc(n_rows ? n_rows : 1, sizeof(bool));
	bool	   *dclaimed = calloc(n_dead + 1, sizeof(bool));

	tags = malloc((n_rows ? n_rows : 1) * sizeof(tagref));
	for (size_t i = 0; i < n_rows; i++)
		if (rows[i].tag)
			tags[n_tags++] = (tagref) {rows[i].tag, i};
		else if (!rows[i].is_close)	/* closes come from the harness */
			untagged++;
	qsort(tags, n_tags, sizeof(tagref), cmp_tag);
	for (size_t i = 1; i < n_tags; i++)
		if (tags[i].tag == tags[i - 1].tag)
		{
			dup_tags++;
			PSHOW("  publish: tag stored twice, ids %" PRId64 " and %" PRId64 "\n",
				   rows[tags[i - 1].row].id, rows[tags[i].row].id);
		}
	/*
	 * Rows of abandoned timelines: a committed event may be there instead of
	 * in the final log (excused: dead_committed), never in both, never twice.
	 */
	dtags = malloc((n_dead + 1) * sizeof(tagref));
	for (size_t i = 0; i < n_dead; i++)
		if (dead[i].r.tag)
			dtags[n_dtags++] = (tagref) {dead[i].r.tag, i};
		else
			untagged++;
	qsort(dtags, n_dtags, sizeof(tagref), cmp_tag);
	for (size_t i = 0; i < n_dtags; i++)
		if ((i > 0 && dtags[i].tag == dtags[i - 1].tag) || tag_row(dtags[i].tag) >= 0)
		{
			dup_tags++;
			PSHOW("  publish: tag of abandoned id %" PRId64 " (timeline %d) stored twice\n",
				   dead[dtags[i].row].r.id, dead[dtags[i].row].gen);
		}

	snprintf(pat, sizeof pat, "%s/pub-*.log", dir);
	if (glob(pat, 0, NULL, &g) != 0)
	{
		printf("publish: no publisher logs in %s\n", dir);
		return 1;
	}
	for (size_t f = 0; f < g.gl_pathc; f++)
	{
		FILE	   *fp = fopen(g.gl_pathv[f], "r");
		char	   *line = NULL;
		size_t		cap = 0;
		long		pubno = -1;
		int64_t		prev_max = -1;

		sscanf(strrchr(g.gl_pathv[f], '/') + 1, "pub-%ld.log", &pubno);
		while (fp && getline(&line, &cap, fp) > 0)
		{
			char		kind;
			long		txn;
			int			off = 0;
			int64_t		ids[64], dids[64];
			int			n_ids = 0, n_present = 0, n_tags_line = 0, n_dids = 0;
			char	   *p;

			if (sscanf(line, "%c %ld%n", &kind, &txn, &off) != 2)
				continue;
			for (p = strtok(line + off, " \n"); p; p = strtok(NULL, " \n"))
			{
				long		pp, tt, ee;

				if (sscanf(p, "@@p%ldt%lde%ld@@", &pp, &tt, &ee) != 3)
					continue;
				ssize_t		k = tag_row(pack_tag(pp, tt, ee));
				ssize_t		dk = k < 0 ? dead_tag_row(pack_tag(pp, tt, ee)) : -1;

				n_tags_line++;
				if (k >= 0)
				{
					claimed[k] = true;
					n_present++;
					if (n_ids < 64)
						ids[n_ids++] = rows[k].id;
				}
				if (dk >= 0)
				{
					dclaimed[dk] = true;
					n_present++;
					if (n_dids < 64)
						dids[n_dids++] = dead[dk].r.id;
					if (kind == 'C')
						dead_committed++;
				}
				if (kind == 'C' && k < 0 && dk < 0)
				{
					missing++;
					PSHOW("  publish: committed %s is not in the log\n", p);
				}
				if ((kind == 'R' || kind == 'S') && k >= 0)
				{
					leaked++;
					PSHOW("  publish: %s %s is in the log as id %" PRId64 "\n",
						   kind == 'R' ? "rolled-back" : "savepoint-dropped", p, rows[k].id);
				}
				if ((kind == 'R' || kind == 'S') && dk >= 0)
				{
					leaked++;
					PSHOW("  publish: %s %s is in abandoned timeline %d as id %" PRId64 "\n",
						   kind == 'R' ? "rolled-back" : "savepoint-dropped", p, dead[dk].gen, dead[dk].r.id);
				}
			}
			if (kind == 'C')
			{
				committed_txns++;
				committed_events += n_tags_line;
			}
			else if (kind == 'U')
			{
				unknown_txns++;
				if (n_present != 0 && n_present != n_tags_line)
				{
					partial++;
					PSHOW("  publish: p%ld txn %ld with unknown outcome is partly stored (%d of %d)\n",
						   pubno, txn, n_present, n_tags_line);
				}
				if (n_present)
					committed_events += n_present;
			}
			else if (kind == 'R')
				rolled_back_txns++;
			if ((kind == 'C' || kind == 'U') && n_ids > 0)
			{
				for (int i = 1; i < n_ids; i++)
					if (ids[i] != ids[i - 1] + 1)
					{
						noncontig++;
						PSHOW("  publish: p%ld txn %ld ids not consecutive in publish order: %" PRId64 " then %" PRId64 "\n",
							   pubno, txn, ids[i - 1], ids[i]);
						break;
					}
				if (ids[0] <= prev_max)
				{
					misordered++;
					PSHOW("  publish: p%ld txn %ld got id %" PRId64 " below its previous transaction's %" PRId64 "\n",
						   pubno, txn, ids[0], prev_max);
				}
				prev_max = ids[n_ids - 1];
			}
			if ((kind == 'C' || kind == 'U') && n_dids > 0)
			{
				/* one transaction, one timeline, consecutive ids there too */
				if (n_ids > 0)
				{
					split++;
					PSHOW("  publish: p%ld txn %ld is split between the final and an abandoned timeline\n",
						   pubno, txn);
				}
				for (int i = 1; i < n_dids; i++)
					if (dids[i] != dids[i - 1] + 1)
					{
						noncontig++;
						PSHOW("  publish: p%ld txn %ld abandoned ids not consecutive: %" PRId64 " then %" PRId64 "\n",
							   pubno, txn, dids[i - 1], dids[i]);
						break;
					}
			}
		}
		free(line);
		if (fp)
			fclose(fp);
	}
	globfree(&g);
	long		orphans = 0;

	for (size_t i = 0; i < n_rows; i++)
		if (rows[i].tag && !claimed[i])
		{
			orphans++;
			if (orphans <= 5)
				PSHOW("  publish: id %" PRId64 " has a tag no publisher logged\n", rows[i].id);
		}
	for (size_t i = 0; i < n_dead; i++)
		if (dead[i].r.tag && !dclaimed[i])
		{
			orphans++;
			if (orphans <= 5)
				PSHOW("  publish: abandoned id %" PRId64 " (timeline %d) has a tag no publisher logged\n",
					   dead[i].r.id, dead[i].gen);
		}
	free(claimed);
	free(dclaimed);
	printf("publish: committed_txns=%ld rolled_back_txns=%ld unknown_txns=%ld events=%ld "
		   "missing=%ld leaked=%ld partial=%ld noncontiguous=%ld misordered=%ld "
		   "duplicate_tags=%ld orphans=%ld untagged=%ld abandoned_committed=%ld split=%ld\n",
		   committed_txns, rolled_back_txns, unknown_txns, committed_events, missing, leaked,
		   partial, noncontig, misordered, dup_tags, orphans, untagged, dead_committed, split);
	return missing + leaked + partial + noncontig + misordered + dup_tags + orphans + untagged + split;
}

/* ---------------------------------------------------------------- self-check */

/*
 * On a subscriber that ended (close, unsubscribe, expiry) and got its final
 * answer: a delivery of the row just after its end, slipped in before the
 * final answer, must count as past_end; without the final answer it must
 * count as unended.
 */
static bool
self_check_end(void)
{
	subscriber *s = NULL;
	size_t		fin = 0;
	ssize_t		after = -1;

	for (int i = 0; i < n_subs && !s; i++)
	{
		if (!subs[i].expected || subs[i].end_id < 0)
			continue;
		for (size_t k = 0; k < subs[i].n_recs; k++)
			if (subs[i].recs[k].kind == R_FINAL && subs[i].recs[k].status == subs[i].end_status)
			{
				fin = k;
				s = &subs[i];
				break;
			}
	}
	if (s)
		for (size_t i = 0; i < n_rows && after < 0; i++)
			if (rows[i].id > s->end_id)
				after = (ssize_t) i;
	if (!s || after < 0)
	{
		printf("self-check: FAILED (no ended subscriber with a row after its end)\n");
		return false;
	}
	tally		base = {0}, t = {0};
	rec		   *m = malloc((s->n_recs + 1) * sizeof(rec));
	rec			extra = {.kind = R_EVENT, .id = rows[after].id, .ev = rows[after].event,
	.len = rows[after].len};
	bool		ok;

	snprintf(extra.md5, sizeof extra.md5, "%s", rows[after].md5);
	judge(s, s->recs, s->n_recs, &base, true);
	memcpy(m, s->recs, fin * sizeof(rec));
	m[fin] = extra;
	memcpy(m + fin + 1, s->recs + fin, (s->n_recs - fin) * sizeof(rec));
	judge(s, m, s->n_recs + 1, &t, true);
	ok = t.past_end == base.past_end + 1;
	long		past = t.past_end - base.past_end;

	memcpy(m, s->recs, fin * sizeof(rec));
	memcpy(m + fin, s->recs + fin + 1, (s->n_recs - fin - 1) * sizeof(rec));
	t = (tally) {0};
	judge(s, m, s->n_recs - 1, &t, true);
	ok &= t.unended == base.unended + 1;
	free(m);
	printf("self-check on %s (ended at %" PRId64 "): %s: id %" PRId64 " after the end -> past_end %ld, "
		   "no final answer -> unended %ld\n", s->name, s->end_id, ok ? "ok" : "FAILED",
		   rows[after].id, past, t.unended - base.unended);
	return ok;
}

static bool
self_check(void)
{
	subscriber *s = NULL;
	size_t		best = 0;

	/*
	 * Deliveries after a subscriber's last timeline reset only: one before
	 * it may be void, and dropping it loses nothing.
	 */
	for (int i = 0; i < n_subs; i++)
	{
		size_t		ev = 0;

		for (size_t k = 0; k < subs[i].n_recs; k++)
			ev = is_timeline_reset(&subs[i].recs[k]) ? 0 : ev + (subs[i].recs[k].kind == R_EVENT);
		if (subs[i].expected && ev > best)
		{
			best = ev;
			s = &subs[i];
		}
	}
	if (!s || best < 3)
	{
		printf("self-check: FAILED (no subscriber with 3 deliveries to mutate)\n");
		return false;
	}
	tally		base = {0};

	judge(s, s->recs, s->n_recs, &base, true);

	/* the middle delivery, and the next delivery after it */
	size_t		mid = 0, next = 0, seen_ev = 0, from = 0;

	for (size_t k = 0; k < s->n_recs; k++)
		if (is_timeline_reset(&s->recs[k]))
			from = k + 1;
	for (size_t k = from; k < s->n_recs; k++)
		if (s->recs[k].kind == R_EVENT && seen_ev++ == best / 2)
			mid = k;
	for (next = mid + 1; next < s->n_recs && s->recs[next].kind != R_EVENT; next++)
		;
	rec		   *m = malloc((s->n_recs + 1) * sizeof(rec));
	tally		t;
	bool		ok = true;
	char		out[512];

	/* drop */
	memcpy(m, s->recs, mid * sizeof(rec));
	memcpy(m + mid, s->recs + mid + 1, (s->n_recs - mid - 1) * sizeof(rec));
	t = (tally) {0};
	judge(s, m, s->n_recs - 1, &t, true);
	ok &= t.lost == base.lost + 1;
	snprintf(out, sizeof out, "drop id %" PRId64 " -> lost %ld", s->recs[mid].id, t.lost - base.lost);

	/* duplicate */
	memcpy(m, s->recs, (mid + 1) * sizeof(rec));
	memcpy(m + mid + 1, s->recs + mid, (s->n_recs - mid) * sizeof(rec));
	t = (tally) {0};
	judge(s, m, s->n_recs + 1, &t, true);
	ok &= t.duplicated == base.duplicated + 1 && t.lost == base.lost;
	snprintf(out + strlen(out), sizeof out - strlen(out), ", duplicate -> duplicated %ld",
			 t.duplicated - base.duplicated);

	/* swap with the next delivery */
	if (next < s->n_recs)
	{
		memcpy(m, s->recs, s->n_recs * sizeof(rec));
		m[mid] = s->recs[next];
		m[next] = s->recs[mid];
		t = (tally) {0};
		judge(s, m, s->n_recs, &t, true);
		ok &= t.reordered > base.reordered;
		snprintf(out + strlen(out), sizeof out - strlen(out), ", swap -> reordered %ld",
				 t.reordered - base.reordered);
	}

	/* corrupt the payload digest */
	memcpy(m, s->recs, s->n_recs * sizeof(rec));
	m[mid].md5[0] = m[mid].md5[0] == '0' ? '1' : '0';
	t = (tally) {0};
	judge(s, m, s->n_recs, &t, true);
	ok &= t.corrupted == base.corrupted + 1;
	snprintf(out + strlen(out), sizeof out - strlen(out), ", corrupt -> corrupted %ld",
			 t.corrupted - base.corrupted);

	/* a row of an abandoned timeline delivered last: no reset voids it */
	if (n_dead > 0)
	{
		dead_row   *dr = &dead[n_dead / 2];

		memcpy(m, s->recs, s->n_recs * sizeof(rec));
		m[s->n_recs] = (rec) {.kind = R_EVENT, .id = dr->r.id, .ev = dr->r.event, .len = dr->r.len,
		.fp = dr->fp, .has_fp = true};
		memcpy(m[s->n_recs].md5, dr->r.md5, sizeof dr->r.md5);
		t = (tally) {0};
		judge(s, m, s->n_recs + 1, &t, true);
		ok &= t.dead == base.dead + 1;
		snprintf(out + strlen(out), sizeof out - strlen(out), ", abandoned id %" PRId64 " kept -> dead %ld",
				 dr->r.id, t.dead - base.dead);
	}
	else
		snprintf(out + strlen(out), sizeof out - strlen(out), ", no abandoned rows to keep");

	/* a timeline reset above every restored head */
	{
		char		data[160];
		int64_t		f = (max_tl_head > pruned_through ? max_tl_head : pruned_through) + 1;

		snprintf(data, sizeof data, "{\"lost_from\":%" PRId64 ",\"lost_through\":%" PRId64 ",\"timeline\":true}",
				 f + 1, f + 1);
		memcpy(m, s->recs, s->n_recs * sizeof(rec));
		m[s->n_recs] = (rec) {.kind = R_RESET, .id = f, .data = data, .fp = 0x5eed5eed, .has_fp = true};
		t = (tally) {0};
		judge(s, m, s->n_recs + 1, &t, true);
		ok &= t.bad_resets == base.bad_resets + 1;
		snprintf(out + strlen(out), sizeof out - strlen(out), ", timeline reset at %" PRId64 " -> bad_resets %ld",
				 f, t.bad_resets - base.bad_resets);
	}
	free(m);
	printf("self-check on %s: %s: %s\n", s->name, ok ? "ok" : "FAILED", out);
	return self_check_end() && ok;
}

/* ---------------------------------------------------------------- main */

int
main(int argc, char **argv)
{
	const char *config = NULL, *faults = "";
	double		wait = -1;

	for (int i = 1; i + 1 < argc; i += 2)
	{
		if (strcmp(argv[i], "--config") == 0)
			config = argv[i + 1];
		else if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
		else if (strcmp(argv[i], "--wait") == 0)
			wait = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--ready-after-drain") == 0)
			need_final_ready = atoi(argv[i + 1]) != 0;
		else if (strcmp(argv[i], "--faults") == 0)
			faults = argv[i + 1];
		else
		{
			fprintf(stderr, "verify: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!config)
		return 2;
	conn = PQconnectdb("");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "verify: %s", PQerrorMessage(conn));
		return 2;
	}
	if (!load_config(config))
		return 2;
	load_rows();
	load_markers();
	load_prune_history(dir);
	load_timelines(dir);
	load_dead(dir);
	PQclear(must(PQexec(conn,
						"CREATE TEMP TABLE torture_parsed AS "
						"SELECT id, torture.try_jsonb(data) AS j FROM torture.shadow"),
				 "parse payloads"));

	if (wait >= 0)
		return wait_drain(wait);

	tally		t = {0};
	long		per_sub_bad = 0;

	for (int i = 0; i < n_subs; i++)
	{
		tally		one = {0};

		read_log(&subs[i]);
		compute_expected(&subs[i]);
		judge(&subs[i], subs[i].recs, subs[i].n_recs, &one, false);
		if (one.lost || one.duplicated || one.reordered || one.corrupted || one.unexpected ||
			one.bad_resets || one.finals || one.no_start || one.past_end || one.unended ||
			one.dead)
			per_sub_bad++;
#define ADD(f) t.f += one.f
		ADD(deliveries);
		ADD(lost);
		ADD(duplicated);
		ADD(reordered);
		ADD(corrupted);
		ADD(unexpected);
		ADD(resets);
		ADD(bad_resets);
		ADD(reset_accounted);
		ADD(finals);
		ADD(cuts);
		ADD(connects);
		ADD(no_start);
		ADD(switches);
		ADD(refused);
		ADD(ends);
		ADD(past_end);
		ADD(unended);
		ADD(expiry_cut);
		ADD(tl_resets);
		ADD(voided);
		ADD(dead_deliveries);
		ADD(dead);
#undef ADD
		if (one.resets)
			printf("  %s: %ld reset(s) accounted for %ld of its %zu expected ids\n",
				   subs[i].name, one.resets, one.reset_accounted, subs[i].n_expected);
		if (subs[i].end_id >= 0)
			printf("  %s: ended at %" PRId64 " (%s): %zu expected ids up to it, %ld not received "
				   "(%ld lost, %ld after the last one received, expired), final answer %s\n",
				   subs[i].name, subs[i].end_id,
				   subs[i].end_status == 204 ? "closed" : subs[i].expire ? "expired" : "dropped",
				   subs[i].n_expected, one.lost + one.expiry_cut + one.reset_accounted, one.lost,
				   one.expiry_cut, one.ends ? (subs[i].end_status == 204 ? "204" : "404") : "missing");
	}
	long		pub_problems = check_publishers();
	long		injected = 0;

	for (const char *p = faults; *p;)
	{
		const char *eq = strchr(p, '=');

		if (!eq)
			break;
		injected += atol(eq + 1);
		p = strchr(eq, ',') ? strchr(eq, ',') + 1 : eq + strlen(eq);
	}
	printf("details: expected_rows=%zu pruned_through=%" PRId64 " resets=%ld reset_accounted=%ld "
		   "client_cuts=%ld connects=%ld bridge_switches=%ld corrupted=%ld unexpected=%ld bad_resets=%ld "
		   "final_answers=%ld refused_503=%ld no_start=%ld bad_log_lines=%ld injected={%s}\n",
		   n_rows, pruned_through, t.resets, t.reset_accounted, t.cuts, t.connects, t.switches,
		   t.corrupted, t.unexpected, t.bad_resets, t.finals, t.refused, t.no_start, bad_lines, faults);
	printf("ends: ended=%ld past_end=%ld unended=%ld expired_tail=%ld\n",
		   t.ends, t.past_end, t.unended, t.expiry_cut);
	printf("timelines: changes=%d abandoned_rows=%zu highest_restored_head=%" PRId64 " timeline_resets=%ld "
		   "voided=%ld abandoned_deliveries=%ld dead=%ld abandoned_but_final=%ld\n",
		   n_timelines, n_dead, max_tl_head, t.tl_resets, t.voided, t.dead_deliveries, t.dead, dead_overlap);
	bool		sc = self_check();

	printf("subscribers=%d events=%zu deliveries=%ld faults=%ld lost=%ld duplicated=%ld reordered=%ld dead=%ld\n",
		   n_subs, n_rows, t.deliveries, injected + t.cuts, t.lost, t.duplicated, t.reordered, t.dead);
	bool		fail = t.lost || t.duplicated || t.reordered || t.corrupted || t.unexpected || t.dead ||
		t.bad_resets || t.finals || t.no_start || t.past_end || t.unended ||
		bad_lines || pub_problems || !sc || dead_overlap ||
		n_rows == 0 || t.deliveries == 0;

	if (fail)
		printf("VERDICT: FAIL (%ld of %d subscribers differ, %ld publish problems)\n",
			   per_sub_bad, n_subs, pub_problems);
	else
		printf("VERDICT: PASS\n");
	PQfinish(conn);
	return fail ? 1 : 0;
}
