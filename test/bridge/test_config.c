/*
 * test_config.c - settings are converted to one unit when loaded: every
 * duration in cfg is milliseconds, every size bytes, whatever unit its
 * option is written in; the accepted ranges are those of the options.  The
 * configuration file: its syntax, its errors (FILE:LINE), its place in the
 * precedence (flags > environment > file > defaults), and a reread that
 * keeps the settings that cannot change while running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static char tmpdir[] = "/tmp/test_config.XXXXXX";
static char conf[64];

/* Write text into the test's configuration file. */
static void
write_conf(const char *text)
{
	FILE	   *f = fopen(conf, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
setup_dir(void **state)
{
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(conf, sizeof(conf), "%s/sse-bridge.conf", tmpdir);
	cfg_default_file = NULL;	/* the machine's /etc is not the test's */
	unsetenv("SSE_BRIDGE_CONFIG");
	return 0;
}

static int
teardown_dir(void **state)
{
	unlink(conf);
	rmdir(tmpdir);
	return 0;
}

/* Names as the long options, comments, blanks, quotes, "#" inside values. */
static void
test_file_syntax(void **state)
{
	write_conf("# a comment\n"
			   "\n"
			   "   keepalive = 7\n"
			   "client-queue=64k\n"
			   "\t# indented comment\n"
			   "public-channels = jobs.#, news.*\n"
			   "cors-origin = \"HTTP://Example.COM:80/\"\n"
			   "demo = on\r\n"
			   "log-level = warn\n");
	assert_int_equal(load("--config", conf, NULL), CFG_OK);
	assert_string_equal(cfg_file, conf);
	assert_int_equal(cfg.keepalive_ms, 7000);
	assert_int_equal(cfg.client_queue, 64 * 1024);
	assert_string_equal(cfg.public_channels, "jobs.#, news.*");
	assert_string_equal(cfg.cors_origin, "http://example.com");
	assert_true(cfg.demo);
	cfg_free();
}

/* Every wrong line is refused with FILE:LINE and the reason. */
static void
test_file_errors(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	}			bad[] = {
		{"keepalive = 5\nkeepalive 6\n", ":2: missing \"=\""},
		{"# ok\nkeep-alive = 5\n", ":2: unknown setting \"keep-alive\""},
		{"\n\n\nkeepalive = soon\n", ":4: invalid value \"soon\" for keepalive"},
		{"demo = maybe\n", ":1: invalid value \"maybe\" for demo"},
		{"keepalive = 5\nretry = 100\nkeepalive = 6\n", ":3: keepalive is already set on line 1"},
		{"cors-origin = \"http://a.example\n", ":1: the value of cors-origin has no closing quote"},
		{"config = /etc/other.conf\n", ":1: unknown setting \"config\""},
		{"= 5\n", ":1: unknown setting \"\""},
	};
	char		want[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_conf(bad[i].text);
		if (load("--config", conf, NULL) != CFG_EXIT_ERROR)
			fail_msg("accepted: %s", bad[i].text);
		snprintf(want, sizeof(want), "%s%s", conf, bad[i].why);
		if (strncmp(cfg_error(), want, strlen(want)) != 0)
			fail_msg("for %s: want \"%s\", got \"%s\"", bad[i].text, want, cfg_error());
	}
	/* a value valid alone but not with the others names no line */
	write_conf("public-channels = a..b\n");
	assert_int_equal(load("--config", conf, NULL), CFG_EXIT_ERROR);
	assert_non_null(strstr(cfg_error(), "public-channels"));
	/* a named file that is missing is an error; --config "" reads none */
	unlink(conf);
	assert_int_equal(load("--config", conf, NULL), CFG_EXIT_ERROR);
	assert_non_null(strstr(cfg_error(), "cannot read"));
	assert_int_equal(load("--config", "", NULL), CFG_OK);
	assert_null(cfg_file);
	cfg_free();
}

/* flags > environment > file > defaults, setting by setting. */
static void
test_precedence(void **state)
{
	write_conf("keepalive = 2\nretry = 200\nbatch = 20\n");
	setenv("SSE_BRIDGE_RETRY", "300", 1);
	setenv("SSE_BRIDGE_BATCH", "30", 1);
	assert_int_equal(load("--config", conf, "--batch", "40", NULL), CFG_OK);
	assert_int_equal(cfg.keepalive_ms, 2000);	/* file over default */
	assert_int_equal(cfg.retry_ms, 300);		/* environment over file */
	assert_int_equal(cfg.batch, 40);			/* flag over environment */
	assert_int_equal(cfg.max_clients, 10000);	/* default */
	unsetenv("SSE_BRIDGE_RETRY");
	unsetenv("SSE_BRIDGE_BATCH");

	/* the default file is read when it exists, and only then */
	cfg_default_file = conf;
	assert_int_equal(load(NULL), CFG_OK);
	assert_int_equal(cfg.keepalive_ms, 2000);
	/* SSE_BRIDGE_CONFIG names another file */
	setenv("SSE_BRIDGE_CONFIG", "", 1);
	assert_int_equal(load(NULL), CFG_OK);
	assert_int_equal(cfg.keepalive_ms, 15000);
	unsetenv("SSE_BRIDGE_CONFIG");
	unlink(conf);
	assert_int_equal(load(NULL), CFG_OK);
	assert_null(cfg_file);
	assert_int_equal(cfg.keepalive_ms, 15000);
	cfg_default_file = NULL;
	cfg_free();
}

/*
 * A reread takes the file's new values under the same precedence; a
 * setting that cannot change while running keeps its value; an invalid
 * file changes nothing.
 */
static void
test_reread(void **state)
{
	cfg_settings next;

	write_conf("keepalive = 2\nlisten = 127.0.0.1:9000\ncors-origin = http://a.example\n");
	assert_int_equal(load("--config", conf, "--max-clients", "50", NULL), CFG_OK);
	write_conf("keepalive = 3\nlisten = 127.0.0.1:9001\ncors-origin = http://b.example\n"
			   "max-clients = 7\npublic-channels = x.#\nlog-level = debug\n");
	assert_true(cfg_reread(&next));
	assert_string_equal(next.listen, "127.0.0.1:9000");	/* kept */
	assert_int_equal(cfg_apply(&next), 4);
	assert_int_equal(cfg.keepalive_ms, 3000);
	assert_string_equal(cfg.cors_origin, "http://b.example");
	assert_string_equal(cfg.public_channels, "x.#");
	assert_int_equal(cfg.max_clients, 50);		/* the flag still wins */
	assert_string_equal(cfg.listen, "127.0.0.1:9000");
	assert_string_equal(cfg.log_level, "debug");

	write_conf("keepalive = 4\nbogus = 1\n");
	assert_false(cfg_reread(&next));
	assert_non_null(strstr(cfg_error(), ":2: unknown setting \"bogus\""));
	assert_int_equal(cfg.keepalive_ms, 3000);
	cfg_free();
}

/* --check-config validates and exits without running. */
static void
test_check_config(void **state)
{
	write_conf("keepalive = 2\n");
	assert_int_equal(load("--config", conf, "--check-config", NULL), CFG_EXIT_OK);
	write_conf("keepalive = 0\n");
	assert_int_equal(load("--config", conf, "--check-config", NULL), CFG_EXIT_ERROR);
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
		cmocka_unit_test(test_file_syntax),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_reread),
		cmocka_unit_test(test_check_config),
	};

	/* the refusals print their reason; keep the log to the verdicts */
	if (freopen("/dev/null", "w", stderr) == NULL)
		return 1;
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
