/*
 * sse_json.h
 *		Exact JSON filters: limits, compiled filters and parsed payloads.
 *
 * One definition of "does this event's data match this filter", compiled
 * into both the PostgreSQL extension and the bridge.  This header does not
 * depend on jansson (the extension's SQL files include it next to
 * PostgreSQL headers whose names clash with jansson's).
 *
 * The answer is PostgreSQL's data::jsonb @> filter, where a payload that is
 * not a JSON object matches only the empty filter {}:
 *   - numbers compare as decimals, like numeric: 1 = 1.0 = 10e-1, -0 = 0,
 *     1e400 and 1e-400 are ordinary values, distinct from every other;
 *   - a key given twice counts with its last value, as in jsonb;
 *   - strings compare by their decoded UTF-8 bytes (\u escapes included).
 *
 * Every filter and payload is first checked against the limits below; one
 * that exceeds a limit is refused (never treated as "no filter" or "not
 * JSON"), so that no event is ever judged differently from jsonb.
 *
 * Cost: a compiled filter is evaluated in time linear in its own size; each
 * array of a payload that a filter looks into is hashed once per payload and
 * the hash is shared by every filter evaluated against that payload.
 *
 * Memory: everything here allocates with malloc and returns
 * SSE_JSON_NOMEM (never aborts) when that fails.
 */
#ifndef SSE_JSON_H
#define SSE_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Filters: the text (as given, or as jsonb prints it) at most 16 KiB. */
#define SSE_FILTER_SIZE_MAX		16384
/* Filters: objects and arrays nested at most 32 deep (the filter itself is 1). */
#define SSE_FILTER_DEPTH_MAX	32
/* Filters: at most 1024 values (the filter, every member value, every element). */
#define SSE_FILTER_NODES_MAX	1024
/* Filters: at most 256 elements per array; elements must be scalars. */
#define SSE_FILTER_ARRAY_MAX	256
/* Payloads that start with '{': objects and arrays nested at most 1000 deep. */
#define SSE_DATA_DEPTH_MAX		1000
/* Numbers (filters and payloads): at most 4096 characters, exponent within +-1000. */
#define SSE_NUMBER_LEN_MAX		4096
#define SSE_NUMBER_EXP_MAX		1000

typedef enum sse_json_status
{
	SSE_JSON_OK = 0,
	SSE_JSON_NOMEM,				/* out of memory */
	SSE_JSON_SYNTAX,			/* filter: not JSON */
	SSE_JSON_NOT_OBJECT,		/* filter: not a JSON object */
	SSE_JSON_TOO_LARGE,			/* filter: text over SSE_FILTER_SIZE_MAX */
	SSE_JSON_TOO_DEEP,			/* nesting over the depth limit */
	SSE_JSON_TOO_MANY_NODES,	/* filter: over SSE_FILTER_NODES_MAX values */
	SSE_JSON_ARRAY_TOO_LONG,	/* filter: an array over SSE_FILTER_ARRAY_MAX */
	SSE_JSON_ARRAY_CONTAINER,	/* filter: an array holds an object or array */
	SSE_JSON_NUMBER,			/* a number beyond SSE_NUMBER_LEN_MAX/EXP_MAX */
	SSE_JSON_NUL				/* a string holds \u0000, which jsonb refuses */
} sse_json_status;

/* A short English description, e.g. "nesting is deeper than 32 levels". */
extern const char *sse_json_status_message(sse_json_status st);

/* ----------------------------------------------------------------
 *		Payloads
 * ----------------------------------------------------------------
 */

/*
 * Whether a payload can be evaluated exactly; run at publish time.
 * SSE_JSON_OK for every payload whose first non-blank byte is not '{'
 * (such data matches only the empty filter, it is never looked into) and
 * for those that are not JSON; otherwise SSE_JSON_TOO_DEEP, SSE_JSON_NUMBER
 * or SSE_JSON_NUL when the payload breaks a limit.  One pass, no allocation.
 */
extern sse_json_status sse_payload_check(const char *buf, size_t len);

/*
 * A parsed payload with per-payload caches (hashes of its arrays).  It is
 * not thread-safe: evaluating filters against it fills the caches.
 */
typedef struct sse_doc sse_doc;

/*
 * Parse a payload.  SSE_JSON_OK: *out is the document (which may hold a
 * non-object or no JSON at all; then it matches only the empty filter).
 * Otherwise *out is NULL and the status is SSE_JSON_NOMEM, or the limit
 * sse_payload_check reports: such a payload cannot be evaluated exactly;
 * deliver it to unfiltered streams only (sse_filter_eval(f, NULL) says so).
 */
extern sse_json_status sse_doc_parse(const char *buf, size_t len, sse_doc **out);
extern void sse_doc_free(sse_doc *doc);
/* True when the payload is a JSON object (only those match non-empty filters). */
extern bool sse_doc_is_object(const sse_doc *doc);

/* ----------------------------------------------------------------
 *		Filters
 * ----------------------------------------------------------------
 */

typedef struct sse_filter sse_filter;

/*
 * Compile a filter given as JSON text (len bytes, no terminator needed).
 * SSE_JSON_OK: *out is the filter (free with sse_filter_free).  Otherwise
 * *out is NULL, *errmsg (when errmsg is not NULL) is a static description
 * and the filter must be refused: SSE_JSON_SYNTAX, SSE_JSON_NOT_OBJECT, a
 * limit, or SSE_JSON_NOMEM.  A filter that compiles is evaluated exactly.
 */
extern sse_json_status sse_filter_compile(const char *json, size_t len,
										  sse_filter **out, const char **errmsg);
extern void sse_filter_free(sse_filter *f);
/* True for {}: it matches every payload, JSON or not. */
extern bool sse_filter_is_empty(const sse_filter *f);

/*
 * data::jsonb @> filter, with the rules above.  doc NULL stands for a
 * payload that could not be parsed (sse_doc_parse failed): only the empty
 * filter matches it.  Never allocates beyond doc's caches; when a cache
 * cannot be allocated the answer is still exact, only slower.
 */
extern bool sse_filter_eval(const sse_filter *f, sse_doc *doc);

/*
 * Scalars in a canonical form, for indexes outside this file: two scalars
 * are equal under jsonb exactly when tag, len and bytes are equal.  tag is
 * 's' (string: its UTF-8 bytes), 'n' (number: canonical decimal text), 't',
 * 'f' or 'z' (true, false, null: len 0).
 */
typedef struct sse_scalar
{
	char		tag;
	const char *s;
	size_t		len;
} sse_scalar;

/*
 * The members of a compiled filter, in order: key (UTF-8, no NUL byte) and,
 * when the value is a scalar, that scalar.  False when i is out of range.
 * *is_scalar tells whether *val was set.
 */
extern size_t sse_filter_nmembers(const sse_filter *f);
extern bool sse_filter_member(const sse_filter *f, size_t i,
							  const char **key, size_t *klen,
							  bool *is_scalar, sse_scalar *val);

/*
 * The value of member key in an object payload, when it is a scalar.
 * False when the payload is not an object, lacks the key, or the value is
 * an object or array.
 */
extern bool sse_doc_member_scalar(const sse_doc *doc, const char *key,
								  size_t klen, sse_scalar *val);

#endif							/* SSE_JSON_H */
