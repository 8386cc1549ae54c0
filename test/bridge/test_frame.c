/*
 * test_frame.c - SSE frame formatting and the bounded output queue.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"
#include "logpos.h"
#include "wire.h"
#include "outq.h"

#define FP 0x0badf00du

static void
check_event(int64_t id, const char *name, const char *data, const char *want)
{
	frame	   *f = wire_event(id, FP, name, name ? strlen(name) : 0, data, strlen(data));

	assert_frame_eq(f, want);
	assert_int_equal(wire_event_size(id, FP, name ? strlen(name) : 0, data, strlen(data)),
					 f->len);
	frame_unref(f);
}

static void
test_frame_lines(void **state)
{
	(void) state;
	check_event(1, NULL, "x", "id: 1-0badf00d\ndata: x\n\n");
	check_event(7, "upd", "a\nb", "id: 7-0badf00d\nevent: upd\ndata: a\ndata: b\n\n");
	check_event(8, NULL, "a\r\nb", "id: 8-0badf00d\ndata: a\ndata: b\n\n");
	check_event(9, NULL, "a\rb", "id: 9-0badf00d\ndata: a\ndata: b\n\n");
	check_event(10, NULL, "a\r\n\r\nb\n", "id: 10-0badf00d\ndata: a\ndata: \ndata: b\ndata: \n\n");
	check_event(11, NULL, "\r", "id: 11-0badf00d\ndata: \ndata: \n\n");
	check_event(12, NULL, "", "id: 12-0badf00d\ndata: \n\n");
	check_event(13, NULL, "\n\r", "id: 13-0badf00d\ndata: \ndata: \ndata: \n\n");
	check_event(INT64_MAX, NULL, " lead", "id: 9223372036854775807-0badf00d\ndata:  lead\n\n");
}

/* The control frames and the stream head, byte for byte. */
static void
test_wire_control(void **state)
{
	frame	   *f;

	(void) state;
	f = wire_reset(11, 20, 20, 0, false);
	assert_frame_eq(f, "id: 20-0\nevent: reset\ndata: {\"lost_from\":11,\"lost_through\":20}\n\n");
	frame_unref(f);
	f = wire_reset(51, 100, 50, 0xabcdef01u, true);
	assert_frame_eq(f, "id: 50-abcdef01\nevent: reset\ndata: "
					"{\"lost_from\":51,\"lost_through\":100,\"timeline\":true}\n\n");
	frame_unref(f);
	f = wire_ready(42, 7);
	assert_frame_eq(f, "id: 42-00000007\nevent: ready\ndata: {\"head\":42}\n\n");
	frame_unref(f);
	f = wire_ready(0, 0);
	assert_frame_eq(f, "id: 0-0\nevent: ready\ndata: {\"head\":0}\n\n");
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

/*
 * The fingerprint is part of every position clients hold: it must never
 * change between versions (pinned values), and a row's is never 0.
 */
static void
test_logpos(void **state)
{
	char		buf[LOGPOS_STRLEN];

	(void) state;
	assert_int_equal(logpos_fp(1, 1700000000000000LL), 0x84b540a6u);
	assert_int_equal(logpos_fp(51, 1764460000123456LL), 0x0d23ba48u);
	assert_int_not_equal(logpos_fp(51, 1764460000123457LL), logpos_fp(51, 1764460000123456LL));
	assert_int_not_equal(logpos_fp(52, 1764460000123456LL), logpos_fp(51, 1764460000123456LL));
	assert_int_equal(logpos_fp(5, LOGPOS_NO_ROW), 0);
	for (int64_t i = 0; i < 100000; i++)
		assert_int_not_equal(logpos_fp(i, i * 7), 0);
	assert_int_equal(logpos_format(buf, 51, 0x0d23ba48u), 11);
	assert_string_equal(buf, "51-0d23ba48");
	assert_int_equal(logpos_format(buf, 0, 0), 3);
	assert_string_equal(buf, "0-0");
	logpos_format(buf, INT64_MAX, 0xffffffffu);
	assert_string_equal(buf, "9223372036854775807-ffffffff");
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
	outq_trim(&q);				/* grown arrays are released when empty */
	assert_null(q.v);
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

/*
 * A direct write may stop inside a frame: the next description starts at
 * the first byte not sent, whole frames sent are released, and the byte
 * count follows what is left.
 */
static void
test_outq_consume(void **state)
{
	outq		q = {0};
	uv_buf_t	bufs[8];
	frame	   *shared = frame_printf("abcd");

	(void) state;
	for (int i = 0; i < 3; i++)
		assert_true(outq_push(&q, frame_ref(shared)));
	assert_true(outq_push(&q, frame_printf("xyz")));
	assert_int_equal(outq_bytes(&q), 15);
	assert_int_equal(outq_peek(&q, bufs, 8), 4);
	assert_int_equal(outq_pending(&q), 4);		/* peeking takes nothing */
	outq_consume(&q, 6);						/* one frame and 2 bytes */
	assert_int_equal(q.n, 3);
	assert_int_equal(outq_bytes(&q), 9);
	assert_int_equal(shared->refs, 3);
	assert_int_equal(outq_peek(&q, bufs, 8), 3);
	assert_int_equal(bufs[0].len, 2);
	assert_memory_equal(bufs[0].base, "cd", 2);
	assert_int_equal(bufs[2].len, 3);
	outq_consume(&q, 1);						/* within the same frame */
	assert_int_equal(outq_peek(&q, bufs, 8), 3);
	assert_memory_equal(bufs[0].base, "d", 1);
	/* what is left goes through a write in flight, from the same byte */
	assert_int_equal(outq_take(&q, bufs, 8), 3);
	assert_int_equal(bufs[0].len, 1);
	assert_memory_equal(bufs[0].base, "d", 1);
	outq_complete(&q);
	assert_int_equal(outq_bytes(&q), 0);
	assert_int_equal(q.off, 0);
	assert_int_equal(shared->refs, 1);
	assert_true(outq_push(&q, frame_ref(shared)));
	outq_consume(&q, 4);						/* exactly everything */
	assert_int_equal(q.n, 0);
	assert_int_equal(outq_bytes(&q), 0);
	outq_clear(&q);
	assert_int_equal(shared->refs, 1);
	frame_unref(shared);
}

/*
 * A busy client's array survives its queue emptying (no allocation per
 * burst of events); the sweep's outq_trim releases it when it is idle, and
 * a large one goes at once.
 */
static void
test_outq_keep(void **state)
{
	outq		q = {0};
	uv_buf_t	bufs[64];
	frame	   *shared = frame_printf("e");
	frame	  **v;

	(void) state;
	for (int i = 0; i < 10; i++)
		assert_true(outq_push(&q, frame_ref(shared)));
	v = q.v;
	outq_take(&q, bufs, 64);
	outq_complete(&q);
	assert_int_equal(q.n, 0);
	assert_ptr_equal(q.v, v);					/* kept for the next burst */
	for (int i = 0; i < 10; i++)
		assert_true(outq_push(&q, frame_ref(shared)));
	assert_ptr_equal(q.v, v);					/* and used without growing */
	outq_trim(&q);								/* not empty: kept */
	assert_ptr_equal(q.v, v);
	outq_consume(&q, 10);
	outq_trim(&q);
	assert_null(q.v);
	for (int i = 0; i < 2000; i++)				/* large: released when empty */
		assert_true(outq_push(&q, frame_ref(shared)));
	outq_consume(&q, 2000);
	assert_null(q.v);
	outq_clear(&q);
	assert_int_equal(shared->refs, 1);
	frame_unref(shared);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_lines),
		cmocka_unit_test(test_frame_refs),
		cmocka_unit_test(test_wire_control),
		cmocka_unit_test(test_logpos),
		cmocka_unit_test(test_outq_flow),
		cmocka_unit_test(test_outq_wrap),
		cmocka_unit_test(test_outq_consume),
		cmocka_unit_test(test_outq_keep),
	};

	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
