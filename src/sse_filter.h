/*
 * sse_filter.h
 *		JSON filters: jsonb containment over jansson values.
 *
 * The exact, compiled interface is in sse_json.h (included here); this
 * header adds the jansson view of the same values.  Functions here never
 * keep references to their arguments.
 *
 * Numbers in trees made by sse_json_parse (and inside an sse_doc) are not
 * jansson numbers: each is a JSON_STRING holding a NUL byte followed by the
 * number's canonical decimal text (see sse_json_scalar).  Genuine strings
 * never start with a NUL byte: a payload or filter with \u0000 is refused.
 */
#ifndef SSE_FILTER_H
#define SSE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "sse_json.h"

/*
 * Parse JSON text (any top-level value) the way the filters see it.
 * Returns a new reference (the caller must json_decref it), or NULL when
 * the text is not JSON, breaks a limit of sse_json.h (nesting beyond
 * SSE_DATA_DEPTH_MAX, a number beyond range, \u0000), or memory runs out.
 * Callers that must tell these apart use sse_doc_parse/sse_filter_compile.
 */
extern json_t *sse_json_parse(const char *buf, size_t len);
/* The same; *oom tells "memory ran out" from "not JSON" when NULL. */
extern json_t *sse_json_parse_oom(const char *buf, size_t len, bool *oom);

/*
 * True when data matches filter: data @> filter under jsonb's rules, where
 * a data value that is not an object (or NULL) matches only the empty
 * filter.  Both trees come from sse_json_parse.  This is the direct
 * evaluation, quadratic on arrays: it has no limits of its own and serves
 * as the reference for sse_filter_eval in tests.
 */
extern bool sse_filter_match(const json_t *filter, const json_t *data);

/* True when two JSON scalars are equal under jsonb's rules. */
extern bool sse_json_scalar_equal(const json_t *a, const json_t *b);

/* The canonical form of a scalar from sse_json_parse; false for containers. */
extern bool sse_json_scalar(const json_t *v, sse_scalar *out);

/* The parsed value of a document (borrowed; NULL when it is not JSON). */
extern const json_t *sse_doc_json(const sse_doc *doc);

#endif							/* SSE_FILTER_H */
