/*
 * filtjson.h - filters as JSON trees: exact text of a tree, and the one
 * filter equal to two filters ANDed (a token's granted filter and the
 * client's own).
 *
 * Trees are those of sse_json_parse (sse_filter.h): a number is a string
 * holding a NUL byte and its exact decimal text, so no value is rounded on
 * the way through.
 *
 * Ownership: returned strings are new heap strings the caller frees;
 * arguments are only read.
 */
#ifndef BRIDGE_FILTJSON_H
#define BRIDGE_FILTJSON_H

#include <stddef.h>
#include <jansson.h>

/* The JSON text of a tree from sse_json_parse; NULL when out of memory. */
char	   *filtjson_dump(const json_t *v);

typedef enum filtjson_status {
	FILTJSON_OK,
	FILTJSON_CONFLICT,			/* no payload can match both */
	FILTJSON_INVALID,			/* an argument is not a JSON object */
	FILTJSON_NOMEM
} filtjson_status;

/*
 * The filter f such that data @> f exactly when data @> a and data @> b
 * (jsonb containment): objects merge key by key, arrays unite, equal
 * scalars stay, and two values that no one value can contain (different
 * scalars, or different kinds) are FILTJSON_CONFLICT.  b may be NULL (no
 * client filter): then *out is a's text.  On FILTJSON_OK *out is the text.
 */
filtjson_status filtjson_and(const char *a, size_t alen, const char *b, size_t blen, char **out);

#endif
