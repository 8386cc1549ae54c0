/*
 * property.c
 *		The C matchers agree with PostgreSQL's own semantics.
 *
 * Generates random (pattern, channel) and (filter, data) pairs and compares
 * the shared C matchers (linked in directly) with references evaluated by
 * the server:
 *   - patterns: an independent translation of the AMQP topic rules into a
 *     POSIX regular expression, evaluated with ~;
 *   - filters: data::jsonb @> filter::jsonb, except that a data value that
 *     is not an object matches only the empty filter;
 * and also with the extension's SQL entry points sse_match() and
 * sse_filter_match(), which must agree with both.
 *
 * Usage: property [pairs]   (libpq environment selects the database)
 * SEED=n reproduces a run; the seed is printed either way.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>

#include "sse_match.h"
#include "sse_filter.h"

typedef struct strbuf
{
	char	   *p;
	size_t		len,
				cap;
} strbuf;

static void
sb_addn(strbuf *sb, const char *s, size_t n)
{
	if (sb->len + n + 1 > sb->cap)
	{
		sb->cap = (sb->len + n + 1) * 2;
		sb->p = realloc(sb->p, sb->cap);
		if (sb->p == NULL)
			abort();
	}
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

static void
sb_add(strbuf *sb, const char *s)
{
	sb_addn(sb, s, strlen(s));
}

static int
rnd(int n)
{
	return rand() % n;
}

static const char *const SEGS[] = {"a", "b", "c"};
static const char *const PSEGS[] = {"a", "b", "c", "*", "#"};
static const char *const KEYS[] = {"\"a\"", "\"b\"", "\"c\""};
/* both parameters are text: the payload must reach every side verbatim */
static const Oid TEXT_PARAMS[2] = {25, 25};

#define NELEM(a) ((int) (sizeof(a) / sizeof((a)[0])))

static void
gen_dotted(strbuf *sb, const char *const *alpha, int nalpha, int maxsegs)
{
	int			n = 1 + rnd(maxsegs);

	for (int i = 0; i < n; i++)
	{
		if (i)
			sb_add(sb, ".");
		sb_add(sb, alpha[rnd(nalpha)]);
	}
}

/*
 * Numbers: a few values, each written in many equal ways, so that equal
 * and unequal pairs both occur.  The classes: small values, 1.0 vs 1 and
 * -0, values next to each other beyond double precision, huge and tiny
 * exponents (up to the limit of 1000 on the written exponent).
 */
static const char *const MANTISSAS[] = {
	"1", "2", "25", "12345678901234567890123", "9007199254740993",
	"9007199254740992", "10000000000000000555", "1000000000000000000000001"
};
static const int EXPONENTS[] = {
	0, 0, 0, -1, -2, 1, 20, -20, 308, 309, -324, 400, -400, 995, -995
};

static void
gen_number(strbuf *sb)
{
	const char *m = MANTISSAS[rnd(NELEM(MANTISSAS))];
	int			e = EXPONENTS[rnd(NELEM(EXPONENTS))];
	int			mlen = (int) strlen(m);
	char		buf[128];
	int			k;

	if (rnd(10) == 0)
	{
		/* zeros, every way */
		static const char *const ZEROS[] = {"0", "-0", "0.0", "-0.000", "0e5", "-0E-7", "0.0e+0"};

		sb_add(sb, ZEROS[rnd(NELEM(ZEROS))]);
		return;
	}
	if (rnd(6) == 0)
		sb_add(sb, "-");
	switch (rnd(4))
	{
		case 0:					/* m e e, or plain m when e = 0 */
			if (e == 0 && rnd(2))
				snprintf(buf, sizeof(buf), "%s", m);
			else
				snprintf(buf, sizeof(buf), "%s%s%d", m, rnd(2) ? "e" : "E", e);
			break;
		case 1:					/* trailing zeros moved into the digits */
			k = 1 + rnd(3);
			snprintf(buf, sizeof(buf), "%s%.*se%d", m, k, "000", e - k);
			break;
		case 2:					/* 0.m e (e + len) */
			if (e + mlen > 1000)
				snprintf(buf, sizeof(buf), "%se%d", m, e);
			else
				snprintf(buf, sizeof(buf), "0.%se%+d", m, e + mlen);
			break;
		default:				/* a decimal point inside the digits */
			if (mlen > 1)
				snprintf(buf, sizeof(buf), "%.1s.%s%se%d", m, m + 1, rnd(2) ? "00" : "", e + mlen - 1);
			else
				snprintf(buf, sizeof(buf), "%s.0e%d", m, e);
			break;
	}
	sb_add(sb, buf);
}

/* Strings: the same text through different escapes, and near misses. */
static const char *const STRINGS[][3] = {
	{"\"x\"", "\"\\u0078\"", "\"x\""},
	{"\"\"", "\"\"", "\"\""},
	{"\"\xc3\xa9\"", "\"\\u00e9\"", "\"\\u00E9\""},
	{"\"e\xcc\x81\"", "\"e\\u0301\"", "\"e\\u0301\""},
	{"\"\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\"", "\"\\uD83D\\uDE00\""},
	{"\"a/b\"", "\"a\\/b\"", "\"a\\u002fb\""},
	{"\"\\n\"", "\"\\u000a\"", "\"\\u000A\""},
	{"\"\\\\u0000\"", "\"\\\\u0000\"", "\"\\u005cu0000\""},
	{"\"1\"", "\"\\u0031\"", "\"1\""},
};

static void
gen_scalar(strbuf *sb)
{
	int			k = rnd(10);

	if (k < 4)
		gen_number(sb);
	else if (k < 8)
		sb_add(sb, STRINGS[rnd(NELEM(STRINGS))][rnd(3)]);
	else
		sb_add(sb, (const char *const[]) {"true", "false", "null"}[rnd(3)]);
}

static void gen_value(strbuf *sb, int depth, bool filter);

static void
gen_object(strbuf *sb, int depth, bool filter)
{
	int			n = rnd(5);

	sb_add(sb, "{");
	for (int i = 0; i < n; i++)
	{
		if (i)
			sb_add(sb, ",");
		/* three keys for up to four members: duplicates are common */
		sb_add(sb, KEYS[rnd(NELEM(KEYS))]);
		sb_add(sb, ":");
		gen_value(sb, depth - 1, filter);
	}
	sb_add(sb, "}");
}

static void
gen_array(strbuf *sb, int depth, bool filter)
{
	/* long arrays now and then; over 256 elements a filter is refused */
	int			n = rnd(25) == 0 ? 200 + rnd(100) : rnd(4);

	sb_add(sb, "[");
	for (int i = 0; i < n; i++)
	{
		if (i)
			sb_add(sb, ",");
		/* filter arrays hold scalars, except now and then (refused) */
		if (n > 8 || (filter && rnd(20) != 0))
			gen_scalar(sb);
		else
			gen_value(sb, depth - 1, filter);
	}
	sb_add(sb, "]");
}

/* Nesting: objects and arrays around a value, levels deep. */
static void
gen_deep(strbuf *sb, int levels, bool filter)
{
	char	   *close = malloc((size_t) levels + 1);

	if (close == NULL)
		abort();
	for (int i = 0; i < levels; i++)
	{
		bool		arr = !filter && rnd(2);

		sb_add(sb, arr ? "[" : "{\"a\":");
		close[levels - 1 - i] = arr ? ']' : '}';
	}
	close[levels] = '\0';
	gen_scalar(sb);
	sb_add(sb, close);
	free(close);
}

static void
gen_value(strbuf *sb, int depth, bool filter)
{
	int			k = depth <= 0 ? 2 : rnd(6);

	if (k == 0)
		gen_object(sb, depth, filter);
	else if (k == 1)
		gen_array(sb, depth, filter);
	else
		gen_scalar(sb);
}

/*
 * A filter built from the data, so that a good share of pairs match: a
 * subset of keys, scalar array elements picked with repetition (now and
 * then a container, which the filter limits refuse), and sometimes a
 * random mutation.
 */
static void
gen_derived(strbuf *sb, json_t *v, int depth)
{
	if (rnd(8) == 0)
	{
		gen_value(sb, depth, true);
		return;
	}
	if (json_is_object(v))
	{
		const char *key;
		json_t	   *child;
		bool		first = true;

		sb_add(sb, "{");
		json_object_foreach(v, key, child)
		{
			if (rnd(2))
				continue;
			json_t	   *js = json_string(key);
			char	   *k = json_dumps(js, JSON_ENCODE_ANY);

			json_decref(js);
			if (!first)
				sb_add(sb, ",");
			first = false;
			sb_add(sb, k);
			sb_add(sb, ":");
			free(k);
			gen_derived(sb, child, depth + 1);
		}
		sb_add(sb, "}");
	}
	else if (json_is_array(v))
	{
		size_t		n = json_array_size(v);
		int			take = n ? (rnd(30) == 0 ? 300 : rnd(4)) : 0;
		bool		first = true;

		sb_add(sb, "[");
		for (int i = 0; i < take; i++)
		{
			json_t	   *e = json_array_get(v, rnd((int) n));

			if ((json_is_object(e) || json_is_array(e)) && rnd(10) != 0)
				continue;
			if (!first)
				sb_add(sb, ",");
			first = false;
			gen_derived(sb, e, depth + 1);
		}
		sb_add(sb, "]");
	}
	else
	{
		sse_scalar	sc;

		/* numbers come back canonical: write them out again in any form */
		if (sse_json_scalar(v, &sc) && sc.tag == 'n')
			sb_addn(sb, sc.s, sc.len);
		else
		{
			char	   *s = json_dumps(v, JSON_ENCODE_ANY);

			sb_add(sb, s);
			free(s);
		}
	}
}

static PGresult *
must(PGconn *conn, PGresult *res, const char *what)
{
	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "%s: %s", what, PQerrorMessage(conn));
		exit(2);
	}
	return res;
}

static bool
bool_at(PGresult *res, int col)
{
	return PQgetvalue(res, 0, col)[0] == 't';
}

static int
check_patterns(PGconn *conn, int n, int *positives)
{
	int			bad = 0;

	must(conn, PQprepare(conn, "pat",
						 "SELECT ('.' || $2) ~ ('^' || (SELECT string_agg("
						 "CASE s WHEN '*' THEN '\\.[^.]+' WHEN '#' THEN '(\\.[^.]+)*' "
						 "ELSE '\\.' || s END, '' ORDER BY i) "
						 "FROM unnest(string_to_array($1, '.')) WITH ORDINALITY u(s, i)) || '$'),"
						 " sse_match($1, $2)", 2, TEXT_PARAMS), "prepare");
	for (int i = 0; i < n; i++)
	{
		strbuf		p = {0},
					c = {0};
		const char *params[2];
		PGresult   *res;

		gen_dotted(&p, PSEGS, NELEM(PSEGS), 5);
		gen_dotted(&c, SEGS, NELEM(SEGS), 4);
		params[0] = p.p;
		params[1] = c.p;
		res = must(conn, PQexecPrepared(conn, "pat", 2, params, NULL, NULL, 0), "pattern query");
		bool		want = bool_at(res, 0);
		bool		got = sse_pattern_match(p.p, p.len, c.p, c.len);

		*positives += want;
		if (got != want || bool_at(res, 1) != want)
		{
			if (bad++ < 10)
				fprintf(stderr, "pattern mismatch: pattern=%s channel=%s regex=%d c=%d sql=%d\n",
						p.p, c.p, want, got, bool_at(res, 1));
		}
		PQclear(res);
		free(p.p);
		free(c.p);
	}
	return bad;
}

typedef struct fstats
{
	int			pairs;			/* compared with jsonb */
	int			positives;
	int			bad;
	int			refused_filters;
	int			refused_data;
	int			planted_bad;	/* pairs the planted bug gets wrong */
} fstats;

static void
mismatch(fstats *st, const char *what, const strbuf *f, const strbuf *d)
{
	if (st->bad++ < 10)
		fprintf(stderr, "filter mismatch (%s): filter=%.300s data=%.300s\n", what, f->p, d->p);
}

/*
 * The planted bug: the matcher as it was with jansson's own numbers
 * (doubles, int64), where a filter jansson cannot read counts as no filter.
 * The generator must catch it, or it no longer covers exact numbers.
 */
static bool
planted_match(const strbuf *f, const strbuf *d)
{
	json_t	   *pf = json_loadb(f->p, f->len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
	json_t	   *pd = json_loadb(d->p, d->len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
	bool		r = pf == NULL || sse_filter_match(pf, pd);

	json_decref(pf);
	json_decref(pd);
	return r;
}

static void
gen_pair(strbuf *f, strbuf *d)
{
	json_t	   *dv;
	int			r = rnd(40);

	if (r == 0 || r == 1)
	{
		/* deep data: near the filter limit (32), or the payload limit (1000) */
		sb_add(d, "{\"a\":");
		gen_deep(d, r == 0 ? 20 + rnd(20) : 995 + rnd(10), false);
		sb_add(d, "}");
	}
	else if (rnd(8) == 0)
		gen_value(d, 3, false);
	else
		gen_object(d, 3, false);

	if (rnd(40) == 0)
	{
		gen_deep(f, 28 + rnd(8), true);
		return;
	}
	dv = sse_json_parse(d->p, d->len);
	if (json_is_object(dv) && rnd(2))
		gen_derived(f, dv, 1);
	else
		gen_object(f, 2, true);
	json_decref(dv);
}

static void
check_filters(PGconn *conn, int n, fstats *st)
{
	must(conn, PQprepare(conn, "ref",
						 "SELECT CASE WHEN jsonb_typeof($2::jsonb) = 'object' "
						 "THEN $2::jsonb @> $1::jsonb ELSE $1::jsonb = '{}'::jsonb END",
						 2, TEXT_PARAMS), "prepare");
	must(conn, PQprepare(conn, "sql", "SELECT sse_filter_match($1::jsonb, $2)",
						 2, TEXT_PARAMS), "prepare");
	must(conn, PQprepare(conn, "render", "SELECT $1::jsonb::text", 1, TEXT_PARAMS), "prepare");
	while (st->pairs + st->refused_filters + st->refused_data < n)
	{
		strbuf		f = {0},
					d = {0};
		const char *params[2];
		sse_filter *cf,
				   *rawf;
		sse_doc    *doc;
		sse_json_status fst,
					dst,
					pst;
		PGresult   *res;
		bool		sql_ok;

		gen_pair(&f, &d);
		/* a derived filter can mutate into a non-object: skip it */
		if (sse_filter_compile(f.p, f.len, &rawf, NULL) == SSE_JSON_NOT_OBJECT)
		{
			free(f.p);
			free(d.p);
			continue;
		}

		/*
		 * A stored filter reaches the matcher as jsonb prints it; an ad hoc
		 * one as written (rawf).  The limits apply to that text, so the two
		 * can differ in what they refuse (1e400 prints as 401 digits), never
		 * in what they answer.
		 */
		params[0] = f.p;
		res = must(conn, PQexecPrepared(conn, "render", 1, params, NULL, NULL, 0), "render");
		fst = sse_filter_compile(PQgetvalue(res, 0, 0), (size_t) PQgetlength(res, 0, 0), &cf, NULL);
		PQclear(res);
		dst = sse_doc_parse(d.p, d.len, &doc);
		/* publishing refuses exactly the payloads the bridge cannot read */
		pst = sse_payload_check(d.p, d.len);
		if (pst != dst)
			mismatch(st, "publish check and parse disagree", &f, &d);

		params[0] = f.p;
		params[1] = d.p;
		res = PQexecPrepared(conn, "sql", 2, params, NULL, NULL, 0);
		sql_ok = PQresultStatus(res) == PGRES_TUPLES_OK;
		if (fst != SSE_JSON_OK || dst != SSE_JSON_OK)
		{
			if (fst != SSE_JSON_OK)
				st->refused_filters++;
			else
				st->refused_data++;
			if (sql_ok)
				mismatch(st, "refused in C, accepted by sse_filter_match()", &f, &d);
		}
		else
		{
			bool		sql = sql_ok && PQgetvalue(res, 0, 0)[0] == 't';
			PGresult   *ref = must(conn, PQexecPrepared(conn, "ref", 2, params, NULL, NULL, 0),
								   "reference query");
			bool		want = bool_at(ref, 0);
			bool		got = sse_filter_eval(cf, doc);
			json_t	   *fj = sse_json_parse(f.p, f.len);
			json_t	   *dj = sse_json_parse(d.p, d.len);
			bool		direct = fj ? sse_filter_match(fj, dj) : want;
			bool		raw = rawf ? sse_filter_eval(rawf, doc) : want;

			st->pairs++;
			st->positives += want;
			if (!sql_ok)
				mismatch(st, PQresultErrorMessage(res), &f, &d);
			else if (got != want || sql != want || direct != want || raw != want)
			{
				char		what[80];

				snprintf(what, sizeof(what), "jsonb=%d compiled=%d as-written=%d direct=%d sql=%d",
						 want, got, raw, direct, sql);
				mismatch(st, what, &f, &d);
			}
			if (planted_match(&f, &d) != want)
				st->planted_bad++;
			json_decref(fj);
			json_decref(dj);
			PQclear(ref);
		}
		PQclear(res);
		sse_filter_free(cf);
		sse_filter_free(rawf);
		sse_doc_free(doc);
		free(f.p);
		free(d.p);
	}
}

int
main(int argc, char **argv)
{
	int			n = argc > 1 ? atoi(argv[1]) : 5000;
	unsigned	seed = getenv("SEED") ? (unsigned) strtoul(getenv("SEED"), NULL, 10)
		: (unsigned) time(NULL);
	PGconn	   *conn = PQconnectdb("");
	int			ppos = 0,
				pbad;
	fstats		fs = {0};
	bool		degenerate;

	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "connect: %s", PQerrorMessage(conn));
		return 2;
	}
	srand(seed);
	pbad = check_patterns(conn, n, &ppos);
	check_filters(conn, n, &fs);
	printf("seed=%u patterns=%d (matching %d) mismatches=%d filters=%d (matching %d) "
		   "refused filters=%d refused data=%d mismatches=%d planted-bug misses=%d\n",
		   seed, n, ppos, pbad, fs.pairs, fs.positives, fs.refused_filters,
		   fs.refused_data, fs.bad, fs.planted_bad);
	PQfinish(conn);
	/* a generator that never produces both outcomes would prove nothing */
	degenerate = ppos == 0 || ppos == n || fs.positives == 0 || fs.positives == fs.pairs;
	/* nor one that never reaches the limits */
	degenerate |= fs.refused_filters == 0 || fs.refused_data == 0;
	if (degenerate)
	{
		fprintf(stderr, "degenerate sample: every pair gave the same answer, or no limit was reached\n");
		return 1;
	}
	/* self check: the matcher with double numbers must be caught */
	if (fs.planted_bad == 0)
	{
		fprintf(stderr, "self check failed: the planted bug (numbers as doubles) went unnoticed\n");
		return 1;
	}
	return (pbad || fs.bad) ? 1 : 0;
}
