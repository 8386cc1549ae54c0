/*
 * ring.c - circular array of the most recent events.
 *
 * Invariants: events are stored in strictly increasing id order; lo < every
 * stored id <= hi; evicting the oldest event moves lo to its id, keeping the
 * range (lo, hi] complete; bytes is the sum of event_cost of stored events.
 */
#include <stdlib.h>

#include "ring.h"

static struct {
	event	  **v;
	size_t		cap;			/* power of two */
	size_t		head;
	size_t		n;
	size_t		bytes;
	size_t		max_bytes;
	size_t		max_events;
	int64_t		lo;
	int64_t		hi;
	int64_t		hi_us;			/* created_us of the row at hi */
	uint64_t	timeline;		/* ring_rebase calls */
	bool		valid;
} ring;

void
ring_init(size_t max_bytes, size_t max_events)
{
	ring.max_bytes = max_bytes;
	ring.max_events = max_events < 16 ? 16 : max_events;
	ring.valid = false;
}

static void
ring_drop_oldest(void)
{
	event	   *ev = ring.v[ring.head];

	ring.lo = ev->id;
	ring.bytes -= event_cost(ev);
	event_free(ev);
	ring.head = (ring.head + 1) & (ring.cap - 1);
	ring.n--;
}

void
ring_reset(int64_t cursor, int64_t cursor_us)
{
	while (ring.n > 0)
		ring_drop_oldest();
	ring.lo = ring.hi = cursor;
	ring.hi_us = cursor_us;
	ring.valid = true;
}

void
ring_rebase(int64_t cursor, int64_t cursor_us)
{
	ring_reset(cursor, cursor_us);
	ring.timeline++;
}

uint64_t
ring_timeline(void)
{
	return ring.timeline;
}

int64_t
ring_hi_us(void)
{
	return ring.hi_us;
}

int64_t
ring_us_at(int64_t id)
{
	size_t		i;

	if (!ring.valid || id <= ring.lo || id > ring.hi)
		return LOGPOS_UNKNOWN;
	if (id == ring.hi)
		return ring.hi_us;
	i = ring_find_after(id - 1);
	return i < ring.n && ring_at(i)->id == id ? ring_at(i)->created_us : LOGPOS_UNKNOWN;
}

void
ring_shutdown(void)
{
	while (ring.n > 0)
		ring_drop_oldest();
	free(ring.v);
	ring.v = NULL;
	ring.cap = 0;
	ring.valid = false;
}

bool
ring_valid(void)
{
	return ring.valid;
}

int64_t
ring_lo(void)
{
	return ring.lo;
}

int64_t
ring_hi(void)
{
	return ring.hi;
}

static bool
ring_grow(void)
{
	size_t		ncap = ring.cap ? ring.cap * 2 : 16;
	event	  **nv;

	if (ring.cap >= ring.max_events)
		return false;			/* eviction keeps n below max_events */
	nv = malloc(sizeof(event *) * ncap);
	if (nv == NULL)
		return false;
	for (size_t i = 0; i < ring.n; i++)
		nv[i] = ring.v[(ring.head + i) & (ring.cap - 1)];
	free(ring.v);
	ring.v = nv;
	ring.cap = ncap;
	ring.head = 0;
	return true;
}

void
ring_push(event *ev)
{
	size_t		cost = event_cost(ev);

	ring.hi = ev->id;
	ring.hi_us = ev->created_us;
	while (ring.n > 0 && (ring.bytes + cost > ring.max_bytes || ring.n >= ring.max_events))
		ring_drop_oldest();
	if ((ring.n == ring.cap && !ring_grow()) || cost > ring.max_bytes) {
		while (ring.n > 0)		/* cannot keep it: the range restarts after it */
			ring_drop_oldest();
		ring.lo = ev->id;
		event_free(ev);
		return;
	}
	ring.v[(ring.head + ring.n) & (ring.cap - 1)] = ev;
	ring.n++;
	ring.bytes += cost;
}

size_t
ring_count(void)
{
	return ring.n;
}

event *
ring_at(size_t i)
{
	return ring.v[(ring.head + i) & (ring.cap - 1)];
}

size_t
ring_find_after(int64_t cursor)
{
	size_t		lo = 0, hi = ring.n;

	while (lo < hi) {
		size_t		mid = lo + (hi - lo) / 2;

		if (ring_at(mid)->id <= cursor)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}
