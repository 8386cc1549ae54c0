/*
 * unit.c
 *		cmocka tests for the shared matchers (src/sse_match.c, src/sse_filter.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
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
	/* integers beyond 64 bits still parse, and compare exactly */
	assert_true(fmatch("{}", "{\"a\":123456789012345678901234567890}"));
	assert_false(fmatch("{\"a\":123456789012345678901234567891}", "{\"a\":123456789012345678901234567890}"));
	assert_true(fmatch("{\"s\":\"\xc3\xa9\"}", "{\"s\":\"\\u00e9\"}"));
}

/* The compiled path; -1 when the filter is refused, -2 when the payload is. */
static int
cmatch(const char *filter, const char *data)
{
	sse_filter *f;
	sse_doc    *d;
	const char *msg = NULL;
	bool		r;

	if (sse_filter_compile(LEN(filter), &f, &msg) != SSE_JSON_OK)
	{
		assert_null(f);
		assert_non_null(msg);
		return -1;
	}
	if (sse_doc_parse(LEN(data), &d) != SSE_JSON_OK)
	{
		assert_null(d);
		/* only the empty filter matches what cannot be parsed */
		assert_int_equal(sse_filter_eval(f, NULL), sse_filter_is_empty(f));
		sse_filter_free(f);
		return -2;
	}
	r = sse_filter_eval(f, d);
	/* a second evaluation reuses the array hashes and agrees */
	assert_int_equal(sse_filter_eval(f, d), r);
	sse_doc_free(d);
	sse_filter_free(f);
	return r;
}

static void
test_filter_exact(void **state)
{
	(void) state;
	assert_int_equal(cmatch("{}", "not json"), 1);
	assert_int_equal(cmatch("{}", "[1]"), 1);
	assert_int_equal(cmatch("{\"a\":1}", "[{\"a\":1}]"), 0);
	assert_int_equal(cmatch("{\"a\":1}", "{\"a\":1"), 0);
	/* numbers are decimals */
	assert_int_equal(cmatch("{\"a\":1}", "{\"a\":1.000}"), 1);
	assert_int_equal(cmatch("{\"a\":1}", "{\"a\":0.1e1}"), 1);
	assert_int_equal(cmatch("{\"a\":0}", "{\"a\":-0.0}"), 1);
	assert_int_equal(cmatch("{\"a\":-0}", "{\"a\":0E-999}"), 1);
	assert_int_equal(cmatch("{\"a\":-1}", "{\"a\":1}"), 0);
	assert_int_equal(cmatch("{\"a\":1e400}", "{\"a\":10e399}"), 1);
	assert_int_equal(cmatch("{\"a\":1e400}", "{\"a\":1e399}"), 0);
	assert_int_equal(cmatch("{\"a\":1e-400}", "{\"a\":0}"), 0);
	assert_int_equal(cmatch("{\"a\":9007199254740993}", "{\"a\":9007199254740992}"), 0);
	assert_int_equal(cmatch("{\"a\":0.1}", "{\"a\":0.10000000000000000555}"), 0);
	assert_int_equal(cmatch("{\"a\":[1,2.5]}", "{\"a\":[25e-1,3,1.0]}"), 1);
	assert_int_equal(cmatch("{\"a\":[1,2.5]}", "{\"a\":[2.5,3]}"), 0);
	assert_int_equal(cmatch("{\"a\":[1]}", "{\"a\":[\"1\"]}"), 0);
	assert_int_equal(cmatch("{\"a\":[]}", "{\"a\":[]}"), 1);
	assert_int_equal(cmatch("{\"a\":[]}", "{\"a\":{}}"), 0);
	assert_int_equal(cmatch("{\"a\":[1]}", "{\"a\":[[1]]}"), 0);
	assert_int_equal(cmatch("{\"a\":\"x\"}", "{\"a\":[\"x\"]}"), 0);
	/* the last duplicate wins, on both sides */
	assert_int_equal(cmatch("{\"a\":1,\"a\":2}", "{\"a\":2}"), 1);
	assert_int_equal(cmatch("{\"a\":1}", "{\"a\":1,\"a\":2}"), 0);
	/* strings compare decoded */
	assert_int_equal(cmatch("{\"s\":\"\\u00e9\\ud83d\\ude00\"}", "{\"s\":\"\xc3\xa9\xf0\x9f\x98\x80\"}"), 1);
	assert_int_equal(cmatch("{\"s\":\"a\\\"1\"}", "{\"s\":\"a\\\"1\"}"), 1);
	assert_int_equal(cmatch("{\"s\":\"\\\\u0000\"}", "{\"s\":\"\\\\u0000\"}"), 1);
	/* a number's marker cannot be forged, nor a number used as a key */
	assert_int_equal(cmatch("{\"a\":1}", "{\"a\":\"\\u00001\"}"), -2);
	assert_int_equal(cmatch("{1:1}", "{}"), -1);
	assert_int_equal(cmatch("{\"a\":1}", "{1:1,\"a\":1}"), 0);
	/* refused filters and payloads */
	assert_int_equal(cmatch("[1]", "{}"), -1);
	assert_int_equal(cmatch("{\"a\":[{}]}", "{}"), -1);
	assert_int_equal(cmatch("{\"a\":1e1001}", "{}"), -1);
	assert_int_equal(cmatch("{\"a\":-1e-1000}", "{\"a\":-0.1e-999}"), 1);
	assert_int_equal(cmatch("{}", "{\"a\":1e-1001}"), -2);
	assert_int_equal(cmatch("{}", "{\"a\":\"\\u0000\"}"), -2);
}

static void
test_filter_limits(void **state)
{
	static char buf[SSE_FILTER_SIZE_MAX + 64];
	sse_filter *f;
	size_t		n;
	sse_scalar	sc;
	const char *key;
	size_t		klen;
	bool		is_scalar;

	(void) state;
	/* depth: 32 objects fit, 33 do not */
	for (int depth = 32; depth <= 33; depth++)
	{
		n = 0;
		for (int i = 0; i < depth - 1; i++)
			n += (size_t) snprintf(buf + n, sizeof(buf) - n, "{\"a\":");
		n += (size_t) snprintf(buf + n, sizeof(buf) - n, "{}");
		for (int i = 0; i < depth - 1; i++)
			buf[n++] = '}';
		assert_int_equal(sse_filter_compile(buf, n, &f, NULL),
						 depth == 32 ? SSE_JSON_OK : SSE_JSON_TOO_DEEP);
		sse_filter_free(f);
	}
	/* array length: 256 elements fit, 257 do not */
	for (int len = 256; len <= 257; len++)
	{
		n = (size_t) snprintf(buf, sizeof(buf), "{\"t\":[");
		for (int i = 0; i < len; i++)
			n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s%d", i ? "," : "", i);
		n += (size_t) snprintf(buf + n, sizeof(buf) - n, "]}");
		assert_int_equal(sse_filter_compile(buf, n, &f, NULL),
						 len == 256 ? SSE_JSON_OK : SSE_JSON_ARRAY_TOO_LONG);
		sse_filter_free(f);
	}
	/* values: 1023 members and the filter itself fit, one more does not */
	for (int members = 1023; members <= 1024; members++)
	{
		n = (size_t) snprintf(buf, sizeof(buf), "{");
		for (int i = 0; i < members; i++)
			n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s\"%d\":1", i ? "," : "", i);
		n += (size_t) snprintf(buf + n, sizeof(buf) - n, "}");
		assert_int_equal(sse_filter_compile(buf, n, &f, NULL),
						 members == 1023 ? SSE_JSON_OK : SSE_JSON_TOO_MANY_NODES);
		sse_filter_free(f);
	}
	/* size */
	memset(buf, ' ', sizeof(buf));
	buf[0] = '{';
	buf[SSE_FILTER_SIZE_MAX - 1] = '}';
	assert_int_equal(sse_filter_compile(buf, SSE_FILTER_SIZE_MAX, &f, NULL), SSE_JSON_OK);
	sse_filter_free(f);
	buf[SSE_FILTER_SIZE_MAX - 1] = ' ';
	buf[SSE_FILTER_SIZE_MAX] = '}';
	assert_int_equal(sse_filter_compile(buf, SSE_FILTER_SIZE_MAX + 1, &f, NULL), SSE_JSON_TOO_LARGE);
	assert_null(f);

	/* members and their canonical scalars */
	assert_int_equal(sse_filter_compile(LEN("{\"n\":-12.50e1,\"s\":\"x\",\"o\":{},\"z\":null}"), &f, NULL), SSE_JSON_OK);
	assert_int_equal(sse_filter_nmembers(f), 4);
	assert_true(sse_filter_member(f, 0, &key, &klen, &is_scalar, &sc));
	assert_true(is_scalar);
	assert_int_equal(sc.tag, 'n');
	assert_int_equal(sc.len, 4);
	assert_memory_equal(sc.s, "-125", 4);
	assert_true(sse_filter_member(f, 2, &key, &klen, &is_scalar, &sc));
	assert_false(is_scalar);
	assert_memory_equal(key, "o", 1);
	assert_false(sse_filter_member(f, 4, &key, &klen, &is_scalar, &sc));
	sse_filter_free(f);
}

static void
test_payload_check(void **state)
{
	static char buf[4096];
	size_t		n = 0;

	(void) state;
	assert_int_equal(sse_payload_check(LEN("plain text 1e99999")), SSE_JSON_OK);
	assert_int_equal(sse_payload_check(LEN("[1e99999]")), SSE_JSON_OK);
	assert_int_equal(sse_payload_check(LEN(" {\"a\":1e1000}")), SSE_JSON_OK);
	assert_int_equal(sse_payload_check(LEN(" {\"a\":1e1001}")), SSE_JSON_NUMBER);
	assert_int_equal(sse_payload_check(LEN("{\"a\":\"\\u0000\"}")), SSE_JSON_NUL);
	assert_int_equal(sse_payload_check(LEN("{\"a\":\"\\\\u0000\"}")), SSE_JSON_OK);
	assert_int_equal(sse_payload_check(LEN("{\"a\":\"1e5000")), SSE_JSON_OK);
	buf[n++] = '{';
	buf[n++] = '"';
	buf[n++] = '"';
	buf[n++] = ':';
	for (int i = 1; i < SSE_DATA_DEPTH_MAX; i++)
		buf[n++] = '[';
	assert_int_equal(sse_payload_check(buf, n), SSE_JSON_OK);
	buf[n++] = '[';
	assert_int_equal(sse_payload_check(buf, n), SSE_JSON_TOO_DEEP);
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
		cmocka_unit_test(test_filter_exact),
		cmocka_unit_test(test_filter_limits),
		cmocka_unit_test(test_payload_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
