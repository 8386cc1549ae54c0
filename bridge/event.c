/*
 * event.c - in-memory events with lazily parsed JSON and a lazily formatted,
 * shared SSE frame.
 *
 * Invariants: an event's strings are immutable and NUL-terminated; a name
 * that fails sse_event_name_check is dropped (the event goes out unnamed),
 * so a frame can never carry an injected field; is_close is true exactly
 * when the name is "close".
 */
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "mem.h"
#include "sse_filter.h"
#include "sse_match.h"
#include "wire.h"

static size_t
event_size(const event *ev)
{
	return sizeof(event) + ev->chlen + 1 + ev->nlen + 1 + ev->dlen + 1;
}

/* Estimated memory of a parsed payload (jansson nodes and strings). */
static size_t
event_json_size(const event *ev)
{
	return ev->doc != NULL ? ev->dlen * 2 : 0;
}

event *
event_new(int64_t id, int64_t created_us, const char *channel, size_t chlen,
		  const char *name, size_t nlen, const char *data, size_t dlen)
{
	event	   *ev;
	char	   *p;

	if (name != NULL && sse_event_name_check(name, nlen) != SSE_NAME_OK)
		name = NULL;
	if (name == NULL)
		nlen = 0;
	if (chlen > UINT32_MAX || nlen > UINT32_MAX)
		return NULL;
	ev = malloc(sizeof(event) + chlen + 1 + nlen + 1 + dlen + 1);
	if (ev == NULL)
		return NULL;
	memset(ev, 0, sizeof(*ev));
	ev->id = id;
	ev->created_us = created_us;
	p = (char *) (ev + 1);
	ev->channel = memcpy(p, channel, chlen);
	p[chlen] = '\0';
	p += chlen + 1;
	if (name != NULL) {
		ev->name = memcpy(p, name, nlen);
		p[nlen] = '\0';
		p += nlen + 1;
		ev->is_close = nlen == 5 && memcmp(name, "close", 5) == 0;
	}
	ev->data = memcpy(p, data, dlen);
	p[dlen] = '\0';
	ev->chlen = (uint32_t) chlen;
	ev->nlen = (uint32_t) nlen;
	ev->dlen = dlen;
	mem_charge(MEM_EVENTS, event_size(ev));
	return ev;
}

void
event_free(event *ev)
{
	if (ev == NULL)
		return;
	mem_release(MEM_EVENTS, event_size(ev));
	mem_release(MEM_JSON, event_json_size(ev));
	sse_doc_free(ev->doc);
	frame_unref(ev->frame);
	free(ev);
}

frame *
event_frame(event *ev)
{
	if (ev->frame == NULL)
		ev->frame = wire_event(ev->id, ev->name, ev->nlen, ev->data, ev->dlen);
	return ev->frame;
}

sse_doc *
event_doc(event *ev)
{
	if (!ev->parsed) {
		sse_json_status st = sse_doc_parse(ev->data, ev->dlen, &ev->doc);

		if (st != SSE_JSON_OK)
			ev->doc = NULL;
		ev->json_oom = st == SSE_JSON_NOMEM;
		ev->parsed = !ev->json_oom;		/* out of memory: parse again next time */
		mem_charge(MEM_JSON, event_json_size(ev));
	}
	return ev->doc;
}

size_t
event_cost(const event *ev)
{
	/* struct + strings + a frame of about the same size + JSON overhead */
	size_t		base = sizeof(event) + ev->chlen + ev->nlen + ev->dlen + 3;

	return base + ev->dlen + 64 + (ev->dlen > 0 && ev->data[0] == '{' ? ev->dlen * 2 : 0);
}
