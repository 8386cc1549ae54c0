/*
 * test_hub.c - the fan-out index agrees with direct evaluation, delivers
 * each event once per subscription, and ends streams on literal closes.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"
#include "hub.h"
#include "sse_filter.h"

#define NSUBS 64

static int	delivered[NSUBS];
static int	ended[NSUBS];
static hub_sub subs[NSUBS];

static void
on_deliver(hub_sub *s, event *ev, bool ends)
{
	(void) ev;
	delivered[s - subs]++;
	ended[s - subs] += ends;
}

static char *pat_store[NSUBS][2];

static void
make_sub(int i, const char *p1, const char *p2, const char *filter)
{
	pat_store[i][0] = strdup(p1);
	pat_store[i][1] = p2 ? strdup(p2) : NULL;
	subs[i].patterns = pat_store[i];
	subs[i].npatterns = p2 ? 2 : 1;
	subs[i].filter = filter ? sse_json_parse(filter, strlen(filter)) : NULL;
	assert_true(hub_add(&subs[i]));
}

static void
free_sub(int i)
{
	hub_remove(&subs[i]);
	free(pat_store[i][0]);
	free(pat_store[i][1]);
	json_decref(subs[i].filter);
}

static void
check_event(int64_t id, const char *ch, const char *name, const char *data)
{
	event	   *ev = event_new(id, 0, ch, strlen(ch), name, name ? strlen(name) : 0,
							   data, strlen(data));

	memset(delivered, 0, sizeof(delivered));
	memset(ended, 0, sizeof(ended));
	hub_dispatch(ev);
	for (int i = 0; i < NSUBS; i++) {
		bool		ends;
		bool		want = subs[i].entries && hub_matches(&subs[i], ev, &ends);

		if (delivered[i] != (want ? 1 : 0))
			fail_msg("event %s %s to sub %d: delivered %d want %d", ch, data, i, delivered[i], want);
		if (want && ended[i] != (ends ? 1 : 0))
			fail_msg("event %s to sub %d: ended %d want %d", ch, i, ended[i], ends);
	}
	event_free(ev);
}

static void
test_hub_agrees(void **state)
{
	char		f[64];
	int			n = 0;

	(void) state;
	hub_init(on_deliver);
	for (int k = 0; k < 20; k++, n++) {
		snprintf(f, sizeof(f), "{\"job\":\"%d\"}", k % 10);
		make_sub(n, k % 2 ? "jobs.*" : "jobs.1", NULL, f);
	}
	make_sub(n++, "jobs.1", "jobs.#", NULL);
	make_sub(n++, "#", NULL, "{\"n\":1}");
	make_sub(n++, "#", NULL, "{\"tags\":[\"x\"]}");
	make_sub(n++, "jobs.1", NULL, "{\"job\":\"1\",\"n\":1.0}");
	make_sub(n++, "other", NULL, NULL);
	make_sub(n++, "jobs.*", "jobs.1", "{\"a\":{\"b\":true}}");
	for (; n < NSUBS; n++)
		make_sub(n, n % 3 ? "x.#" : "jobs.#", NULL, n % 2 ? "{\"job\":\"3\"}" : "{\"n\":1}");
	check_event(1, "jobs.1", NULL, "{\"job\":\"1\",\"n\":1}");
	check_event(2, "jobs.1", NULL, "{\"job\":\"3\",\"n\":1.0,\"tags\":[\"y\",\"x\"]}");
	check_event(3, "jobs.2", "upd", "{\"job\":\"2\",\"a\":{\"b\":true,\"c\":1}}");
	check_event(4, "jobs.1", NULL, "not json");
	check_event(5, "jobs.1", NULL, "[1,2]");
	check_event(6, "x.y.z", NULL, "{\"job\":\"3\"}");
	check_event(7, "jobs.1", "close", "{}");		/* bypasses filters, ends literals */
	check_event(8, "other", "close", "{}");
	for (int i = 0; i < NSUBS; i += 2)
		free_sub(i);
	check_event(9, "jobs.1", NULL, "{\"job\":\"1\",\"n\":1}");
	check_event(10, "jobs.3", "close", "{}");
	for (int i = 1; i < NSUBS; i += 2)
		free_sub(i);
	assert_int_equal(hub_count(), 0);
	hub_shutdown();
}

static void
test_hub_index_narrows(void **state)
{
	char		f[64];
	event	   *ev;
	uint64_t	before;

	(void) state;
	hub_init(on_deliver);
	for (int i = 0; i < NSUBS; i++) {
		snprintf(f, sizeof(f), "{\"job\":\"%d\"}", i);
		make_sub(i, "jobs", NULL, f);
	}
	ev = event_new(1, 0, "jobs", 4, NULL, 0, "{\"job\":\"5\",\"x\":1}", 17);
	memset(delivered, 0, sizeof(delivered));
	before = hub_filter_evals;
	hub_dispatch(ev);
	assert_int_equal(hub_filter_evals - before, 1);	/* one candidate, not 64 */
	assert_int_equal(delivered[5], 1);
	event_free(ev);
	for (int i = 0; i < NSUBS; i++)
		free_sub(i);
	hub_shutdown();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hub_agrees),
		cmocka_unit_test(test_hub_index_narrows),
	};

	return cmocka_run_group_tests_name("hub", tests, NULL, NULL);
}
