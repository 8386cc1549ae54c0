/*
 * test_subdef.c - subscription definitions (a marker's data, the open
 * answer's version): exactly the expected shape is applied, anything else
 * refused whole.
 */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "subdef.h"

static sub_def_status
def_parse(const char *text, int64_t sid, sub_def *d)
{
	const char *why;

	return subdef_parse(text, strlen(text), sid, d, &why);
}

/* Definitions (a marker's data): exactly the expected shape, or refused. */
static void
test_def_parse(void **state)
{
	static const char *const bad[] = {
		"[]", "{}", "{\"sid\":7,\"channels\":[\"a\"],\"filter\":{}}",	/* no state */
		"{\"sid\":8,\"channels\":[\"a\"],\"filter\":{},\"state\":\"active\"}",	/* other sid */
		"{\"sid\":7,\"channels\":[],\"filter\":{},\"state\":\"active\"}",
		"{\"sid\":7,\"channels\":[\"a..b\"],\"filter\":{},\"state\":\"active\"}",
		"{\"sid\":7,\"channels\":[\"a\",3],\"filter\":{},\"state\":\"active\"}",
		"{\"sid\":7,\"channels\":\"a\",\"filter\":{},\"state\":\"active\"}",
		"{\"sid\":7,\"channels\":[\"a\"],\"filter\":[1],\"state\":\"active\"}",
		"{\"sid\":7,\"channels\":[\"a\"],\"filter\":null,\"state\":\"active\"}",
		"{\"sid\":7,\"channels\":[\"a\"],\"state\":\"active\"}",		/* no filter */
		"{\"sid\":7,\"channels\":[\"a\"],\"filter\":{},\"state\":\"paused\"}",
		"{\"sid\":7,\"channels\":[\"a\"],\"filter\":{\"n\":1e999999},\"state\":\"active\"}",
		"{\"sid\":7,\"channels\":[\"a\"],\"filter\":{\"n\":1,\"state\":\"active\"}",	/* unbalanced */
		"{\"sid\":\"7\",\"channels\":[\"a\"],\"filter\":{},\"state\":\"active\"}",
	};
	sub_def		d;

	(void) state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (def_parse(bad[i], 7, &d) != SUB_DEF_INVALID)
			fail_msg("accepted %s", bad[i]);
		assert_null(d.patterns);
		assert_null(d.filter);
	}
	assert_int_equal(def_parse("{\"sid\":7,\"channels\":[\"job.7\",\"news.#\"],"
							   "\"filter\":{\"user\":42},\"state\":\"active\"}", 7, &d), SUB_DEF_OK);
	assert_int_equal(d.npatterns, 2);
	assert_string_equal(d.patterns[1], "news.#");
	assert_non_null(d.filter);
	assert_int_equal(d.state, SUB_ACTIVE);
	subdef_clear(&d);
	assert_int_equal(def_parse("{\"sid\":7,\"channels\":[\"a\"],\"filter\":{},"
							   "\"state\":\"dropped\"}", 7, &d), SUB_DEF_OK);
	assert_null(d.filter);		/* {} matches everything */
	assert_int_equal(d.state, SUB_DROPPED);
	subdef_clear(&d);
	assert_int_equal(def_parse("{\"sid\":7,\"channels\":[\"a\"],\"filter\":{},"
							   "\"state\":\"closed\"}", 7, &d), SUB_DEF_OK);
	assert_int_equal(d.state, SUB_CLOSED);
	subdef_clear(&d);
	/* the open answer's form (json_build_object spacing), numbers kept exact */
	assert_int_equal(def_parse("{\"sid\" : 7, \"channels\" : [\"a.*\"], \"filter\" : "
							   "{\"n\": 12345678901234567890123, \"s\": \"x}\\\"]\"}, "
							   "\"state\" : \"active\"}", 7, &d), SUB_DEF_OK);
	assert_non_null(d.filter);
	assert_int_equal(subdef_sid("{\"sid\" : 7}", 11), 7);
	subdef_clear(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_def_parse),
	};

	return cmocka_run_group_tests_name("subdef", tests, NULL, NULL);
}
