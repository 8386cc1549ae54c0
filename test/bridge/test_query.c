/*
 * test_query.c - query strings, percent-decoding and Last-Event-ID.
 */
#include <stdlib.h>

#include "test_util.h"
#include "query.h"

static bool
parse(const char *qs, query_params *p)
{
	char		err[128];

	return query_parse(qs, strlen(qs), p, err, sizeof(err));
}

static void
test_query_basic(void **state)
{
	query_params p;

	(void) state;
	assert_true(parse("channel=a.b&channel=c.%2A&filter=%7B%22k%22%3A1%7D&lastEventId=42&x=y", &p));
	assert_int_equal(p.nchannels, 2);
	assert_string_equal(p.channels[0], "a.b");
	assert_string_equal(p.channels[1], "c.*");
	assert_string_equal(p.filter, "{\"k\":1}");
	assert_string_equal(p.last_event_id, "42");
	query_params_free(&p);
	assert_true(parse("", &p));
	assert_int_equal(p.nchannels, 0);
	assert_null(p.filter);
	query_params_free(&p);
	assert_true(parse("&&channel&filter=a+b", &p));
	assert_int_equal(p.nchannels, 1);
	assert_string_equal(p.channels[0], "");
	assert_string_equal(p.filter, "a b");
	query_params_free(&p);
}

static void
test_query_errors(void **state)
{
	query_params p;
	char		many[2000] = "";

	(void) state;
	assert_false(parse("channel=%zz", &p));
	assert_false(parse("channel=%4", &p));
	assert_false(parse("channel=a%00b", &p));
	assert_false(parse("filter={}&filter={}", &p));
	assert_false(parse("lastEventId=1&lastEventId=2", &p));
	for (int i = 0; i <= QUERY_MAX_CHANNELS; i++)
		strcat(many, "channel=a&");
	assert_false(parse(many, &p));
}

static void
test_event_id(void **state)
{
	int64_t		v;

	(void) state;
	assert_true(query_parse_event_id("0", 1, &v));
	assert_int_equal(v, 0);
	assert_true(query_parse_event_id(" 123 ", 5, &v));
	assert_int_equal(v, 123);
	assert_true(query_parse_event_id("9223372036854775807", 19, &v));
	assert_int_equal(v, INT64_MAX);
	assert_false(query_parse_event_id("9223372036854775808", 19, &v));
	assert_false(query_parse_event_id("99999999999999999999", 20, &v));
	assert_false(query_parse_event_id("-1", 2, &v));
	assert_false(query_parse_event_id("+1", 2, &v));
	assert_false(query_parse_event_id("1a", 2, &v));
	assert_false(query_parse_event_id("0x10", 4, &v));
	assert_false(query_parse_event_id("", 0, &v));
	assert_false(query_parse_event_id("  ", 2, &v));
	assert_false(query_parse_event_id("1 2", 3, &v));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_basic),
		cmocka_unit_test(test_query_errors),
		cmocka_unit_test(test_event_id),
	};

	return cmocka_run_group_tests_name("query", tests, NULL, NULL);
}
