/*
 * unit.c
 *		cmocka tests for the shared matchers (src/sse_match.c, src/sse_filter.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "sse_match.h"
#include "sse_filter.h"

#define LEN(s) (s), strlen(s)

static void
test_channel_check(void **state)
{
	char		longname[SSE_CHANNEL_MAX + 2];

	(void) state;
	assert_int_equal(sse_channel_check(LEN("job")), SSE_NAME_OK);
	assert_int_equal(sse_channel_check(LEN("job.42_a-b.X")), SSE_NAME_OK);
	assert_int_equal(sse_channel_check(LEN("")), SSE_NAME_EMPTY);
	assert_int_equal(sse_channel_check(LEN("a..b")), SSE_NAME_EMPTY_SEGMENT);
	assert_int_equal(sse_channel_check(LEN(".a")), SSE_NAME_EMPTY_SEGMENT);
	assert_int_equal(sse_channel_check(LEN("a.")), SSE_NAME_EMPTY_SEGMENT);
	assert_int_equal(sse_channel_check(LEN("a.*")), SSE_NAME_WILDCARD);
	assert_int_equal(sse_channel_check(LEN("a.#")), SSE_NAME_WILDCARD);
	assert_int_equal(sse_channel_check(LEN("a b")), SSE_NAME_BAD_CHAR);
	assert_int_equal(sse_channel_check(LEN("a.\xc3\xa9")), SSE_NAME_BAD_CHAR);
	assert_int_equal(sse_channel_check("a\0b", 3), SSE_NAME_BAD_CHAR);
	assert_int_equal(sse_channel_check(LEN("a..b c")), SSE_NAME_BAD_CHAR);

	memset(longname, 'x', sizeof(longname));
	assert_int_equal(sse_channel_check(longname, SSE_CHANNEL_MAX), SSE_NAME_OK);
	assert_int_equal(sse_channel_check(longname, SSE_CHANNEL_MAX + 1), SSE_NAME_TOO_LONG);
}

static void
test_pattern_check(void **state)
{
	(void) state;
	assert_int_equal(sse_pattern_check(LEN("a.*.c")), SSE_NAME_OK);
	assert_int_equal(sse_pattern_check(LEN("#")), SSE_NAME_OK);
	assert_int_equal(sse_pattern_check(LEN("#.#.*")), SSE_NAME_OK);
	assert_int_equal(sse_pattern_check(LEN("a.b*")), SSE_NAME_BAD_WILDCARD);
	assert_int_equal(sse_pattern_check(LEN("a.**")), SSE_NAME_BAD_WILDCARD);
	assert_int_equal(sse_pattern_check(LEN("a.*.")), SSE_NAME_EMPTY_SEGMENT);
	assert_int_equal(sse_pattern_check(LEN("a.%")), SSE_NAME_BAD_CHAR);
	assert_true(sse_pattern_is_literal(LEN("a.b.c")));
	assert_false(sse_pattern_is_literal(LEN("a.*")));
	assert_false(sse_pattern_is_literal(LEN("#")));
}

static void
test_event_name_check(void **state)
{
	char		name[80];

	(void) state;
	assert_int_equal(sse_event_name_check(LEN("update")), SSE_NAME_OK);
	assert_int_equal(sse_event_name_check(LEN("job done: 100%")), SSE_NAME_OK);
	assert_int_equal(sse_event_name_check(LEN("")), SSE_NAME_EMPTY);
	assert_int_equal(sse_event_name_check(LEN("a\nb")), SSE_NAME_BAD_CHAR);
	assert_int_equal(sse_event_name_check(LEN("a\rb")), SSE_NAME_BAD_CHAR);
	assert_int_equal(sse_event_name_check(LEN("a\x7f")), SSE_NAME_BAD_CHAR);

	/* 64 two-byte characters are fine; 65 are not */
	for (int i = 0; i < 40; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	assert_int_equal(sse_event_name_check(name, 64), SSE_NAME_OK);
	memset(name, 'e', sizeof(name));
	assert_int_equal(sse_event_name_check(name, 64), SSE_NAME_OK);
	assert_int_equal(sse_event_name_check(name, 65), SSE_NAME_TOO_LONG);
}

static bool
match(const char *p, const char *c)
{
	return sse_pattern_match(LEN(p), LEN(c));
}

static void
test_pattern_match(void **state)
{
	(void) state;
	assert_true(match("a.b", "a.b"));
	assert_false(match("a.b", "a.bc"));
	assert_false(match("a.b", "a.b.c"));
	assert_true(match("a.*", "a.b"));
	assert_false(match("a.*", "a"));
	assert_false(match("a.*", "a.b.c"));
	assert_true(match("*.b", "a.b"));
	assert_true(match("#", "a"));
	assert_true(match("#", "a.b.c"));
	assert_true(match("a.#", "a"));
	assert_true(match("a.#", "a.b.c"));
	assert_false(match("a.#", "b.a"));
	assert_true(match("#.c", "c"));
	assert_true(match("a.#.c", "a.c"));
	assert_true(match("a.#.c", "a.x.y.c"));
	assert_false(match("a.#.c", "a.x.y.d"));
	assert_true(match("a.#.c.#.e", "a.c.c.e"));
	assert_true(match("#.*", "a"));
	assert_false(match("*.#.*", "a"));
	assert_true(match("*.#.*", "a.b"));
	assert_false(match("", "a"));
	assert_false(match("a", ""));
}

static bool
fmatch(const char *filter, const char *data)
{
	json_t	   *f = sse_json_parse(LEN(filter));
	json_t	   *d = sse_json_parse(LEN(data));
	bool		r;

	assert_non_null(f);
	r = sse_filter_match(f, d);
	json_decref(f);
	json_decref(d);
	return r;
}

static void
test_filter_match(void **state)
{
	(void) state;
	assert_true(fmatch("{}", "{\"a\":1}"));
	assert_true(fmatch("{}", "not json"));
	assert_true(fmatch("{}", "[1,2]"));
	assert_false(fmatch("{\"a\":1}", "not json"));
	assert_false(fmatch("{\"a\":1}", "[{\"a\":1}]"));
	assert_false(fmatch("{\"a\":1}", "1"));
	assert_true(fmatch("{\"a\":1}", "{\"a\":1,\"b\":2}"));
	assert_true(fmatch("{\"a\":1}", "{\"a\":1.0}"));
	assert_true(fmatch("{\"a\":100}", "{\"a\":1e2}"));
	assert_false(fmatch("{\"a\":1}", "{\"a\":\"1\"}"));
	assert_false(fmatch("{\"a\":null}", "{}"));
	assert_true(fmatch("{\"a\":null}", "{\"a\":null}"));
	assert_true(fmatch("{\"a\":{\"b\":[2]}}", "{\"a\":{\"b\":[1,2,3],\"c\":0}}"));
	assert_false(fmatch("{\"a\":\"x\"}", "{\"a\":[\"x\"]}"));
	assert_true(fmatch("{\"a\":[\"x\",\"x\"]}", "{\"a\":[\"x\"]}"));
	assert_true(fmatch("{\"a\":[[1]]}", "{\"a\":[2,[1,3]]}"));
	assert_false(fmatch("{\"a\":[[1]]}", "{\"a\":[1]}"));
	assert_false(fmatch("{\"a\":{}}", "{\"a\":[]}"));
	assert_true(fmatch("{\"a\":{}}", "{\"a\":{\"z\":1}}"));
	/* the last duplicate key wins, as in jsonb */
	assert_true(fmatch("{\"a\":2}", "{\"a\":1,\"a\":2}"));
	assert_false(fmatch("{\"a\":1}", "{\"a\":1,\"a\":2}"));
	/* integers beyond 64 bits still parse */
	assert_true(fmatch("{}", "{\"a\":123456789012345678901234567890}"));
	assert_true(fmatch("{\"s\":\"\xc3\xa9\"}", "{\"s\":\"\\u00e9\"}"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_channel_check),
		cmocka_unit_test(test_pattern_check),
		cmocka_unit_test(test_event_name_check),
		cmocka_unit_test(test_pattern_match),
		cmocka_unit_test(test_filter_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
