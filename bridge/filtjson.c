/*
 * filtjson.c - JSON text of filter trees, and the AND of two filters.
 *
 * Why the AND of two containment filters is one filter: for objects,
 * data @> {k: x} and data @> {k: y} hold exactly when data.k @> x and
 * data.k @> y, so keys merge and the values combine recursively; an array
 * contains every element of x and every element of y exactly when it
 * contains their union; a scalar contains only an equal scalar, and one
 * value is never both an object and an array (below the top level jsonb
 * does not let an array contain a bare scalar), so anything else is a
 * conflict that no payload satisfies.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filtjson.h"
#include "sse_filter.h"

typedef struct dbuf {
	char	   *s;
	size_t		len, cap;
	bool		oom;
} dbuf;

static void
dbuf_put(dbuf *b, const char *s, size_t n)
{
	char	   *ns;
	size_t		cap;

	if (b->oom)
		return;
	if (b->s == NULL || b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((ns = realloc(b->s, cap)) == NULL) {
			b->oom = true;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
dbuf_str(dbuf *b, const char *s, size_t n)
{
	dbuf_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char) s[i];
		char		esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char) c;
			dbuf_put(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			dbuf_put(b, esc, 6);
		} else
			dbuf_put(b, (const char *) &s[i], 1);
	}
	dbuf_put(b, "\"", 1);
}

static void
dump(dbuf *b, const json_t *v)
{
	sse_scalar sc;
	const char *key;
	json_t	   *m;
	size_t		i;
	bool		first = true;

	if (json_is_object(v)) {
		dbuf_put(b, "{", 1);
		json_object_foreach((json_t *) v, key, m) {
			if (!first)
				dbuf_put(b, ",", 1);
			first = false;
			dbuf_str(b, key, strlen(key));
			dbuf_put(b, ":", 1);
			dump(b, m);
		}
		dbuf_put(b, "}", 1);
	} else if (json_is_array(v)) {
		dbuf_put(b, "[", 1);
		json_array_foreach((json_t *) v, i, m) {
			if (i > 0)
				dbuf_put(b, ",", 1);
			dump(b, m);
		}
		dbuf_put(b, "]", 1);
	} else if (sse_json_scalar(v, &sc)) {
		if (sc.tag == 's')
			dbuf_str(b, sc.s, sc.len);
		else if (sc.tag == 'n')
			dbuf_put(b, sc.s, sc.len);
		else
			dbuf_put(b, sc.tag == 't' ? "true" : sc.tag == 'f' ? "false" : "null",
					 sc.tag == 'f' ? 5 : 4);
	} else
		dbuf_put(b, "null", 4);
}

char *
filtjson_dump(const json_t *v)
{
	dbuf		b = {0};

	dump(&b, v);
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

static filtjson_status combine(json_t *into, const char *key, json_t *y);

/* Merge object y into object x (x is a private copy). */
static filtjson_status
merge_objects(json_t *x, json_t *y)
{
	const char *key;
	json_t	   *v;
	filtjson_status st;

	json_object_foreach(y, key, v)
		if ((st = combine(x, key, v)) != FILTJSON_OK)
			return st;
	return FILTJSON_OK;
}

static filtjson_status
unite_arrays(json_t *x, json_t *y)
{
	size_t		i, k, nx = json_array_size(x);
	json_t	   *v;

	json_array_foreach(y, i, v) {
		bool		seen = false;

		for (k = 0; k < nx && !seen; k++) {
			json_t	   *w = json_array_get(x, k);

			seen = !json_is_object(w) && !json_is_array(w) && !json_is_object(v) &&
				!json_is_array(v) && sse_json_scalar_equal(w, v);
		}
		if (!seen && json_array_append(x, v) != 0)
			return FILTJSON_NOMEM;
	}
	return FILTJSON_OK;
}

static filtjson_status
combine(json_t *into, const char *key, json_t *y)
{
	json_t	   *x = json_object_get(into, key);

	if (x == NULL)
		return json_object_set(into, key, y) == 0 ? FILTJSON_OK : FILTJSON_NOMEM;
	if (json_is_object(x) && json_is_object(y))
		return merge_objects(x, y);
	if (json_is_array(x) && json_is_array(y))
		return unite_arrays(x, y);
	if (json_is_object(x) || json_is_array(x) || json_is_object(y) || json_is_array(y))
		return FILTJSON_CONFLICT;
	return sse_json_scalar_equal(x, y) ? FILTJSON_OK : FILTJSON_CONFLICT;
}

filtjson_status
filtjson_and(const char *a, size_t alen, const char *b, size_t blen, char **out)
{
	json_t	   *x = sse_json_parse(a, alen);
	json_t	   *y = b ? sse_json_parse(b, blen) : NULL;
	json_t	   *copy = x ? json_deep_copy(x) : NULL;
	filtjson_status st;

	*out = NULL;
	if (x == NULL || (b && y == NULL))
		st = FILTJSON_INVALID;		/* or out of memory: the caller compiled both */
	else if (!json_is_object(x) || (y && !json_is_object(y)))
		st = FILTJSON_INVALID;
	else if (copy == NULL)
		st = FILTJSON_NOMEM;
	else
		st = y ? merge_objects(copy, y) : FILTJSON_OK;
	if (st == FILTJSON_OK && (*out = filtjson_dump(copy)) == NULL)
		st = FILTJSON_NOMEM;
	json_decref(x);
	json_decref(y);
	json_decref(copy);
	return st;
}
