/*
 * sse_filter.c
 *		jsonb containment (@>) evaluated on jansson values.
 *
 * The rules follow PostgreSQL's JsonbDeepContains:
 *   - object A contains object B when every key of B is in A and A's value
 *     contains B's value (scalars: equal; containers: contained, same kind);
 *   - array A contains array B when every scalar of B equals some scalar of
 *     A, and every container of B is contained in some container of A;
 *   - below the top level a scalar is never contained in an array.
 * Numbers compare by value.  jansson holds them as 64-bit integers or
 * doubles, so values that differ only past double precision compare equal
 * here while numeric would tell them apart; payloads that need that
 * precision should carry such numbers as strings.
 *
 * Nothing here allocates; recursion depth is bounded by the filter's depth,
 * which the caller controls (filters are small, parsed by jansson with its
 * own depth limit).
 */
#include "sse_filter.h"

#include <math.h>
#include <string.h>

static bool contains(const json_t *val, const json_t *sub);

json_t *
sse_json_parse(const char *buf, size_t len)
{
	json_error_t err;
	json_t	   *v;

	v = json_loadb(buf, len, JSON_DECODE_ANY, &err);
	if (v == NULL && json_error_code(&err) == json_error_numeric_overflow)
		v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &err);
	return v;
}

static bool
is_container(const json_t *v)
{
	return json_is_object(v) || json_is_array(v);
}

bool
sse_json_scalar_equal(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
	{
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return json_number_value(a) == json_number_value(b);
	}
	if (json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a))
	{
		case JSON_STRING:
			return json_string_length(a) == json_string_length(b) &&
				memcmp(json_string_value(a), json_string_value(b),
					   json_string_length(a)) == 0;
		case JSON_TRUE:
		case JSON_FALSE:
		case JSON_NULL:
			return true;
		default:
			return false;
	}
}

/* Does value val contain value sub?  Both at a nested position. */
static bool
value_contains(const json_t *val, const json_t *sub)
{
	if (is_container(sub) || is_container(val))
		return json_typeof(val) == json_typeof(sub) && contains(val, sub);
	return sse_json_scalar_equal(val, sub);
}

static bool
object_contains(const json_t *val, const json_t *sub)
{
	const char *key;
	json_t	   *subval;

	json_object_foreach((json_t *) sub, key, subval)
	{
		const json_t *v = json_object_get(val, key);

		if (v == NULL || !value_contains(v, subval))
			return false;
	}
	return true;
}

static bool
array_has_scalar(const json_t *arr, const json_t *scalar)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
	{
		const json_t *e = json_array_get(arr, i);

		if (!is_container(e) && sse_json_scalar_equal(e, scalar))
			return true;
	}
	return false;
}

static bool
array_has_container(const json_t *arr, const json_t *cont)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
	{
		const json_t *e = json_array_get(arr, i);

		if (json_typeof(e) == json_typeof(cont) && contains(e, cont))
			return true;
	}
	return false;
}

static bool
array_contains(const json_t *val, const json_t *sub)
{
	for (size_t i = 0; i < json_array_size(sub); i++)
	{
		const json_t *e = json_array_get(sub, i);
		bool		found = is_container(e) ? array_has_container(val, e)
			: array_has_scalar(val, e);

		if (!found)
			return false;
	}
	return true;
}

/* val and sub are containers of the same kind. */
static bool
contains(const json_t *val, const json_t *sub)
{
	if (json_is_object(sub))
		return object_contains(val, sub);
	return array_contains(val, sub);
}

bool
sse_filter_match(const json_t *filter, const json_t *data)
{
	if (json_object_size(filter) == 0)
		return true;
	if (data == NULL || !json_is_object(data))
		return false;
	return object_contains(data, filter);
}
