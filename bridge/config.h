/*
 * config.h - the bridge's settings, filled from defaults, the environment
 * (SSE_BRIDGE_<NAME>) and the command line, in that order of precedence.
 */
#ifndef BRIDGE_CONFIG_H
#define BRIDGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BRIDGE_VERSION "0.1.0"

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
	char	   *primary_db;		/* conninfo for touches from a standby, "" = none */
	uint64_t	replay_poll_ms;	/* between replay-position polls on a standby (option: ms) */
	uint64_t	lag_wait_ms;	/* a standby waits this long for replay before answering (option: ms) */
} cfg_settings;

extern cfg_settings cfg;

typedef enum cfg_result {
	CFG_OK,					/* run */
	CFG_EXIT_OK,			/* --help or --version printed */
	CFG_EXIT_ERROR			/* bad option, message printed */
} cfg_result;

/*
 * Fill cfg from defaults, environment and argv.  Strings in cfg are owned by
 * the module and freed by cfg_free().
 */
cfg_result cfg_load(int argc, char **argv);
void cfg_free(void);

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
