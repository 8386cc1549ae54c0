/*
 * event.h - one row of sse_bridge.events in memory.
 *
 * The payload is parsed as JSON at most once and formatted as an SSE frame at
 * most once, both lazily, on first need.
 *
 * Ownership: event_new copies its arguments; the event owns its strings,
 * its parsed payload and one reference to its frame.  event_frame returns a
 * borrowed frame (take frame_ref to keep it).  event_doc returns the
 * borrowed parsed payload (sse_json.h), or NULL when it could not be parsed
 * (a limit, or out of memory): such an event matches only the empty filter.
 */
#ifndef BRIDGE_EVENT_H
#define BRIDGE_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "sse_json.h"

typedef struct event {
	int64_t		id;
	int64_t		created_us;		/* commit time, microseconds since epoch */
	char	   *channel;		/* all strings live in the same allocation */
	char	   *name;			/* NULL = default "message" */
	char	   *data;
	uint32_t	chlen;
	uint32_t	nlen;
	size_t		dlen;
	sse_doc    *doc;
	frame	   *frame;
	bool		parsed;
	bool		json_oom;		/* the last parse ran out of memory */
	bool		is_close;
} event;

event	   *event_new(int64_t id, int64_t created_us, const char *channel, size_t chlen,
					  const char *name, size_t nlen, const char *data, size_t dlen);
void		event_free(event *ev);
frame	   *event_frame(event *ev);
/*
 * The parsed payload, or NULL when it is not JSON -- or when parsing ran out
 * of memory: then json_oom is set and the next call parses again.
 */
sse_doc    *event_doc(event *ev);

/* Approximate memory held, for the replay cache's byte limit. */
size_t		event_cost(const event *ev);

/*
 * A "$sub" row marks a subscription change (docs/design.md): it keeps its
 * place in the log and advances cursors, but is never delivered.  No user
 * channel can start with '$'.
 */
static inline bool
event_is_marker(const event *ev)
{
	return ev->chlen > 0 && ev->channel[0] == '$';
}

#endif
