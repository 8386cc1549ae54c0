/*
 * test_shr.c - the shared ring of --workers N (bridge/shr.c): records come
 * back as written and in order, each with the position before it; a
 * reader overtaken by the writer is told it fell behind and never gets a
 * record of the overwritten range; an event too large for the ring is a
 * hole; worker slots are read back whole.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"
#include "event.h"
#include "logpos.h"
#include "shr.h"

static event *
mk(int64_t id, const char *name, size_t dlen)
{
	char	   *data = malloc(dlen + 1);
	char		ch[32];
	event	   *ev;

	memset(data, 'a' + (int) (id % 26), dlen);
	data[dlen] = '\0';
	snprintf(ch, sizeof(ch), "c.%lld", (long long) id);
	ev = event_new(id, id * 1000, ch, strlen(ch), name, name ? strlen(name) : 0, data, dlen);
	free(data);
	assert_non_null(ev);
	return ev;
}

static void
test_shr_round_trip(void **state)
{
	shr		   *r = shr_create(1 << 16, 3);
	uint64_t	off = shr_head(r);
	shr_item	it;
	event	   *a = mk(5, NULL, 10), *b = mk(6, "upd", 300);

	(void) state;
	assert_non_null(r);
	assert_int_equal(shr_read(r, &off, &it), SHR_EMPTY);
	shr_put_event(r, 4, 4000, a);
	shr_put_event(r, 5, 5000, b);
	shr_put_mark(r, SHR_PRUNED, 6, 6000, 9, LOGPOS_NO_ROW);
	shr_put_mark(r, SHR_TIMELINE, 9, LOGPOS_NO_ROW, 3, 3000);

	assert_int_equal(shr_read(r, &off, &it), SHR_OK);
	assert_int_equal(it.kind, SHR_EVENT);
	assert_int_equal(it.prev_id, 4);
	assert_int_equal(it.prev_us, 4000);
	assert_int_equal(it.ev->id, 5);
	assert_int_equal(it.ev->created_us, 5000);
	assert_null(it.ev->name);
	assert_int_equal(it.ev->dlen, 10);
	assert_memory_equal(it.ev->data, a->data, 10);
	assert_string_equal(it.ev->channel, "c.5");
	event_free(it.ev);

	assert_int_equal(shr_read(r, &off, &it), SHR_OK);
	assert_int_equal(it.ev->id, 6);
	assert_int_equal(it.prev_id, 5);
	assert_string_equal(it.ev->name, "upd");
	assert_int_equal(it.ev->dlen, 300);
	assert_memory_equal(it.ev->data, b->data, 300);
	event_free(it.ev);

	assert_int_equal(shr_read(r, &off, &it), SHR_OK);
	assert_int_equal(it.kind, SHR_PRUNED);
	assert_int_equal(it.id, 9);
	assert_int_equal(shr_read(r, &off, &it), SHR_OK);
	assert_int_equal(it.kind, SHR_TIMELINE);
	assert_int_equal(it.prev_id, 9);
	assert_int_equal(it.id, 3);
	assert_int_equal(it.us, 3000);
	assert_int_equal(shr_read(r, &off, &it), SHR_EMPTY);
	event_free(a);
	event_free(b);
	shr_destroy(r);
}

/* A reader left at offset 0 while the writer goes round the ring twice. */
static void
test_shr_behind(void **state)
{
	shr		   *r = shr_create(1 << 16, 1);
	uint64_t	slow = shr_head(r), fresh;
	shr_item	it;
	int64_t		last = 0;

	(void) state;
	for (int64_t id = 1; id <= 300; id++) {
		event	   *ev = mk(id, NULL, 500);

		shr_put_event(r, id - 1, (id - 1) * 1000, ev);
		event_free(ev);
	}
	assert_int_equal(shr_read(r, &slow, &it), SHR_BEHIND);
	/* a reader from what is left reads an unbroken run up to the last */
	fresh = shr_tail(r);
	assert_true(fresh > 0 && shr_head(r) - fresh <= (1 << 16));
	assert_int_equal(shr_read(r, &fresh, &it), SHR_OK);
	do {
		if (it.kind != SHR_EVENT)
			continue;
		if (last != 0)
			assert_int_equal(it.prev_id, last);
		assert_int_equal(it.ev->dlen, 500);
		assert_int_equal(it.ev->data[0], 'a' + (int) (it.ev->id % 26));
		last = it.ev->id;
		event_free(it.ev);
	} while (shr_read(r, &fresh, &it) == SHR_OK);
	assert_int_equal(last, 300);
	shr_destroy(r);
}

static void
test_shr_hole(void **state)
{
	shr		   *r = shr_create(1 << 16, 1);
	uint64_t	off = shr_head(r);
	shr_item	it;
	event	   *big = mk(7, NULL, 1 << 15);

	(void) state;
	shr_put_event(r, 6, 6000, big);
	assert_int_equal(shr_read(r, &off, &it), SHR_OK);
	assert_int_equal(it.kind, SHR_HOLE);
	assert_int_equal(it.id, 7);
	assert_int_equal(it.prev_id, 6);
	assert_null(it.ev);
	event_free(big);
	shr_destroy(r);
}

/* A whole write of slot s, as a worker publishes it. */
static void
slot_write(shr_slot *s, int32_t pid, uint64_t clients)
{
	shr_slot_begin(s);
	s->pid = pid;
	s->v.c.clients = clients;
	shr_slot_end(s);
}

static void
test_shr_slots(void **state)
{
	shr		   *r = shr_create(1 << 16, 2);
	shr_slot	out;
	shr_slot   *s = shr_slot_at(r, 1);

	(void) state;
	assert_false(shr_slot_read(r, 0, &out));	/* never written */
	slot_write(s, 42, 7);
	assert_true(shr_slot_read(r, 1, &out));
	assert_int_equal(out.pid, 42);
	assert_int_equal(out.v.c.clients, 7);
	shr_set_links(r, 3, 4);
	assert_int_equal(shr_live_state(r), 3);
	assert_int_equal(shr_work_state(r), 4);
	shr_destroy(r);
}

/*
 * A worker killed while it wrote its slot leaves the sequence odd: the
 * next worker in that slot must still publish readable figures, and the
 * supervisor clears a dead worker's slot (its clients are gone).
 */
static void
test_shr_slot_dead_writer(void **state)
{
	shr		   *r = shr_create(1 << 16, 2);
	shr_slot	out;
	shr_slot   *s = shr_slot_at(r, 0);

	(void) state;
	slot_write(s, 41, 5000);
	shr_slot_begin(s);			/* ...and killed here */
	s->v.c.clients = 5001;
	assert_false(shr_slot_read(r, 0, &out));	/* torn: not read */
	shr_slot_clear(s);			/* the supervisor, after its exit */
	assert_false(shr_slot_read(r, 0, &out));	/* nobody there: counts nothing */
	assert_int_equal(s->v.c.clients, 0);
	slot_write(s, 43, 3);		/* the new worker */
	assert_true(shr_slot_read(r, 0, &out));
	assert_int_equal(out.pid, 43);
	assert_int_equal(out.v.c.clients, 3);
	/* and a new writer after a dead one, without the supervisor's clear */
	shr_slot_begin(s);
	s->v.c.clients = 4;			/* killed here */
	shr_slot_begin(s);
	s->v.c.clients = 9;
	shr_slot_end(s);
	assert_true(shr_slot_read(r, 0, &out));
	assert_int_equal(out.v.c.clients, 9);
	shr_destroy(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shr_round_trip),
		cmocka_unit_test(test_shr_behind),
		cmocka_unit_test(test_shr_hole),
		cmocka_unit_test(test_shr_slots),
		cmocka_unit_test(test_shr_slot_dead_writer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
