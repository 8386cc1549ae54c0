/*
 * auth.c - tokens of stream requests: where they come from, the cache of
 * verified ones, and what a grant lets a request open (auth.h).
 *
 * Invariants: a request that presents a token is decided by that token
 * alone (the first source found: Authorization, then the cookie, then the
 * query): an invalid one is never ignored in favour of anonymous access;
 * no token text, signature or cookie value ever reaches a log line (a
 * grant is named by its subject and a short hash); every decision that
 * failed for want of memory or a library failure is 503, never a 4xx.
 *
 * The cache maps the SHA-256 of a token to its grant until exp + leeway.
 * It is direct-mapped (AUTH_CACHE_SLOTS, a new entry replaces the one in
 * its slot) and bounded in bytes (AUTH_CACHE_BYTES: beyond them a grant is
 * used but not kept).  A hit is checked against the clock on every use, so
 * an expired token is refused even while its entry remains.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "config.h"
#include "filtjson.h"
#include "jwt.h"
#include "log.h"
#include "query.h"
#include "sse_json.h"

#define AUTH_CACHE_SLOTS 16384
#define AUTH_CACHE_BYTES (16u << 20)

static struct {
	bool		on;
	jwt_keyset *keys;
	jwt_policy	pol;
	auth_grant *cache[AUTH_CACHE_SLOTS];
	size_t		cache_bytes;
} au;

uint64_t	auth_cache_hits;
uint64_t	auth_verifications;
uint64_t	auth_refusals;

int64_t
auth_now(void)
{
	return (int64_t) time(NULL);
}

/* ---- grants ---- */

auth_grant *
auth_grant_ref(auth_grant *g)
{
	g->refs++;
	return g;
}

void
auth_grant_unref(auth_grant *g)
{
	if (g == NULL || --g->refs > 0)
		return;
	free(g->sub);
	for (size_t i = 0; i < g->nchannels; i++)
		free(g->channels[i]);
	free(g->channels);
	free(g->filter);
	free(g);
}

/* A grant taking over the claims' strings (c is left empty). */
static auth_grant *
auth_grant_new(jwt_claims *c, const unsigned char digest[32])
{
	auth_grant *g = calloc(1, sizeof(auth_grant));

	if (g == NULL)
		return NULL;
	g->refs = 1;
	g->sub = c->sub;
	g->exp = c->exp;
	g->end = c->exp > INT64_MAX - au.pol.leeway ? INT64_MAX : c->exp + au.pol.leeway;
	g->channels = c->channels;
	g->nchannels = c->nchannels;
	g->filter = c->filter;
	memcpy(g->digest, digest, 32);
	jwt_hash_hex(digest, g->hash);
	g->bytes = sizeof(*g) + strlen(g->sub) + (g->filter ? strlen(g->filter) : 0);
	for (size_t i = 0; i < g->nchannels; i++)
		g->bytes += sizeof(char *) + strlen(g->channels[i]);
	memset(c, 0, sizeof(*c));
	return g;
}

/* ---- the cache ---- */

static size_t
cache_slot(const unsigned char digest[32])
{
	return ((size_t) digest[0] << 16 | (size_t) digest[1] << 8 | digest[2]) % AUTH_CACHE_SLOTS;
}

static void
cache_drop(size_t slot)
{
	if (au.cache[slot] == NULL)
		return;
	au.cache_bytes -= au.cache[slot]->bytes;
	auth_grant_unref(au.cache[slot]);
	au.cache[slot] = NULL;
}

static void
cache_clear(void)
{
	for (size_t i = 0; i < AUTH_CACHE_SLOTS; i++)
		cache_drop(i);
}

static auth_grant *
cache_get(const unsigned char digest[32])
{
	auth_grant *g = au.cache[cache_slot(digest)];

	return g && memcmp(g->digest, digest, 32) == 0 ? g : NULL;
}

static void
cache_put(auth_grant *g)
{
	size_t		slot = cache_slot(g->digest);

	cache_drop(slot);
	if (au.cache_bytes + g->bytes > AUTH_CACHE_BYTES)
		return;
	au.cache[slot] = auth_grant_ref(g);
	au.cache_bytes += g->bytes;
}

/* ---- keys ---- */

static jwt_keyset *
auth_load_keys(char *err, size_t errsize)
{
	char		why[256];
	jwt_keyset *ks = jwt_keyset_load(cfg.jwt_key, cfg.jwt_alg, why, sizeof(why));

	if (ks == NULL)
		snprintf(err, errsize, "--jwt-key %s: %s", cfg.jwt_key, why);
	return ks;
}

bool
auth_init(char *err, size_t errsize)
{
	au.on = cfg.jwt_key != NULL && cfg.jwt_key[0] != '\0';
	if (!au.on) {
		if ((cfg.jwt_alg && cfg.jwt_alg[0]) || (cfg.jwt_issuer && cfg.jwt_issuer[0]) ||
			(cfg.jwt_audience && cfg.jwt_audience[0]) || cfg.jwt_query) {
			snprintf(err, errsize, "--jwt-alg, --jwt-issuer, --jwt-audience and --jwt-query need --jwt-key");
			return false;
		}
		return true;
	}
	if (cfg.jwt_cookie == NULL || cfg.jwt_cookie[0] == '\0' ||
		strpbrk(cfg.jwt_cookie, " \t;,=\"") != NULL) {
		snprintf(err, errsize, "--jwt-cookie: not a cookie name");
		return false;
	}
	au.pol.issuer = cfg.jwt_issuer;
	au.pol.audience = cfg.jwt_audience;
	au.pol.leeway = (int64_t) (cfg.jwt_leeway_ms / 1000);
	au.keys = auth_load_keys(err, errsize);
	if (au.keys == NULL)
		return false;
	log_info("tokens: %zu key(s) from %s", jwt_keyset_count(au.keys), cfg.jwt_key);
	return true;
}

bool
auth_enabled(void)
{
	return au.on;
}

bool
auth_reload(void)
{
	char		err[320];
	jwt_keyset *ks;

	if (!au.on)
		return true;
	/* the settings were reread: the policy points into them */
	au.pol.issuer = cfg.jwt_issuer;
	au.pol.audience = cfg.jwt_audience;
	au.pol.leeway = (int64_t) (cfg.jwt_leeway_ms / 1000);
	if ((ks = auth_load_keys(err, sizeof(err))) == NULL) {
		log_error("reload: %s; the previous keys stay in use", err);
		return false;
	}
	jwt_keyset_free(au.keys);
	au.keys = ks;
	cache_clear();
	log_info("reload: %zu key(s) from %s", jwt_keyset_count(ks), cfg.jwt_key);
	return true;
}

void
auth_shutdown(void)
{
	cache_clear();
	jwt_keyset_free(au.keys);
	au.keys = NULL;
	au.on = false;
}

/* ---- where the token is ---- */

typedef struct auth_token {
	const char *s;				/* borrowed from the request, or owned (query) */
	size_t		len;
	char	   *owned;
	const char *source;			/* "header", "cookie", "query" */
} auth_token;

/* "Bearer <token>": true with the token; false for another scheme. */
static bool
auth_bearer(const req_str *h, auth_token *t)
{
	const char *p = h->s, *e = h->s + h->len;

	if (h->len < 7 || strncasecmp(p, "bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return false;
	p += 6;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	t->s = p;
	t->len = (size_t) (e - p);
	t->source = "header";
	return true;
}

/* The value of cookie `name` in a Cookie header (the first one of that name). */
static bool
auth_cookie(const req_str *h, const char *name, auth_token *t)
{
	size_t		nl = strlen(name);
	const char *p = h->s, *e = h->s + h->len;

	while (p < e) {
		const char *end = memchr(p, ';', (size_t) (e - p)), *v, *ve;

		if (end == NULL)
			end = e;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if ((size_t) (end - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
			v = p + nl + 1;
			ve = end;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
				v++;
				ve--;
			}
			t->s = v;
			t->len = (size_t) (ve - v);
			t->source = "cookie";
			return true;
		}
		p = end + 1;
	}
	return false;
}

static void
auth_refuse(route_result *rr, int status, const char *error, const char *detail)
{
	route_result_free(rr);
	memset(rr, 0, sizeof(*rr));
	rr->kind = ROUTE_ERROR;
	rr->status = status;
	rr->error = error;
	rr->last_event_id = -1;
	snprintf(rr->detail, sizeof(rr->detail), "%s", detail);
}

/*
 * The query's access_token (whatever else the query holds: route_request
 * judges the rest).  Returns false when the request must be refused: the
 * parameter is given while --jwt-query is off (refused, not ignored, so a
 * token never silently stops counting), or memory ran out.
 */
static bool
auth_query_token(const req *r, auth_token *t, route_result *rr)
{
	struct http_parser_url u;
	query_params q;
	char		err[128];

	http_parser_url_init(&u);
	if (!r->url.set || http_parser_parse_url(r->url.s, r->url.len, 0, &u) != 0 ||
		!(u.field_set & (1 << UF_QUERY)))
		return true;
	switch (query_parse(r->url.s + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len,
						&q, err, sizeof(err))) {
		case QUERY_OK:
			break;
		case QUERY_INVALID:
			return true;		/* route_request answers 400 */
		case QUERY_INTERNAL:
			auth_refuse(rr, 503, "unavailable", "out of memory");
			return false;
	}
	if (q.access_token != NULL && !cfg.jwt_query) {
		query_params_free(&q);
		auth_refuse(rr, 401, "invalid_request",
					"access_token in the query is off (--jwt-query); send Authorization: Bearer or the cookie");
		return false;
	}
	if (q.access_token != NULL) {
		t->owned = q.access_token;
		q.access_token = NULL;
		t->s = t->owned;
		t->len = strlen(t->owned);
		t->source = "query";
	}
	query_params_free(&q);
	return true;
}

/* Find the request's token; false when rr already holds the answer. */
static bool
auth_find(const req *r, auth_token *t, route_result *rr)
{
	memset(t, 0, sizeof(*t));
	if (r->authorization.set && auth_bearer(&r->authorization, t))
		return true;
	if (r->cookie.set && auth_cookie(&r->cookie, cfg.jwt_cookie, t))
		return true;
	return auth_query_token(r, t, rr);
}

/* ---- verification ---- */

/* A printable copy of a subject for a log line. */
static void
auth_log_sub(const char *sub, char *out, size_t size)
{
	size_t		o = 0;

	for (size_t i = 0; sub[i] && o + 1 < size; i++)
		out[o++] = isprint((unsigned char) sub[i]) ? sub[i] : '?';
	out[o] = '\0';
}

/* Verify t (or find it in the cache); *out gets a new reference. */
static jwt_status
auth_verify(const auth_token *t, int64_t now, auth_grant **out)
{
	unsigned char digest[32];
	char		hex[13], sub[80];
	jwt_claims	c;
	jwt_status	st;
	auth_grant *g;

	*out = NULL;
	if (t->len > JWT_MAX_TOKEN)
		return JWT_TOO_LARGE;
	if (!jwt_hash(t->s, t->len, digest))
		return JWT_INTERNAL;
	if ((g = cache_get(digest)) != NULL) {
		auth_cache_hits++;
		if (auth_expired(g, now))
			return JWT_EXPIRED;
		*out = auth_grant_ref(g);
		return JWT_OK;
	}
	auth_verifications++;
	jwt_hash_hex(digest, hex);
	st = jwt_verify(au.keys, t->s, t->len, &au.pol, now, &c);
	if (st != JWT_OK) {
		log_debug("token %s from the %s refused: %s", hex, t->source, jwt_status_message(st));
		return st;
	}
	if ((g = auth_grant_new(&c, digest)) == NULL) {
		jwt_claims_clear(&c);
		return JWT_INTERNAL;
	}
	auth_log_sub(g->sub, sub, sizeof(sub));
	log_debug("token %s from the %s accepted: sub %s, exp %lld", hex, t->source, sub,
			  (long long) g->exp);
	cache_put(g);
	*out = g;
	return JWT_OK;
}

static void
auth_refuse_token(route_result *rr, jwt_status st)
{
	char		detail[128];

	if (st != JWT_INTERNAL)
		auth_refusals++;
	if (st == JWT_INTERNAL)
		auth_refuse(rr, 503, "unavailable", "token verification failed inside the bridge");
	else if (st == JWT_TOO_LARGE)
		auth_refuse(rr, 431, "token_too_large", "a token may have at most 8192 bytes");
	else if (st == JWT_EXPIRED)
		auth_refuse(rr, 401, "token_expired", "the token has expired; get a new one");
	else {
		snprintf(detail, sizeof(detail), "%s", jwt_status_message(st));
		auth_refuse(rr, 401, "invalid_token", detail);
	}
}

/* ---- what a grant allows ---- */

/* The client's own filter text (route_request already judged it). */
static char *
auth_client_filter(const req *r, bool *nomem)
{
	struct http_parser_url u;
	query_params q;
	char		err[64], *f = NULL;

	*nomem = false;
	http_parser_url_init(&u);
	if (http_parser_parse_url(r->url.s, r->url.len, 0, &u) != 0 || !(u.field_set & (1 << UF_QUERY)))
		return NULL;
	switch (query_parse(r->url.s + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len,
						&q, err, sizeof(err))) {
		case QUERY_OK:
			f = q.filter;
			q.filter = NULL;
			query_params_free(&q);
			return f;
		case QUERY_INVALID:
			return NULL;
		case QUERY_INTERNAL:
			*nomem = true;
			return NULL;
	}
	return NULL;
}

/* AND the granted filter into rr's (ROUTE_ADHOC). */
static void
auth_and_filter(const req *r, const auth_grant *g, route_result *rr)
{
	bool		nomem;
	char	   *client = auth_client_filter(r, &nomem);
	char	   *both = NULL;
	sse_filter *f = NULL;
	sse_json_status cs;

	if (nomem) {
		auth_refuse(rr, 503, "unavailable", "out of memory");
		return;
	}
	switch (filtjson_and(g->filter, strlen(g->filter), client, client ? strlen(client) : 0, &both)) {
		case FILTJSON_OK:
			break;
		case FILTJSON_CONFLICT:
			free(client);
			auth_refuse(rr, 403, "forbidden", "the filter conflicts with the filter the token grants");
			return;
		case FILTJSON_INVALID:
		case FILTJSON_NOMEM:
			free(client);
			auth_refuse(rr, 503, "unavailable", "out of memory");
			return;
	}
	free(client);
	cs = sse_filter_compile(both, strlen(both), &f, NULL);
	free(both);
	if (cs != SSE_JSON_OK) {
		auth_refuse(rr, cs == SSE_JSON_NOMEM ? 503 : 400, cs == SSE_JSON_NOMEM ? "unavailable" : "bad_filter",
					cs == SSE_JSON_NOMEM ? "out of memory"
					: "the filter together with the token's filter is beyond the filter limits");
		return;
	}
	sse_filter_free(rr->filter);
	rr->filter = f;
}

static void
auth_route_granted(const req *r, const scope *pub, const auth_grant *g, route_result *rr)
{
	scope	   *s = g->nchannels ? scope_union(pub, g->channels, g->nchannels) : NULL;

	if (g->nchannels && s == NULL) {
		auth_refuse(rr, 503, "unavailable", "out of memory");
		return;
	}
	route_request(r, s ? s : pub, rr);
	scope_free(s);
	if (rr->kind == ROUTE_ERROR && rr->status == 403)
		snprintf(rr->detail, sizeof(rr->detail), "channel is neither public nor granted by the token");
	else if (rr->kind == ROUTE_ADHOC && g->filter != NULL)
		auth_and_filter(r, g, rr);
}

/* Does the token matter for what route_request decided? Streams and refusals of scope. */
static bool
auth_concerns(const route_result *rr)
{
	return rr->kind == ROUTE_ADHOC || rr->kind == ROUTE_SUB ||
		(rr->kind == ROUTE_ERROR && rr->status == 403 && strcmp(rr->error, "forbidden") == 0);
}

void
auth_route(const req *r, const scope *pub, route_result *rr, auth_grant **grant)
{
	auth_token	t;
	jwt_status	st;
	auth_grant *g = NULL;

	*grant = NULL;
	route_request(r, pub, rr);
	if (!au.on || !auth_concerns(rr) || !auth_find(r, &t, rr))
		return;
	if (t.s == NULL) {
		if (rr->kind == ROUTE_ERROR)
			auth_refuse(rr, 401, "unauthorized", "this channel needs a token");
		return;
	}
	st = auth_verify(&t, auth_now(), &g);
	free(t.owned);
	if (st != JWT_OK) {
		auth_refuse_token(rr, st);
		return;
	}
	if (rr->kind != ROUTE_SUB) {
		route_result_free(rr);
		auth_route_granted(r, pub, g, rr);
	}
	if (rr->kind == ROUTE_ADHOC || rr->kind == ROUTE_SUB)
		*grant = g;
	else
		auth_grant_unref(g);
}
