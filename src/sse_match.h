/*
 * sse_match.h
 *		Channel names, subscription patterns and event names.
 *
 * One definition of the naming rules, compiled into both the PostgreSQL
 * extension and the bridge daemon.  Nothing here allocates or depends on
 * PostgreSQL or jansson; every function takes (pointer, length) and never
 * reads past the length.
 *
 * Channel: 1..SSE_CHANNEL_MAX bytes of dot-separated, non-empty segments of
 * [A-Za-z0-9_-].
 * Pattern: like a channel, except that a segment may be exactly "*" (matches
 * one segment) or "#" (matches zero or more segments), as in AMQP topics.
 * Event name: 1..SSE_EVENT_NAME_MAX characters, none of them a control
 * character (so no CR or LF).
 */
#ifndef SSE_MATCH_H
#define SSE_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#define SSE_CHANNEL_MAX 200
#define SSE_EVENT_NAME_MAX 64

typedef enum sse_name_status
{
	SSE_NAME_OK = 0,
	SSE_NAME_EMPTY,				/* zero length */
	SSE_NAME_TOO_LONG,			/* over the length limit */
	SSE_NAME_BAD_CHAR,			/* a character outside the allowed set */
	SSE_NAME_EMPTY_SEGMENT,		/* leading, trailing or doubled dot */
	SSE_NAME_WILDCARD,			/* * or # where a concrete channel is needed */
	SSE_NAME_BAD_WILDCARD		/* * or # mixed with other characters in a segment */
} sse_name_status;

extern sse_name_status sse_channel_check(const char *s, size_t len);
extern sse_name_status sse_pattern_check(const char *s, size_t len);
extern sse_name_status sse_event_name_check(const char *s, size_t len);

/* Short lower-case description of a status, for error messages. */
extern const char *sse_name_status_message(sse_name_status st);

/* True when a valid pattern has no wildcard segment (it names one channel). */
extern bool sse_pattern_is_literal(const char *pat, size_t len);

/*
 * True when channel matches pattern.  Both must have passed their checks;
 * anything longer than SSE_CHANNEL_MAX never matches.
 */
extern bool sse_pattern_match(const char *pat, size_t plen,
							  const char *ch, size_t clen);

#endif							/* SSE_MATCH_H */
