/*
 * test_frame.c - SSE frame formatting and the bounded output queue.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"
#include "wire.h"
#include "outq.h"

static void
check_event(int64_t id, const char *name, const char *data, const char *want)
{
	frame	   *f = wire_event(id, name, name ? strlen(name) : 0, data, strlen(data));

	assert_frame_eq(f, want);
	assert_int_equal(wire_event_size(id, name ? strlen(name) : 0, data, strlen(data)), f->len);
	frame_unref(f);
}

static void
test_frame_lines(void **state)
{
	(void) state;
	check_event(1, NULL, "x", "id: 1\ndata: x\n\n");
	check_event(7, "upd", "a\nb", "id: 7\nevent: upd\ndata: a\ndata: b\n\n");
	check_event(8, NULL, "a\r\nb", "id: 8\ndata: a\ndata: b\n\n");
	check_event(9, NULL, "a\rb", "id: 9\ndata: a\ndata: b\n\n");
	check_event(10, NULL, "a\r\n\r\nb\n", "id: 10\ndata: a\ndata: \ndata: b\ndata: \n\n");
	check_event(11, NULL, "\r", "id: 11\ndata: \ndata: \n\n");
	check_event(12, NULL, "", "id: 12\ndata: \n\n");
	check_event(13, NULL, "\n\r", "id: 13\ndata: \ndata: \ndata: \n\n");
	check_event(INT64_MAX, NULL, " lead", "id: 9223372036854775807\ndata:  lead\n\n");
}

/* The control frames and the stream head, byte for byte. */
static void
test_wire_control(void **state)
{
	frame	   *f;

	(void) state;
	f = wire_reset(11, 20);
	assert_frame_eq(f, "id: 20\nevent: reset\ndata: {\"lost_from\":11,\"lost_through\":20}\n\n");
	frame_unref(f);
	f = wire_ready(42);
	assert_frame_eq(f, "id: 42\nevent: ready\ndata: {\"head\":42}\n\n");
	frame_unref(f);
	f = wire_keepalive();
	assert_frame_eq(f, ": keepalive\n\n");
	frame_unref(f);
	f = wire_stream_head("Vary: Origin\r\n", 3000);
	assert_frame_eq(f, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
					"Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
					"Connection: close\r\nVary: Origin\r\n\r\nretry: 3000\n\n");
	frame_unref(f);
}

static void
test_frame_refs(void **state)
{
	frame	   *f = frame_printf("%s-%d", "x", 5);

	(void) state;
	assert_frame_eq(f, "x-5");
	assert_int_equal(frame_ref(f)->refs, 2);
	frame_unref(f);
	assert_int_equal(f->refs, 1);
	frame_unref(f);
}

static void
test_outq_flow(void **state)
{
	outq		q = {0};
	uv_buf_t	bufs[8];
	frame	   *shared = frame_printf("abc");

	(void) state;
	for (int i = 0; i < 10; i++)
		assert_true(outq_push(&q, frame_ref(shared)));
	assert_int_equal(shared->refs, 11);
	assert_int_equal(outq_bytes(&q), 30);
	assert_int_equal(outq_take(&q, bufs, 8), 8);
	assert_int_equal(outq_pending(&q), 2);
	assert_true(outq_push(&q, frame_printf("zz")));		/* while 8 are in flight */
	assert_int_equal(outq_bytes(&q), 32);
	outq_complete(&q);
	assert_int_equal(outq_bytes(&q), 8);
	assert_int_equal(shared->refs, 3);
	assert_int_equal(outq_take(&q, bufs, 8), 3);
	assert_int_equal(bufs[2].len, 2);
	assert_memory_equal(bufs[2].base, "zz", 2);
	assert_int_equal(outq_take(&q, bufs, 8), 0);
	outq_complete(&q);
	assert_int_equal(outq_bytes(&q), 0);
	assert_null(q.v);			/* grown arrays are released when empty */
	outq_push(&q, frame_ref(shared));
	outq_clear(&q);
	assert_int_equal(shared->refs, 1);
	frame_unref(shared);
}

/*
 * The ring is indexed with a mask: entries must come out in push order while
 * head wraps around, and when the array grows with head in the middle.
 */
static void
test_outq_wrap(void **state)
{
	outq		q = {0};
	uv_buf_t	bufs[64];
	uint32_t	next_out = 0, next_in = 0;

	(void) state;
	for (int round = 0; round < 200; round++) {
		uint32_t	push = (uint32_t) (round * 7 % 13) + 1;
		uint32_t	take = (uint32_t) (round * 5 % 11) + 1;
		uint32_t	got;

		for (uint32_t i = 0; i < push; i++)
			assert_true(outq_push(&q, frame_printf("%u.", next_in++)));
		assert_int_equal(q.cap & (q.cap - 1), 0);
		got = outq_take(&q, bufs, take);
		assert_int_equal(got, take < q.n ? take : q.n);
		for (uint32_t i = 0; i < got; i++) {
			char		want[16];
			int			wl = snprintf(want, sizeof(want), "%u.", next_out++);

			assert_int_equal(bufs[i].len, wl);
			assert_memory_equal(bufs[i].base, want, (size_t) wl);
		}
		if (round % 3 == 2)		/* a push while some are in flight */
			assert_true(outq_push(&q, frame_printf("%u.", next_in++)));
		outq_complete(&q);
		assert_int_equal(q.n, next_in - next_out);
	}
	while (q.n > 0) {
		uint32_t	got = outq_take(&q, bufs, 64);

		for (uint32_t i = 0; i < got; i++) {
			char		want[16];
			int			wl = snprintf(want, sizeof(want), "%u.", next_out++);

			assert_memory_equal(bufs[i].base, want, (size_t) wl);
		}
		outq_complete(&q);
	}
	assert_int_equal(next_out, next_in);
	assert_int_equal(outq_bytes(&q), 0);
	outq_clear(&q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_lines),
		cmocka_unit_test(test_frame_refs),
		cmocka_unit_test(test_wire_control),
		cmocka_unit_test(test_outq_flow),
		cmocka_unit_test(test_outq_wrap),
	};

	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
