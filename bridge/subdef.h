/*
 * subdef.h - a subscription's definition as the log carries it: the data
 * of a "$sub" marker row, or the version the open statement returns
 * (docs/design.md "Subscription changes in the log").
 *
 * Parsing is pure: nothing here knows about streams; stream.c applies what
 * it returns.
 */
#ifndef SSE_BRIDGE_SUBDEF_H
#define SSE_BRIDGE_SUBDEF_H

#include <stddef.h>
#include <stdint.h>

#include "sse_filter.h"

/* A subscription's definition: a marker's data, parsed. */
typedef enum sub_state {
	SUB_ACTIVE,
	SUB_CLOSED,
	SUB_DROPPED
} sub_state;

typedef struct sub_def {
	char	  **patterns;		/* owned; each passed sse_pattern_check */
	size_t		npatterns;		/* >= 1 */
	sse_filter *filter;			/* owned, compiled; NULL = {} (match everything) */
	sub_state	state;
} sub_def;

typedef enum sub_def_status {
	SUB_DEF_OK,
	SUB_DEF_INVALID,			/* not a definition the bridge can apply exactly */
	SUB_DEF_OOM
} sub_def_status;

/*
 * Parse a definition (JSON text {"sid","channels","filter","state"}: a
 * marker's data or the open answer's version) for subscription sid into d
 * (empty unless SUB_DEF_OK; *why says what was wrong).  The filter's own
 * text is compiled (sse_filter_compile), so numbers keep their exact value
 * and a filter the matcher cannot evaluate exactly is SUB_DEF_INVALID: the
 * caller ends or refuses the stream, never streams it unfiltered.
 */
sub_def_status subdef_parse(const char *text, size_t len, int64_t sid, sub_def *d,
								const char **why);
void		subdef_clear(sub_def *d);
/* The "sid" of a definition's text, -1 when it has none. */
int64_t		subdef_sid(const char *text, size_t len);

#endif
