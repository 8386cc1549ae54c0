/*
 * sse_filter.h
 *		JSON filters: jsonb containment over jansson values.
 *
 * One definition of "does this event's data match this filter", compiled
 * into both the PostgreSQL extension (sse_filter_match) and the bridge.
 * Functions here never keep references to their arguments.
 */
#ifndef SSE_FILTER_H
#define SSE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/*
 * Parse an event payload the way the filters see it.  Returns a new
 * reference (the caller must json_decref it), or NULL when the payload is
 * not JSON.  Any JSON value is accepted at the top level; integers too large
 * for json_int_t are read as reals rather than rejected.
 */
extern json_t *sse_json_parse(const char *buf, size_t len);

/*
 * True when data matches filter.  filter must be a JSON object.  data is
 * the parsed payload, or NULL when the payload is not JSON.  A data value
 * that is not an object matches only the empty filter; otherwise the result
 * is PostgreSQL's jsonb containment, data @> filter: object keys must be
 * present with contained values, arrays contain arrays regardless of order
 * and duplicates, and numbers compare by value (1 = 1.0).
 */
extern bool sse_filter_match(const json_t *filter, const json_t *data);

/* True when two JSON scalars are equal under jsonb's rules. */
extern bool sse_json_scalar_equal(const json_t *a, const json_t *b);

#endif							/* SSE_FILTER_H */
