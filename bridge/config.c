/*
 * config.c - one table of settings drives defaults, environment variables,
 * getopt_long, --help and --version.
 *
 * Invariants: every entry in cfg_table names a field of cfg; string fields
 * always point at heap copies owned by this module (never at argv or environ).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

cfg_settings cfg;

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

/* Store value into e's variable; on error print a message and return false. */
static bool
cfg_set(const cfg_entry *e, const char *value, const char *origin)
{
	bool		ok = true;
	uint64_t	n;

	switch (e->type) {
		case CFG_STRING:
			free(*(char **) e->var);
			*(char **) e->var = strdup(value);
			ok = *(char **) e->var != NULL;
			break;
		case CFG_UINT:
		case CFG_MS:
			ok = cfg_parse_uint(value, (uint64_t *) e->var);
			break;
		case CFG_SECONDS:
			ok = cfg_parse_uint(value, &n) && n <= UINT64_MAX / 1000;
			if (ok)
				*(uint64_t *) e->var = n * 1000;
			break;
		case CFG_SIZE:
			ok = cfg_parse_size(value, (uint64_t *) e->var);
			break;
		case CFG_BOOL:
			ok = cfg_parse_bool(value, (bool *) e->var);
			break;
	}
	if (!ok)
		fprintf(stderr, "sse-bridge: invalid value \"%s\" for %s (from %s)\n",
				value, e->name, origin);
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
		fprintf(out, "  %-32s %s\n  %-32s [default: %s] [env: %s]\n",
				left, e->help, "", e->def[0] ? e->def : "none", env);
	}
	fprintf(out, "  %-32s %s\n  %-32s %s\n", "-h, --help", "show this help",
			"-V, --version", "print the version");
}

static bool
cfg_defaults_and_env(void)
{
	char		env[64];

	for (size_t i = 0; i < CFG_N; i++) {
		const cfg_entry *e = &cfg_table[i];
		const char *v;

		if (!cfg_set(e, e->def, "default"))
			return false;
		cfg_env_name(e, env, sizeof(env));
		v = getenv(env);
		if (v != NULL && !cfg_set(e, v, env))
			return false;
	}
	if (cfg.db[0] == '\0' && getenv("SSE_BRIDGE_DB") == NULL && getenv("DATABASE_URL"))
		return cfg_set(&cfg_table[0], getenv("DATABASE_URL"), "DATABASE_URL");
	return true;
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

static bool
cfg_validate(void)
{
	log_level	lv;
	char		why[256];
	char	   *origins;

	if (!log_parse_level(cfg.log_level, &lv)) {
		fprintf(stderr, "sse-bridge: unknown log level \"%s\"\n", cfg.log_level);
		return false;
	}
	log_threshold = lv;
	if (cfg.keepalive_ms == 0 || cfg.batch == 0 || cfg.max_clients == 0 ||
		cfg.poll_interval_ms == 0 || cfg.touch_interval_ms == 0 || cfg.header_timeout_ms == 0 ||
		cfg.db_timeout_ms == 0 || cfg.replay_poll_ms == 0) {
		fprintf(stderr, "sse-bridge: keepalive, batch, max-clients, poll-interval, "
				"touch-interval, header-timeout, db-timeout and replay-poll must be positive\n");
		return false;
	}
	if (cfg.max_header_bytes < 256 || cfg.max_header_bytes > 1024 * 1024 ||
		cfg.batch > 100000 || cfg.retry_ms > 86400000 || cfg.keepalive_ms > 86400000 ||
		cfg.db_timeout_ms > 3600000 || cfg.prune_interval_ms > UINT64_C(86400000) * 7 ||
		cfg.replay_poll_ms > 60000 || cfg.lag_wait_ms > 600000) {
		fprintf(stderr, "sse-bridge: a setting is out of range\n");
		return false;
	}
	if (cfg.max_memory != 0 && (cfg.max_memory < (16 << 20) || cfg.replay_cache > cfg.max_memory / 4 ||
								cfg.client_queue > cfg.max_memory / 8)) {
		fprintf(stderr, "sse-bridge: --max-memory must be at least 16M, 4 x --replay-cache "
				"and 8 x --client-queue (or 0)\n");
		return false;
	}
	if ((origins = cfg_origin_list(cfg.cors_origin, why, sizeof(why))) == NULL) {
		fprintf(stderr, "sse-bridge: invalid --cors-origin: %s\n", why);
		return false;
	}
	free(cfg.cors_origin);
	cfg.cors_origin = origins;
	return true;
}

cfg_result
cfg_load(int argc, char **argv)
{
	struct option opts[CFG_N + 3];

	if (!cfg_defaults_and_env())
		return CFG_EXIT_ERROR;
	for (size_t i = 0; i < CFG_N; i++)
		opts[i] = (struct option) {cfg_table[i].name, required_argument, NULL, (int) (256 + i)};
	opts[CFG_N] = (struct option) {"help", no_argument, NULL, 'h'};
	opts[CFG_N + 1] = (struct option) {"version", no_argument, NULL, 'V'};
	opts[CFG_N + 2] = (struct option) {NULL, 0, NULL, 0};
	optind = 1;
	for (;;) {
		int			c = getopt_long(argc, argv, "hV", opts, NULL);

		if (c == -1)
			break;
		if (c == 'h') {
			cfg_usage(stdout);
			return CFG_EXIT_OK;
		}
		if (c == 'V') {
			printf("sse-bridge %s\n", BRIDGE_VERSION);
			return CFG_EXIT_OK;
		}
		if (c < 256 || c >= (int) (256 + CFG_N)) {
			fprintf(stderr, "Try 'sse-bridge --help' for more information.\n");
			return CFG_EXIT_ERROR;
		}
		if (!cfg_set(&cfg_table[c - 256], optarg, "command line"))
			return CFG_EXIT_ERROR;
	}
	if (optind < argc) {
		fprintf(stderr, "sse-bridge: unexpected argument \"%s\"\n", argv[optind]);
		return CFG_EXIT_ERROR;
	}
	return cfg_validate() ? CFG_OK : CFG_EXIT_ERROR;
}

void
cfg_free(void)
{
	for (size_t i = 0; i < CFG_N; i++) {
		if (cfg_table[i].type == CFG_STRING) {
			free(*(char **) cfg_table[i].var);
			*(char **) cfg_table[i].var = NULL;
		}
	}
}
