/*
 * config.c - one table of settings drives defaults, the configuration file,
 * environment variables, getopt_long, --help, --version and the man page.
 *
 * Precedence, lowest first: defaults, the file (--config FILE, or
 * cfg_default_file when it exists), the environment (SSE_BRIDGE_<NAME>),
 * the command line.  A reload (cfg_reread) goes through the same steps
 * again with the command line given at start.
 *
 * File syntax: one "name = value" a line, names as the long options without
 * "--"; blank lines and lines whose first non-blank character is "#" are
 * skipped ("#" elsewhere is part of the value: channel patterns use it).  A
 * value may be written in double quotes (kept verbatim inside).  A line
 * that is not a known name, has no "=", a bad value, or repeats a name is
 * an error naming FILE:LINE.
 *
 * Invariants: every entry in cfg_table names a field of cfg (a field of
 * another cfg_settings is found at the same offset); string fields always
 * point at heap copies owned by this module (never at argv or environ).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "scope.h"

cfg_settings cfg;
const char *cfg_default_file = CFG_DEFAULT_FILE;
char	   *cfg_file;

/* The reason of the last failure, for the caller to print or log. */
static char cfg_why[512];

static void cfg_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
cfg_fail(const char *fmt, ...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(cfg_why, sizeof(cfg_why), fmt, ap);
	va_end(ap);
}

const char *
cfg_error(void)
{
	return cfg_why;
}

typedef enum cfg_type {
	CFG_STRING,
	CFG_UINT,
	CFG_SIZE,					/* bytes, with an optional k/M/G suffix */
	CFG_SECONDS,				/* whole seconds, held in ms */
	CFG_MS,						/* whole milliseconds */
	CFG_BOOL					/* on|off (also true|false, 1|0) */
} cfg_type;

typedef struct cfg_entry {
	const char *name;			/* long option; env SSE_BRIDGE_<NAME> */
	cfg_type	type;
	void	   *var;
	const char *def;			/* default, in the option's own syntax */
	const char *arg;			/* metavariable shown by --help */
	const char *help;
} cfg_entry;

/* db stays the first entry (cfg_env reads DATABASE_URL into cfg_table[0]) */
static const cfg_entry cfg_table[] = {
	{"db", CFG_STRING, &cfg.db, "", "CONNINFO",
	 "database connection (default: libpq environment, or DATABASE_URL)"},
	{"listen", CFG_STRING, &cfg.listen, "127.0.0.1:8080", "HOST:PORT",
	 "address to serve on"},
	{"public-channels", CFG_STRING, &cfg.public_channels, "", "PATTERNS",
	 "comma-separated patterns ad-hoc subscribers may read (empty: ad hoc off)"},
	{"keepalive", CFG_SECONDS, &cfg.keepalive_ms, "15", "SECONDS",
	 "idle time before a keepalive comment"},
	{"retry", CFG_MS, &cfg.retry_ms, "3000", "MS",
	 "the retry: value sent to clients"},
	{"max-clients", CFG_UINT, &cfg.max_clients, "10000", "N",
	 "connection limit; further connections get 503"},
	{"client-queue", CFG_SIZE, &cfg.client_queue, "1M", "BYTES",
	 "output queue limit per client; a client over it is dropped"},
	{"cors-origin", CFG_STRING, &cfg.cors_origin, "", "ORIGINS",
	 "comma-separated origins (scheme://host[:port]) whose pages may read streams, "
	 "with credentials; * for any origin, without credentials (the helper /sse-bridge.js "
	 "is readable from any origin regardless)"},
	{"log-level", CFG_STRING, &cfg.log_level, "info", "LEVEL",
	 "error, warn, info or debug"},
	{"header-timeout", CFG_SECONDS, &cfg.header_timeout_ms, "10", "SECONDS",
	 "time allowed to send the request line and headers"},
	{"max-header-bytes", CFG_SIZE, &cfg.max_header_bytes, "8k", "BYTES",
	 "request line and headers larger than this get 431"},
	{"poll-interval", CFG_MS, &cfg.poll_interval_ms, "5000", "MS",
	 "backstop poll of the event log"},
	{"touch-interval", CFG_SECONDS, &cfg.touch_interval_ms, "10", "SECONDS",
	 "period of sse_touch and sse_expire calls"},
	{"replay-cache", CFG_SIZE, &cfg.replay_cache, "64M", "BYTES",
	 "recent events kept in memory for replays"},
	{"batch", CFG_UINT, &cfg.batch, "1000", "ROWS",
	 "rows per fetch from the event log"},
	{"filter-index", CFG_BOOL, &cfg.filter_index, "on", "on|off",
	 "index filters by key/value (off: evaluate every filter for every event)"},
	{"db-timeout", CFG_SECONDS, &cfg.db_timeout_ms, "10", "SECONDS",
	 "deadline for every database query; a link that misses it is reconnected"},
	{"prune-interval", CFG_SECONDS, &cfg.prune_interval_ms, "60", "SECONDS",
	 "period of sse_prune calls when the role may run it (0: never)"},
	{"max-memory", CFG_SIZE, &cfg.max_memory, "512M", "BYTES",
	 "memory bound: past 5/8 of it new streams get 503, past 3/4 the largest queues are dropped (0: none)"},
	{"workers", CFG_STRING, &cfg.workers_opt, "auto", "N",
	 "worker processes serving clients (auto: one per online CPU; 1: a single process, "
	 "no supervisor); with 2 or more a supervisor holds the database links"},
	{"db-pool", CFG_UINT, &cfg.db_pool, "1", "N",
	 "with --workers 2 or more: database links for opens and replays (the live link is one more)"},
	{"primary-db", CFG_STRING, &cfg.primary_db, "", "CONNINFO",
	 "on a hot standby: the primary, for sse_touch of the subscriptions read here (empty: "
	 "a bridge on the primary, or a scheduled job, must keep them from expiring)"},
	{"replay-poll", CFG_MS, &cfg.replay_poll_ms, "10", "MS",
	 "on a hot standby: how often the replay position is checked for new rows"},
	{"lag-wait", CFG_MS, &cfg.lag_wait_ms, "5000", "MS",
	 "on a hot standby: how long an open waits for replay to reach a resume point or "
	 "subscription it does not have yet (then 503, or 404 for an unknown subscription)"},
	{"demo", CFG_BOOL, &cfg.demo, "off", "on|off",
	 "serve the jobs demo page at / (the helper /sse-bridge.js is always served)"},
	{"jwt-key", CFG_STRING, &cfg.jwt_key, "", "FILE",
	 "verify JWTs with this key: an HMAC secret (the file's bytes, at least 32), a PEM public key, "
	 "or a JWKS {\"keys\":[...]} (several keys chosen by kid); SIGHUP reloads it (empty: no tokens)"},
	{"jwt-alg", CFG_STRING, &cfg.jwt_alg, "", "ALG",
	 "the one algorithm tokens may use: HS256 HS384 HS512 RS256 RS384 RS512 ES256 ES384 "
	 "(required unless the key file is a JWKS)"},
	{"jwt-issuer", CFG_STRING, &cfg.jwt_issuer, "", "ISS",
	 "required iss claim (empty: not checked)"},
	{"jwt-audience", CFG_STRING, &cfg.jwt_audience, "", "AUD",
	 "required aud claim, or an element of it (empty: not checked)"},
	{"jwt-leeway", CFG_SECONDS, &cfg.jwt_leeway_ms, "30", "SECONDS",
	 "clock skew allowed on exp and nbf"},
	{"jwt-cookie", CFG_STRING, &cfg.jwt_cookie, "sse_token", "NAME",
	 "cookie read for a token when there is no Authorization: Bearer header"},
	{"jwt-query", CFG_BOOL, &cfg.jwt_query, "off", "on|off",
	 "also accept a token in the access_token query parameter (it ends up in proxy logs)"},
};

#define CFG_N (sizeof(cfg_table) / sizeof(cfg_table[0]))

bool
cfg_parse_size(const char *s, uint64_t *out)
{
	char	   *end;
	unsigned long long v;
	uint64_t	mul = 1;

	if (!isdigit((unsigned char) s[0]))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return false;
	switch (*end) {
		case '\0': break;
		case 'k': case 'K': mul = 1024; end++; break;
		case 'm': case 'M': mul = 1024 * 1024; end++; break;
		case 'g': case 'G': mul = 1024 * 1024 * 1024; end++; break;
		default: return false;
	}
	if ((*end == 'B' || *end == 'b') && mul > 1)
		end++;
	if (*end != '\0' || v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

static bool
cfg_parse_uint(const char *s, uint64_t *out)
{
	char	   *end;

	if (!isdigit((unsigned char) s[0]))
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static bool
cfg_parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "on") == 0 || strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*out = true;
	else if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*out = false;
	else
		return false;
	return true;
}

/*
 * Settings that cannot change while the bridge runs: a reload that changes
 * one reports it and keeps the running value.  Every other setting is read
 * where it is used, or applied by a reload hook (bridge/reload.h).
 */
static const char *const cfg_fixed[] = {
	"db", "listen", "workers", "db-pool", "jwt-key", "primary-db", "replay-poll", "replay-cache", "filter-index", "db-timeout",
	"poll-interval", "touch-interval", "prune-interval",
};

bool
cfg_is_fixed(const char *name)
{
	for (size_t i = 0; i < sizeof(cfg_fixed) / sizeof(cfg_fixed[0]); i++)
		if (strcmp(cfg_fixed[i], name) == 0)
			return true;
	return false;
}

/* e's field in the settings s (the table points into cfg). */
static void *
cfg_field(const cfg_entry *e, cfg_settings *s)
{
	return (char *) s + ((const char *) e->var - (const char *) &cfg);
}

static const cfg_entry *
cfg_find(const char *name)
{
	for (size_t i = 0; i < CFG_N; i++)
		if (strcmp(cfg_table[i].name, name) == 0)
			return &cfg_table[i];
	return NULL;
}

/* Store value into e's field of s; on error say why (cfg_error) and return false. */
static bool
cfg_set(const cfg_entry *e, cfg_settings *s, const char *value, const char *origin)
{
	bool		ok = true;
	uint64_t	n;
	void	   *var = cfg_field(e, s);

	switch (e->type) {
		case CFG_STRING:
			{
				char	   *copy = strdup(value);

				if (copy == NULL) {
					cfg_fail("out of memory");
					return false;
				}
				free(*(char **) var);
				*(char **) var = copy;
			}
			break;
		case CFG_UINT:
		case CFG_MS:
			ok = cfg_parse_uint(value, (uint64_t *) var);
			break;
		case CFG_SECONDS:
			ok = cfg_parse_uint(value, &n) && n <= UINT64_MAX / 1000;
			if (ok)
				*(uint64_t *) var = n * 1000;
			break;
		case CFG_SIZE:
			ok = cfg_parse_size(value, (uint64_t *) var);
			break;
		case CFG_BOOL:
			ok = cfg_parse_bool(value, (bool *) var);
			break;
	}
	if (!ok)
		cfg_fail("%s: invalid value \"%.200s\" for %s", origin, value, e->name);
	return ok;
}

static void
cfg_env_name(const cfg_entry *e, char *buf, size_t size)
{
	size_t		n = (size_t) snprintf(buf, size, "SSE_BRIDGE_");

	for (const char *p = e->name; *p && n + 1 < size; p++)
		buf[n++] = *p == '-' ? '_' : (char) toupper((unsigned char) *p);
	buf[n] = '\0';
}

static bool
cfg_defaults(cfg_settings *s)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < CFG_N; i++)
		if (!cfg_set(&cfg_table[i], s, cfg_table[i].def, "default"))
			return false;
	return true;
}

static bool
cfg_env(cfg_settings *s)
{
	char		env[64];
	bool		db_set = false;

	for (size_t i = 0; i < CFG_N; i++) {
		const cfg_entry *e = &cfg_table[i];
		const char *v;

		cfg_env_name(e, env, sizeof(env));
		v = getenv(env);
		if (v != NULL && !cfg_set(e, s, v, env))
			return false;
		if (v != NULL && e->var == &cfg.db)
			db_set = true;
	}
	if (!db_set && s->db[0] == '\0' && getenv("DATABASE_URL"))
		return cfg_set(&cfg_table[0], s, getenv("DATABASE_URL"), "DATABASE_URL");	/* db */
	return true;
}

static char *
cfg_trim(char *b)
{
	char	   *e = b + strlen(b);

	while (*b == ' ' || *b == '\t')
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		e--;
	*e = '\0';
	return b;
}

/* Read path into s; false with FILE:LINE and the reason in cfg_error. */
bool
cfg_read_file(const char *path, cfg_settings *s)
{
	FILE	   *f = fopen(path, "r");
	char	   *line = NULL;
	size_t		cap = 0;
	unsigned	lineno = 0;
	unsigned	seen[CFG_N];
	bool		ok = true;

	if (f == NULL) {
		cfg_fail("cannot read the configuration file %s: %s", path, strerror(errno));
		return false;
	}
	memset(seen, 0, sizeof(seen));
	errno = 0;
	while (ok && getline(&line, &cap, f) != -1) {
		char	   *p = cfg_trim(line), *eq, *name, *value;
		char		where[300];
		const cfg_entry *e;

		lineno++;
		if (*p == '\0' || *p == '#')
			continue;
		snprintf(where, sizeof(where), "%.256s:%u", path, lineno);
		if ((eq = strchr(p, '=')) == NULL) {
			cfg_fail("%s: missing \"=\" (write name = value)", where);
			ok = false;
			break;
		}
		*eq = '\0';
		name = cfg_trim(p);
		value = cfg_trim(eq + 1);
		if ((e = cfg_find(name)) == NULL) {
			cfg_fail("%s: unknown setting \"%.60s\"", where, name);
			ok = false;
			break;
		}
		if (seen[e - cfg_table]) {
			cfg_fail("%s: %s is already set on line %u", where, name, seen[e - cfg_table]);
			ok = false;
			break;
		}
		seen[e - cfg_table] = lineno;
		if (value[0] == '"') {
			size_t		n = strlen(value);

			if (n < 2 || value[n - 1] != '"') {
				cfg_fail("%s: the value of %s has no closing quote", where, name);
				ok = false;
				break;
			}
			value[n - 1] = '\0';
			value++;
		}
		ok = cfg_set(e, s, value, where);
	}
	if (ok && ferror(f)) {
		cfg_fail("cannot read the configuration file %s: %s", path, strerror(errno ? errno : EIO));
		ok = false;
	}
	free(line);
	fclose(f);
	return ok;
}

/* ---- --cors-origin ---- */

#define CFG_ORIGIN_MAX 200

static bool
cfg_host_char(char c)
{
	return isalnum((unsigned char) c) || c == '-' || c == '.';
}

/*
 * One origin, b..e, normalised into out (room for CFG_ORIGIN_MAX + 1):
 * scheme and host in lower case, no default port, no trailing "/".  NULL,
 * or the reason it is not an origin.
 */
static const char *
cfg_origin_one(const char *b, const char *e, char *out)
{
	const char *p = b, *h, *he, *port = NULL;
	bool		https;
	unsigned long pv = 0;
	size_t		n;

	if ((size_t) (e - b) > CFG_ORIGIN_MAX)
		return "too long";
	if (e - b == 4 && strncasecmp(b, "null", 4) == 0)
		return "\"null\" is the origin of sandboxed and local pages and cannot be trusted";
	if (!(h = memmem(b, (size_t) (e - b), "://", 3)))
		return "not an origin; write scheme://host[:port], e.g. http://127.0.0.1:8000";
	if (h - b == 4 && strncasecmp(b, "http", 4) == 0)
		https = false;
	else if (h - b == 5 && strncasecmp(b, "https", 5) == 0)
		https = true;
	else
		return "the scheme must be http or https";
	h += 3;
	for (he = h; he < e && *he != '/' && *he != '?' && *he != '#'; he++)
		if (*he == '@')
			return "has user information (user@); an origin has none";
	if (*h == '[') {			/* an IPv6 literal */
		for (p = h + 1; p < he && (isxdigit((unsigned char) *p) || *p == ':' || *p == '.'); p++)
			;
		if (p == h + 1 || p >= he || *p != ']')
			return "bad host";
		p++;
	} else {
		for (p = h; p < he && cfg_host_char(*p); p++)
			;
		if (p == h)
			return "has no host";
	}
	if (p < he && *p == ':') {
		port = ++p;
		for (; p < he && isdigit((unsigned char) *p) && pv <= 65535; p++)
			pv = pv * 10 + (unsigned long) (*p - '0');
		if (p == port || p < he || pv == 0 || pv > 65535)
			return "bad port";
	}
	if (p < he)
		return "bad host";
	p = he;
	if (p < e && *p == '/')
		p++;					/* a trailing slash is dropped */
	if (p < e)
		return *p == '?' ? "has a query; an origin is scheme://host[:port] only" :
			*p == '#' ? "has a fragment; an origin is scheme://host[:port] only" :
			"has a path; an origin is scheme://host[:port] only";
	n = (size_t) snprintf(out, CFG_ORIGIN_MAX + 1, "%s://", https ? "https" : "http");
	for (const char *q = h; q < (port ? port - 1 : he); q++)
		out[n++] = (char) tolower((unsigned char) *q);
	if (port && pv != (https ? 443u : 80u))
		n += (size_t) snprintf(out + n, CFG_ORIGIN_MAX + 1 - n, ":%lu", pv);
	out[n] = '\0';
	return NULL;
}

char *
cfg_origin_list(const char *in, char *why, size_t whysize)
{
	size_t		cap = strlen(in) + 2, len = 0;
	char	   *out = malloc(cap + 16);
	char		one[CFG_ORIGIN_MAX + 1];
	bool		star = false, any = false;

	if (out == NULL) {
		snprintf(why, whysize, "out of memory");
		return NULL;
	}
	out[0] = '\0';
	for (const char *p = in; *p;) {
		const char *b = p, *e = strchr(p, ',');
		const char *err = NULL;

		if (e == NULL)
			e = p + strlen(p);
		p = *e ? e + 1 : e;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (b == e)
			continue;
		if (e - b == 1 && *b == '*')
			star = true;
		else if ((err = cfg_origin_one(b, e, one)) != NULL) {
			snprintf(why, whysize, "\"%.*s\": %s", (int) (e - b > 80 ? 80 : e - b), b, err);
			free(out);
			return NULL;
		} else if (!any || !cfg_origin_in(out, one)) {
			/* the normal form is never longer than what it came from */
			len += (size_t) snprintf(out + len, cap + 16 - len, "%s%s", any ? "," : "", one);
			any = true;
		}
	}
	if (star && any) {
		snprintf(why, whysize, "\"*\" (any origin) cannot be combined with a list of origins");
		free(out);
		return NULL;
	}
	if (star)
		strcpy(out, "*");
	return out;
}

bool
cfg_origin_in(const char *list, const char *origin)
{
	size_t		olen = strlen(origin);

	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t		n = e ? (size_t) (e - p) : strlen(p);

		if (n == olen && memcmp(p, origin, n) == 0)
			return true;
		p += n + (e != NULL);
	}
	return false;
}

/*
 * --workers: "auto" (the online CPUs) or a whole number from 1 to
 * CFG_WORKERS_MAX, written without sign, spaces or suffix.
 */
static bool
cfg_workers(cfg_settings *cs)
{
	const char *s = cs->workers_opt;
	char	   *end;
	unsigned long long v;
	long		ncpu;

	if (strcmp(s, "auto") == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		cs->workers = ncpu < 1 ? 1 : ncpu > CFG_WORKERS_MAX ? CFG_WORKERS_MAX : (uint64_t) ncpu;
		return true;
	}
	if (s[0] == '-') {
		cfg_fail("--workers \"%s\": a negative count of processes means nothing; "
				"give 1 to %d, or auto", s, CFG_WORKERS_MAX);
		return false;
	}
	if (!isdigit((unsigned char) s[0])) {
		cfg_fail("--workers \"%s\" is not a number; give 1 to %d, or auto "
				"(one per online CPU)", s, CFG_WORKERS_MAX);
		return false;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0') {
		cfg_fail("--workers \"%s\" is not a whole number; give 1 to %d, or auto",
				s, CFG_WORKERS_MAX);
		return false;
	}
	if (v == 0) {
		cfg_fail("--workers 0: at least one process must serve clients; "
				"give 1 to %d, or auto", CFG_WORKERS_MAX);
		return false;
	}
	if (errno != 0 || v > CFG_WORKERS_MAX) {
		cfg_fail("--workers %s is too many; at most %d worker processes "
				"(this machine has %ld online CPUs)", s, CFG_WORKERS_MAX,
				sysconf(_SC_NPROCESSORS_ONLN));
		return false;
	}
	cs->workers = v;
	return true;
}

static bool
cfg_validate(cfg_settings *s)
{
	log_level	lv;
	char		why[256];
	char	   *origins;
	scope	   *pub;

	if (!log_parse_level(s->log_level, &lv)) {
		cfg_fail("unknown log level \"%.60s\"", s->log_level);
		return false;
	}
	if (s->keepalive_ms == 0 || s->batch == 0 || s->max_clients == 0 ||
		s->poll_interval_ms == 0 || s->touch_interval_ms == 0 || s->header_timeout_ms == 0 ||
		s->db_timeout_ms == 0 || s->replay_poll_ms == 0) {
		cfg_fail("keepalive, batch, max-clients, poll-interval, "
				 "touch-interval, header-timeout, db-timeout and replay-poll must be positive");
		return false;
	}
	if (s->max_header_bytes < 256 || s->max_header_bytes > 1024 * 1024 ||
		s->batch > 100000 || s->retry_ms > 86400000 || s->keepalive_ms > 86400000 ||
		s->db_timeout_ms > 3600000 || s->prune_interval_ms > UINT64_C(86400000) * 7 ||
		s->replay_poll_ms > 60000 || s->lag_wait_ms > 600000) {
		cfg_fail("a setting is out of range");
		return false;
	}
	if (s->max_memory != 0 && (s->max_memory < (16 << 20) || s->replay_cache > s->max_memory / 4 ||
							   s->client_queue > s->max_memory / 8)) {
		cfg_fail("--max-memory must be at least 16M, 4 x --replay-cache and 8 x --client-queue (or 0)");
		return false;
	}
	if (!cfg_workers(s))
		return false;
	if (s->workers >= 2 && s->max_memory != 0 &&
		(s->max_memory / (s->workers + 1) < (16 << 20) ||
		 s->client_queue > s->max_memory / (s->workers + 1) / 8)) {
		cfg_fail("--max-memory %llu is shared by %llu workers and the supervisor "
				"(%llu bytes each); a share must be at least 16M and 8 x --client-queue: give at least "
				"%llu, or fewer --workers", (unsigned long long) s->max_memory,
				(unsigned long long) s->workers,
				(unsigned long long) (s->max_memory / (s->workers + 1)),
				(unsigned long long) ((s->workers + 1) *
									  (s->client_queue * 8 > (16 << 20) ? s->client_queue * 8 : (16 << 20))));
		return false;
	}
	if (s->db_pool == 0 || s->db_pool > 64) {
		cfg_fail("--db-pool must be from 1 to 64");
		return false;
	}
	if ((origins = cfg_origin_list(s->cors_origin, why, sizeof(why))) == NULL) {
		cfg_fail("invalid --cors-origin: %s", why);
		return false;
	}
	free(s->cors_origin);
	s->cors_origin = origins;
	why[0] = '\0';
	if ((pub = scope_new(s->public_channels, why, sizeof(why))) == NULL) {
		cfg_fail("invalid --public-channels: %s", why[0] ? why : "out of memory");
		return false;
	}
	scope_free(pub);
	return true;
}

/* ---- the command line, kept for reloads ---- */

typedef struct cfg_arg {
	const cfg_entry *e;
	char	   *value;
} cfg_arg;

static cfg_arg *cfg_args;
static size_t cfg_nargs;
static char *cfg_file_arg;		/* --config, "" for none; NULL: not given */

/* Defaults, the file, the environment, the command line; not validated. */
static bool
cfg_build(cfg_settings *s)
{
	if (!cfg_defaults(s))
		return false;
	if (cfg_file != NULL && !cfg_read_file(cfg_file, s))
		return false;
	if (!cfg_env(s))
		return false;
	for (size_t i = 0; i < cfg_nargs; i++)
		if (!cfg_set(cfg_args[i].e, s, cfg_args[i].value, "command line"))
			return false;
	return true;
}

/* Which file: --config, else $SSE_BRIDGE_CONFIG, else the default if it exists. */
static bool
cfg_choose_file(void)
{
	const char *path = cfg_file_arg ? cfg_file_arg : getenv("SSE_BRIDGE_CONFIG");

	if (path == NULL && cfg_default_file != NULL && access(cfg_default_file, F_OK) == 0)
		path = cfg_default_file;
	if (path == NULL || path[0] == '\0')
		return true;
	if ((cfg_file = strdup(path)) == NULL) {
		cfg_fail("out of memory");
		return false;
	}
	return true;
}

static void
cfg_usage(FILE *out)
{
	char		env[64];

	fprintf(out, "Usage: sse-bridge [OPTION]...\n"
			"Stream rows of the sse_bridge event log to Server-Sent Events clients.\n\n");
	for (size_t i = 0; i < CFG_N; i++) {
		const cfg_entry *e = &cfg_table[i];
		char		left[64];

		cfg_env_name(e, env, sizeof(env));
		snprintf(left, sizeof(left), "--%s %s", e->name, e->arg);
		fprintf(out, "  %-32s %s\n  %-32s [default: %s] [env: %s]%s\n",
				left, e->help, "", e->def[0] ? e->def : "none", env,
				cfg_is_fixed(e->name) ? " [restart]" : "");
	}
	fprintf(out, "  %-32s %s\n  %-32s [default: %s if it exists] [env: SSE_BRIDGE_CONFIG]\n",
			"--config FILE", "read settings from FILE (\"\": no file)", "",
			cfg_default_file ? cfg_default_file : "none");
	fprintf(out, "  %-32s %s\n", "--check-config", "check the settings and exit (0: valid, 2: not)");
	fprintf(out, "  %-32s %s\n", "--man", "print the manual page sse-bridge(8)");
	fprintf(out, "  %-32s %s\n  %-32s %s\n", "-h, --help", "show this help",
			"-V, --version", "print the version");
	fprintf(out, "\nPrecedence: command line, environment, configuration file, defaults.\n"
			"SIGHUP rereads them; settings marked [restart] keep their running value.\n");
}

/* Text for roff: a leading "." or "'" and every "\" and "-" escaped. */
static void
cfg_roff(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

static void
cfg_man_item(FILE *out, const char *opt, const char *arg, const char *help)
{
	fputs(arg ? ".TP\n.BI \"" : ".TP\n.B \"", out);
	cfg_roff(out, opt);
	if (arg) {
		fputs(" \" \"", out);
		cfg_roff(out, arg);
	}
	fputs("\"\n", out);
	cfg_roff(out, help);
	fputc('\n', out);
}

void
cfg_man(FILE *out)
{
	char		env[64];

	fprintf(out, ".\\\" Generated by sse-bridge --man from its settings table; do not edit.\n"
			".TH SSE\\-BRIDGE 8 \"\" \"sse-bridge %s\" \"System Administration\"\n"
			".SH NAME\nsse\\-bridge \\- stream the sse_bridge event log of PostgreSQL to Server\\-Sent Events clients\n"
			".SH SYNOPSIS\n.B sse\\-bridge\n[\\fIOPTION\\fR]...\n"
			".SH DESCRIPTION\n"
			".B sse\\-bridge\nserves HTTP streams of Server\\-Sent Events read from the event log of the\n"
			".B sse_bridge\nPostgreSQL extension.\n"
			"Settings come from, in order of precedence: the command line, the environment\n"
			"(\\fBSSE_BRIDGE_\\fINAME\\fR, the option name in upper case with \\fB_\\fR for \\fB\\-\\fR),\n"
			"the configuration file, and the defaults.\n"
			".SH OPTIONS\n", BRIDGE_VERSION);
	for (size_t i = 0; i < CFG_N; i++) {
		const cfg_entry *e = &cfg_table[i];
		char		opt[64], more[256];

		snprintf(opt, sizeof(opt), "--%s", e->name);
		cfg_man_item(out, opt, e->arg, e->help);
		cfg_env_name(e, env, sizeof(env));
		snprintf(more, sizeof(more), "Default: %s. Environment: %s.%s",
				 e->def[0] ? e->def : "none", env,
				 cfg_is_fixed(e->name) ? " A reload keeps the running value (restart to change it)." : "");
		fputs(".br\n", out);
		cfg_roff(out, more);
		fputc('\n', out);
	}
	cfg_man_item(out, "--config", "FILE", "read settings from FILE; an empty FILE reads none. "
				 "Without it, SSE_BRIDGE_CONFIG names the file, else the default file is read when it exists.");
	cfg_man_item(out, "--check-config", NULL, "check the settings (file, environment and command line) "
				 "and exit: 0 when they are valid, 2 with the reason (FILE:LINE for a line of the file) when not.");
	cfg_man_item(out, "--man", NULL, "print this manual page.");
	cfg_man_item(out, "-h, --help", NULL, "show the options and exit.");
	cfg_man_item(out, "-V, --version", NULL, "print the version and exit.");
	fprintf(out, ".SH FILES\n.TP\n.I ");
	cfg_roff(out, cfg_default_file ? cfg_default_file : "none");
	fprintf(out, "\nThe configuration file: one \\fIname\\fR \\fB=\\fR \\fIvalue\\fR a line, names as the\n"
			"long options without \\fB\\-\\-\\fR. Blank lines and lines starting with \\fB#\\fR are ignored;\n"
			"elsewhere \\fB#\\fR is part of the value. A value may be written in double quotes.\n"
			"An unknown name, a line without \\fB=\\fR, a bad value or a repeated name is an error naming\n"
			"the file and line.\n"
			".SH SIGNALS\n.TP\n.B SIGHUP\n"
			"Reread the configuration file (and the environment and command line given at start)\n"
			"without closing any stream. Settings marked as needing a restart keep their running\n"
			"value, and the log says so. An invalid file is reported and the running settings stay.\n"
			".TP\n.B SIGTERM, SIGINT\nStop accepting, end every stream after its queued bytes, and exit.\n"
			".SH SYSTEMD\nUnder systemd (\\fBType=notify\\fR) the bridge reports READY=1 once both of its\n"
			"database links are up, RELOADING=1 during a reload, STOPPING=1 at shutdown, and sends\n"
			"WATCHDOG=1 from its event loop when \\fBWatchdogSec=\\fR is set. Under journald its log lines\n"
			"carry their priority and no timestamp.\n"
			".SH EXIT STATUS\n0 after an orderly shutdown, 1 when it cannot start, 2 for invalid settings.\n"
			".SH SEE ALSO\n.BR systemd.service (5),\n.BR psql (1)\n");
}

void
cfg_settings_free(cfg_settings *s)
{
	for (size_t i = 0; i < CFG_N; i++) {
		if (cfg_table[i].type == CFG_STRING) {
			char	  **p = cfg_field(&cfg_table[i], s);

			free(*p);
			*p = NULL;
		}
	}
}

cfg_result
cfg_load(int argc, char **argv)
{
	struct option opts[CFG_N + 6];
	bool		check = false;
	cfg_settings s = {0};

	cfg_free();
	for (size_t i = 0; i < CFG_N; i++)
		opts[i] = (struct option) {cfg_table[i].name, required_argument, NULL, (int) (256 + i)};
	opts[CFG_N] = (struct option) {"help", no_argument, NULL, 'h'};
	opts[CFG_N + 1] = (struct option) {"version", no_argument, NULL, 'V'};
	opts[CFG_N + 2] = (struct option) {"config", required_argument, NULL, 'c'};
	opts[CFG_N + 3] = (struct option) {"check-config", no_argument, NULL, 'k'};
	opts[CFG_N + 4] = (struct option) {"man", no_argument, NULL, 'm'};
	opts[CFG_N + 5] = (struct option) {NULL, 0, NULL, 0};
	if ((cfg_args = calloc((size_t) argc + 1, sizeof(*cfg_args))) == NULL) {
		fprintf(stderr, "sse-bridge: out of memory\n");
		return CFG_EXIT_ERROR;
	}
	optind = 1;
	for (;;) {
		int			c = getopt_long(argc, argv, "hV", opts, NULL);

		if (c == -1)
			break;
		switch (c) {
			case 'h':
				cfg_usage(stdout);
				return CFG_EXIT_OK;
			case 'V':
				printf("sse-bridge %s\n", BRIDGE_VERSION);
				return CFG_EXIT_OK;
			case 'm':
				cfg_man(stdout);
				return CFG_EXIT_OK;
			case 'k':
				check = true;
				continue;
			case 'c':
				free(cfg_file_arg);
				if ((cfg_file_arg = strdup(optarg)) == NULL) {
					fprintf(stderr, "sse-bridge: out of memory\n");
					return CFG_EXIT_ERROR;
				}
				continue;
			default:
				break;
		}
		if (c < 256 || c >= (int) (256 + CFG_N)) {
			fprintf(stderr, "Try 'sse-bridge --help' for more information.\n");
			return CFG_EXIT_ERROR;
		}
		cfg_args[cfg_nargs].e = &cfg_table[c - 256];
		if ((cfg_args[cfg_nargs++].value = strdup(optarg)) == NULL) {
			fprintf(stderr, "sse-bridge: out of memory\n");
			return CFG_EXIT_ERROR;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sse-bridge: unexpected argument \"%s\"\n", argv[optind]);
		return CFG_EXIT_ERROR;
	}
	if (!cfg_choose_file() || !cfg_build(&s) || !cfg_validate(&s)) {
		cfg_settings_free(&s);
		/* under journald with the priority of an error, like log_error's lines */
		fprintf(stderr, "%ssse-bridge: %s\n", log_to_journal() ? "<3>" : "", cfg_why);
		return CFG_EXIT_ERROR;
	}
	cfg = s;
	(void) log_parse_level(cfg.log_level, &log_threshold);
	if (check) {
		printf("sse-bridge: the settings are valid (configuration file: %s)\n", cfg_file ? cfg_file : "none");
		return CFG_EXIT_OK;
	}
	return CFG_OK;
}

bool
cfg_reread(cfg_settings *next)
{
	if (!cfg_build(next)) {
		cfg_settings_free(next);
		return false;
	}
	for (size_t i = 0; i < CFG_N; i++) {
		const cfg_entry *e = &cfg_table[i];
		void	   *nv = cfg_field(e, next);
		bool		same;

		if (!cfg_is_fixed(e->name))
			continue;
		if (e->type == CFG_STRING)
			same = strcmp(*(char **) nv, *(char **) e->var) == 0;
		else if (e->type == CFG_BOOL)
			same = *(bool *) nv == *(bool *) e->var;
		else
			same = *(uint64_t *) nv == *(uint64_t *) e->var;
		if (same)
			continue;
		log_warn("reload: %s cannot change while running (restart to apply it); keeping the running value",
				 e->name);
		if (e->type == CFG_STRING) {
			char	   *copy = strdup(*(char **) e->var);

			if (copy == NULL) {
				cfg_fail("out of memory");
				cfg_settings_free(next);
				return false;
			}
			free(*(char **) nv);
			*(char **) nv = copy;
		} else if (e->type == CFG_BOOL)
			*(bool *) nv = *(bool *) e->var;
		else
			*(uint64_t *) nv = *(uint64_t *) e->var;
	}
	if (!cfg_validate(next)) {
		cfg_settings_free(next);
		return false;
	}
	return true;
}

size_t
cfg_apply(cfg_settings *next)
{
	size_t		changed = 0;

	for (size_t i = 0; i < CFG_N; i++) {
		const cfg_entry *e = &cfg_table[i];
		void	   *nv = cfg_field(e, next);
		bool		same;

		if (e->type == CFG_STRING)
			same = strcmp(*(char **) nv, *(char **) e->var) == 0;
		else if (e->type == CFG_BOOL)
			same = *(bool *) nv == *(bool *) e->var;
		else
			same = *(uint64_t *) nv == *(uint64_t *) e->var;
		if (same)
			continue;
		if (e->type == CFG_STRING) {
			char	   *t = *(char **) nv;

			*(char **) nv = *(char **) e->var;
			*(char **) e->var = t;
		} else if (e->type == CFG_BOOL)
			*(bool *) e->var = *(bool *) nv;
		else
			*(uint64_t *) e->var = *(uint64_t *) nv;
		log_info("reload: %s changed", e->name);
		changed++;
	}
	(void) log_parse_level(cfg.log_level, &log_threshold);
	cfg_settings_free(next);
	return changed;
}

void
cfg_free(void)
{
	cfg_settings_free(&cfg);
	for (size_t i = 0; i < cfg_nargs; i++)
		free(cfg_args[i].value);
	free(cfg_args);
	cfg_args = NULL;
	cfg_nargs = 0;
	free(cfg_file_arg);
	cfg_file_arg = NULL;
	free(cfg_file);
	cfg_file = NULL;
}
