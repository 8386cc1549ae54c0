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

	return query_parse(qs, strlen(qs), p, err, sizeof(err)) == QUERY_OK;
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

static bool
eid(const char *s, query_event_id *v)
{
	return query_parse_event_id(s, strlen(s), v);
}

static void
test_event_id(void **state)
{
	query_event_id v;

	(void) state;
	assert_true(eid("0", &v));
	assert_int_equal(v.id, 0);
	assert_false(v.has_fp);
	assert_true(eid(" 123 ", &v));
	assert_int_equal(v.id, 123);
	assert_true(eid("9223372036854775807", &v));
	assert_int_equal(v.id, INT64_MAX);
	assert_false(eid("9223372036854775808", &v));
	assert_false(eid("99999999999999999999", &v));
	assert_false(eid("-1", &v));
	assert_false(eid("+1", &v));
	assert_false(eid("1a", &v));
	assert_false(eid("0x10", &v));
	assert_false(eid("", &v));
	assert_false(eid("  ", &v));
	assert_false(eid("1 2", &v));
}

/* "<id>-<fp>": 8 lowercase hex digits (never all zero) or the "-0" form. */
static void
test_event_id_fp(void **state)
{
	query_event_id v;

	(void) state;
	assert_true(eid("51-0d23ba48", &v));
	assert_int_equal(v.id, 51);
	assert_true(v.has_fp);
	assert_int_equal(v.fp, 0x0d23ba48u);
	assert_true(eid(" 7-ffffffff\t", &v));
	assert_int_equal(v.id, 7);
	assert_int_equal(v.fp, 0xffffffffu);
	assert_true(eid("0-0", &v));
	assert_int_equal(v.id, 0);
	assert_true(v.has_fp);
	assert_int_equal(v.fp, 0);
	assert_true(eid("9223372036854775807-00000001", &v));
	assert_int_equal(v.id, INT64_MAX);
	assert_int_equal(v.fp, 1);
	assert_false(eid("5-00000000", &v));	/* a row's fingerprint is never 0 */
	assert_false(eid("5-0D23BA48", &v));	/* lowercase only */
	assert_false(eid("5-0d23ba4", &v));
	assert_false(eid("5-0d23ba481", &v));
	assert_false(eid("5-00", &v));
	assert_false(eid("5-", &v));
	assert_false(eid("-0d23ba48", &v));
	assert_false(eid("5--0", &v));
	assert_false(eid("5-0-0", &v));
	assert_false(eid("5 -0", &v));
	assert_false(eid("5-0d23ba4g", &v));
	assert_false(eid("9223372036854775808-0", &v));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_basic),
		cmocka_unit_test(test_query_errors),
		cmocka_unit_test(test_event_id),
		cmocka_unit_test(test_event_id_fp),
	};

	return cmocka_run_group_tests_name("query", tests, NULL, NULL);
}
