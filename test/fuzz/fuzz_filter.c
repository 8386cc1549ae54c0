/*
 * fuzz_filter.c - libFuzzer target: filters and payloads, through the
 * compiled matcher, the direct matcher and the fan-out index.
 * Input: "FILTER\nDATA".  Properties:
 *   - the bridge's hub (indexed, compiled filters) and hub_matches agree on
 *     delivery, and both agree with sse_filter_eval;
 *   - a filter sse_filter_compile accepts is evaluated by sse_filter_eval
 *     exactly as by the direct sse_filter_match, twice in a row (the second
 *     time from the payload's array hashes);
 *   - sse_payload_check (publish time) refuses exactly the payloads that
 *     sse_doc_parse (the bridge) cannot read;
 *   - canonical numbers are canonical: compiling one again gives itself;
 *   - a refused filter never comes back as a filter.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "sse_filter.h"

static int	delivered;

static void
on_deliver(hub_sub *s, event *ev, bool ends)
{
	(void) s;
	(void) ev;
	(void) ends;
	delivered++;
}

static void
check_hub(sse_filter *filter, bool got, const char *data, size_t dlen)
{
	char	   *pat = "f.*";
	hub_sub		sub = {0};
	event	   *ev;
	bool		ends,
				want;

	hub_init(on_deliver);
	sub.patterns = &pat;
	sub.npatterns = 1;
	sub.filter = sse_filter_is_empty(filter) ? NULL : filter;
	if (!hub_add(&sub))
		abort();
	ev = event_new(1, 0, "f.x", 3, NULL, 0, data, dlen);
	if (ev == NULL)
		abort();
	delivered = 0;
	hub_dispatch(ev);
	want = hub_matches(&sub, ev, &ends);
	if (delivered != (want ? 1 : 0) || want != got)
		abort();
	event_free(ev);
	hub_remove(&sub);
	hub_shutdown();
}

/* Every canonical number of f compiles again to itself. */
static void
check_canonical(const sse_filter *f)
{
	for (size_t i = 0; i < sse_filter_nmembers(f); i++)
	{
		const char *key;
		size_t		klen;
		bool		is_scalar;
		sse_scalar	sc,
					again;
		char		buf[SSE_NUMBER_LEN_MAX + 64];
		sse_filter *g;
		int			n;

		if (!sse_filter_member(f, i, &key, &klen, &is_scalar, &sc) || !is_scalar ||
			sc.tag != 'n' || sc.len > SSE_NUMBER_LEN_MAX)
			continue;
		n = snprintf(buf, sizeof(buf), "{\"k\":%.*s}", (int) sc.len, sc.s);
		if (sse_filter_compile(buf, (size_t) n, &g, NULL) != SSE_JSON_OK)
			abort();
		if (!sse_filter_member(g, 0, &key, &klen, &is_scalar, &again) || !is_scalar ||
			again.tag != 'n' || again.len != sc.len || memcmp(again.s, sc.s, sc.len) != 0)
			abort();
		sse_filter_free(g);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	const char *fs = (const char *) data;
	size_t		flen,
				dlen;
	const char *ds;
	json_t	   *filter,
			   *dj;
	sse_filter *cf;
	sse_doc    *doc;
	sse_json_status fst,
				dst;

	if (nl == NULL)
		return 0;
	flen = (size_t) (nl - fs);
	ds = nl + 1;
	dlen = size - flen - 1;

	/* publish time and the bridge agree on what can be read */
	dst = sse_doc_parse(ds, dlen, &doc);
	if (dst != SSE_JSON_NOMEM && sse_payload_check(ds, dlen) != dst)
		abort();

	fst = sse_filter_compile(fs, flen, &cf, NULL);
	if ((fst == SSE_JSON_OK) != (cf != NULL))
		abort();
	filter = sse_json_parse(fs, flen);
	if (fst == SSE_JSON_OK)
	{
		bool		got;

		/* what compiles is a JSON object that the direct parser reads too */
		if (!json_is_object(filter))
			abort();
		check_canonical(cf);
		got = sse_filter_eval(cf, doc);
		if (sse_filter_eval(cf, doc) != got)
			abort();
		if (doc == NULL)
		{
			if (got != sse_filter_is_empty(cf))
				abort();
		}
		else
		{
			dj = sse_doc_is_object(doc) ? sse_json_parse(ds, dlen) : NULL;
			if (sse_filter_match(filter, dj) != got)
				abort();
			json_decref(dj);
		}
		check_hub(cf, got, ds, dlen);
	}
	json_decref(filter);
	sse_filter_free(cf);
	sse_doc_free(doc);
	return 0;
}
