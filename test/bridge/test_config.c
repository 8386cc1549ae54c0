/*
 * test_config.c - settings are converted to one unit when loaded: every
 * duration in cfg is milliseconds, every size bytes, whatever unit its
 * option is written in; the accepted ranges are those of the options.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"
#include "config.h"

/* cfg_load with the given options after argv[0]; NULL-terminated. */
static cfg_result
load(const char *first, ...)
{
	char	   *argv[32];
	int			argc = 0;
	va_list		ap;
	cfg_result	r;

	argv[argc++] = (char *) "sse-bridge";
	va_start(ap, first);
	for (const char *a = first; a != NULL && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *) a;
	va_end(ap);
	argv[argc] = NULL;
	cfg_free();
	r = cfg_load(argc, argv);
	return r;
}

static void
test_defaults(void **state)
{
	assert_int_equal(load(NULL), CFG_OK);
	assert_int_equal(cfg.keepalive_ms, 15000);
	assert_int_equal(cfg.retry_ms, 3000);
	assert_int_equal(cfg.header_timeout_ms, 10000);
	assert_int_equal(cfg.poll_interval_ms, 5000);
	assert_int_equal(cfg.touch_interval_ms, 10000);
	assert_int_equal(cfg.db_timeout_ms, 10000);
	assert_int_equal(cfg.prune_interval_ms, 60000);
	assert_int_equal(cfg.client_queue, 1024 * 1024);
	assert_int_equal(cfg.max_header_bytes, 8 * 1024);
	assert_int_equal(cfg.replay_cache, 64 * 1024 * 1024);
	assert_int_equal(cfg.max_memory, 512 * 1024 * 1024);
	cfg_free();
}

/* Options in seconds become ms; options in ms stay ms. */
static void
test_durations(void **state)
{
	assert_int_equal(load("--keepalive", "2", "--header-timeout", "3", "--touch-interval", "4",
						  "--db-timeout", "5", "--prune-interval", "6", "--retry", "2500",
						  "--poll-interval", "250", NULL), CFG_OK);
	assert_int_equal(cfg.keepalive_ms, 2000);
	assert_int_equal(cfg.header_timeout_ms, 3000);
	assert_int_equal(cfg.touch_interval_ms, 4000);
	assert_int_equal(cfg.db_timeout_ms, 5000);
	assert_int_equal(cfg.prune_interval_ms, 6000);
	assert_int_equal(cfg.retry_ms, 2500);
	assert_int_equal(cfg.poll_interval_ms, 250);

	/* the environment is read in the option's unit too */
	setenv("SSE_BRIDGE_DB_TIMEOUT", "7", 1);
	assert_int_equal(load(NULL), CFG_OK);
	assert_int_equal(cfg.db_timeout_ms, 7000);
	unsetenv("SSE_BRIDGE_DB_TIMEOUT");

	assert_int_equal(load("--prune-interval", "0", NULL), CFG_OK);
	assert_int_equal(cfg.prune_interval_ms, 0);
	cfg_free();
}

static void
test_sizes(void **state)
{
	assert_int_equal(load("--client-queue", "64k", "--max-header-bytes", "300",
						  "--replay-cache", "2M", "--max-memory", "1G", NULL), CFG_OK);
	assert_int_equal(cfg.client_queue, 64 * 1024);
	assert_int_equal(cfg.max_header_bytes, 300);
	assert_int_equal(cfg.replay_cache, 2 * 1024 * 1024);
	assert_int_equal(cfg.max_memory, 1024 * 1024 * 1024);
	cfg_free();
}

/* The limits are the options' own, at both edges. */
static void
test_ranges(void **state)
{
	static const struct {
		const char *opt, *ok, *bad;
	}			edges[] = {
		{"--keepalive", "86400", "86401"},
		{"--db-timeout", "3600", "3601"},
		{"--prune-interval", "604800", "604801"},
		{"--retry", "86400000", "86400001"},
		{"--keepalive", "1", "0"},
		{"--header-timeout", "1", "0"},
		{"--touch-interval", "1", "0"},
		{"--poll-interval", "1", "0"},
		{"--db-timeout", "1", "0"},
		{"--replay-poll", "1", "0"},
		{"--replay-poll", "60000", "60001"},
		{"--lag-wait", "600000", "600001"},
		/* seconds that would overflow once held in ms */
		{"--touch-interval", "1", "18446744073709552"},
		{"--keepalive", "15", "-1"},
		{"--keepalive", "15", "1s"},
	};

	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		if (load(edges[i].opt, edges[i].ok, NULL) != CFG_OK)
			fail_msg("%s %s refused", edges[i].opt, edges[i].ok);
		if (load(edges[i].opt, edges[i].bad, NULL) != CFG_EXIT_ERROR)
			fail_msg("%s %s accepted", edges[i].opt, edges[i].bad);
	}
	cfg_free();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_ranges),
	};

	/* the refusals print their reason; keep the log to the verdicts */
	if (freopen("/dev/null", "w", stderr) == NULL)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
