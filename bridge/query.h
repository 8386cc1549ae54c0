/*
 * query.h - query strings of GET /events and the Last-Event-ID value.
 *
 * Ownership: query_parse fills a query_params whose strings are heap copies
 * owned by it; release them with query_params_free.
 */
#ifndef BRIDGE_QUERY_H
#define BRIDGE_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUERY_MAX_CHANNELS 32

/*
 * What a parse found: valid input, invalid input (the client's fault: a
 * 4xx), or no verdict because an allocation failed (the bridge's fault: a
 * 503; the same request may succeed when retried).
 */
typedef enum query_status {
	QUERY_OK,
	QUERY_INVALID,
	QUERY_INTERNAL
} query_status;

typedef struct query_params {
	char	   *channels[QUERY_MAX_CHANNELS];
	size_t		nchannels;
	char	   *filter;			/* NULL when absent */
	char	   *last_event_id;	/* NULL when absent */
	char	   *access_token;	/* NULL when absent (auth.c decides if it may be used) */
} query_params;

/*
 * Parse "a=b&c=d" (without the '?').  Known keys: channel (repeatable),
 * filter, lastEventId, access_token; others are ignored.  Unless QUERY_OK, writes a
 * reason to err ("out of memory" for QUERY_INTERNAL); out is then already
 * freed.
 */
query_status query_parse(const char *qs, size_t len, query_params *out,
						 char *err, size_t errsize);
void		query_params_free(query_params *p);

/*
 * Percent-decode s ('+' is a space) into a new NUL-terminated string.
 * QUERY_INVALID on a bad escape or an encoded NUL, QUERY_INTERNAL when the
 * copy cannot be allocated; *out is set only on QUERY_OK.
 */
query_status query_decode(const char *s, size_t len, char **out);

/* A resume point from Last-Event-ID or lastEventId. */
typedef struct query_event_id {
	int64_t		id;
	uint32_t	fp;				/* fingerprint; 0 = "no row at id" (the "-0" form) */
	bool		has_fp;			/* false for a plain "<id>": cannot be checked */
} query_event_id;

/*
 * A Last-Event-ID: "<id>", "<id>-0" or "<id>-<8 lowercase hex digits, not
 * all zero>" (logpos.h), id decimal digits that fit int64.  Spaces and
 * tabs around are ok; nothing else is.
 */
bool		query_parse_event_id(const char *s, size_t len, query_event_id *out);

#endif
