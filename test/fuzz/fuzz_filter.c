/*
 * fuzz_filter.c - libFuzzer target: filters and payloads through the fan-out
 * index.  Input: "FILTER\nDATA".  The hub (indexed) and hub_matches (direct)
 * must agree on whether the event is delivered.
 */
#include <stdint.h>
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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	char	   *pat = "f.*";
	hub_sub		sub = {0};
	json_t	   *filter;
	event	   *ev;
	bool		ends, want;

	if (nl == NULL)
		return 0;
	filter = sse_json_parse((const char *) data, (size_t) (nl - (const char *) data));
	if (!json_is_object(filter)) {
		json_decref(filter);
		return 0;
	}
	hub_init(on_deliver);
	sub.patterns = &pat;
	sub.npatterns = 1;
	sub.filter = json_object_size(filter) ? filter : NULL;
	if (!hub_add(&sub))
		abort();
	ev = event_new(1, 0, "f.x", 3, NULL, 0, nl + 1, size - (size_t) (nl + 1 - (const char *) data));
	delivered = 0;
	hub_dispatch(ev);
	want = hub_matches(&sub, ev, &ends);
	if (delivered != (want ? 1 : 0))
		abort();
	event_free(ev);
	hub_remove(&sub);
	hub_shutdown();
	json_decref(filter);
	return 0;
}
