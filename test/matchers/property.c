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
sb_add(strbuf *sb, const char *s)
{
	size_t		n = strlen(s);

	if (sb->len + n + 1 > sb->cap)
	{
		sb->cap = (sb->len + n + 1) * 2;
		sb->p = realloc(sb->p, sb->cap);
		if (sb->p == NULL)
			abort();
	}
	memcpy(sb->p + sb->len, s, n + 1);
	sb->len += n;
}

static int
rnd(int n)
{
	return rand() % n;
}

static const char *const SEGS[] = {"a", "b", "c"};
static const char *const PSEGS[] = {"a", "b", "c", "*", "#"};
static const char *const KEYS[] = {"\"a\"", "\"b\"", "\"c\""};
static const char *const SCALARS[] = {
	"0", "1", "1.0", "-0", "2", "1e0", "2.5", "10", "1e1", "0.25",
	"\"x\"", "\"y\"", "\"\"", "\"\\u00e9\"", "\"\xc3\xa9\"", "true", "false", "null"
};
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

static void gen_value(strbuf *sb, int depth);

static void
gen_object(strbuf *sb, int depth)
{
	int			n = rnd(4);

	sb_add(sb, "{");
	for (int i = 0; i < n; i++)
	{
		if (i)
			sb_add(sb, ",");
		sb_add(sb, KEYS[rnd(NELEM(KEYS))]);
		sb_add(sb, ":");
		gen_value(sb, depth - 1);
	}
	sb_add(sb, "}");
}

static void
gen_array(strbuf *sb, int depth)
{
	int			n = rnd(4);

	sb_add(sb, "[");
	for (int i = 0; i < n; i++)
	{
		if (i)
			sb_add(sb, ",");
		gen_value(sb, depth - 1);
	}
	sb_add(sb, "]");
}

static void
gen_value(strbuf *sb, int depth)
{
	int			k = depth <= 0 ? 2 : rnd(6);

	if (k == 0)
		gen_object(sb, depth);
	else if (k == 1)
		gen_array(sb, depth);
	else
		sb_add(sb, SCALARS[rnd(NELEM(SCALARS))]);
}

/*
 * A filter built from the data, so that a good share of pairs match: a
 * subset of keys, array elements picked with repetition, and sometimes a
 * random mutation.
 */
static void
gen_derived(strbuf *sb, json_t *v, int depth)
{
	if (rnd(8) == 0)
	{
		gen_value(sb, depth);
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
			char	   *k = json_dumps(json_string(key), JSON_ENCODE_ANY);

			if (!first)
				sb_add(sb, ",");
			first = false;
			sb_add(sb, k);
			sb_add(sb, ":");
			free(k);
			gen_derived(sb, child, depth - 1);
		}
		sb_add(sb, "}");
	}
	else if (json_is_array(v))
	{
		size_t		n = json_array_size(v);
		int			take = n ? rnd(4) : 0;

		sb_add(sb, "[");
		for (int i = 0; i < take; i++)
		{
			if (i)
				sb_add(sb, ",");
			gen_derived(sb, json_array_get(v, rnd((int) n)), depth - 1);
		}
		sb_add(sb, "]");
	}
	else
	{
		char	   *s = json_dumps(v, JSON_ENCODE_ANY);

		sb_add(sb, s);
		free(s);
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

static int
check_filters(PGconn *conn, int n, int *positives)
{
	int			bad = 0;

	must(conn, PQprepare(conn, "flt",
						 "SELECT CASE WHEN jsonb_typeof($2::jsonb) = 'object' "
						 "THEN $2::jsonb @> $1::jsonb ELSE $1::jsonb = '{}'::jsonb END,"
						 " sse_filter_match($1::jsonb, $2)", 2, TEXT_PARAMS), "prepare");
	for (int i = 0; i < n; i++)
	{
		strbuf		f = {0},
					d = {0};
		const char *params[2];
		json_t	   *dv,
				   *fv;
		PGresult   *res;

		if (rnd(8) == 0)
			gen_value(&d, 3);
		else
			gen_object(&d, 3);
		dv = sse_json_parse(d.p, d.len);
		if (json_is_object(dv) && rnd(2))
			gen_derived(&f, dv, 3);
		else
			gen_object(&f, 2);
		fv = sse_json_parse(f.p, f.len);
		if (!json_is_object(fv))
		{
			/* a derived filter can mutate into a non-object: skip it */
			json_decref(dv);
			json_decref(fv);
			free(f.p);
			free(d.p);
			i--;
			continue;
		}
		params[0] = f.p;
		params[1] = d.p;
		res = must(conn, PQexecPrepared(conn, "flt", 2, params, NULL, NULL, 0), "filter query");
		bool		want = bool_at(res, 0);
		bool		got = sse_filter_match(fv, dv);

		*positives += want;
		if (got != want || bool_at(res, 1) != want)
		{
			if (bad++ < 10)
				fprintf(stderr, "filter mismatch: filter=%s data=%s jsonb=%d c=%d sql=%d\n",
						f.p, d.p, want, got, bool_at(res, 1));
		}
		PQclear(res);
		json_decref(dv);
		json_decref(fv);
		free(f.p);
		free(d.p);
	}
	return bad;
}

int
main(int argc, char **argv)
{
	int			n = argc > 1 ? atoi(argv[1]) : 5000;
	unsigned	seed = getenv("SEED") ? (unsigned) strtoul(getenv("SEED"), NULL, 10)
		: (unsigned) time(NULL);
	PGconn	   *conn = PQconnectdb("");
	int			ppos = 0,
				fpos = 0,
				pbad,
				fbad;

	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "connect: %s", PQerrorMessage(conn));
		return 2;
	}
	srand(seed);
	pbad = check_patterns(conn, n, &ppos);
	fbad = check_filters(conn, n, &fpos);
	printf("seed=%u patterns=%d (matching %d) mismatches=%d filters=%d (matching %d) mismatches=%d\n",
		   seed, n, ppos, pbad, n, fpos, fbad);
	PQfinish(conn);
	/* a generator that never produces both outcomes would prove nothing */
	if (ppos == 0 || ppos == n || fpos == 0 || fpos == n)
	{
		fprintf(stderr, "degenerate sample: every pair gave the same answer\n");
		return 1;
	}
	return (pbad || fbad) ? 1 : 0;
}
