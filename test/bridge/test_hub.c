/*
 * test_hub.c - the fan-out index agrees with direct evaluation, delivers
 * each event once per subscription, and ends streams on literal closes
 * (a close through a wildcard pattern obeys the filter);
 * the literal fast path of hub_matches agrees with sse_pattern_match, and a
 * filter that is exactly its indexed pair is decided without evaluation
 * exactly when sse_filter_match would say yes.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"
#include "hub.h"
#include "sse_filter.h"
#include "sse_match.h"

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
static json_t *fref[NSUBS];		/* the filter for the direct reference */

static void
make_sub(int i, const char *p1, const char *p2, const char *filter)
{
	pat_store[i][0] = strdup(p1);
	pat_store[i][1] = p2 ? strdup(p2) : NULL;
	subs[i].patterns = pat_store[i];
	subs[i].npatterns = p2 ? 2 : 1;
	subs[i].filter = NULL;
	fref[i] = NULL;
	if (filter) {
		assert_int_equal(sse_filter_compile(filter, strlen(filter), &subs[i].filter, NULL), SSE_JSON_OK);
		fref[i] = sse_json_parse(filter, strlen(filter));
		assert_non_null(fref[i]);
	}
	if (i % 2 == 0)				/* half take the prepared (fast) path */
		hub_sub_prepare(&subs[i]);
	assert_true(hub_add(&subs[i]));
}

static void
free_sub(int i)
{
	hub_remove(&subs[i]);
	hub_sub_unprepare(&subs[i]);
	free(pat_store[i][0]);
	free(pat_store[i][1]);
	sse_filter_free(subs[i].filter);
	json_decref(fref[i]);
	subs[i].filter = NULL;
	fref[i] = NULL;
}

static void
check_event(int64_t id, const char *ch, const char *name, const char *data)
{
	event	   *ev = event_new(id, 0, ch, strlen(ch), name, name ? strlen(name) : 0,
							   data, strlen(data));

	json_t	   *dj = sse_json_parse(data, strlen(data));

	memset(delivered, 0, sizeof(delivered));
	memset(ended, 0, sizeof(ended));
	hub_dispatch(ev);
	for (int i = 0; i < NSUBS; i++) {
		bool		ends;
		bool		want = subs[i].entries && hub_matches(&subs[i], ev, &ends);
		hub_sub		nf = subs[i];

		/* the compiled filter agrees with the direct reference, sse_filter_match */
		nf.filter = NULL;
		if (subs[i].entries && hub_matches(&nf, ev, &ends) && !ev->is_close && fref[i] &&
			want != sse_filter_match(fref[i], json_is_object(dj) ? dj : NULL))
			fail_msg("event %s to sub %d: compiled %d, direct disagrees", data, i, want);
		if (subs[i].entries)
			want = hub_matches(&subs[i], ev, &ends);
		if (delivered[i] != (want ? 1 : 0))
			fail_msg("event %s %s to sub %d: delivered %d want %d", ch, data, i, delivered[i], want);
		if (want && ended[i] != (ends ? 1 : 0))
			fail_msg("event %s to sub %d: ended %d want %d", ch, i, ended[i], ends);
	}
	event_free(ev);
	json_decref(dj);
}

static void
hub_agrees(bool use_index)
{
	char		f[64];
	int			n = 0;

	hub_init(on_deliver);
	hub_set_index(use_index);
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
	check_event(7, "jobs.1", "close", "{}");		/* ends literals; filtered on wildcards */
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
test_hub_agrees(void **state)
{
	(void) state;
	hub_agrees(true);
	hub_agrees(false);			/* --filter-index off */
}

/*
 * One-member filters are decided by the key/value lookup where that is
 * safe; the others (big integers, -0) must still agree with evaluation.
 */
static void
test_hub_exact(void **state)
{
	static const char *const filters[] = {
		"{\"n\":1}", "{\"n\":1.0}", "{\"n\":1.5}", "{\"n\":-0.0}", "{\"n\":0}",
		"{\"n\":9007199254740993}", "{\"n\":9007199254740992}", "{\"n\":9007199254740991}",
		"{\"n\":-9007199254740993}", "{\"s\":\"x\"}", "{\"s\":\"\"}", "{\"b\":true}",
		"{\"b\":false}", "{\"z\":null}", "{\"s\":\"x\",\"n\":1}", "{\"s\":[\"x\"]}",
		"{\"n\":1e300}", "{\"n\":100000000000000000000}", "{\"n\":1e400}", "{\"n\":-0}",
	};
	static const char *const datas[] = {
		"{\"n\":1}", "{\"n\":1.0}", "{\"n\":1.5,\"s\":\"x\"}", "{\"n\":0}", "{\"n\":-0.0}",
		"{\"n\":9007199254740992}", "{\"n\":9007199254740993}", "{\"n\":9007199254740991.0}",
		"{\"n\":-9007199254740992}", "{\"s\":\"x\",\"n\":1}", "{\"s\":\"\"}",
		"{\"b\":true,\"z\":null}", "{\"b\":false}", "{\"s\":\"xy\"}", "{\"n\":\"1\"}",
		"{\"n\":1e300}", "{\"n\":100000000000000000000}", "{\"n\":1e20}", "[1]", "x",
		"{\"n\":10e399}", "{\"n\":1e400,\"n\":2}", "{\"n\":2,\"n\":1e400}", "{\"n\":-0.0e5}",
	};
	size_t		nf = sizeof(filters) / sizeof(filters[0]);
	int64_t		id = 1;

	(void) state;
	for (int mode = 0; mode < 2; mode++) {
		hub_init(on_deliver);
		hub_set_index(mode == 0);
		for (size_t i = 0; i < NSUBS; i++)
			make_sub((int) i, "e", NULL, i < nf ? filters[i] : NULL);
		for (size_t d = 0; d < sizeof(datas) / sizeof(datas[0]); d++)
			check_event(id++, "e", NULL, datas[d]);
		for (int i = 0; i < NSUBS; i++)
			free_sub(i);
		hub_shutdown();
	}
}

/* Prepared literal patterns agree with sse_pattern_match on every pair. */
static void
test_hub_literal_path(void **state)
{
	static const char *const pats[] = {
		"a", "a.b", "a.b.c", "ab", "a.bc", "jobs.1", "jobs.10", "jobs.*", "jobs.#", "#", "*",
		"a.*.c", "x_y-z.Q", "A", "a.b.c.d.e.f.g.h",
	};
	static const char *const chans[] = {
		"a", "a.b", "a.b.c", "ab", "a.bc", "jobs.1", "jobs.10", "jobs", "jobs.1.2", "b",
		"x_y-z.Q", "x_y-z.q", "A", "a.b.c.d.e.f.g.h", "a.b.c.d.e.f.g",
	};
	size_t		np = sizeof(pats) / sizeof(pats[0]), nc = sizeof(chans) / sizeof(chans[0]);
	char	   *one[1];
	hub_sub		s = {.patterns = one, .npatterns = 1};

	(void) state;
	for (size_t p = 0; p < np; p++) {
		one[0] = (char *) pats[p];
		hub_sub_prepare(&s);
		assert_non_null(s.pinfo);
		assert_int_equal(s.pinfo[0].len, strlen(pats[p]));
		assert_int_equal(s.pinfo[0].literal, sse_pattern_is_literal(pats[p], strlen(pats[p])));
		for (size_t c = 0; c < nc; c++) {
			for (int close = 0; close < 2; close++) {
				event	   *ev = event_new(1, 0, chans[c], strlen(chans[c]),
										   close ? "close" : NULL, close ? 5 : 0, "{}", 2);
				bool		want = sse_pattern_match(pats[p], strlen(pats[p]), chans[c], strlen(chans[c]));
				bool		ends, ends2, got = hub_matches(&s, ev, &ends);
				hub_pat    *saved = s.pinfo;

				s.pinfo = NULL;	/* the general path must say the same */
				assert_int_equal(hub_matches(&s, ev, &ends2), want);
				s.pinfo = saved;
				if (got != want)
					fail_msg("pattern %s channel %s: got %d want %d", pats[p], chans[c], got, want);
				assert_int_equal(ends, ends2);
				event_free(ev);
			}
		}
		hub_sub_unprepare(&s);
		assert_null(s.pinfo);
	}
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
	assert_int_equal(hub_filter_evals - before, 0);	/* exactly the indexed pair */
	assert_int_equal(delivered[5], 1);
	event_free(ev);
	free_sub(7);				/* a second member: the candidate is evaluated */
	make_sub(7, "jobs", NULL, "{\"job\":\"5\",\"x\":2}");
	ev = event_new(2, 0, "jobs", 4, NULL, 0, "{\"job\":\"5\",\"x\":1}", 17);
	memset(delivered, 0, sizeof(delivered));
	before = hub_filter_evals;
	hub_dispatch(ev);
	assert_int_equal(hub_filter_evals - before, 1);	/* one candidate, not 64 */
	assert_int_equal(delivered[5], 1);
	assert_int_equal(delivered[7], 0);
	event_free(ev);
	for (int i = 0; i < NSUBS; i++)
		free_sub(i);
	hub_shutdown();
}

/*
 * A close obeys the filter on streams that reach it through a wildcard
 * only, and ends (whatever the filter) every stream naming it literally.
 */
static void
test_hub_close_filter(void **state)
{
	static const char close_data[] = "{\"channel\":\"job.7\"}";
	event	   *ev;
	bool		ends;

	(void) state;
	hub_init(on_deliver);
	make_sub(0, "job.*", NULL, "{\"state\":\"done\"}");	/* wildcard, filtered */
	make_sub(1, "job.*", NULL, "{\"channel\":\"job.7\"}");	/* wildcard, filter matches */
	make_sub(2, "job.*", NULL, NULL);							/* wildcard, no filter */
	make_sub(3, "job.7", NULL, "{\"state\":\"done\"}");	/* literal, filtered */
	make_sub(4, "job.7", "job.*", "{\"state\":\"done\"}");	/* both */
	make_sub(5, "job.*", NULL, "{\"state\":\"done\"}");	/* odd: general path */
	ev = event_new(1, 0, "job.7", 5, "close", 5, close_data, strlen(close_data));
	memset(delivered, 0, sizeof(delivered));
	memset(ended, 0, sizeof(ended));
	hub_dispatch(ev);
	assert_int_equal(delivered[0], 0);
	assert_int_equal(delivered[5], 0);
	assert_int_equal(delivered[1], 1);
	assert_int_equal(ended[1], 0);
	assert_int_equal(delivered[2], 1);
	assert_int_equal(ended[2], 0);
	assert_int_equal(delivered[3], 1);
	assert_int_equal(ended[3], 1);
	assert_int_equal(delivered[4], 1);
	assert_int_equal(ended[4], 1);
	assert_false(hub_matches(&subs[0], ev, &ends));
	assert_false(hub_matches(&subs[5], ev, &ends));
	assert_true(hub_matches(&subs[3], ev, &ends) && ends);
	assert_true(hub_matches(&subs[4], ev, &ends) && ends);
	assert_true(hub_matches(&subs[1], ev, &ends) && !ends);
	event_free(ev);
	for (int i = 0; i < 6; i++)
		free_sub(i);
	hub_shutdown();
}

/*
 * The payload is parsed only when a matching bucket holds a filter; with
 * more matching wildcard buckets than a dispatch remembers, each still gets
 * the event exactly once, and a filter in the last one is still judged.
 */
static void
test_hub_parse_when_needed(void **state)
{
	static const char chan[] = "s0.s1.s2.s3.s4.s5";
	static const char data[] = "{\"k\":1}";
	char		pat[64];
	event	   *ev;
	int			n = 0;

	(void) state;
	hub_init(on_deliver);
	make_sub(n++, "other.#", NULL, "{\"k\":1}");		/* filtered, never matches */
	/* every pattern that replaces some segments of chan by "*": 63 buckets */
	for (int mask = 1; mask < 64 && n < NSUBS - 1; mask++) {
		size_t		len = 0;

		for (int seg = 0; seg < 6; seg++)
			len += (size_t) snprintf(pat + len, sizeof(pat) - len, "%s%s", seg ? "." : "",
									 mask & (1 << seg) ? "*" : (const char *[]) {"s0", "s1", "s2", "s3", "s4", "s5"}[seg]);
		make_sub(n++, pat, NULL, NULL);
	}
	ev = event_new(1, 0, chan, strlen(chan), NULL, 0, data, strlen(data));
	memset(delivered, 0, sizeof(delivered));
	assert_true(hub_dispatch(ev));
	assert_false(ev->parsed);	/* no filter among the matching buckets */
	assert_int_equal(delivered[0], 0);
	for (int i = 1; i < n; i++)
		assert_int_equal(delivered[i], 1);
	event_free(ev);

	/* a filter joins the bucket visited last (the first one added) */
	free_sub(0);
	make_sub(0, pat_store[1][0], NULL, "{\"k\":1}");
	ev = event_new(2, 0, chan, strlen(chan), NULL, 0, data, strlen(data));
	memset(delivered, 0, sizeof(delivered));
	assert_true(hub_dispatch(ev));
	assert_true(ev->parsed);
	for (int i = 0; i < n; i++)
		assert_int_equal(delivered[i], 1);
	event_free(ev);
	for (int i = 0; i < n; i++)
		free_sub(i);
	hub_shutdown();
}

/* ---- batches ---- */

#define BATCH_EVENTS 600		/* more than one batch holds (HUB_BATCH_MAX) */
#define BATCH_PIECE 300

static int64_t got[NSUBS][BATCH_EVENTS * 2];
static int	got_ends[NSUBS];
static size_t ngot[NSUBS];
static size_t run_calls, run_items, joined;
static size_t runs_of[NSUBS];

static void
on_record(hub_sub *s, event *ev, bool ends)
{
	size_t		i = (size_t) (s - subs);

	got[i][ngot[i]++] = ev->id;
	got_ends[i] += ends;
}

/* Every id of items[from..n), and the pieces hold exactly the items' bytes. */
static void
on_run(hub_sub *s, const hub_run *run, size_t from)
{
	size_t		i = (size_t) (s - subs), item = 0;

	run_calls++;
	run_items += run->n - from;
	runs_of[i]++;
	assert_true(from < run->n && s->seen == run->items[run->n - 1].id);
	for (size_t k = from; k < run->n; k++)
		got[i][ngot[i]++] = run->items[k].id;
	for (size_t p = 0; p < run->npieces; p++) {
		size_t		off = 0;

		assert_true(run->end[p] > item && run->end[p] <= run->n);
		if (run->end[p] - item > 1) {
			joined++;
			assert_true(run->pieces[p]->len <= BATCH_PIECE);
		}
		for (; item < run->end[p]; item++) {
			const frame *f = run->items[item].f;

			assert_true(off + f->len <= run->pieces[p]->len);
			assert_memory_equal(run->pieces[p]->data + off, f->data, f->len);
			off += f->len;
		}
		assert_int_equal(off, run->pieces[p]->len);
	}
	assert_int_equal(item, run->n);
}

static void
batch_subs(void)
{
	make_sub(0, "a.1", NULL, NULL);		/* solo, literal: several share a run */
	make_sub(1, "a.1", NULL, NULL);
	make_sub(2, "a.1", NULL, NULL);
	make_sub(3, "a.*", NULL, NULL);		/* solo, wildcard */
	make_sub(4, "a.*", NULL, NULL);
	make_sub(5, "b.1", NULL, NULL);		/* solo, alone in its bucket */
	make_sub(6, "a.1", "b.1", NULL);	/* two patterns: one by one */
	make_sub(7, "b.1", "a.*", NULL);
	make_sub(8, "a.1", NULL, "{\"k\":\"1\"}");	/* exactly a key pair: solo in its key list */
	make_sub(9, "a.*", NULL, "{\"k\":\"2\",\"x\":1}");	/* filtered: one by one */
	make_sub(10, "a.1", NULL, "{\"k\":\"1\"}");
	make_sub(11, "a.*", NULL, "{\"k\":\"0\"}");
	make_sub(12, "a.1", "b.1", "{\"k\":\"1\"}");	/* two patterns: one by one */
	make_sub(13, "a.*", NULL, "{\"k\":\"0\"}");
}

#define BATCH_SUBS 14

/*
 * One random sequence (interleaved channels, close events, an event larger
 * than a piece) delivered one by one and in batches with random flushes,
 * batch ends, a subscription removed and added again mid-batch, and one
 * that has seen some of a run already: every
 * subscription gets the same ids in the same order and the same ends.
 */
static void
test_hub_batch_same(void **state)
{
	static const char *chans[] = {"a.1", "a.2", "b.1", "c.1"};
	static int64_t want[NSUBS][BATCH_EVENTS * 2];
	static size_t nwant[NSUBS];
	static int	want_ends[NSUBS];
	char		big[400], data[64];
	event	   *evs[BATCH_EVENTS];

	(void) state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	srand(7);
	for (int k = 0; k < BATCH_EVENTS; k++) {
		const char *ch = chans[rand() % 4];
		bool		close = rand() % 50 == 0;

		snprintf(data, sizeof(data), "{\"k\":\"%d\",\"x\":%d}", rand() % 3, k);
		evs[k] = event_new(k + 1, k, ch, strlen(ch), close ? "close" : NULL, close ? 5 : 0,
						   k % 97 == 5 ? big : data, strlen(k % 97 == 5 ? big : data));
	}
	for (int pass = 0; pass < 2; pass++) {
		memset(ngot, 0, sizeof(ngot));
		memset(got_ends, 0, sizeof(got_ends));
		run_calls = run_items = joined = 0;
		memset(runs_of, 0, sizeof(runs_of));
		hub_init(on_record);
		if (pass == 1)
			hub_set_run(on_run);
		batch_subs();
		hub_batch_begin(BATCH_PIECE);
		for (int k = 0; k < BATCH_EVENTS; k++) {
			assert_true(hub_dispatch(evs[k]));
			if (k == 200) {		/* it has seen the next few already (as after a reset) */
				hub_flush();
				subs[1].seen = k + 30;
			}
			if (k == 300) {		/* a removal and an add flush what is pending */
				free_sub(4);
				make_sub(4, "a.*", NULL, NULL);
				free_sub(11);	/* (and a key list may go and come back) */
				free_sub(13);
				make_sub(13, "a.*", NULL, "{\"k\":\"0\"}");
				make_sub(11, "a.*", NULL, "{\"k\":\"0\"}");
			}
			if (rand() % 40 == 0)
				hub_flush();
			if (rand() % 60 == 0) {
				hub_batch_end();
				hub_batch_begin(BATCH_PIECE);
			}
		}
		hub_batch_end();
		for (int i = 0; i < BATCH_SUBS; i++)
			free_sub(i);
		hub_shutdown();
		if (pass == 0) {
			memcpy(want, got, sizeof(want));
			memcpy(nwant, ngot, sizeof(nwant));
			memcpy(want_ends, got_ends, sizeof(want_ends));
			continue;
		}
		for (int i = 0; i < BATCH_SUBS; i++) {
			assert_int_equal(ngot[i], nwant[i]);
			assert_memory_equal(got[i], want[i], nwant[i] * sizeof(int64_t));
			assert_int_equal(got_ends[i], want_ends[i]);
		}
	}
	/* the solo ones got runs, and runs shared joined pieces */
	assert_true(run_calls > 0);
	fprintf(stderr, "%zu events in %zu runs, %zu joined pieces\n", run_items, run_calls, joined);
	assert_true(run_items > 3 * run_calls);
	assert_true(joined > 0);
	/* solo: one pattern, and no filter or exactly a key pair; the rest one by one */
	for (int i = 0; i < BATCH_SUBS; i++)
		if ((runs_of[i] > 0) != (i != 6 && i != 7 && i != 9 && i != 12))
			fail_msg("sub %d: %zu runs", i, runs_of[i]);
	for (int k = 0; k < BATCH_EVENTS; k++)
		event_free(evs[k]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hub_agrees),
		cmocka_unit_test(test_hub_index_narrows),
		cmocka_unit_test(test_hub_exact),
		cmocka_unit_test(test_hub_literal_path),
		cmocka_unit_test(test_hub_close_filter),
		cmocka_unit_test(test_hub_parse_when_needed),
		cmocka_unit_test(test_hub_batch_same),
	};

	return cmocka_run_group_tests_name("hub", tests, NULL, NULL);
}
