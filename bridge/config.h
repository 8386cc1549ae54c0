/*
 * config.h - the bridge's settings, filled from defaults, the configuration
 * file, the environment (SSE_BRIDGE_<NAME>) and the command line, in that
 * order of precedence (config.c describes the file).
 */
#ifndef BRIDGE_CONFIG_H
#define BRIDGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BRIDGE_VERSION "1.3.0"

/* More worker processes than this is a mistake, not a setting. */
#define CFG_WORKERS_MAX 256
#ifndef CFG_DEFAULT_FILE
#define CFG_DEFAULT_FILE "/etc/sse-bridge/sse-bridge.conf"
#endif

/*
 * Every duration is held in milliseconds and every size in bytes, whatever
 * unit its option is written in: cfg_load converts once, and no user of cfg
 * converts again.
 */
typedef struct cfg_settings {
	char	   *db;				/* libpq conninfo, "" = libpq environment */
	char	   *listen;			/* HOST:PORT */
	char	   *public_channels; /* comma-separated patterns, "" = ad hoc off */
	uint64_t	keepalive_ms;	/* silence before a comment (option: seconds) */
	uint64_t	retry_ms;		/* sent as "retry:" (option: ms) */
	uint64_t	max_clients;	/* open connections */
	uint64_t	client_queue;	/* bytes queued per client before a drop */
	char	   *cors_origin;	/* after cfg_load: "", "*" or normalised origins, comma-separated */
	char	   *log_level;
	uint64_t	header_timeout_ms; /* to receive a full request head (option: seconds) */
	uint64_t	max_header_bytes; /* request line + headers */
	uint64_t	poll_interval_ms; /* between backstop polls of the log (option: ms) */
	uint64_t	touch_interval_ms; /* between sse_touch/sse_expire calls (option: seconds) */
	uint64_t	replay_cache;	/* bytes of recent events kept in memory */
	uint64_t	batch;			/* rows per fetch */
	bool		filter_index;	/* index filters by key/value (off: scan them all) */
	uint64_t	db_timeout_ms;	/* a database query may take (option: seconds) */
	uint64_t	prune_interval_ms; /* between sse_prune calls, 0 = never (option: seconds) */
	bool		demo;			/* serve the demo page at / */
	uint64_t	max_memory;		/* bytes; 0 = no bound (mem.h) */
	char	   *workers_opt;	/* --workers as written: "auto" or a number */
	uint64_t	workers;		/* after cfg_load: 1..CFG_WORKERS_MAX */
	uint64_t	db_pool;		/* work links of a supervisor (--workers >= 2) */
	char	   *jwt_key;		/* key file: secret, PEM public key or JWKS; "" = no tokens */
	char	   *jwt_alg;		/* "" = taken from the JWKS */
	char	   *jwt_issuer;		/* "" = not checked */
	char	   *jwt_audience;	/* "" = not checked */
	uint64_t	jwt_leeway_ms;	/* clock skew allowed on exp and nbf (option: seconds) */
	char	   *jwt_cookie;		/* cookie holding a token */
	bool		jwt_query;		/* accept ?access_token= */
	char	   *primary_db;		/* conninfo for touches from a standby, "" = none */
	uint64_t	replay_poll_ms;	/* between replay-position polls on a standby (option: ms) */
	uint64_t	lag_wait_ms;	/* a standby waits this long for replay before answering (option: ms) */
} cfg_settings;

extern cfg_settings cfg;

typedef enum cfg_result {
	CFG_OK,					/* run */
	CFG_EXIT_OK,			/* --help, --version, --man printed, or --check-config passed */
	CFG_EXIT_ERROR			/* bad option, message printed */
} cfg_result;

/* Read when it exists and neither --config nor SSE_BRIDGE_CONFIG names a file. */
extern const char *cfg_default_file;
/* The file in use (NULL: none), chosen once by cfg_load. */
extern char *cfg_file;

/*
 * Fill cfg from defaults, the file, environment and argv (kept for
 * cfg_reread).  Strings in cfg are owned by the module and freed by
 * cfg_free().  A failure prints its reason on stderr.
 */
cfg_result cfg_load(int argc, char **argv);
void cfg_free(void);

/* Why the last cfg_load, cfg_reread or cfg_read_file failed. */
const char *cfg_error(void);

/*
 * A reload: the same sources again into *next, validated.  A setting that
 * cannot change while running (cfg_is_fixed) and differs is logged and
 * keeps its running value in *next.  False (next freed): see cfg_error().
 */
bool cfg_reread(cfg_settings *next);

/* Move next's values into cfg, log each change, free next; returns the number changed. */
size_t cfg_apply(cfg_settings *next);
void cfg_settings_free(cfg_settings *s);

/* Read one configuration file into s (over what s holds). */
bool cfg_read_file(const char *path, cfg_settings *s);

/* Does the setting keep its running value on a reload? */
bool cfg_is_fixed(const char *name);

/* The manual page sse-bridge(8), in roff, from the settings table. */
void cfg_man(FILE *out);

/* Parse "123", "64k", "1M", "2G" (binary units) into *out. */
bool cfg_parse_size(const char *s, uint64_t *out);

/*
 * A --cors-origin value as a new string: "", "*", or its origins
 * normalised (scheme and host in lower case, the default port and a
 * trailing "/" dropped, duplicates dropped) and joined by ",".  NULL with
 * the reason in why when an item is not an http(s) origin (a path, query,
 * fragment, user information, another scheme) or "*" is not alone.
 */
char	   *cfg_origin_list(const char *in, char *why, size_t whysize);

/* Is origin one of the items of a list made by cfg_origin_list? */
bool		cfg_origin_in(const char *list, const char *origin);

#endif
